/**
 * Informer: the one way skiff components follow a resource (DESIGN.md, "API machinery").
 *
 *   list (paged, at one revision) ──► cache keyed `namespace/name` ──► handlers get keys
 *        ▲                                  ▲
 *        │ GoneError / a failed watch       │ events after the list's revision
 *        └──────────── watch ───────────────┘
 *
 * - The cache is replaced by every list; keys that changed, appeared or vanished since the previous
 *   cache are handed to the handlers, so a re-list after a compaction misses nothing.
 * - Handlers receive keys (and what kind of change it was), never do the work: they enqueue the key
 *   and a worker reads the object back with `get(key)` (level-triggered reconcile).
 * - A compacted watch re-lists at once and logs it; any other failure re-lists after a capped
 *   back-off. Resync hands every cached key to the handlers again on an interval.
 * - Objects whose bytes do not decode are logged and left out of the cache.
 */
import { GoneError, errorMessage } from '../errors.js';
import { componentLogger, type Logger } from '../support/logger.js';
import type { ListWatchSource, SourceItem } from './list-watch-source.js';

export interface CachedObject<T> {
  /** `namespace/name`, or `name` when cluster-scoped. */
  key: string;
  object: T;
  /** The object's resourceVersion. */
  modRevision: bigint;
}

export type InformerChange = 'added' | 'modified' | 'deleted' | 'resync';

/** Called with the cache key (`namespace/name`, or `name` when cluster-scoped). */
export type InformerHandler<T> = (
  key: string,
  change: InformerChange,
  /**
   * For 'deleted': the last object the cache held; for 'modified': the object before the change
   * (what a handler that keeps its own view, such as the scheduler's cache, diffs against).
   */
  lastKnown?: CachedObject<T>,
) => void;

/** Where the objects come from: storeSource in the control plane, apiSource anywhere else. */
export type InformerOptions<T> = InformerTuning & { source: ListWatchSource<T> };

export interface InformerTuning {
  /** Items per list page; default 500. */
  pageSize?: number;
  /** Hand every cached key to the handlers this often; 0 (default) turns resync off. */
  resyncIntervalMs?: number;
  /** Longest wait before re-listing after a failure; default 5000 ms (starts at 100 ms). */
  maxRetryDelayMs?: number;
  logger?: Logger;
  /** Called after every list but the first: why the informer listed again, and from where to where. */
  onRelist?: (relist: Relist) => void;
}

export interface Relist {
  /** `compacted`: the watch's history was gone; `failed`: the list or watch failed. */
  reason: 'compacted' | 'failed';
  /** The revision the cache was current to before. */
  fromRevision: bigint;
  /** The revision of the new list. */
  revision: bigint;
}

/** The values an object is filed under in one index (e.g. its namespace, its owners' uids). */
export type IndexFunction<T> = (object: T) => readonly string[];

interface InformerIndex<T> {
  by: IndexFunction<T>;
  /** value → keys of the cached objects filed under it */
  keys: Map<string, Set<string>>;
}

export class Informer<T> {
  private readonly source: ListWatchSource<T>;
  private cache = new Map<string, CachedObject<T>>();
  /** index name → value → keys; kept with the cache, so lookups never scan it */
  private readonly indexes = new Map<string, InformerIndex<T>>();
  private readonly handlers = new Set<InformerHandler<T>>();
  private readonly controller = new AbortController();
  private readonly log: Logger;
  private running: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private lastRevision = 0n;
  private relistCount = 0;

  constructor(private readonly options: InformerOptions<T>) {
    this.source = options.source;
    this.log = options.logger ?? componentLogger('informer', { source: this.source.description });
  }

  /** Registers a handler; returns its removal. Handlers must not throw or block. */
  onChange(handler: InformerHandler<T>): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** Starts listing and watching in the background. */
  start(): void {
    if (this.running !== undefined) return;
    this.running = this.run();
    const interval = this.options.resyncIntervalMs ?? 0;
    if (interval > 0) {
      this.resyncTimer = setInterval(() => {
        for (const [key, cached] of this.cache) this.notify(key, 'resync', cached);
      }, interval);
      this.resyncTimer.unref();
    }
  }

  /** Stops watching; resolves once the background loop has ended. */
  async stop(): Promise<void> {
    this.controller.abort();
    clearInterval(this.resyncTimer);
    for (const wake of this.syncWaiters) wake();
    this.syncWaiters = [];
    await this.running;
  }

  /** True once the first list has filled the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has filled the cache (or the informer is stopped). */
  waitForSync(): Promise<void> {
    if (this.synced || this.controller.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(key: string): CachedObject<T> | undefined {
    return this.cache.get(key);
  }

  list(): CachedObject<T>[] {
    return [...this.cache.values()];
  }

  /**
   * Files every cached object (now and from now on) under the values `by` gives it, for byIndex.
   * Adding the same function under the same name again does nothing (each user of a shared
   * informer may ask for the index it needs); another function under a taken name throws.
   */
  addIndex(name: string, by: IndexFunction<T>): void {
    const existing = this.indexes.get(name);
    if (existing?.by === by) return;
    if (existing !== undefined)
      throw new Error(`informer index "${name}" exists already, filed by another function`);
    const index: InformerIndex<T> = { by, keys: new Map() };
    this.indexes.set(name, index);
    for (const cached of this.cache.values()) this.fileUnder(index, cached);
  }

  /** The cached objects that index `name` files under `value`. */
  byIndex(name: string, value: string): CachedObject<T>[] {
    const index = this.indexes.get(name);
    if (index === undefined) throw new Error(`informer has no index "${name}"`);
    const keys = index.keys.get(value);
    if (keys === undefined) return [];
    const found: CachedObject<T>[] = [];
    for (const key of keys) {
      const cached = this.cache.get(key);
      if (cached !== undefined) found.push(cached);
    }
    return found;
  }

  /** The revision the cache is current to. */
  get revision(): bigint {
    return this.lastRevision;
  }

  /** How many times the informer has listed after its first list. */
  get relists(): number {
    return this.relistCount;
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    const maxDelay = this.options.maxRetryDelayMs ?? 5000;
    let delay = 100;
    let first = true;
    let reason: Relist['reason'] = 'failed';
    while (!signal.aborted) {
      try {
        const fromRevision = this.lastRevision;
        await this.relist();
        if (!first) {
          this.relistCount++;
          this.options.onRelist?.({ reason, fromRevision, revision: this.lastRevision });
        }
        first = false;
        delay = 100;
        for await (const event of this.source.watch(this.lastRevision, signal)) {
          if (event.type === 'progress') {
            this.lastRevision = event.revision;
          } else if (event.type === 'deleted') {
            this.lastRevision = event.resumeAfter;
            this.remove(event.key);
          } else {
            this.lastRevision = event.resumeAfter;
            this.put(event.item, event.type);
          }
        }
      } catch (err) {
        if (signal.aborted) break;
        reason = err instanceof GoneError ? 'compacted' : 'failed';
        if (err instanceof GoneError) {
          this.log.warn({ revision: this.lastRevision.toString() }, 'watch revision compacted, re-listing');
          continue;
        }
        this.log.warn({ err: errorMessage(err), retryInMs: delay }, 'list or watch failed, re-listing');
        await sleep(delay, signal);
        delay = Math.min(delay * 2, maxDelay);
      }
    }
  }

  /** Lists every page at one revision, replaces the cache and notifies what differs. */
  private async relist(): Promise<void> {
    const fresh = new Map<string, CachedObject<T>>();
    let revision: bigint | undefined;
    let token: string | undefined;
    do {
      const page = await this.source.list({
        limit: this.options.pageSize ?? 500,
        ...(token !== undefined ? { continue: token } : {}),
      });
      revision = page.revision;
      for (const item of page.items) {
        const cached = this.readable(item);
        if (cached !== undefined) fresh.set(item.key, cached);
      }
      token = page.continue;
    } while (token !== undefined);
    const previous = this.cache;
    this.cache = fresh;
    this.lastRevision = revision;
    for (const index of this.indexes.values()) {
      index.keys.clear();
      for (const cached of fresh.values()) this.fileUnder(index, cached);
    }
    for (const [key, cached] of fresh) {
      const before = previous.get(key);
      if (before === undefined) this.notify(key, 'added');
      else if (before.modRevision !== cached.modRevision) this.notify(key, 'modified', before);
    }
    for (const [key, before] of previous) {
      if (!fresh.has(key)) this.notify(key, 'deleted', before);
    }
    if (!this.synced) {
      this.synced = true;
      for (const wake of this.syncWaiters) wake();
      this.syncWaiters = [];
      this.log.info({ objects: fresh.size, revision: revision.toString() }, 'informer synced');
    }
  }

  private put(item: SourceItem<T>, change: 'added' | 'modified'): void {
    const cached = this.readable(item);
    if (cached === undefined) {
      this.remove(item.key);
      return;
    }
    const before = this.cache.get(item.key);
    this.cache.set(item.key, cached);
    for (const index of this.indexes.values()) {
      if (before !== undefined) this.unfile(index, before);
      this.fileUnder(index, cached);
    }
    this.notify(item.key, change, before);
  }

  private remove(key: string): void {
    const last = this.cache.get(key);
    if (last === undefined) return;
    this.cache.delete(key);
    for (const index of this.indexes.values()) this.unfile(index, last);
    this.notify(key, 'deleted', last);
  }

  private fileUnder(index: InformerIndex<T>, cached: CachedObject<T>): void {
    for (const value of index.by(cached.object)) {
      let keys = index.keys.get(value);
      if (keys === undefined) index.keys.set(value, (keys = new Set()));
      keys.add(cached.key);
    }
  }

  private unfile(index: InformerIndex<T>, cached: CachedObject<T>): void {
    for (const value of index.by(cached.object)) {
      const keys = index.keys.get(value);
      if (keys === undefined) continue;
      keys.delete(cached.key);
      if (keys.size === 0) index.keys.delete(value);
    }
  }

  /** The item to cache, or undefined (logged) when the source could not read it. */
  private readable(item: SourceItem<T>): CachedObject<T> | undefined {
    if ('object' in item) return { key: item.key, object: item.object, modRevision: item.modRevision };
    this.log.error(
      { key: item.key, revision: item.modRevision.toString(), err: item.unreadable },
      'cannot decode stored object, leaving it out of the cache',
    );
    return undefined;
  }

  private notify(key: string, change: InformerChange, lastKnown?: CachedObject<T>): void {
    for (const handler of this.handlers) {
      try {
        handler(key, change, lastKnown);
      } catch (err) {
        this.log.error({ key, err: errorMessage(err) }, 'informer handler threw');
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
