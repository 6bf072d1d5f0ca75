/**
 * The Job controller runs each Job's pods to completion, as Kubernetes' does (level-triggered:
 * every reconcile counts again from the informers' caches and the Job's status).
 *
 *   reconcile(namespace/name):
 *     the namespace's pods ─► those the Job claims (its selector; orphans adopted)
 *       ─► finished pods not yet counted: their uids into status.uncountedTerminatedPods (written
 *          first), then their batch.kubernetes.io/job-tracking finalizer removed, then folded into
 *          succeeded / failed (and completedIndexes) — so a pod counts once, and a pod the pod GC
 *          removes later cannot lower the counts (it cannot go before it is counted)
 *       ─► finished? Complete (completions reached), Failed (BackoffLimitExceeded,
 *          DeadlineExceeded, PodFailurePolicy): active pods deleted, completionTime, Events;
 *          ttlSecondsAfterFinished then deletes the Job (its pods go with it, the GC's background
 *          propagation)
 *       ─► suspended: active pods deleted, condition Suspended
 *       ─► otherwise: create up to parallelism (after a failure not before the back-off, 10 s
 *          doubling to 6 min), Indexed pods for the lowest missing indexes; delete extras
 *       ─► status: active, ready, succeeded, failed, startTime, conditions
 *
 * A Job changes nothing while creations or deletions it asked for are not yet in the pod informer
 * (Expectations), and a pod whose finalizer it removed is not counted again while the informer
 * still shows the finalizer (`uncountedWhileCached`).
 */
import { LeaderController, type LeaderControllerOptions } from '../support/leader-controller.js';
import { isDeepStrictEqual } from 'node:util';
import type { Condition, Job, JobStatus, Pod } from '../../../proto/gen/types.js';
import { ConflictError, NotFoundError, errorMessage } from '../../../proto/errors.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { rfc3339Seconds } from '../../../proto/support/kube-time.js';
import { labelSelectorFromObject } from '../../api/selectors.js';
import { Expectations } from '../support/expectations.js';
import { claimObjects, controllerRefOf, controllerReference } from '../support/claims.js';
import { NAMESPACE_INDEX, indexByNamespace } from '../support/indexes.js';
import { podReadySince } from '../replicaset/pod-ranking.js';
import { slowStart } from '../replicaset/replicaset-controller.js';
import { failureAction } from './pod-failure-policy.js';
import { formatIndexes, parseIndexes } from './indexes.js';

/** Kubernetes' finalizer that keeps a Job's pod until the Job has counted it. */
export const JOB_TRACKING_FINALIZER = 'batch.kubernetes.io/job-tracking';
/** The managedBy value of the Jobs this controller syncs (unset means the same). */
const JOB_CONTROLLER_NAME = 'kubernetes.io/job-controller';
export const JOB_COMPLETION_INDEX_ANNOTATION = 'batch.kubernetes.io/job-completion-index';
const JOB_COMPLETION_INDEX_ENV = 'JOB_COMPLETION_INDEX';
/** Kubernetes' DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff. */
const DEFAULT_BACKOFF_MS = 10_000;
const MAX_BACKOFF_MS = 6 * 60_000;
const DEFAULT_BURST = 500;
/** Queue keys of pods whose Job is gone (a Job's key, namespace/name, never holds a colon). */
const ORPHAN_POD_KEY = 'orphan-pod:';

export interface JobControllerOptions extends LeaderControllerOptions {
  jobs: Informer<Job>;
  /** The shared pod informer; the controller adds the namespace index if it is not there. */
  pods: Informer<Pod>;
  /** The first re-creation delay after a failed pod (doubling per failure, at most 6 min). */
  backoffMs?: number;
}

interface Counted {
  succeeded: number;
  failed: number;
  completedIndexes: Set<number>;
  /** Set when a podFailurePolicy FailJob rule matched: the message. */
  failJob?: string;
}

export class JobController extends LeaderController {
  private readonly expectations: Expectations;
  private readonly backoffMs: number;
  /** Job key → pod uids whose finalizer this controller removed, while the cache may lag. */
  private readonly uncountedWhileCached = new Map<string, Set<string>>();
  /** Job key → when this controller last counted a failed pod of it (the back-off's start). */
  private readonly lastFailure = new Map<string, number>();

  constructor(private readonly options: JobControllerOptions) {
    super(options, 'job-controller');
    this.backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.expectations = new Expectations(this.clock);
    indexByNamespace(options.pods);
  }

  protected watch(): (() => void)[] {
    const { jobs, pods } = this.options;
    const removals = [
      jobs.onChange((key, change) => {
        if (change === 'deleted') this.forget(key);
        this.controller.enqueue(key);
      }),
      pods.onChange((key, change, lastKnown) => this.podChanged(key, change, lastKnown?.object)),
    ];
    for (const cached of pods.list()) this.podChanged(cached.key, 'added');
    for (const cached of jobs.list()) this.controller.enqueue(cached.key);
    return removals;
  }

  private forget(key: string): void {
    this.expectations.forget(key);
    this.uncountedWhileCached.delete(key);
    this.lastFailure.delete(key);
  }

  private podChanged(key: string, change: string, last?: Pod): void {
    const pod = change === 'deleted' ? last : this.options.pods.get(key)?.object;
    if (pod === undefined) return;
    const namespace = pod.metadata.namespace ?? '';
    const owner = controllerRefOf(pod, 'Job');
    if (owner === undefined) {
      if (change === 'deleted' || pod.metadata.deletionTimestamp) return;
      for (const cached of this.options.jobs.list()) {
        const job = cached.object;
        if ((job.metadata.namespace ?? '') !== namespace || job.spec.selector === undefined) continue;
        if (selectorOf(job).matches(pod.metadata.labels)) this.controller.enqueue(cached.key);
      }
      return;
    }
    const ownerKey = `${namespace}/${owner.name}`;
    if (change === 'added' && !pod.metadata.deletionTimestamp) this.expectations.creationObserved(ownerKey);
    if (change === 'deleted' || pod.metadata.deletionTimestamp)
      this.expectations.deletionObserved(ownerKey, key);
    const uid = pod.metadata.uid ?? '';
    if (change === 'deleted' || !hasTrackingFinalizer(pod))
      this.uncountedWhileCached.get(ownerKey)?.delete(uid);
    const job = this.options.jobs.get(ownerKey)?.object;
    if (job === undefined || job.metadata.uid !== owner.uid) {
      // its Job is gone: nothing will count it, so the finalizer must not keep it
      if (change !== 'deleted' && hasTrackingFinalizer(pod))
        this.controller.enqueue(`${ORPHAN_POD_KEY}${key}`);
      return;
    }
    this.controller.enqueue(ownerKey);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    if (key.startsWith(ORPHAN_POD_KEY)) return this.releaseOrphan(key.slice(ORPHAN_POD_KEY.length));
    const cached = this.options.jobs.get(key);
    if (cached === undefined) {
      this.forget(key);
      return;
    }
    if (cached.object.spec.selector === undefined) return; // stored before selectors were generated
    // another controller syncs it (Kubernetes' managedBy)
    const managedBy = cached.object.spec.managedBy;
    if (managedBy !== undefined && managedBy !== JOB_CONTROLLER_NAME) return;
    const pods = await this.claimPods(cached.object);
    const now = this.clock.now();
    const status: JobStatus = structuredClone(cached.object.status ?? {});
    const { counted, job } = await this.countFinished(key, cached.object, pods, status);
    const active = pods.filter(isActive);
    const wasFinished = finishedCondition(job) !== undefined;

    if (job.metadata.deletionTimestamp) return this.writeStatus(job, status, active);
    if (wasFinished) {
      // a finished Job runs nothing more; its TTL, if any, deletes it
      await this.deletePods(key, job, active);
      return this.afterFinished(job, status, active, now);
    }

    let requeueAfterMs: number | undefined;
    const failure = this.failureOf(job, counted, active, now);
    const complete = failure === undefined && completed(job, counted, active);
    if (failure !== undefined || complete) {
      await this.deletePods(key, job, active);
      const time = rfc3339Seconds(new Date(now));
      if (failure !== undefined) {
        setCondition(status, condition('Failed', 'True', failure.reason, failure.message, time));
        this.events.record(job, 'Warning', failure.reason, failure.message);
      } else {
        setCondition(status, condition('Complete', 'True', '', '', time));
        status.completionTime = time;
        this.events.record(job, 'Normal', 'Completed', 'Job completed');
      }
      const finished = { ...job, status };
      await this.writeStatus(job, status, []);
      return this.afterFinished(finished, status, [], now);
    }

    if (job.spec.suspend === true) {
      await this.deletePods(key, job, active);
      if (suspendedCondition(status)?.status !== 'True') {
        setCondition(
          status,
          condition('Suspended', 'True', 'JobSuspended', 'Job suspended', rfc3339Seconds(new Date(now))),
        );
        this.events.record(job, 'Normal', 'Suspended', 'Job suspended');
      }
      return this.writeStatus(
        job,
        status,
        active.filter((pod) => !pod.metadata.deletionTimestamp),
      );
    }
    if (suspendedCondition(status)?.status === 'True') {
      // resumed: the deadline counts from now, as Kubernetes restarts startTime
      setCondition(
        status,
        condition('Suspended', 'False', 'JobResumed', 'Job resumed', rfc3339Seconds(new Date(now))),
      );
      status.startTime = rfc3339Seconds(new Date(now));
      this.events.record(job, 'Normal', 'Resumed', 'Job resumed');
    }
    status.startTime ??= rfc3339Seconds(new Date(now));

    if (this.expectations.satisfied(key)) {
      const wait = this.backoffRemaining(key, counted.failed, now);
      if (wait > 0) requeueAfterMs = wait;
      else await this.managePods(key, job, counted, active);
    }
    const deadline = job.spec.activeDeadlineSeconds;
    if (deadline !== undefined) {
      const left = Date.parse(status.startTime) + deadline * 1000 - now;
      requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, Math.max(left, 1));
    }
    await this.writeStatus(job, status, active);
    return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
  }

  /**
   * A pod whose Job is gone keeps no job-tracking finalizer once it is finished or being deleted
   * (the garbage collector deletes it; nothing would count it).
   */
  private async releaseOrphan(podKey: string): Promise<ReconcileResult> {
    const pod = this.options.pods.get(podKey)?.object;
    if (pod === undefined || !hasTrackingFinalizer(pod)) return;
    if (!isFinished(pod) && !pod.metadata.deletionTimestamp) return;
    const owner = controllerRefOf(pod, 'Job');
    const job = owner && this.options.jobs.get(`${pod.metadata.namespace ?? ''}/${owner.name}`)?.object;
    if (job !== undefined && job.metadata.uid === owner?.uid) return;
    await this.removeFinalizer(pod);
    return;
  }

  /** The pods this Job controls after adopting orphans its selector matches and releasing strays. */
  private claimPods(job: Job): Promise<Pod[]> {
    const inNamespace = this.options.pods.byIndex(NAMESPACE_INDEX, job.metadata.namespace ?? '');
    return claimObjects(
      this.options.handlers,
      job,
      selectorOf(job),
      inNamespace.map((cached) => cached.object),
    );
  }

  /**
   * Counts finished pods exactly once: records their uids in status.uncountedTerminatedPods (a
   * status write), then removes their finalizers, then folds them into the counts in `status`.
   * A crash between the steps leaves them recorded, and the next reconcile finishes the job.
   */
  private async countFinished(
    key: string,
    job: Job,
    pods: Pod[],
    status: JobStatus,
  ): Promise<{ counted: Counted; job: Job }> {
    const indexed = job.spec.completionMode === 'Indexed';
    const completedIndexes = new Set(parseIndexes(status.completedIndexes ?? ''));
    const uncounted = {
      succeeded: [...(status.uncountedTerminatedPods?.succeeded ?? [])],
      failed: [...(status.uncountedTerminatedPods?.failed ?? [])],
    };
    const recorded = new Set([...uncounted.succeeded, ...uncounted.failed]);
    const removedAlready = this.uncountedWhileCached.get(key) ?? new Set<string>();
    let newlyRecorded = false;
    for (const pod of pods) {
      const uid = pod.metadata.uid ?? '';
      if (!hasTrackingFinalizer(pod) || recorded.has(uid) || removedAlready.has(uid)) continue;
      if (pod.status?.phase === 'Succeeded') {
        uncounted.succeeded.push(uid);
        const index = completionIndexOf(pod);
        if (indexed && index !== undefined && index < (job.spec.completions ?? 0))
          completedIndexes.add(index);
      } else if (pod.status?.phase === 'Failed') {
        if (failureAction(job.spec.podFailurePolicy, pod).action !== 'Ignore') uncounted.failed.push(uid);
      } else if (!pod.metadata.deletionTimestamp) continue;
      // a pod deleted before it finished is not counted (suspend, a user's delete): it is replaced
      recorded.add(uid);
      newlyRecorded = true;
    }
    if (newlyRecorded) {
      status.uncountedTerminatedPods = uncounted;
      if (indexed) status.completedIndexes = formatIndexes(completedIndexes);
      job = (await this.options.handlers.updateStatus({ ...job, status } as never)).object as Job;
    }
    // a failure a FailJob rule matches fails the Job as it is counted
    let failJob: string | undefined;
    for (const uid of uncounted.failed) {
      const pod = pods.find((candidate) => candidate.metadata.uid === uid);
      const verdict = pod !== undefined ? failureAction(job.spec.podFailurePolicy, pod) : undefined;
      if (verdict?.action === 'FailJob') failJob ??= verdict.message;
    }
    // the finalizers of every recorded pod still holding one go; then the counts take them
    const holding = pods.filter((pod) => hasTrackingFinalizer(pod) && recorded.has(pod.metadata.uid ?? ''));
    const removed = this.uncountedWhileCached.get(key) ?? new Set<string>();
    this.uncountedWhileCached.set(key, removed);
    for (const pod of holding) {
      await this.removeFinalizer(pod);
      removed.add(pod.metadata.uid ?? '');
    }
    const failedBefore = status.failed ?? 0;
    status.succeeded = (status.succeeded ?? 0) + uncounted.succeeded.length;
    status.failed = failedBefore + uncounted.failed.length;
    if (uncounted.failed.length > 0) this.lastFailure.set(key, this.clock.now());
    delete status.uncountedTerminatedPods;
    if (indexed) status.completedIndexes = formatIndexes(completedIndexes);
    return {
      counted: { succeeded: status.succeeded, failed: status.failed, completedIndexes, failJob },
      job,
    };
  }

  private async removeFinalizer(pod: Pod): Promise<void> {
    const finalizers = (pod.metadata.finalizers ?? []).filter((f) => f !== JOB_TRACKING_FINALIZER);
    try {
      await this.options.handlers.update({ ...pod, metadata: { ...pod.metadata, finalizers } });
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  /** Why the Job fails now, if it does. */
  private failureOf(
    job: Job,
    counted: Counted,
    active: Pod[],
    now: number,
  ): { reason: string; message: string } | undefined {
    if (counted.failJob !== undefined) return { reason: 'PodFailurePolicy', message: counted.failJob };
    const limit = job.spec.backoffLimit ?? 6;
    if (
      counted.failed > limit ||
      (job.spec.template?.spec?.restartPolicy === 'OnFailure' && pastRestartLimit(active, limit))
    )
      return { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
    const deadline = job.spec.activeDeadlineSeconds;
    const start = job.status?.startTime;
    if (
      deadline !== undefined &&
      start !== undefined &&
      job.spec.suspend !== true &&
      now - Date.parse(start) >= deadline * 1000
    )
      return { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
    return undefined;
  }

  private backoffRemaining(key: string, failed: number, now: number): number {
    const last = this.lastFailure.get(key);
    if (failed === 0 || last === undefined) return 0;
    const delay = Math.min(this.backoffMs * 2 ** (failed - 1), MAX_BACKOFF_MS);
    return Math.max(0, last + delay - now);
  }

  /** Creates toward parallelism (Indexed: the lowest indexes neither done nor running), deletes extras. */
  private async managePods(key: string, job: Job, counted: Counted, active: Pod[]): Promise<void> {
    const running = active.filter((pod) => !pod.metadata.deletionTimestamp);
    const parallelism = job.spec.parallelism ?? 1;
    if (job.spec.completionMode === 'Indexed') {
      const completions = job.spec.completions ?? 0;
      const seen = new Set<number>();
      const extras: Pod[] = [];
      for (const pod of running) {
        const index = completionIndexOf(pod);
        if (
          index === undefined ||
          index >= completions ||
          seen.has(index) ||
          counted.completedIndexes.has(index)
        )
          extras.push(pod);
        else seen.add(index);
      }
      const keep = running.filter((pod) => !extras.includes(pod));
      const overParallelism = keep.length - parallelism;
      if (overParallelism > 0)
        extras.push(
          ...keep.sort((a, b) => completionIndexOf(b)! - completionIndexOf(a)!).slice(0, overParallelism),
        );
      if (extras.length > 0) return this.deletePods(key, job, extras);
      const missing: number[] = [];
      for (let index = 0; index < completions && missing.length < parallelism - keep.length; index++)
        if (!seen.has(index) && !counted.completedIndexes.has(index)) missing.push(index);
      return this.createPods(key, job, missing);
    }
    const completions = job.spec.completions;
    const wanted =
      completions === undefined
        ? counted.succeeded > 0
          ? running.length // a work queue with a success creates no more
          : parallelism
        : Math.min(parallelism, Math.max(0, completions - counted.succeeded));
    if (running.length > wanted) {
      // the newest go first, as Kubernetes' ranking of a Job's pods does for equal phases
      const newest = [...running].sort((a, b) =>
        (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''),
      );
      return this.deletePods(key, job, newest.slice(0, running.length - wanted));
    }
    const count = Math.min(wanted - running.length, DEFAULT_BURST);
    return this.createPods(
      key,
      job,
      Array.from({ length: count }, () => undefined),
    );
  }

  private async createPods(key: string, job: Job, indexes: (number | undefined)[]): Promise<void> {
    if (indexes.length === 0) return;
    this.expectations.expectCreations(key, indexes.length);
    let next = 0;
    const { created, error } = await slowStart(indexes.length, () => this.createPod(job, indexes[next++]));
    for (let i = created; i < indexes.length; i++) this.expectations.creationObserved(key);
    if (error !== undefined) {
      this.events.record(job, 'Warning', 'FailedCreate', `Error creating: ${errorMessage(error)}`);
      throw error;
    }
  }

  private async createPod(job: Job, index: number | undefined): Promise<void> {
    const template = job.spec.template ?? {};
    const spec = structuredClone(template.spec ?? { containers: [] });
    const annotations = { ...template.metadata?.annotations };
    const labels = { ...template.metadata?.labels };
    const name = job.metadata.name ?? '';
    if (index !== undefined) {
      annotations[JOB_COMPLETION_INDEX_ANNOTATION] = String(index);
      labels[JOB_COMPLETION_INDEX_ANNOTATION] = String(index);
      spec.hostname ??= `${name}-${index}`;
      for (const container of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
        container.env = [
          ...(container.env ?? []).filter((env) => env.name !== JOB_COMPLETION_INDEX_ENV),
          { name: JOB_COMPLETION_INDEX_ENV, value: String(index) },
        ];
      }
    }
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: index !== undefined ? `${name}-${index}-` : `${name}-`,
        namespace: job.metadata.namespace ?? '',
        ...(Object.keys(labels).length > 0 ? { labels } : {}),
        ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
        finalizers: [...(template.metadata?.finalizers ?? []), JOB_TRACKING_FINALIZER],
        ownerReferences: [controllerReference(job)],
      },
      spec,
    };
    const created = (await this.options.handlers.create(pod as never)).object as Pod;
    this.events.record(job, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name}`);
  }

  private async deletePods(key: string, job: Job, pods: Pod[]): Promise<void> {
    const victims = pods.filter((pod) => !pod.metadata.deletionTimestamp);
    if (victims.length === 0) return;
    const victimKeys = victims.map((pod) => `${pod.metadata.namespace}/${pod.metadata.name}`);
    this.expectations.expectDeletions(key, victimKeys);
    const results = await Promise.allSettled(
      victims.map(async (pod) => {
        try {
          await this.options.handlers.delete('Pod', pod.metadata.namespace ?? '', pod.metadata.name ?? '', {
            preconditions: { uid: pod.metadata.uid ?? '' },
          });
          this.events.record(job, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`);
        } catch (err) {
          if (err instanceof NotFoundError || err instanceof ConflictError) return;
          throw err;
        }
      }),
    );
    let firstError: unknown;
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') return;
      this.expectations.deletionObserved(key, victimKeys[i]!);
      firstError ??= result.reason;
    });
    if (firstError !== undefined) throw firstError;
  }

  /** A finished Job's status, and its deletion once ttlSecondsAfterFinished has passed. */
  private async afterFinished(
    job: Job,
    status: JobStatus,
    active: Pod[],
    now: number,
  ): Promise<ReconcileResult> {
    await this.writeStatus(job, status, active);
    const ttl = job.spec.ttlSecondsAfterFinished;
    const finishedAt = finishedCondition({ ...job, status })?.lastTransitionTime;
    if (ttl === undefined || finishedAt === undefined) return;
    const left = Date.parse(finishedAt) + ttl * 1000 - now;
    if (left > 0) return { requeueAfterMs: left };
    try {
      await this.options.handlers.delete('Job', job.metadata.namespace ?? '', job.metadata.name ?? '', {
        preconditions: { uid: job.metadata.uid ?? '' },
        propagationPolicy: 'Background',
      });
    } catch (err) {
      if (!(err instanceof NotFoundError || err instanceof ConflictError)) throw err;
    }
    return;
  }

  private async writeStatus(job: Job, status: JobStatus, active: Pod[]): Promise<ReconcileResult> {
    const running = active.filter((pod) => !pod.metadata.deletionTimestamp);
    const next: JobStatus = { ...status, active: running.length };
    next.ready = running.filter((pod) => podReadySince(pod).ready).length;
    const normalized = withoutZeros(next);
    if (isDeepStrictEqual(withoutZeros(job.status ?? {}), normalized)) return;
    try {
      await this.options.handlers.updateStatus({ ...job, status: normalized } as never);
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    return;
  }
}

/** The status as the store keeps it: zero counts and empty strings left out (ready is kept). */
function withoutZeros(status: JobStatus): JobStatus {
  return Object.fromEntries(
    Object.entries(status).filter(
      ([field, value]) => field === 'ready' || (value !== 0 && value !== '' && value !== undefined),
    ),
  ) as JobStatus;
}

function selectorOf(job: Job) {
  return labelSelectorFromObject(job.spec.selector, 'spec.selector');
}

function hasTrackingFinalizer(pod: Pod): boolean {
  return (pod.metadata.finalizers ?? []).includes(JOB_TRACKING_FINALIZER);
}

function isFinished(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

function isActive(pod: Pod): boolean {
  return !isFinished(pod) && !pod.metadata.deletionTimestamp;
}

function completionIndexOf(pod: Pod): number | undefined {
  const text = pod.metadata.annotations?.[JOB_COMPLETION_INDEX_ANNOTATION];
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

function completed(job: Job, counted: Counted, active: Pod[]): boolean {
  const completions = job.spec.completions;
  if (job.spec.completionMode === 'Indexed') return counted.completedIndexes.size >= (completions ?? 0);
  if (completions === undefined) return counted.succeeded > 0 && active.length === 0;
  return counted.succeeded >= completions;
}

/**
 * With restartPolicy OnFailure a container's restarts are its failures: Kubernetes'
 * pastBackoffLimitOnFailure, over the pods still running or pending.
 */
function pastRestartLimit(active: Pod[], limit: number): boolean {
  let restarts = 0;
  for (const pod of active)
    for (const status of [
      ...(pod.status?.initContainerStatuses ?? []),
      ...(pod.status?.containerStatuses ?? []),
    ])
      restarts += status.restartCount ?? 0;
  return limit === 0 ? restarts > 0 : restarts >= limit;
}

function finishedCondition(job: Job): Condition | undefined {
  return job.status?.conditions?.find(
    (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
  );
}

function suspendedCondition(status: JobStatus): Condition | undefined {
  return status.conditions?.find((c) => c.type === 'Suspended');
}

function condition(type: string, status: string, reason: string, message: string, time: string): Condition {
  return {
    type,
    status,
    ...(reason ? { reason } : {}),
    ...(message ? { message } : {}),
    lastProbeTime: time,
    lastTransitionTime: time,
  };
}

function setCondition(status: JobStatus, next: Condition): void {
  status.conditions = [...(status.conditions ?? []).filter((c) => c.type !== next.type), next];
}
