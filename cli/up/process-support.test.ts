import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import { choosePorts, findBinary, retryLostPortRace } from './process-support.js';

function listen(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server));
  });
}

describe('process support', () => {
  test('a missing binary names the apt package to install', () => {
    assert.throws(
      () => findBinary('skiff-no-such-server', 'skiff-no-such-package'),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        err.message.includes('apt-get install -y skiff-no-such-package'),
    );
    assert.match(findBinary('etcd', 'etcd-server'), /\/etcd$/);
    assert.equal(findBinary('nats-server', 'nats-server'), '/usr/sbin/nats-server');
  });

  test('ports: distinct free ones, a taken preferred one is replaced, a taken exact one is an error', async () => {
    const blocker = await listen();
    try {
      const address = blocker.address();
      assert.ok(address !== null && typeof address === 'object');
      const taken = address.port;
      const ports = await choosePorts('127.0.0.1', {
        a: {},
        b: {},
        c: { preferred: taken },
      });
      assert.equal(new Set(Object.values(ports)).size, 3);
      assert.notEqual(ports.c, taken);
      await assert.rejects(
        choosePorts('127.0.0.1', { 'etcd client port': { exact: taken } }),
        (err: unknown) =>
          err instanceof FailedPreconditionError &&
          err.message.startsWith(`choose etcd client port: 127.0.0.1:${taken} is not available`),
      );
      await assert.rejects(choosePorts('127.0.0.1', { port: { exact: 70000 } }), InvalidArgumentError);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('a start that lost its port to another process is tried again; other failures are not', async () => {
    let calls = 0;
    const result = await retryLostPortRace(async () => {
      calls++;
      if (calls < 3) throw new Error('listen tcp 127.0.0.1:4222: bind: address already in use');
      return 'started';
    });
    assert.equal(result, 'started');
    assert.equal(calls, 3);
    calls = 0;
    await assert.rejects(
      retryLostPortRace(async () => {
        calls++;
        throw new Error('invalid duration');
      }),
      /invalid duration/,
    );
    assert.equal(calls, 1);
  });
});
