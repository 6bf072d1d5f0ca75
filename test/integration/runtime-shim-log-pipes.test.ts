/**
 * A container cannot keep its own log pipes open from elsewhere: it passes its stdout over an
 * abstract unix socket to a container sharing its network namespace and exits; the shim must still
 * record the exit within its drain deadline, close the pipe (the holder's next write fails) and let
 * rm work.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  LinuxContainerRuntime,
  type CreateContainerOptions,
} from '../../node-agent/runtime/containers/container-runtime.js';
import { makeHostileRootfs, requireHostileTools } from './hostile-probe.js';
import { logText, onRootfs, withScratchRuntime } from './runtime-containers-fixture.js';

let rootfs: string;
let rt: LinuxContainerRuntime;

withScratchRuntime('skiff-log-pipes-', async (work) => {
  requireHostileTools();
  rootfs = await makeHostileRootfs(join(work, 'rootfs'), work);
  rt = await LinuxContainerRuntime.open({ root: join(work, 'root') });
  return rt;
});

function opts(argv: string[], extra: Partial<CreateContainerOptions> = {}): CreateContainerOptions {
  return onRootfs(rootfs, argv, extra);
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
      const giverLog = await logText(rt, giver.id);
      assert.match(giverLog, /A: passed my stdout away/);
      // the holder's next write fails: the shim closed the pipe
      const holderExit = await rt.wait(holder.id, { timeoutMs: 10_000 });
      assert.equal(holderExit.exitCode, 0);
      assert.match(await logText(rt, holder.id), /B: write: Broken pipe/);
      assert.equal(await logText(rt, giver.id), giverLog, 'nothing reaches the log after the exit');
      const removing = Date.now();
      await rt.remove(giver.id, { force: true });
      assert.ok(Date.now() - removing < 2000, `rm took ${Date.now() - removing} ms`);
    } finally {
      await rt.remove(giver.id, { force: true }).catch(() => {});
      await rt.remove(holder.id, { force: true });
    }
  });
});
