import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundError } from '../../../proto/errors.js';
import type { Node, Pod } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { PodGarbageCollector } from './pod-gc-controller.js';

const log = componentLogger('pod-gc-test');

const pod = (name: string, nodeName?: string, extra: Partial<Pod['spec']> = {}): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default' },
  spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'c', image: 'i' }], ...extra },
});

async function setUp() {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  await handlers.ensureSystemObjects();
  const pods = new Informer<Pod>({
    source: storeSource({ store, resource: 'pods', decode: (bytes) => decodeObject('Pod', bytes) }),
    logger: log,
  });
  const nodes = new Informer<Node>({
    source: storeSource({ store, resource: 'nodes', decode: (bytes) => decodeObject('Node', bytes) }),
    logger: log,
  });
  const gc = new PodGarbageCollector({ handlers, pods, nodes, log, terminatedPodThreshold: 2 });
  const exists = async (name: string) => {
    try {
      return (await handlers.get('Pod', 'default', name)).object as Pod;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  };
  const settle = async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
  };
  return {
    handlers,
    gc,
    exists,
    settle,
    async start() {
      pods.start();
      nodes.start();
      await Promise.all([pods.waitForSync(), nodes.waitForSync()]);
    },
    async stop() {
      await gc.stop();
      await pods.stop();
      await nodes.stop();
    },
  };
}

describe('PodGarbageCollector', () => {
  test('a pod bound to a node that does not exist goes on the second pass, also one left Terminating; others stay', async () => {
    const cluster = await setUp();
    const { handlers, gc } = cluster;
    await handlers.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'real' }, spec: {} } as Node);
    await handlers.create(pod('on-real', 'real'));
    await handlers.create(pod('on-ghost', 'ghost'));
    await handlers.create(pod('leaving-ghost', 'ghost', { terminationGracePeriodSeconds: 30 }));
    await handlers.delete('Pod', 'default', 'leaving-ghost');
    assert.ok(
      (await cluster.exists('leaving-ghost'))?.metadata.deletionTimestamp,
      'a bound pod waits for its agent',
    );
    await handlers.create(pod('unbound'));
    await cluster.start();
    try {
      await gc.pass();
      assert.ok(await cluster.exists('on-ghost'), 'one pass is not enough: the node may be new');
      await gc.pass();
      assert.equal(await cluster.exists('on-ghost'), undefined);
      assert.equal(await cluster.exists('leaving-ghost'), undefined, 'no more Terminating for ever');
      assert.ok(await cluster.exists('on-real'));
      assert.ok(await cluster.exists('unbound'), 'a pod waiting for the scheduler is not the collector’s');
    } finally {
      await cluster.stop();
    }
  });

  test('a node registered between two passes saves its pods; terminated pods beyond the threshold go, oldest first', async () => {
    const cluster = await setUp();
    const { handlers, gc } = cluster;
    await handlers.create(pod('early', 'late-node'));
    await cluster.start();
    try {
      await gc.pass();
      await handlers.create({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'late-node' },
        spec: {},
      } as Node);
      await gc.pass();
      assert.ok(await cluster.exists('early'));

      for (const name of ['done-1', 'done-2', 'done-3']) {
        const created = (await handlers.create(pod(name))).object as Pod;
        await handlers.updateStatus({ ...created, status: { phase: 'Succeeded' } });
        await new Promise((resolve) => setTimeout(resolve, 1100)); // creation times a second apart
      }
      await cluster.settle();
      await gc.pass();
      assert.equal(await cluster.exists('done-1'), undefined, 'the oldest beyond 2 terminated pods');
      assert.ok(await cluster.exists('done-2'));
      assert.ok(await cluster.exists('done-3'));
    } finally {
      await cluster.stop();
    }
  });

  test('a pod being deleted on a node tainted out-of-service goes once the node is not Ready', async () => {
    const cluster = await setUp();
    const { handlers, gc } = cluster;
    await handlers.create({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'down' },
      spec: {
        taints: [{ key: 'node.kubernetes.io/out-of-service', value: 'nodeshutdown', effect: 'NoExecute' }],
      },
    } as Node);
    const down = (await handlers.get('Node', '', 'down')).object as Node;
    await handlers.updateStatus({ ...down, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    for (const name of ['leaving', 'staying'])
      await handlers.create(pod(name, 'down', { terminationGracePeriodSeconds: 30 }));
    await handlers.delete('Pod', 'default', 'leaving');
    await cluster.start();
    try {
      await gc.pass();
      assert.ok(await cluster.exists('leaving'), 'a Ready node may still stop it itself');
      const ready = (await handlers.get('Node', '', 'down')).object as Node;
      await handlers.updateStatus({
        ...ready,
        status: { conditions: [{ type: 'Ready', status: 'Unknown' }] },
      });
      await cluster.settle();
      await gc.pass();
      assert.equal(await cluster.exists('leaving'), undefined);
      assert.ok(await cluster.exists('staying'), 'a pod not being deleted is the taint eviction’s business');
    } finally {
      await cluster.stop();
    }
  });
});
