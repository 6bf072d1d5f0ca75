/**
 * The runtime's port-forward: a TCP connection made by the helper inside a container's network
 * namespace (its loopback, which nothing outside reaches), relayed over the helper's stdio, each
 * direction ending on its own; a port nothing listens on is refused with a clear error.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LinuxContainerRuntime } from '../../node-agent/runtime/containers/container-runtime.js';
import type { PortForwardHandle } from '../../node-agent/runtime/sys/helper.js';
import { FailedPreconditionError } from '../../proto/errors.js';
import {
  makeBusyboxRootfs,
  onRootfs,
  requireRootAndBusybox,
  withScratchRuntime,
} from './runtime-containers-fixture.js';

let rt: LinuxContainerRuntime;
let rootfs: string;

withScratchRuntime('skiff-port-forward-', async (work) => {
  requireRootAndBusybox();
  rootfs = await makeBusyboxRootfs(join(work, 'rootfs'));
  rt = await LinuxContainerRuntime.open({ root: join(work, 'root') });
  return rt;
});

/** What the connection sends until it ends. */
async function readAll(handle: PortForwardHandle): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of handle.output) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Waits until something listens on the port inside the container (nc takes a moment to start). */
async function forwardWhenListening(id: string, port: number): Promise<PortForwardHandle> {
  for (let i = 0; ; i++) {
    try {
      return await rt.portForward(id, port);
    } catch (err) {
      if (i > 50 || !(err instanceof FailedPreconditionError)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe('port-forward into a container’s network namespace', () => {
  test('bytes both ways to a server on the container’s loopback; the end of input ends the connection', async () => {
    // its own network namespace (network none: only lo), a persistent echo server
    const c = await rt.create(onRootfs(rootfs, ['nc', '-ll', '-p', '7000', '-e', 'cat']));
    try {
      await rt.start(c.id);
      const first = await forwardWhenListening(c.id, 7000);
      const echoed = readAll(first);
      const payload = Buffer.alloc(3 * 1024 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) % 251;
      first.input.end(payload);
      assert.ok((await echoed).equals(payload), 'the echo came back whole');
      assert.equal(await first.exited, 0);
      // a second connection to the same server
      const second = await rt.portForward(c.id, 7000);
      const again = readAll(second);
      second.input.end('again\n');
      assert.equal((await again).toString(), 'again\n');
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('a port nothing listens on is refused, naming the port; a stopped container is refused', async () => {
    const c = await rt.create(onRootfs(rootfs, ['sleep', '1000']));
    try {
      await rt.start(c.id);
      await assert.rejects(
        rt.portForward(c.id, 7001),
        (err: unknown) =>
          err instanceof FailedPreconditionError &&
          /port-forward to .*:7001: connect 7001: connect to port 7001 in the pod: Connection refused/.test(
            err.message,
          ),
      );
      await rt.stop(c.id, 0);
      await assert.rejects(rt.portForward(c.id, 7000), /it is not running/);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });
});
