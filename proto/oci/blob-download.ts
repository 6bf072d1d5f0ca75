/**
 * A layer's download into the content store's ingest file, for the pull's layer lanes (the fetch
 * workers and the pull's own thread: blob-fetch-workers.ts). One job: GET the blob (from `kept`
 * on, with `Range`), hash every byte (the kept bytes first), append it to the file, and return
 * the digest of the whole; the store commits the file only if that is the expected one.
 *
 *   socket ──read──► 256 KiB buffer of the connection ──► sha256
 *                                                    └──copy──► 256 KiB block ──write──► ingest file
 *                                                               (reused)        (an fdatasync every 8 MiB)
 *
 * The HTTP/1.1 is our own, on a plain or TLS socket whose reads the kernel makes into one buffer
 * per connection (net's `onread`): Node's HTTP client allocates a new 64 KiB buffer per socket
 * read and copies every piece of a body into another new one (its parser's on_body), so 220 MB of
 * layers made ~440 MB of short-lived buffers, whose page faults, copies and the garbage
 * collections they set off took more CPU than the hashing (test/bench/registry-pull.ts). Here a
 * byte is copied once in user space, into a block that is written and reused; at most five
 * blocks per job (one filling, four being written): when the disk lags, the socket stops being
 * read and TCP holds the sender back. Writes of 256 KiB, not 1 MiB: the page cache takes folios as
 * large as a write (ext4, Linux 6.18), and on the shared 2-core VM the benchmark runs on, 1 MiB
 * folios often came from memory the host had taken back, so copying into them cost up to 4x the
 * kernel CPU (2-3 runs of 5 writing 220 MB as six files; 256 KiB writes never did in 15).
 *
 * What a response holds is hostile input: its head is bounded (64 KiB) and checked strictly
 * (status line, field names and values, one Content-Length or `chunked` alone, no folded lines,
 * no control characters), a chunked body's framing too, and a body is never taken past the
 * blob's declared size. Redirects are followed (5 at most, Authorization only to the first
 * origin, never from HTTPS to plain HTTP unless the registry allows plain HTTP); a connection
 * that fails or ends early is retried with `Range: bytes=<have>-` (`attempts` times in a row
 * without progress), a registry that ignores Range answers 200 and what is there is skipped. A
 * status other than 200/206 is handed back with its head and up to 64 KiB of its body (`status`:
 * the caller turns it into its error, and answers a 401 itself).
 *
 * Self-contained: the worker runs `blobDownloader` from its source text, so it uses only Node's
 * built-in modules (process.getBuiltinModule) and what it declares itself.
 */

/** What a lane is asked to fetch. */
export interface FetchJob {
  url: string;
  headers: Record<string, string>;
  insecureTls: boolean;
  /** Whether a redirect may lead from HTTPS to plain HTTP (a registry allowed plain HTTP). */
  allowHttp: boolean;
  /** The ingest file, holding `kept` bytes already. */
  path: string;
  kept: number;
  size: number;
  attempts: number;
  retryDelayMs: number;
  idleTimeoutMs: number;
}

export interface FetchProgress {
  type: 'progress' | 'retrying';
  bytes: number;
  attempt?: number;
  error?: string;
}

/** How a job failed, as plain data (it crosses from a worker thread). */
export interface FetchFailure {
  message: string;
  /** transient: the network (retried up to `attempts`); invalid: refused bytes; status: the
   * registry's answer (`status`, `headers`, `body`); cancelled. */
  kind: 'transient' | 'invalid' | 'status' | 'cancelled';
  /** Bytes fetched for the blob before the failure. */
  fetched: number;
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: Uint8Array;
  /** The file system's error code (ENOSPC…), when writing the file failed. */
  code?: string;
}

export interface HttpResponse {
  status: number;
  /** Field names in lower case; a repeated field's values joined with ", ". */
  headers: Record<string, string | string[]>;
  /** Reads the body into `sink` (which must take each piece whole); resolves at its end. */
  read(sink: BodySink): Promise<void>;
  /** The body up to `maxBytes` (the connection is dropped if there is more). */
  readSmall(maxBytes: number): Promise<Buffer>;
  /** Drops the response and its connection. */
  destroy(): void;
}

export interface BodySink {
  /** A piece of the body, valid only during the call. False: call `drain` before more. */
  data(bytes: Buffer): boolean;
  /** Calls `resume` once the sink takes data again. */
  drain(resume: () => void): void;
}

export interface GetOptions {
  insecureTls: boolean;
  idleTimeoutMs: number;
  signal: AbortSignal;
}

export interface BlobDownloader {
  run(
    job: FetchJob,
    signal: AbortSignal,
    onProgress: (p: FetchProgress) => void,
  ): Promise<{ digest: string; fetched: number }>;
  /** What a rejection of `run` stands for. */
  failureOf(err: unknown): FetchFailure;
  /** One GET (HTTP/1.1, kept-alive connections reused); for `run` and tests. */
  get(url: URL, headers: Record<string, string>, options: GetOptions): Promise<HttpResponse>;
  /** Closes idle connections. */
  close(): void;
}

export function blobDownloader(): BlobDownloader {
  const net = process.getBuiltinModule('node:net');
  const { createHash } = process.getBuiltinModule('node:crypto');
  const fsp = process.getBuiltinModule('node:fs/promises');
  type Tls = typeof import('node:tls');
  type Socket = import('node:net').Socket;
  type FileHandle = import('node:fs/promises').FileHandle;
  let tls: Tls | undefined;

  /** Bytes the kernel reads into at once, per connection. */
  const READ_BYTES = 256 << 10;
  /** A block written to the file at once. */
  const BLOCK_BYTES = 256 << 10;
  /** Blocks of one job being written at once. */
  const BLOCKS_IN_FLIGHT = 4;
  /** Spare blocks kept for the next job. */
  const POOL_MAX = 32;
  /** An fdatasync after this many bytes written (at most one at a time). */
  const WRITEBACK_BYTES = 8 << 20;
  const MAX_HEAD_BYTES = 64 << 10;
  const MAX_LINE_BYTES = 8 << 10;
  const MAX_INTERIM = 8;
  const MAX_ERROR_BODY = 64 << 10;
  const REDIRECTS = [301, 302, 303, 307, 308];
  const MAX_REDIRECTS = 5;
  const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
  // field values and reason phrases: visible ASCII, obs-text, space and tab
  const BAD_FIELD_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

  class JobError extends Error {
    constructor(
      message: string,
      readonly kind: FetchFailure['kind'],
      readonly extra: {
        status?: number;
        headers?: Record<string, string | string[]>;
        body?: Buffer;
        code?: string;
      } = {},
    ) {
      super(message);
    }
  }

  /** The other end broke HTTP: retried like a network failure, up to the attempts. */
  const protocolError = (what: string) => new JobError(`the registry broke HTTP/1.1: ${what}`, 'transient');

  /** Reading or writing the ingest file failed: not retried; the code (ENOSPC…) is kept. */
  const fileError = (err: unknown, what: string): JobError => {
    if (err instanceof JobError) return err;
    const code = (err as { code?: unknown }).code;
    return new JobError(`${what}: ${String((err as Error)?.message ?? err)}`, 'transient', {
      ...(typeof code === 'string' ? { code } : {}),
    });
  };

  // -------------------------------------------------------------------------------- blocks

  const pool: Buffer[] = [];
  const takeBlock = () => pool.pop() ?? Buffer.allocUnsafeSlow(BLOCK_BYTES);
  const giveBlock = (b: Buffer) => {
    if (pool.length < POOL_MAX) pool.push(b);
  };

  /**
   * Appends bytes to the file a block at a time, in order; at most BLOCKS_IN_FLIGHT blocks being
   * written. A write's failure is thrown by the next `write` and by `settle`.
   */
  class BlockWriter {
    private block: Buffer | undefined;
    private fill = 0;
    private inFlight = 0;
    private chain: Promise<void> = Promise.resolve();
    private failure: unknown;
    private unsynced = 0;
    private syncing: Promise<void> | undefined;
    private waiting: (() => void) | undefined;

    constructor(
      private readonly file: FileHandle,
      private readonly path: string,
    ) {}

    /** Copies all of `bytes` in; whether another read's worth fits without waiting for the disk. */
    write(bytes: Buffer): boolean {
      if (this.failure !== undefined) throw this.failure;
      let at = 0;
      while (at < bytes.length) {
        this.block ??= takeBlock();
        const n = bytes.copy(this.block, this.fill, at);
        this.fill += n;
        at += n;
        if (this.fill === BLOCK_BYTES) this.flush();
      }
      return this.hasRoom();
    }

    hasRoom(): boolean {
      return (
        this.failure !== undefined ||
        this.inFlight < BLOCKS_IN_FLIGHT ||
        (this.block !== undefined && BLOCK_BYTES - this.fill >= READ_BYTES)
      );
    }

    /** Calls `resume` once a block is written (or a write failed). */
    drain(resume: () => void): void {
      if (this.hasRoom()) resume();
      else this.waiting = resume;
    }

    /** Queues the partly filled block. */
    flush(): void {
      const block = this.block;
      const length = this.fill;
      if (block === undefined || length === 0) return;
      this.block = undefined;
      this.fill = 0;
      this.inFlight++;
      this.chain = this.chain
        .then(async () => {
          if (this.failure !== undefined) return;
          // the file is open for appending: each write lands after the last
          for (let done = 0; done < length;)
            done += (await this.file.write(block, done, length - done)).bytesWritten;
          this.unsynced += length;
          if (this.unsynced >= WRITEBACK_BYTES && this.syncing === undefined) {
            this.unsynced = 0;
            const syncing = this.file.datasync().finally(() => (this.syncing = undefined));
            syncing.catch(() => undefined);
            this.syncing = syncing;
          }
        })
        .catch((err: unknown) => {
          this.failure ??= fileError(err, `write ${this.path}`);
        })
        .finally(() => {
          this.inFlight--;
          giveBlock(block);
          const resume = this.waiting;
          this.waiting = undefined;
          resume?.();
        });
    }

    /** Writes what is left and waits for every write; throws a write's failure. */
    async settle(): Promise<void> {
      this.flush();
      await this.chain;
      await this.syncing?.catch(() => undefined);
      if (this.failure !== undefined) throw this.failure;
    }
  }

  // -------------------------------------------------------------------------------- HTTP/1.1

  interface Head {
    status: number;
    minor: number;
    headers: Record<string, string | string[]>;
    /** Content-Length, or 'chunked', or 'close' (until the connection ends). */
    body: number | 'chunked' | 'close';
    keepAlive: boolean;
  }

  /** A response head (its lines without the blank line that ends it). */
  const parseHead = (text: string): Head => {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.([01]) ([1-9][0-9][0-9])(?: (.*))?$/.exec(lines[0]!);
    if (!status || BAD_FIELD_CHAR.test(status[3] ?? '')) throw protocolError('a malformed status line');
    const headers: Record<string, string | string[]> = Object.create(null) as Record<string, string>;
    const lengths: string[] = [];
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      if (colon <= 0 || !TOKEN.test(name)) throw protocolError('a malformed header field');
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (BAD_FIELD_CHAR.test(value)) throw protocolError(`a control character in header ${name}`);
      if (name === 'content-length') lengths.push(...value.split(',').map((v) => v.trim()));
      const had = headers[name];
      headers[name] = had === undefined ? value : `${had as string}, ${value}`;
    }
    const code = Number(status[2]);
    const minor = Number(status[1]);
    const connection = String(headers['connection'] ?? '')
      .toLowerCase()
      .split(',')
      .map((t) => t.trim());
    const keepAlive = minor === 1 ? !connection.includes('close') : connection.includes('keep-alive');
    let body: Head['body'];
    const coding = headers['transfer-encoding'];
    if (code < 200 || code === 204 || code === 304) body = 0;
    else if (coding !== undefined) {
      if (lengths.length > 0) throw protocolError('both Transfer-Encoding and Content-Length');
      if ((coding as string).toLowerCase() !== 'chunked' || minor !== 1)
        throw protocolError(`Transfer-Encoding ${JSON.stringify(coding)} (only chunked is read)`);
      body = 'chunked';
    } else if (lengths.length > 0) {
      if (!lengths.every((l) => /^[0-9]{1,15}$/.test(l) && l === lengths[0]))
        throw protocolError(`Content-Length ${JSON.stringify(headers['content-length'])}`);
      body = Number(lengths[0]);
    } else body = 'close';
    return { status: code, minor, headers, body, keepAlive: keepAlive && body !== 'close' };
  };

  /** A chunked body's framing (RFC 9112 §7.1): chunk sizes, their line ends, the trailer. */
  class Dechunker {
    private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
    private line = '';
    private left = 0;
    private trailerBytes = 0;

    get done(): boolean {
      return this.state === 'done';
    }

    /** Feeds bytes from `at`; body pieces go to `emit`. Returns where the body ended, or the end. */
    feed(bytes: Buffer, at: number, emit: (piece: Buffer) => void): number {
      while (at < bytes.length && this.state !== 'done') {
        if (this.state === 'data') {
          const n = Math.min(this.left, bytes.length - at);
          emit(bytes.subarray(at, at + n));
          at += n;
          this.left -= n;
          if (this.left === 0) this.state = 'data-end';
          continue;
        }
        const nl = bytes.indexOf(10, at);
        const end = nl < 0 ? bytes.length : nl;
        if (this.line.length + end - at > MAX_LINE_BYTES) throw protocolError('a chunk line too long');
        this.line += bytes.toString('latin1', at, end);
        at = nl < 0 ? bytes.length : nl + 1;
        if (nl < 0) break;
        if (!this.line.endsWith('\r')) throw protocolError('a chunk line not ended by CRLF');
        const text = this.line.slice(0, -1);
        this.line = '';
        if (this.state === 'data-end') {
          if (text !== '') throw protocolError('chunk data longer than its size');
          this.state = 'size';
        } else if (this.state === 'size') {
          const size = /^([0-9a-fA-F]{1,13})[ \t]*(;.*)?$/.exec(text);
          if (!size || BAD_FIELD_CHAR.test(size[2] ?? '')) throw protocolError('a malformed chunk size');
          this.left = parseInt(size[1]!, 16);
          this.state = this.left === 0 ? 'trailer' : 'data';
        } else if (text === '') {
          this.state = 'done';
        } else {
          this.trailerBytes += text.length;
          const colon = text.indexOf(':');
          if (this.trailerBytes > MAX_HEAD_BYTES || colon <= 0 || !TOKEN.test(text.slice(0, colon)))
            throw protocolError('a malformed trailer');
          if (BAD_FIELD_CHAR.test(text.slice(colon + 1)))
            throw protocolError('a control character in a trailer');
        }
      }
      return at;
    }
  }

  const idle = new Map<string, Connection[]>();

  /** One socket; one exchange (request and response) at a time. */
  class Connection {
    readonly socket: Socket;
    private readonly buffer = Buffer.allocUnsafeSlow(READ_BYTES);
    exchange: Exchange | undefined;
    reused = false;
    dead = false;

    constructor(
      readonly key: string,
      url: URL,
      insecureTls: boolean,
    ) {
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
      const https = url.protocol === 'https:';
      const port = Number(url.port || (https ? 443 : 80));
      const onread = { buffer: this.buffer, callback: (n: number) => this.data(n) };
      if (https) {
        tls ??= process.getBuiltinModule('node:tls');
        // tls.connect takes onread as net.connect does (its types lack it)
        this.socket = tls.connect({
          host,
          port,
          ...(net.isIP(host) ? {} : { servername: host }),
          rejectUnauthorized: !insecureTls,
          ALPNProtocols: ['http/1.1'],
          onread,
        } as import('node:tls').ConnectionOptions);
      } else {
        this.socket = net.connect({ host, port, onread });
      }
      this.socket.setNoDelay(true);
      this.socket.on('end', () => this.exchange?.ended());
      this.socket.on('error', (err) => this.exchange?.fail(err));
      this.socket.on('close', () => {
        this.dead = true;
        this.unpool();
        this.exchange?.fail(new JobError('the connection closed', 'transient'));
      });
      this.socket.on('timeout', () =>
        this.socket.destroy(new JobError(`no data for ${this.socket.timeout! / 1000} s`, 'transient')),
      );
    }

    private data(n: number): boolean {
      if (!this.exchange) {
        // bytes nobody asked for on an idle connection
        this.destroy();
        return false;
      }
      return this.exchange.data(this.buffer.subarray(0, n));
    }

    /** Back to the idle connections, or closed. */
    release(reusable: boolean): void {
      this.exchange = undefined;
      if (!reusable || this.dead) {
        this.destroy();
        return;
      }
      this.socket.setTimeout(0);
      this.socket.unref();
      this.reused = true;
      const list = idle.get(this.key) ?? [];
      list.push(this);
      idle.set(this.key, list);
    }

    private unpool(): void {
      const list = idle.get(this.key);
      const i = list?.indexOf(this) ?? -1;
      if (i >= 0) list!.splice(i, 1);
    }

    destroy(err?: Error): void {
      this.dead = true;
      this.unpool();
      this.socket.destroy(err);
    }
  }

  /** One request and its response on a connection. */
  class Exchange {
    private state: 'head' | 'body' | 'done' = 'head';
    private headBytes: Buffer = Buffer.alloc(0);
    private interim = 0;
    private sawBytes = false;
    private head!: Head;
    private left = 0;
    private dechunker: Dechunker | undefined;
    /** Body bytes that came with the head, waiting for the reader. */
    private early: Buffer | undefined;
    private sink: BodySink | undefined;
    private extra = false;
    private readonly headReady: Promise<Head>;
    private resolveHead!: (head: Head) => void;
    private rejectHead!: (err: unknown) => void;
    private bodyDone: Promise<void> | undefined;
    private resolveBody: (() => void) | undefined;
    private rejectBody: ((err: unknown) => void) | undefined;
    private failure: unknown;

    constructor(readonly connection: Connection) {
      this.headReady = new Promise<Head>((resolve, reject) => {
        this.resolveHead = resolve;
        this.rejectHead = reject;
      });
      this.headReady.catch(() => undefined);
    }

    /** Whether the connection failed before any byte of the answer (a kept-alive one the server closed). */
    get silent(): boolean {
      return !this.sawBytes;
    }

    response(): Promise<Head> {
      return this.headReady;
    }

    data(bytes: Buffer): boolean {
      this.sawBytes = true;
      try {
        if (this.state === 'head') return this.headData(bytes);
        if (this.state === 'body') return this.bodyData(bytes, 0);
        this.extra = true;
        return false;
      } catch (err) {
        this.fail(err);
        return false;
      }
    }

    private headData(bytes: Buffer): boolean {
      let from = Math.max(0, this.headBytes.length - 3);
      this.headBytes = Buffer.concat([this.headBytes, bytes]);
      for (; ; from = 0) {
        const end = this.headBytes.indexOf('\r\n\r\n', from);
        if (end < 0) {
          if (this.headBytes.length > MAX_HEAD_BYTES)
            throw protocolError(`a head over ${MAX_HEAD_BYTES} bytes`);
          return true;
        }
        if (end > MAX_HEAD_BYTES) throw protocolError(`a head over ${MAX_HEAD_BYTES} bytes`);
        const head = parseHead(this.headBytes.toString('latin1', 0, end));
        const rest = this.headBytes.subarray(end + 4);
        if (head.status >= 100 && head.status < 200) {
          // an interim answer (100 Continue, 103 Early Hints): the real one follows
          if (head.status === 101 || ++this.interim > MAX_INTERIM)
            throw protocolError(`status ${head.status}`);
          this.headBytes = rest;
          if (this.headBytes.length === 0) return true;
          continue;
        }
        this.head = head;
        this.state = 'body';
        this.headBytes = Buffer.alloc(0);
        if (head.body === 'chunked') this.dechunker = new Dechunker();
        else if (head.body !== 'close') this.left = head.body;
        // the reader is not there yet: the socket waits for it (what came is kept: a copy already)
        if (rest.length > 0) this.early = rest;
        if (head.body === 0) this.finish();
        this.resolveHead(head);
        return false;
      }
    }

    /** Body bytes from `at`; whether to read on. */
    private bodyData(bytes: Buffer, at: number): boolean {
      const sink = this.sink!;
      let more = true;
      if (this.dechunker) {
        const end = this.dechunker.feed(bytes, at, (piece) => {
          if (!sink.data(piece)) more = false;
        });
        if (this.dechunker.done) {
          if (end < bytes.length) this.extra = true;
          this.finish();
          return false;
        }
      } else if (this.head.body === 'close') {
        if (at < bytes.length) more = sink.data(at === 0 ? bytes : bytes.subarray(at));
      } else {
        const n = Math.min(this.left, bytes.length - at);
        if (n > 0) more = sink.data(bytes.subarray(at, at + n));
        this.left -= n;
        if (this.left === 0) {
          if (at + n < bytes.length) this.extra = true;
          this.finish();
          return false;
        }
      }
      if (!more) sink.drain(() => this.resume());
      return more;
    }

    private resume(): void {
      if (this.state === 'body' && !this.connection.dead) this.connection.socket.resume();
    }

    read(sink: BodySink): Promise<void> {
      if (this.bodyDone) throw new Error('the body is read once');
      this.bodyDone = new Promise<void>((resolve, reject) => {
        this.resolveBody = resolve;
        this.rejectBody = reject;
      });
      this.sink = sink;
      if (this.failure !== undefined) this.rejectBody!(this.failure);
      else if (this.state === 'done') this.resolveBody!();
      else {
        const early = this.early;
        this.early = undefined;
        let more = true;
        try {
          if (early) more = this.bodyData(early, 0);
        } catch (err) {
          this.fail(err);
          return this.bodyDone;
        }
        if (more && this.state === 'body') this.resume();
      }
      return this.bodyDone;
    }

    /** The connection's end (EOF). */
    ended(): void {
      if (this.state === 'body' && this.head.body === 'close') {
        this.finish();
        return;
      }
      if (this.state !== 'done')
        this.fail(
          new JobError(
            this.state === 'head' ? 'the connection ended before an answer' : 'the connection ended mid-body',
            'transient',
          ),
        );
    }

    private finish(): void {
      if (this.state === 'done') return;
      this.state = 'done';
      // bytes past the end of a body that ended with its head (no body, or all of it there)
      if (this.early !== undefined && this.early.length > 0) this.extra = true;
      this.early = undefined;
      this.resolveBody?.();
      this.connection.release(this.head.keepAlive && !this.extra && this.failure === undefined);
    }

    fail(err: unknown): void {
      if (this.failure !== undefined || this.state === 'done') return;
      this.failure = err;
      this.state = 'done';
      this.rejectHead(err);
      this.rejectBody?.(err);
      this.connection.exchange = undefined;
      this.connection.destroy();
    }

    destroy(): void {
      this.fail(new JobError('cancelled', 'cancelled'));
    }
  }

  const requestHead = (url: URL, headers: Record<string, string>): string => {
    const target = `${url.pathname}${url.search}`;
    if (!/^\/[\x21-\x7e]*$/.test(target))
      throw new JobError(`a request target that cannot be sent: ${target}`, 'invalid');
    let head = `GET ${target} HTTP/1.1\r\nhost: ${url.host}\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      if (!TOKEN.test(name) || name.toLowerCase() === 'host' || BAD_FIELD_CHAR.test(value))
        throw new JobError(`a request header that cannot be sent: ${name}`, 'invalid');
      head += `${name}: ${value}\r\n`;
    }
    return `${head}\r\n`;
  };

  const get = async (
    url: URL,
    headers: Record<string, string>,
    options: GetOptions,
  ): Promise<HttpResponse> => {
    const head = requestHead(url, headers);
    const key = `${url.protocol}//${url.host}${options.insecureTls ? ' insecure' : ''}`;
    for (let attempt = 0; ; attempt++) {
      if (options.signal.aborted) throw new JobError('cancelled', 'cancelled');
      let connection: Connection | undefined;
      const list = idle.get(key);
      while (list && list.length > 0 && connection === undefined) {
        const c = list.pop()!;
        if (!c.dead) connection = c;
      }
      connection ??= new Connection(key, url, options.insecureTls);
      const exchange = new Exchange(connection);
      connection.exchange = exchange;
      connection.socket.ref();
      connection.socket.setTimeout(options.idleTimeoutMs);
      const onAbort = () => exchange.destroy();
      options.signal.addEventListener('abort', onAbort, { once: true });
      const reused = connection.reused;
      connection.socket.write(head, 'latin1');
      // an idle connection's reading stopped with its last answer
      connection.socket.resume();
      let answer: Head;
      try {
        answer = await exchange.response();
      } catch (err) {
        options.signal.removeEventListener('abort', onAbort);
        // a kept-alive connection the server had closed: once more on a new one
        if (reused && exchange.silent && attempt === 0 && !options.signal.aborted) continue;
        throw err;
      }
      let read: Promise<void> | undefined;
      const body = (sink: BodySink): Promise<void> => {
        read ??= exchange.read(sink).finally(() => options.signal.removeEventListener('abort', onAbort));
        return read;
      };
      return {
        status: answer.status,
        headers: answer.headers,
        read: body,
        async readSmall(maxBytes: number): Promise<Buffer> {
          const pieces: Buffer[] = [];
          let size = 0;
          let over = false;
          await body({
            data: (bytes) => {
              if (size + bytes.length > maxBytes) {
                over = true;
                return false;
              }
              pieces.push(Buffer.from(bytes));
              size += bytes.length;
              return true;
            },
            // enough: the rest is not read
            drain: () => exchange.destroy(),
          }).catch((err: unknown) => {
            if (!over) throw err;
          });
          return Buffer.concat(pieces, size);
        },
        destroy: () => {
          options.signal.removeEventListener('abort', onAbort);
          exchange.destroy();
        },
      };
    }
  };

  // -------------------------------------------------------------------------------- a job

  /** The GET of a job from `offset`, redirects followed (Authorization only to the first origin). */
  const open = async (job: FetchJob, offset: number, signal: AbortSignal): Promise<HttpResponse> => {
    let url = new URL(job.url);
    const origin = url.origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': 'skiff' };
      for (const [k, v] of Object.entries(job.headers))
        if (k.toLowerCase() !== 'authorization' || url.origin === origin) headers[k] = v;
      if (offset > 0) headers.range = `bytes=${offset}-`;
      const res = await get(url, headers, {
        insecureTls: job.insecureTls,
        idleTimeoutMs: job.idleTimeoutMs,
        signal,
      });
      const location = res.headers['location'];
      if (!REDIRECTS.includes(res.status) || typeof location !== 'string' || location === '') return res;
      await res.readSmall(MAX_ERROR_BODY).catch(() => undefined);
      if (hop >= MAX_REDIRECTS)
        throw new JobError(`GET ${origin}: more than ${MAX_REDIRECTS} redirects`, 'transient');
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new JobError(`redirected to an invalid URL`, 'invalid');
      }
      if (next.protocol !== 'https:' && next.protocol !== 'http:')
        throw new JobError(`redirected to ${next.protocol}`, 'invalid');
      if (url.protocol === 'https:' && next.protocol === 'http:' && !job.allowHttp)
        throw new JobError(`redirected from HTTPS to plain HTTP (${next.origin}); refused`, 'invalid');
      url = next;
    }
  };

  const transient = (err: unknown): boolean =>
    err instanceof JobError ? err.kind === 'transient' : (err as { name?: string }).name !== 'AbortError';

  const run = async (
    job: FetchJob,
    signal: AbortSignal,
    onProgress: (p: FetchProgress) => void,
  ): Promise<{ digest: string; fetched: number }> => {
    let fetched = 0;
    let file: FileHandle | undefined;
    try {
      file = await fsp.open(job.path, 'a+').catch((err: unknown) => {
        throw fileError(err, `open ${job.path}`);
      });
      const hash = createHash('sha256');
      let offset = 0;
      // the kept bytes first, read with a block of the pool
      if (job.kept > 0) {
        const block = takeBlock();
        try {
          while (offset < job.kept) {
            const { bytesRead } = await file
              .read(block, 0, Math.min(BLOCK_BYTES, job.kept - offset), offset)
              .catch((err: unknown) => {
                throw fileError(err, `read ${job.path}`);
              });
            if (bytesRead === 0)
              throw new JobError(`the kept bytes of ${job.path} changed while read`, 'transient');
            hash.update(block.subarray(0, bytesRead));
            offset += bytesRead;
          }
        } finally {
          giveBlock(block);
        }
      }
      const writer = new BlockWriter(file, job.path);
      let lastProgress = 0;
      let failures = 0;
      while (offset < job.size) {
        const before = offset;
        let res: HttpResponse | undefined;
        try {
          res = await open(job, offset, signal);
          let skip = 0;
          if (res.status === 206 && offset > 0) {
            const range = /^bytes ([0-9]+)-([0-9]+)\/([0-9]+|\*)$/.exec(
              String(res.headers['content-range'] ?? ''),
            );
            if (!range || Number(range[1]) !== offset)
              throw new JobError(
                `asked for bytes from ${offset}, got Content-Range ${JSON.stringify(res.headers['content-range'] ?? '')}`,
                'invalid',
              );
          } else if (res.status === 200) {
            skip = offset;
            const length = res.headers['content-length'];
            if (length !== undefined && Number(length) !== job.size)
              throw new JobError(
                `the registry announces ${String(length)} bytes, the manifest says ${job.size}`,
                'invalid',
              );
          } else {
            const status = res.status;
            const body = await res.readSmall(MAX_ERROR_BODY).catch(() => Buffer.alloc(0));
            if (status >= 500 || status === 429)
              throw new JobError(`the registry answered ${status}`, 'transient');
            throw new JobError(`the registry answered ${status}`, 'status', {
              status,
              headers: res.headers,
              body,
            });
          }
          await res.read({
            data: (raw) => {
              let bytes = raw;
              fetched += bytes.length;
              if (skip > 0) {
                if (bytes.length <= skip) {
                  skip -= bytes.length;
                  return true;
                }
                bytes = bytes.subarray(skip);
                skip = 0;
              }
              if (offset + bytes.length > job.size)
                throw new JobError(`more bytes than the declared size ${job.size}`, 'invalid');
              hash.update(bytes);
              offset += bytes.length;
              const room = writer.write(bytes);
              const now = Date.now();
              if (now - lastProgress >= 100) {
                lastProgress = now;
                onProgress({ type: 'progress', bytes: offset });
              }
              return room;
            },
            drain: (resume) => writer.drain(resume),
          });
          if (offset < job.size)
            throw new JobError(
              `the registry ended the blob after ${offset} of ${job.size} bytes`,
              'transient',
            );
        } catch (err) {
          res?.destroy();
          // what was hashed is in the file before anything else: a resume hashes it again
          await writer.settle();
          if (signal.aborted) throw new JobError('cancelled', 'cancelled');
          if (offset > before) failures = 0;
          failures++;
          if (!transient(err) || failures >= job.attempts) {
            if (err instanceof JobError) throw err;
            throw new JobError(`GET ${new URL(job.url).origin}: ${reason(err)}`, 'transient');
          }
          onProgress({
            type: 'retrying',
            bytes: offset,
            attempt: failures + 1,
            error: String((err as Error).message),
          });
          await new Promise((r) => setTimeout(r, job.retryDelayMs * 2 ** (failures - 1)));
        }
      }
      await writer.settle();
      onProgress({ type: 'progress', bytes: offset });
      return { digest: `sha256:${hash.digest('hex')}`, fetched };
    } catch (err) {
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { fetched });
    } finally {
      await file?.close().catch(() => undefined);
    }
  };

  const reason = (err: unknown): string => {
    const code = (err as { code?: unknown } | undefined)?.code;
    if (code === 'ECONNREFUSED') return 'connection refused';
    if (code === 'ECONNRESET') return 'connection reset (the registry closed it)';
    return String((err as Error | undefined)?.message ?? err);
  };

  const failureOf = (err: unknown): FetchFailure => {
    const fetched = (err as { fetched?: unknown } | undefined)?.fetched;
    const base = { fetched: typeof fetched === 'number' ? fetched : 0 };
    if (!(err instanceof JobError)) return { ...base, message: reason(err), kind: 'transient' };
    const { status, headers, body, code } = err.extra;
    return {
      ...base,
      message: err.message,
      kind: err.kind,
      ...(status !== undefined ? { status } : {}),
      ...(headers ? { headers: { ...headers } } : {}),
      ...(body ? { body: new Uint8Array(body) } : {}),
      ...(code !== undefined ? { code } : {}),
    };
  };

  return {
    run,
    failureOf,
    get,
    close(): void {
      for (const list of idle.values()) for (const c of [...list]) c.destroy();
      idle.clear();
    },
  };
}
