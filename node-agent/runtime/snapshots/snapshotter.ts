/**
 * Snapshotter — the storage of container root file systems as stacks of layers (containerd's
 * snapshotter model). This comment is the specification every implementation follows and that
 * snapshotter-conformance.ts checks.
 *
 * Vocabulary
 *   key        the caller's name for a snapshot. Any non-empty string up to 1024 bytes.
 *   active     a writable snapshot made by `prepare(key, parent)`: the parent's content plus an
 *              empty writable layer. A container's root, or a layer being unpacked.
 *   view       a read-only snapshot made by `view(key, parent)`; it can never be committed.
 *   committed  an immutable snapshot made by `commit(name, key)` from an active one; the only kind
 *              that can be a parent. Image layers are committed snapshots named by their ChainID,
 *              so each layer is unpacked once and shared by every image and container above it.
 *   parent     the committed snapshot a snapshot was prepared from; parents form chains.
 *
 * Lifecycle
 *   prepare(k, p?) -> active --commit(name, k)--> committed (k is gone, `name` exists)
 *   view(k, p?)    -> view
 *   remove(k) deletes any kind, but fails (FailedPreconditionError) while a snapshot names k as
 *   its parent: remove from the top down.
 *
 * Mounts
 *   prepare, view and mounts return *descriptions* of mounts (`Mount[]`). A snapshotter never
 *   mounts anything itself: the caller (the container runtime, through its sys/ edge) does, so all
 *   the logic here runs and is tested without privileges. Mounting the result on a directory
 *   shows the snapshot's content; writes through an active snapshot's mounts change only that
 *   snapshot, never its parents (copy-on-write), and two actives never see each other's writes.
 *   Overlay option strings can exceed the one-page limit of mount(2) with many layers (128+):
 *   callers pass `lowerdir` entries one by one (fsconfig `lowerdir+`) instead.
 *
 * Errors (proto/errors.ts)
 *   AlreadyExistsError  the key (or commit name) is taken.
 *   NotFoundError       the key or parent does not exist.
 *   FailedPreconditionError  parent not committed, commit of a non-active snapshot, mounts of a
 *                       committed snapshot, remove with children.
 *   InvalidArgumentError  a bad key.
 *
 * Example (unpacking a two-layer image, then a container on top):
 *   await s.prepare('extract-1', undefined)   -> mounts: apply layer 0 into them
 *   await s.commit(chainId0, 'extract-1')
 *   await s.prepare('extract-2', chainId0)    -> apply layer 1
 *   await s.commit(chainId1, 'extract-2')
 *   const mounts = await s.prepare('ctr-web', chainId1)   // the container's root
 *   ... run ...; await s.remove('ctr-web')
 */

export type SnapshotKind = 'active' | 'view' | 'committed';

/** A mount to perform, in mount(8)/fsconfig terms: `mount -t type -o options.join(',') source target`. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export interface SnapshotInfo {
  key: string;
  kind: SnapshotKind;
  parent?: string;
  labels: Record<string, string>;
  /** ISO 8601 */
  created: string;
  updated: string;
}

export interface SnapshotUsage {
  /** Bytes of the snapshot's own content (not its parents'), as allocated on disk. */
  size: number;
  inodes: number;
}

export interface WritableLayer {
  dir: string;
  whiteouts: 'overlay' | 'apply';
  lowers: string[];
}

export interface SnapshotOptions {
  labels?: Record<string, string>;
}

export interface Snapshotter {
  /** 'overlay' or 'copy': how the mounts must be treated (e.g. whiteout form when unpacking into them). */
  readonly name: string;
  /**
   * True when a snapshot stores only its own changes over its parents (overlay): a layer of a
   * few entries (an image's init layer) then costs a few entries. False when every snapshot is a
   * full copy of its parent (copy).
   */
  readonly layersStack: boolean;
  prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;
  view(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;
  /** The mounts of an active or view snapshot (the same as prepare/view returned). */
  mounts(key: string): Promise<Mount[]>;
  commit(name: string, key: string, options?: SnapshotOptions): Promise<void>;
  /**
   * Removes the snapshot at once (no longer stat-able, walked or usable as a parent); its
   * storage is deleted shortly after, in the background (see reclaimable()).
   */
  remove(key: string): Promise<void>;
  stat(key: string): Promise<SnapshotInfo>;
  walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void>;
  usage(key: string): Promise<SnapshotUsage>;
  /**
   * Where an active snapshot's own writable layer lives on the host, without mounting anything:
   * the layer unpacker writes there. `whiteouts` says how deletions must be recorded in it:
   * 'overlay' (char 0/0 devices and opaque xattrs, read by overlayfs) or 'apply' (delete for real).
   * `lowers` (top first) are the parents' directories when `dir` holds only this layer's changes,
   * for reading the attributes of directories the layer does not carry itself.
   */
  writableLayer(key: string): Promise<WritableLayer>;
  /**
   * Removes storage no record points to (left by a crash) and deletes removed snapshots' storage
   * now. Returns the number of orphaned directories removed.
   */
  cleanup(): Promise<number>;
  /** Disk still held by removed snapshots whose storage is not deleted yet. */
  reclaimable(): Promise<SnapshotUsage>;
}
