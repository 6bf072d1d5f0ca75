import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundError } from '../../../proto/errors.js';
import type { ConfigMap, Namespace, Pod } from '../../../proto/gen/types.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { decodeObject } from '../../../proto/objects.js';
import { ApiHandlers } from '../../api/handlers.js';
import { Informer } from '../../../proto/informer/informer.js';
import { storeSource } from '../../store/store-source.js';
import { MemoryStore } from '../../store/memory-store.js';
import { NamespaceController } from './namespace-controller.js';

const log = componentLogger('namespace-controller-test');

const namespace = (name: string): Namespace => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name },
  spec: {},
});
const configMap = (name: string, ns: string): ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: ns },
  data: { a: '1' },
});
const heldPod = (name: string, ns: string): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, finalizers: ['example.com/hold'] },
  spec: { containers: [{ name: 'c', image: 'web:1' }] },
});

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function exists(handlers: ApiHandlers, kind: string, ns: string, name: string): Promise<boolean> {
  try {
    await handlers.get(kind, ns, name);
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

function setUp(): {
  handlers: ApiHandlers;
  informer: Informer<Namespace>;
  controller: NamespaceController;
  store: MemoryStore;
} {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  const informer = new Informer<Namespace>({
    source: storeSource({
      store,
      resource: 'namespaces',
      decode: (bytes) => decodeObject('Namespace', bytes),
    }),
    logger: log,
  });
  const controller = new NamespaceController({ handlers, namespaces: informer, log, resyncMs: 20 });
  return { handlers, informer, controller, store };
}

describe('NamespaceController', () => {
  test('deletes what is in a marked namespace, waits for finalizers, then removes the namespace; others are untouched', async () => {
    const { handlers, informer, controller, store } = setUp();
    try {
      await handlers.ensureSystemObjects();
      for (const name of ['doomed', 'kept']) await handlers.create(namespace(name));
      await handlers.create(configMap('cm', 'doomed'));
      await handlers.create(heldPod('held', 'doomed'));
      await handlers.create(configMap('cm', 'kept'));
      informer.start();
      await informer.waitForSync();
      controller.start();

      await handlers.delete('Namespace', '', 'doomed');
      await until(
        'the plain object is gone',
        async () => !(await exists(handlers, 'ConfigMap', 'doomed', 'cm')),
      );
      const held = (await handlers.get('Pod', 'doomed', 'held')).object as Pod;
      assert.ok(held.metadata.deletionTimestamp, 'the held pod is marked, not gone');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(await exists(handlers, 'Namespace', '', 'doomed'), 'the namespace waits for its contents');

      await handlers.update({ ...held, metadata: { ...held.metadata, finalizers: [] } });
      await until(
        'the namespace is removed',
        async () => !(await exists(handlers, 'Namespace', '', 'doomed')),
      );
      assert.ok(await exists(handlers, 'ConfigMap', 'kept', 'cm'));
      assert.ok(await exists(handlers, 'Namespace', '', 'kept'));
    } finally {
      await controller.stop();
      await informer.stop();
      await store.close();
    }
  });

  test('a deletion begun before the controller started (a restart) is finished', async () => {
    const { handlers, informer, controller, store } = setUp();
    try {
      await handlers.ensureSystemObjects();
      await handlers.create(namespace('left'));
      await handlers.create(configMap('cm', 'left'));
      await handlers.delete('Namespace', '', 'left');
      informer.start();
      await informer.waitForSync();
      controller.start();
      await until('the namespace is removed', async () => !(await exists(handlers, 'Namespace', '', 'left')));
      assert.equal(await exists(handlers, 'ConfigMap', 'left', 'cm'), false);
    } finally {
      await controller.stop();
      await informer.stop();
      await store.close();
    }
  });
});
