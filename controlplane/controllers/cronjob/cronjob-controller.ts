/**
 * The CronJob controller makes a Job at each time a CronJob's schedule names, as Kubernetes'
 * (cronjob controller v2):
 *
 *   reconcile(namespace/name):
 *     its Jobs (controlled by it, from the Job informer)
 *       ─► status.active: the unfinished ones; a finished one leaves it (lastSuccessfulTime when
 *          it completed, Event SawCompletedJob); finished Jobs beyond successfulJobsHistoryLimit /
 *          failedJobsHistoryLimit deleted, oldest first (their pods by the GC)
 *       ─► suspended or being deleted: nothing more
 *       ─► the most recent schedule time since lastScheduleTime (or creation), in spec.timeZone;
 *          more than 100 missed: Event TooManyMissedTimes (the most recent still runs); older than
 *          startingDeadlineSeconds: missed (Event MissSchedule)
 *       ─► concurrencyPolicy: Forbid waits while a Job is active, Replace deletes the active ones
 *       ─► the Job `<cronjob>-<minutes since the epoch>` from spec.jobTemplate; lastScheduleTime
 *       ─► requeued for the next schedule time
 *
 * The Job's name is fixed by its schedule time, so a second leader (or a retry) creating it again
 * gets AlreadyExists, never a second run. Time comes from an injectable clock.
 */
import { LeaderController, type LeaderControllerOptions } from '../support/leader-controller.js';
import { isDeepStrictEqual } from 'node:util';
import type { CronJob, CronJobStatus, Job, ObjectReference } from '../../../proto/gen/types.js';
import { AlreadyExistsError, ConflictError, NotFoundError } from '../../../proto/errors.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { rfc3339Seconds } from '../../../proto/support/kube-time.js';
import { controllerRefOf, controllerReference } from '../support/claims.js';
import { NAMESPACE_INDEX, indexByNamespace } from '../support/indexes.js';
import { ScheduleTimes } from './schedule-times.js';

/** Kubernetes' annotation on a CronJob's Job: the schedule time it runs for. */
export const SCHEDULED_TIMESTAMP_ANNOTATION = 'batch.kubernetes.io/cronjob-scheduled-timestamp';
/** Kubernetes' limit of missed times before it warns. */
const TOO_MANY_MISSED = 100;

export interface CronJobControllerOptions extends LeaderControllerOptions {
  cronJobs: Informer<CronJob>;
  jobs: Informer<Job>;
}

export class CronJobController extends LeaderController {
  constructor(private readonly options: CronJobControllerOptions) {
    super(options, 'cronjob-controller');
    indexByNamespace(options.jobs);
  }

  protected watch(): (() => void)[] {
    const { cronJobs, jobs } = this.options;
    const removals = [
      cronJobs.onChange((key) => this.controller.enqueue(key)),
      jobs.onChange((key, change, lastKnown) => {
        const job = change === 'deleted' ? lastKnown?.object : jobs.get(key)?.object;
        const owner = job !== undefined ? controllerRefOf(job, 'CronJob') : undefined;
        if (owner !== undefined) this.controller.enqueue(`${job!.metadata.namespace ?? ''}/${owner.name}`);
      }),
    ];
    for (const cached of cronJobs.list()) this.controller.enqueue(cached.key);
    return removals;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const cronJob = this.options.cronJobs.get(key)?.object;
    if (cronJob === undefined) return;
    const now = this.clock.now();
    const jobs = this.options.jobs
      .byIndex(NAMESPACE_INDEX, cronJob.metadata.namespace ?? '')
      .map((cached) => cached.object)
      .filter((job) => controllerRefOf(job, 'CronJob')?.uid === cronJob.metadata.uid);
    const status: CronJobStatus = structuredClone(cronJob.status ?? {});
    const known = new Set((status.active ?? []).map((ref) => ref.uid));
    for (const job of jobs) {
      const finished = finishedType(job);
      if (finished === undefined) continue;
      if (known.has(job.metadata.uid)) {
        this.events.record(
          cronJob,
          'Normal',
          'SawCompletedJob',
          `Saw completed job: ${job.metadata.name}, condition: ${finished}`,
        );
      }
      if (finished === 'Complete' && job.status?.completionTime !== undefined) {
        if (status.lastSuccessfulTime === undefined || status.lastSuccessfulTime < job.status.completionTime)
          status.lastSuccessfulTime = job.status.completionTime;
      }
    }
    let active = jobs.filter((job) => finishedType(job) === undefined && !job.metadata.deletionTimestamp);
    await this.deleteHistory(cronJob, jobs);

    let requeueAfterMs: number | undefined;
    if (!cronJob.metadata.deletionTimestamp && cronJob.spec.suspend !== true) {
      const times = new ScheduleTimes(cronJob.spec.schedule, cronJob.spec.timeZone);
      const created = Date.parse(cronJob.metadata.creationTimestamp ?? '') || now;
      const last = status.lastScheduleTime !== undefined ? Date.parse(status.lastScheduleTime) : created;
      const deadline = cronJob.spec.startingDeadlineSeconds;
      const earliest = deadline !== undefined ? Math.max(last, now - deadline * 1000) : last;
      const { mostRecent, count } = times.missed(earliest, now);
      if (count > TOO_MANY_MISSED)
        this.events.record(
          cronJob,
          'Warning',
          'TooManyMissedTimes',
          'too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew',
        );
      if (mostRecent !== undefined) {
        const ran = await this.run(cronJob, mostRecent, active);
        if (ran === 'forbidden') {
          // the run waits for the active Job to finish (its change enqueues this CronJob)
        } else {
          active = ran;
          status.lastScheduleTime = rfc3339Seconds(new Date(mostRecent));
        }
      } else if (deadline !== undefined && status.lastScheduleTime !== undefined) {
        const missedOne = times.missed(last, now - deadline * 1000, 1).mostRecent;
        if (missedOne !== undefined)
          this.events.record(
            cronJob,
            'Warning',
            'MissSchedule',
            `Missed scheduled time to start a job: ${rfc3339Seconds(new Date(missedOne))}`,
          );
      }
      const next = times.next(now, created);
      if (next !== undefined) requeueAfterMs = Math.max(next - this.clock.now(), 1);
    }
    status.active = active.map(jobReference);
    if (status.active.length === 0) delete status.active;
    if (!isDeepStrictEqual(cronJob.status ?? {}, status)) {
      try {
        await this.options.handlers.updateStatus({ ...cronJob, status } as never);
      } catch (err) {
        if (err instanceof NotFoundError) return;
        throw err;
      }
    }
    return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
  }

  /** Runs the schedule time `at` under the concurrency policy; the active Jobs after, or 'forbidden'. */
  private async run(cronJob: CronJob, at: number, active: Job[]): Promise<Job[] | 'forbidden'> {
    const name = `${cronJob.metadata.name}-${Math.floor(at / 60_000)}`;
    if (active.some((job) => job.metadata.name === name)) return active;
    const policy = cronJob.spec.concurrencyPolicy ?? 'Allow';
    if (policy === 'Forbid' && active.length > 0) return 'forbidden';
    if (policy === 'Replace') {
      for (const job of active) {
        await this.deleteJob(job);
        this.events.record(cronJob, 'Normal', 'SuccessfulDelete', `Deleted job ${job.metadata.name}`);
      }
      active = [];
    }
    const template = cronJob.spec.jobTemplate;
    const job: Job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name,
        namespace: cronJob.metadata.namespace ?? '',
        ...(template.metadata?.labels ? { labels: { ...template.metadata.labels } } : {}),
        annotations: {
          ...template.metadata?.annotations,
          [SCHEDULED_TIMESTAMP_ANNOTATION]: rfc3339Seconds(new Date(at)),
        },
        ownerReferences: [controllerReference(cronJob)],
      },
      spec: structuredClone(template.spec ?? {}),
    };
    try {
      const created = (await this.options.handlers.create(job as never)).object as Job;
      this.events.record(cronJob, 'Normal', 'SuccessfulCreate', `Created job ${name}`);
      return [...active, created];
    } catch (err) {
      // made already for this time (by a retry, or a leader before this one)
      if (!(err instanceof AlreadyExistsError)) throw err;
      return active;
    }
  }

  /** Finished Jobs beyond the history limits go, oldest first. */
  private async deleteHistory(cronJob: CronJob, jobs: Job[]): Promise<void> {
    for (const [type, limit] of [
      ['Complete', cronJob.spec.successfulJobsHistoryLimit ?? 3],
      ['Failed', cronJob.spec.failedJobsHistoryLimit ?? 1],
    ] as const) {
      const finished = jobs
        .filter((job) => finishedType(job) === type && !job.metadata.deletionTimestamp)
        .sort((a, b) => startOf(a).localeCompare(startOf(b)));
      for (const job of finished.slice(0, Math.max(0, finished.length - limit))) {
        await this.deleteJob(job);
        this.events.record(cronJob, 'Normal', 'SuccessfulDelete', `Deleted job ${job.metadata.name}`);
      }
    }
  }

  private async deleteJob(job: Job): Promise<void> {
    try {
      await this.options.handlers.delete('Job', job.metadata.namespace ?? '', job.metadata.name ?? '', {
        preconditions: { uid: job.metadata.uid ?? '' },
        propagationPolicy: 'Background',
      });
    } catch (err) {
      if (!(err instanceof NotFoundError || err instanceof ConflictError)) throw err;
    }
  }
}

function finishedType(job: Job): 'Complete' | 'Failed' | undefined {
  const done = job.status?.conditions?.find(
    (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
  );
  return done?.type as 'Complete' | 'Failed' | undefined;
}

function startOf(job: Job): string {
  return job.status?.startTime ?? job.metadata.creationTimestamp ?? '';
}

function jobReference(job: Job): ObjectReference {
  return {
    kind: 'Job',
    namespace: job.metadata.namespace ?? '',
    name: job.metadata.name ?? '',
    uid: job.metadata.uid ?? '',
    apiVersion: 'batch/v1',
  };
}
