/**
 * Start-to-exit latency of `/bin/true`, skiff's runtime API against `crun run` of an equivalent
 * OCI bundle, measured in the same run with rounds interleaved (so drift hits both alike).
 *
 *   skiff-image  Runtime.run(busybox image) → wait → remove: resolve the image, prepare an overlay
 *                snapshot, cgroups, namespaces, pivot_root, exec, wait, remove cgroups+snapshot+state
 *   skiff-dir    the same from a bind-mounted busybox directory (no snapshot)
 *   crun         `crun run --bundle B id` (cgroupfs, as shared/reference-bench/start-latency.sh)
 *
 * crun 1.8 refuses the hybrid cgroup layout when the v2 mount holds controllers, so (as the
 * reference script does) the benchmark re-runs itself in a private mount namespace without
 * /sys/fs/cgroup/unified; skiff runs there too, so both see the same machine.
 *
 * Usage (root): node dist/test/bench/start-latency.js [ROUNDS]     (default 30, plus 3 warm-up)
 * Needs: apt-get install -y crun busybox-static
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openImageRuntime, Runtime } from '../../node-agent/runtime/runtime.js';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import {
  makeBusyboxRootfs,
  mountsUnder,
  removeTree,
  requireRootAndBusybox,
  scratchDir,
} from '../integration/runtime-containers-fixture.js';

const ROUNDS = Number(process.argv[2] ?? 30);
const WARM = 3;

function hybridWithV2Controllers(): boolean {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  if (!/ \/sys\/fs\/cgroup\/unified .* - cgroup2 /.test(mounts)) return false;
  return readFileSync('/sys/fs/cgroup/unified/cgroup.controllers', 'utf8').trim() !== '';
}

function reexecWithoutUnified(): never {
  const self = fileURLToPath(import.meta.url);
  const args = [
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'umount /sys/fs/cgroup/unified && exec "$@"',
    'sh',
    process.execPath,
    ...process.execArgv,
    self,
    ...process.argv.slice(2),
  ];
  execFileSync('unshare', args, { stdio: 'inherit', env: { ...process.env, SKIFF_BENCH_IN_NS: '1' } });
  process.exit(0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function runCrun(bundle: string, id: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('crun', ['run', '--bundle', bundle, id], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`crun exited ${code}: ${err.trim()}`)),
    );
  });
}

async function main(): Promise<void> {
  requireRootAndBusybox();
  if (!existsSync('/usr/bin/crun')) throw new Error('the reference needs crun: apt-get install -y crun');
  if (!process.env.SKIFF_BENCH_IN_NS && hybridWithV2Controllers()) reexecWithoutUnified();

  const work = await scratchDir('skiff-bench-start-');
  try {
    const archive = join(work, 'busybox.tar');
    await writeFile(archive, archiveTar(ociLayout([busyboxImage('busybox:1', 'none')])));
    const root = join(work, 'root');
    const { runtime, images } = await openImageRuntime(root, { snapshotter: 'overlay' });
    await images.import(archive);
    await images.unpack(await images.resolve('busybox:1'));
    const dirRuntime = await Runtime.open({ root });

    const bundle = join(work, 'bundle');
    const rootfs = await makeBusyboxRootfs(join(bundle, 'rootfs'));
    execFileSync('crun', ['spec'], { cwd: bundle });
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['/bin/true'];
    spec.root.readonly = false;
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));

    const tools: Record<string, (round: string) => Promise<void>> = {
      'skiff-image': async () => {
        const c = await runtime.run({ image: 'busybox:1', command: ['/bin/true'] });
        const exit = await runtime.containers.wait(c.id);
        if (exit.exitCode !== 0) throw new Error(`skiff-image: exit ${exit.exitCode}`);
        await runtime.containers.remove(c.id);
      },
      'skiff-dir': async () => {
        const c = await dirRuntime.run({ rootfsDir: rootfs, command: ['/bin/true'] });
        const exit = await dirRuntime.containers.wait(c.id);
        if (exit.exitCode !== 0) throw new Error(`skiff-dir: exit ${exit.exitCode}`);
        await dirRuntime.containers.remove(c.id);
      },
      crun: (round) => runCrun(bundle, `skiff-bench-${process.pid}-${round}`),
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(tools).map((t) => [t, []]));
    for (let i = -WARM; i < ROUNDS; i++) {
      for (const [name, fn] of Object.entries(tools)) {
        const t0 = performance.now();
        await fn(String(i + WARM));
        const ms = performance.now() - t0;
        if (i >= 0) times[name]!.push(ms);
      }
    }
    const crunMedian = median(times.crun!);
    console.log(`# start-to-exit of /bin/true, ${ROUNDS} interleaved rounds (+${WARM} warm-up), ms`);
    console.log(
      `# ${readFileSync('/proc/loadavg', 'utf8').trim()} | ${execFileSync('crun', ['--version']).toString().split('\n')[0]}`,
    );
    console.log(
      '| tool | median | min | max | ratio vs crun (medians) | paired ratio (median of per-round) |',
    );
    console.log('|---|---|---|---|---|---|');
    for (const [name, xs] of Object.entries(times)) {
      const paired = median(xs.map((x, i) => x / times.crun![i]!));
      console.log(
        `| ${name} | ${median(xs).toFixed(2)} | ${Math.min(...xs).toFixed(2)} | ${Math.max(...xs).toFixed(2)} | ${(median(xs) / crunMedian).toFixed(2)}x | ${paired.toFixed(2)}x |`,
      );
    }
    if (mountsUnder(work).length > 0) throw new Error(`mounts left behind: ${mountsUnder(work).join(', ')}`);
  } finally {
    await removeTree(work);
  }
}

await main();
