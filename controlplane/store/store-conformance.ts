/**
 * The one conformance suite for the Store contract (store.ts). Every implementation runs it from
 * its own test file with a factory:
 *
 *   storeConformance('EtcdStore', async () => ({ store, endpoint, deadlineMs, stopBackend, startBackend }));
 *
 * Each test gets a fresh fixture whose store sees no other test's objects. Tests run one after the
 * other (compaction and outages affect the whole backend).
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  AlreadyExistsError,
  ConflictError,
  GoneError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from '../../proto/errors.js';
import type { ObjectKey, Store, StoreEvent } from './store.js';

export interface StoreFixture {
  /** A store that sees nothing written by other fixtures. */
  store: Store;
  /** What an UnavailableError must name when the backend is down. */
  endpoint: string;
  /** The store's call deadline. */
  deadlineMs: number;
  /** Stops the backend, keeping its data. */
  stopBackend(): Promise<void>;
  /** Starts it again on the same data and address. */
  startBackend(): Promise<void>;
  /** Releases what the fixture holds (the store is closed by the suite). */
  dispose?(): Promise<void>;
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array): string => new TextDecoder().decode(value);
const pod = (name: string, namespace = 'default'): ObjectKey => ({ resource: 'pods', namespace, name });

/** Collects `count` events from a watch, failing after `timeoutMs`. */
async function collect(
  iterable: AsyncIterable<StoreEvent>,
  count: number,
  timeoutMs = 10_000,
): Promise<StoreEvent[]> {
  const events: StoreEvent[] = [];
  const iterator = iterable[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    while (events.length < count) {
      // An async generator queues return() behind a pending next(), so the timeout is a race.
      const next = await Promise.race([iterator.next(), timedOut]);
      if (next === 'timeout' || next.done) break;
      if (next.value.type !== 'progress') events.push(next.value);
    }
  } finally {
    clearTimeout(timer);
  }
  assert.equal(events.length, count, `expected ${count} events within ${timeoutMs} ms, got ${events.length}`);
  return events;
}

function summary(event: StoreEvent): string {
  if (event.type === 'progress') return `progress@${event.revision}`;
  return `${event.type} ${event.item.key.namespace ?? ''}/${event.item.key.name}=${text(event.item.value)}`;
}

async function eventually<T>(what: string, fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`${what}: still failing after ${timeoutMs} ms`, { cause: err });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export function storeConformance(name: string, makeFixture: () => Promise<StoreFixture>): void {
  describe(`Store conformance: ${name}`, () => {
    let current: StoreFixture | undefined;
    const fixture = async (): Promise<StoreFixture> => {
      current = await makeFixture();
      return current;
    };
    afterEach(async () => {
      if (current === undefined) return;
      const done = current;
      current = undefined;
      await done.startBackend();
      await done.store.close();
      await done.dispose?.();
    });

    test('create, then get; a second create is AlreadyExists; a missing get is NotFound', async () => {
      const { store } = await fixture();
      const created = await store.create(pod('a'), bytes('v1'));
      assert.equal(created.modRevision, created.createRevision);
      assert.ok(created.modRevision > 0n);
      const got = await store.get(pod('a'));
      assert.equal(text(got.value), 'v1');
      assert.equal(got.modRevision, created.modRevision);
      assert.deepEqual(got.key, pod('a'));
      await assert.rejects(store.create(pod('a'), bytes('v2')), AlreadyExistsError);
      await assert.rejects(store.get(pod('missing')), NotFoundError);
      const node = await store.create({ resource: 'nodes', name: 'n1' }, bytes('node'));
      assert.deepEqual((await store.get({ resource: 'nodes', name: 'n1' })).key, node.key);
    });

    test('update compares the revision: current wins, stale is Conflict, missing is NotFound', async () => {
      const { store } = await fixture();
      const created = await store.create(pod('a'), bytes('v1'));
      const updated = await store.update(pod('a'), bytes('v2'), created.modRevision);
      assert.ok(updated.modRevision > created.modRevision);
      assert.equal(updated.createRevision, created.createRevision);
      assert.equal(text((await store.get(pod('a'))).value), 'v2');
      await assert.rejects(store.update(pod('a'), bytes('v3'), created.modRevision), ConflictError);
      assert.equal(text((await store.get(pod('a'))).value), 'v2', 'a stale update changes nothing');
      await assert.rejects(store.update(pod('missing'), bytes('x'), updated.modRevision), NotFoundError);
      await assert.rejects(store.update(pod('a'), bytes('x'), 0n), InvalidArgumentError);
    });

    test('delete honours its precondition and returns the last value', async () => {
      const { store } = await fixture();
      const created = await store.create(pod('a'), bytes('v1'));
      const updated = await store.update(pod('a'), bytes('v2'), created.modRevision);
      await assert.rejects(store.delete(pod('a'), created.modRevision), ConflictError);
      const deleted = await store.delete(pod('a'), updated.modRevision);
      assert.equal(text(deleted.value), 'v2');
      assert.equal(deleted.modRevision, updated.modRevision);
      await assert.rejects(store.get(pod('a')), NotFoundError);
      await assert.rejects(store.delete(pod('a')), NotFoundError);
      await assert.rejects(store.delete(pod('a'), updated.modRevision), NotFoundError);
      await store.create(pod('b'), bytes('b'));
      assert.equal(text((await store.delete(pod('b'))).value), 'b');
    });

    test('bad keys and oversized values are InvalidArgument naming the field, and write nothing', async () => {
      const { store } = await fixture();
      await assert.rejects(
        store.create(pod('a/b'), bytes('x')),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'metadata.name',
      );
      await assert.rejects(
        store.create(pod('a', ''), bytes('x')),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'metadata.namespace',
      );
      await assert.rejects(
        store.create(pod('big'), new Uint8Array(2 * 1024 * 1024)),
        (err: unknown) => err instanceof InvalidArgumentError && /too large: \d+ bytes/.test(err.message),
      );
      await assert.rejects(store.get(pod('big')), NotFoundError);
      await assert.rejects(store.list('pods', { limit: 0 }), InvalidArgumentError);
      await assert.rejects(store.list('pods', { continue: 'garbage!' }), InvalidArgumentError);
    });

    test('list pages are all read at the revision of the first page', async () => {
      const { store } = await fixture();
      for (let i = 0; i < 7; i++) await store.create(pod(`p${i}`), bytes(`v${i}`));
      const first = await store.list('pods', { namespace: 'default', limit: 3 });
      assert.deepEqual(
        first.items.map((item) => item.key.name),
        ['p0', 'p1', 'p2'],
      );
      assert.ok(first.continue !== undefined);
      // Changes after the first page must not show in the later ones.
      await store.delete(pod('p4'));
      await store.create(pod('p9'), bytes('late'));
      const p5 = await store.get(pod('p5'));
      await store.update(pod('p5'), bytes('changed'), p5.modRevision);
      const names: string[] = first.items.map((item) => item.key.name);
      let token: string | undefined = first.continue;
      while (token !== undefined) {
        const page = await store.list('pods', { namespace: 'default', limit: 3, continue: token });
        assert.equal(page.revision, first.revision);
        names.push(...page.items.map((item) => `${item.key.name}=${text(item.value)}`.replace(/=v\d$/, '')));
        token = page.continue;
      }
      assert.deepEqual(names, ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
      const now = await store.list('pods', { namespace: 'default' });
      assert.equal(now.continue, undefined);
      assert.deepEqual(
        now.items.map((item) => item.key.name),
        ['p0', 'p1', 'p2', 'p3', 'p5', 'p6', 'p9'],
      );
      assert.ok(now.revision > first.revision);
      const past = await store.list('pods', { namespace: 'default', revision: first.revision });
      assert.equal(past.items.length, 7);
    });

    test('a namespace sees only itself, never a namespace that shares its first letters', async () => {
      const { store } = await fixture();
      await store.create(pod('a', 'web'), bytes('web'));
      await store.create(pod('a', 'web-2'), bytes('web-2'));
      await store.create(pod('b', 'webx'), bytes('webx'));
      await store.create({ resource: 'podtemplates', namespace: 'web', name: 't' }, bytes('other'));
      const web = await store.list('pods', { namespace: 'web' });
      assert.deepEqual(
        web.items.map((item) => text(item.value)),
        ['web'],
      );
      const all = await store.list('pods');
      assert.deepEqual(
        all.items.map((item) => text(item.value)),
        ['web-2', 'web', 'webx'],
        'ordered by the bytes of namespace/name',
      );
      const watch = new AbortController();
      const events = store.watch('pods', {
        namespace: 'web',
        afterRevision: web.revision,
        signal: watch.signal,
      });
      const seen = collect(events, 1);
      await store.create(pod('c', 'web-2'), bytes('web-2 late'));
      await store.create(pod('c', 'web'), bytes('web late'));
      assert.deepEqual((await seen).map(summary), ['added web/c=web late']);
      watch.abort();
      // A continue token is bound to its range.
      const paged = await store.list('pods', { limit: 1 });
      await assert.rejects(
        store.list('pods', { namespace: 'web', continue: paged.continue }),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'continue',
      );
    });

    test('watch replays history after a revision, then delivers live changes; deletes carry the last value', async () => {
      const { store } = await fixture();
      const start = await store.currentRevision();
      const a = await store.create(pod('a'), bytes('a1'));
      await store.update(pod('a'), bytes('a2'), a.modRevision);
      await store.create(pod('b'), bytes('b1'));
      const controller = new AbortController();
      const events = store.watch('pods', { afterRevision: start, signal: controller.signal });
      const iterator = events[Symbol.asyncIterator]();
      const replayed = await collect({ [Symbol.asyncIterator]: () => iterator }, 3);
      assert.deepEqual(replayed.map(summary), [
        'added default/a=a1',
        'modified default/a=a2',
        'added default/b=b1',
      ]);
      await store.delete(pod('a'));
      const b = await store.get(pod('b'));
      await store.update(pod('b'), bytes('b2'), b.modRevision);
      const live = await collect({ [Symbol.asyncIterator]: () => iterator }, 2);
      assert.deepEqual(live.map(summary), ['deleted default/a=a2', 'modified default/b=b2']);
      const deleted = live[0]!;
      assert.ok(deleted.type === 'deleted');
      assert.ok(deleted.revision > deleted.item.modRevision, 'the delete has its own revision');
      const revisions = [...replayed, ...live].map((event) =>
        event.type === 'deleted' ? event.revision : event.type === 'progress' ? 0n : event.item.modRevision,
      );
      assert.deepEqual(
        [...revisions].sort((x, y) => (x < y ? -1 : 1)),
        revisions,
        'in revision order',
      );
      controller.abort();
      assert.equal((await iterator.next()).done, true, 'an aborted watch ends');
    });

    test('concurrent creates of distinct keys all succeed, each is watched as its own event, and a resumed watch misses none', async () => {
      const { store } = await fixture();
      const start = await store.currentRevision();
      const names = Array.from({ length: 100 }, (_, i) => `c${i}`);
      const created = await Promise.all(names.map((name) => store.create(pod(name), bytes(name))));
      for (const [i, stored] of created.entries()) {
        assert.equal(stored.key.name, names[i]);
        assert.equal(stored.modRevision, stored.createRevision);
        assert.equal(text((await store.get(pod(names[i]!))).value), names[i]);
      }
      const controller = new AbortController();
      try {
        const events = await collect(
          store.watch('pods', { afterRevision: start, signal: controller.signal }),
          100,
        );
        assert.deepEqual(
          events.map(summary).sort(),
          names.map((name) => `added default/${name}=${name}`).sort(),
        );
        for (const event of events) {
          assert.ok(event.type === 'added');
          const mine = created.find((stored) => stored.key.name === event.item.key.name)!;
          assert.equal(
            event.item.modRevision,
            mine.modRevision,
            `${event.item.key.name}: the revision create returned`,
          );
        }
        // Exactly the last event of each revision says so: consumers resume only after those.
        for (const [i, event] of events.entries()) {
          assert.ok(event.type === 'added');
          const following = events[i + 1];
          const endsRevision =
            following === undefined ||
            (following.type === 'added' && following.item.modRevision !== event.item.modRevision);
          assert.equal(event.lastOfRevision, endsRevision, `${event.item.key.name}: lastOfRevision`);
        }
        // Resuming after any create's revision delivers exactly the creates of later revisions.
        const middle = created[50]!.modRevision;
        const later = created.filter((stored) => stored.modRevision > middle).length;
        if (later > 0) {
          const resumed = await collect(
            store.watch('pods', { afterRevision: middle, signal: controller.signal }),
            later,
          );
          assert.ok(resumed.every((event) => event.type === 'added' && event.item.modRevision > middle));
        }
      } finally {
        controller.abort();
      }
    });

    test('concurrent creates where some keys exist: exactly those callers get AlreadyExists, the rest succeed', async () => {
      const { store } = await fixture();
      await store.create(pod('taken-1'), bytes('old'));
      await store.create(pod('taken-2'), bytes('old'));
      const names = Array.from({ length: 40 }, (_, i) =>
        i === 7 ? 'taken-1' : i === 31 ? 'taken-2' : `free-${i}`,
      );
      // The same new key twice: one of the two wins.
      names.push('twice', 'twice');
      const results = await Promise.allSettled(
        names.map((name) => store.create(pod(name), bytes(`new-${name}`))),
      );
      for (const [i, result] of results.entries()) {
        const name = names[i]!;
        if (name.startsWith('taken-')) {
          assert.ok(
            result.status === 'rejected' && result.reason instanceof AlreadyExistsError,
            `${name}: ${String(result.status)}`,
          );
          assert.match((result.reason as Error).message, new RegExp(name));
        } else if (name !== 'twice') {
          assert.equal(
            result.status,
            'fulfilled',
            `${name}: ${result.status === 'rejected' ? String(result.reason) : ''}`,
          );
        }
      }
      const twice = results.slice(-2);
      assert.equal(twice.filter((result) => result.status === 'fulfilled').length, 1);
      assert.ok(
        twice.some((result) => result.status === 'rejected' && result.reason instanceof AlreadyExistsError),
      );
      assert.equal(text((await store.get(pod('taken-1'))).value), 'old', 'an existing object is left alone');
      assert.equal(text((await store.get(pod('free-8'))).value), 'new-free-8');
      assert.equal((await store.list('pods')).items.length, 41);
    });

    test('the conflict race: of N updaters from one revision exactly one wins', async () => {
      const { store } = await fixture();
      const created = await store.create(pod('contended'), bytes('0'));
      const writers = 16;
      const results = await Promise.allSettled(
        Array.from({ length: writers }, (_, i) =>
          store.update(pod('contended'), bytes(`writer-${i}`), created.modRevision),
        ),
      );
      const winners = results.filter((result) => result.status === 'fulfilled');
      const losers = results.filter((result) => result.status === 'rejected');
      assert.equal(winners.length, 1);
      assert.equal(losers.length, writers - 1);
      for (const loser of losers) assert.ok(loser.reason instanceof ConflictError, String(loser.reason));
      const winner = winners[0]!;
      assert.equal(text((await store.get(pod('contended'))).value), text(winner.value.value));
    });

    test('a watch survives a backend restart without losing or repeating an event', async () => {
      const { store, stopBackend, startBackend } = await fixture();
      const start = await store.currentRevision();
      const controller = new AbortController();
      const iterator = store
        .watch('pods', { afterRevision: start, signal: controller.signal })
        [Symbol.asyncIterator]();
      const events = (count: number): Promise<StoreEvent[]> =>
        collect({ [Symbol.asyncIterator]: () => iterator }, count, 20_000);
      await store.create(pod('before'), bytes('1'));
      assert.deepEqual((await events(1)).map(summary), ['added default/before=1']);
      await store.create(pod('before-unread'), bytes('2'));
      await stopBackend();
      await startBackend();
      await eventually('write after the restart', () => store.create(pod('after'), bytes('3')));
      await store.create(pod('after-2'), bytes('4'));
      assert.deepEqual((await events(3)).map(summary), [
        'added default/before-unread=2',
        'added default/after=3',
        'added default/after-2=4',
      ]);
      controller.abort();
    });

    test('a watch cut off in the middle of replaying history resumes where it stopped', async () => {
      const { store, stopBackend, startBackend } = await fixture();
      const start = await store.currentRevision();
      const total = 3000;
      const names = Array.from({ length: total }, (_, i) => `p${String(i).padStart(5, '0')}`);
      for (let i = 0; i < total; i += 100) {
        await Promise.all(names.slice(i, i + 100).map((name) => store.create(pod(name), bytes(name))));
      }
      const controller = new AbortController();
      const iterator = store
        .watch('pods', { afterRevision: start, signal: controller.signal })
        [Symbol.asyncIterator]();
      const first = await iterator.next();
      assert.ok(!first.done);
      // The backlog is far more than one response; cut the stream while it is being sent.
      await stopBackend();
      await startBackend();
      const rest = await collect({ [Symbol.asyncIterator]: () => iterator }, total - 1, 30_000);
      const seen = [first.value, ...rest].map((event) =>
        event.type === 'progress' ? '' : event.item.key.name,
      );
      assert.equal(new Set(seen).size, total, 'no event repeated');
      assert.deepEqual([...seen].sort(), names, 'no event lost');
      controller.abort();
    });

    test('compaction: a watch from a compacted revision and a stale continue token are Gone', async () => {
      const { store } = await fixture();
      for (let i = 0; i < 4; i++) await store.create(pod(`p${i}`), bytes(`v${i}`));
      const page = await store.list('pods', { limit: 2 });
      assert.ok(page.continue !== undefined);
      const before = page.revision - 2n;
      await store.create(pod('later'), bytes('x'));
      await store.compact(await store.currentRevision());
      await assert.rejects(store.list('pods', { limit: 2, continue: page.continue }), GoneError);
      await assert.rejects(store.list('pods', { revision: page.revision }), GoneError);
      await assert.rejects(collect(store.watch('pods', { afterRevision: before }), 1), GoneError);
      // The current revision is still watchable, and compacting again is harmless.
      await store.compact(await store.currentRevision());
      const fresh = await store.list('pods');
      const controller = new AbortController();
      const seen = collect(
        store.watch('pods', { afterRevision: fresh.revision, signal: controller.signal }),
        1,
      );
      await store.create(pod('fresh'), bytes('f'));
      assert.deepEqual((await seen).map(summary), ['added default/fresh=f']);
      controller.abort();
    });

    test('a watch from compacted history is Gone, and the watch already open and the next one still work', async () => {
      // etcd3 1.1.2 crashed the process here (uncaught "Failed to find watcher for
      // IWatchResponse") and left the other watches on its stream deaf.
      const { store } = await fixture();
      for (let i = 0; i < 4; i++) await store.create(pod(`p${i}`), bytes(`v${i}`));
      const controller = new AbortController();
      const open = collect(
        store.watch('pods', { afterRevision: await store.currentRevision(), signal: controller.signal }),
        1,
      );
      await store.compact(await store.currentRevision());
      await assert.rejects(
        collect(store.watch('configmaps', { afterRevision: 1n, signal: controller.signal }), 1),
        (err: unknown) => err instanceof GoneError && /compacted/.test(err.message),
      );
      const next = collect(
        store.watch('secrets', { afterRevision: await store.currentRevision(), signal: controller.signal }),
        1,
      );
      // Let etcd answer the cancel of the compacted watch before the writes.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await store.create(pod('after'), bytes('a'));
      await store.create({ resource: 'secrets', namespace: 'default', name: 's' }, bytes('s'));
      assert.deepEqual((await open).map(summary), ['added default/after=a']);
      assert.deepEqual((await next).map(summary), ['added default/s=s']);
      controller.abort();
    });

    test("a transaction writes every key at one revision, and watches see that revision's events", async () => {
      const { store } = await fixture();
      const a = await store.create(pod('a'), bytes('a1'));
      await store.create(pod('b'), bytes('b1'));
      const x = await store.create(pod('x', 'other'), bytes('x1'));
      const start = await store.currentRevision();
      const results = await store.transact([
        { type: 'create', key: pod('c'), value: bytes('c1') },
        { type: 'update', key: pod('a'), value: bytes('a2'), expectedModRevision: a.modRevision },
        { type: 'delete', key: pod('b') },
        {
          type: 'update',
          key: pod('x', 'other'),
          value: bytes('x2'),
          expectedModRevision: (await store.get(pod('x', 'other'))).modRevision,
          // what the writer read: the store need not look it up
          createRevision: x.createRevision,
        },
      ]);
      const revision = results[0]!.modRevision;
      assert.ok(revision > start);
      assert.deepEqual(
        results.map((stored) => [stored.key.name, text(stored.value)]),
        [
          ['c', 'c1'],
          ['a', 'a2'],
          ['b', 'b1'],
          ['x', 'x2'],
        ],
      );
      assert.equal(results[1]!.modRevision, revision);
      assert.equal(results[1]!.createRevision, a.createRevision);
      assert.equal(results[3]!.modRevision, revision);
      assert.equal(results[3]!.createRevision, x.createRevision);
      assert.equal(await store.currentRevision(), revision, 'one revision for all the writes');
      await assert.rejects(store.get(pod('b')), NotFoundError);
      assert.equal(text((await store.get(pod('a'))).value), 'a2');
      const controller = new AbortController();
      try {
        const events = await collect(
          store.watch('pods', { namespace: 'default', afterRevision: start, signal: controller.signal }),
          3,
        );
        assert.deepEqual(events.map(summary), [
          'added default/c=c1',
          'modified default/a=a2',
          'deleted default/b=b1',
        ]);
        assert.deepEqual(
          events.map((event) => event.type !== 'progress' && event.lastOfRevision),
          [false, false, true],
          'only the last event of the revision this watch sees says so',
        );
      } finally {
        controller.abort();
      }
    });

    test('a transaction whose condition fails writes nothing and says which key failed', async () => {
      const { store } = await fixture();
      const a = await store.create(pod('a'), bytes('a1'));
      await store.update(pod('a'), bytes('a2'), a.modRevision);
      const before = await store.currentRevision();
      await assert.rejects(
        store.transact([
          { type: 'create', key: pod('new'), value: bytes('n') },
          { type: 'update', key: pod('a'), value: bytes('a3'), expectedModRevision: a.modRevision },
        ]),
        (err: unknown) => err instanceof ConflictError && /pods default\/a\b/.test(err.message),
      );
      await assert.rejects(
        store.transact([
          { type: 'create', key: pod('new'), value: bytes('n') },
          { type: 'create', key: pod('a'), value: bytes('x') },
        ]),
        (err: unknown) => err instanceof AlreadyExistsError && /default\/a\b/.test(err.message),
      );
      await assert.rejects(
        store.transact([
          { type: 'create', key: pod('new'), value: bytes('n') },
          { type: 'delete', key: pod('gone') },
        ]),
        (err: unknown) => err instanceof NotFoundError && /default\/gone/.test(err.message),
      );
      assert.equal(await store.currentRevision(), before, 'nothing was written');
      await assert.rejects(store.get(pod('new')), NotFoundError);
      assert.equal(text((await store.get(pod('a'))).value), 'a2');
      for (const writes of [
        [],
        [
          { type: 'delete' as const, key: pod('a') },
          { type: 'delete' as const, key: pod('a') },
        ],
        Array.from({ length: 129 }, (_, i) => ({
          type: 'create' as const,
          key: pod(`many-${i}`),
          value: bytes('m'),
        })),
        [{ type: 'create' as const, key: pod('bad/name'), value: bytes('b') }],
      ]) {
        await assert.rejects(store.transact(writes), InvalidArgumentError, `${writes.length} writes`);
      }
      assert.equal(await store.currentRevision(), before, 'nothing was written');
    });

    test('keys written with a lease go when it is revoked or expires; keepAlive holds it; watches see the deletes', async () => {
      const { store } = await fixture();
      const revoked = await store.grantLease(30);
      assert.ok(revoked.ttlSeconds >= 30);
      await store.create(pod('leased'), bytes('l'), { lease: revoked.id });
      const detached = await store.create(pod('detached'), bytes('d'), { lease: revoked.id });
      // a write without the lease detaches the key from it, as in etcd
      await store.update(pod('detached'), bytes('d2'), detached.modRevision);
      await store.create(pod('plain'), bytes('p'));
      const controller = new AbortController();
      const start = await store.currentRevision();
      const seen = collect(store.watch('pods', { afterRevision: start, signal: controller.signal }), 1);
      await store.revokeLease(revoked.id);
      assert.deepEqual((await seen).map(summary), ['deleted default/leased=l']);
      await assert.rejects(store.get(pod('leased')), NotFoundError);
      assert.equal(text((await store.get(pod('detached'))).value), 'd2');
      await store.get(pod('plain'));
      await assert.rejects(store.keepAlive(revoked.id), NotFoundError);
      await assert.rejects(store.revokeLease(revoked.id), NotFoundError);
      await assert.rejects(store.create(pod('orphan'), bytes('o'), { lease: revoked.id }), NotFoundError);
      await assert.rejects(store.grantLease(0), InvalidArgumentError);

      const expiring = await store.grantLease(1);
      const ttlMs = expiring.ttlSeconds * 1000;
      await store.create(pod('heartbeat'), bytes('h'), { lease: expiring.id });
      const began = Date.now();
      // kept alive past its TTL: still there
      while (Date.now() - began < ttlMs * 1.5) {
        await new Promise((resolve) => setTimeout(resolve, ttlMs / 4));
        await store.keepAlive(expiring.id);
      }
      await store.get(pod('heartbeat'));
      const expiredAt = await eventually('the key of an expired lease is deleted', async () => {
        await assert.rejects(store.get(pod('heartbeat')), NotFoundError);
        return Date.now();
      });
      assert.ok(expiredAt - began >= ttlMs * 1.5, 'not before the TTL after the last keepAlive');
      controller.abort();
    });

    test('with the backend down calls fail within the deadline naming it, and recover without a new store', async () => {
      const { store, endpoint, deadlineMs, stopBackend, startBackend } = await fixture();
      await store.create(pod('a'), bytes('a'));
      await store.health();
      await stopBackend();
      for (const call of [
        () => store.get(pod('a')),
        () => store.create(pod('b'), bytes('b')),
        () => store.list('pods'),
        () => store.health(),
      ]) {
        const began = Date.now();
        await assert.rejects(
          call(),
          (err: unknown) =>
            err instanceof UnavailableError &&
            err.message.includes(endpoint) &&
            (err.endpoint ?? '').includes(endpoint),
        );
        const took = Date.now() - began;
        assert.ok(took <= deadlineMs + 1000, `failed after ${took} ms, deadline ${deadlineMs} ms`);
      }
      const began = Date.now();
      const concurrent = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => store.create(pod(`down-${i}`), bytes('x'))),
      );
      const took = Date.now() - began;
      for (const result of concurrent) {
        assert.ok(
          result.status === 'rejected' &&
            result.reason instanceof UnavailableError &&
            result.reason.message.includes(endpoint),
          `every concurrent create fails as Unavailable: ${result.status === 'rejected' ? String(result.reason) : 'fulfilled'}`,
        );
      }
      assert.ok(
        took <= deadlineMs + 1000,
        `concurrent creates failed after ${took} ms, deadline ${deadlineMs} ms`,
      );
      await startBackend();
      const got = await eventually('get after the backend returned', () => store.get(pod('a')));
      assert.equal(text(got.value), 'a');
      await store.health();
    });
  });
}
