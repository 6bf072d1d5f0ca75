import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GoneError, ResourceExhaustedError, UnavailableError } from '../../proto/errors.js';
import type { StoreEvent } from '../../controlplane/store/store.js';
import { withEtcd } from '../harness/servers.js';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import { storeConformance } from '../../controlplane/store/store-conformance.js';
import { startProxy } from '../../controlplane/store/tcp-proxy.js';

/** Waits until the kernel shows `pid` stopped: SIGSTOP takes effect shortly after kill returns. */
async function stopped(pid: number): Promise<void> {
  const deadline = Date.now() + 2000;
  while (readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'T') {
    if (Date.now() > deadline) throw new Error(`etcd (pid ${pid}) did not stop within 2 s of SIGSTOP`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('EtcdStore against a real etcd', () => {
  const etcd = withEtcd();
  let fixtures = 0;
  const deadlineMs = 2000;
  storeConformance('EtcdStore', async () => {
    const server = etcd();
    return {
      store: new EtcdStore({
        endpoints: [server.endpoint],
        prefix: `/conformance-${++fixtures}`,
        timeoutMs: deadlineMs,
      }),
      endpoint: server.endpoint,
      deadlineMs,
      stopBackend: () => server.stop(),
      startBackend: () => server.start(),
    };
  });

  test('an etcd that hangs (SIGSTOP) fails calls at the deadline, and they work again after SIGCONT', async () => {
    const server = etcd();
    const store = new EtcdStore({ endpoints: [server.endpoint], prefix: '/hung', timeoutMs: 1000 });
    const key = { resource: 'pods', namespace: 'a', name: 'b' };
    try {
      await store.create(key, new Uint8Array([1]));
      process.kill(server.process.pid, 'SIGSTOP');
      try {
        await stopped(server.process.pid);
        for (const call of [() => store.get(key), () => store.health()]) {
          const began = Date.now();
          await assert.rejects(
            call(),
            (err: unknown) => err instanceof UnavailableError && err.endpoint === server.endpoint,
          );
          assert.ok(Date.now() - began < 2000, `took ${Date.now() - began} ms`);
        }
        // Creates that queue behind a hung one still fail within their own deadline.
        const timedCreate = async (name: string): Promise<number> => {
          const began = Date.now();
          await assert.rejects(
            store.create({ resource: 'pods', namespace: 'a', name }, new Uint8Array([2])),
            (err: unknown) => err instanceof UnavailableError && err.message.includes(name),
          );
          return Date.now() - began;
        };
        const first = timedCreate('hung-0');
        await new Promise((resolve) => setTimeout(resolve, 400));
        const took = await Promise.all([
          first,
          ...Array.from({ length: 5 }, (_, i) => timedCreate(`hung-${i + 1}`)),
        ]);
        assert.ok(Math.max(...took) < 1500, `creates failed after ${took.join(', ')} ms, deadline 1000 ms`);
      } finally {
        process.kill(server.process.pid, 'SIGCONT');
      }
      assert.deepEqual([...(await store.get(key)).value], [1]);
    } finally {
      await store.close();
    }
  });

  test('concurrent creates are grouped into transactions of at most maxCreatesPerTxn keys and the request byte limit', async () => {
    const server = etcd();
    const byCount = new EtcdStore({
      endpoints: [server.endpoint],
      prefix: '/group-count',
      maxCreatesPerTxn: 4,
    });
    const byBytes = new EtcdStore({
      endpoints: [server.endpoint],
      prefix: '/group-bytes',
      maxRequestBytes: 4096,
    });
    const keysPerRevision = (created: { modRevision: bigint }[]): number[] => {
      const counts = new Map<bigint, number>();
      for (const stored of created) counts.set(stored.modRevision, (counts.get(stored.modRevision) ?? 0) + 1);
      return [...counts.values()];
    };
    try {
      const small = await Promise.all(
        Array.from({ length: 13 }, (_, i) =>
          byCount.create({ resource: 'pods', namespace: 'a', name: `p${i}` }, new Uint8Array([i])),
        ),
      );
      const counts = keysPerRevision(small);
      assert.ok(Math.max(...counts) <= 4, `keys per transaction: ${counts.join(', ')}`);
      assert.ok(Math.max(...counts) > 1, `creates that waited were grouped: ${counts.join(', ')}`);
      assert.equal((await byCount.list('pods')).items.length, 13);

      // 1,500-byte values: two fit a 4,096-byte request, three do not.
      const large = await Promise.all(
        Array.from({ length: 9 }, (_, i) =>
          byBytes.create({ resource: 'pods', namespace: 'a', name: `p${i}` }, new Uint8Array(1500).fill(i)),
        ),
      );
      const largeCounts = keysPerRevision(large);
      assert.ok(Math.max(...largeCounts) === 2, `keys per transaction: ${largeCounts.join(', ')}`);
      const stored = await byBytes.get({ resource: 'pods', namespace: 'a', name: 'p5' });
      assert.deepEqual([...stored.value], [...new Uint8Array(1500).fill(5)]);
      assert.throws(
        () => new EtcdStore({ endpoints: [server.endpoint], maxCreatesPerTxn: 0 }),
        /maxCreatesPerTxn/,
      );

      const ungrouped = new EtcdStore({
        endpoints: [server.endpoint],
        prefix: '/group-none',
        maxCreatesPerTxn: 1,
      });
      try {
        const each = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            ungrouped.create({ resource: 'pods', namespace: 'a', name: `p${i}` }, new Uint8Array([i])),
          ),
        );
        assert.deepEqual(keysPerRevision(each), Array(8).fill(1));
      } finally {
        await ungrouped.close();
      }
    } finally {
      await byCount.close();
      await byBytes.close();
    }
  });

  test('an answer over the response limit is ResourceExhausted and says to page; pages fit', async () => {
    const store = new EtcdStore({
      endpoints: [etcd().endpoint],
      prefix: '/big-list',
      maxResponseBytes: 64 * 1024,
    });
    try {
      const value = new Uint8Array(1024);
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          store.create({ resource: 'pods', namespace: 'a', name: `p${i}` }, value),
        ),
      );
      await assert.rejects(
        store.list('pods'),
        (err: unknown) => err instanceof ResourceExhaustedError && /list in pages/.test(err.message),
      );
      const page = await store.list('pods', { limit: 20 });
      assert.equal(page.items.length, 20);
    } finally {
      await store.close();
    }
  });

  test('a watch that resumes after an outage into compacted history is Gone; the process and the other watches carry on', async () => {
    // The check before opening a watch cannot cover this: the resume revision is compacted while
    // the watch is already open. etcd cancels it on reconnect, and etcd3 1.1.2 threw an uncaught
    // "Failed to find watcher for IWatchResponse" when the cancel was answered. The watching store
    // reaches etcd through a proxy, so its outage is the proxy's while etcd keeps serving.
    const server = etcd();
    const proxy = await startProxy(server.endpoint);
    const prefix = '/resume-compacted';
    const watching = new EtcdStore({
      endpoints: [proxy.endpoint],
      prefix,
      timeoutMs: 1000,
      maxWatchBackoffMs: 200,
    });
    const direct = new EtcdStore({ endpoints: [server.endpoint], prefix });
    const controller = new AbortController();
    const key = (resource: string, name: string) => ({ resource, namespace: 'default', name });
    try {
      const resuming = watching
        .watch('pods', { afterRevision: await direct.currentRevision(), signal: controller.signal })
        [Symbol.asyncIterator]();
      await direct.create(key('pods', 'before'), new Uint8Array([1]));
      assert.equal((await nextChange(resuming)).type, 'added');
      await proxy.block();
      await direct.create(key('pods', 'during'), new Uint8Array([2]));
      // Compaction keeps its own revision: one more write puts the resume point before it.
      await direct.create(key('configmaps', 'during'), new Uint8Array([2]));
      await direct.compact(await direct.currentRevision());
      // Opened during the outage, so it shares the reconnection with the compacted one.
      const other = watching
        .watch('secrets', { afterRevision: await direct.currentRevision(), signal: controller.signal })
        [Symbol.asyncIterator]();
      const otherEvent = nextChange(other);
      otherEvent.catch(() => undefined); // awaited below; not unhandled if an assertion fails first
      await proxy.unblock();
      await assert.rejects(
        nextChange(resuming),
        (err: unknown) => err instanceof GoneError && /compacted/.test(err.message),
      );
      // Let etcd answer anything still in flight for the cancelled watch before the write.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await direct.create(key('secrets', 's'), new Uint8Array([3]));
      const event = await otherEvent;
      assert.ok(event.type === 'added' && event.item.key.name === 's');
    } finally {
      controller.abort();
      await watching.close();
      await direct.close();
      await proxy.close();
    }
  });

  test('with two endpoints and either one unreachable, every call is served by the other; with both unreachable, calls fail Unavailable naming both', async () => {
    // Two proxies to one etcd stand for two endpoints of one cluster: either can refuse
    // connections while etcd keeps serving through the other. etcd3 picks each call's endpoint at
    // random, so a store that did not move on to the next endpoint would fail about half of the
    // 40 calls made while one is down.
    const server = etcd();
    const first = await startProxy(server.endpoint);
    const second = await startProxy(server.endpoint);
    const prefix = '/failover';
    const store = new EtcdStore({ endpoints: [first.endpoint, second.endpoint], prefix, timeoutMs: 2000 });
    const direct = new EtcdStore({ endpoints: [server.endpoint], prefix });
    try {
      for (const [down, up] of [
        [first, second],
        [second, first],
      ] as const) {
        await down.block();
        try {
          for (let i = 0; i < 10; i++) {
            const key = {
              resource: 'pods',
              namespace: 'a',
              name: `${up === first ? 'first' : 'second'}-${i}`,
            };
            const created = await store.create(key, new Uint8Array([i]));
            const updated = await store.update(key, new Uint8Array([i, i]), created.modRevision);
            assert.deepEqual([...(await store.get(key)).value], [i, i]);
            await store.health();
            // Written to etcd itself, not only answered: a client of etcd alone reads the update.
            const stored = await direct.get(key);
            assert.equal(stored.modRevision, updated.modRevision);
            assert.deepEqual([...stored.value], [i, i]);
          }
        } finally {
          await down.unblock();
        }
      }
      await first.block();
      await second.block();
      const began = Date.now();
      await assert.rejects(
        store.get({ resource: 'pods', namespace: 'a', name: 'first-0' }),
        (err: unknown) =>
          err instanceof UnavailableError && err.endpoint === `${first.endpoint},${second.endpoint}`,
      );
      assert.ok(Date.now() - began < 2500, `failed after ${Date.now() - began} ms, deadline 2000 ms`);
    } finally {
      await store.close();
      await direct.close();
      await first.close();
      await second.close();
    }
  });

  test('a watcher that falls more than the backlog limit behind is ended with ResourceExhausted, and resumes from what it took', async () => {
    const server = etcd();
    const store = new EtcdStore({
      endpoints: [server.endpoint],
      prefix: '/backlog',
      maxWatchBacklog: { events: 5 },
    });
    const key = (i: number) => ({ resource: 'pods', namespace: 'a', name: `p${i}` });
    const abort = new AbortController();
    try {
      const start = await store.currentRevision();
      const iterator = store
        .watch('pods', { afterRevision: start, signal: abort.signal })
        [Symbol.asyncIterator]();
      await store.create(key(0), new Uint8Array([0]));
      const taken = await nextChange(iterator);
      assert.equal(taken.type, 'added');
      // Each create is its own watch response; the consumer takes none of them.
      for (let i = 1; i <= 20; i++) await store.create(key(i), new Uint8Array([i]));
      await new Promise((resolve) => setTimeout(resolve, 200));
      await assert.rejects(
        (async () => {
          for (;;) if ((await iterator.next()).done) return;
        })(),
        (err: unknown) =>
          err instanceof ResourceExhaustedError &&
          /fell more than 5 events/.test(err.message) &&
          /watch again/.test(err.message),
      );
      const resumed = store
        .watch('pods', {
          afterRevision: taken.type === 'added' ? taken.item.modRevision : 0n,
          signal: abort.signal,
        })
        [Symbol.asyncIterator]();
      const names: string[] = [];
      while (names.length < 20) {
        const event = await nextChange(resumed);
        if (event.type !== 'progress') names.push(event.item.key.name);
      }
      assert.deepEqual(
        names,
        Array.from({ length: 20 }, (_, i) => `p${i + 1}`),
      );
    } finally {
      abort.abort();
      await store.close();
    }
  });
});

/** The next event that is not a bookmark, failing after `timeoutMs`. */
async function nextChange(iterator: AsyncIterator<StoreEvent>, timeoutMs = 15_000): Promise<StoreEvent> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no watch event within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), timedOut]);
      if (next.done) throw new Error('the watch ended without an event');
      if (next.value.type !== 'progress') return next.value;
    }
  } finally {
    clearTimeout(timer);
  }
}
