/**
 * QueryHandler: one DNS query message in, its reply message out (or nothing: the query is dropped).
 * No socket here; the server (dns-server.ts) carries the bytes.
 *
 *   bytes ─► shorter than a header, or a response, not a query ─► dropped (no reflection loops)
 *              │ header counts not 1 question, 0 answers, 0 authorities, ≤ 2 additionals ─► FORMERR
 *              │   (before decoding: chains of compression pointers make decoding quadratic)
 *              ▼
 *            dns-packet decode ──fails──► FORMERR
 *              │ opcode ≠ QUERY ─► NOTIMP;  not exactly one question ─► FORMERR;  class ≠ IN ─► REFUSED
 *              ▼
 *   ClusterRecords.lookup ── the cluster's (authoritative: AA) ──┐
 *              │ not ours                                       │ ExternalName: its target resolved
 *              ▼                                                 │ the same way and appended
 *   Forwarder.resolve (upstreams, TTL cache) ─────────────────────┤
 *                                                                ▼
 *   encode; over UDP a reply longer than the client's limit (512 bytes, or its EDNS0 payload size,
 *   at most 4096) goes with TC set and no records, so the client asks again over TCP (where the
 *   limit is the 64 KiB a length prefix can say)
 *
 * Replies built from cluster records are kept by the query's bytes (all but its id) until the
 * records change, so a repeated question costs a map lookup and a copy; forwarded replies are not
 * (their TTLs count down in the Forwarder's cache).
 */
import dnsPacket, { type Answer, type DecodedPacket, type Packet, type Question } from 'dns-packet';
import type { ClusterRecords } from './cluster-records.js';
import type { ForwardedReply } from './forwarder.js';
import { MAX_TCP_MESSAGE } from './tcp-framing.js';

export type Transport = 'udp' | 'tcp';

/** RFC 1035's and RFC 6895's header rcodes, as dns-packet names them. */
const RCODES = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'YXDOMAIN',
  'YXRRSET',
  'NXRRSET',
  'NOTAUTH',
  'NOTZONE',
];
const OPCODE_BITS = 0x7800;
const QR_BIT = 0x80; // in the third byte
/** The largest UDP reply sent, whatever a client offers (what EDNS0 servers commonly cap at). */
export const MAX_UDP_PAYLOAD = 4096;
const CLASSIC_UDP_PAYLOAD = 512;
const MAX_CHASE = 8;
const MAX_CACHED_REPLIES = 10_000;
/**
 * And at most this many bytes of them: the key is the query's bytes, so one large answer (a
 * headless Service of many endpoints, up to 64 KiB over TCP) asked with 10,000 spellings (letter
 * case, EDNS options) would otherwise hold 640 MB.
 */
const MAX_CACHED_REPLY_BYTES = 16 << 20;

export interface QueryHandlerOptions {
  records: ClusterRecords;
  forward: (question: Question) => Promise<ForwardedReply>;
}

interface Reply {
  rcode: string;
  authoritative: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

export class QueryHandler {
  private readonly replies = new Map<string, Buffer>();
  private repliesGeneration = -1;
  /** Bytes of the replies kept (with their keys); tests read it. */
  repliesBytes = 0;

  constructor(private readonly options: QueryHandlerOptions) {}

  /** The reply to `query`, or undefined to drop it. Never throws. */
  answer(query: Buffer, transport: Transport): Buffer | undefined | Promise<Buffer | undefined> {
    if (query.length < 12 || (query[2]! & QR_BIT) !== 0) return undefined;
    const key = transport === 'udp' ? 'u' + query.toString('latin1', 2) : 't' + query.toString('latin1', 2);
    if (this.repliesGeneration !== this.options.records.generation) {
      this.replies.clear();
      this.repliesBytes = 0;
      this.repliesGeneration = this.options.records.generation;
    }
    if (!plainQueryCounts(query))
      return encodeReply(
        { id: query.readUInt16BE(0), flags: query.readUInt16BE(2) },
        [],
        'FORMERR',
        undefined,
      );
    const kept = this.replies.get(key);
    if (kept !== undefined) {
      const reply = Buffer.from(kept);
      reply[0] = query[0]!;
      reply[1] = query[1]!;
      return reply;
    }
    let decoded: DecodedPacket;
    try {
      decoded = dnsPacket.decode(query);
    } catch {
      return encodeReply({ id: query.readUInt16BE(0), flags: 0 }, [], 'FORMERR', undefined);
    }
    const opcode = (decoded as DecodedPacket & { opcode?: string }).opcode;
    const opt = decoded.additionals?.find((a) => a.type === 'OPT');
    const limit =
      transport === 'tcp'
        ? MAX_TCP_MESSAGE
        : opt !== undefined && 'udpPayloadSize' in opt
          ? Math.min(Math.max(opt.udpPayloadSize, CLASSIC_UDP_PAYLOAD), MAX_UDP_PAYLOAD)
          : CLASSIC_UDP_PAYLOAD;
    const questions = decoded.questions ?? [];
    const header = { id: decoded.id ?? 0, flags: decoded.flags ?? 0 };
    if (opcode !== 'QUERY') return encodeReply(header, questions, 'NOTIMP', opt);
    if (questions.length !== 1) return encodeReply(header, questions, 'FORMERR', opt);
    const question = questions[0]!;
    if ((question.class ?? 'IN') !== 'IN') return encodeReply(header, questions, 'REFUSED', opt);
    const cluster = this.clusterReply(question);
    if (cluster !== undefined && cluster.chase === undefined) {
      const bytes = encodeReply(header, questions, cluster.reply, opt, limit);
      const size = bytes.length + key.length;
      if (this.replies.size >= MAX_CACHED_REPLIES || this.repliesBytes + size > MAX_CACHED_REPLY_BYTES) {
        this.replies.clear();
        this.repliesBytes = 0;
      }
      this.replies.set(key, bytes);
      this.repliesBytes += size;
      return bytes;
    }
    return this.slowReply(header, question, cluster, opt, limit);
  }

  private clusterReply(question: Question): { reply: Reply; chase?: string } | undefined {
    const found = this.options.records.lookup(question.name, question.type);
    if (found === undefined) return undefined;
    return {
      reply: { ...found, authoritative: true },
      ...(found.cname !== undefined ? { chase: found.cname } : {}),
    };
  }

  private async slowReply(
    header: { id: number; flags: number },
    question: Question,
    cluster: { reply: Reply; chase?: string } | undefined,
    opt: Answer | undefined,
    limit: number,
  ): Promise<Buffer | undefined> {
    try {
      let reply: Reply;
      if (cluster === undefined) reply = { ...(await this.options.forward(question)), authoritative: false };
      else {
        reply = cluster.reply;
        // an ExternalName: the target's records follow its CNAME, as CoreDNS gives them
        let target = cluster.chase;
        for (let depth = 0; target !== undefined && depth < MAX_CHASE; depth++) {
          const next = this.clusterReply({ ...question, name: target });
          const step = next?.reply ?? {
            ...(await this.options.forward({ ...question, name: target })),
            authoritative: false,
          };
          reply = {
            ...reply,
            rcode: step.rcode,
            answers: [...reply.answers, ...step.answers],
            authorities: step.answers.length > 0 ? [] : step.authorities,
          };
          target = next?.chase;
        }
      }
      return encodeReply(header, [question], reply, opt, limit);
    } catch {
      try {
        return encodeReply(header, [question], 'SERVFAIL', opt);
      } catch {
        return undefined;
      }
    }
  }
}

/**
 * The reply message: the query's id, opcode, RD and CD, RA set, AA for the cluster's answers; over
 * `limit` bytes, truncated (TC, no records). A reply that cannot be encoded is SERVFAIL.
 */
function encodeReply(
  query: { id: number; flags: number },
  questions: Question[],
  reply: Reply | string,
  opt: Answer | undefined,
  limit = Infinity,
): Buffer {
  const full: Reply =
    typeof reply === 'string'
      ? { rcode: reply, authoritative: false, answers: [], authorities: [], additionals: [] }
      : reply;
  const ourOpt: Answer[] =
    opt !== undefined
      ? [{ type: 'OPT', name: '.', udpPayloadSize: MAX_UDP_PAYLOAD, flags: 0 } as Answer]
      : [];
  const flags =
    (query.flags & (OPCODE_BITS | dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED)) |
    dnsPacket.RECURSION_AVAILABLE |
    (full.authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
    rcodeNumber(full.rcode);
  const packet: Packet = {
    type: 'response',
    id: query.id,
    flags,
    questions,
    answers: full.answers,
    authorities: full.authorities,
    additionals: [...full.additionals, ...ourOpt],
  };
  let bytes: Buffer;
  try {
    bytes = dnsPacket.encode(packet);
  } catch {
    if (full.rcode === 'SERVFAIL' && full.answers.length === 0) throw new Error('cannot encode the reply');
    return encodeReply(query, questions, 'SERVFAIL', opt, limit);
  }
  if (bytes.length <= limit) return bytes;
  return dnsPacket.encode({
    ...packet,
    flags: flags | dnsPacket.TRUNCATED_RESPONSE,
    answers: [],
    authorities: [],
    additionals: ourOpt,
  });
}

/**
 * Whether the header asks what a query may: one question, no answer or authority records, at most
 * two additional ones (OPT, a TSIG). Checked before dns-packet reads the rest: names may point back
 * at earlier names, so 10,000 questions each pointing at the one before (60 KB) took 35 ms of the
 * agent's event loop to decode, a pod's 30 such datagrams a second all of it (dns-server.test.ts).
 */
function plainQueryCounts(query: Buffer): boolean {
  return (
    query.readUInt16BE(4) === 1 &&
    query.readUInt16BE(6) === 0 &&
    query.readUInt16BE(8) === 0 &&
    query.readUInt16BE(10) <= 2
  );
}

function rcodeNumber(rcode: string): number {
  const n = RCODES.indexOf(rcode);
  if (n !== -1) return n;
  const other = /^RCODE_(\d+)$/.exec(rcode);
  return other ? Number(other[1]) & 0xf : 2;
}
