/**
 * Starting through the helper's launcher: concurrent starts get their own answers, and a
 * launcher that died is replaced on the next start. Real containers (root, busybox-static).
 */
import assert from 'node:assert/strict';
import { readdir, readFile, readlink, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  makeBusyboxRootfs,
  mountsUnder,
  removeTree,
  requireRootAndBusybox,
  scratchDir,
} from './runtime-containers-fixture.js';
import { LinuxContainerRuntime } from '../../node-agent/runtime/containers/container-runtime.js';
import { Cgroups } from '../../node-agent/runtime/sys/cgroups.js';

let work: string;
let rootfs: string;
let rt: LinuxContainerRuntime;

before(async () => {
  requireRootAndBusybox();
  work = await scratchDir('skiff-launch-test-');
  rootfs = await makeBusyboxRootfs(join(work, 'rootfs'));
  rt = await LinuxContainerRuntime.open({ root: join(work, 'root') });
});

after(async () => {
  if (rt) {
    for (const c of await rt.list({ all: true })) await rt.remove(c.id, { force: true }).catch(() => {});
    assert.deepEqual(mountsUnder(work), [], 'nothing stays mounted');
  }
  if (work) await removeTree(work);
});

async function runToExit(script: string): Promise<number> {
  const c = await rt.create({
    rootfs: { type: 'bind', source: rootfs, options: ['rbind', 'rw'] },
    argv: ['sh', '-c', script],
  });
  try {
    await rt.start(c.id);
    return (await rt.wait(c.id, { timeoutMs: 30_000 })).exitCode;
  } finally {
    await rt.remove(c.id, { force: true });
  }
}

/** Pids of this process's children running `skiff-helper launcher` (cold: no arguments). */
async function launcherPids(kind: 'cold' | 'warm' = 'cold'): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    const cold = cmdline.endsWith('skiff-helper\0launcher\0');
    if (cmdline.includes('skiff-helper\0launcher\0') && cold === (kind === 'cold')) out.push(Number(name));
  }
  return out;
}

test('concurrent starts each get their own container and exit code', async () => {
  const codes = [3, 5, 7, 11, 13, 17];
  // a little sleep in some, so the shims report in another order than they were asked
  const exits = await Promise.all(codes.map((code, i) => runToExit(`sleep 0.0${i % 3}; exit ${code}`)));
  assert.deepEqual(exits, codes);
  assert.equal((await launcherPids()).length, 1, 'one launcher serves every start');
});

test('a launcher that died is replaced on the next start', async () => {
  assert.equal(await runToExit('exit 0'), 0);
  const [first] = await launcherPids();
  assert.ok(first, 'the launcher runs as a child of this process');
  process.kill(first, 'SIGKILL');
  // gone from /proc once Node has reaped it, which is when it learns the launcher died
  const reaped = () =>
    readFile(`/proc/${first}/stat`).then(
      () => false,
      () => true,
    );
  for (let i = 0; i < 400 && !(await reaped()); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(await reaped());
  assert.equal(await runToExit('exit 4'), 4);
  const now = await launcherPids();
  assert.equal(now.length, 1);
  assert.notEqual(now[0], first);
});

/** The warm cgroups parked under the runtime's cgroup parents. */
async function warmDirs(runtime: LinuxContainerRuntime): Promise<string[]> {
  const out: string[] = [];
  for (const parent of runtime.cgroups.parentDirs()) {
    for (const n of await readdir(parent).catch(() => [] as string[]))
      if (n.startsWith('warm-')) out.push(join(parent, n));
  }
  return out;
}

test('warm shims: the process was parked before the start, limits and device rules still hold, and they clean up', async () => {
  // a cgroup parent of its own: agents of other test files park warm shims under skiff/ too
  const warm = await LinuxContainerRuntime.open({
    root: join(work, 'root'),
    warmShims: 2,
    cgroups: await Cgroups.detect(`skiff-test-warm-${process.pid}`),
  });
  after(async () => {
    for (const parent of warm.cgroups.parentDirs()) await rmdir(parent).catch(() => undefined);
  });
  assert.notEqual(warm.cgroups.layout.kind, 'v2', 'warm shims are for cgroup v1 and hybrid, this machine');
  const first = await warm.create({
    rootfs: { type: 'bind', source: rootfs, options: ['rbind', 'rw'] },
    argv: ['true'],
  });
  await warm.start(first.id);
  await warm.wait(first.id, { timeoutMs: 30_000 });
  await warm.remove(first.id);
  // the first start was cold and asked the launcher to park two
  for (let i = 0; i < 400 && (await warmDirs(warm)).length < 2 * warm.cgroups.parentDirs().length; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal((await warmDirs(warm)).length, 2 * warm.cgroups.parentDirs().length);
  // start times count in 10 ms ticks: ask two ticks after the parking, so "before" is measurable
  await new Promise((r) => setTimeout(r, 20));
  const c = await warm.create({
    rootfs: { type: 'bind', source: rootfs, options: ['rbind', 'rw'] },
    argv: [
      'sh',
      '-c',
      'mknod /tmp/fuse c 10 229 && (exec 3<>/tmp/fuse) 2>/dev/null && echo usable || echo denied; sleep 30',
    ],
    pidsLimit: 7,
  });
  const askedAt = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]) * 100;
  const started = await warm.start(c.id);
  try {
    const ticks = Number(started.state.pidStartTime);
    assert.ok(ticks < askedAt, `the container process was forked before the start (${ticks} < ${askedAt})`);
    const cgroup = await readFile(`/proc/${started.state.pid}/cgroup`, 'utf8');
    assert.match(cgroup, new RegExp(`:pids:/${warm.cgroups.parent}/${c.id}\n`));
    assert.match(cgroup, new RegExp(`:devices:/${warm.cgroups.parent}/${c.id}\n`));
    const pidsDir = warm.cgroups.dirs(c.id).find((d) => d.includes('/pids/'))!;
    assert.equal((await readFile(join(pidsDir, 'pids.max'), 'utf8')).trim(), '7');
    let text = '';
    for (let i = 0; i < 200 && !text; i++) {
      for await (const e of warm.logs(c.id)) text += e.text;
      if (!text) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(text, 'denied', 'device rules apply to a warm-started container');
  } finally {
    await warm.remove(c.id, { force: true });
  }
  assert.equal(await warm.cgroups.exists(c.id), false);
  // the launcher going away takes its parked shims, their processes and their cgroups with it
  const [launcher] = await launcherPids('warm');
  assert.ok(launcher);
  process.kill(launcher, 'SIGKILL');
  for (let i = 0; i < 400 && (await warmDirs(warm)).length > 0; i++)
    await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(await warmDirs(warm), []);
});

/** Every process on the host that is in, or holds a descriptor of, the mount namespace `ns`. */
async function holdersOf(ns: string): Promise<number[]> {
  const out: number[] = [];
  const linkOf = (path: string) => readlink(path).catch(() => '');
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const links = [await linkOf(`/proc/${name}/ns/mnt`)];
    for (const fd of await readdir(`/proc/${name}/fd`).catch(() => [] as string[]))
      links.push(await linkOf(`/proc/${name}/fd/${fd}`));
    if (links.includes(ns)) out.push(Number(name));
  }
  return out;
}

test('the shim holds the container mount namespace until the exit is recorded; after rm nothing holds it', async () => {
  const c = await rt.create({
    rootfs: { type: 'bind', source: rootfs, options: ['rbind', 'rw'] },
    argv: ['sleep', '30'],
  });
  const started = await rt.start(c.id);
  const ns = await readlink(`/proc/${started.state.pid}/ns/mnt`);
  assert.notEqual(ns, await readlink('/proc/self/ns/mnt'));
  const holders = await holdersOf(ns);
  assert.ok(
    holders.includes(started.state.shimPid!),
    `the shim holds ${ns} (holders: ${holders.join(', ')})`,
  );
  await rt.kill(c.id, 'SIGKILL');
  assert.equal((await rt.wait(c.id, { timeoutMs: 30_000 })).exitCode, 137);
  await rt.remove(c.id);
  assert.deepEqual(await holdersOf(ns), [], 'no process keeps the container mounts after rm');
});
