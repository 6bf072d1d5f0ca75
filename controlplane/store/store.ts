/**
 * Store: the revisioned key-value contract the API machinery is built on (after kine's).
 *
 * Vocabulary
 * - An object is addressed by an ObjectKey: the resource (lower-case plural, `pods`), the
 *   namespace (absent for cluster-scoped resources such as `nodes` and `namespaces`) and the name.
 *   No segment may be empty, `.` or `..`, or contain `/` or a NUL byte (InvalidArgumentError naming
 *   the field: `resource`, `metadata.namespace`, `metadata.name`).
 * - A value is opaque bytes: the API layer encodes objects (protobuf) and the Store never looks
 *   inside. The Store adds the revisions around it.
 * - The revision is one counter for the whole store, raised by every write. `modRevision` is the
 *   revision of an object's last write (its resourceVersion); `createRevision` that of its
 *   creation. Both are bigints.
 *
 * Invariants
 * - Writes are linearizable and compare-and-swap: `update` and a preconditioned `delete` succeed
 *   only when the object's modRevision still equals the one the caller read, so a stale write is
 *   a ConflictError, never a lost update. Of N writers racing from one revision exactly one wins.
 * - `list` returns the items as of one revision and that revision; watching from it afterwards
 *   misses nothing and repeats nothing. Every page of a paginated list is read at the revision of
 *   the first page; the continue token carries it.
 * - `watch` delivers, in revision order and exactly once, every change with a revision greater
 *   than `afterRevision`, first the history and then live changes, and keeps doing so across a
 *   loss of the connection to the backend (it resumes after the last delivered revision).
 *   A deleted object is delivered with its last value.
 * - History older than the compacted revision is gone: a watch from there, a list at such a
 *   revision, or a continue token from there throws GoneError; the caller re-lists.
 * - A namespaced list or watch sees that namespace only, never another one whose name merely
 *   starts with the same characters.
 *
 * - `transact` applies several writes at one revision, or none of them; watches deliver its
 *   writes as events of that one revision (lastOfRevision on the last each watch receives).
 * - A key written with a lease is deleted, as any delete is (a watch sees it), when the lease
 *   expires (no keepAlive within its TTL) or is revoked: leader election and liveness records.
 *
 * Errors (proto/errors.ts): NotFoundError, AlreadyExistsError, ConflictError, GoneError,
 * InvalidArgumentError (bad key, value over the backend's request size, bad continue token or
 * limit), UnavailableError (the backend cannot be reached within the call's deadline; names the
 * endpoints). No call waits forever; only the watch stream outlives an outage, by design.
 */

export interface ObjectKey {
  /** Lower-case plural, e.g. `pods`. */
  resource: string;
  /** Absent for cluster-scoped resources. */
  namespace?: string;
  name: string;
}

export interface StoredValue {
  key: ObjectKey;
  value: Uint8Array;
  /** The revision of the last write: the object's resourceVersion. */
  modRevision: bigint;
  createRevision: bigint;
}

/**
 * A hint that the caller wants only objects whose indexed field (`spec.nodeName`) has `value`: a
 * store that keeps that index (CachedStore) may leave the others out of a list, and send a watcher
 * only the events whose object has the value before or after the change; a store without it
 * ignores the hint. Either way the caller still filters: the hint may only save work.
 */
export interface IndexHint {
  name: string;
  value: string;
}

export interface ListOptions {
  /** Only this namespace; all namespaces (or a cluster-scoped resource) when absent. */
  namespace?: string;
  /** At most this many items per page (a positive integer); all when absent. */
  limit?: number;
  /** The token of the previous page. Its revision wins over `revision`. */
  continue?: string;
  /** Read as of this past revision; the current one when absent. */
  revision?: bigint;
  /**
   * Any state not older than this revision will do (Kubernetes' resourceVersion=0 and
   * NotOlderThan): a cache (CachedStore) answers from memory, a store with its current revision.
   * Not with `revision`, `limit` or `continue`.
   */
  minRevision?: bigint;
  index?: IndexHint;
}

export interface GetOptions {
  /**
   * Any state not older than this revision will do, as for a list: a cache (CachedStore) answers
   * from memory, a store with its current state. For reads whose answer is advisory (a dry run's
   * "does it exist yet?"), or a compare-and-swap write's (which fails if it was not the latest).
   */
  minRevision?: bigint;
  /**
   * With minRevision: a value of this key the caller holds (what it wrote), not older than
   * minRevision. A cache that has not caught up with it answers it instead of reading the inner
   * store; one that has answers its own copy (as new or newer). Other stores read as usual.
   */
  known?: StoredValue;
}

export interface ListResult {
  /** Ordered by the bytes of `namespace/name` (so `web-2/a` sorts before `web/a`). */
  items: StoredValue[];
  /** The revision the items are as of; watch from here. */
  revision: bigint;
  /** Present when more items remain: pass it back as `continue`. */
  continue?: string;
}

export interface WatchOptions {
  namespace?: string;
  /** Deliver changes with a revision greater than this (a list's `revision`). */
  afterRevision: bigint;
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal;
  index?: IndexHint;
}

/**
 * Several keys can share one revision (one transaction, e.g. grouped creates). `lastOfRevision`
 * is false for every event of a revision but its last, so a consumer that must resume after a
 * broken stream records the revision only once its last event arrived (resuming "after" a
 * revision whose events were only partly received would lose the rest).
 */
export type StoreEvent =
  | { type: 'added'; item: StoredValue; lastOfRevision: boolean }
  /** `previous` is the value the change replaced, where the store still has it. */
  | { type: 'modified'; item: StoredValue; previous?: StoredValue; lastOfRevision: boolean }
  /**
   * `item` is the last value before deletion (its modRevision is that value's); `revision` is
   * the revision of the delete. When the backend no longer holds the last value (deleted exactly
   * at the compacted revision), `item.value` is empty and `item.modRevision` is `revision`.
   */
  | { type: 'deleted'; item: StoredValue; revision: bigint; lastOfRevision: boolean }
  /** Nothing changed up to `revision`: a bookmark to resume from. */
  | { type: 'progress'; revision: bigint };

/** One write of a transaction, with the condition it has alone (see Store.create/update/delete). */
export type Write =
  | { type: 'create'; key: ObjectKey; value: Uint8Array; lease?: LeaseId }
  | {
      type: 'update';
      key: ObjectKey;
      value: Uint8Array;
      expectedModRevision: bigint;
      lease?: LeaseId;
      /**
       * The object's createRevision, when the writer read it with `expectedModRevision`: the
       * result's, so the store need not fetch the value it replaces to answer it (etcd's prev_kv).
       */
      createRevision?: bigint;
    }
  | { type: 'delete'; key: ObjectKey; expectedModRevision?: bigint };

/** At most this many writes in one transaction (etcd's default --max-txn-ops is 128). */
export const MAX_WRITES_PER_TRANSACTION = 128;

/** A lease's id (etcd's lease ID). */
export type LeaseId = bigint;

export interface Lease {
  id: LeaseId;
  /** Seconds without a keepAlive after which the lease expires and its keys are deleted. */
  ttlSeconds: number;
}

export interface WriteOptions {
  /** Delete the key when this lease expires or is revoked. */
  lease?: LeaseId;
}

export interface Store {
  /** Stores a new object. AlreadyExistsError when the key exists. */
  create(key: ObjectKey, value: Uint8Array, options?: WriteOptions): Promise<StoredValue>;
  /** NotFoundError when absent. */
  get(key: ObjectKey, options?: GetOptions): Promise<StoredValue>;
  /**
   * Replaces the value if the object's modRevision is still `expectedModRevision`.
   * ConflictError when it has changed since, NotFoundError when the object is gone.
   */
  update(
    key: ObjectKey,
    value: Uint8Array,
    expectedModRevision: bigint,
    options?: WriteOptions,
  ): Promise<StoredValue>;
  /**
   * Deletes the object, if its modRevision is still `expectedModRevision` when given, and returns
   * its last value. NotFoundError when absent, ConflictError when the precondition fails.
   */
  delete(key: ObjectKey, expectedModRevision?: bigint): Promise<StoredValue>;
  list(resource: string, options?: ListOptions): Promise<ListResult>;
  /**
   * All the writes at one revision, or none: when any write's condition fails nothing is written
   * and the error is the one that write would have had alone (AlreadyExistsError, NotFoundError,
   * ConflictError), naming its key. Returns, per write, the stored value (for a delete, the last
   * value). The keys must be distinct, at most MAX_WRITES_PER_TRANSACTION of them, and the values
   * together within the backend's request size (InvalidArgumentError otherwise).
   */
  transact(writes: Write[]): Promise<StoredValue[]>;
  /** A lease that expires `ttlSeconds` (a positive integer) after its last keepAlive. */
  grantLease(ttlSeconds: number): Promise<Lease>;
  /** Restarts the lease's TTL. NotFoundError when it has expired or was revoked. */
  keepAlive(lease: LeaseId): Promise<void>;
  /** Ends the lease now and deletes its keys. NotFoundError when it has already ended. */
  revokeLease(lease: LeaseId): Promise<void>;
  /**
   * Changes after `options.afterRevision`, forever (until `signal` aborts or the iteration is
   * returned). Throws GoneError (from the iteration) when that revision has been compacted.
   */
  watch(resource: string, options: WatchOptions): AsyncIterable<StoreEvent>;
  /** The store's current revision. */
  currentRevision(): Promise<bigint>;
  /** Discards history before `revision` (for tests and operations). */
  compact(revision: bigint): Promise<void>;
  /** Resolves when the backend answers a read within the deadline; UnavailableError otherwise. */
  health(): Promise<void>;
  /** Ends watches and releases the connection. */
  close(): Promise<void>;
}

/** `pods` + `web` + `api-0` → `web/api-0` (or `api-0` when cluster-scoped): for logs and caches. */
export function describeKey(key: ObjectKey): string {
  return key.namespace === undefined ? key.name : `${key.namespace}/${key.name}`;
}
