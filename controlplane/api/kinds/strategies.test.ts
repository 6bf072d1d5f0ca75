import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../../proto/errors.js';
import type {
  ConfigMap,
  CronJob,
  Job,
  Lease,
  Pod,
  PriorityClass,
  ServiceAccount,
} from '../../../proto/gen/types.js';
import { KINDS } from '../../../proto/kinds.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { MemoryStore } from '../../store/memory-store.js';
import { ApiHandlers } from '../handlers.js';
import { allStrategies, strategyOf } from './index.js';

async function handlersOn(): Promise<{ handlers: ApiHandlers; store: MemoryStore }> {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log: componentLogger('strategies-test') });
  await handlers.ensureSystemObjects();
  return { handlers, store };
}

const priorityClass = (name: string, value: number, globalDefault = false): PriorityClass => ({
  apiVersion: 'scheduling.k8s.io/v1',
  kind: 'PriorityClass',
  metadata: { name },
  value,
  globalDefault,
});

const cronJob = (schedule: string): CronJob => ({
  apiVersion: 'batch/v1',
  kind: 'CronJob',
  metadata: { name: 'nightly', namespace: 'default' },
  spec: {
    schedule,
    jobTemplate: {
      spec: {
        template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox:1' }] } },
      },
    },
  },
});

const job = (spec: Partial<Job['spec']> = {}): Job => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 'once', namespace: 'default' },
  spec: {
    template: {
      metadata: { labels: { app: 'once' } },
      spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox:1' }] },
    },
    ...spec,
  },
});

describe('kind strategies', () => {
  test('a Job selects its pods by its uid unless manualSelector; a chosen selector must match', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const created = (await handlers.create(job())).object as Job;
      const uid = created.metadata.uid!;
      assert.deepEqual(created.spec.selector, { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } });
      assert.deepEqual(created.spec.template?.metadata?.labels, {
        app: 'once',
        'batch.kubernetes.io/controller-uid': uid,
        'batch.kubernetes.io/job-name': 'once',
        'controller-uid': uid,
        'job-name': 'once',
      });
      // an update keeps the generated selector
      await handlers.update({ ...created, spec: { ...created.spec, parallelism: 2 } });
      await assert.rejects(
        handlers.create({ ...job({ selector: { matchLabels: { app: 'once' } } }), metadata: { name: 'x' } }),
        (err: unknown) =>
          err instanceof InvalidArgumentError && /spec\.selector.*not auto-generated/.test(err.message),
      );
      const manual = (
        await handlers.create({
          ...job({ manualSelector: true, selector: { matchLabels: { app: 'once' } } }),
          metadata: { name: 'manual', namespace: 'default' },
        })
      ).object as Job;
      assert.deepEqual(manual.spec.selector, { matchLabels: { app: 'once' } });
      assert.deepEqual(manual.spec.template?.metadata?.labels, { app: 'once' });
      await assert.rejects(
        handlers.create({
          ...job({ manualSelector: true, selector: { matchLabels: { app: 'other' } } }),
          metadata: { name: 'mismatch', namespace: 'default' },
        }),
        (err: unknown) =>
          err instanceof InvalidArgumentError && /template\.metadata\.labels/.test(err.message),
      );
    } finally {
      await store.close();
    }
  });

  test('every kind has exactly one strategy, for that kind', () => {
    assert.deepEqual(
      allStrategies().map((strategy) => strategy.info.kind),
      KINDS.map((info) => info.kind),
    );
    for (const info of KINDS) assert.equal(strategyOf(info.kind).info, info);
    assert.throws(() => strategyOf('Widget'), InvalidArgumentError);
  });

  test('system objects are created at start-up and cannot be deleted', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const classes = (await handlers.list('PriorityClass')).items.map(
        (item) => item.object as PriorityClass,
      );
      assert.deepEqual(
        classes.map((pc) => [pc.metadata.name, pc.value, pc.preemptionPolicy]),
        [
          ['system-cluster-critical', 2000000000, 'PreemptLowerPriority'],
          ['system-node-critical', 2000001000, 'PreemptLowerPriority'],
        ],
      );
      await assert.rejects(
        handlers.delete('PriorityClass', '', 'system-node-critical'),
        (err: unknown) =>
          err instanceof FailedPreconditionError &&
          /the system priorityclass "system-node-critical" may not be deleted/.test(err.message),
      );
      const namespaces = (await handlers.list('Namespace')).items.map((item) => item.object.metadata.name);
      assert.deepEqual(namespaces, ['default', 'kube-node-lease', 'kube-public', 'kube-system']);
      for (const name of namespaces) {
        await assert.rejects(handlers.delete('Namespace', '', name!), FailedPreconditionError);
      }
      // Idempotent: a second control plane (or a restart) finds them there.
      await handlers.ensureSystemObjects();
    } finally {
      await store.close();
    }
  });

  test('one PriorityClass at most is the global default', async () => {
    const { handlers, store } = await handlersOn();
    try {
      await handlers.create(priorityClass('batch', 100, true));
      await assert.rejects(
        handlers.create(priorityClass('web', 1000, true)),
        (err: unknown) =>
          err instanceof FailedPreconditionError && /already set on "batch"/.test(err.message),
      );
      await assert.rejects(handlers.get('PriorityClass', '', 'web'), NotFoundError);
      await handlers.create(priorityClass('web', 1000));
      const web = (await handlers.get('PriorityClass', '', 'web')).object as PriorityClass;
      await assert.rejects(handlers.update({ ...web, globalDefault: true }), FailedPreconditionError);
      // The default itself may be updated (it does not conflict with itself).
      const batch = (await handlers.get('PriorityClass', '', 'batch')).object as PriorityClass;
      await handlers.update({ ...batch, description: 'batch work' });
    } finally {
      await store.close();
    }
  });

  test('kinds without a status subresource refuse UpdateStatus; kinds with one keep status on update', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const cm: ConfigMap = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'c', namespace: 'default' },
        data: { a: '1' },
      };
      await handlers.create(cm);
      await assert.rejects(
        handlers.updateStatus(cm),
        (err: unknown) =>
          err instanceof NotFoundError && /configmaps have no status subresource/.test(err.message),
      );
      const created = (await handlers.create(cronJob('@hourly'))).object as CronJob;
      const withStatus = (
        await handlers.updateStatus({ ...created, status: { lastScheduleTime: '2026-12-06T20:00:00Z' } })
      ).object as CronJob;
      const updated = (await handlers.update({ ...withStatus, spec: { ...withStatus.spec, suspend: true } }))
        .object as CronJob;
      assert.equal(updated.status?.lastScheduleTime, '2026-12-06T20:00:00Z');
      assert.equal(updated.spec.suspend, true);
    } finally {
      await store.close();
    }
  });

  test('a Lease is selectable by its holder', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const lease = (name: string, holder: string): Lease => ({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace: 'kube-system' },
        spec: { holderIdentity: holder, leaseDurationSeconds: 15 },
      });
      await handlers.create(lease('scheduler', 'cp-1'));
      await handlers.create(lease('controllers', 'cp-2'));
      const held = await handlers.list('Lease', { fieldSelector: 'spec.holderIdentity=cp-2' });
      assert.deepEqual(
        held.items.map((item) => item.object.metadata.name),
        ['controllers'],
      );
    } finally {
      await store.close();
    }
  });
});

describe('ServiceAccount, added through its strategy alone', () => {
  const pod = (name: string, serviceAccountName?: string): Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      containers: [{ name: 'c', image: 'busybox:1.36' }],
      ...(serviceAccountName !== undefined ? { serviceAccountName } : {}),
    },
  });
  const account = (name: string, namespace = 'default'): ServiceAccount => ({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name, namespace },
    automountServiceAccountToken: false,
  });

  test("a pod that names no image pull secrets gets its ServiceAccount's; one that names some keeps its own", async () => {
    const { handlers, store } = await handlersOn();
    try {
      await handlers.create({ ...account('puller'), imagePullSecrets: [{ name: 'registry-cred' }] });
      const inherits = (await handlers.create(pod('inherits', 'puller'))).object as Pod;
      assert.deepEqual(inherits.spec.imagePullSecrets, [{ name: 'registry-cred' }]);
      const own = (
        await handlers.create({
          ...pod('own', 'puller'),
          spec: { ...pod('own', 'puller').spec, imagePullSecrets: [{ name: 'mine' }] },
        })
      ).object as Pod;
      assert.deepEqual(own.spec.imagePullSecrets, [{ name: 'mine' }]);
      const plain = (await handlers.create(pod('plain'))).object as Pod;
      assert.equal(plain.spec.imagePullSecrets, undefined, 'the default account has none');
    } finally {
      await store.close();
    }
  });

  test('a pod runs as default unless it names another, which must exist in its namespace', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const plain = (await handlers.create(pod('plain'))).object as Pod;
      assert.equal(plain.spec.serviceAccountName, 'default');
      await assert.rejects(
        handlers.create(pod('builds', 'builder')),
        (err: unknown) =>
          err instanceof FailedPreconditionError &&
          /spec\.serviceAccountName: ServiceAccount "builder" not found in namespace "default"/.test(
            err.message,
          ),
      );
      await assert.rejects(
        handlers.create(pod('builds', 'builder'), { dryRun: true }),
        FailedPreconditionError,
      );
      await handlers.create(account('builder', 'kube-system'));
      await assert.rejects(
        handlers.create(pod('builds', 'builder')),
        FailedPreconditionError,
        'another namespace',
      );
      const created = (await handlers.create(account('builder'))).object as ServiceAccount;
      assert.equal(created.automountServiceAccountToken, false);
      const builds = (await handlers.create(pod('builds', 'builder'))).object as Pod;
      assert.equal(builds.spec.serviceAccountName, 'builder');
      // Admission judges new pods only: the pod stays, and may be updated, after its account goes.
      await handlers.delete('ServiceAccount', 'default', 'builder');
      await handlers.update({ ...builds, metadata: { ...builds.metadata, labels: { team: 'ci' } } });
      const listed = await handlers.list('ServiceAccount', { namespace: 'kube-system' });
      assert.ok(listed.items.some((item) => item.object.metadata.name === 'builder'));
    } finally {
      await store.close();
    }
  });
});

describe('dry runs', () => {
  test('a dry-run create defaults, validates and admits, and stores nothing', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const before = await store.currentRevision();
      const dry = (await handlers.create(cronJob('0 3 * * *'), { dryRun: true })).object as CronJob;
      assert.equal(dry.spec.concurrencyPolicy, 'Allow');
      assert.equal(dry.metadata.resourceVersion, undefined);
      assert.equal(await store.currentRevision(), before);
      await assert.rejects(handlers.get('CronJob', 'default', 'nightly'), NotFoundError);
      await assert.rejects(
        handlers.create(cronJob('0 3 * *'), { dryRun: true }),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'spec.schedule',
      );
      await handlers.create(cronJob('0 3 * * *'));
      await assert.rejects(handlers.create(cronJob('0 3 * * *'), { dryRun: true }), AlreadyExistsError);
      await handlers.create(priorityClass('first', 1, true));
      await assert.rejects(
        handlers.create(priorityClass('second', 2, true), { dryRun: true }),
        FailedPreconditionError,
      );
    } finally {
      await store.close();
    }
  });

  test('a dry-run delete checks everything and removes nothing', async () => {
    const { handlers, store } = await handlersOn();
    try {
      await handlers.create(cronJob('0 3 * * *'));
      const before = await store.currentRevision();
      const dry = (await handlers.delete('CronJob', 'default', 'nightly', { dryRun: true })).object;
      assert.equal(dry.metadata.name, 'nightly');
      assert.equal(await store.currentRevision(), before);
      await handlers.get('CronJob', 'default', 'nightly');
      await assert.rejects(handlers.delete('CronJob', 'default', 'absent', { dryRun: true }), NotFoundError);
      await assert.rejects(
        handlers.delete('Namespace', '', 'default', { dryRun: true }),
        FailedPreconditionError,
      );
      const marked = (await handlers
        .delete('Namespace', '', 'kube-public', { dryRun: false })
        .catch((err: unknown) => err)) as Error;
      assert.ok(marked instanceof FailedPreconditionError);
    } finally {
      await store.close();
    }
  });

  test('a dry-run update returns the object as it would be stored and changes nothing', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const created = (await handlers.create(cronJob('0 3 * * *'))).object as CronJob;
      const before = await store.currentRevision();
      const dry = (
        await handlers.update(
          { ...created, spec: { ...created.spec, schedule: '0 4 * * *' } },
          { dryRun: true },
        )
      ).object as CronJob;
      assert.equal(dry.spec.schedule, '0 4 * * *');
      assert.equal(dry.metadata.generation, 2);
      assert.equal(await store.currentRevision(), before);
      const stored = (await handlers.get('CronJob', 'default', 'nightly')).object as CronJob;
      assert.equal(stored.spec.schedule, '0 3 * * *');
    } finally {
      await store.close();
    }
  });
});

describe("Priority admission: a new pod's priority comes from its PriorityClass", () => {
  const pod = (name: string, spec: Partial<Pod['spec']> = {}): Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { containers: [{ name: 'c', image: 'web:1' }], ...spec },
  });

  test('no class and no global default: priority 0; a system class: its value', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const plain = (await handlers.create(pod('plain'))).object as Pod;
      assert.equal(plain.spec.priority, 0);
      assert.equal(plain.spec.preemptionPolicy, 'PreemptLowerPriority');
      assert.equal(plain.spec.priorityClassName, undefined);
      const critical = (
        await handlers.create(pod('critical', { priorityClassName: 'system-cluster-critical' }))
      ).object as Pod;
      assert.equal(critical.spec.priority, 2_000_000_000);
    } finally {
      await store.close();
    }
  });

  test("a class's value and preemptionPolicy; the global default names itself on pods that name none", async () => {
    const { handlers, store } = await handlersOn();
    try {
      await handlers.create({ ...priorityClass('batch-low', 10), preemptionPolicy: 'Never' });
      await handlers.create(priorityClass('everyday', 50, true));
      const low = (await handlers.create(pod('low', { priorityClassName: 'batch-low' }))).object as Pod;
      assert.equal(low.spec.priority, 10);
      assert.equal(low.spec.preemptionPolicy, 'Never');
      const unnamed = (await handlers.create(pod('unnamed'))).object as Pod;
      assert.equal(unnamed.spec.priorityClassName, 'everyday');
      assert.equal(unnamed.spec.priority, 50);
      assert.equal(
        ((await handlers.get('Pod', 'default', 'unnamed')).object as Pod).spec.priority,
        50,
        'stored',
      );
    } finally {
      await store.close();
    }
  });

  test('an unknown class, or a priority of its own that differs, is refused naming the field; nothing is stored', async () => {
    const { handlers, store } = await handlersOn();
    try {
      await handlers.create(priorityClass('high', 1000));
      await assert.rejects(
        handlers.create(pod('nowhere', { priorityClassName: 'no-such-class' })),
        (err: unknown) =>
          err instanceof FailedPreconditionError &&
          /spec\.priorityClassName: no PriorityClass with name "no-such-class" was found/.test(err.message),
      );
      await assert.rejects(
        handlers.create(pod('own', { priorityClassName: 'high', priority: 7 })),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'spec.priority' &&
          /priority \(7\) must not be provided in pod spec; priority admission computed 1000/.test(
            err.message,
          ),
      );
      assert.ok((await handlers.create(pod('same', { priorityClassName: 'high', priority: 1000 }))).object);
      await assert.rejects(handlers.get('Pod', 'default', 'own'), NotFoundError);
      await assert.rejects(handlers.get('Pod', 'default', 'nowhere'), NotFoundError);
    } finally {
      await store.close();
    }
  });
});
