import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MemoryStore } from './memory-store.js';
import { Informer, type InformerChange } from '../../proto/informer/informer.js';
import { storeSource } from './store-source.js';
import type { ObjectKey, Store, StoreEvent, WatchOptions } from './store.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const decode = (value: Uint8Array): string => {
  const text = new TextDecoder().decode(value);
  if (text === 'undecodable') throw new Error('not an object');
  return text;
};
const pod = (name: string, namespace = 'default'): ObjectKey => ({ resource: 'pods', namespace, name });

async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A logger whose lines the test can read. */
function capturedLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

/**
 * The real store, with watches held back until `release()`: lets the test compact past the
 * revision an informer is about to watch from, which a live watch never falls behind otherwise.
 */
function withHeldWatches(store: Store): { store: Store; release(): void } {
  let release!: () => void;
  let gate = new Promise<void>((resolve) => (release = resolve));
  const held: Store = Object.create(store) as Store;
  held.watch = (resource: string, options: WatchOptions): AsyncIterable<StoreEvent> => ({
    async *[Symbol.asyncIterator]() {
      await gate;
      yield* store.watch(resource, options);
    },
  });
  return {
    store: held,
    release: () => {
      release();
      gate = Promise.resolve();
    },
  };
}

describe('Informer', () => {
  const open: { stop(): Promise<void> }[] = [];
  const newStore = (): MemoryStore => {
    const store = new MemoryStore();
    open.push({ stop: () => store.close() });
    return store;
  };
  afterEach(async () => {
    for (const item of open.reverse()) await item.stop();
    open.length = 0;
  });

  test('lists in pages, then follows changes; handlers get keys; resync replays the cache', async () => {
    const store = newStore();
    for (let i = 0; i < 5; i++) await store.create(pod(`p${i}`), bytes(`v${i}`));
    await store.create(pod('other-ns', 'kube'), bytes('x'));
    await store.create(pod('broken'), bytes('undecodable'));
    const { logger, lines } = capturedLogger();
    const informer = new Informer({
      source: storeSource({ store, resource: 'pods', namespace: 'default', decode }),
      pageSize: 2,
      resyncIntervalMs: 200,
      logger,
    });
    const seen: [string, InformerChange, string | undefined][] = [];
    informer.onChange((key, change, last) => {
      if (change !== 'resync') seen.push([key, change, last?.object]);
    });
    let resyncs = 0;
    informer.onChange((_key, change) => {
      if (change === 'resync') resyncs++;
    });
    open.push(informer);
    informer.start();
    await informer.waitForSync();
    assert.deepEqual(
      informer
        .list()
        .map((cached) => cached.object)
        .sort(),
      ['v0', 'v1', 'v2', 'v3', 'v4'],
    );
    assert.ok(
      lines.some((line) => line.includes('cannot decode stored object') && line.includes('default/broken')),
    );
    assert.equal(seen.length, 5);
    seen.length = 0;

    const p1 = await store.get(pod('p1'));
    await store.update(pod('p1'), bytes('v1b'), p1.modRevision);
    await store.delete(pod('p2'));
    const created = await store.create(pod('p9'), bytes('v9'));
    await until('the informer caught up', () => informer.revision >= created.modRevision);
    assert.deepEqual(seen, [
      ['default/p1', 'modified', 'v1'], // the object before the change
      ['default/p2', 'deleted', 'v2'],
      ['default/p9', 'added', undefined],
    ]);
    assert.equal(informer.get('default/p1')?.object, 'v1b');
    assert.equal(informer.get('default/p2'), undefined);
    assert.equal(informer.get('default/p9')?.modRevision, created.modRevision);
    await until('a resync ran', () => resyncs >= 5);
    assert.equal(informer.relists, 0);
  });

  test('a compacted watch revision re-lists, says so in a log line, and misses no change', async () => {
    const base = newStore();
    const { store, release } = withHeldWatches(base);
    await base.create(pod('stays'), bytes('s1'));
    await base.create(pod('changes'), bytes('c1'));
    await base.create(pod('goes'), bytes('g1'));
    const { logger, lines } = capturedLogger();
    const informer = new Informer({ source: storeSource({ store, resource: 'pods', decode }), logger });
    const seen: string[] = [];
    informer.onChange((key, change) => seen.push(`${change} ${key}`));
    open.push(informer);
    informer.start();
    await informer.waitForSync();
    seen.length = 0;
    const listedAt = informer.revision;

    // While the informer's watch is held back, history after its revision is changed and compacted.
    const changes = await base.get(pod('changes'));
    await base.update(pod('changes'), bytes('c2'), changes.modRevision);
    await base.delete(pod('goes'));
    await base.create(pod('new'), bytes('n1'));
    await base.compact(await base.currentRevision());
    release();

    await until(
      'the informer re-listed',
      () => informer.relists >= 1 && informer.get('default/new') !== undefined,
    );
    assert.ok(informer.revision > listedAt);
    assert.ok(
      lines.some((line) => line.includes('watch revision compacted, re-listing')),
      `log lines: ${lines.join('')}`,
    );
    assert.deepEqual(seen.sort(), ['added default/new', 'deleted default/goes', 'modified default/changes']);
    assert.deepEqual(
      informer
        .list()
        .map((cached) => `${cached.key.split('/').pop()}=${cached.object}`)
        .sort(),
      ['changes=c2', 'new=n1', 'stays=s1'],
    );

    // And it keeps watching after the re-list.
    const late = await base.create(pod('late'), bytes('l1'));
    await until('the late change arrived', () => informer.revision >= late.modRevision);
    assert.equal(informer.get('default/late')?.object, 'l1');
  });
});
