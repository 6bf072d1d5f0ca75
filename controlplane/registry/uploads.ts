/**
 * Chunked blob uploads (POST, PATCH…, PUT), kept on disk so that any control plane serving the
 * registry directory can take the next chunk of an upload another one started.
 *
 *   <root>/uploads/<uuid>/info.json          {"repository", "startedAt"}: which repository it is for
 *   <root>/uploads/<uuid>/data               the bytes so far, while no request is writing
 *   <root>/uploads/<uuid>/data.<random>      the same file while one request holds it
 *
 * One request at a time: a request takes the upload by renaming `data` to a name of its own
 * (rename is atomic, so of two requests in any number of processes exactly one wins; the other
 * is told the upload is busy) and gives it back by renaming it again. While it holds the file it
 * appends the chunk at the current end, hashing every byte as it is written; when the chunk
 * fails half-way (the client went away, the range was wrong, the body was longer than it said)
 * the file is cut back to where the chunk began, so an upload only ever grows by whole chunks. A
 * holder that died (its process crashed) leaves its name behind: after `staleClaimMs` without a
 * write, another request takes the file over.
 *
 * The running sha256 lives in the memory of the process that wrote the last chunk, keyed by the
 * upload and its size; bytes below a size some request acknowledged never change, so when the
 * sizes agree the hash is the hash of the file, and otherwise (another process wrote the last
 * chunk, or this one restarted) the file is hashed again from disk. The final PUT compares the
 * digest it names with that hash and commits the file into the content store by rename
 * (fsynced): a crash at any point leaves either no blob or the whole verified blob.
 *
 * Uploads nobody has touched for `expireMs` (an hour) are removed by `sweep`, which every control
 * plane runs on a timer (removal is idempotent, so they need not agree who does it), together
 * with the content store's ingests that died.
 */
import { createHash, randomBytes, randomUUID, type Hash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import {
  copyFile,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  type FileHandle,
} from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Digest } from '../../proto/oci/digest.js';
import type { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import { RegistryError } from './errors.js';
import type { ByteRange } from './http-range.js';
import { isUploadId } from './names.js';

export interface UploadSessionsOptions {
  /** `<root>/uploads`. */
  dir: string;
  content: LocalContentStore;
  /** Largest blob an upload may grow to; beyond it the upload is deleted (413). */
  maxBlobBytes: number;
  /** An upload untouched this long is removed by `sweep`; default one hour. */
  expireMs?: number;
  /** A holder silent this long is taken to be dead; default 10 minutes. */
  staleClaimMs?: number;
  now?: () => number;
}

/** What a request says about the chunk it carries. */
export interface Chunk {
  /** Content-Range, when sent: where the chunk must start and end. */
  range?: ByteRange;
  /** Content-Length, when sent. */
  length?: number;
}

interface Claim {
  id: string;
  dir: string;
  path: string;
  handle: FileHandle;
  /** Bytes in the file when it was taken. */
  size: number;
}

/** Running hashes kept at most; beyond it the oldest is forgotten (and recomputed when needed). */
const MAX_HASHES = 1024;
/** Writes are gathered into runs of about this many bytes. */
const WRITE_RUN = 1 << 20;

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** `Range: 0-<last byte>`, and `0-0` for an empty upload, as Docker's registry sends it. */
export function rangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}

export class UploadSessions {
  private readonly hashes = new Map<string, { size: number; hash: Hash }>();
  private readonly expireMs: number;
  private readonly staleClaimMs: number;
  private readonly now: () => number;

  constructor(private readonly options: UploadSessionsOptions) {
    this.expireMs = options.expireMs ?? 60 * 60 * 1000;
    this.staleClaimMs = options.staleClaimMs ?? 10 * 60 * 1000;
    this.now = options.now ?? Date.now;
  }

  private unknown(id: string): RegistryError {
    return new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 80)} is not in progress`, {
      detail: { upload: id.slice(0, 80) },
    });
  }

  private dirOf(id: string): string {
    if (!isUploadId(id)) throw this.unknown(id);
    return join(this.options.dir, id);
  }

  /** Starts an upload for `name`; returns its id. */
  async start(name: string): Promise<string> {
    const id = randomUUID();
    const dir = join(this.options.dir, id);
    await mkdir(dir, { mode: 0o700 });
    await writeFileAtomic(join(dir, 'data'), '', { mode: 0o600, durable: false });
    await writeFileAtomic(
      join(dir, 'info.json'),
      JSON.stringify({ repository: name, startedAt: new Date(this.now()).toISOString() }),
      { mode: 0o600, durable: false },
    );
    return id;
  }

  /** Checks the upload exists and belongs to `name`; returns its directory. */
  private async session(name: string, id: string): Promise<string> {
    const dir = this.dirOf(id);
    let info: { repository?: unknown };
    try {
      info = JSON.parse(await readFile(join(dir, 'info.json'), 'utf8')) as { repository?: unknown };
    } catch (err) {
      if (isMissing(err) || err instanceof SyntaxError) throw this.unknown(id);
      throw err;
    }
    if (info.repository !== name) throw this.unknown(id);
    return dir;
  }

  /** The data file, held or not, and its size. */
  private async dataFile(dir: string): Promise<{ path: string; size: number; mtimeMs: number } | undefined> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    for (const entry of names.filter(
      (n) => n === 'data' || n.startsWith('data.') || n.startsWith('taken.'),
    )) {
      try {
        const st = await stat(join(dir, entry));
        return { path: join(dir, entry), size: st.size, mtimeMs: st.mtimeMs };
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
    return undefined;
  }

  /** Bytes received so far; counts as activity (the upload does not expire while polled). */
  async status(name: string, id: string): Promise<number> {
    const dir = await this.session(name, id);
    const data = await this.dataFile(dir);
    if (!data) throw this.unknown(id);
    const now = new Date(this.now());
    await utimes(join(dir, 'info.json'), now, now).catch(() => undefined);
    return data.size;
  }

  /** Takes the upload for this request, or says it is busy (416 with the current Range). */
  private async claim(name: string, id: string): Promise<Claim> {
    const dir = await this.session(name, id);
    const path = join(dir, `data.${randomBytes(8).toString('hex')}`);
    try {
      await rename(join(dir, 'data'), path);
    } catch (err) {
      if (!isMissing(err)) throw err;
      const held = await this.dataFile(dir);
      if (!held) throw this.unknown(id);
      if (this.now() - held.mtimeMs < this.staleClaimMs || basename(held.path).startsWith('taken.')) {
        throw new RegistryError(
          'BLOB_UPLOAD_INVALID',
          `upload ${id} is receiving another chunk; send one chunk at a time`,
          { status: 416, headers: { Range: rangeHeader(held.size) } },
        );
      }
      // Its holder died (or is stuck): take it over. Exactly one contender wins the rename; the
      // winner copies the bytes into a file of its own, so a holder that was only slow keeps
      // writing into an inode nobody will ever commit, and fails when it tries to give it back.
      const taken = join(dir, `taken.${randomBytes(8).toString('hex')}`);
      try {
        await rename(held.path, taken);
      } catch (takeover) {
        if (isMissing(takeover)) {
          throw new RegistryError('BLOB_UPLOAD_INVALID', `upload ${id} is receiving another chunk`, {
            status: 416,
            headers: { Range: rangeHeader(held.size) },
          });
        }
        throw takeover;
      }
      try {
        await copyFile(taken, path, constants.COPYFILE_EXCL);
      } finally {
        await rm(taken, { force: true });
      }
    }
    let handle: FileHandle;
    try {
      handle = await open(path, 'r+');
    } catch (err) {
      // cancelled between the rename and the open
      if (isMissing(err)) throw this.unknown(id);
      throw err;
    }
    try {
      return { id, dir, path, handle, size: (await handle.stat()).size };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Gives the upload back; BLOB_UPLOAD_UNKNOWN when it was cancelled or expired meanwhile. */
  private async release(claim: Claim): Promise<void> {
    await claim.handle.close();
    try {
      await rename(claim.path, join(claim.dir, 'data'));
    } catch (err) {
      if (isMissing(err)) throw this.unknown(claim.id);
      throw err;
    }
  }

  /** The sha256 of the file's first `size` bytes: remembered, or read again from disk. */
  private async hashOf(claim: Claim): Promise<Hash> {
    const known = this.hashes.get(claim.id);
    this.hashes.delete(claim.id);
    if (known && known.size === claim.size) return known.hash;
    const hash = createHash('sha256');
    if (claim.size > 0) {
      for await (const chunk of createReadStream(claim.path, {
        start: 0,
        end: claim.size - 1,
        highWaterMark: 1 << 20,
      })) {
        hash.update(chunk as Buffer);
      }
    }
    return hash;
  }

  private remember(id: string, size: number, hash: Hash): void {
    if (this.hashes.size >= MAX_HASHES) this.hashes.delete(this.hashes.keys().next().value!);
    this.hashes.set(id, { size, hash });
  }

  /**
   * Appends the body at the end of the held file, hashing it. Refusals: a range that does not
   * start at the end (416), a body longer or shorter than its range or length (SIZE_INVALID),
   * more than the blob limit (413: the caller deletes the upload).
   */
  private async write(claim: Claim, body: AsyncIterable<Buffer>, chunk: Chunk, hash: Hash): Promise<number> {
    let expected = chunk.length;
    if (chunk.range) {
      if (chunk.range.start !== claim.size) {
        throw new RegistryError(
          'BLOB_UPLOAD_INVALID',
          `upload ${claim.id}: chunk ${chunk.range.start}-${chunk.range.end} does not start at byte ${claim.size}, where the upload ends`,
          { status: 416, headers: { Range: rangeHeader(claim.size) } },
        );
      }
      const span = chunk.range.end - chunk.range.start + 1;
      if (expected !== undefined && expected !== span) {
        throw new RegistryError(
          'SIZE_INVALID',
          `upload ${claim.id}: Content-Length ${expected} does not match Content-Range ${chunk.range.start}-${chunk.range.end} (${span} bytes)`,
        );
      }
      expected = span;
    }
    const limit = this.options.maxBlobBytes;
    if (expected !== undefined && claim.size + expected > limit) throw this.overLimit(claim.id);
    let position = claim.size;
    let run: Buffer[] = [];
    let runBytes = 0;
    let flushedAt = this.now();
    const flush = async (): Promise<void> => {
      flushedAt = this.now();
      if (runBytes === 0) return;
      const buffers = run;
      const at = position - runBytes;
      run = [];
      runBytes = 0;
      await claim.handle.writev(buffers, at);
    };
    for await (const piece of body) {
      position += piece.length;
      if (expected !== undefined && position - claim.size > expected) {
        throw new RegistryError(
          'SIZE_INVALID',
          `upload ${claim.id}: the chunk is longer than the ${expected} bytes it declared`,
        );
      }
      if (position > limit) throw this.overLimit(claim.id);
      hash.update(piece);
      run.push(piece);
      runBytes += piece.length;
      // at least once a second, so the file's mtime says its holder is alive (see claim)
      if (runBytes >= WRITE_RUN || this.now() - flushedAt >= 1000) await flush();
    }
    await flush();
    if (expected !== undefined && position - claim.size !== expected) {
      throw new RegistryError(
        'SIZE_INVALID',
        `upload ${claim.id}: the chunk has ${position - claim.size} bytes, it declared ${expected}`,
      );
    }
    return position;
  }

  private overLimit(id: string): RegistryError {
    return new RegistryError(
      'SIZE_INVALID',
      `upload ${id}: more than the registry's limit of ${this.options.maxBlobBytes} bytes per blob; the upload is deleted`,
      { status: 413, detail: { limit: this.options.maxBlobBytes } },
    );
  }

  /** Appends one chunk under the claim; on failure the file is cut back and the hash restored. */
  private async appendHeld(
    claim: Claim,
    body: AsyncIterable<Buffer>,
    chunk: Chunk,
  ): Promise<{ size: number; hash: Hash }> {
    const hash = await this.hashOf(claim);
    const before = hash.copy();
    try {
      const size = await this.write(claim, body, chunk, hash);
      return { size, hash };
    } catch (err) {
      if (err instanceof RegistryError && err.status === 413) {
        await this.remove(claim);
        throw err;
      }
      await claim.handle.truncate(claim.size).catch(() => undefined);
      this.remember(claim.id, claim.size, before);
      throw err;
    }
  }

  private async remove(claim: Claim): Promise<void> {
    this.hashes.delete(claim.id);
    await claim.handle.close().catch(() => undefined);
    await rm(claim.dir, { recursive: true, force: true });
  }

  /** PATCH: appends a chunk; returns the upload's size after it. */
  async append(name: string, id: string, body: AsyncIterable<Buffer>, chunk: Chunk): Promise<number> {
    const claim = await this.claim(name, id);
    let released = false;
    try {
      const { size, hash } = await this.appendHeld(claim, body, chunk);
      await this.release(claim);
      released = true;
      this.remember(id, size, hash);
      return size;
    } finally {
      if (!released) await this.release(claim).catch(() => undefined);
    }
  }

  /**
   * PUT: appends the last chunk (if any), checks the whole upload hashes to `digest` and commits
   * it into the content store. A digest that does not match deletes the upload (DIGEST_INVALID):
   * nothing is stored.
   */
  async finish(
    name: string,
    id: string,
    digest: Digest,
    body: AsyncIterable<Buffer>,
    chunk: Chunk,
  ): Promise<{ digest: Digest; size: number }> {
    const claim = await this.claim(name, id);
    let done = false;
    try {
      const { size, hash } = await this.appendHeld(claim, body, chunk);
      const actual: Digest = `sha256:${hash.digest('hex')}`;
      if (actual !== digest) {
        await this.remove(claim);
        done = true;
        throw new RegistryError(
          'DIGEST_INVALID',
          `upload ${id}: content does not match its digest (expected ${digest}, actual ${actual}); the upload is deleted`,
          { detail: { expected: digest, actual } },
        );
      }
      await claim.handle.close();
      const { written } = await this.options.content.commitFile(claim.path, { digest, size });
      // an old unreferenced blob uploaded again: its garbage-collection grace starts over (gc.ts)
      if (!written) await this.options.content.touch(digest);
      await rm(claim.dir, { recursive: true, force: true });
      done = true;
      return { digest, size };
    } finally {
      if (!done) await this.release(claim).catch(() => undefined);
    }
  }

  /** DELETE: cancels the upload. */
  async cancel(name: string, id: string): Promise<void> {
    const dir = await this.session(name, id);
    this.hashes.delete(id);
    await rm(dir, { recursive: true, force: true });
  }

  /** Removes uploads nobody touched for `expireMs`, and dead ingests; returns how many uploads. */
  async sweep(): Promise<number> {
    let removed = 0;
    let entries: string[];
    try {
      entries = await readdir(this.options.dir);
    } catch (err) {
      if (isMissing(err)) return 0;
      throw err;
    }
    for (const id of entries) {
      if (!isUploadId(id)) continue;
      const dir = join(this.options.dir, id);
      let newest: number;
      try {
        newest = (await stat(dir)).mtimeMs;
        for (const entry of await readdir(dir)) {
          newest = Math.max(newest, (await stat(join(dir, entry)).catch(() => ({ mtimeMs: 0 }))).mtimeMs);
        }
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      if (this.now() - newest >= this.expireMs) {
        this.hashes.delete(id);
        await rm(dir, { recursive: true, force: true });
        removed++;
      }
    }
    await this.options.content.cleanIngests(this.expireMs);
    return removed;
  }
}
