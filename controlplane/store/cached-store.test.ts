import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { GoneError, NotFoundError, ResourceExhaustedError } from '../../proto/errors.js';
import { CachedStore } from './cached-store.js';
import { MemoryStore } from './memory-store.js';
import { storeConformance } from './store-conformance.js';
import type { ObjectKey, Store, StoreEvent, StoredValue, WatchOptions } from './store.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array): string => new TextDecoder().decode(value);
/** What the conformance suite watches. */
const CONFORMANCE_RESOURCES = ['pods', 'configmaps', 'secrets', 'podtemplates', 'nodes'];
const pod = (name: string, namespace = 'default'): ObjectKey => ({ resource: 'pods', namespace, name });

/** A MemoryStore that counts the watches opened on it and can break them on demand. */
class InnerStore extends MemoryStore {
  watchesOpened = 0;
  gets = 0;

  override get(key: ObjectKey): Promise<StoredValue> {
    this.gets++;
    return super.get(key);
  }

  private breakers = new Set<(err: Error) => void>();

  override watch(resource: string, options: WatchOptions): AsyncIterable<StoreEvent> {
    this.watchesOpened++;
    const events = super.watch(resource, options);
    const breakers = this.breakers;
    return {
      async *[Symbol.asyncIterator]() {
        let fail: (err: Error) => void = () => undefined;
        const broken = new Promise<never>((_, reject) => (fail = reject));
        broken.catch(() => undefined);
        breakers.add(fail);
        const iterator = events[Symbol.asyncIterator]();
        try {
          for (;;) {
            const next = await Promise.race([iterator.next(), broken]);
            if (next.done) return;
            yield next.value;
          }
        } finally {
          breakers.delete(fail);
          // not awaited: a generator busy in next() takes return() only after that next() settles
          void iterator.return?.();
        }
      },
    };
  }

  /** Fails every open watch, as etcd does when it compacts past a slow watcher. */
  breakWatches(err: Error): void {
    for (const fail of this.breakers) fail(err);
  }
}

/** The next `count` object events of `iterator` (progress events skipped), within 5 s. */
async function take(iterator: AsyncIterator<StoreEvent>, count: number): Promise<string[]> {
  const seen: string[] = [];
  const deadline = Date.now() + 5000;
  while (seen.length < count) {
    const next = await Promise.race([
      iterator.next(),
      new Promise<'timeout'>((resolve) =>
        setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now())),
      ),
    ]);
    if (next === 'timeout') assert.fail(`only ${seen.length} of ${count} events: ${seen.join(', ')}`);
    if (next.done) break;
    const event = next.value;
    if (event.type !== 'progress')
      seen.push(`${event.type} ${event.item.key.name}=${text(event.item.value)}`);
  }
  return seen;
}

/**
 * A watch whose reading starts at once, as the API's does (an async iterator does nothing until
 * its first next(); a watch not yet read has not started).
 */
function watchFrom(
  store: Store,
  afterRevision: bigint,
  signal: AbortSignal,
  namespace?: string,
): AsyncIterator<StoreEvent> {
  const iterator = store
    .watch('pods', { afterRevision, signal, ...(namespace ? { namespace } : {}) })
    [Symbol.asyncIterator]();
  let first: Promise<IteratorResult<StoreEvent>> | undefined = iterator.next();
  first.catch(() => undefined);
  return {
    next: () => {
      const pending = first ?? iterator.next();
      first = undefined;
      return pending;
    },
  };
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('CachedStore', () => {
  storeConformance('CachedStore over MemoryStore', async () => {
    const inner = new MemoryStore({ name: 'behind-the-cache' });
    // caches started up front, so that the suite's watches are served from memory
    const store = new CachedStore(inner);
    await store.prime(CONFORMANCE_RESOURCES);
    return {
      store,
      endpoint: inner.endpoint,
      deadlineMs: 100,
      stopBackend: async () => inner.setAvailable(false),
      startBackend: async () => inner.setAvailable(true),
    };
  });

  test('however many watch a resource, the inner store sees one watch, and each watcher gets its own events', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner);
    const controller = new AbortController();
    try {
      const start = await store.currentRevision();
      const first = watchFrom(store, start, controller.signal);
      const a = await store.create(pod('a'), bytes('1'));
      assert.deepEqual(await take(first, 1), ['added a=1']);
      await store.create(pod('b', 'other'), bytes('2'));
      await store.update(pod('a'), bytes('3'), a.modRevision);
      // 200 more watchers: from the start, from after the first write, and in one namespace
      const watchers = Array.from({ length: 200 }, (_, i) =>
        i % 3 === 0
          ? {
              iterator: watchFrom(store, start, controller.signal),
              expect: ['added a=1', 'added b=2', 'modified a=3'],
            }
          : i % 3 === 1
            ? {
                iterator: watchFrom(store, a.modRevision, controller.signal),
                expect: ['added b=2', 'modified a=3'],
              }
            : { iterator: watchFrom(store, start, controller.signal, 'other'), expect: ['added b=2'] },
      );
      for (const { iterator, expect } of watchers)
        assert.deepEqual(await take(iterator, expect.length), expect);
      await store.delete(pod('a'));
      for (const { iterator } of watchers.filter((_, i) => i % 3 !== 2))
        assert.deepEqual(await take(iterator, 1), ['deleted a=3']);
      assert.equal(inner.watchesOpened, 1, 'one watch of pods on the inner store');
      assert.equal(store.cachedResources, 1);
    } finally {
      controller.abort();
      await store.close();
    }
  });

  test('a watch from before the window goes to the inner store; from inside it, it is replayed from memory', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner, { windowEvents: 5 });
    const controller = new AbortController();
    try {
      const start = await store.currentRevision();
      const follower = watchFrom(store, start, controller.signal);
      const written = [];
      for (let i = 0; i < 10; i++) written.push(await store.create(pod(`p${i}`), bytes(`${i}`)));
      await take(follower, 10);
      const recent = watchFrom(store, written[6]!.modRevision, controller.signal);
      assert.deepEqual(await take(recent, 3), ['added p7=7', 'added p8=8', 'added p9=9']);
      assert.equal(inner.watchesOpened, 1, 'served from the window');
      const old = watchFrom(store, written[1]!.modRevision, controller.signal);
      assert.deepEqual((await take(old, 8)).slice(0, 2), ['added p2=2', 'added p3=3']);
      assert.equal(inner.watchesOpened, 2, 'older than the window: the inner store');
    } finally {
      controller.abort();
      await store.close();
    }
  });

  test('a list not older than a revision is answered from memory: the same items, in byte order, per namespace', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner);
    const controller = new AbortController();
    try {
      for (const [name, namespace] of [
        ['b', 'web'],
        ['a', 'web-2'],
        ['c', 'web'],
        ['d', 'other'],
      ] as const)
        await store.create(pod(name, namespace), bytes(`${namespace}/${name}`));
      // the first such list starts the cache (and is answered by the store)
      const first = await store.list('pods', { minRevision: 0n });
      const written = await store.create(pod('e', 'web'), bytes('web/e'));
      await eventually('the cache has the last write', async () => {
        const cached = await store.list('pods', { minRevision: written.modRevision });
        return cached.items.length === 5;
      });
      const listsBefore = inner.watchesOpened;
      for (const namespace of [undefined, 'web', 'web-2', 'none']) {
        const cached = await store.list('pods', {
          minRevision: written.modRevision,
          ...(namespace ? { namespace } : {}),
        });
        const direct = await inner.list('pods', namespace ? { namespace } : {});
        assert.deepEqual(
          cached.items.map((item) => text(item.value)),
          direct.items.map((item) => text(item.value)),
        );
        assert.ok(cached.revision >= written.modRevision);
      }
      assert.equal(first.items.length, 4);
      assert.equal(inner.watchesOpened, listsBefore);
      // asked for more than the cache has: the store answers, never an older state
      const ahead = await store.list('pods', { minRevision: (await store.currentRevision()) + 0n });
      assert.equal(ahead.items.length, 5);
    } finally {
      controller.abort();
      await store.close();
    }
  });

  test("a list at a past revision inside the window is undone from memory and equals the store's", async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner);
    await store.prime(['pods']);
    const revisions: bigint[] = [await store.currentRevision()];
    let seed = 11;
    const random = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 300; i++) {
      const key = pod(`p${random(20)}`, random(2) ? 'a' : 'b');
      const existing = await store.get(key).catch(() => undefined);
      if (existing === undefined) await store.create(key, bytes(`v${i}`));
      else if (random(3) === 0) await store.delete(key);
      else await store.update(key, bytes(`v${i}`), existing.modRevision);
      revisions.push(await store.currentRevision());
    }
    await eventually('the cache has every write', async () => {
      const cached = await store.list('pods', { minRevision: revisions.at(-1)! });
      return cached.revision >= revisions.at(-1)!;
    });
    const watchesBefore = inner.watchesOpened;
    for (const revision of revisions.filter((_, i) => i % 7 === 0)) {
      for (const namespace of [undefined, 'a']) {
        const options = { revision, ...(namespace ? { namespace } : {}) };
        const cached = await store.list('pods', options);
        const direct = await inner.list('pods', options);
        assert.deepEqual(
          cached.items.map(
            (item) => `${item.key.namespace}/${item.key.name}=${text(item.value)}@${item.modRevision}`,
          ),
          direct.items.map(
            (item) => `${item.key.namespace}/${item.key.name}=${text(item.value)}@${item.modRevision}`,
          ),
          `at revision ${revision}`,
        );
      }
    }
    assert.equal(inner.watchesOpened, watchesBefore);
    await store.close();
  });

  test('a get that takes any state from minRevision on is answered by a running cache; others by the inner store', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner);
    const controller = new AbortController();
    try {
      await store.prime(['pods']);
      const applied = watchFrom(store, await store.currentRevision(), controller.signal);
      const created = await store.create(pod('a'), bytes('1'));
      await take(applied, 1);
      const before = inner.gets;
      const cached = await store.get(pod('a'), { minRevision: 0n });
      assert.equal(text(cached.value), '1');
      assert.equal(cached.modRevision, created.modRevision);
      await assert.rejects(store.get(pod('absent'), { minRevision: 0n }), NotFoundError);
      assert.equal(inner.gets, before, 'both from memory');
      await store.get(pod('a'));
      assert.equal(inner.gets, before + 1, 'a plain get reads the inner store');
      await store.get(pod('a'), { minRevision: created.modRevision + 100n });
      assert.equal(inner.gets, before + 2, 'a revision the cache has not reached: the inner store');
      await assert.rejects(store.get({ resource: 'nodes', name: 'n1' }, { minRevision: 0n }), NotFoundError);
      // what the caller wrote itself: answered while the cache has not caught up with it, never
      // when the cache has (its copy is as new or newer)
      const gets = inner.gets;
      const ahead = { ...created, value: bytes('mine'), modRevision: created.modRevision + 100n };
      assert.equal(await store.get(pod('a'), { minRevision: ahead.modRevision, known: ahead }), ahead);
      const behind = { ...created, value: bytes('stale') };
      assert.equal(
        text((await store.get(pod('a'), { minRevision: created.modRevision, known: behind })).value),
        '1',
      );
      assert.equal(inner.gets, gets, 'neither read the inner store');
    } finally {
      controller.abort();
      await store.close();
    }
  });

  test('lists by namespace and by index value return exactly what a scan would, in byte order, as objects come, move and go', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner, {
      indexes: { pods: { 'spec.nodeName': (value) => text(value).split('@')[1] || undefined } },
    });
    const controller = new AbortController();
    try {
      await store.prime(['pods']);
      // each write's event, taken before the lists: the cache has applied the write by then (a
      // list asking for a revision the cache has not reached goes to the inner store)
      const applied = watchFrom(store, await store.currentRevision(), controller.signal);
      // names around the namespace separator's byte ('-' and '0' sort either side of '/')
      const namespaces = ['a', 'a-b', 'a0', 'b'];
      const names = ['x', 'x-1', 'x.2', 'y', 'é', 'z'];
      const nodes = ['n1', 'n2', ''];
      const live = new Map<string, { namespace: string; name: string; node: string }>();
      let seed = 7;
      const random = (n: number): number => (seed = (seed * 48271) % 2147483647) % n;
      const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
      for (let step = 0; step < 400; step++) {
        const namespace = namespaces[random(namespaces.length)]!;
        const name = names[random(names.length)]!;
        const node = nodes[random(nodes.length)]!;
        const path = `${namespace}/${name}`;
        const key = pod(name, namespace);
        if (!live.has(path)) await store.create(key, bytes(`${name}@${node}`));
        else if (random(2) === 0) await store.delete(key);
        else await store.update(key, bytes(`${name}@${node}`), (await store.get(key)).modRevision);
        await take(applied, 1);
        if (!live.has(path)) live.set(path, { namespace, name, node });
        else if (
          (await inner.list('pods', {})).items.every(
            (item) => `${item.key.namespace}/${item.key.name}` !== path,
          )
        )
          live.delete(path);
        else live.set(path, { namespace, name, node });
        if (step % 20 !== 0) continue;
        const minRevision = await store.currentRevision();
        for (const namespace of [...namespaces, undefined]) {
          const listed = await store.list('pods', { minRevision, ...(namespace ? { namespace } : {}) });
          const want = [...live.keys()].filter(
            (p) => namespace === undefined || p.startsWith(`${namespace}/`),
          );
          assert.deepEqual(
            listed.items.map((item) => `${item.key.namespace}/${item.key.name}`),
            want.sort(byBytes),
            `namespace ${namespace ?? '(all)'} at step ${step}`,
          );
          for (const node of ['n1', 'n2']) {
            const indexed = await store.list('pods', {
              minRevision,
              ...(namespace ? { namespace } : {}),
              index: { name: 'spec.nodeName', value: node },
            });
            assert.deepEqual(
              indexed.items.map((item) => `${item.key.namespace}/${item.key.name}`),
              want.filter((p) => live.get(p)!.node === node).sort(byBytes),
              `node ${node} in namespace ${namespace ?? '(all)'} at step ${step}`,
            );
          }
        }
      }
    } finally {
      controller.abort();
      await store.close();
    }
  });

  test("an index hint: a node's watcher and list see only its pods, including pods moving on and off it", async () => {
    const inner = new InnerStore();
    // values are `what@node`; the index reads the node
    const store = new CachedStore(inner, {
      indexes: { pods: { 'spec.nodeName': (value) => text(value).split('@')[1] || undefined } },
    });
    const controller = new AbortController();
    try {
      await store.prime(['pods']);
      const start = await store.currentRevision();
      const n1 = store
        .watch('pods', {
          afterRevision: start,
          signal: controller.signal,
          index: { name: 'spec.nodeName', value: 'n1' },
        })
        [Symbol.asyncIterator]();
      const pending = n1.next();
      const all = watchFrom(store, start, controller.signal);
      await store.create(pod('a'), bytes('a@n1'));
      const b = await store.create(pod('b'), bytes('b@n2'));
      await store.create(pod('c'), bytes('c@'));
      await store.update(pod('b'), bytes('b@n1'), b.modRevision); // moves onto n1
      const a = await store.get(pod('a'));
      await store.update(pod('a'), bytes('a@n2'), a.modRevision); // moves off n1
      await store.delete(pod('c'));
      const first = await pending;
      const rest = await take(n1, 2);
      assert.deepEqual(
        [
          first.value.type === 'progress'
            ? ''
            : `${first.value.type} ${first.value.item.key.name}=${text(first.value.item.value)}`,
          ...rest,
        ],
        ['added a=a@n1', 'modified b=b@n1', 'modified a=a@n2'],
        'n1 sees its pods, the one arriving and the one leaving; not c, not b before it moved',
      );
      assert.equal((await take(all, 6)).length, 6, 'a watcher without the hint sees everything');
      const listed = await store.list('pods', {
        minRevision: await store.currentRevision(),
        index: { name: 'spec.nodeName', value: 'n1' },
      });
      assert.deepEqual(
        listed.items.map((item) => text(item.value)),
        ['b@n1'],
      );
      const unindexed = await store.list('pods', {
        minRevision: 0n,
        index: { name: 'metadata.uid', value: 'x' },
      });
      assert.equal(unindexed.items.length, 2, 'a hint for an index the cache does not keep is ignored');
    } finally {
      controller.abort();
      await store.close();
    }
  });

  test('a watch ended by return() or by its signal is no longer fed; one returned before its first read never started', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner);
    await store.prime(['pods']);
    const controller = new AbortController();
    try {
      const start = await store.currentRevision();
      const unread = store.watch('pods', { afterRevision: start })[Symbol.asyncIterator]();
      assert.deepEqual(await unread.return!(), { done: true, value: undefined });
      assert.deepEqual(await unread.next(), { done: true, value: undefined }, 'done for good');
      assert.equal(store.cachedWatchers, 0, 'a watch is opened by its first read, not before');

      const returned = store.watch('pods', { afterRevision: start })[Symbol.asyncIterator]();
      const aborted = watchFrom(store, start, controller.signal);
      const reading = returned.next();
      await eventually('both watchers registered', async () => store.cachedWatchers === 2);
      await store.create(pod('a'), bytes('1'));
      assert.equal(((await reading) as IteratorYieldResult<StoreEvent>).value.type, 'added');
      assert.deepEqual(await take(aborted, 1), ['added a=1']);

      await returned.return!();
      assert.equal(store.cachedWatchers, 1);
      assert.deepEqual(await returned.next(), { done: true, value: undefined });
      const pending = aborted.next();
      controller.abort();
      assert.deepEqual(
        await pending,
        { done: true, value: undefined },
        'a waiting read ends with the signal',
      );
      assert.equal(store.cachedWatchers, 0);
      await store.create(pod('b'), bytes('2')); // fed to no one
    } finally {
      controller.abort();
      await store.close();
    }
  });

  test('a watcher the cache ends itself lets go of its signal', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner, { maxWatchBacklog: { events: 2 } });
    await store.prime(['pods']);
    const slow = new AbortController();
    const lost = new AbortController();
    try {
      const unread = store
        .watch('pods', { afterRevision: await store.currentRevision(), signal: slow.signal })
        [Symbol.asyncIterator]();
      const first = unread.next(); // opens the watch and takes the first event, then reads no more
      await eventually('watching', async () => store.cachedWatchers === 1);
      assert.equal(getEventListeners(slow.signal, 'abort').length, 1);
      for (let i = 0; i < 6; i++) await store.create(pod(`p${i}`), bytes(`${i}`));
      await first;
      await eventually('the watcher ended', async () => store.cachedWatchers === 0);
      assert.equal(getEventListeners(slow.signal, 'abort').length, 0, 'ended for being behind');
      await assert.rejects(take(unread, 5), ResourceExhaustedError);

      const broken = watchFrom(store, await store.currentRevision(), lost.signal);
      await eventually('watching again', async () => store.cachedWatchers === 1);
      inner.breakWatches(new GoneError('watch pods: required revision has been compacted'));
      await assert.rejects(take(broken, 1), GoneError);
      assert.equal(getEventListeners(lost.signal, 'abort').length, 0, 'ended by the cache losing its place');
    } finally {
      slow.abort();
      lost.abort();
      await store.close();
    }
  });

  test('a watcher too slow to keep up is ended with the re-list signal; the others carry on', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner, { maxWatchBacklog: { events: 10 } });
    const controller = new AbortController();
    try {
      const start = await store.currentRevision();
      const slow = watchFrom(store, start, controller.signal);
      const fast = watchFrom(store, start, controller.signal);
      await store.create(pod('first'), bytes('0'));
      await take(slow, 1);
      await take(fast, 1);
      const reading = take(fast, 30);
      for (let i = 0; i < 30; i++) await store.create(pod(`p${i}`), bytes(`${i}`));
      assert.equal((await reading).length, 30);
      await assert.rejects(
        take(slow, 30),
        (err: unknown) => err instanceof ResourceExhaustedError && /watch again/.test(err.message),
      );
    } finally {
      controller.abort();
      await store.close();
    }
  });

  test('when the cache loses its place, its watchers are told to list again, and the next watch works', async () => {
    const inner = new InnerStore();
    const store = new CachedStore(inner);
    const controller = new AbortController();
    try {
      const watcher = watchFrom(store, await store.currentRevision(), controller.signal);
      await store.create(pod('a'), bytes('1'));
      await take(watcher, 1);
      inner.breakWatches(new GoneError('watch pods: required revision has been compacted'));
      await assert.rejects(
        take(watcher, 1),
        (err: unknown) => err instanceof GoneError && /list again/.test(err.message),
      );
      await eventually('the cache re-listed and watches again', async () => inner.watchesOpened === 2);
      const listed = await store.list('pods', { minRevision: 0n });
      const next = watchFrom(store, listed.revision, controller.signal);
      await store.create(pod('b'), bytes('2'));
      assert.deepEqual(await take(next, 1), ['added b=2']);
    } finally {
      controller.abort();
      await store.close();
    }
  });
});
