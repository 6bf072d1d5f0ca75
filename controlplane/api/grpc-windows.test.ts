import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { WireChannel } from '../../proto/grpc-wire-client.js';
import { widenConnectionWindows, widenStreamWindows } from './grpc-windows.js';

test('grpc-js’s server takes wider windows: its sessions get the connection window, and a 2 MB upload at a 1 MiB stream window works', async () => {
  const server = new grpc.Server();
  widenStreamWindows(server, 1024 * 1024);
  let sessions = 0;
  const bytes = (b: Buffer): Buffer => b;
  server.addService(
    {
      Size: {
        path: '/t.W/Size',
        requestStream: false,
        responseStream: false,
        requestSerialize: bytes,
        requestDeserialize: bytes,
        responseSerialize: bytes,
        responseDeserialize: bytes,
      },
    },
    {
      Size: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
        const answer = Buffer.alloc(4);
        answer.writeUInt32BE(call.request.length);
        done(null, answer);
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  widenConnectionWindows(server, 16 * 1024 * 1024);
  for (const h2 of (
    server as unknown as { http2Servers: Map<NodeJS.EventEmitter, unknown> }
  ).http2Servers.keys())
    h2.on('session', (session: { state: { localWindowSize?: number } }) => {
      sessions++;
      // the window set in the same turn as the session begins
      setImmediate(() => assert.ok((session.state.localWindowSize ?? 0) > 8 * 1024 * 1024));
    });
  const channel = new WireChannel(`127.0.0.1:${port}`, {
    maxReceiveBytes: 1024,
    keepaliveMs: 30_000,
    keepaliveTimeoutMs: 10_000,
  });
  try {
    const answer = await channel.unary('/t.W/Size', Buffer.alloc(2_000_000), { metadata: {} });
    assert.equal(answer.readUInt32BE(0), 2_000_000);
    assert.equal(sessions, 1);
  } finally {
    channel.close();
    server.forceShutdown();
  }
});
