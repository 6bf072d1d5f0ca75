/**
 * LocalContentStore: the ContentStore on a local file system.
 *
 *   DIR/content/blobs/sha256/<hex>        committed blobs (read-only, 0444)
 *   DIR/content/ingest/<random>           ingests in progress (same fs, so commit is a rename)
 *   DIR/content/labels/sha256/<hex>.json  labels, written atomically
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError } from '../errors.js';
import { writeFileAtomic, syncDir } from '../support/atomic-file.js';
import type { BlobInfo, ContentStore, IngestOptions, IngestResult } from './content-store.js';
import { digestHex, parseDigest, type Digest } from './digest.js';

export interface LocalContentStoreOptions {
  /** Default per-ingest limit in bytes (Infinity = none). */
  maxBlobBytes?: number;
  /** Free space an ingest must leave on the file system, in bytes (default 256 MiB). */
  reserveBytes?: number;
  /** Free bytes of the file system holding `dir`; a parameter so tests can simulate a full disk. */
  freeBytes?: (dir: string) => Promise<number>;
}

export async function fileSystemFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

export class LocalContentStore implements ContentStore {
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

  async setLabels(digest: Digest, labels: Record<string, string>): Promise<void> {
    if (!(await this.has(digest))) throw new NotFoundError(`label blob ${digest}: not in the content store`);
    await writeFileAtomic(join(this.labelsDir, `${digestHex(digest)}.json`), JSON.stringify(labels));
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
