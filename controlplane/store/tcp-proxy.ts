/**
 * A loopback TCP proxy for tests that need an outage between one client and etcd while etcd
 * itself keeps serving others (e.g. compacting the history a cut-off watch will resume from).
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpProxy {
  endpoint: string;
  /** Cuts every connection and refuses new ones. */
  block(): Promise<void>;
  /** Accepts connections again on the same port. */
  unblock(): Promise<void>;
  close(): Promise<void>;
}

/** A loopback TCP proxy to `target` (http://host:port) that can play an outage. */
export async function startProxy(target: string): Promise<TcpProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  const listen = (listenPort: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const stop = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  await listen(0);
  const proxyPort = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${proxyPort}`,
    block: stop,
    unblock: () => listen(proxyPort),
    close: async () => {
      if (server.listening) await stop();
    },
  };
}
