/**
 * `skiff port-forward [-n NS] [--address A] POD|pod/NAME [LOCAL:]REMOTE…`, as kubectl's: listens
 * on the local ports and relays each connection to the pod's port through the control plane (one
 * pod stream per connection, all on one HTTP/2 connection to it), until Ctrl-C. Prints
 * "Forwarding from 127.0.0.1:8080 -> 80" per address and port, and "Handling connection for 8080"
 * per connection. `:80` takes a free local port; `80` is `80:80`.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import { drained, podName } from '../pod-stream-relay.js';
import { DEFAULT_NAMESPACE, withClient } from './context.js';

interface Flags {
  namespace?: string;
  address: string;
}

interface PortPair {
  local: number;
  remote: number;
}

function port(text: string, what: string, allowZero: boolean): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535 || (n === 0 && !allowZero))
    throw new InvalidArgumentError(`port-forward: ${what} "${text}" is not a port`, 'ports');
  return n;
}

/** `8080:80`, `80` (80:80), `:80` (a free local port). */
export function parsePortPair(spec: string): PortPair {
  const parts = spec.split(':');
  if (parts.length > 2)
    throw new InvalidArgumentError(`port-forward: "${spec}" is not [LOCAL:]REMOTE`, 'ports');
  const remote = port(parts.at(-1)!, 'remote port', false);
  if (parts.length === 1) return { local: remote, remote };
  return { local: parts[0] === '' ? 0 : port(parts[0]!, 'local port', true), remote };
}

/** The addresses to listen on: localhost is 127.0.0.1 and ::1, as kubectl's. */
function addressesOf(text: string): string[] {
  return text
    .split(',')
    .map((a) => a.trim())
    .flatMap((a) => (a === 'localhost' ? ['127.0.0.1', '::1'] : [a]));
}

function listen(server: Server, address: string, local: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port: local }, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

/** One local connection ↔ one pod stream, each direction under flow control. */
function relay(api: ApiClient, socket: Socket, namespace: string, name: string, remote: number): () => void {
  const stream = api.podStream('PortForward', { namespace, name, port: remote });
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => {
    socket.pause();
    void stream.sendStdin(chunk).then((ok) => (ok ? socket.resume() : socket.destroy()));
  });
  socket.on('end', () => void stream.closeStdin());
  socket.on('error', () => stream.cancel());
  socket.on('close', () => stream.cancel());
  void (async () => {
    try {
      for await (const frame of stream) {
        if (frame.stdout?.length && !socket.write(frame.stdout)) await drained(socket);
      }
      socket.end();
    } catch (err) {
      if (!socket.destroyed)
        process.stderr.write(`error: port-forward to port ${remote}: ${errorMessage(err)}\n`);
      socket.destroy();
    }
  })();
  return () => {
    stream.cancel();
    socket.destroy();
  };
}

export function registerPortForward(program: Command): void {
  program
    .command('port-forward')
    .description("forward local ports to a pod's ports, through the control plane")
    .argument('<pod>', 'NAME or pod/NAME')
    .argument('<ports...>', '[LOCAL:]REMOTE, e.g. 8080:80, 80, :80')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('--address <addresses>', 'local addresses to listen on, comma-separated', 'localhost')
    .action(async (pod: string, specs: string[], flags: Flags, cmd: Command) => {
      const pairs = specs.map(parsePortPair);
      const namespace = flags.namespace || DEFAULT_NAMESPACE;
      const name = podName(pod, 'port-forward');
      await withClient(cmd, async (api) => {
        const found = (await api.get('Pod', namespace, name)) as Pod;
        if (found.status?.phase !== 'Running')
          throw new FailedPreconditionError(
            `port-forward: unable to forward port because pod is not running. Current status=${found.status?.phase ?? 'Unknown'}`,
          );
        const servers: Server[] = [];
        const open = new Set<() => void>();
        for (const pair of pairs) {
          let bound: number | undefined;
          for (const address of addressesOf(flags.address)) {
            // half-open: a client that is done sending still gets the pod's answer
            const server = createServer({ allowHalfOpen: true }, (socket) => {
              process.stdout.write(`Handling connection for ${bound}\n`);
              const close = relay(api, socket, namespace, name, pair.remote);
              open.add(close);
              socket.once('close', () => open.delete(close));
            });
            try {
              // a free port is chosen once, then taken on every address
              bound = await listen(server, address, bound ?? pair.local);
            } catch (err) {
              // no IPv6 loopback here: kubectl goes on with the addresses that work
              if (address === '::1' && flags.address === 'localhost') continue;
              throw new FailedPreconditionError(
                `port-forward: cannot listen on ${address}:${pair.local}: ${errorMessage(err)}`,
              );
            }
            servers.push(server);
            const shown = address.includes(':') ? `[${address}]` : address;
            process.stdout.write(`Forwarding from ${shown}:${bound} -> ${pair.remote}\n`);
          }
        }
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            for (const signal of ['SIGINT', 'SIGTERM'] as const) process.off(signal, stop);
            for (const server of servers) server.close();
            for (const close of open) close();
            resolve();
          };
          for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, stop);
        });
      });
    });
}
