import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceExhaustedError, UnavailableError } from '../../proto/errors.js';
import { withEtcd } from '../../test/harness/servers.js';
import { EtcdStore } from './etcd-store.js';
import { storeConformance } from './store-conformance.js';

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
        for (const call of [() => store.get(key), () => store.health()]) {
          const began = Date.now();
          await assert.rejects(
            call(),
            (err: unknown) => err instanceof UnavailableError && err.endpoint === server.endpoint,
          );
          assert.ok(Date.now() - began < 2000, `took ${Date.now() - began} ms`);
        }
      } finally {
        process.kill(server.process.pid, 'SIGCONT');
      }
      assert.deepEqual([...(await store.get(key)).value], [1]);
    } finally {
      await store.close();
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

  test('with several endpoints a dead one is skipped', async () => {
    const dead = 'http://127.0.0.1:1';
    const store = new EtcdStore({ endpoints: [dead, etcd().endpoint], prefix: '/failover' });
    try {
      for (let i = 0; i < 6; i++) await store.health();
    } finally {
      await store.close();
    }
  });
});
