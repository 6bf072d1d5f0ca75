/**
 * The one informer, fed over the API instead of from the store: what an agent or a controller in
 * another process sees. A real control plane on a real etcd; the informer's cache and handlers
 * follow creates, updates, deletes, and objects entering and leaving a field selector.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ControlPlane } from '../../controlplane/main.js';
import { apiSource } from '../../proto/informer/api-source.js';
import { Informer, type InformerChange } from '../../proto/informer/informer.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { ConfigMap } from '../../proto/gen/types.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';

const configMap = (
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = {},
): ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'default', labels },
  data,
});

async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('Informer over the API', { timeout: 120_000 }, () => {
  let cluster: TestControlPlane | undefined;
  let controlPlane: ControlPlane;
  let api: ApiClient;

  before(async () => {
    cluster = await launchTestControlPlane('api-informer', { bookmarkIntervalMs: 200 });
    controlPlane = cluster.controlPlane;
    const token = cluster.adminToken;
    api = connectApi({ server: controlPlane.apiAddress, token });
  });

  after(async () => {
    api?.close();
    await cluster?.dispose();
  });

  test('lists in pages, then follows creates, updates and deletes; handlers get keys', async () => {
    for (let i = 0; i < 7; i++) await api.create(configMap(`before-${i}`, { n: String(i) }));
    const informer = new Informer<ConfigMap>({
      source: apiSource<ConfigMap>({ api, kind: 'ConfigMap', namespace: 'default' }),
      pageSize: 3,
    });
    const seen: string[] = [];
    informer.onChange((key: string, change: InformerChange) => seen.push(`${change} ${key}`));
    informer.start();
    try {
      await informer.waitForSync();
      assert.equal(informer.list().length, 7);
      assert.equal(informer.get('default/before-3')?.object.data?.['n'], '3');
      const created = await api.create(configMap('after', { v: '1' }));
      await api.update({ ...created, data: { v: '2' } });
      await api.delete('ConfigMap', 'default', 'before-0');
      await until(
        'the changes arrived',
        () => informer.get('default/after')?.object.data?.['v'] === '2' && !informer.get('default/before-0'),
      );
      assert.deepEqual(seen.slice(7), [
        'added default/after',
        'modified default/after',
        'deleted default/before-0',
      ]);
      assert.ok(informer.revision >= BigInt(created.metadata.resourceVersion!));
    } finally {
      await informer.stop();
    }
  });

  test('with a selector the cache holds the selection: objects leave and enter it', async () => {
    await api.create(configMap('picked', { a: '1' }, { pick: 'yes' }));
    await api.create(configMap('other', { a: '1' }, { pick: 'no' }));
    const informer = new Informer<ConfigMap>({
      source: apiSource<ConfigMap>({
        api,
        kind: 'ConfigMap',
        namespace: 'default',
        labelSelector: 'pick=yes',
      }),
    });
    informer.start();
    try {
      await informer.waitForSync();
      assert.deepEqual(
        informer.list().map((cached) => cached.key),
        ['default/picked'],
      );
      const picked = await api.get('ConfigMap', 'default', 'picked');
      await api.update({ ...picked, metadata: { ...picked.metadata, labels: { pick: 'no' } } });
      const other = await api.get('ConfigMap', 'default', 'other');
      await api.update({ ...other, metadata: { ...other.metadata, labels: { pick: 'yes' } } });
      await until(
        'the selection changed',
        () => informer.get('default/other') !== undefined && informer.get('default/picked') === undefined,
      );
      assert.deepEqual(
        informer.list().map((cached) => cached.key),
        ['default/other'],
      );
    } finally {
      await informer.stop();
    }
  });
});
