/**
 * The on-disk bookkeeping shared by the file-system snapshotters:
 *
 *   ROOT/records/<sha256(key)>.json   one record per key: { id, key, kind, parent, labels, ... }
 *   ROOT/snapshots/<id>/              the snapshot's storage, named by a short random id so that
 *                                     overlay lowerdir lists stay short
 *
 * Every change is one atomic file-system operation, so concurrent processes (several CLI calls,
 * the agent) never lose an update: a record is created with link(2) (EEXIST = the key is taken),
 * replaced by rename(2), removed by unlink(2).
 *
 *   ROOT/trash/<id>-<rand>/           storage of removed snapshots, waiting to be deleted: removal is
 *                                     one rename (a container's `rm` does not wait for an unlink per
 *                                     file), the deletion follows when the process is idle, before
 *                                     it exits, at the next open, or at cleanup() (prune)
 *
 * Only committed records (image layers) are fsynced. An active or view record (a container's
 * writable layer) needs to outlive the agent, not a reboot, and an fsync cost 1-8 ms of every
 * container start on this disk. After a power loss such a record may be left empty: it then
 * counts as absent, its storage as an orphan, and cleanup() removes both.
 *
 * What a container start, removal or lookup touches (a record, a storage directory, the rename to
 * the trash) is done with synchronous calls: microseconds of page-cache work each, where a trip
 * through Node's thread pool costs ~80 µs here. What waits for the disk (a committed record's
 * fsync) or grows with the data (emptying the trash, listing every record) stays asynchronous.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../../proto/errors.js';
import { writeFileAtomic } from '../../../proto/support/atomic-file.js';
import { CachedFiles } from '../../../proto/support/cached-file.js';
import { unlinkIfPresent } from '../../../proto/support/small-files.js';
import type { SnapshotInfo, SnapshotKind } from './snapshotter.js';
import { compareCodePoints } from '../../../proto/support/code-point-order.js';

export interface SnapshotRecord {
  id: string;
  key: string;
  kind: SnapshotKind;
  parent?: string;
  labels: Record<string, string>;
  created: string;
  updated: string;
}

export interface StagedRecord {
  tmp: string;
  text: string;
  identity: { ino: bigint; size: bigint; mtimeNs: bigint };
}

export function toInfo(record: SnapshotRecord): SnapshotInfo {
  const { key, kind, parent, labels, created, updated } = record;
  return parent === undefined
    ? { key, kind, labels, created, updated }
    : { key, kind, parent, labels, created, updated };
}

/** A record's text; an empty file is a record that did not survive a power loss. */
function parseRecord(text: string): SnapshotRecord | undefined {
  return text === '' ? undefined : (JSON.parse(text) as SnapshotRecord);
}

export function validateKey(key: unknown, field = 'key'): string {
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > 1024 || key.includes('\0')) {
    throw new InvalidArgumentError(
      `snapshot ${field} ${JSON.stringify(key)}: want a non-empty string of at most 1024 bytes`,
      field,
    );
  }
  return key;
}

/** A record that need not survive a power loss, written without waiting for the disk. */
function stageSync(tmp: string, text: string): StagedRecord {
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeFileSync(fd, text);
    return { tmp, text, identity: fstatSync(fd, { bigint: true }) };
  } catch (err) {
    unlinkIfPresent(tmp);
    throw err;
  } finally {
    closeSync(fd);
  }
}

export class SnapshotRecords {
  readonly recordsDir: string;
  readonly snapshotsDir: string;
  readonly trashDir: string;
  /** Records are only ever linked, renamed into place or unlinked: see CachedFiles. */
  private readonly files = new CachedFiles();

  constructor(readonly root: string) {
    this.recordsDir = join(root, 'records');
    this.snapshotsDir = join(root, 'snapshots');
    this.trashDir = join(root, 'trash');
  }

  async init(): Promise<void> {
    await mkdir(this.recordsDir, { recursive: true, mode: 0o700 });
    await mkdir(this.snapshotsDir, { recursive: true, mode: 0o700 });
    await mkdir(this.trashDir, { recursive: true, mode: 0o700 });
  }

  /**
   * Moves a snapshot's storage out of sight in one rename (same file system); emptyTrash()
   * deletes it. The random suffix lets a storage id be reused before the trash is emptied.
   */
  async discard(id: string): Promise<void> {
    try {
      renameSync(this.dir(id), join(this.trashDir, `${id}-${randomBytes(4).toString('hex')}`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** Deletes everything in the trash; other processes may be emptying it at the same time. */
  async emptyTrash(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.trashDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names) await rm(join(this.trashDir, name), { recursive: true, force: true });
  }

  private recordPath(key: string): string {
    return join(this.recordsDir, `${createHash('sha256').update(key).digest('hex')}.json`);
  }

  dir(id: string): string {
    return join(this.snapshotsDir, id);
  }

  /** A fresh storage directory with a short unique id. */
  async newStorage(): Promise<string> {
    for (;;) {
      const id = randomBytes(5)
        .toString('base64url')
        .toLowerCase()
        .replace(/[^a-z0-9]/g, '')
        .slice(0, 6);
      if (id.length < 6) continue;
      try {
        mkdirSync(this.dir(id), { mode: 0o700 });
        return id;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }

  async find(key: string): Promise<SnapshotRecord | undefined> {
    try {
      return parseRecord(this.files.read(this.recordPath(key)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async get(key: string, action: string): Promise<SnapshotRecord> {
    const record = await this.find(key);
    if (!record) throw new NotFoundError(`${action} snapshot ${JSON.stringify(key)}: no such snapshot`);
    return record;
  }

  /** Creates the record; AlreadyExistsError when the key is taken (atomically, via link(2)). */
  async create(record: SnapshotRecord, action: string): Promise<void> {
    await this.publish(await this.stage(record), record, action);
  }

  /** The record's content in a temp file of its own, for publish(); may run beside other work. */
  async stage(record: SnapshotRecord): Promise<StagedRecord> {
    const tmp = join(this.recordsDir, `.new-${randomBytes(8).toString('hex')}`);
    const text = JSON.stringify(record);
    if (record.kind !== 'committed') return stageSync(tmp, text);
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
      return { tmp, text, identity: await handle.stat({ bigint: true }) };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    } finally {
      await handle.close();
    }
  }

  /** Links a staged record into place (AlreadyExistsError when the key is taken); the temp file goes either way. */
  async publish(staged: StagedRecord, record: SnapshotRecord, action: string): Promise<void> {
    const path = this.recordPath(record.key);
    try {
      linkSync(staged.tmp, path);
      // the record's inode, size and mtime are the temp file's: a later read is one stat
      this.files.remember(path, staged.identity, staged.text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new AlreadyExistsError(
          `${action} snapshot ${JSON.stringify(record.key)}: the key is already in use`,
        );
      }
      throw err;
    } finally {
      unlinkIfPresent(staged.tmp);
    }
  }

  async replace(record: SnapshotRecord): Promise<void> {
    await writeFileAtomic(this.recordPath(record.key), JSON.stringify(record));
  }

  async delete(key: string): Promise<void> {
    // unlink, not fs.rm: rm stats first (a second file call on every container removal)
    this.files.forget(this.recordPath(key));
    try {
      unlinkSync(this.recordPath(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  async all(): Promise<SnapshotRecord[]> {
    const out: SnapshotRecord[] = [];
    for (const name of await readdir(this.recordsDir)) {
      if (!name.endsWith('.json')) continue;
      try {
        const record = parseRecord(this.files.read(join(this.recordsDir, name)));
        if (record) out.push(record);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return out.sort((a, b) => compareCodePoints(a.created, b.created) || compareCodePoints(a.key, b.key));
  }

  /** Removes the records a power loss left empty (see the top of this file). */
  async dropEmpty(): Promise<void> {
    for (const name of await readdir(this.recordsDir)) {
      if (!name.endsWith('.json')) continue;
      const path = join(this.recordsDir, name);
      const st = await stat(path).catch(() => undefined);
      if (st?.size === 0) await rm(path, { force: true });
    }
  }

  /** Storage directories that no record names (a crash between mkdir and record, or a removal). */
  async orphanIds(): Promise<string[]> {
    const used = new Set((await this.all()).map((r) => r.id));
    const out: string[] = [];
    for (const id of await readdir(this.snapshotsDir)) {
      if (used.has(id)) continue;
      // a prepare in progress has made its directory but not yet its record
      const st = await stat(this.dir(id)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 60_000) out.push(id);
    }
    return out;
  }
}
