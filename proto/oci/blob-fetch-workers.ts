/**
 * The pull's layer lanes: each GETs a blob and appends it to the content store's ingest file,
 * hashing every byte (the kept bytes of an interrupted pull first), with blob-download.ts; the
 * store commits the file only once the digest a lane computed is the expected one
 * (content-store.ts ResumableFileIngester). Everything else (manifests, auth challenges, errors,
 * events) stays with the client on the pull's thread.
 *
 *   BlobFetchWorkers   worker threads, so the network, the hashing and the copying of several
 *                      layers run on several cores instead of all on one
 *   ThisThreadFetcher  the same download on the pull's own thread (one lane more beside the
 *                      workers, or the only one)
 *
 * A 401 or 403 is handed back (FetchStatusError): the client then fetches the rest itself,
 * answering the challenge. The workers run blob-download.ts from its source text (`eval`), so
 * they need no file of their own next to whatever bundle this module ends up in.
 */
import { Worker } from 'node:worker_threads';
import { InvalidArgumentError, UnavailableError } from '../errors.js';
import {
  blobDownloader,
  type BlobDownloader,
  type FetchFailure,
  type FetchJob,
  type FetchProgress,
} from './blob-download.js';
import type { Digest } from './digest.js';

export type { FetchJob, FetchProgress } from './blob-download.js';

/** A lane that fetches a layer into its ingest file: the digest of the whole file and the bytes fetched. */
export interface BlobFetcher {
  fetch(
    job: FetchJob,
    onProgress: (p: FetchProgress) => void,
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; fetched: number }>;
}

/** The registry answered a lane with an error status: the caller turns it into its error. */
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
  | { id: number; type: 'failed'; failure: FetchFailure };

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
  /** Takes no new job; ends once it has none (retire). */
  retired?: boolean;
}

export class BlobFetchWorkers implements BlobFetcher {
  private readonly slots: Slot[] = [];
  /** Retired workers still finishing a job. */
  private readonly retiring = new Set<Slot>();
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
          if (slot.jobs === 0 && slot.retired) this.end(slot);
          else if (slot.jobs === 0) slot.worker.unref();
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

  /**
   * Ends every worker once it has no job, and starts new ones for later fetches: for a pull that
   * has handed out its last layer, so the workers' teardown (10-35 ms of a pull's exit at load
   * 10) overlaps what the pull does after its layers instead of delaying the process's exit.
   */
  retire(): void {
    for (const slot of this.slots.splice(0)) {
      slot.retired = true;
      if (slot.jobs === 0) this.end(slot);
      else this.retiring.add(slot);
    }
  }

  close(): void {
    this.closed = true;
    for (const s of [...this.slots, ...this.retiring]) void s.worker.terminate();
    this.slots.length = 0;
    this.retiring.clear();
  }

  private end(slot: Slot): void {
    this.retiring.delete(slot);
    void slot.worker.terminate();
  }

  private slot(): Slot {
    const idle = this.slots.find((s) => s.jobs === 0);
    if (idle) return idle;
    if (this.slots.length < this.size) return this.spawn();
    return this.slots.reduce((a, b) => (b.jobs < a.jobs ? b : a));
  }

  private spawn(): Slot {
    const worker = new Worker(`(${fetchWorkerMain.toString()})(${blobDownloader.toString()})`, {
      eval: true,
    });
    worker.unref();
    const slot: Slot = { worker, jobs: 0 };
    worker.on('message', (m: WorkerReply) => this.reply(m));
    worker.on('error', (err) => this.failSlot(slot, err));
    worker.on('exit', (code) => {
      if (!this.closed && !(slot.retired && slot.jobs === 0))
        this.failSlot(slot, new UnavailableError(`fetch blob: a fetch worker exited (${code})`));
    });
    this.slots.push(slot);
    return slot;
  }

  private failSlot(slot: Slot, err: unknown): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    this.retiring.delete(slot);
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
    if (m.type === 'failed') p.reject(errorOf(m.failure));
  }
}

/** The layer download on the pull's own thread. */
export class ThisThreadFetcher implements BlobFetcher {
  private readonly downloader: BlobDownloader = blobDownloader();

  async fetch(
    job: FetchJob,
    onProgress: (p: FetchProgress) => void,
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; fetched: number }> {
    try {
      const r = await this.downloader.run(job, signal ?? new AbortController().signal, onProgress);
      return { digest: r.digest as Digest, fetched: r.fetched };
    } catch (err) {
      throw errorOf(this.downloader.failureOf(err));
    }
  }

  /** Closes its idle connections. */
  close(): void {
    this.downloader.close();
  }
}

/** The error a lane's failure stands for, with the bytes it fetched (`fetched`) and a file system's `code`. */
function errorOf(failure: FetchFailure): Error {
  let err: Error;
  if (failure.kind === 'status') {
    err = new FetchStatusError(
      failure.message,
      failure.status ?? 0,
      failure.headers ?? {},
      Buffer.from(failure.body ?? new Uint8Array()),
    );
  } else if (failure.kind === 'invalid') {
    err = new InvalidArgumentError(failure.message, 'blob');
  } else {
    err = new UnavailableError(failure.message);
  }
  return Object.assign(err, {
    fetched: failure.fetched,
    ...(failure.code !== undefined ? { code: failure.code } : {}),
  });
}

/** Bytes a failed worker job fetched before it failed (for the pull's accounting). */
export function fetchedBy(err: unknown): number {
  const n = (err as { fetched?: unknown } | undefined)?.fetched;
  return typeof n === 'number' ? n : 0;
}

/**
 * A worker thread's code: jobs from the pool, run by blob-download.ts's downloader (its factory
 * passed in as source). Self-contained: it runs from its source text.
 */
function fetchWorkerMain(makeDownloader: typeof blobDownloader): void {
  const { parentPort } = process.getBuiltinModule('node:worker_threads');
  const downloader = makeDownloader();
  const controllers = new Map<number, AbortController>();
  parentPort!.on(
    'message',
    (m: { type: 'fetch'; id: number; job: FetchJob } | { type: 'cancel'; id: number }) => {
      if (m.type === 'cancel') {
        controllers.get(m.id)?.abort();
        return;
      }
      const controller = new AbortController();
      controllers.set(m.id, controller);
      downloader
        .run(m.job, controller.signal, (p) => parentPort!.postMessage({ id: m.id, ...p }))
        .then(
          (r) => parentPort!.postMessage({ id: m.id, type: 'done', digest: r.digest, fetched: r.fetched }),
          (err: unknown) =>
            parentPort!.postMessage({ id: m.id, type: 'failed', failure: downloader.failureOf(err) }),
        )
        .finally(() => controllers.delete(m.id));
    },
  );
}
