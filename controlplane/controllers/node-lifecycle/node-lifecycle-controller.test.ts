import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Node, Pod, Taint, Toleration } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { ManualClock } from '../../../proto/informer/manual-clock.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { NodeLifecycleController } from './node-lifecycle-controller.js';

const log = componentLogger('node-lifecycle-test');
const TOLERATION_SECONDS = 30;

async function setUp(nodeNames: string[]) {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({
    store,
    log,
    defaultTolerationSeconds: { notReady: TOLERATION_SECONDS, unreachable: TOLERATION_SECONDS },
  });
  await handlers.ensureSystemObjects();
  const informer = <T extends Node | Pod>(kind: 'Node' | 'Pod', resource: string) =>
    new Informer<T>({
      source: storeSource({ store, resource, decode: (bytes) => decodeObject(kind, bytes) as T }),
      logger: log,
    });
  const nodes = informer<Node>('Node', 'nodes');
  const pods = informer<Pod>('Pod', 'pods');
  const clock = new ManualClock(Date.now());
  for (const name of nodeNames) {
    await handlers.create({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: {} } as Node);
    await setReady(name, 'True');
  }
  nodes.start();
  pods.start();
  await Promise.all([nodes.waitForSync(), pods.waitForSync()]);
  const controller = new NodeLifecycleController({
    handlers,
    nodes,
    pods,
    log,
    clock,
    monitorPeriodMs: 1000,
  });
  controller.start();

  async function setReady(name: string, status: string): Promise<void> {
    const node = (await handlers.get('Node', '', name)).object as Node;
    const { resourceVersion: _rv, ...metadata } = node.metadata;
    await handlers.updateStatus({
      ...node,
      metadata,
      status: {
        ...node.status,
        conditions: [
          {
            type: 'Ready',
            status,
            lastTransitionTime: new Date(clock.now()).toISOString().replace(/\.\d+Z$/, 'Z'),
          },
        ],
      },
    } as Node);
  }
  const node = async (name: string) => (await handlers.get('Node', '', name)).object as Node;
  const taintsOf = async (name: string) =>
    ((await node(name)).spec.taints ?? []).map((t: Taint) => `${t.key}:${t.effect}`).sort();
  const podOf = async (name: string) => (await handlers.get('Pod', 'default', name)).object as Pod;
  const createPod = async (name: string, nodeName: string, tolerations?: Toleration[]) => {
    await handlers.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: { nodeName, containers: [{ name: 'c', image: 'i' }], ...(tolerations ? { tolerations } : {}) },
    } as Pod);
    const created = await podOf(name);
    await handlers.updateStatus({
      ...created,
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    } as Pod);
  };
  /** Waits (real time, the informers and workers are asynchronous) until `check` holds. */
  const eventually = async (what: string, check: () => Promise<boolean>) => {
    const until = Date.now() + 5000;
    for (;;) {
      if (await check()) return;
      if (Date.now() > until) assert.fail(`timed out waiting for: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  /** Lets the controller act on what it has, without time moving. */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 200));
  return {
    handlers,
    clock,
    setReady,
    node,
    taintsOf,
    podOf,
    createPod,
    eventually,
    settle,
    async stop() {
      await controller.stop();
      await nodes.stop();
      await pods.stop();
    },
  };
}

const UNREACHABLE = ['node.kubernetes.io/unreachable:NoExecute', 'node.kubernetes.io/unreachable:NoSchedule'];

describe('NodeLifecycleController', () => {
  test('an unreachable node is tainted, its pods marked not ready and evicted after their toleration; DaemonSet-like pods stay; back Ready, the taints go', async () => {
    const c = await setUp(['n1', 'n2']);
    try {
      await c.createPod('web', 'n1');
      await c.createPod('daemon', 'n1', [
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
      ]);
      await c.createPod('elsewhere', 'n2');
      const web = await c.podOf('web');
      assert.deepEqual(
        web.spec.tolerations?.map((t) => `${t.key}:${t.effect}:${t.tolerationSeconds}`),
        [
          `node.kubernetes.io/not-ready:NoExecute:${TOLERATION_SECONDS}`,
          `node.kubernetes.io/unreachable:NoExecute:${TOLERATION_SECONDS}`,
        ],
        'the API gives a pod that says nothing the default tolerations',
      );
      assert.deepEqual(
        (await c.podOf('daemon')).spec.tolerations?.map((t) => `${t.key}:${t.tolerationSeconds}`),
        ['node.kubernetes.io/unreachable:undefined', 'node.kubernetes.io/not-ready:30'],
        'a pod that tolerates unreachable keeps its own toleration',
      );

      await c.setReady('n1', 'Unknown');
      await c.eventually(
        'n1 tainted unreachable',
        async () => (await c.taintsOf('n1')).join() === UNREACHABLE.join(),
      );
      await c.eventually(
        'its pods not ready',
        async () =>
          (await c.podOf('web')).status?.conditions?.some(
            (x) => x.type === 'Ready' && x.status === 'False',
          ) === true,
      );
      assert.deepEqual(await c.taintsOf('n2'), [], 'a Ready node is not tainted');

      c.clock.advance((TOLERATION_SECONDS - 1) * 1000);
      await c.settle();
      assert.equal(
        (await c.podOf('web')).metadata.deletionTimestamp,
        undefined,
        'not before its toleration ends',
      );
      c.clock.advance(2000);
      await c.eventually(
        'web evicted',
        async () => (await c.podOf('web')).metadata.deletionTimestamp !== undefined,
      );
      const evicted = await c.podOf('web');
      assert.equal(
        evicted.status?.conditions?.find((x) => x.type === 'DisruptionTarget')?.reason,
        'DeletionByTaintManager',
      );
      c.clock.advance(3600_000);
      await c.settle();
      assert.equal((await c.podOf('daemon')).metadata.deletionTimestamp, undefined, 'tolerated for ever');
      assert.equal((await c.podOf('elsewhere')).metadata.deletionTimestamp, undefined);

      await c.setReady('n1', 'True');
      await c.eventually('taints removed', async () => (await c.taintsOf('n1')).length === 0);
    } finally {
      await c.stop();
    }
  });

  test('a NoExecute taint the operator adds evicts pods that do not tolerate it at once; Ready False swaps to not-ready', async () => {
    const c = await setUp(['n1', 'n2', 'n3']);
    try {
      await c.createPod('plain', 'n1');
      await c.createPod('tolerant', 'n1', [{ key: 'dedicated', operator: 'Exists', effect: 'NoExecute' }]);
      const n1 = await c.node('n1');
      await c.handlers.update({
        ...n1,
        spec: { ...n1.spec, taints: [{ key: 'dedicated', value: 'db', effect: 'NoExecute' }] },
      });
      await c.eventually(
        'plain evicted',
        async () => (await c.podOf('plain')).metadata.deletionTimestamp !== undefined,
      );
      await c.settle();
      assert.equal((await c.podOf('tolerant')).metadata.deletionTimestamp, undefined);
      assert.deepEqual(await c.taintsOf('n1'), ['dedicated:NoExecute'], "the operator's taint stays");

      await c.setReady('n2', 'Unknown');
      await c.eventually(
        'n2 unreachable',
        async () => (await c.taintsOf('n2')).join() === UNREACHABLE.join(),
      );
      await c.setReady('n2', 'False');
      await c.eventually(
        'n2 swapped to not-ready at once',
        async () =>
          (await c.taintsOf('n2')).join() ===
          ['node.kubernetes.io/not-ready:NoExecute', 'node.kubernetes.io/not-ready:NoSchedule'].join(),
      );
    } finally {
      await c.stop();
    }
  });

  test('nodes of a zone are tainted NoExecute one per 1/rate seconds; none while every node is down', async () => {
    const c = await setUp(['a', 'b', 'c', 'd', 'e']);
    try {
      await c.setReady('a', 'Unknown');
      await c.setReady('b', 'Unknown');
      const noExecute = async (name: string) =>
        (await c.taintsOf(name)).includes('node.kubernetes.io/unreachable:NoExecute');
      await c.eventually('one node tainted', async () => (await noExecute('a')) !== (await noExecute('b')));
      await c.settle();
      assert.equal(
        (await noExecute('a')) && (await noExecute('b')),
        false,
        'the second waits for the rate (0.1/s)',
      );
      c.clock.advance(10_000);
      await c.eventually(
        'the second after 10 s',
        async () => (await noExecute('a')) && (await noExecute('b')),
      );

      for (const name of ['c', 'd', 'e']) await c.setReady(name, 'Unknown');
      c.clock.advance(1000); // the zones are counted again
      await c.eventually(
        'every NoExecute taint removed (the control plane may be the one cut off)',
        async () => {
          for (const name of ['a', 'b', 'c', 'd', 'e']) if (await noExecute(name)) return false;
          return true;
        },
      );
      assert.deepEqual(
        await c.taintsOf('c'),
        ['node.kubernetes.io/unreachable:NoSchedule'],
        'NoSchedule stays',
      );
    } finally {
      await c.stop();
    }
  });
});
