/**
 * The parts of a Snapshotter that do not depend on how layers are stacked: keys, records,
 * parents, lifecycle checks and usage. OverlaySnapshotter and CopySnapshotter supply storage
 * (how a new snapshot's directory is filled) and mounts (how it is shown).
 */
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError } from '../../../proto/errors.js';
import { removeTree } from '../sys/remove-tree.js';
import { SnapshotRecords, toInfo, validateKey, type SnapshotRecord } from './snapshot-records.js';
import type {
  Mount,
  SnapshotInfo,
  SnapshotOptions,
  SnapshotUsage,
  Snapshotter,
  WritableLayer,
} from './snapshotter.js';

export abstract class FileSnapshotter implements Snapshotter {
  abstract readonly name: string;
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
    // both reads at once: they are on every container start
    const [parentRecord, taken] = await Promise.all([
      parent === undefined ? undefined : this.records.get(parent, `${action} ${JSON.stringify(key)}: parent`),
      this.records.find(key),
    ]);
    if (parentRecord !== undefined) {
      if (parentRecord.kind !== 'committed') {
        throw new FailedPreconditionError(
          `${action} snapshot ${JSON.stringify(key)}: parent ${JSON.stringify(parent)} is ${parentRecord.kind}, not committed`,
        );
      }
    }
    if (taken) {
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
      await this.records.create(record, action);
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
    await this.records.delete(key);
    await removeTree(this.records.dir(record.id));
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
    await this.records.dropEmpty();
    const orphans = await this.records.orphanIds();
    for (const id of orphans) await rm(this.records.dir(id), { recursive: true, force: true });
    return orphans.length;
  }

  protected async makeDirs(dir: string, ...names: string[]): Promise<void> {
    await Promise.all(names.map((name) => mkdir(join(dir, name), { mode: 0o755 })));
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
