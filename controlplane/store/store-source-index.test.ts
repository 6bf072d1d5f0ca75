import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConfigMap } from '../../proto/gen/types.js';
import { Informer } from '../../proto/informer/informer.js';
import { decodeObject } from '../../proto/objects.js';
import { componentLogger } from '../../proto/support/logger.js';
import { ApiHandlers } from '../api/handlers.js';
import { MemoryStore } from './memory-store.js';
import { storeSource } from './store-source.js';

const log = componentLogger('informer-index-test');
const byColour = (cm: ConfigMap) => (cm.metadata.labels?.['colour'] ? [cm.metadata.labels['colour']] : []);
const names = (informer: Informer<ConfigMap>, colour: string) =>
  informer
    .byIndex('colour', colour)
    .map((c) => c.object.metadata.name)
    .sort();

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    assert.ok(Date.now() < deadline, 'not within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('informer indexes over a store', () => {
  test('objects are filed on list, refiled when they change, unfiled when deleted; versions are real', async () => {
    const store = new MemoryStore();
    const handlers = new ApiHandlers({ store, log });
    await handlers.ensureSystemObjects();
    const cm = (name: string, colour: string): ConfigMap => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: 'default', labels: { colour } },
    });
    await handlers.create(cm('a', 'red'));
    const informer = new Informer<ConfigMap>({
      source: storeSource({
        store,
        resource: 'configmaps',
        decode: (bytes) => decodeObject('ConfigMap', bytes),
      }),
      logger: log,
    });
    informer.addIndex('colour', byColour);
    informer.addIndex('colour', byColour); // the same index again: nothing happens
    assert.throws(() => informer.addIndex('colour', () => []), /exists already/);
    informer.start();
    try {
      await informer.waitForSync();
      assert.deepEqual(names(informer, 'red'), ['a']);
      await handlers.create(cm('b', 'red'));
      const blue = (await handlers.update({ ...cm('a', 'blue') })).object as ConfigMap;
      await until(() => names(informer, 'blue').length === 1 && names(informer, 'red').length === 1);
      assert.deepEqual(names(informer, 'red'), ['b']);
      // the cached copy carries the version the write made, so a compare-and-swap from it succeeds
      assert.equal(informer.get('default/a')?.object.metadata.resourceVersion, blue.metadata.resourceVersion);
      await handlers.delete('ConfigMap', 'default', 'b');
      await until(() => names(informer, 'red').length === 0);
      assert.deepEqual(informer.byIndex('colour', 'green'), []);
      assert.throws(() => informer.byIndex('size', 'x'), /no index "size"/);
    } finally {
      await informer.stop();
    }
  });
});
