/**
 * Push throughput over loopback: `skiff image push` of a ≥ 200 MB, 6-layer image from a runtime
 * root into skiff's registry (a real `skiff controlplane`: etcd, NATS, its admin token), against
 * `skopeo copy` of the same image from an `oci:` directory into Debian's docker-registry
 * (Distribution 2.8), in the same run, rounds alternating which goes first. Both are whole
 * processes (start-up included) and both send every byte: each round pushes into an empty
 * registry (skiff's registry directory emptied — it keeps nothing in memory —, a new
 * docker-registry on a new port, so skopeo's blob-info cache knows no place to mount from).
 * Prints seconds and MB/s of each, per round and as medians, and the ratio (goal ≥ 1.0×). To tell
 * the client from the server, each round also times `skiff image push` into the same
 * docker-registry as skopeo (the clients alone compared).
 * Then a second image sharing the first one's five base layers is pushed to the same repository
 * through a counting TCP relay: only its new layer, config and manifest may go over the wire.
 *
 *   node dist/test/bench/registry-push.js [--rounds 5] [--mb 210] [--layers 6] [--cpu-prof DIR]
 *
 * --cpu-prof DIR: the skiff pushes (and the control plane that receives them) run with node
 * --cpu-prof, profiles in DIR.
 * Needs docker-registry and skopeo (apt-get install -y docker-registry skopeo); run as root.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ociLayout, writeArchiveDir } from '../fixtures/images.js';
import { startCountingProxy } from '../harness/counting-proxy.js';
import { skopeoBinary, startDockerRegistry } from '../harness/docker-registry.js';
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

const work = mkdtempSync(join(tmpdir(), 'skiff-bench-registry-push-'));
const cleanups: Array<() => Promise<void> | void> = [() => rmSync(work, { recursive: true, force: true })];
try {
  const { first, second, total, secondOwnBytes: newBytes } = benchImages(TOTAL_MB, LAYERS);
  const layouts = { first: join(work, 'layout-1'), second: join(work, 'layout-2') };
  await writeArchiveDir(layouts.first, ociLayout([first]));
  await writeArchiveDir(layouts.second, ociLayout([second]));

  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  const cluster = await startBenchCluster(
    join(work, 'skiff'),
    cleanups,
    PROFILE_DIR
      ? {
          nodeArgs: [
            '--cpu-prof',
            '--cpu-prof-dir',
            PROFILE_DIR,
            '--cpu-prof-name',
            'controlplane.cpuprofile',
          ],
        }
      : {},
  );
  const skiffHost = cluster.httpAddress;
  const registryDir = join(work, 'skiff', 'controlplane', 'registry');
  const proxy = await startCountingProxy(skiffHost);
  cleanups.push(() => proxy.close());
  const configPath = join(work, 'skiff-config.yaml');
  writeFileSync(
    configPath,
    `registries:\n  ${JSON.stringify(skiffHost)}:\n    token: ${cluster.token}\n  ${JSON.stringify(proxy.host)}:\n    token: ${cluster.token}\n`,
    { mode: 0o600 },
  );
  const env = { ...process.env, SKIFF_CONFIG: configPath, SKIFF_LOG_LEVEL: 'warn' };
  const root = join(work, 'root');
  const skiff = (args: string[], profile = false) =>
    runSkiffImage(root, args, env, profile ? PROFILE_DIR : undefined);
  // the images in the runtime root skiff pushes from (not timed)
  for (const layout of Object.values(layouts)) await skiff(['load', '-i', layout]);
  await skiff(['tag', 'bench/app:1', `${skiffHost}/bench/app:1`]);
  await skiff(['tag', 'bench/app:2', `${proxy.host}/bench/app:2`]);
  process.stdout.write(
    `image bench/app:1: ${first.layers.length} layers, ${total} bytes (${(total / 1e6).toFixed(1)} MB) in blobs\n`,
  );

  /** skiff's registry as new: every blob and repository gone (nothing of it is held in memory). */
  const emptySkiffRegistry = () => {
    for (const sub of [join('content', 'blobs', 'sha256'), 'repositories']) {
      const dir = join(registryDir, sub);
      for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
    }
  };
  const skopeo = skopeoBinary();
  const skiffSeconds: number[] = [];
  const skopeoSeconds: number[] = [];
  const crossSeconds: number[] = [];
  const ratios: number[] = [];
  const pushed = (stdout: string) => Number(/(\d+) bytes over the network/.exec(stdout)?.[1] ?? NaN);
  for (let round = 0; round < ROUNDS; round++) {
    emptySkiffRegistry();
    const docker = await startDockerRegistry();
    try {
      const doSkiff = async () => {
        spawnSync('sync');
        const { ms, stdout } = await skiff(['push', `${skiffHost}/bench/app:1`], true);
        if (pushed(stdout) !== total)
          throw new Error(`skiff pushed ${pushed(stdout)} bytes, not ${total}: ${stdout}`);
        skiffSeconds.push(ms / 1000);
        return ms;
      };
      // another repository than skopeo's: the registry must not have the blobs there yet
      await skiff(['tag', 'bench/app:1', `${docker.host}/bench/cross:1`]);
      const doCross = async () => {
        spawnSync('sync');
        const { ms, stdout } = await skiff(['push', `${docker.host}/bench/cross:1`]);
        if (pushed(stdout) !== total)
          throw new Error(`skiff pushed ${pushed(stdout)} bytes, not ${total}: ${stdout}`);
        crossSeconds.push(ms / 1000);
        return ms;
      };
      const doSkopeo = async () => {
        spawnSync('sync');
        const { ms } = await run([
          skopeo,
          'copy',
          '--dest-tls-verify=false',
          `oci:${layouts.first}:1`,
          `docker://${docker.host}/bench/app:1`,
        ]);
        skopeoSeconds.push(ms / 1000);
        return ms;
      };
      let skiffMs: number;
      let skopeoMs: number;
      let crossMs: number;
      if (round % 2 === 0) {
        skiffMs = await doSkiff();
        skopeoMs = await doSkopeo();
        crossMs = await doCross();
      } else {
        crossMs = await doCross();
        skopeoMs = await doSkopeo();
        skiffMs = await doSkiff();
      }
      ratios.push(skopeoMs / skiffMs);
      const rate = (ms: number) => (total / 1e6 / (ms / 1000)).toFixed(0);
      process.stdout.write(
        `round ${round + 1}: skiff ${(skiffMs / 1000).toFixed(2)} s (${rate(skiffMs)} MB/s), skopeo ${(skopeoMs / 1000).toFixed(2)} s (${rate(skopeoMs)} MB/s), ratio ${(skopeoMs / skiffMs).toFixed(2)}×; ` +
          `skiff into docker-registry ${(crossMs / 1000).toFixed(2)} s (${rate(crossMs)} MB/s, ${(skopeoMs / crossMs).toFixed(2)}× skopeo)\n`,
      );
    } finally {
      await docker.stop();
    }
  }
  const s = median(skiffSeconds);
  const k = median(skopeoSeconds);
  const mbps = (seconds: number) => (total / 1e6 / seconds).toFixed(0);
  process.stdout.write(
    `median: skiff ${s.toFixed(2)} s (${mbps(s)} MB/s), skopeo ${k.toFixed(2)} s (${mbps(k)} MB/s): ` +
      `${(k / s).toFixed(2)}× skopeo's throughput (goal ≥ 1.0×); per-round ratios ` +
      `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}, median ${median(ratios).toFixed(2)}×\n` +
      `the clients alone, both into docker-registry: skiff ${median(crossSeconds).toFixed(2)} s (${mbps(median(crossSeconds))} MB/s): ` +
      `${(k / median(crossSeconds)).toFixed(2)}× skopeo's throughput\n`,
  );

  // the second image into the repository that holds the first, through the counting relay
  proxy.reset();
  const { stdout } = await skiff(['push', `${proxy.host}/bench/app:2`]);
  const reported = Number(/(\d+) bytes over the network/.exec(stdout)?.[1] ?? NaN);
  process.stdout.write(
    `a second image sharing its base (bench/app:2, ${imageBytes(second)} bytes, ${LAYERS - 1} layers shared): ` +
      `${reported} bytes sent (${proxy.sent} on the wire, HTTP included); its new layer, config and manifest are ` +
      `${newBytes} bytes: ${reported === newBytes ? 'only the new layers go over the wire' : 'MORE THAN THE NEW LAYERS'}\n`,
  );
  if (PROFILE_DIR) process.stdout.write(`CPU profiles of the skiff pushes in ${PROFILE_DIR}\n`);
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}
