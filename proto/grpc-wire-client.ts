/**
 * The client side of gRPC over HTTP/2 (the protocol as the gRPC spec's PROTOCOL-HTTP2 describes
 * it), on our own HTTP/2 client (http2-connection.ts): unary, server-streaming and bidirectional
 * (or client-streaming) calls on one lazily dialled connection, with
 * deadlines (sent as grpc-timeout, enforced here too), metadata, keepalive pings while calls are
 * open, a receive size limit, and the call's status read from the trailers (or from the headers
 * of a trailers-only answer).
 *
 * Why not grpc-js's client, when the control plane serves with grpc-js: a one-shot `skiff get`
 * spent ~40 of its ~100 ms loading grpc-js (900 KB with the proto-loader it pulls in) and running
 * its first call through resolver, load balancer, channel and filter stack, none of which a client
 * of one known address needs. Errors come out as GrpcCallError (a status code, details and the
 * trailers), which proto/grpc-status.ts turns into skiff's error vocabulary. Why not node:http2
 * either: see http2-connection.ts (loading it costs a one-shot CLI more than the rest of its work).
 */
import { isUnixAddress } from './api-address.js';
import { InvalidArgumentError } from './errors.js';
import { GRPC_CODE } from './grpc-status.js';
import {
  H2_ERROR,
  Http2Error,
  connectHttp2,
  type HeaderField,
  type Http2ClientConnection,
  type Http2ClientStream,
  type Http2TlsOptions,
} from './http2-connection.js';

/**
 * A failed call: the gRPC status, its message, and the metadata that came with it.
 * `requestHeadersTooLarge`: the server refused the call's headers for their size (what the
 * caller then says depends on what it sent: grpc-status.ts names the token).
 */
export class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    readonly metadata: CallMetadata = new CallMetadata(),
    readonly requestHeadersTooLarge = false,
  ) {
    super(`${code} ${details}`);
  }
}

/**
 * Request headers past this size that the server refuses unanswered were refused for their size.
 * Node's HTTP/2 server (grpc-js's) answers HTTP 431 to a header list over its limit without
 * advertising one, and ends the connection with COMPRESSION_ERROR for a field over 64 KiB (which
 * http2-connection.ts refuses to send, as node:http2's client did); others reset with
 * REFUSED_STREAM or COMPRESSION_ERROR.
 */
const LARGE_REQUEST_HEADER_BYTES = 16 * 1024;

/** Response metadata (headers and trailers), read as grpc-js's Metadata is: get(key) → values. */
export class CallMetadata {
  private readonly values = new Map<string, string[]>();

  static fromHeaders(
    ...headers: Array<Record<string, string | string[] | undefined> | undefined>
  ): CallMetadata {
    const metadata = new CallMetadata();
    for (const each of headers) {
      if (each === undefined) continue;
      for (const [key, value] of Object.entries(each)) {
        if (key.startsWith(':') || value === undefined) continue;
        metadata.values.set(key, Array.isArray(value) ? value : [String(value)]);
      }
    }
    return metadata;
  }

  /** Header fields as received (a name may repeat: each is one more value). */
  static fromFields(...lists: Array<readonly HeaderField[] | undefined>): CallMetadata {
    const metadata = new CallMetadata();
    for (const fields of lists) {
      for (const [name, value] of fields ?? []) {
        if (name.startsWith(':')) continue;
        const values = metadata.values.get(name);
        if (values === undefined) metadata.values.set(name, [value]);
        else values.push(value);
      }
    }
    return metadata;
  }

  get(key: string): string[] {
    return this.values.get(key.toLowerCase()) ?? [];
  }
}

export interface WireChannelOptions {
  /** Largest message accepted from the server, bytes. */
  maxReceiveBytes: number;
  /** A ping after this long without one while calls are open; no answer within the timeout ends the connection. */
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  /** Dial with TLS (ALPN h2): the CA to verify the server with and, for mutual TLS, a client certificate. */
  tls?: Http2TlsOptions;
}

export interface WireCallOptions {
  /** Request metadata, e.g. authorization. */
  metadata: Record<string, string>;
  /** Milliseconds from now; undefined or Infinity: none. */
  timeoutMs?: number;
}

/** A server-streaming call: its messages in order; cancel() ends it (the iteration then ends). */
export interface WireStream extends AsyncIterable<Buffer> {
  cancel(): void;
}

/**
 * A bidirectional call (a client-streaming one is the same with one answer): messages go out with
 * send, come in through the iteration (one consumer), each way under flow control. The iteration
 * ends with the call: normally when the server ends it with OK, throwing its GrpcCallError
 * otherwise; leaving the iteration early cancels the call.
 */
export interface WireDuplex extends AsyncIterable<Buffer> {
  /**
   * Queues one message. Resolves true once the call takes more (less than DUPLEX_SEND_HIGH_WATER
   * bytes of it wait for the server's windows or the socket), false when the call has ended and
   * the message was dropped. A writer that awaits each send so holds a bounded amount.
   */
  send(message: Buffer): Promise<boolean>;
  /**
   * One message made of `parts` (their concatenation), queued without copying them: a frame's
   * small head and a large payload go out as they are. Resolves as send does.
   */
  sendParts(parts: readonly Buffer[]): Promise<boolean>;
  /** Ends this side (the server's request stream ends after what was sent); the answers go on. */
  end(): void;
  cancel(): void;
  /**
   * Settles when the call ends: undefined for OK, else its GrpcCallError. Never rejects. The
   * server's status settles it as it arrives, even while messages before it wait unread (a
   * consumer that stopped reading still learns that the call is over).
   */
  readonly ended: Promise<GrpcCallError | undefined>;
}

/** A duplex call's send waits while this much of what it sent has not gone out. */
export const DUPLEX_SEND_HIGH_WATER = 256 * 1024;
/** A duplex call stops reading from the connection while its consumer holds this much unread. */
const DUPLEX_RECEIVE_HIGH_WATER_BYTES = 1024 * 1024;

const GRPC_HEADER_BYTES = 5;
/** Receive windows: a 10,000-pod list is ~15 MB; HTTP/2's default 64 KiB window paces it by round trips. */
const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/** A message not yet whole gets a buffer of its whole size at once up to this size (WireCall.take). */
const EAGER_MESSAGE_BYTES = 256 * 1024;
/** Messages a stream may hold unread before it stops reading from the connection. */
const STREAM_HIGH_WATER = 256;

/** An HTTP status that is not 200 as the gRPC spec maps it (the server was not a gRPC server, or a proxy answered). */
function codeOfHttpStatus(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GRPC_CODE.INTERNAL;
    case 401:
      return GRPC_CODE.UNAUTHENTICATED;
    case 403:
      return GRPC_CODE.PERMISSION_DENIED;
    case 404:
      return GRPC_CODE.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_CODE.UNAVAILABLE;
    default:
      return GRPC_CODE.UNKNOWN;
  }
}

/** A stream reset by the peer, in the words grpc-js uses (grpc-status.ts recognises code 9). */
function codeOfReset(rstCode: number): number {
  switch (rstCode) {
    case H2_ERROR.REFUSED_STREAM:
      return GRPC_CODE.UNAVAILABLE;
    case H2_ERROR.CANCEL:
      return GRPC_CODE.CANCELLED;
    case H2_ERROR.ENHANCE_YOUR_CALM:
      return GRPC_CODE.RESOURCE_EXHAUSTED;
    case H2_ERROR.INADEQUATE_SECURITY:
      return GRPC_CODE.PERMISSION_DENIED;
    default:
      return GRPC_CODE.INTERNAL;
  }
}

/** grpc-timeout: at most 8 digits and a unit. */
function grpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  return whole < 1e8 ? `${whole}m` : `${Math.min(99_999_999, Math.ceil(whole / 1000))}S`;
}

/** A transport failure as a call's status: what the caller may retry is UNAVAILABLE. */
function codeOfTransportError(error: Http2Error): number {
  if (error.tooLarge === 'response-headers') return GRPC_CODE.RESOURCE_EXHAUSTED;
  if (error.scope === 'socket' || error.scope === 'goaway') return GRPC_CODE.UNAVAILABLE;
  return GRPC_CODE.INTERNAL;
}

/** The first value of `name` in a header list. */
function fieldOf(fields: readonly HeaderField[] | undefined, name: string): string | undefined {
  return fields?.find((field) => field[0] === name)?.[1];
}

/** grpc-message is percent-encoded UTF-8. */
function decodeGrpcMessage(text: string | undefined): string {
  if (text === undefined) return '';
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function framed(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(GRPC_HEADER_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, GRPC_HEADER_BYTES);
  return frame;
}

/** One gRPC call on an HTTP/2 stream: its messages as they complete, and how it ended. */
class WireCall {
  /**
   * The start of a message not yet whole, copied into a buffer grown by doubling, and the bytes it
   * needs in all. Copied: a chunk is a view into the socket's read, so keeping the chunks let a
   * server trickling 1-byte DATA frames pin every 64 KB read (and a Buffer object) per byte.
   */
  private pending = Buffer.alloc(0);
  private pendingBytes = 0;
  private pendingNeeded = 0;
  private headers: HeaderField[] | undefined;
  private trailers: HeaderField[] | undefined;
  private settled = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Set once the connection opened the stream (it may open it at once, and report on it at once). */
  stream: Http2ClientStream | undefined;

  constructor(
    private readonly requestHeaderBytes: number,
    private readonly maxReceiveBytes: number,
    timeoutMs: number | undefined,
    private readonly onMessage: (message: Buffer) => void,
    private readonly onEnd: (error: GrpcCallError | undefined) => void,
    private readonly onDrain?: () => void,
    /** The server's status as soon as its trailers arrive, before messages a pause still holds. */
    private readonly onStatus?: (error: GrpcCallError | undefined) => void,
  ) {
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
      this.deadlineTimer = setTimeout(
        () => this.fail(new GrpcCallError(GRPC_CODE.DEADLINE_EXCEEDED, 'Deadline exceeded')),
        Math.max(0, timeoutMs),
      );
    }
  }

  /** The stream's events, as http2-connection.ts reports them. */
  readonly handler = {
    onResponseHeaders: (fields: HeaderField[]): void => {
      this.headers = fields;
      const httpStatus = Number(fieldOf(fields, ':status'));
      // 431 Request Header Fields Too Large: Node's server (grpc-js's) for a list past its limit
      if (httpStatus === 431 && this.requestHeaderBytes > LARGE_REQUEST_HEADER_BYTES)
        return this.failRefusedForSize(`the server answered HTTP 431`);
      if (httpStatus !== 200) {
        this.fail(
          new GrpcCallError(
            codeOfHttpStatus(httpStatus),
            `the server answered HTTP ${httpStatus}, not gRPC`,
            CallMetadata.fromFields(fields),
          ),
        );
      }
    },
    onData: (chunk: Buffer): void => this.take(chunk),
    // Trailers arrive as soon as the server sends them, while messages before them may still wait
    // unread (a paused stream): the call ends with the stream's end.
    onTrailers: (fields: HeaderField[]): void => {
      this.trailers = fields;
      if (!this.settled) this.onStatus?.(this.statusError(fields));
    },
    // without trailers: a trailers-only answer carries the status in its headers
    onEnd: (): void => this.finish(this.trailers),
    onReset: (code: number): void => this.failReset(code),
    onError: (error: Http2Error): void => {
      if (error.tooLarge === 'request-headers' || this.refusedForSize(error.errorCode))
        return this.failRefusedForSize(error.message);
      this.fail(new GrpcCallError(codeOfTransportError(error), error.message));
    },
    onDrain: (): void => this.onDrain?.(),
  };

  /** A refusal of the request unanswered, for a code servers give for headers larger than they take. */
  private refusedForSize(code: number): boolean {
    return (
      this.headers === undefined &&
      this.requestHeaderBytes > LARGE_REQUEST_HEADER_BYTES &&
      (code === H2_ERROR.REFUSED_STREAM || code === H2_ERROR.COMPRESSION_ERROR)
    );
  }

  private failRefusedForSize(message: string): void {
    this.fail(new GrpcCallError(GRPC_CODE.INVALID_ARGUMENT, message, undefined, true));
  }

  private failReset(rstCode: number): void {
    if (this.refusedForSize(rstCode))
      return this.failRefusedForSize(`Received RST_STREAM with code ${rstCode}`);
    this.fail(new GrpcCallError(codeOfReset(rstCode), `Received RST_STREAM with code ${rstCode}`));
  }

  cancel(): void {
    this.fail(new GrpcCallError(GRPC_CODE.CANCELLED, 'Cancelled on client'));
  }

  /** Splits the bytes into messages; a message may span chunks. */
  private take(chunk: Buffer): void {
    if (this.settled) return;
    let bytes = chunk;
    if (this.pendingBytes > 0) {
      const total = this.pendingBytes + chunk.length;
      if (total > this.pending.length) {
        // grown by doubling (at most to what the message needs, or what came): joining at every
        // chunk copied a 15 MB answer ~900 times; the buffer is never more than twice what came
        const grown = Buffer.allocUnsafe(
          Math.max(total, Math.min(this.pendingNeeded, 2 * this.pending.length)),
        );
        this.pending.copy(grown, 0, 0, this.pendingBytes);
        this.pending = grown;
      }
      chunk.copy(this.pending, this.pendingBytes);
      this.pendingBytes = total;
      // a header just completed is read (and its length checked) below, the message kept on
      if (total < this.pendingNeeded) return;
      bytes = this.pending.subarray(0, total);
      this.pending = Buffer.alloc(0);
      this.pendingBytes = 0;
    }
    let at = 0;
    while (bytes.length - at >= GRPC_HEADER_BYTES) {
      if (bytes[at] !== 0) {
        this.fail(
          new GrpcCallError(
            GRPC_CODE.INTERNAL,
            'the server sent a compressed message, which was not asked for',
          ),
        );
        return;
      }
      const length = bytes.readUInt32BE(at + 1);
      if (length > this.maxReceiveBytes) {
        this.fail(
          new GrpcCallError(
            GRPC_CODE.RESOURCE_EXHAUSTED,
            `Received message larger than max (${length} vs. ${this.maxReceiveBytes})`,
          ),
        );
        return;
      }
      if (bytes.length - at - GRPC_HEADER_BYTES < length) break;
      this.onMessage(bytes.subarray(at + GRPC_HEADER_BYTES, at + GRPC_HEADER_BYTES + length));
      at += GRPC_HEADER_BYTES + length;
      if (this.settled) return;
    }
    if (at < bytes.length) {
      const rest = bytes.subarray(at);
      this.pendingNeeded =
        rest.length >= GRPC_HEADER_BYTES ? GRPC_HEADER_BYTES + rest.readUInt32BE(1) : GRPC_HEADER_BYTES;
      // room for the whole message when it is small (one copy of each chunk, no regrowth); a large
      // one grows by doubling from what came, so a trickling server makes it hold at most twice that
      this.pending = Buffer.allocUnsafe(
        Math.max(rest.length, this.pendingNeeded <= EAGER_MESSAGE_BYTES ? this.pendingNeeded : 0),
      );
      rest.copy(this.pending);
      this.pendingBytes = rest.length;
    }
  }

  private finish(trailers: HeaderField[] | undefined): void {
    if (this.settled) return;
    const error = this.statusError(trailers);
    if (error === undefined && this.pendingBytes > 0) {
      this.settle(new GrpcCallError(GRPC_CODE.INTERNAL, 'the call ended inside a message'));
      return;
    }
    this.settle(error);
  }

  /** The status the trailers (or a trailers-only answer's headers) carry: undefined for OK. */
  private statusError(trailers: HeaderField[] | undefined): GrpcCallError | undefined {
    const source = trailers ?? this.headers;
    const status = fieldOf(source, 'grpc-status');
    if (status === undefined)
      return new GrpcCallError(GRPC_CODE.UNKNOWN, 'the server ended the call without a status');
    const code = Number(status);
    if (code === GRPC_CODE.OK) return undefined;
    return new GrpcCallError(
      code,
      decodeGrpcMessage(fieldOf(source, 'grpc-message')),
      CallMetadata.fromFields(this.headers, trailers),
    );
  }

  private fail(error: GrpcCallError): void {
    if (this.settled) return;
    this.settle(error);
    this.stream?.close(H2_ERROR.CANCEL);
  }

  private settle(error: GrpcCallError | undefined): void {
    this.settled = true;
    clearTimeout(this.deadlineTimer);
    this.onEnd(error);
  }

  /** Whether the call is over (its onEnd was called). */
  get done(): boolean {
    return this.settled;
  }

  pause(): void {
    this.stream?.pause();
  }

  resume(): void {
    this.stream?.resume();
  }
}

/** The connection to one server and the calls made on it. */
export class WireChannel {
  private session: Http2ClientConnection | undefined;
  private openCalls = 0;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** What `:authority` says: the address, or for a Unix socket `localhost` (as grpc-js's client says). */
  private readonly authority: string;

  constructor(
    /** `host:port`, or `unix:///path` (a Unix socket: no TLS). */
    private readonly address: string,
    private readonly options: WireChannelOptions,
  ) {
    const unix = isUnixAddress(address);
    if (unix && options.tls !== undefined) {
      throw new InvalidArgumentError(
        `connect to ${address}: a Unix socket carries no TLS (the socket's owner and mode are what keep it private): give no certificate-authority or client certificate for it`,
        'tls',
      );
    }
    this.authority = unix ? 'localhost' : address;
  }

  unary(path: string, request: Buffer, call: WireCallOptions): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let response: Buffer | undefined;
      let extra = false;
      this.start(
        path,
        request,
        call,
        (message) => {
          if (response === undefined) response = message;
          else extra = true;
        },
        (error) => {
          if (error !== undefined) reject(error);
          else if (response === undefined)
            reject(new GrpcCallError(GRPC_CODE.UNIMPLEMENTED, 'the server sent no response message'));
          else if (extra)
            reject(
              new GrpcCallError(GRPC_CODE.UNIMPLEMENTED, 'the server sent more than one response message'),
            );
          else resolve(response);
        },
      );
    });
  }

  serverStream(path: string, request: Buffer, call: WireCallOptions): WireStream {
    const queue: Buffer[] = [];
    let ended = false;
    let failure: GrpcCallError | undefined;
    let wake: (() => void) | undefined;
    let paused = false;
    const signal = (): void => {
      const waiting = wake;
      wake = undefined;
      waiting?.();
    };
    const wireCall = this.start(
      path,
      request,
      call,
      (message) => {
        queue.push(message);
        if (queue.length >= STREAM_HIGH_WATER && !paused) {
          paused = true;
          wireCall?.pause();
        }
        signal();
      },
      (error) => {
        ended = true;
        failure = error;
        signal();
      },
    );
    return {
      cancel: () => wireCall?.cancel(),
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            const message = queue.shift();
            if (message !== undefined) {
              if (paused && queue.length < STREAM_HIGH_WATER / 2) {
                paused = false;
                wireCall?.resume();
              }
              yield message;
              continue;
            }
            if (ended) {
              if (failure !== undefined) throw failure;
              return;
            }
            await new Promise<void>((resolve) => (wake = resolve));
          }
        } finally {
          if (!ended) wireCall?.cancel();
        }
      },
    };
  }

  /**
   * A bidirectional (or client-streaming) call on `path`; nothing is sent until `send`. No deadline
   * unless `call.timeoutMs` gives one.
   */
  duplex(path: string, call: WireCallOptions): WireDuplex {
    const queue: Buffer[] = [];
    let queuedBytes = 0;
    let ended = false;
    let failure: GrpcCallError | undefined;
    let wake: (() => void) | undefined;
    let paused = false;
    const writers: Array<(more: boolean) => void> = [];
    let settle!: (error: GrpcCallError | undefined) => void;
    const endedPromise = new Promise<GrpcCallError | undefined>((resolve) => (settle = resolve));
    const signal = (): void => {
      const waiting = wake;
      wake = undefined;
      waiting?.();
    };
    const releaseWriters = (more: boolean): void => {
      for (const resolve of writers.splice(0)) resolve(more);
    };
    const wireCall = this.start(
      path,
      undefined,
      call,
      (message) => {
        queue.push(message);
        queuedBytes += message.length;
        if (
          !paused &&
          (queue.length >= STREAM_HIGH_WATER || queuedBytes >= DUPLEX_RECEIVE_HIGH_WATER_BYTES)
        ) {
          paused = true;
          wireCall?.pause();
        }
        signal();
      },
      (error) => {
        ended = true;
        failure = error;
        releaseWriters(false);
        settle(error);
        signal();
      },
      () => releaseWriters(true),
      // the server is done: what it still sends is held for the iteration, the outcome known now
      (error) => {
        releaseWriters(false);
        settle(error);
      },
    );
    const stream = (): Http2ClientStream | undefined =>
      wireCall?.done === false ? wireCall.stream : undefined;
    const sendParts = (parts: readonly Buffer[]): Promise<boolean> => {
      const open = stream();
      if (open === undefined || ended) return Promise.resolve(false);
      // the gRPC header, then the parts as they are: a large payload is never copied here
      let length = 0;
      for (const part of parts) length += part.length;
      const header = Buffer.allocUnsafe(GRPC_HEADER_BYTES);
      header[0] = 0;
      header.writeUInt32BE(length, 1);
      open.write(header);
      for (const part of parts) if (part.length > 0) open.write(part);
      if (open.queuedBytes < DUPLEX_SEND_HIGH_WATER) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => writers.push(resolve));
    };
    return {
      ended: endedPromise,
      send: (message) => sendParts([message]),
      sendParts: (parts) => sendParts(parts),
      end: () => stream()?.write(Buffer.alloc(0), true),
      cancel: () => wireCall?.cancel(),
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            const message = queue.shift();
            if (message !== undefined) {
              queuedBytes -= message.length;
              if (
                paused &&
                queue.length < STREAM_HIGH_WATER / 2 &&
                queuedBytes < DUPLEX_RECEIVE_HIGH_WATER_BYTES / 2
              ) {
                paused = false;
                wireCall?.resume();
              }
              yield message;
              continue;
            }
            if (ended) {
              if (failure !== undefined) throw failure;
              return;
            }
            await new Promise<void>((resolve) => (wake = resolve));
          }
        } finally {
          if (!ended) wireCall?.cancel();
        }
      },
    };
  }

  /** Ends the connection and every call on it. */
  close(): void {
    this.closed = true;
    clearTimeout(this.keepaliveTimer);
    this.session?.destroy();
    this.session = undefined;
  }

  /** Opens the call; `request` given: the one request message, which ends the request stream. */
  private start(
    path: string,
    request: Buffer | undefined,
    call: WireCallOptions,
    onMessage: (message: Buffer) => void,
    onEnd: (error: GrpcCallError | undefined) => void,
    onDrain?: () => void,
    onStatus?: (error: GrpcCallError | undefined) => void,
  ): WireCall | undefined {
    if (this.closed) {
      onEnd(new GrpcCallError(GRPC_CODE.UNAVAILABLE, 'the client was closed'));
      return undefined;
    }
    const headers: HeaderField[] = [
      [':method', 'POST'],
      [':scheme', this.options.tls === undefined ? 'http' : 'https'],
      [':path', path],
      [':authority', this.authority],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ['user-agent', 'skiff'],
    ];
    for (const [key, value] of Object.entries(call.metadata)) headers.push([key.toLowerCase(), value]);
    if (call.timeoutMs !== undefined && Number.isFinite(call.timeoutMs))
      headers.push(['grpc-timeout', grpcTimeout(call.timeoutMs)]);
    const invalid = headers.find(([, value]) => /[\0\r\n]/.test(value));
    if (invalid !== undefined) {
      onEnd(
        new GrpcCallError(GRPC_CODE.UNAVAILABLE, `Invalid character in header content ["${invalid[0]}"]`),
      );
      return undefined;
    }
    let headerBytes = 0;
    for (const [key, value] of headers) if (!key.startsWith(':')) headerBytes += key.length + value.length;
    this.callOpened();
    const wireCall = new WireCall(
      headerBytes,
      this.options.maxReceiveBytes,
      call.timeoutMs,
      onMessage,
      (error) => {
        this.callClosed();
        onEnd(error);
      },
      onDrain,
      onStatus,
    );
    let stream: Http2ClientStream;
    try {
      stream = this.connection().request(headers, wireCall.handler);
    } catch (err) {
      // the connection refused new streams (it ended, or the server is going away): dial again next call
      wireCall.handler.onError(
        err instanceof Http2Error ? err : new Http2Error(String(err), H2_ERROR.INTERNAL_ERROR, 'socket'),
      );
      return undefined;
    }
    wireCall.stream = stream;
    if (request !== undefined) stream.write(framed(request), true);
    return wireCall;
  }

  private connection(): Http2ClientConnection {
    if (this.session !== undefined && this.session.acceptsStreams) return this.session;
    const session = connectHttp2(this.address, {
      streamWindowBytes: STREAM_WINDOW_BYTES,
      connectionWindowBytes: CONNECTION_WINDOW_BYTES,
      ...(this.options.tls !== undefined ? { tls: this.options.tls } : {}),
      // after GOAWAY or the end of the connection, the next call dials a new one
      onUnusable: () => {
        if (this.session === session) this.session = undefined;
      },
    });
    this.session = session;
    return session;
  }

  private callOpened(): void {
    if (this.openCalls++ === 0) this.armKeepalive();
  }

  private callClosed(): void {
    if (--this.openCalls > 0) return;
    // an idle connection does not keep the process alive (http2-connection.ts unrefs its socket):
    // a CLI ends when its work is done
    clearTimeout(this.keepaliveTimer);
  }

  private armKeepalive(): void {
    clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = setTimeout(() => {
      const session = this.session;
      if (session === undefined || this.openCalls === 0) return;
      const timeout = setTimeout(() => {
        session.destroy(
          new Error('the control plane did not answer a keepalive ping: the connection dropped'),
        );
      }, this.options.keepaliveTimeoutMs);
      timeout.unref();
      session.ping((err) => {
        clearTimeout(timeout);
        if (err) session.destroy(err);
        else this.armKeepalive();
      });
    }, this.options.keepaliveMs);
    this.keepaliveTimer.unref();
  }
}
