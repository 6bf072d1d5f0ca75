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
 * Fairness: crun gets the same namespaces but cgroup (its default spec: pid, net, ipc, uts, mnt),
 * creates and joins a cgroup in every v1 hierarchy with docker-like device rules and no other
 * limits (skiff: five hierarchies, the same device rules, no limits), waits for the exit and
 * deletes its state; its stdio goes to /dev/null where skiff's shim logs. The order of the tools
 * rotates every round, so none always runs right after another's cgroup migration (on v1 the
 * first migration after a quiet spell waits for an RCU grace period, see
 * shared/reference-bench/start-latency.sh). skiff-dir is the like-for-like figure; skiff-image adds
 * what the issue counts too: image resolution and an overlay snapshot prepared and removed.
 *
 * With --warm, skiff runs with `warmShims: 2`, as a long-lived agent would: the runtime keeps two
 * shims parked with their container process already in (empty) cgroups, paying the v1
 * migration's grace period before the start instead of during it. Warm and cold are separate
 * runs, so parking (which moves processes between cgroups too) never runs beside a cold row.
 *
 * Also printed: the medians of skiff's three API calls (run = resolve + prepare + create + start,
 * wait = until the exit is recorded, remove = cgroups + snapshot + state).
 *
 * Usage (root): node dist/test/bench/start-latency.js [ROUNDS] [--warm]   (default 30, plus 3 warm-up)
 * Needs: apt-get install -y crun busybox-static
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openImageRuntime, Runtime, type RunOptions } from '../../node-agent/runtime/runtime.js';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import {
  makeBusyboxRootfs,
  mountsUnder,
  removeTree,
  requireRootAndBusybox,
  scratchDir,
} from '../integration/runtime-containers-fixture.js';

const ROUNDS = Number(process.argv[2] ?? 30);
const WARM_SHIMS = process.argv.includes('--warm');
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
    const warmShims = WARM_SHIMS ? 2 : 0;
    const imageRuntime = WARM_SHIMS
      ? (await openImageRuntime(root, { snapshotter: 'overlay', warmShims })).runtime
      : runtime;
    const dirRuntime = await Runtime.open({ root, warmShims });
    const suffix = WARM_SHIMS ? '-warm' : '';

    const bundle = join(work, 'bundle');
    const rootfs = await makeBusyboxRootfs(join(bundle, 'rootfs'));
    execFileSync('crun', ['spec'], { cwd: bundle });
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['/bin/true'];
    spec.root.readonly = false;
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));

    const phases: Record<string, Record<'run' | 'wait' | 'remove', number[]>> = {};
    const skiff = async (name: string, rt: Runtime, opts: RunOptions, measured: boolean) => {
      const t0 = performance.now();
      const c = await rt.run({ ...opts, command: ['/bin/true'] });
      const t1 = performance.now();
      const exit = await rt.containers.wait(c.id);
      const t2 = performance.now();
      if (exit.exitCode !== 0) throw new Error(`${name}: exit ${exit.exitCode}`);
      await rt.containers.remove(c.id);
      if (!measured) return;
      const p = (phases[name] ??= { run: [], wait: [], remove: [] });
      p.run.push(t1 - t0);
      p.wait.push(t2 - t1);
      p.remove.push(performance.now() - t2);
    };
    const tools: Record<string, (round: string, measured: boolean) => Promise<void>> = {
      [`skiff-image${suffix}`]: (_, measured) =>
        skiff(`skiff-image${suffix}`, imageRuntime, { image: 'busybox:1' }, measured),
      [`skiff-dir${suffix}`]: (_, measured) =>
        skiff(`skiff-dir${suffix}`, dirRuntime, { rootfsDir: rootfs }, measured),
      crun: (round) => runCrun(bundle, `skiff-bench-${process.pid}-${round}`),
    };
    const names = Object.keys(tools);
    const times: Record<string, number[]> = Object.fromEntries(names.map((t) => [t, []]));
    for (let i = -WARM; i < ROUNDS; i++) {
      const shift = (i + WARM) % names.length;
      for (const name of [...names.slice(shift), ...names.slice(0, shift)]) {
        const t0 = performance.now();
        await tools[name]!(String(i + WARM), i >= 0);
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
    console.log('\n| skiff phase medians, ms | run | wait | remove |\n|---|---|---|---|');
    for (const [name, p] of Object.entries(phases)) {
      console.log(
        `| ${name} | ${median(p.run).toFixed(2)} | ${median(p.wait).toFixed(2)} | ${median(p.remove).toFixed(2)} |`,
      );
    }
    if (mountsUnder(work).length > 0) throw new Error(`mounts left behind: ${mountsUnder(work).join(', ')}`);
  } finally {
    await removeTree(work);
  }
}

await main();
