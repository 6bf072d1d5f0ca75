/**
 * The wire client against a real grpc-js server (the control plane's server library) serving a
 * service of raw bytes: what a call brings back, how it fails, and what the server sees.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { GRPC_CODE } from './grpc-status.js';
import { GrpcCallError, WireChannel } from './grpc-wire-client.js';

const bytes = (value: Buffer): Buffer => value;
const method = (path: string, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: bytes,
  requestDeserialize: bytes,
  responseSerialize: bytes,
  responseDeserialize: bytes,
});
const service: grpc.ServiceDefinition = {
  Echo: method('/test.Raw/Echo', false),
  Fail: method('/test.Raw/Fail', false),
  Slow: method('/test.Raw/Slow', false),
  Count: method('/test.Raw/Count', true),
};

describe('WireChannel against a grpc-js server', () => {
  const server = new grpc.Server();
  let address = '';
  let streamsCancelled = 0;
  let slowCancelled = 0;
  let lastAuthorization = '';
  before(async () => {
    server.addService(service, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        lastAuthorization = String(call.metadata.get('authorization')[0] ?? '');
        callback(null, call.request);
      },
      Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const metadata = new grpc.Metadata();
        metadata.set('skiff-error-code', 'NotFound');
        callback({ code: grpc.status.NOT_FOUND, details: 'pod “web-0” is not here', metadata });
      },
      Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const timer = setTimeout(() => callback(null, Buffer.from('late')), 5000);
        call.on('cancelled', () => {
          slowCancelled++;
          clearTimeout(timer);
        });
      },
      Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const total = call.request.readUInt32BE(0);
        let sent = 0;
        let cancelled = false;
        call.on('cancelled', () => {
          cancelled = true;
          streamsCancelled++;
        });
        const more = (): void => {
          while (!cancelled && sent < total) {
            const message = Buffer.alloc(4 + (sent % 7) * 1000);
            message.writeUInt32BE(sent++, 0);
            if (!call.write(message)) return void call.once('drain', more);
          }
          if (!cancelled) call.end();
        };
        more();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
    address = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  const channelOf = (maxReceiveBytes = 64 * 1024 * 1024): WireChannel =>
    new WireChannel(address, { maxReceiveBytes, keepaliveMs: 30_000, keepaliveTimeoutMs: 10_000 });
  const count = (n: number): Buffer => {
    const request = Buffer.alloc(4);
    request.writeUInt32BE(n, 0);
    return request;
  };

  test('a unary call carries its metadata and brings a 3 MB message back whole (the server takes at most 4)', async () => {
    const channel = channelOf();
    try {
      const large = Buffer.alloc(3 * 1024 * 1024, 'x');
      large.write('start', 0);
      large.write('end', large.length - 3);
      const answer = await channel.unary('/test.Raw/Echo', large, {
        metadata: { authorization: 'Bearer t' },
      });
      assert.ok(answer.equals(large));
      assert.equal(lastAuthorization, 'Bearer t');
      assert.deepEqual(
        await channel.unary('/test.Raw/Echo', Buffer.alloc(0), { metadata: {} }),
        Buffer.alloc(0),
      );
    } finally {
      channel.close();
    }
  });

  test("a failed call brings the server's code, its message (percent-encoded UTF-8) and trailers", async () => {
    const channel = channelOf();
    try {
      await assert.rejects(
        channel.unary('/test.Raw/Fail', Buffer.alloc(0), { metadata: {} }),
        (err: unknown) => {
          assert.ok(err instanceof GrpcCallError);
          assert.equal(err.code, GRPC_CODE.NOT_FOUND);
          assert.equal(err.details, 'pod “web-0” is not here');
          assert.deepEqual(err.metadata.get('skiff-error-code'), ['NotFound']);
          return true;
        },
      );
      await assert.rejects(
        channel.unary('/test.Raw/Missing', Buffer.alloc(0), { metadata: {} }),
        (err: unknown) => err instanceof GrpcCallError && err.code === GRPC_CODE.UNIMPLEMENTED,
      );
    } finally {
      channel.close();
    }
  });

  test('a deadline ends the call here and at the server', async () => {
    const channel = channelOf();
    try {
      const started = performance.now();
      await assert.rejects(
        channel.unary('/test.Raw/Slow', Buffer.alloc(0), { metadata: {}, timeoutMs: 200 }),
        (err: unknown) => err instanceof GrpcCallError && err.code === GRPC_CODE.DEADLINE_EXCEEDED,
      );
      assert.ok(performance.now() - started < 2000);
      await waitFor(() => slowCancelled === 1, 'the server saw the call cancelled');
    } finally {
      channel.close();
    }
  });

  test('a larger message than the limit fails the call with RESOURCE_EXHAUSTED', async () => {
    const channel = channelOf(1024);
    try {
      await assert.rejects(
        channel.unary('/test.Raw/Echo', Buffer.alloc(4096), { metadata: {} }),
        (err: unknown) => err instanceof GrpcCallError && err.code === GRPC_CODE.RESOURCE_EXHAUSTED,
      );
    } finally {
      channel.close();
    }
  });

  test('a stream brings every message in order, read slowly too; cancel ends it at the server', async () => {
    const channel = channelOf();
    try {
      const seen: number[] = [];
      for await (const message of channel.serverStream('/test.Raw/Count', count(3000), { metadata: {} })) {
        seen.push(message.readUInt32BE(0));
        if (seen.length % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(seen.length, 3000);
      assert.ok(seen.every((n, i) => n === i));

      const endless = channel.serverStream('/test.Raw/Count', count(1_000_000), { metadata: {} });
      let taken = 0;
      for await (const message of endless) {
        assert.equal(message.readUInt32BE(0), taken);
        if (++taken === 10) break; // the iterator's return cancels the call
      }
      await waitFor(() => streamsCancelled === 1, 'the server saw the stream cancelled');
    } finally {
      channel.close();
    }
  });

  test('a server that is gone: the call fails UNAVAILABLE naming why, and the channel dials again', async () => {
    const gone = new WireChannel('127.0.0.1:1', {
      maxReceiveBytes: 1024,
      keepaliveMs: 30_000,
      keepaliveTimeoutMs: 10_000,
    });
    try {
      await assert.rejects(
        gone.unary('/test.Raw/Echo', Buffer.alloc(0), { metadata: {} }),
        (err: unknown) => {
          assert.ok(err instanceof GrpcCallError);
          assert.equal(err.code, GRPC_CODE.UNAVAILABLE);
          assert.match(err.details, /ECONNREFUSED/);
          return true;
        },
      );
    } finally {
      gone.close();
    }
  });
});

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), what);
}
