/**
 * Pull throughput over loopback from Debian's docker-registry (Distribution 2.8): `skiff image
 * pull` of a ≥ 200 MB, 6-layer image into an empty runtime root, against `skopeo copy` of the
 * same image from the same registry into an empty `oci:` directory, in the same run, rounds
 * alternating which goes first. Both are whole processes (start-up included) and both verify
 * every blob's digest. Prints MB/s of each, per round and as medians, and the ratio (goal ≥ 1.0×).
 * Then a second image that shares the first one's five base layers is pulled into the same root:
 * the bytes fetched must be only its new layer, config and manifest.
 *
 *   node dist/test/bench/registry-pull.js [--rounds 5] [--mb 210] [--layers 6]
 *
 * Needs docker-registry and skopeo (apt-get install -y docker-registry skopeo); run as root.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { ociLayout, writeArchiveDir } from '../fixtures/images.js';
import { runSkopeo, startDockerRegistry } from '../harness/docker-registry.js';
import { benchImages, imageBytes, median, run } from './registry-bench-image.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    mb: { type: 'string', default: '210' },
    layers: { type: 'string', default: '6' },
  },
});
const ROUNDS = Number(values.rounds);
const TOTAL_MB = Number(values.mb);
const LAYERS = Math.max(6, Number(values.layers));

const work = mkdtempSync(join(tmpdir(), 'skiff-bench-registry-pull-'));
const registry = await startDockerRegistry();
try {
  const { first, second, total, secondOwnBytes: newBytes } = benchImages(TOTAL_MB, LAYERS);
  const layout = join(work, 'layout');
  await writeArchiveDir(layout, ociLayout([first, second]));
  const repo = `${registry.host}/bench/app`;
  await runSkopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${repo}:1`]);
  await runSkopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:2`, `docker://${repo}:2`]);
  process.stdout.write(
    `image ${repo}:1: ${first.layers.length} layers, ${total} bytes (${(total / 1e6).toFixed(1)} MB) in blobs\n`,
  );

  const env = { ...process.env, SKIFF_CONFIG: join(work, 'no-config'), SKIFF_LOG_LEVEL: 'warn' };
  const skiff = [process.execPath, ...skiffEntryArgv()];
  const skopeoPath = (await import('../harness/docker-registry.js')).skopeoBinary();
  const skiffRates: number[] = [];
  const skopeoRates: number[] = [];
  const ratios: number[] = [];
  let lastRoot = '';
  for (let round = 0; round < ROUNDS; round++) {
    const root = join(work, `root-${round}`);
    const oci = join(work, `oci-${round}`);
    // what the last round wrote is deleted and the deletion flushed before anything is timed
    spawnSync('sync');
    const doSkiff = async () => {
      spawnSync('sync');
      const { ms } = await run([...skiff, 'image', '--root', root, 'pull', `${repo}:1`], env);
      skiffRates.push(total / 1e6 / (ms / 1000));
      return ms;
    };
    const doSkopeo = async () => {
      spawnSync('sync');
      const { ms } = await run([
        skopeoPath,
        'copy',
        '--src-tls-verify=false',
        `docker://${repo}:1`,
        `oci:${oci}:app`,
      ]);
      skopeoRates.push(total / 1e6 / (ms / 1000));
      return ms;
    };
    const [a, b] = round % 2 === 0 ? [await doSkiff(), await doSkopeo()] : [0, 0];
    const [c, d] = round % 2 === 1 ? [await doSkopeo(), await doSkiff()] : [0, 0];
    const skiffMs = round % 2 === 0 ? a : d;
    const skopeoMs = round % 2 === 0 ? b : c;
    ratios.push(skopeoMs / skiffMs);
    process.stdout.write(
      `round ${round + 1}: skiff ${skiffMs.toFixed(0)} ms (${skiffRates.at(-1)!.toFixed(0)} MB/s), skopeo ${skopeoMs.toFixed(0)} ms (${skopeoRates.at(-1)!.toFixed(0)} MB/s), ratio ${(skopeoMs / skiffMs).toFixed(2)}×\n`,
    );
    rmSync(oci, { recursive: true, force: true });
    if (lastRoot) rmSync(lastRoot, { recursive: true, force: true });
    lastRoot = root;
  }
  const s = median(skiffRates);
  const k = median(skopeoRates);
  process.stdout.write(
    `median: skiff ${s.toFixed(0)} MB/s, skopeo ${k.toFixed(0)} MB/s: ${(s / k).toFixed(2)}× skopeo (goal ≥ 1.0×); ` +
      `per-round ratios ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}, median ${median(ratios).toFixed(2)}×\n`,
  );

  // the second image, sharing five base layers, into the root that holds the first
  const { stdout } = await run([...skiff, 'image', '--root', lastRoot, 'pull', `${repo}:2`], env);
  const fetched = Number(/(\d+) bytes over the network/.exec(stdout)?.[1] ?? NaN);
  process.stdout.write(
    `second image ${repo}:2 (${imageBytes(second)} bytes, sharing ${LAYERS - 1} layers): fetched ${fetched} bytes; its new layer, config and manifest are ${newBytes} bytes: ${fetched === newBytes ? 'only the new layers' : 'MORE THAN THE NEW LAYERS'}\n`,
  );
} finally {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
