import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceExhaustedError } from '../../proto/errors.js';
import { MemoryStore } from './memory-store.js';
import { storeConformance } from './store-conformance.js';

describe('MemoryStore', () => {
  let fixtures = 0;
  storeConformance('MemoryStore', async () => {
    const store = new MemoryStore({ name: `conformance-${++fixtures}` });
    return {
      store,
      endpoint: store.endpoint,
      deadlineMs: 100,
      stopBackend: async () => store.setAvailable(false),
      startBackend: async () => store.setAvailable(true),
    };
  });

  test('a watcher that falls too far behind fails with the re-list signal instead of growing', async () => {
    const store = new MemoryStore({ maxWatchBacklog: { events: 5 } });
    const controller = new AbortController();
    const iterator = store
      .watch('pods', { afterRevision: await store.currentRevision(), signal: controller.signal })
      [Symbol.asyncIterator]();
    const first = iterator.next();
    for (let i = 0; i < 20; i++)
      await store.create({ resource: 'pods', namespace: 'a', name: `p${i}` }, new Uint8Array(1));
    assert.equal((await first).done, false);
    await assert.rejects(
      (async () => {
        for (;;) if ((await iterator.next()).done) return;
      })(),
      (err: unknown) =>
        err instanceof ResourceExhaustedError &&
        /watch again from the last resourceVersion/.test(err.message),
    );
    controller.abort();
    await store.close();
  });
});
