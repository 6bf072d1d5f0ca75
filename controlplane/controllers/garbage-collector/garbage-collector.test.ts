import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError, NotFoundError } from '../../../proto/errors.js';
import type { ConfigMap, KubeObject, OwnerReference, Pod, ReplicaSet } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { decodeObject } from '../../../proto/objects.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { GarbageCollector } from './garbage-collector.js';

const log = componentLogger('garbage-collector-test');

const replicaSet = (name: string): ReplicaSet => ({
  apiVersion: 'apps/v1',
  kind: 'ReplicaSet',
  metadata: { name, namespace: 'default' },
  spec: {
    replicas: 0,
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'i' }] } },
  },
});

const ref = (owner: KubeObject, controller = true) => ({
  apiVersion: owner.apiVersion,
  kind: owner.kind,
  name: owner.metadata.name ?? '',
  uid: owner.metadata.uid ?? '',
  ...(controller ? { controller: true } : {}),
  blockOwnerDeletion: true,
});

const pod = (name: string, owners: OwnerReference[], finalizers?: string[]): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default', ownerReferences: owners, ...(finalizers ? { finalizers } : {}) },
  spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'c', image: 'i' }] },
});

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function setUp() {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  const informers = new Map<string, Informer<KubeObject>>();
  for (const kind of ['Pod', 'ReplicaSet'] as const) {
    informers.set(
      kind,
      new Informer<KubeObject>({
        source: storeSource({
          store,
          resource: kindInfoOf(kind).plural,
          decode: (bytes) => decodeObject(kind, bytes),
        }),
        logger: log,
      }),
    );
  }
  const collector = new GarbageCollector({ handlers, informers, log });
  const exists = async (kind: string, name: string): Promise<KubeObject | undefined> => {
    try {
      return (await handlers.get(kind, 'default', name)).object;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  };
  return {
    handlers,
    exists,
    async start() {
      await handlers.ensureSystemObjects();
      for (const informer of informers.values()) informer.start();
      for (const informer of informers.values()) await informer.waitForSync();
      collector.start();
    },
    async stop() {
      await collector.stop();
      for (const informer of informers.values()) await informer.stop();
    },
  };
}

describe('GarbageCollector', () => {
  test('Background: an owner’s removal deletes its dependents; one with another owner only loses the reference', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      const rs = (await handlers.create(replicaSet('web'))).object;
      const other = (
        await handlers.create({
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'keeper', namespace: 'default' },
        } as ConfigMap)
      ).object;
      await handlers.create(pod('only-web', [ref(rs)]));
      await handlers.create(pod('shared', [ref(rs), ref(other, false)]));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(await cluster.exists('Pod', 'only-web'), 'owners present: nothing collected');

      await handlers.delete('ReplicaSet', 'default', 'web');
      await until(
        'the dependent deleted',
        async () => (await cluster.exists('Pod', 'only-web')) === undefined,
      );
      await until('the shared pod keeps only its other owner', async () => {
        const shared = await cluster.exists('Pod', 'shared');
        return shared?.metadata.ownerReferences?.length === 1;
      });
      const shared = (await cluster.exists('Pod', 'shared'))!;
      assert.equal(shared.metadata.ownerReferences?.[0]?.name, 'keeper');
    } finally {
      await cluster.stop();
    }
  });

  test('Foreground: the owner stays, marked, until its blocking dependents are gone', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      const rs = (await handlers.create(replicaSet('fg'))).object;
      await handlers.create(pod('held', [ref(rs)], ['example.com/hold']));
      await handlers.create(pod('free', [ref(rs)]));
      const marked = (
        await handlers.delete('ReplicaSet', 'default', 'fg', { propagationPolicy: 'Foreground' })
      ).object;
      assert.ok(marked.metadata.deletionTimestamp);
      assert.deepEqual(marked.metadata.finalizers, ['foregroundDeletion']);
      await until('the free pod gone', async () => (await cluster.exists('Pod', 'free')) === undefined);
      await until('the held pod marked', async () =>
        Boolean((await cluster.exists('Pod', 'held'))?.metadata.deletionTimestamp),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(await cluster.exists('ReplicaSet', 'fg'), 'the owner waits for the held pod');

      const held = (await cluster.exists('Pod', 'held'))!;
      await handlers.update({ ...held, metadata: { ...held.metadata, finalizers: [] } });
      await until(
        'the owner gone after its last dependent',
        async () => (await cluster.exists('ReplicaSet', 'fg')) === undefined,
      );
    } finally {
      await cluster.stop();
    }
  });

  test('Orphan: the dependents lose the reference and stay; the owner goes', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      const rs = (await handlers.create(replicaSet('orphaning'))).object;
      await handlers.create(pod('left', [ref(rs)]));
      await handlers.delete('ReplicaSet', 'default', 'orphaning', { propagationPolicy: 'Orphan' });
      await until(
        'the owner gone',
        async () => (await cluster.exists('ReplicaSet', 'orphaning')) === undefined,
      );
      const left = await cluster.exists('Pod', 'left');
      assert.ok(left, 'the dependent stays');
      assert.equal(left.metadata.ownerReferences, undefined);
    } finally {
      await cluster.stop();
    }
  });

  test('a dependent whose owner never existed is collected at start; one whose owner the informers lack but the API has is kept', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await handlers.ensureSystemObjects();
    const owner = (
      await handlers.create({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'live-owner', namespace: 'default' },
      } as ConfigMap)
    ).object;
    await handlers.create(pod('kept', [ref(owner)]));
    await handlers.create(
      pod('dangling', [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'ghost',
          uid: '1b1f7a52-0000-4000-8000-000000000000',
          controller: true,
          blockOwnerDeletion: true,
        },
      ]),
    );
    // an owner of the same name but another uid is not the owner
    await handlers.create(replicaSet('renamed'));
    await handlers.create(
      pod('stale-uid', [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'renamed',
          uid: '2b1f7a52-0000-4000-8000-000000000000',
          controller: true,
        },
      ]),
    );
    await cluster.start();
    try {
      await until(
        'the dangling pod collected',
        async () => (await cluster.exists('Pod', 'dangling')) === undefined,
      );
      await until(
        'the pod naming a re-created owner collected',
        async () => (await cluster.exists('Pod', 'stale-uid')) === undefined,
      );
      assert.ok(await cluster.exists('Pod', 'kept'));
    } finally {
      await cluster.stop();
    }
  });

  test('an unknown propagationPolicy is refused, naming the field', async () => {
    const { handlers } = setUp();
    await handlers.ensureSystemObjects();
    await handlers.create(replicaSet('x'));
    await assert.rejects(
      handlers.delete('ReplicaSet', 'default', 'x', { propagationPolicy: 'Sideways' as never }),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'propagationPolicy' &&
        /Background, Foreground, Orphan/.test(err.message),
    );
  });
});
