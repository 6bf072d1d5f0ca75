import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Node, Pod, Taint, Toleration } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { ManualClock } from '../../../proto/informer/manual-clock.js';
import { decodeObject, encodeObject } from '../../../proto/objects.js';
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
    nodes,
    pods,
    store,
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
      c.clock.advance(1000); // the outage is counted for a monitor period before a NoExecute taint
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
      c.clock.advance(1000);
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
      await c.settle();
      c.clock.advance(1000);
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

  test('the eviction clock runs from the first NoExecute taint: a not-ready/unreachable swap keeps it', async () => {
    const c = await setUp(['n1', 'n2', 'n3']);
    try {
      await c.createPod('web', 'n1'); // 30 s
      await c.setReady('n1', 'False');
      c.clock.advance(1000);
      await c.eventually('not-ready', async () =>
        (await c.taintsOf('n1')).includes('node.kubernetes.io/not-ready:NoExecute'),
      );
      c.clock.advance(20_000);
      await c.setReady('n1', 'Unknown');
      await c.eventually('swapped', async () =>
        (await c.taintsOf('n1')).includes('node.kubernetes.io/unreachable:NoExecute'),
      );
      c.clock.advance(11_000);
      await c.eventually(
        'evicted 30 s after the first taint',
        async () => (await c.podOf('web')).metadata.deletionTimestamp !== undefined,
      );
    } finally {
      await c.stop();
    }
  });

  test("an operator's untimed taints each count from when they were first seen", async () => {
    const c = await setUp(['n1', 'n2', 'n3']);
    try {
      await c.createPod('tolerant', 'n1', [
        { key: 'a', operator: 'Exists', effect: 'NoExecute' },
        { key: 'b', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 },
      ]);
      let n1 = await c.node('n1');
      await c.handlers.update({ ...n1, spec: { ...n1.spec, taints: [{ key: 'a', effect: 'NoExecute' }] } });
      await c.settle();
      c.clock.advance(3600_000);
      await c.settle();
      n1 = await c.node('n1');
      await c.handlers.update({
        ...n1,
        spec: { ...n1.spec, taints: [...(n1.spec.taints ?? []), { key: 'b', effect: 'NoExecute' }] },
      });
      await c.settle();
      assert.equal((await c.podOf('tolerant')).metadata.deletionTimestamp, undefined, 'not at once');
      c.clock.advance(61_000);
      await c.eventually(
        'evicted 60 s after b',
        async () => (await c.podOf('tolerant')).metadata.deletionTimestamp !== undefined,
      );
    } finally {
      await c.stop();
    }
  });

  test('an eviction does not write back a stale status: a status reported since its informer copy stays', async () => {
    const c = await setUp(['n1', 'n2', 'n3']);
    try {
      await c.createPod('job-pod', 'n1');
      await c.eventually(
        'in the informer',
        async () => c.pods.get('default/job-pod')?.object.status?.phase === 'Running',
      );
      await c.pods.stop(); // the informer lags from here on
      const p = await c.podOf('job-pod');
      await c.handlers.updateStatus({
        ...p,
        status: { ...p.status, phase: 'Succeeded', conditions: [{ type: 'Ready', status: 'False' }] },
      } as Pod);
      const n1 = await c.node('n1');
      await c.handlers.update({ ...n1, spec: { ...n1.spec, taints: [{ key: 'x', effect: 'NoExecute' }] } });
      await c.settle();
      await c.settle();
      const now = await c.podOf('job-pod');
      assert.equal(now.status?.phase, 'Succeeded', 'the phase reported meanwhile stays');
      assert.equal(now.metadata.deletionTimestamp, undefined, 'nothing is decided on the stale copy');
    } finally {
      await c.stop();
    }
  });

  test('nodes that all go Unknown together are none of them tainted NoExecute, whatever order they are marked in', async () => {
    const c = await setUp(['a', 'b', 'c']);
    try {
      await c.createPod('short', 'a', [
        {
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 0,
        },
      ]);
      for (const name of ['a', 'b', 'c']) {
        await c.setReady(name, 'Unknown');
        await c.settle();
      }
      c.clock.advance(1000);
      await c.settle();
      c.clock.advance(1000);
      await c.settle();
      assert.equal((await c.podOf('short')).metadata.deletionTimestamp, undefined);
      assert.deepEqual(await c.taintsOf('a'), ['node.kubernetes.io/unreachable:NoSchedule']);
    } finally {
      await c.stop();
    }
  });

  test('a pod stored without the default tolerations (before they were added) still gets them', async () => {
    const c = await setUp(['n1', 'n2', 'n3']);
    try {
      // stored around the API's admission, as an older skiff stored its pods
      await c.store.create(
        { resource: 'pods', namespace: 'default', name: 'old' },
        encodeObject({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: 'old',
            namespace: 'default',
            uid: 'old-uid',
            creationTimestamp: '2026-01-01T00:00:00Z',
          },
          spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }] },
          status: { phase: 'Running' },
        } as Pod),
      );
      await c.eventually('in the informer', async () => c.pods.get('default/old') !== undefined);
      assert.equal((await c.podOf('old')).spec.tolerations, undefined);
      await c.setReady('n1', 'Unknown');
      c.clock.advance(1000);
      await c.eventually('tainted', async () => (await c.taintsOf('n1')).includes(UNREACHABLE[0]!));
      c.clock.advance(5000);
      await c.settle();
      assert.equal((await c.podOf('old')).metadata.deletionTimestamp, undefined);
    } finally {
      await c.stop();
    }
  });
});
