/**
 * A container cannot keep its own log pipes open from elsewhere (review finding 6): it passes its
 * stdout over an abstract unix socket to a container sharing its network namespace and exits; the
 * shim must still record the exit within its drain deadline, close the pipe (the holder's next
 * write fails) and let rm work.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  LinuxContainerRuntime,
  type CreateContainerOptions,
} from '../../node-agent/runtime/containers/container-runtime.js';
import { makeHostileRootfs, requireHostileTools } from './hostile-probe.js';
import { mountsUnder, removeTree, scratchDir } from './runtime-containers-fixture.js';

let work: string;
let rootfs: string;
let root: string;
let rt: LinuxContainerRuntime;

before(async () => {
  requireHostileTools();
  work = await scratchDir('skiff-log-pipes-');
  rootfs = await makeHostileRootfs(join(work, 'rootfs'), work);
  root = join(work, 'root');
  rt = await LinuxContainerRuntime.open({ root });
});

after(async () => {
  if (rt) {
    for (const c of await rt.list({ all: true })) await rt.remove(c.id, { force: true }).catch(() => {});
    assert.deepEqual(mountsUnder(work), [], 'nothing stays mounted');
  }
  if (work) await removeTree(work);
});

function opts(argv: string[], extra: Partial<CreateContainerOptions> = {}): CreateContainerOptions {
  return { rootfs: { type: 'bind', source: rootfs, options: ['rbind', 'rw'] }, argv, ...extra };
}

async function logText(id: string): Promise<string> {
  let text = '';
  for await (const e of rt.logs(id)) text += `${e.stream} ${e.text}\n`;
  return text;
}

describe('a container cannot keep its log pipes open from elsewhere', () => {
  test('stdout passed to another container: the exit is recorded, the pipe closed, rm works', async () => {
    const holder = await rt.create(opts(['/probe', 'recv'], { name: 'pipe-holder' }));
    const giver = await rt.create(
      opts(['/probe', 'send'], { name: 'pipe-giver', network: { mode: 'container', container: holder.id } }),
    );
    try {
      await rt.start(holder.id);
      const started = Date.now();
      await rt.start(giver.id);
      const exit = await rt.wait(giver.id, { timeoutMs: 10_000 });
      const recordedAfter = Date.now() - started;
      assert.equal(exit.exitCode, 0);
      // ~50 ms to connect, then the 1 s drain while the holder keeps the pipe
      assert.ok(recordedAfter < 2500, `exit recorded ${recordedAfter} ms after the start`);
      const [info] = (await rt.list({ all: true })).filter((c) => c.id === giver.id);
      assert.equal(info!.state.status, 'exited');
      const giverLog = await logText(giver.id);
      assert.match(giverLog, /A: passed my stdout away/);
      // the holder's next write fails: the shim closed the pipe
      const holderExit = await rt.wait(holder.id, { timeoutMs: 10_000 });
      assert.equal(holderExit.exitCode, 0);
      assert.match(await logText(holder.id), /B: write: Broken pipe/);
      assert.equal(await logText(giver.id), giverLog, 'nothing reaches the log after the exit');
      const removing = Date.now();
      await rt.remove(giver.id, { force: true });
      assert.ok(Date.now() - removing < 2000, `rm took ${Date.now() - removing} ms`);
    } finally {
      await rt.remove(giver.id, { force: true }).catch(() => {});
      await rt.remove(holder.id, { force: true });
    }
  });
});
