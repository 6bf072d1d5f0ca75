/**
 * The client side of one HTTP/2 connection (RFC 9113) over a socket, with what gRPC calls need:
 * streams that send a header list and a body and receive headers, data and trailers; flow control
 * both ways; PING, SETTINGS, GOAWAY, RST_STREAM; HPACK (hpack.ts).
 *
 * Why not node:http2: loading it costs a one-shot CLI process ~150M instructions (~25 ms of CPU;
 * 52 internal modules, http and tls among them) before the first byte is sent, while a client of
 * one known address needs a few hundred lines over node:net. The socket is given by the caller
 * (`connectHttp2` dials plaintext TCP, TLS with ALPN h2 when given `tls`, or a Unix socket);
 * node:tls is loaded only by a TLS dial, so a client of a plaintext server or of the control
 * plane's socket never pays for it (nor for node:crypto, which only TLS loads).
 *
 * What a server sends is bounded: frames by our MAX_FRAME_SIZE, header blocks (CONTINUATION
 * included) by a multiple of our MAX_HEADER_LIST_SIZE, decoded header lists by that size (a stream
 * error), DATA by the windows we granted. A violation ends the connection (GOAWAY with the error
 * code) or the stream (RST_STREAM), and the streams affected see an Http2Error; nothing throws
 * out of the socket's event handlers.
 *
 * Receive flow control: a stream's window is replenished as its data is consumed (delivered to a
 * stream that is not paused), so a paused stream stops the server after one window; the
 * connection's window is replenished as data arrives, since every stream's buffering is already
 * bounded by its own window and one paused stream must not stall the others.
 *
 * Send flow control: a stream's data goes out as the server's windows allow, and no faster than
 * the socket drains (DATA waits while the socket holds SOCKET_HIGH_WATER bytes unsent). What a
 * stream still holds is `queuedBytes`; its handler's onDrain says when it fell to nothing, so a
 * writer that waits for it (a client-streaming call) holds at most what it wrote since.
 */
import { statSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { isUnixAddress, parseApiAddress, type ApiAddress } from './api-address.js';
import { errorMessage } from './errors.js';
import { HpackDecoder, HpackError, encodeHeaderBlock, type HeaderField } from './hpack.js';

export type { HeaderField } from './hpack.js';

/** RFC 9113 7: error codes. */
export const H2_ERROR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

const SETTING = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const DEFAULT_WINDOW = 65_535;
const DEFAULT_MAX_FRAME_SIZE = 16_384;
const MAX_WINDOW = 2 ** 31 - 1;
const MAX_STREAM_ID = 2 ** 31 - 1;
/** The largest frame we accept: the protocol's default, which is what servers send by anyway. */
const OUR_MAX_FRAME_SIZE = DEFAULT_MAX_FRAME_SIZE;
/** A compressed header block may be this many times our header list limit before it is a flood. */
const HEADER_BLOCK_FACTOR = 4;
/**
 * The largest request header block sent: what node:http2's client refused to send
 * (maxSendHeaderBlockLength), and nghttp2 (Node's and so grpc-js's server) ends the whole connection
 * with COMPRESSION_ERROR for a string over 64 KiB, failing every other call on it.
 */
const MAX_SEND_HEADER_BLOCK_BYTES = 64 * 1024;
/** Held data (a paused stream's) in frames smaller than this is copied into blocks of HELD_BLOCK_BYTES. */
const HELD_COPY_BELOW = 1024;
const HELD_BLOCK_BYTES = 16 * 1024;
/** CONTINUATION frames one header block may take: a flood of (empty) ones ends the connection. */
const MAX_CONTINUATION_FRAMES = 64;
/**
 * ACKs (of PING and SETTINGS) written while the socket has not drained: a server that sends those
 * and does not read the answers would otherwise grow our write buffer without end (nghttp2 bounds
 * its queue of them the same way, at 1,000).
 */
const MAX_UNDRAINED_ACKS = 10_000;
/**
 * DATA frames wait while the socket holds this much unsent: a server granting large windows would
 * otherwise let every queued byte of every stream move into the socket's buffer at once.
 */
const SOCKET_HIGH_WATER = 256 * 1024;

/** Why a stream or the connection failed, other than a reset by the server (Http2StreamHandler.onReset). */
export class Http2Error extends Error {
  override readonly name = 'Http2Error';

  constructor(
    message: string,
    /** The HTTP/2 error code sent (or received in GOAWAY). */
    readonly errorCode: number,
    /**
     * `socket`: the connection could not be made or was lost (the message carries the errno text);
     * `goaway`: the server refused the stream by GOAWAY before processing it (safe to retry);
     * `connection`: a protocol violation ended the connection; `stream`: one ended the stream.
     */
    readonly scope: 'socket' | 'goaway' | 'connection' | 'stream',
    /** A header list too large: the server's (a stream error), or the request's (refused before sending). */
    readonly tooLarge?: 'response-headers' | 'request-headers',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** What a stream reports, in order: headers, data…, trailers, end — or one of reset and error. */
export interface Http2StreamHandler {
  /** The response's header list (informational 1xx answers are skipped). */
  onResponseHeaders(fields: HeaderField[], endStream: boolean): void;
  onData(chunk: Buffer): void;
  /** Trailers come as they arrive, before data still held by a pause. */
  onTrailers(fields: HeaderField[]): void;
  /** The server ended the stream and all its data was delivered. */
  onEnd(): void;
  /** The server reset the stream (RST_STREAM with `code`). */
  onReset(code: number): void;
  onError(error: Http2Error): void;
  /** Everything written on the stream went out to the socket (Http2ClientStream.queuedBytes is 0). */
  onDrain?(): void;
}

export interface Http2ConnectionOptions {
  /** SETTINGS_INITIAL_WINDOW_SIZE we send: each stream's receive window. */
  streamWindowBytes: number;
  /** The connection's receive window (raised from 65,535 by a WINDOW_UPDATE). */
  connectionWindowBytes: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we send and enforce; default 64 KiB. */
  maxHeaderListBytes?: number;
  /** SETTINGS_HEADER_TABLE_SIZE we send: the HPACK table the server may use; default 4096. */
  headerTableBytes?: number;
  /** The connection takes no more streams (GOAWAY received, or it ended). Called once. */
  onUnusable?: () => void;
  /** Dial with TLS (ALPN h2) instead of plaintext h2c. */
  tls?: Http2TlsOptions;
}

/** How a TLS connection proves the server, and this client, to each other. */
export interface Http2TlsOptions {
  /** PEM of the CA certificate(s) the server's certificate must chain to; absent: the system's roots. */
  ca?: string;
  /** A client certificate (PEM) and its private key, for mutual TLS. */
  cert?: string;
  key?: string;
  /**
   * Accept whatever certificate the server shows: only for a first call whose answer the caller
   * checks itself against a pin it already holds (a join token's CA hash), never for trust.
   */
  unverified?: boolean;
}

/**
 * A TLS failure in a person's words, from the error's code (OpenSSL's and Node's); undefined for
 * errors that are not about TLS.
 */
export function describeTlsError(err: Error & { code?: string }): string | undefined {
  // a handshake's errors carry OpenSSL's reason as the code; a write's only as the message (EPROTO)
  const reason = /wrong version number|packet length too long/.exec(err.message)?.[0];
  const code = reason !== undefined ? 'ERR_SSL_WRONG_VERSION_NUMBER' : (err.code ?? '');
  const why = `(${reason ?? err.message.trim()})`;
  switch (code) {
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_SIGNATURE_FAILURE':
    case 'CERT_UNTRUSTED':
      return `TLS: the server's certificate is not signed by the CA this client trusts ${why}; check the cluster's certificate-authority in the client config`;
    case 'CERT_HAS_EXPIRED':
      return `TLS: the server's certificate has expired ${why}`;
    case 'CERT_NOT_YET_VALID':
      return `TLS: the server's certificate is not valid yet ${why}; check the clocks`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `TLS: the server's certificate is not for this address ${why}; connect by a name or address it holds (the control plane's --tls-san adds one)`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
    case 'ERR_SSL_HTTP_REQUEST':
      return `TLS: the server does not speak TLS ${why}; it serves plaintext, so drop the certificate-authority from the client config`;
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
      return `TLS: the server requires a client certificate ${why}`;
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED':
      return `TLS: the server refused this client's certificate ${why}`;
  }
  return code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')
    ? `TLS: ${err.message.trim()}`
    : undefined;
}

/**
 * Why connecting to the socket at `path` failed, in a person's words with what to do; undefined
 * for errors the generic words fit. EACCES names who owns the socket's directory, as far as this
 * user may see it.
 */
export function describeSocketError(err: Error & { code?: string }, path: string): string | undefined {
  switch (err.code) {
    case 'ENOENT':
      return `no socket at ${path}: is the control plane running? (\`skiff up\` starts one that serves it)`;
    case 'ECONNREFUSED':
      return `nothing serves the socket ${path} (a control plane that stopped without removing it?): is the control plane running?`;
    case 'EACCES':
    case 'EPERM': {
      let owner = 'the user who runs the control plane';
      try {
        owner = `uid ${statSync(dirname(path)).uid}, who runs the control plane`;
      } catch {
        // the directory above is closed to this user too: say it without the uid
      }
      return (
        `permission denied: the socket is only for ${owner} (mode 0600 in a 0700 directory); ` +
        "run skiff as that user (e.g. with sudo), or call the API over TLS: --server with the cluster's " +
        'tls-server address and --certificate-authority with its CA (`skiff config view` shows both), ' +
        'with a token of your own'
      );
    }
  }
  return undefined;
}

/**
 * Dials `host:port` over plaintext TCP and starts HTTP/2 on it (prior knowledge, h2c), with
 * `options.tls` over TLS with ALPN h2 (a server that does not pick h2 ends the connection), or
 * `unix:///path` over the Unix socket there (h2c, never TLS). Without a port, 80 (443 with TLS), as
 * node:http2 took a URL. A bad address fails the call, not the process.
 */
export function connectHttp2(address: string, options: Http2ConnectionOptions): Http2ClientConnection {
  if (isUnixAddress(address)) {
    let parsed: ApiAddress;
    try {
      parsed = parseApiAddress(address);
    } catch (err) {
      throw new Http2Error(errorMessage(err), H2_ERROR.INTERNAL_ERROR, 'socket', undefined, { cause: err });
    }
    const path = parsed.transport === 'unix' ? parsed.path : address;
    if (options.tls !== undefined)
      throw new Http2Error(
        `TLS over the Unix socket ${path}: a socket carries none`,
        H2_ERROR.INTERNAL_ERROR,
        'socket',
      );
    return new Http2ClientConnection(netConnect({ path }), options, path);
  }
  const url = new URL(`http://${address}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (options.tls === undefined) {
    return new Http2ClientConnection(
      netConnect({ host, port: Number(url.port || 80), noDelay: true }),
      options,
    );
  }
  // loaded on the first TLS dial only: node:tls is ~20 internal modules a plaintext client skips
  const tls = process.getBuiltinModule('node:tls');
  const { ca, cert, key, unverified } = options.tls;
  const socket = tls.connect({
    host,
    port: Number(url.port || 443),
    ALPNProtocols: ['h2'],
    rejectUnauthorized: unverified !== true,
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
  });
  socket.setNoDelay(true);
  socket.once('secureConnect', () => {
    if (socket.alpnProtocol !== 'h2') {
      socket.destroy(
        Object.assign(
          new Error(
            `TLS: the server did not agree to HTTP/2 (ALPN ${socket.alpnProtocol === false ? 'none' : JSON.stringify(socket.alpnProtocol)}); it is not a gRPC server`,
          ),
          { code: 'ERR_TLS_ALPN' },
        ),
      );
    }
  });
  return new Http2ClientConnection(socket, options);
}

function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return header;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
}

function uint32s(...values: number[]): Buffer {
  const payload = Buffer.allocUnsafe(4 * values.length);
  values.forEach((value, i) => payload.writeUInt32BE(value, 4 * i));
  return payload;
}

/** The payload without its padding (PADDED flag), or undefined when the padding is longer than the frame. */
function unpadded(payload: Buffer, flags: number): Buffer | undefined {
  if ((flags & FLAG_PADDED) === 0) return payload;
  if (payload.length < 1) return undefined;
  const padding = payload[0]!;
  if (padding >= payload.length) return undefined;
  return payload.subarray(1, payload.length - padding);
}

interface HeaderBlockInProgress {
  streamId: number;
  fragments: Buffer[];
  bytes: number;
  frames: number;
  endStream: boolean;
}

/** One HTTP/2 connection and its streams. */
export class Http2ClientConnection {
  private readonly streams = new Map<number, Http2ClientStream>();
  /** Streams waiting for the server's MAX_CONCURRENT_STREAMS to allow them. */
  private readonly waiting: Http2ClientStream[] = [];
  private readonly decoder: HpackDecoder;
  private readonly maxHeaderListBytes: number;
  private nextStreamId = 1;
  private inbound: Buffer | undefined;
  private settingsReceived = false;
  private headerBlock: HeaderBlockInProgress | undefined;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  /**
   * Until the server's SETTINGS say how many streams it takes, one: the first call goes out with
   * the preface (no round trip lost), and no stream is refused for a limit not yet known.
   */
  private peerMaxConcurrentStreams = 1;
  private sendWindow = DEFAULT_WINDOW;
  private receiveWindow: number;
  private receivedUnacknowledged = 0;
  private goawayLastStreamId: number | undefined;
  /** The server's GOAWAY, for the words of the connection's end. */
  private goawayReceived: { code: number; text: string } | undefined;
  private peerMaxHeaderListSize = Infinity;
  private ended: Http2Error | undefined;
  private unusableReported = false;
  private readonly pings = new Map<bigint, (error?: Error) => void>();
  private pingCount = 0n;
  private undrainedAcks = 0;
  /** The socket connected, and whether any byte came from the server since. */
  private connected = false;
  private receivedAny = false;

  constructor(
    private readonly socket: Socket,
    private readonly options: Http2ConnectionOptions,
    /** The path of a Unix socket, whose errors are said in its terms. */
    private readonly socketPath?: string,
  ) {
    this.maxHeaderListBytes = options.maxHeaderListBytes ?? 64 * 1024;
    const headerTableBytes = options.headerTableBytes ?? 4096;
    this.decoder = new HpackDecoder(headerTableBytes, this.maxHeaderListBytes);
    this.receiveWindow = Math.max(DEFAULT_WINDOW, options.connectionWindowBytes);
    socket.on('data', (chunk: Buffer) => {
      this.receivedAny = true;
      this.receive(chunk);
    });
    socket.once('connect', () => (this.connected = true));
    socket.on('drain', () => this.flush());
    socket.on('error', (err: Error) =>
      this.end(
        new Http2Error(
          (this.socketPath !== undefined
            ? (describeSocketError(err, this.socketPath) ?? err.message)
            : (describeTlsError(err) ?? err.message)) + this.plaintextHint(),
          H2_ERROR.INTERNAL_ERROR,
          'socket',
          undefined,
          { cause: err },
        ),
      ),
    );
    socket.on('close', () => {
      const goaway = this.goawayReceived;
      const why = goaway !== undefined && goaway.code !== H2_ERROR.NO_ERROR ? ` after ${goaway.text}` : '';
      this.end(
        new Http2Error(
          `the server closed the connection${why}${this.plaintextHint()}`,
          goaway?.code ?? H2_ERROR.INTERNAL_ERROR,
          'socket',
        ),
      );
    });
    // nothing open yet: a connection alone does not keep the process alive
    socket.unref();
    const settings = Buffer.allocUnsafe(6 * 4);
    [
      [SETTING.HEADER_TABLE_SIZE, headerTableBytes],
      [SETTING.ENABLE_PUSH, 0],
      [SETTING.INITIAL_WINDOW_SIZE, options.streamWindowBytes],
      [SETTING.MAX_HEADER_LIST_SIZE, this.maxHeaderListBytes],
    ].forEach(([id, value], i) => {
      settings.writeUInt16BE(id!, 6 * i);
      settings.writeUInt32BE(value!, 6 * i + 2);
    });
    const writes = [PREFACE, frame(FRAME.SETTINGS, 0, 0, settings)];
    if (this.receiveWindow > DEFAULT_WINDOW)
      writes.push(frame(FRAME.WINDOW_UPDATE, 0, 0, uint32s(this.receiveWindow - DEFAULT_WINDOW)));
    socket.write(Buffer.concat(writes));
  }

  /**
   * A plaintext connection the server ended without a byte: what a TLS server does to the HTTP/2
   * preface (it reads it as a broken ClientHello), said as a likely cause.
   */
  private plaintextHint(): string {
    return this.options.tls === undefined &&
      this.socketPath === undefined &&
      this.connected &&
      !this.receivedAny
      ? ' before answering: if it serves TLS, give this client the cluster CA (certificate-authority in the client config; `skiff up` writes it)'
      : '';
  }

  /** False once the server sent GOAWAY or the connection ended: open streams on a new one. */
  get acceptsStreams(): boolean {
    return (
      this.ended === undefined && this.goawayLastStreamId === undefined && this.nextStreamId <= MAX_STREAM_ID
    );
  }

  /**
   * Opens a stream with `fields` (pseudo-headers first) as its header list. The stream waits while
   * the server's MAX_CONCURRENT_STREAMS are open. Throws Http2Error when the connection takes no
   * more streams.
   */
  request(fields: readonly HeaderField[], handler: Http2StreamHandler): Http2ClientStream {
    if (!this.acceptsStreams)
      throw (
        this.ended ??
        new Http2Error('the connection is going away: open a new one', H2_ERROR.NO_ERROR, 'goaway')
      );
    const block = encodeHeaderBlock(fields);
    const stream = new Http2ClientStream(this, handler, block);
    let listSize = 0;
    for (const [name, value] of fields) listSize += name.length + value.length + 32;
    const limit = Math.min(MAX_SEND_HEADER_BLOCK_BYTES, this.peerMaxHeaderListSize);
    if (block.length > MAX_SEND_HEADER_BLOCK_BYTES || listSize > this.peerMaxHeaderListSize) {
      // reported as any other failure: after request() returned
      queueMicrotask(() =>
        stream.fail(
          new Http2Error(
            `the request's header list of ${listSize} bytes is larger than the server accepts (${limit})`,
            H2_ERROR.REFUSED_STREAM,
            'stream',
            'request-headers',
          ),
        ),
      );
    } else if (this.streams.size < this.peerMaxConcurrentStreams) this.open(stream);
    else this.waiting.push(stream);
    this.socket.ref();
    return stream;
  }

  /** Sends a PING; `callback` runs on its ACK, or with an error when the connection ends first. */
  ping(callback: (error?: Error) => void): void {
    if (this.ended !== undefined) return callback(this.ended);
    const payload = Buffer.allocUnsafe(8);
    const id = this.pingCount++;
    payload.writeBigUInt64BE(id);
    this.pings.set(id, callback);
    this.write(frame(FRAME.PING, 0, 0, payload));
  }

  /** Ends the connection now; its streams see `error` (or "the connection was closed"). */
  destroy(error?: Error): void {
    if (this.ended === undefined) this.write(frame(FRAME.GOAWAY, 0, 0, uint32s(0, H2_ERROR.NO_ERROR)));
    this.end(
      new Http2Error(
        error?.message ?? 'the connection was closed',
        H2_ERROR.CANCEL,
        'socket',
        undefined,
        error && { cause: error },
      ),
    );
  }

  // ---- streams' side

  /** @internal */
  sendData(stream: Http2ClientStream): void {
    this.flush(stream);
  }

  /** @internal The stream ended here (reset or fully closed): forget it, let a waiting one open. */
  forget(stream: Http2ClientStream, reset: number | undefined): void {
    if (reset !== undefined && stream.id !== 0 && this.ended === undefined)
      this.write(frame(FRAME.RST_STREAM, 0, stream.id, uint32s(reset)));
    const waitingAt = this.waiting.indexOf(stream);
    if (waitingAt >= 0) this.waiting.splice(waitingAt, 1);
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    this.openWaiting();
    this.idleCheck();
  }

  /** @internal */
  windowUpdate(streamId: number, increment: number): void {
    if (this.ended === undefined) this.write(frame(FRAME.WINDOW_UPDATE, 0, streamId, uint32s(increment)));
  }

  // ---- sending

  /** Opens waiting streams as far as the server's MAX_CONCURRENT_STREAMS allows. */
  private openWaiting(): void {
    while (
      this.waiting.length > 0 &&
      this.streams.size < this.peerMaxConcurrentStreams &&
      this.acceptsStreams
    )
      this.open(this.waiting.shift()!);
  }

  private open(stream: Http2ClientStream): void {
    stream.id = this.nextStreamId;
    this.nextStreamId += 2;
    stream.sendWindow = this.peerInitialWindow;
    stream.receiveWindow = this.options.streamWindowBytes;
    stream.streamWindowBytes = this.options.streamWindowBytes;
    this.streams.set(stream.id, stream);
    const block = stream.takeHeaderBlock();
    const frames: Buffer[] = [];
    let at = 0;
    do {
      const fragment = block.subarray(at, at + this.peerMaxFrameSize);
      at += fragment.length;
      const type = frames.length === 0 ? FRAME.HEADERS : FRAME.CONTINUATION;
      frames.push(
        frameHeader(fragment.length, type, at >= block.length ? FLAG_END_HEADERS : 0, stream.id),
        fragment,
      );
    } while (at < block.length);
    // one write: a header block's frames may not be interleaved with any other frame
    this.write(Buffer.concat(frames));
    this.flush(stream);
  }

  /** Sends what `only` (or every stream) has queued, as far as the windows and frame size allow. */
  private flush(only?: Http2ClientStream): void {
    if (this.ended !== undefined) return;
    const candidates = only !== undefined ? [only] : [...this.streams.values()];
    const drained: Http2ClientStream[] = [];
    this.socket.cork();
    for (const stream of candidates) {
      if (stream.id === 0 || this.streams.get(stream.id) !== stream) continue;
      const had = stream.queuedBytes;
      for (;;) {
        const room =
          this.socket.writableLength >= SOCKET_HIGH_WATER
            ? 0
            : Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrameSize);
        const next = stream.nextToSend(room);
        if (next === undefined) break;
        stream.sendWindow -= next.data.length;
        this.sendWindow -= next.data.length;
        this.socket.write(
          frameHeader(next.data.length, FRAME.DATA, next.end ? FLAG_END_STREAM : 0, stream.id),
        );
        if (next.data.length > 0) this.socket.write(next.data);
        if (next.end) break;
      }
      if (had > 0 && stream.queuedBytes === 0) drained.push(stream);
    }
    this.socket.uncork();
    // after the writes: a handler may write again (and so flush) from here
    for (const stream of drained) stream.drained();
  }

  private write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Writes an ACK the server asked for; a flood of them it does not read ends the connection. */
  private writeAck(bytes: Buffer): void {
    // all written so far has gone out: the server reads what it asks for
    if (this.socket.writableLength === 0) this.undrainedAcks = 0;
    if (++this.undrainedAcks > MAX_UNDRAINED_ACKS)
      return this.connectionError(
        H2_ERROR.ENHANCE_YOUR_CALM,
        `more than ${MAX_UNDRAINED_ACKS} PING or SETTINGS frames whose ACKs it does not read`,
      );
    this.write(bytes);
  }

  // ---- receiving

  private receive(chunk: Buffer): void {
    let bytes = this.inbound === undefined ? chunk : Buffer.concat([this.inbound, chunk]);
    this.inbound = undefined;
    if (!this.settingsReceived && bytes.length >= 5 && bytes.subarray(0, 5).toString('latin1') === 'HTTP/')
      return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'the server answered in HTTP/1, not HTTP/2');
    let at = 0;
    this.socket.cork();
    try {
      while (bytes.length - at >= FRAME_HEADER_BYTES && this.ended === undefined) {
        const length = bytes.readUIntBE(at, 3);
        if (length > OUR_MAX_FRAME_SIZE)
          return this.connectionError(
            H2_ERROR.FRAME_SIZE_ERROR,
            `a frame of ${length} bytes, above the ${OUR_MAX_FRAME_SIZE} allowed`,
          );
        if (bytes.length - at - FRAME_HEADER_BYTES < length) break;
        const type = bytes[at + 3]!;
        const flags = bytes[at + 4]!;
        const streamId = bytes.readUInt32BE(at + 5) & 0x7fffffff;
        const payload = bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
        at += FRAME_HEADER_BYTES + length;
        this.onFrame(type, flags, streamId, payload);
      }
      if (at < bytes.length && this.ended === undefined) this.inbound = bytes.subarray(at);
    } finally {
      this.socket.uncork();
    }
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsReceived && (type !== FRAME.SETTINGS || flags & FLAG_ACK))
      return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'the server did not start with SETTINGS');
    if (
      this.headerBlock !== undefined &&
      (type !== FRAME.CONTINUATION || streamId !== this.headerBlock.streamId)
    )
      return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'a header block interrupted by another frame');
    switch (type) {
      case FRAME.DATA:
        return this.onData(flags, streamId, payload);
      case FRAME.HEADERS:
        return this.onHeaders(flags, streamId, payload);
      case FRAME.CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      case FRAME.PRIORITY:
        if (streamId === 0) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5)
          return this.streamErrorById(streamId, H2_ERROR.FRAME_SIZE_ERROR, 'a PRIORITY frame not of 5 bytes');
        return; // advice on the server's own sending order: nothing for a client to do
      case FRAME.RST_STREAM:
        return this.onRstStream(streamId, payload);
      case FRAME.SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case FRAME.PUSH_PROMISE:
        return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'PUSH_PROMISE, though push is disabled');
      case FRAME.PING:
        return this.onPing(flags, streamId, payload);
      case FRAME.GOAWAY:
        return this.onGoaway(streamId, payload);
      case FRAME.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      default:
        return; // 5.5: unknown frame types are ignored
    }
  }

  /** The open stream `streamId`, undefined for a closed one; a connection error for an idle or server-initiated one. */
  private streamOf(streamId: number, frameName: string): Http2ClientStream | undefined {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) return stream;
    if (streamId % 2 === 0 || streamId >= this.nextStreamId)
      this.connectionError(
        H2_ERROR.PROTOCOL_ERROR,
        `${frameName} on stream ${streamId}, which was never opened`,
      );
    return undefined;
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'DATA on stream 0');
    // 6.9.1: the whole frame, padding included, counts against the windows
    if (payload.length > this.receiveWindow)
      return this.connectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'DATA beyond the connection window granted');
    this.receiveWindow -= payload.length;
    this.receivedUnacknowledged += payload.length;
    if (this.receivedUnacknowledged >= this.options.connectionWindowBytes / 2) {
      this.windowUpdate(0, this.receivedUnacknowledged);
      this.receiveWindow += this.receivedUnacknowledged;
      this.receivedUnacknowledged = 0;
    }
    const data = unpadded(payload, flags);
    if (data === undefined)
      return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'padding longer than its frame');
    const stream = this.streamOf(streamId, 'DATA');
    if (stream === undefined) return; // closed here (reset or ended): what was in flight is dropped
    if (!stream.headersReceived)
      return this.streamError(stream, H2_ERROR.PROTOCOL_ERROR, 'DATA before the response headers');
    if (stream.endReceived)
      return this.streamError(stream, H2_ERROR.STREAM_CLOSED, 'DATA after the end of the stream');
    if (payload.length > stream.receiveWindow)
      return this.streamError(stream, H2_ERROR.FLOW_CONTROL_ERROR, 'DATA beyond the stream window granted');
    stream.receiveWindow -= payload.length;
    stream.consumed(payload.length - data.length);
    if (data.length > 0) stream.receiveData(data);
    if (flags & FLAG_END_STREAM) stream.receiveEnd();
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let fragment = unpadded(payload, flags);
    if (fragment === undefined)
      return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'padding longer than its frame');
    if (flags & FLAG_PRIORITY) {
      if (fragment.length < 5)
        return this.connectionError(H2_ERROR.FRAME_SIZE_ERROR, 'HEADERS too short for its priority');
      fragment = fragment.subarray(5);
    }
    this.headerBlock = {
      streamId,
      fragments: [fragment],
      bytes: fragment.length,
      frames: 1,
      endStream: (flags & FLAG_END_STREAM) !== 0,
    };
    if (!this.headerBlockWithinBounds()) return;
    if (flags & FLAG_END_HEADERS) this.onHeaderBlock();
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (block === undefined || streamId !== block.streamId)
      return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'CONTINUATION without HEADERS before it');
    block.fragments.push(payload);
    block.bytes += payload.length;
    block.frames++;
    if (!this.headerBlockWithinBounds()) return;
    if (flags & FLAG_END_HEADERS) this.onHeaderBlock();
  }

  private headerBlockWithinBounds(): boolean {
    const block = this.headerBlock!;
    if (block.bytes > HEADER_BLOCK_FACTOR * this.maxHeaderListBytes) {
      this.connectionError(H2_ERROR.ENHANCE_YOUR_CALM, `a header block of more than ${block.bytes} bytes`);
      return false;
    }
    if (block.frames > MAX_CONTINUATION_FRAMES + 1) {
      this.connectionError(
        H2_ERROR.ENHANCE_YOUR_CALM,
        `a header block in more than ${MAX_CONTINUATION_FRAMES} CONTINUATION frames`,
      );
      return false;
    }
    return true;
  }

  private onHeaderBlock(): void {
    const block = this.headerBlock!;
    this.headerBlock = undefined;
    let decoded;
    try {
      decoded = this.decoder.decode(
        block.fragments.length === 1 ? block.fragments[0]! : Buffer.concat(block.fragments),
      );
    } catch (err) {
      if (err instanceof HpackError)
        return this.connectionError(H2_ERROR.COMPRESSION_ERROR, `HPACK: ${err.message}`);
      throw err;
    }
    // decoded whatever the stream's state: the HPACK table must stay in step with the server's
    const stream = this.streamOf(block.streamId, 'HEADERS');
    if (stream === undefined) return;
    if (decoded.oversized)
      return this.streamError(
        stream,
        H2_ERROR.ENHANCE_YOUR_CALM,
        `a header list of ${decoded.listSize} bytes, above the ${this.maxHeaderListBytes} accepted`,
        'response-headers',
      );
    if (stream.endReceived)
      return this.streamError(stream, H2_ERROR.STREAM_CLOSED, 'HEADERS after the end of the stream');
    const malformed = malformedFields(decoded.fields, !stream.headersReceived);
    if (malformed !== undefined) return this.streamError(stream, H2_ERROR.PROTOCOL_ERROR, malformed);
    if (!stream.headersReceived) {
      const status = decoded.fields[0]![1];
      if (status.startsWith('1')) {
        if (block.endStream)
          return this.streamError(
            stream,
            H2_ERROR.PROTOCOL_ERROR,
            'an informational answer ending the stream',
          );
        return; // 100 Continue and the like: the real answer follows
      }
      stream.receiveHeaders(decoded.fields, block.endStream);
    } else {
      if (!block.endStream)
        return this.streamError(stream, H2_ERROR.PROTOCOL_ERROR, 'trailers that do not end the stream');
      stream.receiveTrailers(decoded.fields);
    }
    if (block.endStream) stream.receiveEnd();
  }

  private onRstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4)
      return this.connectionError(H2_ERROR.FRAME_SIZE_ERROR, 'an RST_STREAM frame not of 4 bytes');
    this.streamOf(streamId, 'RST_STREAM')?.receiveReset(payload.readUInt32BE(0));
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & FLAG_ACK) {
      if (payload.length !== 0)
        return this.connectionError(H2_ERROR.FRAME_SIZE_ERROR, 'a SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0)
      return this.connectionError(H2_ERROR.FRAME_SIZE_ERROR, 'a SETTINGS frame not in 6-byte entries');
    if (!this.settingsReceived) this.peerMaxConcurrentStreams = Infinity; // 6.5.2: unlimited unless said
    this.settingsReceived = true;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      switch (id) {
        case SETTING.ENABLE_PUSH:
          if (value > 1) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, `ENABLE_PUSH ${value}`);
          break;
        case SETTING.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = value;
          break;
        case SETTING.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW)
            return this.connectionError(H2_ERROR.FLOW_CONTROL_ERROR, `INITIAL_WINDOW_SIZE ${value}`);
          // 6.9.2: open streams' windows move by the difference, and may go below zero
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const stream of this.streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW)
              return this.connectionError(
                H2_ERROR.FLOW_CONTROL_ERROR,
                'INITIAL_WINDOW_SIZE overflows a stream window',
              );
          }
          break;
        }
        case SETTING.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > 2 ** 24 - 1)
            return this.connectionError(H2_ERROR.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value}`);
          this.peerMaxFrameSize = value;
          break;
        case SETTING.MAX_HEADER_LIST_SIZE:
          this.peerMaxHeaderListSize = value;
          break;
        // HEADER_TABLE_SIZE: our encoder never indexes, so any size suits it; others: 6.5.2
      }
    }
    this.writeAck(frame(FRAME.SETTINGS, FLAG_ACK, 0));
    this.openWaiting();
    this.flush();
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8)
      return this.connectionError(H2_ERROR.FRAME_SIZE_ERROR, 'a PING frame not of 8 bytes');
    if (flags & FLAG_ACK) {
      const id = payload.readBigUInt64BE(0);
      const callback = this.pings.get(id);
      this.pings.delete(id);
      callback?.();
    } else {
      this.writeAck(frame(FRAME.PING, FLAG_ACK, 0, payload));
    }
  }

  private onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8)
      return this.connectionError(H2_ERROR.FRAME_SIZE_ERROR, 'a GOAWAY frame shorter than 8 bytes');
    const lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    const debug = payload
      .subarray(8)
      .toString('utf8')
      .replace(/[^\x20-\x7e]/g, '?')
      .slice(0, 200);
    this.goawayLastStreamId = Math.min(lastStreamId, this.goawayLastStreamId ?? lastStreamId);
    this.goawayReceived = { code, text: `GOAWAY code ${code}${debug ? `: ${debug}` : ''}` };
    const refused = (): Http2Error =>
      new Http2Error(
        `the server is going away (${this.goawayReceived!.text}) and did not process the call`,
        code,
        'goaway',
      );
    for (const stream of [...this.waiting, ...this.streams.values()])
      if (stream.id === 0 || stream.id > this.goawayLastStreamId) stream.fail(refused());
    this.reportUnusable();
    this.idleCheck();
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4)
      return this.connectionError(H2_ERROR.FRAME_SIZE_ERROR, 'a WINDOW_UPDATE frame not of 4 bytes');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) return this.connectionError(H2_ERROR.PROTOCOL_ERROR, 'a WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW)
        return this.connectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'the connection window above 2^31 - 1');
      return this.flush();
    }
    const stream = this.streamOf(streamId, 'WINDOW_UPDATE');
    if (stream === undefined) return;
    if (increment === 0) return this.streamError(stream, H2_ERROR.PROTOCOL_ERROR, 'a WINDOW_UPDATE of 0');
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW)
      return this.streamError(stream, H2_ERROR.FLOW_CONTROL_ERROR, 'a stream window above 2^31 - 1');
    this.flush(stream);
  }

  // ---- ending

  private streamErrorById(streamId: number, code: number, message: string): void {
    const stream = this.streamOf(streamId, 'a frame');
    if (stream !== undefined) this.streamError(stream, code, message);
  }

  /** 5.4.2: the stream is reset with `code`; the connection goes on. */
  private streamError(
    stream: Http2ClientStream,
    code: number,
    message: string,
    tooLarge?: 'response-headers',
  ): void {
    stream.fail(new Http2Error(`the server broke the protocol: ${message}`, code, 'stream', tooLarge), code);
  }

  /** 5.4.1: GOAWAY with `code`, then the connection ends and every stream on it fails. */
  private connectionError(code: number, message: string): void {
    if (this.ended !== undefined) return;
    const lastProcessed = 0; // we accept no server-initiated streams
    const debug = Buffer.from(message, 'utf8');
    this.write(frame(FRAME.GOAWAY, 0, 0, Buffer.concat([uint32s(lastProcessed, code), debug])));
    this.end(new Http2Error(`the server broke the protocol: ${message}`, code, 'connection'));
  }

  private end(error: Http2Error): void {
    if (this.ended !== undefined) return;
    this.ended = error;
    this.inbound = undefined;
    this.headerBlock = undefined;
    // end() lets the GOAWAY out first; the server then closes, or the socket is destroyed soon
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.socket.unref();
    for (const stream of [...this.waiting, ...this.streams.values()]) stream.fail(error);
    this.waiting.length = 0;
    this.streams.clear();
    for (const callback of this.pings.values()) callback(error);
    this.pings.clear();
    this.reportUnusable();
  }

  private reportUnusable(): void {
    if (this.unusableReported) return;
    this.unusableReported = true;
    this.options.onUnusable?.();
  }

  /** No stream open or waiting: the socket no longer keeps the process alive; after GOAWAY it closes. */
  private idleCheck(): void {
    if (this.streams.size > 0 || this.waiting.length > 0) return;
    this.socket.unref();
    if (this.goawayLastStreamId !== undefined && this.ended === undefined)
      this.end(new Http2Error('the connection went away', H2_ERROR.NO_ERROR, 'goaway'));
  }
}

/** Why a received header list is malformed (8.1.1, 8.3.2), or undefined. */
function malformedFields(fields: HeaderField[], response: boolean): string | undefined {
  if (response && (fields.length === 0 || fields[0]![0] !== ':status' || !/^[1-5]\d\d$/.test(fields[0]![1])))
    return 'a response without a valid :status first';
  for (let i = response ? 1 : 0; i < fields.length; i++) {
    const name = fields[i]![0];
    if (name.startsWith(':')) return `the pseudo-header ${name} where none may be`;
    if (name !== name.toLowerCase()) return `an uppercase header name ${JSON.stringify(name)}`;
  }
  // 8.2.1: no field may carry NUL, CR or LF (a value passed on could split a header elsewhere)
  for (const [name, value] of fields)
    if (/[\0\r\n]/.test(name) || /[\0\r\n]/.test(value))
      return `NUL, CR or LF in the field ${JSON.stringify(name)}`;
  return undefined;
}

/** One request and its response, as the connection delivers it. */
export class Http2ClientStream {
  /** 0 until the stream is opened (it may wait for MAX_CONCURRENT_STREAMS). */
  id = 0;
  /** @internal */ sendWindow = 0;
  /** @internal */ receiveWindow = 0;
  /** @internal */ streamWindowBytes = 0;
  /** @internal */ headersReceived = false;
  /** @internal */ endReceived = false;
  private headerBlock: Buffer | undefined;
  private readonly outgoing: Buffer[] = [];
  private outgoingBytes = 0;
  private endQueued = false;
  private endSent = false;
  private closed = false;
  private paused = false;
  /** Data held while paused, then the end if it came. */
  private readonly held: Array<Buffer | 'end'> = [];
  /**
   * Small frames' data held while paused is copied into blocks of this: a frame's payload is a view
   * into the socket's read, and a server sending 1-byte DATA frames to a paused stream otherwise
   * pinned a 64 KB read and a Buffer object per byte of the window.
   */
  private heldBlock: Buffer | undefined;
  /** The last entry of `held` while it is the filled part of heldBlock, open to more. */
  private heldBlockView: Buffer | undefined;
  private consumedUnacknowledged = 0;

  /** @internal */
  constructor(
    private readonly connection: Http2ClientConnection,
    private readonly handler: Http2StreamHandler,
    headerBlock: Buffer,
  ) {
    this.headerBlock = headerBlock;
  }

  /** Sends `data` (split into frames as the windows allow); `end` ends the request. */
  write(data: Buffer, end = false): void {
    if (this.closed || this.endQueued) return;
    if (data.length > 0) {
      this.outgoing.push(data);
      this.outgoingBytes += data.length;
    }
    this.endQueued = end;
    this.connection.sendData(this);
  }

  /** Bytes written and not yet handed to the socket (they wait for the windows or the socket). */
  get queuedBytes(): number {
    return this.outgoingBytes;
  }

  /** @internal The connection sent the last queued byte. */
  drained(): void {
    if (!this.closed) this.handler.onDrain?.();
  }

  /** Stops delivering data and replenishing the stream's window: the server stops after one window. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    while (!this.paused && !this.closed && this.held.length > 0) {
      const next = this.held.shift()!;
      if (next === 'end') this.deliverEnd();
      else this.deliverData(next);
    }
  }

  /** Ends the stream here: RST_STREAM with `code` (CANCEL by default); no more events. */
  close(code: number = H2_ERROR.CANCEL): void {
    if (this.closed) return;
    this.closed = true;
    this.dropOutgoing();
    this.connection.forget(this, this.endSent && this.endReceived ? undefined : code);
  }

  /** What was still to send goes with the stream. */
  private dropOutgoing(): void {
    this.outgoing.length = 0;
    this.outgoingBytes = 0;
  }

  /** @internal */
  takeHeaderBlock(): Buffer {
    const block = this.headerBlock!;
    this.headerBlock = undefined;
    return block;
  }

  /** @internal The next DATA frame's payload, at most `room` bytes, or undefined when none may go. */
  nextToSend(room: number): { data: Buffer; end: boolean } | undefined {
    if (this.endSent) return undefined;
    const head = this.outgoing[0];
    if (head === undefined) {
      if (!this.endQueued) return undefined;
      this.endSent = true;
      return { data: Buffer.alloc(0), end: true };
    }
    if (room <= 0) return undefined;
    let data = head;
    if (head.length > room) {
      data = head.subarray(0, room);
      this.outgoing[0] = head.subarray(room);
    } else {
      this.outgoing.shift();
    }
    this.outgoingBytes -= data.length;
    const end = this.outgoing.length === 0 && this.endQueued;
    if (end) this.endSent = true;
    return { data, end };
  }

  /** @internal */
  receiveHeaders(fields: HeaderField[], endStream: boolean): void {
    this.headersReceived = true;
    if (!this.closed) this.handler.onResponseHeaders(fields, endStream);
  }

  /** @internal */
  receiveTrailers(fields: HeaderField[]): void {
    if (!this.closed) this.handler.onTrailers(fields);
  }

  /** @internal */
  receiveData(data: Buffer): void {
    if (!this.paused) return this.deliverData(data);
    if (data.length >= HELD_COPY_BELOW) return void this.held.push(data);
    const view = this.heldBlockView;
    if (view === undefined || this.held.at(-1) !== view || view.length + data.length > HELD_BLOCK_BYTES) {
      this.heldBlock = Buffer.allocUnsafe(HELD_BLOCK_BYTES);
      data.copy(this.heldBlock);
      this.heldBlockView = this.heldBlock.subarray(0, data.length);
      this.held.push(this.heldBlockView);
      return;
    }
    data.copy(this.heldBlock!, view.length);
    this.heldBlockView = this.heldBlock!.subarray(0, view.length + data.length);
    this.held[this.held.length - 1] = this.heldBlockView;
  }

  /** @internal */
  receiveEnd(): void {
    this.endReceived = true;
    if (this.paused) this.held.push('end');
    else this.deliverEnd();
  }

  /** @internal */
  receiveReset(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.dropOutgoing();
    this.connection.forget(this, undefined);
    this.handler.onReset(code);
  }

  /** @internal The stream ends with `error`; `reset`: the RST_STREAM code to send. */
  fail(error: Http2Error, reset?: number): void {
    if (this.closed) return;
    this.closed = true;
    this.dropOutgoing();
    this.connection.forget(this, reset);
    this.handler.onError(error);
  }

  /** @internal Bytes taken off the stream's window that need no delivery (padding). */
  consumed(bytes: number): void {
    this.consumedUnacknowledged += bytes;
    // replenished in halves: one WINDOW_UPDATE per half window, not one per frame
    if (this.consumedUnacknowledged >= this.streamWindowBytes / 2 && !this.endReceived && !this.closed) {
      this.connection.windowUpdate(this.id, this.consumedUnacknowledged);
      this.receiveWindow += this.consumedUnacknowledged;
      this.consumedUnacknowledged = 0;
    }
  }

  private deliverData(data: Buffer): void {
    if (this.closed) return;
    this.handler.onData(data);
    this.consumed(data.length);
  }

  private deliverEnd(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropOutgoing();
    this.connection.forget(this, this.endSent ? undefined : H2_ERROR.NO_ERROR);
    this.handler.onEnd();
  }
}
