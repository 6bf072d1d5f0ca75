import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CronJob, Event, Job } from '../../../proto/gen/types.js';
import { Informer } from '../../../proto/informer/informer.js';
import { ManualClock } from '../../../proto/informer/manual-clock.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { until as waitFor } from '../../../test/harness/until.js';
import { CronJobController, SCHEDULED_TIMESTAMP_ANNOTATION } from './cronjob-controller.js';
import { ScheduleTimes } from './schedule-times.js';

const log = componentLogger('cronjob-controller-test');
const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000) =>
  waitFor(what, async () => (await check()) || undefined, timeoutMs, 10);

/** 2026-12-07T10:00:30Z: half a minute past a full hour. */
const START = Date.UTC(2026, 11, 7, 10, 0, 30);
const MINUTE = 60_000;

const cronJob = (name: string, spec: Partial<CronJob['spec']> = {}): CronJob => ({
  apiVersion: 'batch/v1',
  kind: 'CronJob',
  metadata: { name, namespace: 'default' },
  spec: {
    schedule: '*/5 * * * *',
    jobTemplate: {
      metadata: { labels: { app: name } },
      spec: {
        template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox:1' }] } },
      },
    },
    ...spec,
  },
});

function setUp() {
  const clock = new ManualClock(START);
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log, now: () => new Date(clock.now()) });
  const cronJobs = new Informer<CronJob>({
    source: storeSource({ store, resource: 'cronjobs', decode: (bytes) => decodeObject('CronJob', bytes) }),
    logger: log,
  });
  const jobs = new Informer<Job>({
    source: storeSource({ store, resource: 'jobs', decode: (bytes) => decodeObject('Job', bytes) }),
    logger: log,
  });
  const controller = new CronJobController({ handlers, cronJobs, jobs, log, clock });
  const start = async () => {
    await handlers.ensureSystemObjects();
    cronJobs.start();
    jobs.start();
    await Promise.all([cronJobs.waitForSync(), jobs.waitForSync()]);
    controller.start();
  };
  const stop = async () => {
    await controller.stop();
    await Promise.all([cronJobs.stop(), jobs.stop()]);
  };
  const jobNames = async () =>
    (await handlers.list('Job', { namespace: 'default' })).items
      .map((item) => item.object as Job)
      .filter((job) => !job.metadata.deletionTimestamp)
      .map((job) => job.metadata.name!)
      .sort();
  const getCronJob = async (name: string) =>
    (await handlers.get('CronJob', 'default', name)).object as CronJob;
  /** The Job controller's stand-in: the Job finished with `type` (Complete or Failed). */
  const finishJob = async (name: string, type: 'Complete' | 'Failed') => {
    const job = (await handlers.get('Job', 'default', name)).object as Job;
    const time = new Date(clock.now()).toISOString().replace(/\.\d+Z$/, 'Z');
    await handlers.updateStatus({
      ...job,
      status: {
        startTime: time,
        ...(type === 'Complete' ? { completionTime: time, succeeded: 1 } : { failed: 1 }),
        conditions: [{ type, status: 'True', lastTransitionTime: time }],
      },
    } as never);
  };
  const eventReasons = async () =>
    (await handlers.list('Event', { namespace: 'default' })).items.map(
      (item) => (item.object as Event).reason,
    );
  /** Moves the clock and lets the controller's timers fire. */
  const advance = async (ms: number) => {
    clock.advance(ms);
    await new Promise((resolve) => setTimeout(resolve, 20));
  };
  return { clock, handlers, start, stop, jobNames, getCronJob, finishJob, eventReasons, advance };
}

const minutesAt = (ms: number) => Math.floor(ms / MINUTE);
const FIRST = START - 30_000 + 5 * MINUTE; // 10:05

describe('CronJobController', () => {
  test('a Job per schedule time, named by its minute; status; history limits', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(
        cronJob('tick', { successfulJobsHistoryLimit: 1, failedJobsHistoryLimit: 1 }),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(await cluster.jobNames(), [], 'nothing before the first schedule time');
      await cluster.advance(5 * MINUTE);
      const first = `tick-${minutesAt(FIRST)}`;
      await until('the 10:05 Job', async () => (await cluster.jobNames()).includes(first));
      const job = (await cluster.handlers.get('Job', 'default', first)).object as Job;
      assert.equal(job.metadata.annotations?.[SCHEDULED_TIMESTAMP_ANNOTATION], '2026-12-07T10:05:00Z');
      assert.equal(job.metadata.labels?.app, 'tick');
      assert.equal(job.metadata.ownerReferences?.[0]?.kind, 'CronJob');
      await until('status', async () => {
        const status = (await cluster.getCronJob('tick')).status;
        return status?.lastScheduleTime === '2026-12-07T10:05:00Z' && status.active?.[0]?.name === first;
      });

      await cluster.finishJob(first, 'Complete');
      await until('lastSuccessfulTime, not active', async () => {
        const status = (await cluster.getCronJob('tick')).status;
        return status?.lastSuccessfulTime !== undefined && (status.active ?? []).length === 0;
      });
      await cluster.advance(5 * MINUTE);
      const second = `tick-${minutesAt(FIRST + 5 * MINUTE)}`;
      await until('the 10:10 Job', async () => (await cluster.jobNames()).includes(second));
      await cluster.finishJob(second, 'Complete');
      await until('one successful Job kept', async () => (await cluster.jobNames()).join() === second);
      assert.ok((await cluster.eventReasons()).includes('SawCompletedJob'));
    } finally {
      await cluster.stop();
    }
  });

  test('concurrencyPolicy Forbid waits for the active Job; Replace deletes it', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(cronJob('forbid', { concurrencyPolicy: 'Forbid' }));
      await cluster.handlers.create(cronJob('replace', { concurrencyPolicy: 'Replace' }));
      await cluster.advance(5 * MINUTE);
      await until('first runs', async () => (await cluster.jobNames()).length === 2);
      await cluster.advance(5 * MINUTE);
      const next = minutesAt(FIRST + 5 * MINUTE);
      await until(
        'replace runs the next, deleting the first',
        async () =>
          (await cluster.jobNames()).filter((name) => name.startsWith('replace-')).join() ===
          `replace-${next}`,
      );
      assert.deepEqual(
        (await cluster.jobNames()).filter((name) => name.startsWith('forbid-')),
        [`forbid-${minutesAt(FIRST)}`],
        'Forbid does not start a second',
      );
      await cluster.finishJob(`forbid-${minutesAt(FIRST)}`, 'Complete');
      await until('forbid runs the waiting time once the first finished', async () =>
        (await cluster.jobNames()).includes(`forbid-${next}`),
      );
    } finally {
      await cluster.stop();
    }
  });

  test('suspend makes nothing; startingDeadlineSeconds skips a run missed by too long', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(cronJob('held', { suspend: true }));
      await cluster.advance(5 * MINUTE);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(await cluster.jobNames(), []);
      // a minute late with a 30 s deadline: the 10:05 run is missed
      const held = await cluster.getCronJob('held');
      await cluster.advance(MINUTE);
      await cluster.handlers.update({
        ...held,
        spec: { ...held.spec, suspend: false, startingDeadlineSeconds: 30 },
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(await cluster.jobNames(), []);
      await cluster.advance(3.75 * MINUTE); // 10:10:15, within the deadline of the 10:10 run
      await until('the 10:10 run, on time', async () => (await cluster.jobNames()).length === 1);
    } finally {
      await cluster.stop();
    }
  });

  test('more than 100 missed times: an Event, and the most recent runs', async () => {
    const cluster = setUp();
    await cluster.start();
    try {
      await cluster.handlers.create(cronJob('late', { schedule: '* * * * *', suspend: true }));
      const late = await cluster.getCronJob('late');
      await cluster.advance(200 * MINUTE);
      await cluster.handlers.update({ ...late, spec: { ...late.spec, suspend: false } });
      await until('TooManyMissedTimes', async () =>
        (await cluster.eventReasons()).includes('TooManyMissedTimes'),
      );
      await until(
        'one Job, the latest',
        async () => (await cluster.jobNames()).join() === `late-${minutesAt(cluster.clock.now())}`,
      );
    } finally {
      await cluster.stop();
    }
  });

  test('schedule times in a time zone', () => {
    const berlin = new ScheduleTimes('0 3 * * *', 'Europe/Berlin');
    // 03:00 in Berlin in winter is 02:00 UTC
    assert.equal(new Date(berlin.next(START)!).toISOString(), '2026-12-08T02:00:00.000Z');
    const utc = new ScheduleTimes('30 9 * * 1-5', 'Etc/UTC');
    // Monday 7 December 09:30 UTC
    assert.deepEqual(utc.missed(START - 86_400_000, START), {
      mostRecent: Date.UTC(2026, 11, 7, 9, 30),
      count: 1,
    });
    assert.equal(
      new Date(new ScheduleTimes('@hourly', 'Asia/Kolkata').next(START)!).toISOString(),
      '2026-12-07T10:30:00.000Z',
    );
  });
});
