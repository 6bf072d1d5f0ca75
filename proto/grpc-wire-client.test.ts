/**
 * The wire client against a real grpc-js server (the control plane's server library) serving a
 * service of raw bytes: what a call brings back, how it fails, and what the server sees.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { linkSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeHeaderBlock } from './hpack.js';
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
  Large: method('/test.Raw/Large', false),
};

describe('WireChannel against a grpc-js server', () => {
  const server = new grpc.Server();
  let address = '';
  let streamsCancelled = 0;
  let slowCancelled = 0;
  let lastAuthorization = '';
  before(async () => {
    server.addService(service, {
      // a list-like answer: one message of the size the request asks for
      Large: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        callback(null, Buffer.alloc(call.request.readUInt32BE(0), 'L')),
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

  test('100 concurrent calls on one connection; a 15 MB answer; a 1.5 MB request at the server’s 64 KiB windows', async () => {
    const channel = channelOf();
    try {
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          channel.unary('/test.Raw/Echo', Buffer.from(`call ${i}`), { metadata: {} }),
        ),
      );
      answers.forEach((answer, i) => assert.equal(answer.toString(), `call ${i}`));
      const large = await channel.unary('/test.Raw/Large', count(15_000_000), { metadata: {} });
      assert.equal(large.length, 15_000_000);
      const create = Buffer.alloc(1_500_000, 'c');
      assert.ok((await channel.unary('/test.Raw/Echo', create, { metadata: {} })).equals(create));
    } finally {
      channel.close();
    }
  });

  test('request headers too large: 70 KB and 300 KB tokens are refused for size before they are sent (the server would end the whole connection), and the connection serves on', async () => {
    const channel = channelOf();
    try {
      for (const tokenBytes of [70_000, 300_000])
        await assert.rejects(
          channel.unary('/test.Raw/Echo', Buffer.alloc(0), {
            metadata: { authorization: 'a'.repeat(tokenBytes) },
          }),
          (err: unknown) => {
            assert.ok(err instanceof GrpcCallError);
            assert.equal(err.requestHeadersTooLarge, true, `${tokenBytes}: ${err.message}`);
            return true;
          },
        );
      assert.equal(
        (await channel.unary('/test.Raw/Echo', Buffer.from('after'), { metadata: {} })).toString(),
        'after',
      );
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

describe('WireChannel over a Unix socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-wire-uds-'));
  const path = join(dir, 'api.sock');
  const server = new grpc.Server();
  let authority = '';
  before(async () => {
    server.addService(service, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        authority = call.getHost();
        callback(null, call.request);
      },
    });
    await new Promise<number>((resolve, reject) =>
      server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
  });
  after(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });
  const channelTo = (address: string): WireChannel =>
    new WireChannel(address, { maxReceiveBytes: 1024, keepaliveMs: 30_000, keepaliveTimeoutMs: 10_000 });

  test('unix:///path and unix:/path reach the server, which sees the authority localhost', async () => {
    for (const address of [`unix://${path}`, `unix:${path}`]) {
      const channel = channelTo(address);
      try {
        const answer = await channel.unary('/test.Raw/Echo', Buffer.from('hi'), { metadata: {} });
        assert.equal(answer.toString(), 'hi');
        assert.equal(authority, 'localhost');
      } finally {
        channel.close();
      }
    }
  });

  test('TLS to a socket is refused; no socket, or nothing serving it, is said in those words', async () => {
    assert.throws(
      () =>
        new WireChannel(`unix://${path}`, {
          maxReceiveBytes: 1024,
          keepaliveMs: 30_000,
          keepaliveTimeoutMs: 10_000,
          tls: { ca: 'x' },
        }),
      /a Unix socket carries no TLS/,
    );
    const missing = channelTo(`unix://${join(dir, 'missing.sock')}`);
    await assert.rejects(
      missing.unary('/test.Raw/Echo', Buffer.alloc(0), { metadata: {} }),
      (err: unknown) =>
        err instanceof GrpcCallError &&
        err.code === GRPC_CODE.UNAVAILABLE &&
        err.details ===
          `no socket at ${join(dir, 'missing.sock')}: is the control plane running? (\`skiff up\` starts one that serves it)`,
    );
    missing.close();
    // a socket file left by a server that is gone (bound, then its descriptor closed without unlink)
    const stale = join(dir, 'stale.sock');
    const left = createServer();
    await new Promise<void>((resolve) => left.listen(stale, resolve));
    const copy = join(dir, 'stale-copy.sock');
    linkSync(stale, copy);
    await new Promise((resolve) => left.close(resolve));
    const refused = channelTo(`unix://${copy}`);
    await assert.rejects(
      refused.unary('/test.Raw/Echo', Buffer.alloc(0), { metadata: {} }),
      (err: unknown) =>
        err instanceof GrpcCallError && /^nothing serves the socket .*stale-copy\.sock/.test(err.details),
    );
    refused.close();
  });
});

describe('WireChannel and the server’s keepalive pings (grpc-js)', () => {
  test('a stream outlives a server that pings every 100 ms and drops clients that do not answer', async () => {
    const server = new grpc.Server({ 'grpc.keepalive_time_ms': 100, 'grpc.keepalive_timeout_ms': 100 });
    server.addService(service, {
      Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        let sent = 0;
        const timer = setInterval(() => {
          call.write(Buffer.of(sent++));
          if (sent === 10) {
            clearInterval(timer);
            call.end();
          }
        }, 80);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
    const channel = new WireChannel(`127.0.0.1:${port}`, {
      maxReceiveBytes: 1024,
      keepaliveMs: 30_000,
      keepaliveTimeoutMs: 10_000,
    });
    try {
      const seen: number[] = [];
      for await (const message of channel.serverStream('/test.Raw/Count', Buffer.alloc(4), { metadata: {} }))
        seen.push(message[0]!);
      assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      channel.close();
      server.forceShutdown();
    }
  });
});

describe('WireChannel keepalive', () => {
  test('a server that stops answering (its SETTINGS, then silence) fails the open call once a ping goes unanswered', async () => {
    const silent = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.write(Buffer.from('000000040000000000', 'hex')); // an empty SETTINGS, then nothing
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const channel = new WireChannel(`127.0.0.1:${(silent.address() as { port: number }).port}`, {
      maxReceiveBytes: 1024,
      keepaliveMs: 100,
      keepaliveTimeoutMs: 100,
    });
    try {
      const started = performance.now();
      await assert.rejects(
        channel.unary('/test.Raw/Echo', Buffer.alloc(0), { metadata: {} }),
        (err: unknown) => {
          assert.ok(err instanceof GrpcCallError);
          assert.equal(err.code, GRPC_CODE.UNAVAILABLE);
          assert.match(err.details, /did not answer a keepalive ping/);
          return true;
        },
      );
      assert.ok(performance.now() - started < 2000);
    } finally {
      channel.close();
      silent.close();
    }
  });
});

test('hostile: a message trickled in 1-byte DATA frames is held in its own bytes, not in every frame of the socket', async () => {
  const size = 1_500_000;
  let sendLast: () => void = () => undefined;
  const trickle = createServer((socket) => {
    socket.on('error', () => undefined);
    const frame = (type: number, flags: number, payload: Buffer): Buffer => {
      const header = Buffer.alloc(9);
      header.writeUIntBE(payload.length, 0, 3);
      header[3] = type;
      header[4] = flags;
      header.writeUInt32BE(1, 5);
      return Buffer.concat([header, payload]);
    };
    const start = Buffer.alloc(5);
    start.writeUInt32BE(size, 1);
    const frames = [
      Buffer.from('000000040000000000', 'hex'), // SETTINGS
      frame(1, 0x4, encodeHeaderBlock([[':status', '200']])),
      frame(0, 0, start),
    ];
    // all the message but its last byte, 10 bytes on the wire for each
    const one = frame(0, 0, Buffer.from('x'));
    for (let i = 0; i < size - 1; i++) frames.push(one);
    socket.write(Buffer.concat(frames));
    sendLast = () =>
      socket.write(
        Buffer.concat([
          frame(0, 0, Buffer.from('x')),
          frame(1, 0x5, encodeHeaderBlock([['grpc-status', '0']])),
        ]),
      );
  });
  await new Promise<void>((resolve) => trickle.listen(0, '127.0.0.1', resolve));
  const channel = new WireChannel(`127.0.0.1:${(trickle.address() as { port: number }).port}`, {
    maxReceiveBytes: 4 * 1024 * 1024,
    keepaliveMs: 60_000,
    keepaliveTimeoutMs: 60_000,
  });
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  try {
    const answer = channel.unary('/test.Raw/Echo', Buffer.alloc(0), { metadata: {}, timeoutMs: 30_000 });
    // the client has all but the last byte once the 15 MB arrived and were parsed, which takes
    // longer on a loaded machine: what it holds is measured until it drops below the bound (with
    // the bug it never does: the socket's chunks stay alive for as long as the message is open)
    let held = Infinity;
    for (const until = Date.now() + 30_000; Date.now() < until;) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      gc();
      held = process.memoryUsage().arrayBuffers;
      if (held < 8 * 1024 * 1024) break;
    }
    sendLast();
    assert.equal((await answer).length, size);
    // before: every 64 KB socket chunk stayed alive for the 1-byte views into it (~15 MB and
    // 1.5 million Buffer objects; at a 64 MiB limit, gigabytes)
    assert.ok(held < 8 * 1024 * 1024, `${held} bytes of ArrayBuffers held`);
  } finally {
    channel.close();
    trickle.close();
  }
});

/**
 * A gRPC server made of node:http2 directly, for what grpc-js's server does not let a test
 * choose: GOAWAY between calls, the connection dropped mid-stream, a trailers-only answer.
 */
describe('WireChannel against a scripted node:http2 gRPC server', () => {
  const server = http2.createServer();
  const sessions: http2.ServerHttp2Session[] = [];
  let address = '';
  before(async () => {
    server.on('session', (session) => sessions.push(session));
    server.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      const path = String(headers[':path']);
      if (path === '/test.Raw/TooLarge') {
        stream.respond({ ':status': 431 }, { endStream: true });
        return;
      }
      if (path === '/test.Raw/Missing') {
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': '5',
            'grpc-message': 'gone%20away',
          },
          { endStream: true },
        );
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      const message = Buffer.from('answer');
      const framedMessage = Buffer.concat([Buffer.of(0, 0, 0, 0, message.length), message]);
      if (path === '/test.Raw/Drop') {
        stream.write(framedMessage);
        setTimeout(() => stream.session?.destroy(), 50);
        return;
      }
      stream.end(framedMessage);
      // after its first call, each connection goes away: the next call must dial a new one
      stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  test('after GOAWAY the next call dials a new connection; a trailers-only status; HTTP 431 to a large token; a connection dropped mid-stream is UNAVAILABLE', async () => {
    const channel = new WireChannel(address, {
      maxReceiveBytes: 1024,
      keepaliveMs: 30_000,
      keepaliveTimeoutMs: 10_000,
    });
    try {
      const first = sessions.length;
      assert.equal(
        (await channel.unary('/test.Raw/Echo', Buffer.alloc(0), { metadata: {} })).toString(),
        'answer',
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(
        (await channel.unary('/test.Raw/Echo', Buffer.alloc(0), { metadata: {} })).toString(),
        'answer',
      );
      assert.equal(sessions.length - first, 2, 'one connection per call, each after the GOAWAY of the last');
      await assert.rejects(
        channel.unary('/test.Raw/Missing', Buffer.alloc(0), { metadata: {} }),
        (err: unknown) => {
          assert.ok(err instanceof GrpcCallError);
          assert.equal(err.code, GRPC_CODE.NOT_FOUND);
          assert.equal(err.details, 'gone away');
          return true;
        },
      );
      await assert.rejects(
        channel.unary('/test.Raw/TooLarge', Buffer.alloc(0), {
          metadata: { authorization: 'a'.repeat(20_000) },
        }),
        (err: unknown) => err instanceof GrpcCallError && err.requestHeadersTooLarge,
      );
      const seen: string[] = [];
      await assert.rejects(
        (async () => {
          for await (const message of channel.serverStream('/test.Raw/Drop', Buffer.alloc(0), {
            metadata: {},
          }))
            seen.push(message.toString());
        })(),
        (err: unknown) => err instanceof GrpcCallError && err.code === GRPC_CODE.UNAVAILABLE,
      );
      assert.deepEqual(seen, ['answer']);
    } finally {
      channel.close();
    }
  });
});

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), what);
}

describe('WireChannel duplex calls against a grpc-js server', () => {
  const duplex = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
    ...method(path, true),
    requestStream: true,
  });
  const server = new grpc.Server();
  let address = '';
  /** What the Hold call's server side received so far, and lets it read on. */
  let holdReceived = 0;
  let releaseHold: () => void = () => undefined;
  let halfClosedSeen = 0;
  before(async () => {
    server.addService(
      {
        Echo: duplex('/test.Bidi/Echo'),
        Sum: duplex('/test.Bidi/Sum'),
        Hold: duplex('/test.Bidi/Hold'),
        Early: duplex('/test.Bidi/Early'),
        Flood: duplex('/test.Bidi/Flood'),
      },
      {
        // every message back, upper-cased (a tests' 4-byte sequence number first, untouched), with
        // backpressure both ways; ends when the client does
        Echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.on('data', (message: Buffer) => {
            const upper = Buffer.from(message);
            for (let i = message.length >= 4096 ? 4 : 0; i < upper.length; i++)
              if (upper[i]! >= 0x61 && upper[i]! <= 0x7a) upper[i]! -= 0x20;
            if (!call.write(upper)) {
              call.pause();
              call.once('drain', () => call.resume());
            }
          });
          call.on('end', () => {
            halfClosedSeen++;
            call.end();
          });
        },
        // client streaming: the total of what came, once the client half-closes
        Sum: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          let total = 0;
          call.on('data', (message: Buffer) => (total += message.length));
          call.on('end', () => {
            const answer = Buffer.alloc(8);
            answer.writeBigUInt64BE(BigInt(total));
            call.write(answer);
            call.end();
          });
        },
        // reads nothing until released: the client's sends must stop, not pile up
        Hold: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.pause();
          call.on('data', (message: Buffer) => (holdReceived += message.length));
          releaseHold = () => call.resume();
          call.on('end', () => call.end());
        },
        // 2 MB of messages, then a status, whether or not the client reads
        Flood: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          for (let i = 0; i < 64; i++) call.write(Buffer.alloc(32 * 1024));
          call.emit('error', { code: grpc.status.ABORTED, details: 'done flooding' });
        },
        // ends with a status while the client still sends
        Early: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.once('data', () =>
            call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'the container exited' }),
          );
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
    address = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());
  const channelOf = (): WireChannel =>
    new WireChannel(address, {
      maxReceiveBytes: 4 * 1024 * 1024,
      keepaliveMs: 30_000,
      keepaliveTimeoutMs: 10_000,
    });

  test('messages go both ways in order while the call is open; the end of this side ends the server’s', async () => {
    const channel = channelOf();
    try {
      const call = channel.duplex('/test.Bidi/Echo', { metadata: {} });
      const answers = call[Symbol.asyncIterator]();
      for (const word of ['one', 'two', 'three']) {
        assert.equal(await call.send(Buffer.from(word)), true);
        const answer = await answers.next();
        assert.equal(answer.value?.toString(), word.toUpperCase(), 'each answer comes before the next send');
      }
      call.end();
      assert.equal((await answers.next()).done, true);
      assert.equal(await call.ended, undefined);
      assert.equal(halfClosedSeen, 1);
      assert.equal(await call.send(Buffer.from('late')), false, 'a send after the end is refused');
    } finally {
      channel.close();
    }
  });

  test('20 MB each way through a 64 KiB server window, 32 KiB at a time, read slowly: nothing lost or reordered', async () => {
    const channel = channelOf();
    try {
      const call = channel.duplex('/test.Bidi/Echo', { metadata: {} });
      const chunks = 640;
      const writer = (async () => {
        for (let i = 0; i < chunks; i++) {
          const chunk = Buffer.alloc(32 * 1024, 'a'.charCodeAt(0) + (i % 26));
          chunk.writeUInt32BE(i, 0);
          assert.equal(await call.send(chunk), true);
        }
        call.end();
      })();
      let seen = 0;
      for await (const answer of call) {
        assert.equal(answer.length, 32 * 1024);
        assert.equal(answer.readUInt32BE(0), seen);
        assert.equal(answer[100], 'A'.charCodeAt(0) + (seen % 26));
        if (++seen % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 30));
      }
      await writer;
      assert.equal(seen, chunks);
    } finally {
      channel.close();
    }
  });

  test('client streaming: many sends, one answer after the end', async () => {
    const channel = channelOf();
    try {
      const call = channel.duplex('/test.Bidi/Sum', { metadata: {} });
      for (let i = 0; i < 100; i++) await call.send(Buffer.alloc(1000));
      call.end();
      const answers: Buffer[] = [];
      for await (const answer of call) answers.push(answer);
      assert.equal(answers.length, 1);
      assert.equal(answers[0]!.readBigUInt64BE(0), 100_000n);
    } finally {
      channel.close();
    }
  });

  test('a server that reads nothing stops the sender: sends wait, and what waits here stays bounded', async () => {
    const channel = channelOf();
    try {
      const call = channel.duplex('/test.Bidi/Hold', { metadata: {} });
      let sent = 0;
      const writer = (async () => {
        for (let i = 0; i < 400; i++) {
          if (!(await call.send(Buffer.alloc(64 * 1024)))) return;
          sent++;
        }
        call.end();
      })();
      await new Promise((resolve) => setTimeout(resolve, 500));
      // the server's windows (64 KiB a stream) and its read-ahead hold a little; the send stops
      assert.ok(sent < 40, `${sent} sends of 64 KiB went through to a server that reads nothing`);
      const stuckAt = sent;
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(sent, stuckAt, 'no more sends while the server does not read');
      releaseHold();
      await writer;
      for await (const _ of call) assert.fail('no answers');
      assert.equal(sent, 400);
      assert.equal(holdReceived, 400 * 64 * 1024);
    } finally {
      channel.close();
    }
  });

  test('a server that ends the call with a status: the iteration throws it, sends resolve false', async () => {
    const channel = channelOf();
    try {
      const call = channel.duplex('/test.Bidi/Early', { metadata: {} });
      await call.send(Buffer.from('x'));
      await assert.rejects(
        (async () => {
          for await (const _ of call) assert.fail('no answers');
        })(),
        (err: unknown) =>
          err instanceof GrpcCallError &&
          err.code === GRPC_CODE.FAILED_PRECONDITION &&
          err.details === 'the container exited',
      );
      assert.equal((await call.ended)?.code, GRPC_CODE.FAILED_PRECONDITION);
      assert.equal(await call.send(Buffer.from('y')), false);
    } finally {
      channel.close();
    }
  });

  test('the server’s status settles `ended` while its messages still wait unread; they are read after', async () => {
    const channel = channelOf();
    try {
      const call = channel.duplex('/test.Bidi/Flood', { metadata: {} });
      await call.send(Buffer.from('go'));
      const ended = await call.ended;
      assert.equal(ended?.code, GRPC_CODE.ABORTED, 'known without reading a message');
      let read = 0;
      await assert.rejects(
        (async () => {
          for await (const message of call) read += message.length;
        })(),
        (err: unknown) => err instanceof GrpcCallError && err.code === GRPC_CODE.ABORTED,
      );
      assert.equal(read, 64 * 32 * 1024, 'every message before the status');
    } finally {
      channel.close();
    }
  });

  test('leaving the iteration early cancels the call at the server', async () => {
    const channel = channelOf();
    try {
      const call = channel.duplex('/test.Bidi/Echo', { metadata: {} });
      await call.send(Buffer.from('a'));
      for await (const answer of call) {
        assert.equal(answer.toString(), 'A');
        break;
      }
      assert.equal((await call.ended)?.code, GRPC_CODE.CANCELLED);
    } finally {
      channel.close();
    }
  });
});
