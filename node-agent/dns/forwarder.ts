/**
 * Forwarder: what is not the cluster's goes to the node's upstream resolvers, and their answers
 * are kept while their TTLs last (CoreDNS's `forward` behind `cache`).
 *
 *   resolve(question) ─► cache hit? ─► the reply, every TTL less the seconds it was kept
 *                          │ miss (the same question in flight: that one's reply)
 *                          ▼
 *                 upstreams in turn (UDP, EDNS0 1232 bytes; a truncated reply asked again over TCP;
 *                 2 s each) ─► cached for the smallest TTL of the answer, or a negative reply for
 *                 its SOA's min(TTL, minimum) (RFC 2308), at most 1 h; SERVFAIL when none answers
 *
 * The cache holds at most `maxEntries` replies; the least recently used goes first.
 *
 * Against poisoning of that cache (shared by every pod of the node), each UDP query has a socket of
 * its own, connected to the upstream asked: a fresh random source port besides the random id, and
 * the kernel takes replies from that upstream's address and port only (a pod can reach the node's
 * sockets directly, so a reply from anywhere else would be an attacker's guess at the id).
 */
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { isIPv6 } from 'node:net';
import { randomInt } from 'node:crypto';
import dnsPacket, { type Answer, type DecodedPacket, type Question } from 'dns-packet';
import { errorMessage } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';
import { framed, readTcpMessages } from './tcp-framing.js';
import type { Upstream } from './upstreams.js';

/** What a forwarded question got: the upstream's sections (its OPT left out). */
export interface ForwardedReply {
  rcode: string;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

export interface ForwarderOptions {
  upstreams: readonly Upstream[];
  /** Per upstream and attempt; default 2000 ms. */
  timeoutMs?: number;
  /** Replies kept at most; default 10,000. */
  maxEntries?: number;
  /** Longest a reply is kept, seconds; default 3600. */
  maxTtl?: number;
  now?: () => number;
  log: Logger;
}

interface CacheEntry {
  reply: ForwardedReply;
  storedAtMs: number;
  expiresAtMs: number;
}

const UPSTREAM_PAYLOAD = 1232;

export class Forwarder {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<ForwardedReply>>();
  /** The UDP sockets of queries waiting for their reply. */
  private readonly open = new Set<Socket>();
  private readonly now: () => number;
  private closed = false;
  /** Replies served from the cache, and asked upstream (tests and metrics read them). */
  hits = 0;
  misses = 0;

  constructor(private readonly options: ForwarderOptions) {
    this.now = options.now ?? Date.now;
  }

  async resolve(question: Question): Promise<ForwardedReply> {
    const key = `${question.name.toLowerCase()}|${question.type}|${question.class ?? 'IN'}`;
    const cached = this.cache.get(key);
    const now = this.now();
    if (cached !== undefined && cached.expiresAtMs > now) {
      this.cache.delete(key); // to the back: most recently used
      this.cache.set(key, cached);
      this.hits++;
      return aged(cached.reply, Math.floor((now - cached.storedAtMs) / 1000));
    }
    if (cached !== undefined) this.cache.delete(key);
    let flight = this.inFlight.get(key);
    if (flight === undefined) {
      this.misses++;
      flight = this.ask(question).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, flight);
      const reply = await flight;
      this.store(key, reply);
      return reply;
    }
    return flight;
  }

  close(): void {
    this.closed = true;
    for (const socket of this.open) socket.close();
    this.open.clear();
    this.cache.clear();
  }

  /** How many replies the cache holds. */
  get size(): number {
    return this.cache.size;
  }

  private store(key: string, reply: ForwardedReply): void {
    const ttl = cacheSeconds(reply);
    if (ttl === undefined || ttl <= 0) return;
    const now = this.now();
    this.cache.set(key, {
      reply,
      storedAtMs: now,
      expiresAtMs: now + Math.min(ttl, this.options.maxTtl ?? 3600) * 1000,
    });
    const max = this.options.maxEntries ?? 10_000;
    while (this.cache.size > max) this.cache.delete(this.cache.keys().next().value!);
  }

  private async ask(question: Question): Promise<ForwardedReply> {
    for (const upstream of this.options.upstreams) {
      if (this.closed) break;
      try {
        let reply = await this.askUdp(upstream, question);
        if (reply.flag_tc) reply = await this.askTcp(upstream, question);
        return {
          rcode: (reply as DecodedPacket & { rcode?: string }).rcode ?? 'NOERROR',
          answers: reply.answers ?? [],
          authorities: reply.authorities ?? [],
          additionals: (reply.additionals ?? []).filter((a) => a.type !== 'OPT'),
        };
      } catch (err) {
        this.options.log.debug(
          { upstream: `${upstream.address}:${upstream.port}`, name: question.name, err: errorMessage(err) },
          'upstream did not answer',
        );
      }
    }
    return { rcode: 'SERVFAIL', answers: [], authorities: [], additionals: [] };
  }

  private query(id: number, question: Question): Buffer {
    return dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [question],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: UPSTREAM_PAYLOAD, flags: 0 } as Answer],
    });
  }

  private askUdp(upstream: Upstream, question: Question): Promise<DecodedPacket> {
    const id = randomInt(0x10000);
    const socket = createSocket(isIPv6(upstream.address) ? 'udp6' : 'udp4');
    this.open.add(socket);
    const timeoutMs = this.options.timeoutMs ?? 2000;
    return new Promise<DecodedPacket>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | undefined, reply?: DecodedPacket) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.open.delete(socket)) socket.close();
        if (err !== undefined) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => finish(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
      socket.on('error', (err) => finish(err));
      socket.on('message', (message) => {
        let reply: DecodedPacket;
        try {
          reply = dnsPacket.decode(message);
        } catch {
          return; // not a DNS message: ignored, the query times out or another reply comes
        }
        const got = reply.questions?.[0];
        if (
          reply.id !== id ||
          got === undefined ||
          got.name.toLowerCase() !== question.name.toLowerCase() ||
          got.type !== question.type
        )
          return; // not the reply to this query
        finish(undefined, reply);
      });
      socket.connect(upstream.port, upstream.address, () =>
        socket.send(this.query(id, question), (err) => {
          if (err) finish(err);
        }),
      );
    });
  }

  private askTcp(upstream: Upstream, question: Question): Promise<DecodedPacket> {
    const id = randomInt(0x10000);
    return new Promise<DecodedPacket>((resolve, reject) => {
      const socket = connect({ host: upstream.address, port: upstream.port });
      const timer = setTimeout(
        () => socket.destroy(new Error('no reply over TCP in time')),
        this.options.timeoutMs ?? 2000,
      );
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.on('connect', () => socket.write(framed(this.query(id, question))));
      readTcpMessages(socket, (message) => {
        clearTimeout(timer);
        socket.destroy();
        try {
          const reply = dnsPacket.decode(message);
          if (reply.id !== id) throw new Error('reply to another query');
          resolve(reply);
        } catch (err) {
          reject(err);
        }
      });
      socket.on('close', () => {
        clearTimeout(timer);
        reject(new Error('connection closed before a reply'));
      });
    });
  }
}

/** How long a reply may be kept (RFC 2308 for negative ones); undefined: not at all. */
export function cacheSeconds(reply: ForwardedReply): number | undefined {
  if (reply.rcode !== 'NOERROR' && reply.rcode !== 'NXDOMAIN') return undefined;
  if (reply.answers.length > 0) return Math.min(...reply.answers.map((a) => ttlOf(a)));
  const soa = reply.authorities.find((a) => a.type === 'SOA');
  if (soa === undefined || soa.type !== 'SOA') return undefined;
  return Math.min(ttlOf(soa), soa.data.minimum ?? 0);
}

function ttlOf(answer: Answer): number {
  return 'ttl' in answer && answer.ttl !== undefined ? answer.ttl : 0;
}

/** The reply with every TTL less `seconds` (never below 0). */
function aged(reply: ForwardedReply, seconds: number): ForwardedReply {
  if (seconds <= 0) return reply;
  const age = (list: Answer[]): Answer[] =>
    list.map((a) =>
      'ttl' in a && a.ttl !== undefined ? ({ ...a, ttl: Math.max(0, a.ttl - seconds) } as Answer) : a,
    );
  return {
    ...reply,
    answers: age(reply.answers),
    authorities: age(reply.authorities),
    additionals: age(reply.additionals),
  };
}
