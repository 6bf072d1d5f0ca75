import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event, Job, Pod } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { JOB_COMPLETION_INDEX_ANNOTATION, JOB_TRACKING_FINALIZER, JobController } from './job-controller.js';
import { formatIndexes, parseIndexes } from './indexes.js';
import { until as waitFor } from '../../../test/harness/until.js';

const log = componentLogger('job-controller-test');

const job = (name: string, spec: Partial<Job['spec']> = {}, restartPolicy = 'Never'): Job => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name, namespace: 'default' },
  spec: {
    template: { spec: { restartPolicy, containers: [{ name: 'work', image: 'busybox:1' }] } },
    ...spec,
  },
});

/** Waits until `check` holds (the harness's until, for a yes/no probe). */
const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000) =>
  waitFor(what, async () => (await check()) || undefined, timeoutMs, 10);

function setUp() {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  const informer = <T extends Pod | Job>(resource: string, kind: 'Pod' | 'Job') =>
    new Informer<T>({
      source: storeSource({ store, resource, decode: (bytes) => decodeObject(kind, bytes) as T }),
      logger: log,
    });
  const pods = informer<Pod>('pods', 'Pod');
  const jobs = informer<Job>('jobs', 'Job');
  const controller = new JobController({ handlers, jobs, pods, log, backoffMs: 50 });
  const start = async () => {
    await handlers.ensureSystemObjects();
    pods.start();
    jobs.start();
    await Promise.all([pods.waitForSync(), jobs.waitForSync()]);
    controller.start();
  };
  const stop = async () => {
    await controller.stop();
    await Promise.all([pods.stop(), jobs.stop()]);
  };
  const getJob = async (name: string) => (await handlers.get('Job', 'default', name)).object as Job;
  /** The pods the Job controls, from the API; `running`: only those not finished nor being deleted. */
  const podsOf = async (name: string, running = true): Promise<Pod[]> => {
    const uid = (await getJob(name)).metadata.uid;
    const { items } = await handlers.list('Pod', { namespace: 'default' });
    return items
      .map((item) => item.object as Pod)
      .filter((pod) => pod.metadata.ownerReferences?.some((ref) => ref.uid === uid && ref.controller))
      .filter(
        (pod) =>
          !running ||
          (!pod.metadata.deletionTimestamp &&
            pod.status?.phase !== 'Succeeded' &&
            pod.status?.phase !== 'Failed'),
      );
  };
  /** The agents' stand-in: the pod's containers ran and exited with `exitCode`. */
  const finish = async (pod: Pod, exitCode: number) => {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await handlers.updateStatus({
      ...pod,
      status: {
        phase: exitCode === 0 ? 'Succeeded' : 'Failed',
        containerStatuses: [
          {
            name: 'work',
            image: 'busybox:1',
            ready: false,
            restartCount: 0,
            state: {
              terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', finishedAt: now },
            },
          },
        ],
      },
    } as never);
  };
  const condition = async (name: string, type: string) =>
    (await getJob(name)).status?.conditions?.find((c) => c.type === type && c.status === 'True');
  const eventReasons = async (name: string) => {
    const { items } = await handlers.list('Event', { namespace: 'default' });
    return items
      .map((item) => item.object as Event)
      .filter((event) => event.involvedObject?.name === name && event.involvedObject?.kind === 'Job')
      .map((event) => event.reason);
  };
  return { store, handlers, controller, start, stop, getJob, podsOf, finish, condition, eventReasons };
}

describe('JobController', () => {
  test('runs completions pods parallelism at a time; Complete once they succeeded; counts survive the pods', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      await handlers.create(job('batch', { completions: 3, parallelism: 2 }));
      await until('2 active pods', async () => (await cluster.podsOf('batch')).length === 2);
      const [first, second] = await cluster.podsOf('batch');
      assert.ok(first!.metadata.finalizers?.includes(JOB_TRACKING_FINALIZER));
      assert.equal(first!.metadata.labels?.['batch.kubernetes.io/job-name'], 'batch');
      assert.match(first!.metadata.name!, /^batch-[a-z0-9]{5}$/);
      await until('active 2 in status', async () => (await cluster.getJob('batch')).status?.active === 2);
      assert.ok((await cluster.getJob('batch')).status?.startTime);

      await cluster.finish(first!, 0);
      await until('a third pod replaces the finished one', async () => {
        const running = await cluster.podsOf('batch');
        return running.length === 2 && running.every((pod) => pod.metadata.name !== first!.metadata.name);
      });
      await until('succeeded 1', async () => (await cluster.getJob('batch')).status?.succeeded === 1);
      const counted = (await handlers.get('Pod', 'default', first!.metadata.name!)).object as Pod;
      assert.ok(
        !counted.metadata.finalizers?.includes(JOB_TRACKING_FINALIZER),
        'finalizer removed once counted',
      );
      // the pod GC removing a counted pod does not lower the count
      await handlers.delete('Pod', 'default', first!.metadata.name!);

      for (const pod of await cluster.podsOf('batch')) await cluster.finish(pod, 0);
      await until('Complete', async () => (await cluster.condition('batch', 'Complete')) !== undefined);
      const done = await cluster.getJob('batch');
      assert.equal(done.status?.succeeded, 3);
      assert.equal(done.status?.active ?? 0, 0);
      assert.equal(done.status?.failed ?? 0, 0);
      assert.ok(done.status?.completionTime);
      assert.equal(done.status?.uncountedTerminatedPods, undefined);
      assert.equal((await cluster.podsOf('batch', false)).length, 2, 'no pod made past completions');
      assert.ok(second);
      await until('events', async () => {
        const reasons = await cluster.eventReasons('batch');
        return reasons.filter((r) => r === 'SuccessfulCreate').length === 3 && reasons.includes('Completed');
      });
    } finally {
      await cluster.stop();
    }
  });

  test('failed pods are re-created after a back-off until backoffLimit, then Failed BackoffLimitExceeded', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(job('flaky', { backoffLimit: 2 }));
      for (let failures = 0; failures < 3; failures++) {
        await until(`pod ${failures + 1}`, async () => (await cluster.podsOf('flaky')).length === 1);
        await cluster.finish((await cluster.podsOf('flaky'))[0]!, 1);
        await until(
          `failed ${failures + 1}`,
          async () => (await cluster.getJob('flaky')).status?.failed === failures + 1,
        );
      }
      const failed = await cluster.condition('flaky', 'Failed');
      assert.equal(failed?.reason, 'BackoffLimitExceeded');
      assert.equal(failed?.message, 'Job has reached the specified backoff limit');
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal((await cluster.podsOf('flaky', false)).length, 3, 'no pod after the limit');
      await until('event', async () =>
        (await cluster.eventReasons('flaky')).includes('BackoffLimitExceeded'),
      );
    } finally {
      await cluster.stop();
    }
  });

  test('Indexed: one pod per index with annotation, env and hostname; completedIndexes', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(
        job('idx', { completions: 3, parallelism: 3, completionMode: 'Indexed' }),
      );
      await until('3 pods', async () => (await cluster.podsOf('idx')).length === 3);
      const pods = await cluster.podsOf('idx');
      const byIndex = new Map(
        pods.map((pod) => [pod.metadata.annotations?.[JOB_COMPLETION_INDEX_ANNOTATION], pod]),
      );
      assert.deepEqual([...byIndex.keys()].sort(), ['0', '1', '2']);
      const one = byIndex.get('1')!;
      assert.equal(one.spec.hostname, 'idx-1');
      assert.match(one.metadata.name!, /^idx-1-[a-z0-9]{5}$/);
      assert.deepEqual(one.spec.containers?.[0]?.env, [{ name: 'JOB_COMPLETION_INDEX', value: '1' }]);

      await cluster.finish(one, 0);
      await until(
        'completedIndexes 1',
        async () => (await cluster.getJob('idx')).status?.completedIndexes === '1',
      );
      await cluster.finish(byIndex.get('2')!, 1);
      await until('index 2 again', async () =>
        (await cluster.podsOf('idx')).some(
          (pod) => pod.metadata.annotations?.[JOB_COMPLETION_INDEX_ANNOTATION] === '2',
        ),
      );
      for (const pod of await cluster.podsOf('idx')) await cluster.finish(pod, 0);
      await until('Complete', async () => (await cluster.condition('idx', 'Complete')) !== undefined);
      const done = await cluster.getJob('idx');
      assert.equal(done.status?.completedIndexes, '0-2');
      assert.equal(done.status?.succeeded, 3);
      assert.equal(done.status?.failed, 1);
    } finally {
      await cluster.stop();
    }
  });

  test('suspend deletes the active pods and sets Suspended; resume creates them again', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      await handlers.create(job('pausable', { parallelism: 2, completions: 4 }));
      await until('2 pods', async () => (await cluster.podsOf('pausable')).length === 2);
      let current = await cluster.getJob('pausable');
      await handlers.update({ ...current, spec: { ...current.spec, suspend: true } });
      await until(
        'Suspended',
        async () => (await cluster.condition('pausable', 'Suspended'))?.reason === 'JobSuspended',
      );
      await until('no active pod', async () => (await cluster.podsOf('pausable')).length === 0);
      await until('active 0', async () => ((await cluster.getJob('pausable')).status?.active ?? 0) === 0);
      assert.equal(
        (await cluster.getJob('pausable')).status?.failed ?? 0,
        0,
        'suspended pods are not failures',
      );
      current = await cluster.getJob('pausable');
      await handlers.update({ ...current, spec: { ...current.spec, suspend: false } });
      await until('2 pods again', async () => (await cluster.podsOf('pausable')).length === 2);
      const suspended = (await cluster.getJob('pausable')).status?.conditions?.find(
        (c) => c.type === 'Suspended',
      );
      assert.equal(suspended?.status, 'False');
      assert.equal(suspended?.reason, 'JobResumed');
    } finally {
      await cluster.stop();
    }
  });

  test('activeDeadlineSeconds fails the Job with DeadlineExceeded and deletes its pods', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(job('slow', { activeDeadlineSeconds: 1 }));
      await until('a pod', async () => (await cluster.podsOf('slow')).length === 1);
      await until(
        'DeadlineExceeded',
        async () => (await cluster.condition('slow', 'Failed'))?.reason === 'DeadlineExceeded',
        4000,
      );
      await until('pod deleted', async () => (await cluster.podsOf('slow')).length === 0);
    } finally {
      await cluster.stop();
    }
  });

  test('ttlSecondsAfterFinished deletes a finished Job', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(job('brief', { ttlSecondsAfterFinished: 0 }));
      await until('a pod', async () => (await cluster.podsOf('brief')).length === 1);
      const pod = (await cluster.podsOf('brief'))[0]!;
      await cluster.finish(pod, 0);
      await until('Job gone', async () => {
        const { items } = await cluster.handlers.list('Job', { namespace: 'default' });
        return items.length === 0;
      });
      const left = (await cluster.handlers.get('Pod', 'default', pod.metadata.name!)).object as Pod;
      assert.ok(
        !left.metadata.finalizers?.includes(JOB_TRACKING_FINALIZER),
        'nothing holds the pod for the GC',
      );
    } finally {
      await cluster.stop();
    }
  });

  test('podFailurePolicy: Ignore does not count, FailJob fails the Job at once', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(
        job('policed', {
          backoffLimit: 6,
          podFailurePolicy: {
            rules: [
              { action: 'Ignore', onExitCodes: { operator: 'In', values: [3] } },
              { action: 'FailJob', onExitCodes: { containerName: 'work', operator: 'In', values: [42] } },
            ],
          },
        }),
      );
      await until('a pod', async () => (await cluster.podsOf('policed')).length === 1);
      const ignored = (await cluster.podsOf('policed'))[0]!;
      await cluster.finish(ignored, 3);
      await until('a new pod', async () =>
        (await cluster.podsOf('policed')).some((pod) => pod.metadata.name !== ignored.metadata.name),
      );
      assert.equal((await cluster.getJob('policed')).status?.failed ?? 0, 0);
      await cluster.finish((await cluster.podsOf('policed'))[0]!, 42);
      await until('Failed', async () => (await cluster.condition('policed', 'Failed')) !== undefined);
      const failed = await cluster.condition('policed', 'Failed');
      assert.equal(failed?.reason, 'PodFailurePolicy');
      assert.match(
        failed?.message ?? '',
        /Container work for pod default\/policed-\w+ failed with exit code 42 matching FailJob rule at index 1/,
      );
    } finally {
      await cluster.stop();
    }
  });

  test("restartPolicy OnFailure: the containers' restarts count toward backoffLimit", async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(job('restarts', { backoffLimit: 2 }, 'OnFailure'));
      await until('a pod', async () => (await cluster.podsOf('restarts')).length === 1);
      const pod = (await cluster.podsOf('restarts'))[0]!;
      await cluster.handlers.updateStatus({
        ...pod,
        status: {
          phase: 'Running',
          containerStatuses: [{ name: 'work', image: 'busybox:1', ready: false, restartCount: 2 }],
        },
      } as never);
      await until(
        'BackoffLimitExceeded',
        async () => (await cluster.condition('restarts', 'Failed'))?.reason === 'BackoffLimitExceeded',
      );
      await until('its pod deleted', async () => (await cluster.podsOf('restarts')).length === 0);
    } finally {
      await cluster.stop();
    }
  });

  test('a pod whose Job is gone loses the job-tracking finalizer once it is deleted', async () => {
    const cluster = setUp();
    const { handlers } = cluster;
    await cluster.start();
    try {
      await handlers.create(job('gone'));
      await until('a pod', async () => (await cluster.podsOf('gone')).length === 1);
      const pod = (await cluster.podsOf('gone'))[0]!;
      await handlers.delete('Job', 'default', 'gone', { propagationPolicy: 'Background' });
      await assert.rejects(handlers.get('Job', 'default', 'gone'));
      // what the garbage collector does to a dependent of a Job deleted in the background
      await handlers.delete('Pod', 'default', pod.metadata.name!);
      await until('the pod gone', async () => {
        const { items } = await handlers.list('Pod', { namespace: 'default' });
        return items.length === 0;
      });
    } finally {
      await cluster.stop();
    }
  });

  test('completedIndexes text', () => {
    assert.equal(formatIndexes([5, 1, 3, 4, 7, 3]), '1,3-5,7');
    assert.deepEqual(parseIndexes('1,3-5,7'), [1, 3, 4, 5, 7]);
    assert.deepEqual(parseIndexes(''), []);
  });
});
