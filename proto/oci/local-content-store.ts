/**
 * LocalContentStore: the ContentStore on a local file system.
 *
 *   DIR/content/blobs/sha256/<hex>        committed blobs (read-only, 0444)
 *   DIR/content/ingest/<random>           ingests in progress (same fs, so commit is a rename)
 *   DIR/content/ingest/resume-<hex>[.lock] resumable ingests: the bytes of an interrupted fetch of
 *                                         blob sha256:<hex>, kept for the next attempt; the lock
 *                                         names the process writing them
 *   DIR/content/labels/sha256/<hex>.json  labels, written atomically (not fsynced: see setLabels)
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  statfs,
  utimes,
  type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
} from '../errors.js';
import { writeFileAtomic, syncDir } from '../support/atomic-file.js';
import type {
  BlobInfo,
  ContentStore,
  IngestOptions,
  IngestResult,
  ResumableIngestOptions,
  ResumableFileIngester,
  ResumableIngestResult,
  ResumableIngester,
} from './content-store.js';
import { PidLock } from '../support/pid-lock.js';
import { digestHex, parseDigest, type Digest } from './digest.js';

export interface LocalContentStoreOptions {
  /** Default per-ingest limit in bytes (Infinity = none). */
  maxBlobBytes?: number;
  /** Free space an ingest must leave on the file system, in bytes (default 256 MiB). */
  reserveBytes?: number;
  /** Free bytes of the file system holding `dir`; a parameter so tests can simulate a full disk. */
  freeBytes?: (dir: string) => Promise<number>;
}

/** How much a resumable ingest writes before it asks the disk to catch up (fdatasync). */
const WRITEBACK_BYTES = 8 << 20;

export async function fileSystemFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

export class LocalContentStore implements ContentStore, ResumableIngester, ResumableFileIngester {
  readonly blobsDir: string;
  readonly ingestDir: string;
  readonly labelsDir: string;
  private readonly maxBlobBytes: number;
  private readonly reserveBytes: number;
  private readonly freeBytes: (dir: string) => Promise<number>;

  private constructor(root: string, options: LocalContentStoreOptions) {
    this.blobsDir = join(root, 'blobs', 'sha256');
    this.ingestDir = join(root, 'ingest');
    this.labelsDir = join(root, 'labels', 'sha256');
    this.maxBlobBytes = options.maxBlobBytes ?? Infinity;
    this.reserveBytes = options.reserveBytes ?? 256 * 1024 * 1024;
    this.freeBytes = options.freeBytes ?? fileSystemFreeBytes;
  }

  /** `root` is DIR/content. */
  static async open(root: string, options: LocalContentStoreOptions = {}): Promise<LocalContentStore> {
    const store = new LocalContentStore(root, options);
    for (const dir of [store.blobsDir, store.ingestDir, store.labelsDir]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    }
    return store;
  }

  blobPath(digest: Digest): string {
    return join(this.blobsDir, digestHex(digest));
  }

  async has(digest: Digest): Promise<boolean> {
    try {
      await stat(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  async info(digest: Digest): Promise<BlobInfo> {
    let st;
    try {
      st = await stat(this.blobPath(digest));
    } catch {
      throw new NotFoundError(`get blob ${digest}: not in the content store`);
    }
    return {
      digest,
      size: st.size,
      committedAt: st.mtime.toISOString(),
      labels: await this.readLabels(digest),
    };
  }

  async read(digest: Digest): Promise<Readable> {
    const handle = await open(this.blobPath(digest), 'r').catch(() => {
      throw new NotFoundError(`read blob ${digest}: not in the content store`);
    });
    return handle.createReadStream({ highWaterMark: 1 << 20 });
  }

  /**
   * The blob opened for reading and its size, taken from the open file: a concurrent delete
   * cannot change what the handle reads. The caller closes the handle (a read stream made with
   * `handle.createReadStream()` closes it at its end). NotFoundError when absent.
   */
  async openBlob(digest: Digest): Promise<{ handle: FileHandle; size: number }> {
    const handle = await open(this.blobPath(digest), 'r').catch((err: unknown) => {
      throw new NotFoundError(`read blob ${digest}: not in the content store`, { cause: err });
    });
    try {
      return { handle, size: (await handle.stat()).size };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Sets a blob's time to now (a garbage collector's grace period counts from it); false when absent. */
  async touch(digest: Digest): Promise<boolean> {
    const now = new Date();
    try {
      await utimes(this.blobPath(digest), now, now);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Commits a file written outside `ingest` (a resumable upload whose chunks arrive in separate
   * requests) as the blob `digest`: the caller hashed the bytes as it wrote them and vouches for
   * the digest; the size is checked against the file. The file must be on this store's file
   * system; it is fsynced, made read-only and renamed into place (so a crash leaves either no
   * blob or the whole blob), or removed when the blob is already stored. `written` says which.
   */
  async commitFile(path: string, expected: { digest: Digest; size: number }): Promise<{ written: boolean }> {
    const digest = parseDigest(expected.digest, 'digest');
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size !== expected.size) {
        throw new InvalidArgumentError(
          `commit blob ${digest}: the file holds ${size} bytes, expected ${expected.size}`,
          'size',
        );
      }
      await handle.sync();
      await handle.chmod(0o444);
    } finally {
      await handle.close();
    }
    if (await this.has(digest)) {
      await rm(path, { force: true });
      return { written: false };
    }
    await rename(path, this.blobPath(digest));
    await syncDir(this.blobsDir);
    return { written: true };
  }

  /** Path of a committed blob, for readers that need a file (e.g. a second hashing pass). */
  readPath(digest: Digest): string {
    return this.blobPath(digest);
  }

  async readAll(digest: Digest, maxBytes: number): Promise<Buffer> {
    const { size } = await this.info(digest);
    if (size > maxBytes) {
      throw new ResourceExhaustedError(
        `read blob ${digest}: ${size} bytes is over the limit of ${maxBytes} bytes`,
      );
    }
    return readFile(this.blobPath(digest));
  }

  async ingest(
    source: AsyncIterable<Buffer | Uint8Array>,
    options: IngestOptions = {},
  ): Promise<IngestResult> {
    const expected = options.digest === undefined ? undefined : parseDigest(options.digest, 'digest');
    const limit = Math.min(options.maxBytes ?? Infinity, this.maxBlobBytes);
    const what = expected ?? 'blob';
    if (options.size !== undefined) {
      if (!Number.isSafeInteger(options.size) || options.size < 0) {
        throw new InvalidArgumentError(
          `ingest ${what}: declared size ${options.size} is not a byte count`,
          'size',
        );
      }
      if (options.size > limit) {
        throw new ResourceExhaustedError(
          `ingest ${what}: declared size ${options.size} bytes is over the limit of ${limit} bytes per blob`,
        );
      }
    }
    const exists = expected !== undefined && (await this.has(expected));
    if (!exists && options.size !== undefined) await this.checkSpace(options.size, `ingest ${what}`);

    const hash = createHash('sha256');
    let size = 0;
    let tmp: string | undefined;
    let handle;
    try {
      if (!exists) {
        tmp = join(this.ingestDir, randomBytes(12).toString('hex'));
        handle = await open(tmp, 'wx', 0o600);
      }
      for await (const chunk of source) {
        size += chunk.length;
        if (size > limit) {
          throw new ResourceExhaustedError(`ingest ${what}: more than the limit of ${limit} bytes per blob`);
        }
        if (options.size !== undefined && size > options.size) {
          throw new InvalidArgumentError(
            `ingest ${what}: more bytes than the declared size ${options.size}`,
            'size',
          );
        }
        hash.update(chunk);
        if (handle) await handle.write(chunk);
        options.onProgress?.(size);
      }
      if (options.size !== undefined && size !== options.size) {
        throw new InvalidArgumentError(
          `ingest ${what}: got ${size} bytes, declared size is ${options.size}`,
          'size',
        );
      }
      const actual: Digest = `sha256:${hash.digest('hex')}`;
      if (expected !== undefined && actual !== expected) {
        throw new InvalidArgumentError(
          `ingest blob ${expected}: content does not match its digest (expected ${expected}, actual ${actual})`,
          'digest',
        );
      }
      if (!handle || !tmp) return { digest: actual, size, written: false, bytesWritten: 0 };
      await handle.sync();
      await handle.chmod(0o444);
      await handle.close();
      handle = undefined;
      if (await this.has(actual)) {
        await rm(tmp, { force: true });
        return { digest: actual, size, written: false, bytesWritten: 0 };
      }
      await rename(tmp, this.blobPath(actual));
      tmp = undefined;
      await syncDir(this.blobsDir);
      if (options.labels && Object.keys(options.labels).length > 0)
        await this.setLabels(actual, options.labels);
      return { digest: actual, size, written: true, bytesWritten: size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new ResourceExhaustedError(
          `ingest ${what}: the disk under ${this.ingestDir} is full; free space or prune images`,
          {
            cause: err,
          },
        );
      }
      throw err;
    } finally {
      await handle?.close().catch(() => undefined);
      if (tmp) await rm(tmp, { force: true });
    }
  }

  /**
   * ContentStore's resumable ingest (content-store.ts ResumableIngester): the kept bytes of blob
   * sha256:<hex> are `ingest/resume-<hex>`, written only by the holder of `resume-<hex>.lock`.
   */
  async ingestResumable(
    source: (offset: number) => Promise<AsyncIterable<Buffer | Uint8Array>>,
    options: ResumableIngestOptions,
  ): Promise<ResumableIngestResult> {
    const expected = this.checkResumable(options);
    if (await this.has(expected)) {
      return { digest: expected, size: options.size, written: false, bytesWritten: 0, resumedFrom: 0 };
    }
    const path = join(this.ingestDir, `resume-${digestHex(expected)}`);
    const lock = await PidLock.tryAcquire(`${path}.lock`);
    if (!lock) {
      // another process fetches the same blob: fetch it whole, as a plain ingest (its commit or
      // ours wins; the loser finds the blob there and writes nothing)
      const result = await this.ingest(await source(0), { ...options, digest: expected, size: options.size });
      return { ...result, resumedFrom: 0 };
    }
    return this.resumable(expected, options, path, lock, (handle, kept) =>
      this.fillResumable(handle, path, kept, source, options),
    );
  }

  /**
   * The same resumable ingest with the bytes written into the ingest file by someone else (a
   * worker thread fetching them): `write` appends to `path` from `kept` on (the file has `kept`
   * bytes already), hashing all of it, kept bytes included, and returns the digest of the whole.
   * Its failure keeps what it wrote, unless it is an InvalidArgumentError (refused bytes).
   */
  async ingestResumableFile(
    write: (file: { path: string; kept: number }) => Promise<Digest>,
    options: ResumableIngestOptions,
  ): Promise<ResumableIngestResult> {
    const expected = this.checkResumable(options);
    if (await this.has(expected)) {
      return { digest: expected, size: options.size, written: false, bytesWritten: 0, resumedFrom: 0 };
    }
    let path = join(this.ingestDir, `resume-${digestHex(expected)}`);
    const lock = await PidLock.tryAcquire(`${path}.lock`);
    // another process fetches the same blob: this one writes a file of its own, kept by nobody
    if (!lock) path = join(this.ingestDir, randomBytes(12).toString('hex'));
    return this.resumable(expected, options, path, lock, async (handle, kept) => {
      const digest = await write({ path, kept });
      if ((await handle.stat()).size !== options.size) {
        throw new UnavailableError(
          `ingest ${expected}: ${(await handle.stat()).size} of ${options.size} bytes written (kept for a resume)`,
        );
      }
      return digest;
    });
  }

  private checkResumable(options: ResumableIngestOptions): Digest {
    const expected = parseDigest(options.digest, 'digest');
    const { size } = options;
    const limit = Math.min(options.maxBytes ?? Infinity, this.maxBlobBytes);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new InvalidArgumentError(`ingest ${expected}: declared size ${size} is not a byte count`, 'size');
    }
    if (size > limit) {
      throw new ResourceExhaustedError(
        `ingest ${expected}: declared size ${size} bytes is over the limit of ${limit} bytes per blob`,
      );
    }
    return expected;
  }

  /**
   * The common part of the resumable ingests: `fill` brings the open file at `path` (holding
   * `kept` bytes) to the whole blob and returns its digest; the blob is committed if that is the
   * expected one. Without a lock the file is nobody's to resume: it never outlives the call.
   */
  private async resumable(
    expected: Digest,
    options: ResumableIngestOptions,
    path: string,
    lock: PidLock | undefined,
    fill: (handle: FileHandle, kept: number) => Promise<Digest>,
  ): Promise<ResumableIngestResult> {
    const { size } = options;
    // keep what arrived unless the bytes themselves are refused (or committed)
    let keep = lock !== undefined;
    const handle = await open(path, 'a+', 0o600);
    try {
      let resumedFrom = (await handle.stat()).size;
      if (resumedFrom > size) {
        await handle.truncate(0);
        resumedFrom = 0;
      }
      if (resumedFrom < size) await this.checkSpace(size - resumedFrom, `ingest ${expected}`);
      let actual = await fill(handle, resumedFrom);
      if (actual !== expected && resumedFrom > 0) {
        // the kept bytes may be what is wrong (a crash before they reached the disk): once more
        // from nothing before calling the blob bad
        await handle.truncate(0);
        resumedFrom = 0;
        actual = await fill(handle, 0);
      }
      if (actual !== expected) {
        keep = false;
        throw new InvalidArgumentError(
          `ingest blob ${expected}: content does not match its digest (expected ${expected}, actual ${actual})`,
          'digest',
        );
      }
      keep = false;
      await handle.sync();
      await handle.chmod(0o444);
      if (!(await this.has(actual))) {
        await rename(path, this.blobPath(actual));
        await syncDir(this.blobsDir);
        if (options.labels && Object.keys(options.labels).length > 0)
          await this.setLabels(actual, options.labels);
        return { digest: actual, size, written: true, bytesWritten: size - resumedFrom, resumedFrom };
      }
      return { digest: actual, size, written: false, bytesWritten: 0, resumedFrom };
    } catch (err) {
      // refused bytes are not kept (a source's failure to deliver keeps them)
      if (err instanceof InvalidArgumentError) keep = false;
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        keep = false;
        throw new ResourceExhaustedError(
          `ingest ${expected}: the disk under ${this.ingestDir} is full; free space or prune images`,
          { cause: err },
        );
      }
      throw err;
    } finally {
      await handle.close().catch(() => undefined);
      if (!keep) await rm(path, { force: true });
      await lock?.release();
    }
  }

  /**
   * Hashes the `kept` bytes of the open ingest, appends the source's bytes from there up to
   * `options.size`, and returns the digest of the whole. A source that fails or ends early throws
   * and leaves what it gave in place.
   */
  private async fillResumable(
    handle: FileHandle,
    path: string,
    kept: number,
    source: (offset: number) => Promise<AsyncIterable<Buffer | Uint8Array>>,
    options: ResumableIngestOptions,
  ): Promise<Digest> {
    const { size, digest } = options;
    const hash = createHash('sha256');
    let offset = 0;
    if (kept > 0) {
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, end: kept - 1 })) {
        hash.update(chunk as Buffer);
        offset += (chunk as Buffer).length;
      }
      if (offset !== kept) throw new InternalError(`ingest ${digest}: kept bytes changed while read`);
    }
    if (offset < size) {
      let touched = Date.now();
      // chunks are written a MiB at a time (one writev instead of one write per network read);
      // what was hashed is always written, also when the source fails, so a resume can use it
      let pending: (Buffer | Uint8Array)[] = [];
      let pendingBytes = 0;
      // the disk is written while the network still sends: a datasync every WRITEBACK_BYTES (at
      // most one at a time) instead of all of it at the commit's fsync
      let unsynced = 0;
      let syncing: Promise<void> | undefined;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const buffers = pending;
        const length = pendingBytes;
        pending = [];
        pendingBytes = 0;
        const { bytesWritten } = await handle.writev(buffers);
        if (bytesWritten !== length) {
          // a short write (rare on regular files): the rest one buffer at a time
          let skip = bytesWritten;
          for (const b of buffers) {
            if (skip >= b.length) {
              skip -= b.length;
              continue;
            }
            await handle.write(b.subarray(skip));
            skip = 0;
          }
        }
        unsynced += length;
        if (unsynced >= WRITEBACK_BYTES && syncing === undefined) {
          unsynced = 0;
          syncing = handle.datasync().finally(() => (syncing = undefined));
          syncing.catch(() => undefined);
        }
      };
      try {
        for await (const chunk of await source(offset)) {
          offset += chunk.length;
          if (offset > size) {
            pending = [];
            pendingBytes = 0;
            throw new InvalidArgumentError(
              `ingest ${digest}: more bytes than the declared size ${size}`,
              'size',
            );
          }
          hash.update(chunk);
          pending.push(chunk);
          pendingBytes += chunk.length;
          if (pendingBytes >= 1 << 20) await flush();
          options.onProgress?.(offset);
          // a long fetch keeps its lock younger than what cleanIngests collects
          if (Date.now() - touched > 60_000) {
            touched = Date.now();
            const now = new Date();
            await utimes(`${path}.lock`, now, now).catch(() => undefined);
          }
        }
      } finally {
        await flush();
        await syncing?.catch(() => undefined);
      }
      if (offset !== size) {
        throw new UnavailableError(
          `ingest ${digest}: the source ended after ${offset} of ${size} bytes (kept for a resume)`,
        );
      }
    }
    return `sha256:${hash.digest('hex')}`;
  }

  async checkSpace(size: number, what: string): Promise<void> {
    const free = await this.freeBytes(this.ingestDir);
    const usable = Math.max(0, free - this.reserveBytes);
    if (size > usable) {
      throw new ResourceExhaustedError(
        `${what}: declared size ${size} bytes would fill the disk (${usable} bytes usable: ` +
          `${free} free minus a reserve of ${this.reserveBytes}); free space under ${this.ingestDir} or prune images`,
      );
    }
  }

  async list(): Promise<BlobInfo[]> {
    const names = await readdir(this.blobsDir);
    const out: BlobInfo[] = [];
    for (const name of names.sort()) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      try {
        out.push(await this.info(`sha256:${name}`));
      } catch {
        // deleted concurrently
      }
    }
    return out;
  }

  /**
   * Written atomically (a reader sees the old labels or the new ones) but not fsynced: a label
   * is a cache or a hint (a layer's DiffID, computed again from the blob when missing; the
   * registries a blob came from, for a later push to mount it), so a power loss may cost a label
   * written just before it, never a blob or an image, and an unreadable label file reads as no
   * labels. A pull labels each of its blobs: as durable writes these were 14 fsyncs (file and
   * directory per blob) between its last layer and its tag, 8-30 ms of a 220 MB pull at load 8-10.
   */
  async setLabels(digest: Digest, labels: Record<string, string>): Promise<void> {
    if (!(await this.has(digest))) throw new NotFoundError(`label blob ${digest}: not in the content store`);
    await writeFileAtomic(join(this.labelsDir, `${digestHex(digest)}.json`), JSON.stringify(labels), {
      durable: false,
    });
  }

  private async readLabels(digest: Digest): Promise<Record<string, string>> {
    try {
      return JSON.parse(await readFile(join(this.labelsDir, `${digestHex(digest)}.json`), 'utf8')) as Record<
        string,
        string
      >;
    } catch {
      return {};
    }
  }

  async delete(digest: Digest): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
    await rm(join(this.labelsDir, `${digestHex(digest)}.json`), { force: true });
  }

  async cleanIngests(olderThanMs: number): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.ingestDir)) {
      const path = join(this.ingestDir, name);
      try {
        const st = await stat(path);
        // whole milliseconds on both sides: mtimeMs has a fraction Date.now() lacks, so a file made
        // in the current millisecond looked younger than 0 ms (and cleanIngests(0) kept it)
        if (Date.now() - Math.floor(st.mtimeMs) >= olderThanMs) {
          await rm(path, { force: true, recursive: true });
          removed++;
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return removed;
  }
}

/** A file stream helper for callers that hold a path (imports from a directory). */
export function fileSource(path: string): Readable {
  return createReadStream(path, { highWaterMark: 1 << 20 });
}
