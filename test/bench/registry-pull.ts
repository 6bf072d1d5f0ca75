/**
 * Pull throughput over loopback, as issue 10 words it: `skiff image pull` of a ≥ 200 MB, 6-layer
 * image from skiff's registry (a real `skiff controlplane`: etcd, NATS, its admin token) into an
 * empty runtime root, against `skopeo copy` of the same image from Debian's docker-registry
 * (Distribution 2.8) into an empty `oci:` directory, in the same run, rounds rotating which goes
 * first. Both are whole processes (start-up and exit included) and both verify every blob's
 * digest. What each writes: skiff the blobs into its content store (each fsynced before it is
 * committed) and the image's name; skopeo the blobs into an OCI layout. Neither unpacks a layer
 * (skiff unpacks when a container is created). Prints seconds and MB/s of each, per round and as
 * medians, and the ratio (goal ≥ 1.0×). To tell the client from the server, each round also
 * times `skiff image pull` from the same docker-registry as skopeo (the clients alone compared).
 * Then a second image that shares the first one's five base layers is pulled from skiff's
 * registry into the root that holds the first: the bytes fetched must be only its new layer,
 * config and manifest.
 *
 *   node dist/test/bench/registry-pull.js [--rounds 5] [--mb 210] [--layers 6] [--cpu-prof DIR]
 *
 * --cpu-prof DIR: the skiff pulls run with node --cpu-prof, profiles in DIR.
 * Needs docker-registry and skopeo (apt-get install -y docker-registry skopeo); run as root.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ociLayout, writeArchiveDir } from '../fixtures/images.js';
import { runSkopeo, skopeoBinary, startDockerRegistry } from '../harness/docker-registry.js';
import { startBenchCluster } from './api-create.js';
import { benchImages, imageBytes, median, run, runSkiffImage } from './registry-bench-image.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    mb: { type: 'string', default: '210' },
    layers: { type: 'string', default: '6' },
    'cpu-prof': { type: 'string' },
  },
});
const ROUNDS = Number(values.rounds);
const TOTAL_MB = Number(values.mb);
const LAYERS = Math.max(6, Number(values.layers));
const PROFILE_DIR = values['cpu-prof'];

const work = mkdtempSync(join(tmpdir(), 'skiff-bench-registry-pull-'));
const cleanups: Array<() => Promise<void> | void> = [() => rmSync(work, { recursive: true, force: true })];
try {
  const { first, second, total, secondOwnBytes: newBytes } = benchImages(TOTAL_MB, LAYERS);
  const layout = join(work, 'layout');
  await writeArchiveDir(layout, ociLayout([first, second]));

  const docker = await startDockerRegistry();
  cleanups.push(() => docker.stop());
  const dockerRepo = `${docker.host}/bench/app`;
  await runSkopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${dockerRepo}:1`]);

  const cluster = await startBenchCluster(join(work, 'skiff'), cleanups);
  const skiffRepo = `${cluster.httpAddress}/bench/app`;
  const configPath = join(work, 'skiff-config.yaml');
  writeFileSync(
    configPath,
    `registries:\n  ${JSON.stringify(cluster.httpAddress)}:\n    token: ${cluster.token}\n`,
    { mode: 0o600 },
  );
  const env = { ...process.env, SKIFF_CONFIG: configPath, SKIFF_LOG_LEVEL: 'warn' };
  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  const skiff = (root: string, args: string[], profile = false) =>
    runSkiffImage(root, args, env, profile ? PROFILE_DIR : undefined);
  // both images into skiff's registry, pushed from a runtime root of their own (not timed)
  const pushRoot = join(work, 'push-root');
  await skiff(pushRoot, ['load', '-i', layout]);
  for (const tag of ['1', '2']) {
    await skiff(pushRoot, ['tag', `bench/app:${tag}`, `${skiffRepo}:${tag}`]);
    await skiff(pushRoot, ['push', `${skiffRepo}:${tag}`]);
  }
  rmSync(pushRoot, { recursive: true, force: true });
  process.stdout.write(
    `image bench/app:1 in ${skiffRepo} (skiff) and ${dockerRepo} (docker-registry): ${first.layers.length} layers, ` +
      `${total} bytes (${(total / 1e6).toFixed(1)} MB) in blobs\n`,
  );

  const skopeo = skopeoBinary();
  const fetched = (stdout: string) => Number(/(\d+) bytes over the network/.exec(stdout)?.[1] ?? NaN);
  const seconds = { skiff: [] as number[], skopeo: [] as number[], cross: [] as number[] };
  const ratios: number[] = [];
  let lastRoot = '';
  for (let round = 0; round < ROUNDS; round++) {
    const root = join(work, `root-${round}`);
    const crossRoot = join(work, `cross-root-${round}`);
    const oci = join(work, `oci-${round}`);
    const timed = async (what: keyof typeof seconds, argv: () => Promise<{ ms: number; stdout: string }>) => {
      // what the last pull wrote is flushed before the next is timed
      spawnSync('sync');
      const { ms, stdout } = await argv();
      if (what !== 'skopeo' && fetched(stdout) !== total)
        throw new Error(`skiff fetched ${fetched(stdout)} bytes, not ${total}: ${stdout}`);
      seconds[what].push(ms / 1000);
      return ms;
    };
    const pulls = {
      skiff: () => timed('skiff', () => skiff(root, ['pull', `${skiffRepo}:1`], true)),
      skopeo: () =>
        timed('skopeo', () =>
          run([skopeo, 'copy', '--src-tls-verify=false', `docker://${dockerRepo}:1`, `oci:${oci}:app`]),
        ),
      cross: () => timed('cross', () => skiff(crossRoot, ['pull', `${dockerRepo}:1`])),
    };
    // each goes first, second and third in turn
    const order = (['skiff', 'skopeo', 'cross'] as const).map((_, i, all) => all[(i + round) % all.length]!);
    const ms: Record<string, number> = {};
    for (const name of order) ms[name] = await pulls[name]();
    ratios.push(ms.skopeo! / ms.skiff!);
    const rate = (m: number) => (total / 1e6 / (m / 1000)).toFixed(0);
    process.stdout.write(
      `round ${round + 1}: skiff ${(ms.skiff! / 1000).toFixed(2)} s (${rate(ms.skiff!)} MB/s), skopeo ${(ms.skopeo! / 1000).toFixed(2)} s (${rate(ms.skopeo!)} MB/s), ratio ${(ms.skopeo! / ms.skiff!).toFixed(2)}×; ` +
        `skiff from docker-registry ${(ms.cross! / 1000).toFixed(2)} s (${rate(ms.cross!)} MB/s, ${(ms.skopeo! / ms.cross!).toFixed(2)}× skopeo)\n`,
    );
    rmSync(oci, { recursive: true, force: true });
    rmSync(crossRoot, { recursive: true, force: true });
    if (lastRoot) rmSync(lastRoot, { recursive: true, force: true });
    lastRoot = root;
  }
  const s = median(seconds.skiff);
  const k = median(seconds.skopeo);
  const c = median(seconds.cross);
  const mbps = (sec: number) => (total / 1e6 / sec).toFixed(0);
  process.stdout.write(
    `median: skiff from skiff's registry ${s.toFixed(2)} s (${mbps(s)} MB/s), skopeo from docker-registry ${k.toFixed(2)} s (${mbps(k)} MB/s): ` +
      `${(k / s).toFixed(2)}× skopeo's throughput (goal ≥ 1.0×); per-round ratios ` +
      `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}, median ${median(ratios).toFixed(2)}×\n` +
      `the clients alone, both from docker-registry: skiff ${c.toFixed(2)} s (${mbps(c)} MB/s): ${(k / c).toFixed(2)}× skopeo's throughput\n`,
  );

  // the second image, sharing five base layers, into the root that holds the first
  const { stdout } = await skiff(lastRoot, ['pull', `${skiffRepo}:2`]);
  process.stdout.write(
    `second image bench/app:2 (${imageBytes(second)} bytes, sharing ${LAYERS - 1} layers): fetched ${fetched(stdout)} bytes; its new layer, config and manifest are ${newBytes} bytes: ${fetched(stdout) === newBytes ? 'only the new layers' : 'MORE THAN THE NEW LAYERS'}\n`,
  );
  if (PROFILE_DIR) process.stdout.write(`CPU profiles of the skiff pulls in ${PROFILE_DIR}\n`);
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}
