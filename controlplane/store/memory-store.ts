/**
 * MemoryStore: the Store contract (store.ts) held in this process's memory, for unit tests of
 * everything built on a Store (API handlers, informers, work queues, controllers, the scheduler)
 * and for anything else that needs revisioned storage without etcd. It passes the same conformance
 * suite as EtcdStore, so a test that passes on it means the same on etcd:
 *
 * - one revision counter for the whole store, raised by every write, as etcd's (the first write
 *   gets revision 2, like a fresh etcd);
 * - the history of every change is kept until `compact`, so lists at a past revision, continue
 *   tokens and watches from a revision behave as etcd's MVCC does, GoneError included;
 * - keys, sizes, continue tokens and errors are checked with the same code and words as EtcdStore.
 *
 * `setAvailable(false)` makes every call fail with UnavailableError naming the store, as an etcd
 * outage does; watches stay open and carry on when it is available again.
 */
import {
  AlreadyExistsError,
  ConflictError,
  GoneError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from '../../proto/errors.js';
import type { EventQueue } from '../../proto/support/event-queue.js';
import { watchBacklog, watchEventQueue, type WatchBacklog } from './event-queue.js';
import {
  checkKey,
  checkList,
  checkLeaseTtl,
  checkRevision,
  checkTransaction,
  checkWatch,
  comparePaths,
  decodeContinue,
  encodeContinue,
  expiredContinue,
  pathOf,
} from './keys.js';
import {
  describeKey,
  type Lease,
  type LeaseId,
  type ListOptions,
  type ListResult,
  type ObjectKey,
  type Store,
  type StoredValue,
  type StoreEvent,
  type WatchOptions,
  type Write,
  type WriteOptions,
} from './store.js';

export interface MemoryStoreOptions {
  /** Named in errors as `memory://<name>`; default `store`. */
  name?: string;
  /** The largest value accepted, in bytes; default what etcd takes in one request by default. */
  maxValueBytes?: number;
  /** A watcher further behind than this fails with ResourceExhaustedError (as EtcdStore's). */
  maxWatchBacklog?: { events?: number; bytes?: number };
}

/** etcd's default request limit (1.5 MiB) less the room its transaction takes. */
const DEFAULT_MAX_VALUE_BYTES = 1.5 * 1024 * 1024 - 512;

/** One write to one key, as history keeps it. */
interface Change {
  revision: bigint;
  resource: string;
  /** `namespace/name` or `name`: the key within its resource, the order lists are sorted in. */
  path: string;
  /** The value before the change; absent for a create. */
  before?: StoredValue;
  /** The value after the change; absent for a delete. */
  after?: StoredValue;
}

interface Watcher {
  resource: string;
  namespace?: string;
  queue: EventQueue<StoreEvent>;
}

interface HeldLease {
  ttlSeconds: number;
  timer: NodeJS.Timeout;
  /** `resource\0path` of every key written with it. */
  keys: Set<string>;
}

export class MemoryStore implements Store {
  readonly endpoint: string;
  private readonly maxValueBytes: number;
  private readonly maxWatchBacklog: WatchBacklog;
  /** The current value of every object: resource → path → value. */
  private readonly objects = new Map<string, Map<string, StoredValue>>();
  /** Every change after the compacted revision, in revision order. */
  private history: Change[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly leases = new Map<LeaseId, HeldLease>();
  /** The lease each leased key (`resource\0path`) is attached to. */
  private readonly leaseOfKey = new Map<string, LeaseId>();
  private nextLeaseId = 0x5f10_0000n;
  private revision = 1n;
  private compactedAt = 0n;
  private available = true;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.endpoint = `memory://${options.name ?? 'store'}`;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.maxWatchBacklog = watchBacklog(options.maxWatchBacklog);
  }

  /** While false, every call fails with UnavailableError, as during an etcd outage. */
  setAvailable(available: boolean): void {
    this.available = available;
  }

  async create(key: ObjectKey, value: Uint8Array, options: WriteOptions = {}): Promise<StoredValue> {
    const action = `create ${key.resource} ${describeKey(key)}`;
    this.ready(action);
    return this.commit([{ action, write: { type: 'create', key, value, lease: options.lease } }])[0]!;
  }

  async get(key: ObjectKey): Promise<StoredValue> {
    const action = `get ${key.resource} ${describeKey(key)}`;
    this.ready(action);
    checkKey(action, key);
    const found = this.objects.get(key.resource)?.get(pathOf(key));
    if (found === undefined) throw new NotFoundError(`${action}: not found`);
    return found;
  }

  async update(
    key: ObjectKey,
    value: Uint8Array,
    expectedModRevision: bigint,
    options: WriteOptions = {},
  ): Promise<StoredValue> {
    const action = `update ${key.resource} ${describeKey(key)}`;
    this.ready(action);
    const write: Write = { type: 'update', key, value, expectedModRevision, lease: options.lease };
    return this.commit([{ action, write }])[0]!;
  }

  async delete(key: ObjectKey, expectedModRevision?: bigint): Promise<StoredValue> {
    const action = `delete ${key.resource} ${describeKey(key)}`;
    this.ready(action);
    return this.commit([{ action, write: { type: 'delete', key, expectedModRevision } }])[0]!;
  }

  async transact(writes: Write[]): Promise<StoredValue[]> {
    const action = `write ${writes.length} objects`;
    this.ready(action);
    checkTransaction(action, writes);
    const total = writes.reduce(
      (sum, write) => sum + (write.type === 'delete' ? 0 : write.value.byteLength),
      0,
    );
    if (total > this.maxValueBytes) {
      throw new InvalidArgumentError(
        `${action}: the objects are too large together: ${total} bytes encoded, and the store accepts at most ${this.maxValueBytes} bytes in one write; write them in smaller groups`,
      );
    }
    return this.commit(
      writes.map((write) => ({
        action: `${action}: ${write.type} ${write.key.resource} ${describeKey(write.key)}`,
        write,
      })),
    );
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    const action = `grant a lease of ${ttlSeconds} s`;
    this.ready(action);
    checkLeaseTtl(action, ttlSeconds);
    const id = this.nextLeaseId++;
    this.leases.set(id, { ttlSeconds, timer: this.expiry(id, ttlSeconds), keys: new Set() });
    return { id, ttlSeconds };
  }

  async keepAlive(lease: LeaseId): Promise<void> {
    const action = `keep lease ${lease} alive`;
    this.ready(action);
    const held = this.heldLease(action, lease);
    clearTimeout(held.timer);
    held.timer = this.expiry(lease, held.ttlSeconds);
  }

  async revokeLease(lease: LeaseId): Promise<void> {
    const action = `revoke lease ${lease}`;
    this.ready(action);
    this.heldLease(action, lease);
    this.endLease(lease);
  }

  async list(resource: string, options: ListOptions = {}): Promise<ListResult> {
    const action = checkList(resource, options);
    this.ready(action);
    let readAt = options.revision;
    let after: string | undefined;
    if (options.continue !== undefined) {
      const token = decodeContinue(action, options.continue, options.namespace);
      readAt = token.revision;
      after = token.after;
      if (readAt < this.compactedAt) throw expiredContinue(action, readAt);
    }
    readAt ??= this.revision;
    if (readAt < this.compactedAt) {
      throw new GoneError(`${action}: the revision asked for has been compacted; list again`);
    }
    if (readAt > this.revision) {
      throw new InvalidArgumentError(
        `${action}: the revision asked for is newer than the store's`,
        'revision',
      );
    }
    const prefix = options.namespace === undefined ? undefined : `${options.namespace}/`;
    const paths = [...this.objectsAt(resource, readAt)]
      .filter(([path]) => prefix === undefined || path.startsWith(prefix))
      .filter(([path]) => after === undefined || comparePaths(path, after) > 0)
      .sort(([a], [b]) => comparePaths(a, b));
    const page = options.limit === undefined ? paths : paths.slice(0, options.limit);
    const result: ListResult = { items: page.map(([, value]) => value), revision: readAt };
    if (page.length < paths.length) result.continue = encodeContinue(readAt, page[page.length - 1]![0]);
    return result;
  }

  watch(resource: string, options: WatchOptions): AsyncIterable<StoreEvent> {
    const action = checkWatch(resource, options);
    return { [Symbol.asyncIterator]: () => this.watchEvents(action, resource, options) };
  }

  private async *watchEvents(
    action: string,
    resource: string,
    options: WatchOptions,
  ): AsyncGenerator<StoreEvent> {
    if (options.signal?.aborted) return;
    this.ready(action);
    // as etcd, which keeps the compacted revision itself: a watch may start exactly there
    if (options.afterRevision + 1n < this.compactedAt) {
      throw new GoneError(
        `${action}: revision ${options.afterRevision + 1n} has been compacted; list again and watch from the list's revision`,
      );
    }
    const watcher: Watcher = {
      resource,
      namespace: options.namespace,
      queue: watchEventQueue(action, this.maxWatchBacklog),
    };
    // history and registration in one turn: no write can fall between them
    const replay = this.history.filter(
      (change) => change.revision > options.afterRevision && matches(watcher, change),
    );
    replay.forEach((change, i) =>
      watcher.queue.push(toEvent(change, replay[i + 1]?.revision !== change.revision)),
    );
    this.watchers.add(watcher);
    const stop = (): void => watcher.queue.end();
    options.signal?.addEventListener('abort', stop);
    try {
      for (;;) {
        const next = await watcher.queue.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      options.signal?.removeEventListener('abort', stop);
      this.watchers.delete(watcher);
      watcher.queue.end();
    }
  }

  async currentRevision(): Promise<bigint> {
    this.ready('read current revision');
    return this.revision;
  }

  async compact(revision: bigint): Promise<void> {
    const action = `compact to revision ${revision}`;
    this.ready(action);
    checkRevision(action, revision, 'revision');
    if (revision > this.revision) {
      throw new InvalidArgumentError(
        `${action}: the revision asked for is newer than the store's`,
        'revision',
      );
    }
    if (revision <= this.compactedAt) return;
    this.compactedAt = revision;
    this.history = this.history.filter((change) => change.revision > revision);
  }

  async health(): Promise<void> {
    this.ready('check store health');
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const held of this.leases.values()) clearTimeout(held.timer);
    for (const watcher of this.watchers) watcher.queue.end();
    this.watchers.clear();
  }

  /**
   * Checks every write's key, size, lease and condition, then applies them all at one revision;
   * throws the first failure and writes nothing.
   */
  private commit(writes: { action: string; write: Write }[]): StoredValue[] {
    const befores: (StoredValue | undefined)[] = [];
    for (const { action, write } of writes) {
      checkKey(action, write.key);
      if (write.type !== 'create') {
        if (write.type === 'update' || write.expectedModRevision !== undefined)
          checkRevision(action, write.expectedModRevision!);
      }
      if (write.type !== 'delete') {
        this.checkSize(action, write.value);
        if (write.lease !== undefined) this.heldLease(action, write.lease);
      }
      const found = this.objects.get(write.key.resource)?.get(pathOf(write.key));
      if (write.type === 'create') {
        if (found !== undefined) {
          throw new AlreadyExistsError(`${action}: it already exists; update it or choose another name`);
        }
      } else {
        if (found === undefined) throw new NotFoundError(`${action}: not found`);
        if (write.expectedModRevision !== undefined && found.modRevision !== write.expectedModRevision) {
          throw new ConflictError(
            `${action}: the object has been modified (resourceVersion ${write.expectedModRevision} is stale, it is now ${found.modRevision}); read it again and retry`,
          );
        }
      }
      befores.push(found);
    }
    const revision = ++this.revision;
    const changes: Change[] = writes.map(({ write }, i) => {
      const before = befores[i];
      const path = pathOf(write.key);
      const objects = this.resourceObjects(write.key.resource);
      this.attachLease(write.key.resource, path, write.type === 'delete' ? undefined : write.lease);
      if (write.type === 'delete') {
        objects.delete(path);
        return { revision, resource: write.key.resource, path, before };
      }
      const after = {
        key: { ...write.key },
        value: write.value.slice(),
        modRevision: revision,
        createRevision: before?.createRevision ?? revision,
      };
      objects.set(path, after);
      return { revision, resource: write.key.resource, path, before, after };
    });
    this.record(changes);
    return changes.map((change) => change.after ?? change.before!);
  }

  private heldLease(action: string, lease: LeaseId): HeldLease {
    const held = this.leases.get(lease);
    if (held === undefined)
      throw new NotFoundError(`${action}: lease ${lease} not found (it expired or was revoked)`);
    return held;
  }

  private expiry(lease: LeaseId, ttlSeconds: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.endLease(lease), ttlSeconds * 1000);
    timer.unref();
    return timer;
  }

  /** Ends the lease and deletes its keys, all at one revision, as etcd does. */
  private endLease(lease: LeaseId): void {
    const held = this.leases.get(lease);
    if (held === undefined) return;
    clearTimeout(held.timer);
    this.leases.delete(lease);
    const writes = [...held.keys].map((id) => {
      const [resource, path] = id.split('\0') as [string, string];
      const key = this.objects.get(resource)!.get(path)!.key;
      return { action: `expire lease ${lease}`, write: { type: 'delete', key } as Write };
    });
    if (writes.length > 0) this.commit(writes);
  }

  private attachLease(resource: string, path: string, lease: LeaseId | undefined): void {
    const id = `${resource}\0${path}`;
    const previous = this.leaseOfKey.get(id);
    if (previous !== undefined) this.leases.get(previous)?.keys.delete(id);
    if (lease === undefined) this.leaseOfKey.delete(id);
    else {
      this.leaseOfKey.set(id, lease);
      this.leases.get(lease)!.keys.add(id);
    }
  }

  private ready(action: string): void {
    if (this.closed)
      throw new UnavailableError(`${action}: the store ${this.endpoint} is closed`, this.endpoint);
    if (!this.available) {
      throw new UnavailableError(`${action}: the store ${this.endpoint} is unavailable`, this.endpoint);
    }
  }

  private checkSize(action: string, value: Uint8Array): void {
    if (value.byteLength > this.maxValueBytes) {
      throw new InvalidArgumentError(
        `${action}: the object is too large: ${value.byteLength} bytes encoded, and the store accepts at most ${this.maxValueBytes} bytes; make it smaller (large data belongs in a volume, not in the object)`,
      );
    }
  }

  private resourceObjects(resource: string): Map<string, StoredValue> {
    let objects = this.objects.get(resource);
    if (objects === undefined) this.objects.set(resource, (objects = new Map()));
    return objects;
  }

  /** The objects of `resource` as of `revision`: today's, with later changes undone. */
  private objectsAt(resource: string, revision: bigint): Map<string, StoredValue> {
    const objects = new Map(this.objects.get(resource));
    for (let i = this.history.length - 1; i >= 0 && this.history[i]!.revision > revision; i--) {
      const change = this.history[i]!;
      if (change.resource !== resource) continue;
      if (change.before === undefined) objects.delete(change.path);
      else objects.set(change.path, change.before);
    }
    return objects;
  }

  /** Hands one revision's changes to history and to every watcher they concern. */
  private record(changes: Change[]): void {
    this.history.push(...changes);
    for (const watcher of this.watchers) {
      const mine = changes.filter((change) => matches(watcher, change));
      if (mine.length === 0) continue;
      if (watcher.queue.failIfBehind()) {
        this.watchers.delete(watcher);
        continue;
      }
      mine.forEach((change, i) => watcher.queue.push(toEvent(change, i === mine.length - 1)));
    }
  }
}

function matches(watcher: Watcher, change: Change): boolean {
  return (
    change.resource === watcher.resource &&
    (watcher.namespace === undefined || change.path.startsWith(`${watcher.namespace}/`))
  );
}

function toEvent(change: Change, lastOfRevision: boolean): StoreEvent {
  if (change.after === undefined) {
    return { type: 'deleted', item: change.before!, revision: change.revision, lastOfRevision };
  }
  if (change.before === undefined) return { type: 'added', item: change.after, lastOfRevision };
  return { type: 'modified', item: change.after, previous: change.before, lastOfRevision };
}
