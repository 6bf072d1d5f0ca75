/**
 * ContentStore — immutable blobs addressed by their sha256 digest (containerd's content store,
 * split by role).
 *
 * Vocabulary: a *blob* is a byte string stored under `sha256:<hex>` of exactly those bytes. An
 * *ingest* is one write in progress; it becomes a blob only when its size and digest have been
 * verified, and never exists half-written under a blob name.
 *
 * Invariants every implementation keeps:
 * - A blob's bytes always hash to its digest: ingest hashes while writing and refuses a mismatch
 *   with an InvalidArgumentError naming the expected and the actual digest.
 * - One copy per digest, whatever number of images name it. Ingesting a blob that already exists
 *   reads and verifies the source but writes nothing (`written: false`).
 * - A failed or refused ingest leaves nothing behind (no blob, no temporary file).
 * - Limits are checked before writing when the size is declared: a declared size over the
 *   per-ingest limit or over the free space (minus a reserve) is a ResourceExhaustedError that
 *   gives the size and the limit.
 * - Labels are small string maps on a blob (e.g. `containerd.io/uncompressed` = the DiffID of a
 *   compressed layer). Garbage collection is the image store's job: it knows the reference graph
 *   and calls `delete`.
 */
import type { Readable } from 'node:stream';
import type { Digest } from './digest.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
  /** ISO 8601, when the blob was committed. */
  committedAt: string;
  labels: Record<string, string>;
}

export interface ContentReader {
  /** NotFoundError when absent. */
  info(digest: Digest): Promise<BlobInfo>;
  has(digest: Digest): Promise<boolean>;
  /** A stream of the blob's bytes. NotFoundError when absent. */
  read(digest: Digest): Promise<Readable>;
  /** The whole blob, refused (ResourceExhaustedError) above `maxBytes`: for manifests and configs. */
  readAll(digest: Digest, maxBytes: number): Promise<Buffer>;
}

export interface IngestOptions {
  /** Digest the bytes must hash to. Without it the blob is stored under what the bytes hash to. */
  digest?: Digest;
  /** Declared size: checked against the limits before anything is written, then against the bytes. */
  size?: number;
  /** Per-ingest limit in bytes (overrides the store's default). */
  maxBytes?: number;
  labels?: Record<string, string>;
  /** Called as bytes arrive, for progress bars. */
  onProgress?: (bytesRead: number) => void;
}

export interface IngestResult {
  digest: Digest;
  size: number;
  /** false when the blob was already stored: nothing was written. */
  written: boolean;
  bytesWritten: number;
}

export interface ContentIngester {
  /**
   * Refuses (ResourceExhaustedError giving the size and the limit) when `bytes` more would fill
   * the disk: lets an import check the declared total of its blobs before writing any of them.
   */
  checkSpace(bytes: number, what: string): Promise<void>;
  /** Consumes `source` to its end; see the invariants above. */
  ingest(
    source: AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>,
    options?: IngestOptions,
  ): Promise<IngestResult>;
}

export interface ResumableIngestOptions extends Omit<IngestOptions, 'digest' | 'size'> {
  /** The blob's digest and size are known up front (a descriptor): the kept bytes are named by them. */
  digest: Digest;
  size: number;
}

export interface ResumableIngestResult extends IngestResult {
  /** Bytes an earlier, interrupted attempt had written and this one kept (0: started afresh). */
  resumedFrom: number;
}

/**
 * An ingest that survives a failed source (containerd's ingest refs): what an interrupted attempt
 * at a blob wrote stays in the ingest area (never under a blob name), and the next attempt asks
 * its source only for the rest.
 *
 * - `source(offset)` gives the blob's bytes from `offset` on. The kept bytes are read and hashed
 *   again first, so the digest covers every byte, old and new, and the blob is committed only
 *   when size and digest check out.
 * - A source that fails keeps what arrived, for the next attempt at the same digest.
 * - A blob that turns out bigger than its size, or whose bytes do not match its digest, is
 *   discarded with its kept bytes (InvalidArgumentError), so nothing of it is resumed.
 * - While another process ingests the same digest, this one does an ordinary ingest (from 0).
 */
export interface ResumableIngester {
  ingestResumable(
    source: (offset: number) => Promise<AsyncIterable<Buffer | Uint8Array>>,
    options: ResumableIngestOptions,
  ): Promise<ResumableIngestResult>;
}

/**
 * A resumable ingest whose bytes another thread writes straight into the store's ingest file (a
 * worker fetching a layer): `write` appends to `path` from `kept` on and returns the digest of the
 * whole file, kept bytes included, hashed as it wrote. The store commits the file only when that
 * digest is the expected one and the size is right; otherwise as ResumableIngester.
 */
export interface ResumableFileIngester {
  ingestResumableFile(
    write: (file: { path: string; kept: number }) => Promise<Digest>,
    options: ResumableIngestOptions,
  ): Promise<ResumableIngestResult>;
}

export function isResumableFileIngester(store: object): store is ResumableFileIngester {
  return typeof (store as Partial<ResumableFileIngester>).ingestResumableFile === 'function';
}

/** Whether a store (say, a puller's target) can resume ingests. */
export function isResumableIngester(store: object): store is ResumableIngester {
  return typeof (store as Partial<ResumableIngester>).ingestResumable === 'function';
}

export interface ContentManager {
  list(): Promise<BlobInfo[]>;
  /**
   * Replaces the labels of a stored blob. Labels hold what can be derived again or is a hint (a
   * DiffID, where a blob came from): their write need not survive a power loss.
   */
  setLabels(digest: Digest, labels: Record<string, string>): Promise<void>;
  /** Removes a blob; absent blobs are not an error (GC is idempotent). */
  delete(digest: Digest): Promise<void>;
  /** Removes temporary files of ingests that died (a crash mid-write). */
  cleanIngests(olderThanMs: number): Promise<number>;
}

export interface ContentStore extends ContentReader, ContentIngester, ContentManager {}
