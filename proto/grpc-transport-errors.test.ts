/**
 * Transport failures read in the caller's terms, never grpc-js's internals: against a loopback
 * listener that accepts and never answers (a deadline), a closed port, and synthetic errors.
 * (The oversized token is also tested against a real control plane in test/e2e/cli-kubectl.test.ts.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { Metadata, Server as GrpcServer, ServerCredentials, status } from '@grpc/grpc-js';
import { connectApi } from './client.js';
import { DeadlineExceededError, InvalidArgumentError, UnavailableError } from './errors.js';
import { fromGrpcError, formatTimeout } from './grpc-status.js';

function transportError(code: status, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: new Metadata() });
}

describe('transport errors', () => {
  let blackhole: Server;
  const sockets: Socket[] = [];
  let address = '';
  before(async () => {
    blackhole = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(blackhole.address() as { port: number }).port}`;
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => blackhole.close(resolve));
  });

  test('a server that accepts and never answers: "no answer … within", not the LB-pick trace', async () => {
    const api = connectApi({ server: address, token: 't', timeoutMs: 300 });
    try {
      await assert.rejects(api.list('Namespace'), (err: unknown) => {
        assert.ok(err instanceof DeadlineExceededError, String(err));
        assert.equal(err.message, `no answer from the control plane at ${address} within 300 ms`);
        return true;
      });
    } finally {
      api.close();
    }
  });

  test('a closed port: "cannot reach … connection refused"', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closed = `127.0.0.1:${(probe.address() as { port: number }).port}`;
    await new Promise((resolve) => probe.close(resolve));
    const api = connectApi({ server: closed, token: 't', timeoutMs: 5000 });
    try {
      await assert.rejects(api.version(), (err: unknown) => {
        assert.ok(err instanceof UnavailableError);
        assert.equal(err.endpoint, closed);
        assert.match(
          err.message,
          new RegExp(`^cannot reach the control plane at ${closed}: connection refused`),
        );
        assert.doesNotMatch(err.message, /Resolution note|Last error|ECONNREFUSED/);
        return true;
      });
    } finally {
      api.close();
    }
  });

  test('a gRPC server that refuses a 300 KB token for its size: "headers are larger than it accepts", naming the token', async () => {
    const server = new GrpcServer();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
    const api = connectApi({ server: `127.0.0.1:${port}`, token: 'a'.repeat(300_000), timeoutMs: 5000 });
    try {
      await assert.rejects(api.list('Namespace'), (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, String(err));
        assert.equal(err.field, 'token');
        assert.equal(
          err.message,
          `the control plane at 127.0.0.1:${port} refused the request: its headers are larger than it accepts: the bearer token is 300000 bytes; check the token in your client config`,
        );
        return true;
      });
    } finally {
      api.close();
      server.forceShutdown();
    }
  });

  test('synthetic transport errors', () => {
    const deadline = fromGrpcError(
      transportError(
        status.DEADLINE_EXCEEDED,
        'Deadline exceeded after 5.002s,name resolution: 0.032s,metadata filters: 0.001s,Waiting for LB pick',
      ),
      'h:1',
      { timeoutMs: 5000 },
    );
    assert.equal(deadline.message, 'no answer from the control plane at h:1 within 5 s');
    const unresolved = fromGrpcError(
      transportError(status.UNAVAILABLE, 'Name resolution failed for target dns:x:1'),
      'x:1',
    );
    assert.equal(unresolved.message, 'cannot reach the control plane at x:1: the host name does not resolve');
    // A deadline the server itself reports (with skiff's metadata) keeps the server's words.
    const md = new Metadata();
    md.set('skiff-error-code', 'DeadlineExceeded');
    const fromServer = fromGrpcError(
      Object.assign(new Error('x'), {
        code: status.DEADLINE_EXCEEDED,
        details: 'etcd took too long',
        metadata: md,
      }),
      'h:1',
      { timeoutMs: 5000 },
    );
    assert.equal(fromServer.message, 'call control plane h:1: etcd took too long');
    assert.deepEqual(
      [formatTimeout(500), formatTimeout(5000), formatTimeout(1500), formatTimeout(120_000)],
      ['500 ms', '5 s', '1.5 s', '2 min'],
    );
  });
});
