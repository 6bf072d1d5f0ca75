/**
 * Every namespace has a `default` ServiceAccount (issue 9, item 15): the API server makes it with
 * the namespace (the Namespace strategy's companions), makes it again at start-up where it is
 * missing, and the namespace controller deletes it with the namespace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundError } from '../../../proto/errors.js';
import type { Namespace, ServiceAccount } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { NamespaceController } from '../../controllers/namespace/namespace-controller.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { ApiHandlers } from '../handlers.js';

const log = componentLogger('default-service-account-test');

async function exists(handlers: ApiHandlers, namespace: string): Promise<boolean> {
  try {
    await handlers.get('ServiceAccount', namespace, 'default');
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

test('every namespace has a default ServiceAccount: made with it and at start-up, deleted with it', async () => {
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
  try {
    await handlers.ensureSystemObjects();
    for (const namespace of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      assert.ok(await exists(handlers, namespace), `${namespace} has its default ServiceAccount`);
    }
    const shop: Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' }, spec: {} };
    await handlers.create(shop, { dryRun: true });
    assert.equal(await exists(handlers, 'shop'), false, 'a dry run makes nothing');
    await handlers.create(shop);
    const account = (await handlers.get('ServiceAccount', 'shop', 'default')).object as ServiceAccount;
    assert.deepEqual(account.metadata.namespace, 'shop');

    // Deleted, it is made again at the next start-up (Kubernetes' controller makes it at once).
    await handlers.delete('ServiceAccount', 'shop', 'default');
    assert.equal(await exists(handlers, 'shop'), false);
    await handlers.ensureSystemObjects();
    assert.ok(await exists(handlers, 'shop'));

    informer.start();
    await informer.waitForSync();
    controller.start();
    await handlers.delete('Namespace', '', 'shop');
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await handlers.get('Namespace', '', 'shop');
      } catch (err) {
        if (err instanceof NotFoundError) break;
        throw err;
      }
      assert.ok(Date.now() < deadline, 'the namespace goes within 5 s');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(await exists(handlers, 'shop'), false, 'its ServiceAccount went with it');
  } finally {
    await controller.stop();
    await informer.stop();
    await store.close();
  }
});
