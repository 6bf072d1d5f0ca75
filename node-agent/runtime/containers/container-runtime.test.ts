/**
 * Starting through the helper's launcher: concurrent starts get their own answers, and a
 * launcher that died is replaced on the next start. Real containers (root, busybox-static).
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  makeBusyboxRootfs,
  mountsUnder,
  removeTree,
  requireRootAndBusybox,
  scratchDir,
} from '../../../test/integration/runtime-containers-fixture.js';
import { LinuxContainerRuntime } from './container-runtime.js';

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

/** Pids of this process's children running `skiff-helper launcher`. */
async function launcherPids(): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.endsWith('skiff-helper\0launcher\0')) out.push(Number(name));
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
