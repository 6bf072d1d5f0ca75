import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Deployment, Pod, ReplicaSet } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { ReplicaSetController } from '../replicaset/replicaset-controller.js';
import { DeploymentController, REVISION_ANNOTATION, podTemplateHash } from './deployment-controller.js';
import { fenceposts, maxScaledDown, newReplicaSetReplicas, scaledValue } from './rollout-math.js';

const log = componentLogger('deployment-controller-test');

const deployment = (name: string, image: string, spec: Partial<Deployment['spec']> = {}): Deployment => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: 'default' },
  spec: {
    replicas: 4,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: { containers: [{ name: 'web', image }] },
    },
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

/** The API, both controllers, and a stand-in for the agents that reports every new pod Ready. */
function setUp(options: { podsBecomeReady?: boolean } = {}) {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  const informer = <K extends 'Pod' | 'ReplicaSet' | 'Deployment'>(kind: K, resource: string) =>
    new Informer({
      source: storeSource({ store, resource, decode: (bytes) => decodeObject(kind, bytes) }),
      logger: log,
    });
  const pods = informer('Pod', 'pods');
  const replicaSets = informer('ReplicaSet', 'replicasets');
  const deployments = informer('Deployment', 'deployments');
  const rsController = new ReplicaSetController({ handlers, replicaSets, pods, log });
  const controller = new DeploymentController({ handlers, deployments, replicaSets, pods, log });
  pods.onChange((key, change) => {
    const pod = pods.get(key)?.object;
    if (change !== 'added' || pod === undefined || options.podsBecomeReady === false) return;
    void handlers
      .updateStatus({
        ...pod,
        status: {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() }],
        },
      })
      .catch(() => {});
  });
  const podsOf = (name: string): Pod[] =>
    pods
      .list()
      .map((c) => c.object)
      .filter((p) => p.metadata.labels?.['app'] === name && !p.metadata.deletionTimestamp);
  const replicaSetsOf = (name: string): ReplicaSet[] =>
    replicaSets
      .list()
      .map((c) => c.object)
      .filter((rs) => rs.metadata.labels?.['app'] === name);
  const get = async (name: string) =>
    (await handlers.get('Deployment', 'default', name)).object as Deployment;
  return {
    handlers,
    podsOf,
    replicaSetsOf,
    get,
    async edit(name: string, change: (d: Deployment) => Deployment) {
      for (;;) {
        try {
          await handlers.update(change(await get(name)));
          return;
        } catch (err) {
          if (!(err instanceof Error && /modified/.test(err.message))) throw err;
        }
      }
    },
    async start() {
      await handlers.ensureSystemObjects();
      for (const i of [pods, replicaSets, deployments]) i.start();
      await Promise.all([pods, replicaSets, deployments].map((i) => i.waitForSync()));
      rsController.start();
      controller.start();
    },
    async stop() {
      await controller.stop();
      await rsController.stop();
      for (const i of [pods, replicaSets, deployments]) await i.stop();
    },
  };
}

const image = (pod: Pod) => pod.spec.containers?.[0]?.image;
const condition = (d: Deployment, type: string) => d.status?.conditions?.find((c) => c.type === type);

describe('DeploymentController', () => {
  test('a Deployment gets one ReplicaSet named by its template hash, revision 1, and reports itself complete', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(deployment('web', 'web:1'));
      await until(
        'complete',
        async () => condition(await cluster.get('web'), 'Progressing')?.reason === 'NewReplicaSetAvailable',
      );
      const [rs, ...others] = cluster.replicaSetsOf('web');
      assert.equal(others.length, 0);
      const d = await cluster.get('web');
      assert.equal(rs!.metadata.name, `web-${podTemplateHash(d.spec.template!, 0)}`);
      assert.equal(rs!.metadata.annotations?.[REVISION_ANNOTATION], '1');
      assert.equal(d.metadata.annotations?.[REVISION_ANNOTATION], '1');
      assert.equal(
        rs!.spec.selector?.matchLabels?.['pod-template-hash'],
        rs!.metadata.labels?.['pod-template-hash'],
      );
      assert.equal(cluster.podsOf('web').length, 4);
      assert.equal(d.status?.availableReplicas, 4);
      assert.equal(d.status?.updatedReplicas, 4);
      assert.equal(condition(d, 'Available')?.status, 'True');
    } finally {
      await cluster.stop();
    }
  });

  test('a rolling update stays within maxSurge and maxUnavailable at every step, then rolls back to the old ReplicaSet', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(
        deployment('roll', 'web:1', {
          replicas: 4,
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } },
        }),
      );
      await until(
        'v1 complete',
        async () => condition(await cluster.get('roll'), 'Progressing')?.reason === 'NewReplicaSetAvailable',
      );
      const v1 = cluster.replicaSetsOf('roll')[0]!.metadata.name;
      let most = 0;
      let fewestReady = Infinity;
      const sampler = setInterval(() => {
        const pods = cluster.podsOf('roll');
        most = Math.max(most, pods.length);
        const ready = pods.filter((p) =>
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        fewestReady = Math.min(fewestReady, ready.length);
      }, 1);
      try {
        await cluster.edit('roll', (d) => ({
          ...d,
          spec: {
            ...d.spec,
            template: { ...d.spec.template, spec: { containers: [{ name: 'web', image: 'web:2' }] } },
          },
        }));
        await until('v2 rolled out', async () => {
          const d = await cluster.get('roll');
          return (
            d.metadata.annotations?.[REVISION_ANNOTATION] === '2' &&
            condition(d, 'Progressing')?.reason === 'NewReplicaSetAvailable' &&
            cluster.podsOf('roll').every((p) => image(p) === 'web:2') &&
            cluster.podsOf('roll').length === 4
          );
        });
      } finally {
        clearInterval(sampler);
      }
      assert.ok(most <= 5, `at most replicas + maxSurge pods (saw ${most})`);
      assert.ok(fewestReady >= 3, `at least replicas - maxUnavailable ready (saw ${fewestReady})`);
      const old = cluster.replicaSetsOf('roll').find((rs) => rs.metadata.name === v1)!;
      assert.equal(old.spec.replicas, 0, 'the old ReplicaSet is kept, scaled to 0');

      // undo: the template of revision 1 again; its ReplicaSet comes back as revision 3
      await cluster.edit('roll', (d) => ({
        ...d,
        spec: {
          ...d.spec,
          template: { ...d.spec.template, spec: { containers: [{ name: 'web', image: 'web:1' }] } },
        },
      }));
      await until('back on v1', async () => {
        const rs = cluster.replicaSetsOf('roll').find((r) => r.metadata.name === v1);
        return (
          rs?.spec.replicas === 4 &&
          rs.metadata.annotations?.[REVISION_ANNOTATION] === '3' &&
          cluster.podsOf('roll').every((p) => image(p) === 'web:1')
        );
      });
      assert.equal(cluster.replicaSetsOf('roll').length, 2, 'no third ReplicaSet for a template seen before');
    } finally {
      await cluster.stop();
    }
  });

  test('Recreate: no new pod while an old one is left', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(
        deployment('rec', 'web:1', { replicas: 3, strategy: { type: 'Recreate' } }),
      );
      await until('v1 up', () => cluster.podsOf('rec').length === 3);
      let mixed = false;
      const sampler = setInterval(() => {
        const images = new Set(cluster.podsOf('rec').map(image));
        if (images.size > 1) mixed = true;
      }, 1);
      try {
        await cluster.edit('rec', (d) => ({
          ...d,
          spec: {
            ...d.spec,
            template: { ...d.spec.template, spec: { containers: [{ name: 'web', image: 'web:2' }] } },
          },
        }));
        await until(
          'v2 up',
          () =>
            cluster.podsOf('rec').length === 3 && cluster.podsOf('rec').every((p) => image(p) === 'web:2'),
        );
      } finally {
        clearInterval(sampler);
      }
      assert.equal(mixed, false, 'old and new pods never ran together');
    } finally {
      await cluster.stop();
    }
  });

  test('paused: a new template waits; scaling still works; resumed it rolls; history is kept to the limit', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(deployment('hist', 'web:1', { replicas: 2, revisionHistoryLimit: 1 }));
      await until('v1 up', () => cluster.podsOf('hist').length === 2);
      await cluster.edit('hist', (d) => ({
        ...d,
        spec: {
          ...d.spec,
          paused: true,
          replicas: 3,
          template: { ...d.spec.template, spec: { containers: [{ name: 'web', image: 'web:2' }] } },
        },
      }));
      await until('scaled while paused', () => cluster.podsOf('hist').length === 3);
      await until(
        'paused condition',
        async () => condition(await cluster.get('hist'), 'Progressing')?.reason === 'DeploymentPaused',
      );
      assert.equal(cluster.replicaSetsOf('hist').length, 1, 'no rollout while paused');
      assert.ok(cluster.podsOf('hist').every((p) => image(p) === 'web:1'));

      await cluster.edit('hist', (d) => ({ ...d, spec: { ...d.spec, paused: false } }));
      await until(
        'v2 rolled',
        () =>
          cluster.podsOf('hist').length === 3 && cluster.podsOf('hist').every((p) => image(p) === 'web:2'),
      );
      await cluster.edit('hist', (d) => ({
        ...d,
        spec: {
          ...d.spec,
          template: { ...d.spec.template, spec: { containers: [{ name: 'web', image: 'web:3' }] } },
        },
      }));
      await until(
        'v3 rolled, one old ReplicaSet kept',
        () =>
          cluster.podsOf('hist').every((p) => image(p) === 'web:3') &&
          cluster.replicaSetsOf('hist').filter((rs) => !rs.metadata.deletionTimestamp).length === 2,
      );
    } finally {
      await cluster.stop();
    }
  });

  test('no progress for progressDeadlineSeconds: Progressing False, ProgressDeadlineExceeded', async () => {
    const cluster = setUp({ podsBecomeReady: false });
    await cluster.start();
    try {
      await cluster.handlers.create(
        deployment('stuck', 'web:1', { replicas: 2, progressDeadlineSeconds: 1 }),
      );
      await until(
        'deadline exceeded',
        async () =>
          condition(await cluster.get('stuck'), 'Progressing')?.reason === 'ProgressDeadlineExceeded',
        6000,
      );
      const d = await cluster.get('stuck');
      assert.equal(condition(d, 'Progressing')?.status, 'False');
      assert.equal(condition(d, 'Available')?.status, 'False');
      assert.equal(d.status?.unavailableReplicas, 2);
    } finally {
      await cluster.stop();
    }
  });
});

describe('rollout arithmetic', () => {
  test('percentages: surge rounds up, unavailable down; both zero would stall, so one may be unavailable', () => {
    assert.equal(scaledValue('25%', 10, true), 3);
    assert.equal(scaledValue('25%', 10, false), 2);
    assert.equal(scaledValue(2, 10, false), 2);
    assert.deepEqual(fenceposts(0, 0, 5), { surge: 0, unavailable: 1 });
    assert.deepEqual(fenceposts('25%', '25%', 4), { surge: 1, unavailable: 1 });
    assert.throws(() => scaledValue('lots', 3, true), /neither a whole number nor a percentage/);
  });

  test('the new ReplicaSet grows within replicas + surge; the old shrink within availability', () => {
    assert.equal(newReplicaSetReplicas({ replicas: 4, surge: 1, allReplicas: 4, newReplicas: 0 }), 1);
    assert.equal(newReplicaSetReplicas({ replicas: 4, surge: 1, allReplicas: 5, newReplicas: 1 }), 1);
    assert.equal(newReplicaSetReplicas({ replicas: 4, surge: 10, allReplicas: 4, newReplicas: 0 }), 4);
    assert.equal(
      maxScaledDown({ replicas: 4, unavailable: 1, allReplicas: 5, newReplicas: 1, newAvailable: 0 }),
      1,
    );
    assert.equal(
      maxScaledDown({ replicas: 4, unavailable: 0, allReplicas: 5, newReplicas: 1, newAvailable: 0 }),
      0,
    );
  });
});
