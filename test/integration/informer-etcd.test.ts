/**
 * The informer over EtcdStore through a connection that is cut: etcd3 1.1.2 crashed the process
 * when a watch resumed into compacted history after an outage.
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import { Informer } from '../../proto/informer/informer.js';
import { storeSource } from '../../controlplane/store/store-source.js';
import type { ObjectKey } from '../../controlplane/store/store.js';
import { startProxy } from '../../controlplane/store/tcp-proxy.js';
import { withEtcd } from '../harness/servers.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const decode = (value: Uint8Array): string => new TextDecoder().decode(value);
const pod = (name: string, namespace = 'default'): ObjectKey => ({ resource: 'pods', namespace, name });

async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('Informer against a real etcd', () => {
  const etcd = withEtcd();
  let prefixes = 0;
  const open: { stop(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const item of open.reverse()) await item.stop();
    open.length = 0;
  });

  test('an informer whose watch resumes into compacted history after an outage re-lists; the process and the informer beside it carry on', async () => {
    // etcd3 1.1.2 crashed the process here ("Failed to find watcher for IWatchResponse").
    const proxy = await startProxy(etcd().endpoint);
    open.push({ stop: () => proxy.close() });
    const prefix = `/informer-${++prefixes}`;
    const watching = new EtcdStore({
      endpoints: [proxy.endpoint],
      prefix,
      timeoutMs: 1000,
      maxWatchBackoffMs: 200,
    });
    const direct = new EtcdStore({ endpoints: [etcd().endpoint], prefix });
    open.push({ stop: () => watching.close() }, { stop: () => direct.close() });
    await direct.create(pod('changes'), bytes('c1'));
    const pods = new Informer({
      source: storeSource({ store: watching, resource: 'pods', decode }),
      maxRetryDelayMs: 200,
    });
    const secrets = new Informer({
      source: storeSource({ store: watching, resource: 'secrets', decode }),
      maxRetryDelayMs: 200,
    });
    open.push(pods, secrets);
    pods.start();
    await pods.waitForSync();
    // The secrets informer lists later, so compacting up to just after its revision cuts the pods
    // watch's history but not its own: it keeps its watch on the shared connection.
    await direct.create({ resource: 'configmaps', namespace: 'default', name: 'later' }, bytes('x'));
    secrets.start();
    await secrets.waitForSync();

    await proxy.block();
    const changes = await direct.get(pod('changes'));
    await direct.update(pod('changes'), bytes('c2'), changes.modRevision);
    await direct.create(pod('new'), bytes('n1'));
    await direct.compact(secrets.revision + 1n);
    await proxy.unblock();

    await until('the pods informer re-listed', () => pods.get('default/new') !== undefined, 20_000);
    assert.ok(pods.relists >= 1);
    assert.equal(secrets.relists, 0, 'the secrets watch resumed without a re-list');
    assert.equal(pods.get('default/changes')?.object, 'c2');
    await direct.create({ resource: 'secrets', namespace: 'default', name: 's' }, bytes('s1'));
    await until(
      'the secrets informer saw the new secret',
      () => secrets.get('default/s') !== undefined,
      20_000,
    );
    const late = await direct.create(pod('late'), bytes('l1'));
    await until('the pods informer watches on', () => pods.revision >= late.modRevision, 20_000);
  });
});
