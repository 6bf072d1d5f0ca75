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
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { ociLayout, sha256, writeArchiveDir, type FixtureImage } from '../fixtures/images.js';
import { runSkopeo, startDockerRegistry } from '../harness/docker-registry.js';
import { tar } from '../fixtures/images-tar.js';

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

/** A layer: a tar of one file of `mb` MiB of random bytes (so the gzip blob is as big). */
function layer(i: number, mb: number): Buffer {
  return tar([
    { name: 'data/', type: 'dir' },
    { name: `data/layer-${i}.bin`, data: randomBytes(mb << 20) },
  ]);
}

/** An OCI image of these tars, gzip at level 1 (the fixture's level 6 is slow on 200 MB). */
function gzipImage(name: string, tars: Buffer[]): FixtureImage {
  const layers = tars.map((t) => {
    const blob = gzipSync(t, { level: 1 });
    return {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: sha256(blob),
      diffId: sha256(t),
      blob,
      tar: t,
    };
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created_by: `bench layer ${i}` })),
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(config),
        size: config.length,
      },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length })),
    }),
  );
  return { name, layers, config, configDigest: sha256(config), manifest, manifestDigest: sha256(manifest) };
}

function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - started;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}${stdout}`));
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const work = mkdtempSync(join(tmpdir(), 'skiff-bench-registry-pull-'));
const registry = await startDockerRegistry();
try {
  process.stdout.write(`building a ${TOTAL_MB} MiB image of ${LAYERS} layers…\n`);
  const per = Math.ceil(TOTAL_MB / LAYERS);
  const tars = Array.from({ length: LAYERS }, (_, i) => layer(i, per));
  const first = gzipImage('bench/app:1', tars);
  const second = gzipImage('bench/app:2', [...tars.slice(0, LAYERS - 1), layer(99, 8)]);
  const bytesOf = (image: FixtureImage) =>
    image.manifest.length + image.config.length + image.layers.reduce((s, l) => s + l.blob.length, 0);
  const total = bytesOf(first);
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
  const newBytes = second.manifest.length + second.config.length + second.layers.at(-1)!.blob.length;
  const { stdout } = await run([...skiff, 'image', '--root', lastRoot, 'pull', `${repo}:2`], env);
  const fetched = Number(/(\d+) bytes over the network/.exec(stdout)?.[1] ?? NaN);
  process.stdout.write(
    `second image ${repo}:2 (${bytesOf(second)} bytes, sharing ${LAYERS - 1} layers): fetched ${fetched} bytes; its new layer, config and manifest are ${newBytes} bytes: ${fetched === newBytes ? 'only the new layers' : 'MORE THAN THE NEW LAYERS'}\n`,
  );
} finally {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
