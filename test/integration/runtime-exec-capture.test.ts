/**
 * execCapture, the runtime's exec to the end through the helper's exec server (what probes and
 * hooks use): exit codes and output (stdout and stderr as they came, at most 10 KiB), the
 * container's user, environment and capabilities, a timeout that kills the process in the
 * container (not only the helper), many at once, a command the image lacks, and a container that
 * is not running.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LinuxContainerRuntime } from '../../node-agent/runtime/containers/container-runtime.js';
import { FailedPreconditionError, NotFoundError } from '../../proto/errors.js';
import {
  makeBusyboxRootfs,
  onRootfs,
  requireRootAndBusybox,
  withScratchRuntime,
} from './runtime-containers-fixture.js';

let rt: LinuxContainerRuntime;
let id: string;

withScratchRuntime('skiff-exec-capture-', async (work) => {
  requireRootAndBusybox();
  const rootfs = await makeBusyboxRootfs(join(work, 'rootfs'));
  rt = await LinuxContainerRuntime.open({ root: join(work, 'root') });
  const c = await rt.create(
    onRootfs(rootfs, ['sleep', '1000'], { env: ['GREETING=hi'], user: '1000:1000', capDrop: ['ALL'] }),
  );
  await rt.start(c.id);
  id = c.id;
  return rt;
});

const sh = (script: string) => ['sh', '-c', script];

describe('execCapture', () => {
  test('the exit code and the output, stdout and stderr as they came', async () => {
    const r = await rt.execCapture(id, {
      argv: sh('echo one; echo two >&2; echo three; exit 3'),
      timeoutMs: 10_000,
    });
    assert.deepEqual(
      { ...r, output: r.output.toString() },
      { exitCode: 3, timedOut: false, output: 'one\ntwo\nthree\n' },
    );
  });

  test("as the container's user, with its environment and capabilities", async () => {
    const r = await rt.execCapture(id, {
      argv: sh('id -u; echo $GREETING; grep CapEff /proc/self/status'),
      timeoutMs: 10_000,
    });
    assert.equal(r.output.toString(), '1000\nhi\nCapEff:\t0000000000000000\n');
  });

  test('at most 10 KiB of output is kept, and a long writer is not waited on forever', async () => {
    const r = await rt.execCapture(id, { argv: sh('yes x | head -c 100000'), timeoutMs: 10_000 });
    assert.equal(r.exitCode, 0);
    assert.equal(r.output.length, 10 * 1024);
  });

  test('a timeout kills the process in the container: 137, timedOut, and it is gone', async () => {
    const started = Date.now();
    const r = await rt.execCapture(id, { argv: sh('echo started; exec sleep 60'), timeoutMs: 500 });
    assert.equal(r.exitCode, 137);
    assert.equal(r.timedOut, true);
    assert.equal(r.output.toString(), 'started\n');
    assert.ok(Date.now() - started < 10_000);
    const ps = await rt.execCapture(id, { argv: sh('ps -o comm | grep -c "^sleep$"'), timeoutMs: 10_000 });
    assert.equal(ps.output.toString().trim(), '1', 'only the container’s own sleep is left');
  });

  test('many at once, each its own answer', async () => {
    const runs = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        rt.execCapture(id, { argv: sh(`echo ${i}; exit ${i}`), timeoutMs: 30_000 }),
      ),
    );
    runs.forEach((r, i) => {
      assert.equal(r.exitCode, i);
      assert.equal(r.output.toString(), `${i}\n`);
    });
  });

  test('a command the image lacks is a NotFoundError; a container that is not running a FailedPreconditionError', async () => {
    await assert.rejects(
      rt.execCapture(id, { argv: ['no-such-command'], timeoutMs: 5000 }),
      (e: unknown) =>
        e instanceof NotFoundError && /exec no-such-command: No such file or directory/.test(e.message),
    );
    const stopped = await rt.create(onRootfs((await rt.inspect(id)).config.rootfs.source, ['true']));
    try {
      await assert.rejects(
        rt.execCapture(stopped.id, { argv: ['true'] }),
        (e: unknown) => e instanceof FailedPreconditionError && /it is not running/.test(e.message),
      );
    } finally {
      await rt.remove(stopped.id, { force: true });
    }
  });
});
