/**
 * CachedStore: a Store in front of another (EtcdStore) that serves watches and "not older than"
 * lists from memory: the apiserver's watch cache, in our terms.
 *
 *   inner store ──one watch per resource──► ResourceCache: objects + a window of recent events
 *                                                 │ fan-out, one bounded queue per watcher
 *                 watch(after R) ◄────────────────┤ (R inside the window; older R: the inner store)
 *                 list({ minRevision }) ◄─────────┘ (resourceVersion=0 / not older than)
 *
 * - A resource's cache starts on its first watch (or cache-served list): it lists the inner store
 *   at one revision, then follows the inner store's watch from there. However many watchers a
 *   resource has, the inner store sees one watch.
 * - The window holds the last `windowEvents` events. A watch from a revision inside it is replayed
 *   from memory, then fed live; one from before it goes to the inner store (which may answer
 *   GoneError), so no watcher is ever refused what the contract promises.
 * - Each watcher has its own queue, bounded as the stores' are: one too slow to keep up is ended
 *   with ResourceExhaustedError (watch again from the last revision it took); the others carry on.
 * - If the cache's own watch fails (the inner store compacted past it), the cache lists again and
 *   ends its watchers with GoneError: they list again too, as Kubernetes' watchers do.
 * - Everything else (get, writes, lists without minRevision, paged lists, leases) goes to the
 *   inner store unchanged: a plain list is a consistent read, as before.
 */
import { GoneError, NotFoundError, ResourceExhaustedError, errorMessage } from '../../proto/errors.js';
import { componentLogger, type Logger } from '../../proto/support/logger.js';
import type { EventQueue } from '../../proto/support/event-queue.js';
import { watchBacklog, watchEventQueue, type WatchBacklog } from './event-queue.js';
import { checkList, checkWatch, comparePaths, eventRevision, pathOf } from './keys.js';
import type {
  GetOptions,
  IndexHint,
  Lease,
  LeaseId,
  ListOptions,
  ListResult,
  ObjectKey,
  Store,
  StoredValue,
  StoreEvent,
  WatchOptions,
  Write,
  WriteOptions,
} from './store.js';

/** Reads an indexed field from an object's stored bytes; undefined when the object has none. */
export type Indexer = (value: Uint8Array) => string | undefined;

export interface CachedStoreOptions {
  /**
   * Indexes kept per resource (`{ pods: { 'spec.nodeName': … } }`): lists and watches with a
   * matching IndexHint touch only the objects and watchers of that value, so a node's pods are
   * answered and fanned out without a scan.
   */
  indexes?: Record<string, Record<string, Indexer>>;
  /** Events each resource's window keeps for watches that start in the past; default 10,000. */
  windowEvents?: number;
  /** A watcher further behind than this is ended with ResourceExhaustedError; as the stores'. */
  maxWatchBacklog?: { events?: number; bytes?: number };
  /** Items per page of a cache's initial list; default 1,000. */
  pageSize?: number;
  logger?: Logger;
}

type ObjectEvent = Exclude<StoreEvent, { type: 'progress' }>;

interface CacheWatcher {
  namespacePrefix?: string;
  afterRevision: bigint;
  /** Only events whose object has this index value before or after the change. */
  index?: { name: string; value: string };
  queue: EventQueue<StoreEvent>;
  /** Lets go of the watch's signal: called when the cache ends the watcher itself. */
  release: () => void;
}

/** Per index name, the values an event's object had before and after the change. */
type EventIndexValues = Map<string, Set<string>>;

/** One resource's objects, the window of its recent events, and its watchers. */
class ResourceCache {
  private readonly objects = new Map<string, StoredValue>();
  /** Paths in byte order: built by the first list, then kept in order as objects come and go. */
  private sortedPaths: string[] | undefined;
  private readonly window: ObjectEvent[] = [];
  /** Every event after this revision is in the window (or still to come). */
  private windowStart = 0n;
  /** The last compaction made through this store: lists before it are GoneError. */
  private compactedAt = 0n;
  /** The revision the objects are as of. */
  private revision = 0n;
  /** Watchers without an index hint (or with one this cache does not keep). */
  private readonly watchers = new Set<CacheWatcher>();
  /** Watchers with an index hint, by index name and value. */
  private readonly indexedWatchers = new Map<string, Map<string, Set<CacheWatcher>>>();
  /** Each object's index values (only for the indexes of this resource). */
  private readonly objectIndex = new Map<string, Record<string, string | undefined>>();
  /** Per index name and value, the paths of the objects that have it: an indexed list reads only these. */
  private readonly indexMembers = new Map<string, Map<string, Set<string>>>();
  /** The names of the indexes this resource keeps (none for most). */
  private readonly indexNames: string[];
  /** The index values each window event touched. */
  private readonly eventIndex = new WeakMap<ObjectEvent, EventIndexValues>();
  /** The events of a revision whose last event has not arrived yet. */
  private partialRevision: ObjectEvent[] = [];
  private readonly ready: Promise<void>;
  private readonly stop = new AbortController();
  /** True once the first list is in. */
  isReady = false;

  constructor(
    private readonly inner: Store,
    private readonly resource: string,
    private readonly options: {
      windowEvents: number;
      maxWatchBacklog: WatchBacklog;
      pageSize: number;
      log: Logger;
      indexers: Record<string, Indexer>;
    },
  ) {
    this.indexNames = Object.keys(options.indexers);
    let markReady!: () => void;
    this.ready = new Promise((resolve) => (markReady = resolve));
    void this.run(() => {
      this.isReady = true;
      markReady();
    });
  }

  /** Resolves once the first list is in, or when `signal` aborts first. */
  started(signal?: AbortSignal): Promise<void> {
    if (signal === undefined || this.isReady) return this.ready;
    return new Promise((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done);
      void this.ready.then(done);
    });
  }

  /** True when the objects as of `revision` can be rebuilt from memory (see listAt). */
  canListAt(revision: bigint): boolean {
    return this.isReady && this.covers(revision) && revision >= this.compactedAt && revision <= this.revision;
  }

  /** True when every event after `afterRevision` is in the window or still to come. */
  covers(afterRevision: bigint): boolean {
    return afterRevision >= this.windowStart;
  }

  get currentRevision(): bigint {
    return this.revision;
  }

  /** One object as of the cache's revision, or undefined. */
  get(key: ObjectKey): StoredValue | undefined {
    return this.objects.get(pathOf(key));
  }

  /**
   * The objects (in `namespace`, when given) as of the cache's revision, in byte order. Costs what
   * it returns, not what the cache holds: a namespace is one range of the sorted paths, an index
   * value its own set of paths.
   */
  list(namespace: string | undefined, index?: IndexHint): ListResult {
    const prefix = namespace === undefined ? undefined : `${namespace}/`;
    const items: StoredValue[] = [];
    if (index !== undefined && index.name in this.options.indexers) {
      const members = this.indexMembers.get(index.name)?.get(index.value);
      const paths = members === undefined ? [] : [...members];
      for (const path of paths.sort(comparePaths))
        if (prefix === undefined || path.startsWith(prefix)) items.push(this.objects.get(path)!);
      return { items, revision: this.revision };
    }
    const sorted = (this.sortedPaths ??= [...this.objects.keys()].sort(comparePaths));
    // the paths that start with a prefix are one run in byte order, from where the prefix would go
    for (let i = prefix === undefined ? 0 : lowerBound(sorted, prefix); i < sorted.length; i++) {
      const path = sorted[i]!;
      if (prefix !== undefined && !path.startsWith(prefix)) break;
      items.push(this.objects.get(path)!);
    }
    return { items, revision: this.revision };
  }

  /**
   * The objects as of `revision`, a revision inside the window and not after the cache's: today's
   * with the window's later events undone (what a selector watch needs to know what matched).
   */
  listAt(revision: bigint, namespace: string | undefined): ListResult | undefined {
    const objects = new Map(this.objects);
    for (let i = this.window.length - 1; i >= 0; i--) {
      const event = this.window[i]!;
      if (eventRevision(event) <= revision) break;
      const path = pathOf(event.item.key);
      if (event.type === 'added') objects.delete(path);
      else if (event.type === 'deleted') objects.set(path, event.item);
      else if (event.previous === undefined) return undefined;
      else objects.set(path, event.previous);
    }
    const prefix = namespace === undefined ? undefined : `${namespace}/`;
    const paths = [...objects.keys()].filter((path) => prefix === undefined || path.startsWith(prefix));
    return { items: paths.sort(comparePaths).map((path) => objects.get(path)!), revision };
  }

  /**
   * A watcher fed from the window, then live; ended by `signal`, by return(), or when the cache
   * restarts. Its next() is its queue's own: with a thousand watchers taking every event, the
   * resumptions of the two generators that stood between queue and reader were a third of the
   * CPU the hand-off from the cache to the API's watches took.
   */
  watch(action: string, options: WatchOptions): AsyncIterator<StoreEvent> {
    const signal = options.signal;
    const close = (): void => {
      watcher.release();
      this.unregister(watcher);
      watcher.queue.end();
    };
    const watcher: CacheWatcher = {
      ...(options.namespace !== undefined ? { namespacePrefix: `${options.namespace}/` } : {}),
      afterRevision: options.afterRevision,
      ...(options.index !== undefined && options.index.name in this.options.indexers
        ? { index: options.index }
        : {}),
      queue: watchEventQueue(action, this.options.maxWatchBacklog),
      release: () => signal?.removeEventListener('abort', close),
    };
    // the window and the registration in one turn: no event can fall between them
    this.deliver(watcher, this.window);
    this.register(watcher);
    signal?.addEventListener('abort', close);
    return {
      next: () => watcher.queue.next(),
      return: () => {
        close();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  close(): void {
    this.stop.abort();
    for (const watcher of this.everyWatcher()) {
      watcher.queue.end();
      watcher.release();
    }
  }

  /** Watchers this cache feeds. */
  get watcherCount(): number {
    let count = this.watchers.size;
    for (const byValue of this.indexedWatchers.values())
      for (const bucket of byValue.values()) count += bucket.size;
    return count;
  }

  private register(watcher: CacheWatcher): void {
    if (watcher.index === undefined) {
      this.watchers.add(watcher);
      return;
    }
    let byValue = this.indexedWatchers.get(watcher.index.name);
    if (byValue === undefined) this.indexedWatchers.set(watcher.index.name, (byValue = new Map()));
    let bucket = byValue.get(watcher.index.value);
    if (bucket === undefined) byValue.set(watcher.index.value, (bucket = new Set()));
    bucket.add(watcher);
  }

  private unregister(watcher: CacheWatcher): void {
    if (watcher.index === undefined) {
      this.watchers.delete(watcher);
      return;
    }
    const byValue = this.indexedWatchers.get(watcher.index.name);
    const bucket = byValue?.get(watcher.index.value);
    bucket?.delete(watcher);
    if (bucket?.size === 0) byValue!.delete(watcher.index.value);
  }

  private *everyWatcher(): Iterable<CacheWatcher> {
    yield* this.watchers;
    for (const byValue of this.indexedWatchers.values()) for (const bucket of byValue.values()) yield* bucket;
  }

  /** List, then follow the inner watch; list again (ending the watchers) when it fails. */
  private async run(markReady: () => void): Promise<void> {
    let delayMs = 100;
    while (!this.stop.signal.aborted) {
      try {
        await this.relist();
        markReady();
        delayMs = 100;
        await this.follow();
      } catch (err) {
        if (this.stop.signal.aborted) return;
        this.options.log.warn({ resource: this.resource, err: errorMessage(err) }, 'watch cache restarting');
        const reason = new GoneError(
          `watch ${this.resource}: the watch cache lost its place (${errorMessage(err)}); list again and watch from the list's revision`,
        );
        for (const watcher of this.everyWatcher()) {
          watcher.queue.fail(reason);
          watcher.release();
        }
        this.watchers.clear();
        this.indexedWatchers.clear();
        if (!(err instanceof GoneError || err instanceof ResourceExhaustedError)) {
          await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
          delayMs = Math.min(delayMs * 2, 5000);
        }
      }
    }
  }

  private async relist(): Promise<void> {
    const objects = new Map<string, StoredValue>();
    let page = await this.inner.list(this.resource, { limit: this.options.pageSize });
    const revision = page.revision;
    for (;;) {
      for (const item of page.items) objects.set(pathOf(item.key), item);
      if (page.continue === undefined) break;
      page = await this.inner.list(this.resource, { limit: this.options.pageSize, continue: page.continue });
    }
    this.objects.clear();
    this.objectIndex.clear();
    this.indexMembers.clear();
    for (const [path, item] of objects) {
      this.objects.set(path, item);
      this.indexObject(path, item);
    }
    this.sortedPaths = undefined;
    this.window.length = 0;
    this.partialRevision = [];
    this.windowStart = revision;
    this.revision = revision;
  }

  private async follow(): Promise<void> {
    const events = this.inner.watch(this.resource, {
      afterRevision: this.revision,
      signal: this.stop.signal,
    });
    for await (const event of events) {
      if (event.type === 'progress') {
        this.revision = event.revision;
        continue;
      }
      this.apply(event);
    }
  }

  /**
   * Takes one event of the inner watch; a revision's events are applied and handed out together
   * once its last one is in, so that each watcher can be told which is the last *it* receives.
   */
  private apply(event: ObjectEvent): void {
    this.partialRevision.push(event);
    if (!event.lastOfRevision) return;
    const group = this.partialRevision;
    this.partialRevision = [];
    const touched = new Map<string, Set<string>>(); // index name → values the group touched
    for (const each of group) {
      const path = pathOf(each.item.key);
      const before = this.objectIndex.get(path);
      if (each.type === 'deleted') {
        if (this.objects.delete(path) && this.sortedPaths !== undefined)
          this.sortedPaths.splice(lowerBound(this.sortedPaths, path), 1);
        this.unindexObject(path);
      } else {
        if (!this.objects.has(path) && this.sortedPaths !== undefined)
          this.sortedPaths.splice(lowerBound(this.sortedPaths, path), 0, path);
        this.objects.set(path, each.item);
        this.indexObject(path, each.item);
      }
      if (this.indexNames.length === 0) continue;
      const after = this.objectIndex.get(path);
      const values: EventIndexValues = new Map();
      for (const name of this.indexNames) {
        const set = new Set<string>();
        for (const value of [before?.[name], after?.[name]]) if (value !== undefined) set.add(value);
        values.set(name, set);
        let all = touched.get(name);
        if (all === undefined) touched.set(name, (all = new Set()));
        for (const value of set) all.add(value);
      }
      this.eventIndex.set(each, values);
    }
    this.revision = eventRevision(event);
    this.window.push(...group);
    this.trimWindow(this.options.windowEvents);
    const receivers: CacheWatcher[] = [...this.watchers];
    for (const [name, values] of touched) {
      const byValue = this.indexedWatchers.get(name);
      if (byValue === undefined) continue;
      for (const value of values) for (const watcher of byValue.get(value) ?? []) receivers.push(watcher);
    }
    for (const watcher of receivers) {
      if (watcher.queue.failIfBehind()) {
        this.unregister(watcher);
        watcher.release();
        continue;
      }
      this.deliver(watcher, group);
    }
  }

  private indexObject(path: string, item: StoredValue): void {
    if (this.indexNames.length === 0) return;
    this.unindexObject(path);
    const values: Record<string, string | undefined> = {};
    for (const name of this.indexNames) {
      let value: string | undefined;
      try {
        value = this.options.indexers[name]!(item.value);
      } catch {
        value = undefined; // an undecodable object is indexed under no value
      }
      values[name] = value;
      if (value === undefined) continue;
      let byValue = this.indexMembers.get(name);
      if (byValue === undefined) this.indexMembers.set(name, (byValue = new Map()));
      let members = byValue.get(value);
      if (members === undefined) byValue.set(value, (members = new Set()));
      members.add(path);
    }
    this.objectIndex.set(path, values);
  }

  private unindexObject(path: string): void {
    const values = this.objectIndex.get(path);
    if (values === undefined) return;
    this.objectIndex.delete(path);
    for (const name of this.indexNames) {
      const value = values[name];
      if (value === undefined) continue;
      const byValue = this.indexMembers.get(name);
      const members = byValue?.get(value);
      members?.delete(path);
      if (members?.size === 0) byValue!.delete(value);
    }
  }

  /** Keeps at most `events` events, dropping whole revisions; what goes moves windowStart on. */
  private trimWindow(events: number): void {
    let drop = 0;
    while (this.window.length - drop > events) {
      const revision = eventRevision(this.window[drop]!);
      while (drop < this.window.length && eventRevision(this.window[drop]!) === revision) drop++;
      this.windowStart = revision;
    }
    if (drop > 0) this.window.splice(0, drop);
  }

  /** History before `revision` is gone from the store: watches from there go to it (GoneError). */
  compacted(revision: bigint): void {
    if (revision > this.compactedAt) this.compactedAt = revision;
    if (revision - 1n <= this.windowStart) return;
    this.windowStart = revision - 1n;
    const keep = this.window.findIndex((event) => eventRevision(event) > this.windowStart);
    this.window.splice(0, keep === -1 ? this.window.length : keep);
  }

  /** Hands `events` (whole revisions) to the watcher: its own, each revision's last marked. */
  private deliver(watcher: CacheWatcher, events: readonly ObjectEvent[]): void {
    const index = watcher.index;
    const mine = events.filter(
      (event) =>
        eventRevision(event) > watcher.afterRevision &&
        (watcher.namespacePrefix === undefined ||
          pathOf(event.item.key).startsWith(watcher.namespacePrefix)) &&
        (index === undefined || this.eventIndex.get(event)?.get(index.name)?.has(index.value) !== false),
    );
    mine.forEach((event, i) => {
      const next = mine[i + 1];
      const lastOfRevision = next === undefined || eventRevision(next) !== eventRevision(event);
      watcher.queue.push(event.lastOfRevision === lastOfRevision ? event : { ...event, lastOfRevision });
    });
  }
}

export class CachedStore implements Store {
  private readonly caches = new Map<string, ResourceCache>();
  private readonly windowEvents: number;
  private readonly maxWatchBacklog: WatchBacklog;
  private readonly pageSize: number;
  private readonly indexes: Record<string, Record<string, Indexer>>;
  private readonly log: Logger;

  constructor(
    private readonly inner: Store,
    options: CachedStoreOptions = {},
  ) {
    this.windowEvents = options.windowEvents ?? 10_000;
    this.maxWatchBacklog = watchBacklog(options.maxWatchBacklog);
    this.pageSize = options.pageSize ?? 1000;
    this.indexes = options.indexes ?? {};
    this.log = options.logger ?? componentLogger('watch-cache');
  }

  /**
   * Starts the caches of `resources` now (the control plane does so for every kind at start-up,
   * so that watches from the first lists on are served from memory); resolves once each has
   * listed. Otherwise a cache starts on its resource's first watch.
   */
  async prime(resources: readonly string[]): Promise<void> {
    await Promise.all(resources.map((resource) => this.cacheOf(resource).started()));
  }

  /** How many resources have a cache (and so one inner watch each). */
  get cachedResources(): number {
    return this.caches.size;
  }

  /** How many watchers the caches feed (watches from before a window go to the inner store). */
  get cachedWatchers(): number {
    let count = 0;
    for (const cache of this.caches.values()) count += cache.watcherCount;
    return count;
  }

  async list(resource: string, options: ListOptions = {}): Promise<ListResult> {
    checkList(resource, options);
    const { minRevision, ...plain } = options;
    if (options.limit !== undefined || options.continue !== undefined)
      return this.inner.list(resource, plain);
    if (options.revision !== undefined) {
      // a past revision inside a running cache's window: undone from memory
      const cache = this.caches.get(resource);
      const at = cache?.canListAt(options.revision)
        ? cache.listAt(options.revision, options.namespace)
        : undefined;
      return at ?? this.inner.list(resource, plain);
    }
    if (minRevision === undefined) return this.inner.list(resource, plain);
    const cache = this.cacheOf(resource);
    // A cache not filled yet, or older than asked: the inner store answers (and fails within its
    // deadline when it is down, where waiting for the cache would not).
    if (!cache.isReady || cache.currentRevision < minRevision) return this.inner.list(resource, plain);
    return cache.list(options.namespace, options.index);
  }

  watch(resource: string, options: WatchOptions): AsyncIterable<StoreEvent> {
    const action = checkWatch(resource, options);
    return { [Symbol.asyncIterator]: () => this.watchEvents(action, resource, options) };
  }

  /**
   * A watch that, on its first next(), waits for the resource's cache and then hands every call
   * straight to the cache's watcher (or, for a revision before the window, the inner store's watch).
   */
  private watchEvents(action: string, resource: string, options: WatchOptions): AsyncIterator<StoreEvent> {
    const done: IteratorReturnResult<undefined> = { done: true, value: undefined };
    let source: AsyncIterator<StoreEvent> | undefined;
    let opening: Promise<AsyncIterator<StoreEvent> | undefined> | undefined;
    let finished = false;
    const open = async (): Promise<AsyncIterator<StoreEvent> | undefined> => {
      if (options.signal?.aborted) return undefined;
      const cache = this.cacheOf(resource);
      await cache.started(options.signal);
      if (options.signal?.aborted || finished) return undefined;
      return cache.covers(options.afterRevision)
        ? cache.watch(action, options)
        : this.inner.watch(resource, options)[Symbol.asyncIterator]();
    };
    return {
      next: () => {
        if (source !== undefined) return source.next();
        if (finished) return Promise.resolve(done);
        opening ??= open().then((opened) => {
          if (opened === undefined || finished) {
            finished = true;
            void opened?.return?.();
            return undefined;
          }
          return (source = opened);
        });
        return opening.then((opened) => (opened === undefined ? done : opened.next()));
      },
      return: async () => {
        finished = true;
        const closing = source;
        source = undefined;
        await closing?.return?.();
        return done;
      },
    };
  }

  private cacheOf(resource: string): ResourceCache {
    let cache = this.caches.get(resource);
    if (cache === undefined) {
      cache = new ResourceCache(this.inner, resource, {
        windowEvents: this.windowEvents,
        maxWatchBacklog: this.maxWatchBacklog,
        pageSize: this.pageSize,
        log: this.log,
        indexers: this.indexes[resource] ?? {},
      });
      this.caches.set(resource, cache);
    }
    return cache;
  }

  create(key: ObjectKey, value: Uint8Array, options?: WriteOptions): Promise<StoredValue> {
    return this.inner.create(key, value, options);
  }

  async get(key: ObjectKey, options: GetOptions = {}): Promise<StoredValue> {
    const { minRevision, known } = options;
    if (minRevision === undefined) return this.inner.get(key);
    const cache = this.cacheOf(key.resource);
    // what the caller wrote, while the cache lags its own writes (their watch events to come)
    if (
      known !== undefined &&
      known.modRevision >= minRevision &&
      !(cache.isReady && cache.currentRevision >= known.modRevision)
    )
      return known;
    // as for lists: a cache not filled yet, or older than asked, sends the read to the inner store
    if (!cache.isReady || cache.currentRevision < minRevision) return this.inner.get(key);
    const found = cache.get(key);
    if (found === undefined) throw new NotFoundError(`get ${key.resource} ${pathOf(key)}: not found`);
    return found;
  }

  update(
    key: ObjectKey,
    value: Uint8Array,
    expectedModRevision: bigint,
    options?: WriteOptions,
  ): Promise<StoredValue> {
    return this.inner.update(key, value, expectedModRevision, options);
  }

  delete(key: ObjectKey, expectedModRevision?: bigint): Promise<StoredValue> {
    return this.inner.delete(key, expectedModRevision);
  }

  transact(writes: Write[]): Promise<StoredValue[]> {
    return this.inner.transact(writes);
  }

  grantLease(ttlSeconds: number): Promise<Lease> {
    return this.inner.grantLease(ttlSeconds);
  }

  keepAlive(lease: LeaseId): Promise<void> {
    return this.inner.keepAlive(lease);
  }

  revokeLease(lease: LeaseId): Promise<void> {
    return this.inner.revokeLease(lease);
  }

  currentRevision(): Promise<bigint> {
    return this.inner.currentRevision();
  }

  async compact(revision: bigint): Promise<void> {
    await this.inner.compact(revision);
    for (const cache of this.caches.values()) cache.compacted(revision);
  }

  health(): Promise<void> {
    return this.inner.health();
  }

  async close(): Promise<void> {
    for (const cache of this.caches.values()) cache.close();
    this.caches.clear();
    await this.inner.close();
  }
}

/** Where `path` is or would go in `sorted` (byte order). */
function lowerBound(sorted: readonly string[], path: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (comparePaths(sorted[middle]!, path) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}
