/**
 * The parts of a Snapshotter that do not depend on how layers are stacked: keys, records,
 * parents, lifecycle checks and usage. OverlaySnapshotter and CopySnapshotter supply storage
 * (how a new snapshot's directory is filled) and mounts (how it is shown).
 */
import { mkdirSync } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError } from '../../../proto/errors.js';
import { SnapshotRecords, toInfo, validateKey, type SnapshotRecord } from './snapshot-records.js';
import type {
  Mount,
  SnapshotInfo,
  SnapshotOptions,
  SnapshotUsage,
  Snapshotter,
  WritableLayer,
} from './snapshotter.js';

/**
 * How long a process must go without removing a snapshot before the trash is emptied. A burst
 * of starts and removals (an agent starting a deployment's pods) is not slowed by deletions;
 * each sweep still runs within this long of the burst's end.
 */
const SWEEP_DELAY_MS = 50;
/** …but a process that never pauses sweeps after this many removals, so the trash stays small. */
const SWEEP_AFTER_REMOVALS = 32;

const pendingSweeps = new Set<FileSnapshotter>();
let beforeExitListening = false;

/** One listener for all snapshotters: a short-lived process (a CLI `rm`) frees the space before it exits. */
function listenBeforeExit(): void {
  if (beforeExitListening) return;
  beforeExitListening = true;
  process.on('beforeExit', () => {
    for (const s of [...pendingSweeps]) void s.sweep();
  });
}

export abstract class FileSnapshotter implements Snapshotter {
  abstract readonly name: string;
  abstract readonly layersStack: boolean;
  protected readonly records: SnapshotRecords;

  protected constructor(readonly root: string) {
    if (/[:,]/.test(root)) {
      // both separate overlay mount options; a root containing them would corrupt every mount
      throw new InvalidArgumentError(
        `open snapshotter at ${root}: the path may not contain ':' or ','`,
        'root',
      );
    }
    this.records = new SnapshotRecords(root);
  }

  /** Fills the new snapshot's storage directory (`dir`) for a snapshot on top of `parent`. */
  protected abstract populate(
    dir: string,
    parent: SnapshotRecord | undefined,
    kind: 'active' | 'view',
  ): Promise<void>;
  /** `parent`, when the caller already read it, saves reading the record again. */
  protected abstract mountsOf(record: SnapshotRecord, parent?: SnapshotRecord): Promise<Mount[]>;
  protected abstract writableLayerOf(record: SnapshotRecord): Promise<WritableLayer>;

  /** The directory holding a snapshot's own content. */
  protected fsDir(record: SnapshotRecord): string {
    return join(this.records.dir(record.id), 'fs');
  }

  /** The chain of committed parents, nearest first (`known`: the parent's record, already read). */
  protected async ancestors(record: SnapshotRecord, known?: SnapshotRecord): Promise<SnapshotRecord[]> {
    const out: SnapshotRecord[] = [];
    let parent = record.parent;
    while (parent !== undefined) {
      const p =
        known !== undefined && known.key === parent
          ? known
          : await this.records.get(parent, 'resolve parent of');
      out.push(p);
      parent = p.parent;
    }
    return out;
  }

  prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.create('active', key, parent, options);
  }

  view(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.create('view', key, parent, options);
  }

  private async create(
    kind: 'active' | 'view',
    key: string,
    parent: string | undefined,
    options: SnapshotOptions = {},
  ): Promise<Mount[]> {
    const action = kind === 'active' ? 'prepare' : 'view';
    validateKey(key);
    if (parent !== undefined) validateKey(parent, 'parent');
    const parentRecord =
      parent === undefined
        ? undefined
        : await this.records.get(parent, `${action} ${JSON.stringify(key)}: parent`);
    if (parentRecord !== undefined && parentRecord.kind !== 'committed') {
      throw new FailedPreconditionError(
        `${action} snapshot ${JSON.stringify(key)}: parent ${JSON.stringify(parent)} is ${parentRecord.kind}, not committed`,
      );
    }
    if (await this.records.find(key)) {
      throw new AlreadyExistsError(`${action} snapshot ${JSON.stringify(key)}: the key is already in use`);
    }
    const id = await this.records.newStorage();
    const now = new Date().toISOString();
    const record: SnapshotRecord = {
      id,
      key,
      kind,
      labels: { ...(options.labels ?? {}) },
      created: now,
      updated: now,
    };
    if (parentRecord) record.parent = parentRecord.key;
    try {
      await this.populate(this.records.dir(id), parentRecord, kind);
      // published (linked) only once the storage is complete; the key may have been taken meanwhile
      await this.records.publish(await this.records.stage(record), record, action);
    } catch (err) {
      await rm(this.records.dir(id), { recursive: true, force: true });
      throw err;
    }
    return this.mountsOf(record, parentRecord);
  }

  async mounts(key: string): Promise<Mount[]> {
    const record = await this.records.get(validateKey(key), 'get mounts of');
    if (record.kind === 'committed') {
      throw new FailedPreconditionError(
        `get mounts of snapshot ${JSON.stringify(key)}: it is committed; make a view or prepare on top of it`,
      );
    }
    return this.mountsOf(record);
  }

  async writableLayer(key: string): Promise<WritableLayer> {
    const record = await this.records.get(validateKey(key), 'get writable layer of');
    if (record.kind !== 'active') {
      throw new FailedPreconditionError(
        `get writable layer of snapshot ${JSON.stringify(key)}: it is ${record.kind}, not active`,
      );
    }
    return this.writableLayerOf(record);
  }

  async commit(name: string, key: string, options: SnapshotOptions = {}): Promise<void> {
    validateKey(name, 'name');
    const record = await this.records.get(validateKey(key), 'commit');
    if (record.kind !== 'active') {
      throw new FailedPreconditionError(
        `commit snapshot ${JSON.stringify(key)}: it is ${record.kind}; only active snapshots can be committed`,
      );
    }
    const now = new Date().toISOString();
    const committed: SnapshotRecord = {
      ...record,
      key: name,
      kind: 'committed',
      labels: { ...record.labels, ...(options.labels ?? {}) },
      updated: now,
    };
    await this.records.create(committed, `commit ${JSON.stringify(key)} as`);
    await this.records.delete(key);
  }

  async remove(key: string): Promise<void> {
    const record = await this.records.get(validateKey(key), 'remove');
    // only committed snapshots can be parents: a container's active one needs no scan of every record
    const children =
      record.kind === 'committed' ? (await this.records.all()).filter((r) => r.parent === key) : [];
    if (children.length > 0) {
      const names = children.slice(0, 3).map((c) => JSON.stringify(c.key));
      throw new FailedPreconditionError(
        `remove snapshot ${JSON.stringify(key)}: ${children.length} snapshot(s) are built on it (${names.join(', ')}${
          children.length > 3 ? ', …' : ''
        }); remove those first`,
      );
    }
    // the record first: a crash between the two leaves an orphan that cleanup() collects
    await this.records.delete(key);
    await this.records.discard(record.id);
    this.scheduleSweep();
  }

  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private removalsSinceSweep = 0;

  /** After open: storage a previous process removed but did not delete (it was killed) is swept. */
  protected async sweepLeftovers(): Promise<void> {
    if ((await readdir(this.records.trashDir)).length > 0) this.scheduleSweep();
  }

  /**
   * Empties the trash once the process has been idle for SWEEP_DELAY_MS (so the deletion does
   * not compete with the next container start), or when it is about to exit. The timer never
   * keeps the process alive: a process killed first leaves the trash to the next open.
   */
  private scheduleSweep(): void {
    if (++this.removalsSinceSweep >= SWEEP_AFTER_REMOVALS) {
      void this.sweep();
      return;
    }
    pendingSweeps.add(this);
    clearTimeout(this.sweepTimer);
    this.sweepTimer = setTimeout(() => void this.sweep(), SWEEP_DELAY_MS);
    this.sweepTimer.unref();
    listenBeforeExit();
  }

  /** Empties the trash now (one sweep at a time per snapshotter); never rejects. */
  sweep(): Promise<void> {
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    pendingSweeps.delete(this);
    this.removalsSinceSweep = 0;
    // queued behind a pass in progress, which may have listed the trash before the last removal
    const pass = (this.sweeping ?? Promise.resolve())
      .then(() => this.records.emptyTrash())
      .catch(() => {
        // left for the next sweep, open or cleanup(); cleanup() reports what it cannot delete
      });
    this.sweeping = pass;
    void pass.finally(() => {
      if (this.sweeping === pass) this.sweeping = undefined;
    });
    return pass;
  }

  /** Bytes and inodes of removed snapshots whose storage is not deleted yet. */
  async reclaimable(): Promise<SnapshotUsage> {
    const total = { size: 0, inodes: 0 };
    const names = await readdir(this.records.trashDir).catch(() => []);
    for (const name of names) {
      const u = await diskUsage(join(this.records.trashDir, name));
      total.size += u.size;
      total.inodes += u.inodes;
    }
    return total;
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return toInfo(await this.records.get(validateKey(key), 'stat'));
  }

  async walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void> {
    for (const record of await this.records.all()) await fn(toInfo(record));
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const record = await this.records.get(validateKey(key), 'get usage of');
    return diskUsage(this.fsDir(record));
  }

  async cleanup(): Promise<number> {
    await this.sweeping;
    await this.records.emptyTrash();
    await this.records.dropEmpty();
    const orphans = await this.records.orphanIds();
    for (const id of orphans) await rm(this.records.dir(id), { recursive: true, force: true });
    return orphans.length;
  }

  /** Synchronous: two mkdirs are on every container start (see snapshot-records.ts). */
  protected makeDirs(dir: string, ...names: string[]): void {
    for (const name of names) mkdirSync(join(dir, name), { mode: 0o755 });
  }
}

/** Allocated bytes and inodes under `dir`, hard links counted once, never following symlinks. */
export async function diskUsage(dir: string): Promise<SnapshotUsage> {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  async function visit(path: string): Promise<void> {
    const st = await lstat(path, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    inodes++;
    size += Number(st.blocks) * 512;
    if (st.isDirectory()) {
      for (const name of await readdir(path)) await visit(join(path, name));
    }
  }
  try {
    await visit(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return { size, inodes };
}
