import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DaemonSet, Node, Pod } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { DaemonSetController } from './daemonset-controller.js';

const log = componentLogger('daemonset-controller-test');

const node = (name: string, labels: Record<string, string> = {}, spec: Node['spec'] = {}): Node => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
  spec,
});

const daemonSet = (name: string, spec: Partial<DaemonSet['spec']> = {}, image = 'agent:1'): DaemonSet => ({
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name, namespace: 'default' },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image }] } },
    ...spec,
  },
});

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The API and the controller, with a stand-in for scheduler and agents: each new pod is bound to the node its affinity names and reported Ready. */
function setUp() {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  const pods = new Informer<Pod>({
    source: storeSource({ store, resource: 'pods', decode: (bytes) => decodeObject('Pod', bytes) }),
    logger: log,
  });
  const nodes = new Informer<Node>({
    source: storeSource({ store, resource: 'nodes', decode: (bytes) => decodeObject('Node', bytes) }),
    logger: log,
  });
  const daemonSets = new Informer<DaemonSet>({
    source: storeSource({
      store,
      resource: 'daemonsets',
      decode: (bytes) => decodeObject('DaemonSet', bytes),
    }),
    logger: log,
  });
  const controller = new DaemonSetController({ handlers, daemonSets, pods, nodes, log });
  pods.onChange((key, change) => {
    const pod = pods.get(key)?.object;
    if (change !== 'added' || pod === undefined) return;
    const target =
      pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]
        ?.matchFields?.[0]?.values?.[0];
    void (async () => {
      const bound = (
        await handlers.bindPod({
          namespace: 'default',
          name: pod.metadata.name!,
          nodeName: target!,
          uid: pod.metadata.uid!,
        })
      ).object as Pod;
      await handlers.updateStatus({
        ...bound,
        status: {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() }],
        },
      });
    })().catch(() => {});
  });
  const podsOf = (name: string) =>
    pods
      .list()
      .map((c) => c.object)
      .filter((p) => p.metadata.labels?.['app'] === name && !p.metadata.deletionTimestamp);
  const nodesOf = (name: string) =>
    podsOf(name)
      .map((p) => p.spec.nodeName ?? '?')
      .sort();
  return {
    handlers,
    podsOf,
    nodesOf,
    async status(name: string) {
      return ((await handlers.get('DaemonSet', 'default', name)).object as DaemonSet).status ?? {};
    },
    async start() {
      await handlers.ensureSystemObjects();
      for (const i of [pods, nodes, daemonSets]) i.start();
      await Promise.all([pods, nodes, daemonSets].map((i) => i.waitForSync()));
      controller.start();
    },
    async stop() {
      await controller.stop();
      for (const i of [pods, nodes, daemonSets]) await i.stop();
    },
  };
}

describe('DaemonSetController', () => {
  test('one pod on every node that fits, also cordoned ones; a joining node gets one, a node that stops fitting loses it', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      await handlers.create(node('a', { disk: 'ssd' }));
      await handlers.create(node('b', { disk: 'ssd' }, { unschedulable: true }));
      await handlers.create(node('c'));
      await handlers.create(
        node('gpu', { disk: 'ssd' }, { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] }),
      );
      await handlers.create(
        daemonSet('logs', {
          template: {
            metadata: { labels: { app: 'logs' } },
            spec: { nodeSelector: { disk: 'ssd' }, containers: [{ name: 'c', image: 'logs:1' }] },
          },
        }),
      );
      await until('on a and b', () => cluster.nodesOf('logs').join() === 'a,b');
      await until('status', async () => {
        const s = await cluster.status('logs');
        return (
          s.desiredNumberScheduled === 2 &&
          s.currentNumberScheduled === 2 &&
          s.numberReady === 2 &&
          s.updatedNumberScheduled === 2
        );
      });
      const pod = cluster.podsOf('logs')[0]!;
      assert.ok(
        pod.spec.tolerations?.some(
          (t) => t.key === 'node.kubernetes.io/unreachable' && t.effect === 'NoExecute',
        ),
      );
      assert.equal(pod.metadata.ownerReferences?.[0]?.kind, 'DaemonSet');

      await handlers.create(node('d', { disk: 'ssd' }));
      await until('a joining node gets one', () => cluster.nodesOf('logs').join() === 'a,b,d');
      const a = (await handlers.get('Node', '', 'a')).object as Node;
      await handlers.update({ ...a, metadata: { ...a.metadata, labels: { 'kubernetes.io/hostname': 'a' } } });
      await until('a node that stops matching loses it', () => cluster.nodesOf('logs').join() === 'b,d');
      await handlers.delete('Node', '', 'd');
      await until('a node that goes loses it', () => cluster.nodesOf('logs').join() === 'b');
    } finally {
      await cluster.stop();
    }
  });

  test('a rolling update replaces at most maxUnavailable pods at once; OnDelete replaces none by itself', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      for (const name of ['n1', 'n2', 'n3', 'n4']) await handlers.create(node(name));
      await handlers.create(
        daemonSet('roll', {
          updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
        }),
      );
      await until('4 ready', async () => (await cluster.status('roll')).numberReady === 4);
      let fewest = Infinity;
      const sampler = setInterval(() => {
        const ready = cluster
          .podsOf('roll')
          .filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
        fewest = Math.min(fewest, ready);
      }, 1);
      try {
        const ds = (await handlers.get('DaemonSet', 'default', 'roll')).object as DaemonSet;
        await handlers.update({
          ...ds,
          spec: {
            ...ds.spec,
            template: { ...ds.spec.template, spec: { containers: [{ name: 'c', image: 'agent:2' }] } },
          },
        });
        await until('all on agent:2', async () => {
          const s = await cluster.status('roll');
          return (
            s.updatedNumberScheduled === 4 &&
            s.numberReady === 4 &&
            cluster.podsOf('roll').every((p) => p.spec.containers?.[0]?.image === 'agent:2')
          );
        });
      } finally {
        clearInterval(sampler);
      }
      assert.ok(fewest >= 3, `at least 3 of 4 ready throughout (saw ${fewest})`);

      const ds = (await handlers.get('DaemonSet', 'default', 'roll')).object as DaemonSet;
      await handlers.update({
        ...ds,
        spec: {
          ...ds.spec,
          updateStrategy: { type: 'OnDelete' },
          template: { ...ds.spec.template, spec: { containers: [{ name: 'c', image: 'agent:3' }] } },
        },
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.ok(
        cluster.podsOf('roll').every((p) => p.spec.containers?.[0]?.image === 'agent:2'),
        'OnDelete: nothing replaced',
      );
      const victim = cluster.podsOf('roll').find((p) => p.spec.nodeName === 'n2')!;
      await handlers.delete('Pod', 'default', victim.metadata.name!, { gracePeriodSeconds: 0 });
      await until('the deleted one comes back on agent:3', () =>
        cluster
          .podsOf('roll')
          .some((p) => p.spec.nodeName === 'n2' && p.spec.containers?.[0]?.image === 'agent:3'),
      );
      assert.equal(
        cluster.podsOf('roll').filter((p) => p.spec.containers?.[0]?.image === 'agent:2').length,
        3,
      );
    } finally {
      await cluster.stop();
    }
  });
});
