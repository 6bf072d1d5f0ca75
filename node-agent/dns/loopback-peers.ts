/**
 * What the DNS tests talk to, on loopback only: a small upstream resolver with fixed zone data
 * (standing in for the node's resolvers, so no test ever sends to a real one), and a client
 * asking one question over UDP or TCP. Both are dns-packet's encoding, nothing hand-rolled. And
 * `dig`, a client nobody here wrote.
 */
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { promisify } from 'node:util';
import { connect, createServer, type Server } from 'node:net';
import dnsPacket, { type Answer, type DecodedPacket } from 'dns-packet';
import { framed, readTcpMessages } from './tcp-framing.js';

const run = promisify(execFile);
import type { Upstream } from './upstreams.js';

/** name → type → records (data and TTL); a name not here is NXDOMAIN with an SOA of minimum 30. */
export type ZoneData = Record<string, Record<string, { data: unknown; ttl: number }[]>>;

export class LoopbackUpstream {
  queries = 0;
  private readonly asked = new Map<string, number>();

  private constructor(
    private readonly zone: ZoneData,
    private readonly udp: Socket,
    private readonly tcp: Server,
    readonly address: Upstream,
  ) {}

  static async start(zone: ZoneData): Promise<LoopbackUpstream> {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    const port = udp.address().port;
    const tcp = createServer();
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, '127.0.0.1', () => resolve());
    });
    const upstream = new LoopbackUpstream(zone, udp, tcp, { address: '127.0.0.1', port });
    udp.on('message', (message, remote) => {
      const reply = upstream.reply(message, 512);
      if (reply) udp.send(reply, remote.port, remote.address);
    });
    tcp.on('connection', (socket) =>
      readTcpMessages(socket, (message) => {
        const reply = upstream.reply(message, 0xffff);
        if (reply) socket.write(framed(reply));
      }),
    );
    return upstream;
  }

  /** How often `name` was asked (any type). */
  countFor(name: string): number {
    return this.asked.get(name.toLowerCase()) ?? 0;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
  }

  private reply(message: Buffer, limit: number): Buffer | undefined {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return undefined;
    }
    const question = query.questions?.[0];
    if (question === undefined) return undefined;
    this.queries++;
    const name = question.name.toLowerCase();
    this.asked.set(name, (this.asked.get(name) ?? 0) + 1);
    const records = this.zone[name];
    const answers = (records?.[question.type] ?? []).map(
      (r) => ({ type: question.type, name: question.name, ttl: r.ttl, class: 'IN', data: r.data }) as Answer,
    );
    const soa: Answer = {
      type: 'SOA',
      name: 'test',
      ttl: 30,
      data: {
        mname: 'ns.test',
        rname: 'hostmaster.test',
        serial: 1,
        refresh: 60,
        retry: 60,
        expire: 60,
        minimum: 30,
      },
    };
    const packet = {
      type: 'response' as const,
      id: query.id,
      flags: dnsPacket.RECURSION_AVAILABLE | (records === undefined ? 3 : 0),
      questions: [question],
      answers,
      authorities: answers.length === 0 ? [soa] : [],
    };
    const bytes = dnsPacket.encode(packet);
    if (bytes.length <= limit) return bytes;
    return dnsPacket.encode({
      ...packet,
      flags: packet.flags | dnsPacket.TRUNCATED_RESPONSE,
      answers: [],
      authorities: [],
    });
  }
}

type Reply = DecodedPacket & { rcode?: string };

function query(name: string, type: string, edns: number | undefined): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: Math.floor(Math.random() * 0x10000),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as 'A', name }],
    ...(edns !== undefined
      ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: edns } as Answer] }
      : {}),
  });
}

/** One question over UDP to 127.0.0.1:port (EDNS0 with that payload size when given). */
export function askUdp(port: number, name: string, type: string, edns?: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no UDP reply for ${name} ${type}`));
    }, 3000);
    socket.on('message', (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(dnsPacket.decode(message) as Reply);
    });
    socket.send(query(name, type, edns), port, '127.0.0.1');
  });
}

/** One question over TCP to 127.0.0.1:port. */
export function askTcp(port: number, name: string, type: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(new Error(`no TCP reply for ${name} ${type}`)), 3000);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => socket.write(framed(query(name, type, undefined))));
    readTcpMessages(socket, (message) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(dnsPacket.decode(message) as Reply);
    });
  });
}

/** `dig @127.0.0.1 -p PORT +time=1 +tries=1 ARGS…`'s output; a missing dig says how to install it. */
export async function dig(port: number, ...args: string[]): Promise<string> {
  try {
    return (await run('dig', ['@127.0.0.1', '-p', String(port), '+time=1', '+tries=1', ...args])).stdout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error('dig is not installed: apt-get install bind9-dnsutils (cli/bootstrap.sh installs it)');
    throw err;
  }
}
