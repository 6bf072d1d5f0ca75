/**
 * DnsServer: a QueryHandler on a UDP socket and a TCP listener at one address and port (53 on the
 * node's bridge gateway; port 0 in tests: the UDP port is taken first, TCP binds the same).
 *
 * - UDP: one datagram, one reply (or none). Replies wait on nothing but the upstream; at most
 *   `maxPending` forwarded queries are open at once, more are dropped (the client retries).
 * - TCP: RFC 7766: length-framed messages, several per connection, replies in the order they are
 *   ready; a connection idle for 10 s is closed; at most 256 connections. A client that sends
 *   faster than it reads is not read from while 64 of its queries are open or 256 KiB of replies
 *   wait to be sent (pipelined queries for large answers would otherwise grow the agent's memory
 *   without bound); if it reads nothing more, it falls idle and is closed.
 * - Whatever arrives, the server keeps serving: a handler failure drops that one query.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, isIPv6, type Server } from 'node:net';
import { errorMessage } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';
import type { QueryHandler } from './query-handler.js';
import { bindInNetns } from './netns-sockets.js';
import { framed, readTcpMessages } from './tcp-framing.js';

export interface DnsServerOptions {
  address: string;
  /** 0: any free port (the same for UDP and TCP). */
  port: number;
  /** Bind in this network namespace (a path), not this process's own (netns-sockets.ts). */
  netnsPath?: string;
  handler: QueryHandler;
  log: Logger;
  /** Forwarded UDP queries open at once; default 2048. */
  maxPending?: number;
  /** TCP connections idle this long are closed; default 10,000 ms. */
  tcpIdleMs?: number;
}

const MAX_TCP_CONNECTIONS = 256;
/** Per TCP connection: queries being answered, and reply bytes not yet sent, before it is paused. */
const MAX_TCP_OPEN_QUERIES = 64;
const MAX_TCP_UNSENT_BYTES = 256 * 1024;

/**
 * Replies go to the address a query came from, always a literal: answered at once, where the
 * default lookup (dns.lookup) defers each send by a tick.
 */
function literalAddress(
  address: string,
  _family: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, address, isIPv6(address) ? 6 : 4);
}
const BIND_ATTEMPTS = 8;

export class DnsServer {
  private pending = 0;

  private constructor(
    private readonly options: DnsServerOptions,
    private readonly udp: Socket,
    private readonly tcp: Server,
    /** The port both listen on. */
    readonly port: number,
  ) {
    udp.on('message', (message, remote) => this.onDatagram(message, remote.address, remote.port));
    udp.on('error', (err) => options.log.warn({ err: errorMessage(err) }, 'dns udp socket error'));
    tcp.on('error', (err) => options.log.warn({ err: errorMessage(err) }, 'dns tcp listener error'));
  }

  static async listen(options: DnsServerOptions): Promise<DnsServer> {
    if (options.netnsPath !== undefined) {
      const { udp, tcp } = await bindInNetns(options.netnsPath, options.address, options.port);
      return DnsServer.serving(options, udp, tcp);
    }
    for (let attempt = 1; ; attempt++) {
      const udp = createSocket({ type: isIPv6(options.address) ? 'udp6' : 'udp4', lookup: literalAddress });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(options.port, options.address, () => {
            udp.off('error', reject);
            resolve();
          });
        });
        const tcp = createServer();
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(udp.address().port, options.address, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
        return DnsServer.serving(options, udp, tcp);
      } catch (err) {
        udp.close();
        // port 0: the UDP port's TCP twin may be taken; another port then
        if (
          options.port !== 0 ||
          attempt >= BIND_ATTEMPTS ||
          (err as NodeJS.ErrnoException).code !== 'EADDRINUSE'
        )
          throw err;
      }
    }
  }

  /** The server on a bound UDP socket and a listening TCP server. */
  private static serving(options: DnsServerOptions, udp: Socket, tcp: Server): DnsServer {
    try {
      udp.setRecvBufferSize(4 << 20);
    } catch {
      // the kernel's limit stands: fine, only a burst may lose datagrams
    }
    tcp.maxConnections = MAX_TCP_CONNECTIONS;
    const server = new DnsServer(options, udp, tcp, udp.address().port);
    tcp.on('connection', (socket) => server.onConnection(socket));
    return server;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
    await new Promise<void>((resolve) => {
      this.tcp.close(() => resolve());
      // connections left open would hold close() back
      (this.tcp as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    });
  }

  private onDatagram(message: Buffer, address: string, port: number): void {
    let reply;
    try {
      reply = this.options.handler.answer(message, 'udp');
    } catch (err) {
      this.options.log.warn({ err: errorMessage(err) }, 'dns query failed');
      return;
    }
    if (reply === undefined) return;
    if (Buffer.isBuffer(reply)) {
      this.udp.send(reply, port, address);
      return;
    }
    if (this.pending >= (this.options.maxPending ?? 2048)) return;
    this.pending++;
    reply
      .then((bytes) => {
        if (bytes !== undefined) this.udp.send(bytes, port, address);
      })
      .catch((err) => this.options.log.warn({ err: errorMessage(err) }, 'dns query failed'))
      .finally(() => this.pending--);
  }

  private onConnection(socket: import('node:net').Socket): void {
    socket.setNoDelay(true);
    socket.setTimeout(this.options.tcpIdleMs ?? 10_000, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    let open = 0;
    const flow = () => {
      if (open >= MAX_TCP_OPEN_QUERIES || socket.writableLength >= MAX_TCP_UNSENT_BYTES) socket.pause();
      else if (socket.isPaused()) socket.resume();
    };
    socket.on('drain', flow);
    readTcpMessages(socket, (message) => {
      let reply;
      try {
        reply = this.options.handler.answer(message, 'tcp');
      } catch {
        return;
      }
      open++;
      flow();
      Promise.resolve(reply)
        .then((bytes) => {
          if (bytes !== undefined && !socket.destroyed) socket.write(framed(bytes));
        })
        .catch(() => socket.destroy())
        .finally(() => {
          open--;
          flow();
        });
    });
  }
}
