/**
 * Layer downloads on worker threads: each worker GETs a blob and appends it to the content
 * store's ingest file, hashing every byte (the kept bytes of an interrupted pull first), so the
 * network parsing, the hashing and the copying of several layers run on several cores instead
 * of all on the main thread. The store commits the file only once the digest a worker computed is
 * the expected one (content-store.ts ResumableFileIngester); everything else (manifests, auth
 * challenges, errors, events) stays with the client on the main thread.
 *
 * Within a job the worker does what registry-pull.ts does in-thread: reconnects with
 * `Range: bytes=<have>-` when the connection fails or ends early (up to `attempts` times in a row
 * without progress), skips what it has when a registry ignores Range, follows redirects of the
 * GET without carrying Authorization to another origin, writes a MiB at a time and asks the disk
 * to catch up every 8 MiB. A 401 or 403 is handed back (`unauthorized`): the client then fetches
 * the rest itself, answering the challenge.
 *
 * The worker's code is the self-contained function below, started from its source (`eval`), so
 * it needs no file of its own next to whatever bundle this module ends up in.
 */
import { Worker } from 'node:worker_threads';
import { InvalidArgumentError, UnavailableError } from '../errors.js';
import type { Digest } from './digest.js';

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

/** The registry answered the worker with an error status: the caller turns it into its error. */
export class FetchStatusError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly headers: Record<string, string | string[] | undefined>,
    readonly body: Buffer,
  ) {
    super(message);
  }
}

type WorkerReply =
  | { id: number; type: 'progress' | 'retrying'; bytes: number; attempt?: number; error?: string }
  | { id: number; type: 'done'; digest: Digest; fetched: number }
  | {
      id: number;
      type: 'failed';
      fetched: number;
      error: {
        message: string;
        kind: 'transient' | 'invalid' | 'status' | 'cancelled';
        status?: number;
        headers?: Record<string, string | string[] | undefined>;
        body?: Uint8Array;
      };
    };

interface Pending {
  resolve: (r: { digest: Digest; fetched: number }) => void;
  reject: (err: unknown) => void;
  onProgress: (p: FetchProgress) => void;
  slot: Slot;
  fetched: number;
}

interface Slot {
  worker: Worker;
  jobs: number;
}

export class BlobFetchWorkers {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  /** `size`: the most workers that run at once. */
  constructor(readonly size: number) {}

  /** Fetches `job` on the least busy worker (starting one if fewer than `size` run). */
  fetch(
    job: FetchJob,
    onProgress: (p: FetchProgress) => void,
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; fetched: number }> {
    if (this.closed) return Promise.reject(new UnavailableError('fetch blob: the worker pool is closed'));
    const slot = this.slot();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => slot.worker.postMessage({ type: 'cancel', id });
      signal?.addEventListener('abort', onAbort, { once: true });
      const done =
        <T>(fn: (v: T) => void) =>
        (v: T) => {
          signal?.removeEventListener('abort', onAbort);
          slot.jobs--;
          if (slot.jobs === 0) slot.worker.unref();
          fn(v);
        };
      this.pending.set(id, { resolve: done(resolve), reject: done(reject), onProgress, slot, fetched: 0 });
      slot.jobs++;
      slot.worker.ref();
      slot.worker.postMessage({ type: 'fetch', id, job });
    });
  }

  /**
   * Starts `count` workers (all by default) now: their start-up then overlaps what comes before
   * the first layer.
   */
  start(count = this.size): void {
    while (!this.closed && this.slots.length < Math.min(count, this.size)) this.spawn();
  }

  close(): void {
    this.closed = true;
    for (const s of this.slots) void s.worker.terminate();
    this.slots.length = 0;
  }

  private slot(): Slot {
    const idle = this.slots.find((s) => s.jobs === 0);
    if (idle) return idle;
    if (this.slots.length < this.size) return this.spawn();
    return this.slots.reduce((a, b) => (b.jobs < a.jobs ? b : a));
  }

  private spawn(): Slot {
    const worker = new Worker(`(${fetchWorkerMain.toString()})()`, { eval: true });
    worker.unref();
    const slot: Slot = { worker, jobs: 0 };
    worker.on('message', (m: WorkerReply) => this.reply(m));
    worker.on('error', (err) => this.failSlot(slot, err));
    worker.on('exit', (code) => {
      if (!this.closed)
        this.failSlot(slot, new UnavailableError(`fetch blob: a fetch worker exited (${code})`));
    });
    this.slots.push(slot);
    return slot;
  }

  private failSlot(slot: Slot, err: unknown): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(err);
    }
  }

  private reply(m: WorkerReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress' || m.type === 'retrying') {
      p.onProgress({
        type: m.type,
        bytes: m.bytes,
        ...(m.attempt !== undefined ? { attempt: m.attempt } : {}),
        ...(m.error !== undefined ? { error: m.error } : {}),
      });
      return;
    }
    this.pending.delete(m.id);
    if (m.type === 'done') {
      p.resolve({ digest: m.digest, fetched: m.fetched });
      return;
    }
    if (m.type !== 'failed') return;
    const e = m.error;
    let err: Error;
    if (e.kind === 'status') {
      err = new FetchStatusError(
        e.message,
        e.status ?? 0,
        e.headers ?? {},
        Buffer.from(e.body ?? new Uint8Array()),
      );
    } else if (e.kind === 'invalid') {
      err = new InvalidArgumentError(e.message, 'blob');
    } else {
      err = new UnavailableError(e.message);
    }
    Object.assign(err, { fetched: m.fetched });
    p.reject(err);
  }
}

/** Bytes a failed worker job fetched before it failed (for the pull's accounting). */
export function fetchedBy(err: unknown): number {
  const n = (err as { fetched?: unknown } | undefined)?.fetched;
  return typeof n === 'number' ? n : 0;
}

/**
 * The worker thread's code. Self-contained: it runs from its source text, so it may use only
 * Node's built-in modules (through process.getBuiltinModule) and what it declares itself.
 */
function fetchWorkerMain(): void {
  const { parentPort } = process.getBuiltinModule('node:worker_threads');
  const http = process.getBuiltinModule('node:http');
  // node:https (TLS) is loaded only for an https URL
  const { createHash } = process.getBuiltinModule('node:crypto');
  const fsp = process.getBuiltinModule('node:fs/promises');
  const { createReadStream } = process.getBuiltinModule('node:fs');
  const httpAgent = new http.Agent({ keepAlive: true });
  type Https = typeof import('node:https');
  let tls:
    { module: Https; strict: import('node:https').Agent; insecure: import('node:https').Agent } | undefined;
  const tlsSide = () => {
    if (!tls) {
      const module = process.getBuiltinModule('node:https');
      tls = {
        module,
        strict: new module.Agent({ keepAlive: true }),
        insecure: new module.Agent({ keepAlive: true, rejectUnauthorized: false }),
      };
    }
    return tls;
  };
  const controllers = new Map<number, AbortController>();

  class JobError extends Error {
    constructor(
      message: string,
      readonly kind: 'transient' | 'invalid' | 'status' | 'cancelled',
      readonly extra: { status?: number; headers?: Record<string, unknown>; body?: Buffer } = {},
    ) {
      super(message);
    }
  }

  interface Job {
    url: string;
    headers: Record<string, string>;
    insecureTls: boolean;
    allowHttp: boolean;
    path: string;
    kept: number;
    size: number;
    attempts: number;
    retryDelayMs: number;
    idleTimeoutMs: number;
  }

  type Response = import('node:http').IncomingMessage;

  const get = (url: URL, headers: Record<string, string>, job: Job, signal: AbortSignal): Promise<Response> =>
    new Promise((resolve, reject) => {
      const side = url.protocol === 'https:' ? tlsSide() : undefined;
      const agent = side ? (job.insecureTls ? side.insecure : side.strict) : httpAgent;
      const request = side ? side.module.request : http.request;
      const req = request(url, { method: 'GET', headers, agent, signal }, (res) => {
        res.on('error', () => undefined);
        resolve(res);
      });
      req.setTimeout(job.idleTimeoutMs, () =>
        req.destroy(
          new JobError(
            `GET ${url.origin}${url.pathname}: no data for ${job.idleTimeoutMs / 1000} s`,
            'transient',
          ),
        ),
      );
      req.on('error', (err) => reject(err));
      req.end();
    });

  /** The GET with redirects followed (credentials only to the first origin). */
  const open = async (job: Job, offset: number, signal: AbortSignal): Promise<Response> => {
    let url = new URL(job.url);
    const origin = url.origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': 'skiff' };
      for (const [k, v] of Object.entries(job.headers))
        if (k !== 'authorization' || url.origin === origin) headers[k] = v;
      if (offset > 0) headers.range = `bytes=${offset}-`;
      const res = await get(url, headers, job, signal);
      const location = res.headers.location;
      if (![301, 302, 303, 307, 308].includes(res.statusCode ?? 0) || !location) return res;
      res.resume();
      if (hop >= 5) throw new JobError(`GET ${origin}: more than 5 redirects`, 'transient');
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:')
        throw new JobError(`redirected to ${next.protocol}`, 'invalid');
      if (url.protocol === 'https:' && next.protocol === 'http:' && !job.allowHttp)
        throw new JobError(`redirected from HTTPS to plain HTTP (${next.origin}); refused`, 'invalid');
      url = next;
    }
  };

  const readSmall = async (res: Response): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res) {
        n += (c as Buffer).length;
        if (n > 65536) break;
        chunks.push(c as Buffer);
      }
    } catch {
      // the error body is best effort
    }
    res.destroy();
    return Buffer.concat(chunks);
  };

  const transient = (err: unknown): boolean =>
    err instanceof JobError ? err.kind === 'transient' : (err as { name?: string }).name !== 'AbortError';

  const run = async (
    id: number,
    job: Job,
    signal: AbortSignal,
  ): Promise<{ digest: string; fetched: number }> => {
    const file = await fsp.open(job.path, 'a');
    const hash = createHash('sha256');
    let offset = 0;
    let fetched = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let unsynced = 0;
    let syncing: Promise<void> | undefined;
    let lastProgress = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const buffers = pending;
      const length = pendingBytes;
      pending = [];
      pendingBytes = 0;
      let { bytesWritten } = await file.writev(buffers);
      for (const b of buffers) {
        if (bytesWritten >= b.length) {
          bytesWritten -= b.length;
          continue;
        }
        await file.write(b.subarray(bytesWritten));
        bytesWritten = 0;
      }
      unsynced += length;
      if (unsynced >= 8 << 20 && syncing === undefined) {
        unsynced = 0;
        syncing = file.datasync().finally(() => (syncing = undefined));
        syncing.catch(() => undefined);
      }
    };
    try {
      if (job.kept > 0) {
        for await (const c of createReadStream(job.path, {
          start: 0,
          end: job.kept - 1,
          highWaterMark: 1 << 20,
        })) {
          hash.update(c as Buffer);
          offset += (c as Buffer).length;
        }
        if (offset !== job.kept)
          throw new JobError(`the kept bytes of ${job.path} changed while read`, 'transient');
      }
      let failures = 0;
      while (offset < job.size) {
        const before = offset;
        let res: Response | undefined;
        try {
          res = await open(job, offset, signal);
          let skip = 0;
          const status = res.statusCode ?? 0;
          if (status === 206 && offset > 0) {
            const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
            if (!m || Number(m[1]) !== offset)
              throw new JobError(
                `asked for bytes from ${offset}, got Content-Range ${JSON.stringify(res.headers['content-range'] ?? '')}`,
                'invalid',
              );
          } else if (status === 200) {
            skip = offset;
            const length = res.headers['content-length'];
            if (length !== undefined && Number(length) !== job.size)
              throw new JobError(
                `the registry announces ${length} bytes, the manifest says ${job.size}`,
                'invalid',
              );
          } else {
            const body = await readSmall(res);
            if (status >= 500 || status === 429)
              throw new JobError(`the registry answered ${status}`, 'transient');
            throw new JobError(`the registry answered ${status}`, 'status', {
              status,
              headers: res.headers as Record<string, unknown>,
              body,
            });
          }
          for await (const raw of res) {
            let chunk = raw as Buffer;
            fetched += chunk.length;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            offset += chunk.length;
            if (offset > job.size)
              throw new JobError(`more bytes than the declared size ${job.size}`, 'invalid');
            hash.update(chunk);
            pending.push(chunk);
            pendingBytes += chunk.length;
            if (pendingBytes >= 1 << 20) await flush();
            const now = Date.now();
            if (now - lastProgress >= 100) {
              lastProgress = now;
              parentPort!.postMessage({ id, type: 'progress', bytes: offset });
            }
          }
          if (offset < job.size)
            throw new JobError(
              `the registry ended the blob after ${offset} of ${job.size} bytes`,
              'transient',
            );
        } catch (err) {
          res?.destroy();
          await flush();
          if (signal.aborted) throw new JobError('cancelled', 'cancelled');
          if (offset > before) failures = 0;
          failures++;
          if (!transient(err) || failures >= job.attempts) {
            if (err instanceof JobError) throw err;
            const code = (err as { code?: string }).code;
            throw new JobError(
              `GET ${new URL(job.url).origin}: ${code === 'ECONNREFUSED' ? 'connection refused' : code === 'ECONNRESET' ? 'connection reset (the registry closed it)' : String((err as Error).message)}`,
              'transient',
            );
          }
          parentPort!.postMessage({
            id,
            type: 'retrying',
            bytes: offset,
            attempt: failures + 1,
            error: String((err as Error).message),
          });
          await new Promise((r) => setTimeout(r, job.retryDelayMs * 2 ** (failures - 1)));
        }
      }
      await flush();
      await syncing?.catch(() => undefined);
      parentPort!.postMessage({ id, type: 'progress', bytes: offset });
      return { digest: `sha256:${hash.digest('hex')}`, fetched };
    } catch (err) {
      await flush().catch(() => undefined);
      await syncing?.catch(() => undefined);
      throw Object.assign(err as object, { fetched });
    } finally {
      await file.close().catch(() => undefined);
    }
  };

  parentPort!.on('message', (m: { type: 'fetch'; id: number; job: Job } | { type: 'cancel'; id: number }) => {
    if (m.type === 'cancel') {
      controllers.get(m.id)?.abort();
      return;
    }
    const controller = new AbortController();
    controllers.set(m.id, controller);
    run(m.id, m.job, controller.signal).then(
      (r) => {
        controllers.delete(m.id);
        parentPort!.postMessage({ id: m.id, type: 'done', digest: r.digest, fetched: r.fetched });
      },
      (err: unknown) => {
        controllers.delete(m.id);
        const e =
          err instanceof JobError ? err : new JobError(String((err as Error)?.message ?? err), 'transient');
        parentPort!.postMessage({
          id: m.id,
          type: 'failed',
          fetched: (err as { fetched?: number }).fetched ?? 0,
          error: {
            message: e.message,
            kind: e.kind,
            ...(e.extra.status !== undefined ? { status: e.extra.status } : {}),
            ...(e.extra.headers ? { headers: e.extra.headers } : {}),
            ...(e.extra.body ? { body: new Uint8Array(e.extra.body) } : {}),
          },
        });
      },
    );
  });
}
