/**
 * A TCP relay on a free loopback port that counts the bytes a client sends through it to a
 * server (and those it gets back): what "transfers no layer bytes" is measured with, the same
 * way for any registry, without touching the registry.
 *
 *   const proxy = await startCountingProxy('127.0.0.1:5000');
 *   … push to proxy.host …
 *   proxy.sent   // bytes client → server since start (or the last reset())
 */
import { createConnection, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface CountingProxy {
  /** 127.0.0.1:PORT of the relay. */
  host: string;
  /** Bytes the clients sent towards the server. */
  readonly sent: number;
  /** Bytes the server sent back. */
  readonly received: number;
  reset(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const colon = target.lastIndexOf(':');
  const targetHost = target.slice(0, colon);
  const targetPort = Number(target.slice(colon + 1));
  let sent = 0;
  let received = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: targetHost, port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => (sent += chunk.length));
    upstream.on('data', (chunk: Buffer) => (received += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    get sent() {
      return sent;
    },
    get received() {
      return received;
    },
    reset() {
      sent = 0;
      received = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
