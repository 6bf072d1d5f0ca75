import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event, Pod, ReplicaSet } from '../../../proto/gen/types.js';
import { ConflictError } from '../../../proto/errors.js';
import { Informer } from '../../../proto/informer/informer.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { ReplicaSetController, slowStart } from './replicaset-controller.js';

const log = componentLogger('replicaset-controller-test');

const replicaSet = (name: string, replicas: number, extra: Partial<ReplicaSet['spec']> = {}): ReplicaSet => ({
  apiVersion: 'apps/v1',
  kind: 'ReplicaSet',
  metadata: { name, namespace: 'default' },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name, tier: 'web' } },
      spec: { containers: [{ name: 'web', image: 'web:1' }] },
    },
    ...extra,
  },
});

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function setUp() {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  const pods = new Informer<Pod>({
    source: storeSource({ store, resource: 'pods', decode: (bytes) => decodeObject('Pod', bytes) }),
    logger: log,
  });
  const replicaSets = new Informer<ReplicaSet>({
    source: storeSource({
      store,
      resource: 'replicasets',
      decode: (bytes) => decodeObject('ReplicaSet', bytes),
    }),
    logger: log,
  });
  const controller = new ReplicaSetController({ handlers, replicaSets, pods, log });
  const start = async () => {
    await handlers.ensureSystemObjects();
    pods.start();
    replicaSets.start();
    await Promise.all([pods.waitForSync(), replicaSets.waitForSync()]);
    controller.start();
  };
  const stop = async () => {
    await controller.stop();
    await Promise.all([pods.stop(), replicaSets.stop()]);
  };
  /** Active pods (not being deleted) that `rs` controls, from the API. */
  const ownedPods = async (name: string): Promise<Pod[]> => {
    const rs = (await handlers.get('ReplicaSet', 'default', name)).object as ReplicaSet;
    const { items } = await handlers.list('Pod', { namespace: 'default' });
    return items
      .map((item) => item.object as Pod)
      .filter(
        (pod) =>
          !pod.metadata.deletionTimestamp &&
          pod.metadata.ownerReferences?.some((ref) => ref.uid === rs.metadata.uid && ref.controller),
      );
  };
  const statusOf = async (name: string) =>
    ((await handlers.get('ReplicaSet', 'default', name)).object as ReplicaSet).status ?? {};
  return { store, handlers, pods, replicaSets, controller, start, stop, ownedPods, statusOf };
}

describe('ReplicaSetController', () => {
  test('creates the replicas from the template, owned by the ReplicaSet, with events and status; scales down', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      await handlers.create(replicaSet('web', 3));
      await until('3 replicas in status', async () => (await cluster.statusOf('web')).replicas === 3);
      const pods = await cluster.ownedPods('web');
      assert.equal(pods.length, 3);
      for (const pod of pods) {
        assert.match(pod.metadata.name!, /^web-[a-z0-9]{5}$/);
        assert.deepEqual(pod.metadata.labels, { app: 'web', tier: 'web' });
        assert.equal(pod.metadata.ownerReferences?.[0]?.kind, 'ReplicaSet');
        assert.equal(pod.metadata.ownerReferences?.[0]?.blockOwnerDeletion, true);
        assert.equal(pod.spec.containers?.[0]?.image, 'web:1');
      }
      const status = await cluster.statusOf('web');
      assert.equal(status.fullyLabeledReplicas, 3);
      assert.equal(status.readyReplicas ?? 0, 0);
      assert.equal(status.observedGeneration, 1);
      await until('SuccessfulCreate events', async () => {
        const { items } = await handlers.list('Event', { namespace: 'default' });
        const creates = items
          .map((item) => item.object as Event)
          .filter((event) => event.reason === 'SuccessfulCreate' && event.involvedObject?.name === 'web');
        return creates.length === 3 && creates.every((e) => /^Created pod: web-/.test(e.message ?? ''));
      });

      const rs = (await handlers.get('ReplicaSet', 'default', 'web')).object as ReplicaSet;
      await handlers.update({ ...rs, spec: { ...rs.spec, replicas: 1 } });
      await until('1 replica', async () => (await cluster.statusOf('web')).replicas === 1);
      assert.equal((await cluster.ownedPods('web')).length, 1);
      assert.equal((await cluster.statusOf('web')).observedGeneration, 2);
    } finally {
      await cluster.stop();
    }
  });

  test('never more pods than replicas, however often it is asked to reconcile', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(replicaSet('many', 40));
      // nudge it while its creations are on their way
      for (let i = 0; i < 50; i++) {
        // (beside the controller's own workers: its status write may meet theirs)
        await cluster.controller.reconcile('default/many').catch((err: unknown) => {
          if (!(err instanceof ConflictError)) throw err;
        });
        assert.ok((await cluster.ownedPods('many')).length <= 40);
      }
      await until('40 replicas', async () => (await cluster.statusOf('many')).replicas === 40);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await cluster.ownedPods('many')).length, 40);
    } finally {
      await cluster.stop();
    }
  });

  test('adopts a matching orphan instead of creating; releases a pod whose labels stop matching and replaces it', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      await handlers.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'orphan', namespace: 'default', labels: { app: 'adopter' } },
        spec: { containers: [{ name: 'web', image: 'web:1' }] },
      } as Pod);
      await handlers.create(replicaSet('adopter', 2));
      await until('2 replicas', async () => (await cluster.statusOf('adopter')).replicas === 2);
      const owned = await cluster.ownedPods('adopter');
      assert.ok(
        owned.some((pod) => pod.metadata.name === 'orphan'),
        'the orphan was adopted',
      );
      assert.equal(owned.length, 2);
      assert.equal((await cluster.statusOf('adopter')).fullyLabeledReplicas, 1, 'the orphan lacks tier=web');

      // a pod relabelled out of the selector is released and replaced
      const orphan = (await handlers.get('Pod', 'default', 'orphan')).object as Pod;
      await handlers.update({ ...orphan, metadata: { ...orphan.metadata, labels: { app: 'debugging' } } });
      await until('released', async () => {
        const pod = (await handlers.get('Pod', 'default', 'orphan')).object as Pod;
        return (pod.metadata.ownerReferences ?? []).length === 0;
      });
      await until('replaced', async () => (await cluster.ownedPods('adopter')).length === 2);
      assert.ok(!(await cluster.ownedPods('adopter')).some((pod) => pod.metadata.name === 'orphan'));
    } finally {
      await cluster.stop();
    }
  });

  test('ready and available replicas follow the pods’ Ready condition and minReadySeconds', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      await handlers.create(replicaSet('slow', 2, { minReadySeconds: 1 }));
      await until('2 replicas', async () => (await cluster.statusOf('slow')).replicas === 2);
      const readyAt = new Date().toISOString();
      for (const pod of await cluster.ownedPods('slow')) {
        await handlers.updateStatus({
          ...pod,
          status: {
            phase: 'Running',
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: readyAt }],
          },
        });
      }
      await until('ready', async () => (await cluster.statusOf('slow')).readyReplicas === 2);
      assert.equal((await cluster.statusOf('slow')).availableReplicas ?? 0, 0, 'not yet ready for 1 s');
      await until(
        'available after minReadySeconds',
        async () => (await cluster.statusOf('slow')).availableReplicas === 2,
        4000,
      );
    } finally {
      await cluster.stop();
    }
  });
});

describe('slowStart', () => {
  test('a call that always fails is tried once, not count times', async () => {
    let calls = 0;
    const result = await slowStart(500, async () => {
      calls++;
      throw new Error('refused');
    });
    assert.equal(calls, 1);
    assert.equal(result.created, 0);
    assert.match(String(result.error), /refused/);
  });

  test('batches double: 1, 2, 4, … until the count, stopping after a batch with a failure', async () => {
    const batches: number[] = [];
    let inFlight = 0;
    let calls = 0;
    const result = await slowStart(20, async () => {
      const call = ++calls;
      if (inFlight === 0) batches.push(0);
      inFlight++;
      batches[batches.length - 1]!++;
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      if (call === 10) throw new Error('the tenth fails');
    });
    assert.deepEqual(batches, [1, 2, 4, 8]);
    assert.equal(result.created, 14);
    assert.match(String(result.error), /tenth/);
    assert.deepEqual((await slowStart(5, async () => {})).created, 5);
    // a warm start: the first batch as given, doubling from there
    const started = await slowStart(
      100,
      async () => {
        await new Promise((resolve) => setImmediate(resolve));
      },
      32,
    );
    assert.equal(started.created, 100);
    assert.equal(started.lastBatch, 4, 'batches of 32, 64, then the 4 left');
  });
});
