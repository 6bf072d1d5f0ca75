import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import {
  GrpcCallError,
  SERVING_STATUS,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  grpcHealthCheck,
} from './grpc-health.js';

/** A tiny grpc.health.v1 server: the service named decides the answer. */
let server: Http2Server;
let port: number;
const seen: { service: string; headers: Record<string, unknown> }[] = [];

function reply(stream: ServerHttp2Stream, status: number): void {
  const message = status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, status]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end(Buffer.concat([head, message]));
}

before(async () => {
  server = createServer();
  server.on('stream', (stream, headers) => {
    if (headers[':path'] !== '/grpc.health.v1.Health/Check') {
      // trailers-only, as servers answer a method they lack
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': '12',
          'grpc-message': 'unknown service',
        },
        { endStream: true },
      );
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      const request = body.subarray(5, 5 + body.readUInt32BE(1));
      const service = request.length ? request.subarray(2).toString('utf8') : '';
      seen.push({ service, headers });
      if (service === '' || service === 'shop.Cart') return reply(stream, 1);
      if (service === 'down') return reply(stream, 2);
      if (service === 'silent') return; // never answers
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': '5',
          'grpc-message': 'unknown%20service',
        },
        { endStream: true },
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

after(() => server.close());

async function check(service: string, timeoutMs = 2000): Promise<number> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise((r) => socket.once('connect', r));
  return grpcHealthCheck(socket, {
    authority: `127.0.0.1:${port}`,
    service,
    timeoutMs,
    userAgent: 'kube-probe/1.33',
  });
}

describe('grpc.health.v1 client', () => {
  test('the wire format: the request and response messages', () => {
    assert.deepEqual(encodeHealthCheckRequest(''), Buffer.alloc(0));
    assert.deepEqual(encodeHealthCheckRequest('a.B'), Buffer.from([0x0a, 3, 0x61, 0x2e, 0x42]));
    assert.equal(encodeHealthCheckRequest('x'.repeat(200)).subarray(1, 3).toString('hex'), 'c801');
    assert.equal(decodeHealthCheckResponse(Buffer.from([0x08, 0x02])), 2);
    assert.equal(decodeHealthCheckResponse(Buffer.alloc(0)), 0);
    // unknown fields are skipped
    assert.equal(decodeHealthCheckResponse(Buffer.from([0x12, 0x01, 0x41, 0x08, 0x01, 0x1d, 1, 2, 3, 4])), 1);
  });

  test('SERVING for the server as a whole and for a named service, with the headers a gRPC server expects', async () => {
    assert.equal(SERVING_STATUS[await check('')], 'SERVING');
    assert.equal(SERVING_STATUS[await check('shop.Cart')], 'SERVING');
    const last = seen.at(-1)!;
    assert.equal(last.service, 'shop.Cart');
    assert.equal(last.headers['content-type'], 'application/grpc');
    assert.equal(last.headers['te'], 'trailers');
    assert.equal(last.headers['grpc-timeout'], '2000m');
    assert.equal(last.headers['user-agent'], 'kube-probe/1.33');
  });

  test('NOT_SERVING is a status, not an error', async () => {
    assert.equal(SERVING_STATUS[await check('down')], 'NOT_SERVING');
  });

  test("a server's status other than OK is a GrpcCallError in Go's words", async () => {
    await assert.rejects(
      check('nope'),
      (e: unknown) =>
        e instanceof GrpcCallError &&
        e.code === 5 &&
        e.message === 'rpc error: code = NotFound desc = unknown service',
    );
  });

  test('a server that never answers: DeadlineExceeded at the timeout', async () => {
    const started = Date.now();
    await assert.rejects(check('silent', 300), (e: unknown) => e instanceof GrpcCallError && e.code === 4);
    assert.ok(Date.now() - started < 2000);
  });

  test('something that is not HTTP/2 on the port: Unavailable, not a hang', async () => {
    const plain = (await import('node:net')).createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const p = (plain.address() as AddressInfo).port;
    try {
      const socket = connect({ host: '127.0.0.1', port: p });
      await new Promise((r) => socket.once('connect', r));
      await assert.rejects(
        grpcHealthCheck(socket, { authority: `127.0.0.1:${p}`, service: '', timeoutMs: 2000 }),
        (e: unknown) => e instanceof GrpcCallError && (e.code === 14 || e.code === 13),
      );
    } finally {
      plain.close();
    }
  });
});
