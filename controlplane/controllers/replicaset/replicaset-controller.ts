/**
 * The ReplicaSet controller keeps `spec.replicas` pods matching each ReplicaSet's selector, as
 * Kubernetes' does (level-triggered: every reconcile counts again from the informers' caches).
 *
 *   reconcile(namespace/name):
 *     the namespace's pods ─► active ones (not Succeeded/Failed, not being deleted)
 *       ─► claimed: those it controls and its selector matches; orphans it matches are adopted
 *          (ownerReference with controller: true), pods it controls that stop matching released
 *       ─► too few: create in slow-start batches (1, 2, 4, …; a failing batch stops the rest, so a
 *          broken template does not flood the API), at most `burstReplicas` a reconcile
 *          too many: delete the least valuable first (pod-ranking.ts)
 *       ─► status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
 *          (minReadySeconds), observedGeneration, ReplicaFailure when a create or delete failed
 *
 * A ReplicaSet changes nothing while creations or deletions it asked for are not yet in the pod
 * informer (Expectations), so no pod is created twice for one missing replica.
 */
import { LeaderController, type LeaderControllerOptions } from '../support/leader-controller.js';
import { isDeepStrictEqual } from 'node:util';
import type { Pod, ReplicaSet, Condition } from '../../../proto/gen/types.js';
import { ConflictError, NotFoundError, errorMessage } from '../../../proto/errors.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { rfc3339Seconds } from '../../../proto/support/kube-time.js';
import { labelSelectorFromObject } from '../../api/selectors.js';
import { Expectations } from '../support/expectations.js';
import { claimObjects, controllerRefOf, controllerReference } from '../support/claims.js';
import { NAMESPACE_INDEX, indexByNamespace } from '../support/indexes.js';
import { podAvailable, podReadySince, podsToDelete } from './pod-ranking.js';

/** Kubernetes' BurstReplicas: creations or deletions one reconcile may start. */
const DEFAULT_BURST = 500;
const SLOW_START_INITIAL_BATCH = 1;
/** How long a ReplicaSet waiting for its creations to show waits before looking again anyway. */
const EXPECTATION_WAIT_MS = 5000;
/** The largest batch a ReplicaSet's next burst starts with, after a burst that went through whole. */
const WARM_BATCH_LIMIT = 64;

export interface ReplicaSetControllerOptions extends LeaderControllerOptions {
  replicaSets: Informer<ReplicaSet>;
  /** The shared pod informer; the controller adds the namespace index if it is not there. */
  pods: Informer<Pod>;
  burstReplicas?: number;
}

export class ReplicaSetController extends LeaderController {
  private readonly expectations: Expectations;
  private readonly burst: number;
  /** pod key → the ReplicaSet key that controlled it when last seen (a changed owner is told too) */
  private readonly lastOwner = new Map<string, string>();
  /** ReplicaSet key → the batch its next burst of creations starts with */
  private readonly warmBatch = new Map<string, number>();

  constructor(private readonly options: ReplicaSetControllerOptions) {
    super(options, 'replicaset-controller');
    this.burst = options.burstReplicas ?? DEFAULT_BURST;
    this.expectations = new Expectations(this.clock);
    indexByNamespace(options.pods);
  }

  protected watch(): (() => void)[] {
    const { replicaSets, pods } = this.options;
    const removals = [
      replicaSets.onChange((key, change) => {
        if (change === 'deleted') this.expectations.forget(key);
        this.controller.enqueue(key);
      }),
      pods.onChange((key, change, lastKnown) => this.podChanged(key, change, lastKnown?.object)),
    ];
    for (const cached of pods.list()) this.podChanged(cached.key, 'added');
    for (const cached of replicaSets.list()) this.controller.enqueue(cached.key);
    return removals;
  }

  private podChanged(key: string, change: string, last?: Pod): void {
    const pod = change === 'deleted' ? last : this.options.pods.get(key)?.object;
    if (pod === undefined) return;
    const namespace = pod.metadata.namespace ?? '';
    const owner = controllerRefOf(pod, 'ReplicaSet');
    const ownerKey = owner ? `${namespace}/${owner.name}` : undefined;
    const before = this.lastOwner.get(key);
    if (before !== undefined && before !== ownerKey) this.controller.enqueue(before);
    if (change === 'deleted') this.lastOwner.delete(key);
    else if (ownerKey !== undefined) this.lastOwner.set(key, ownerKey);
    else this.lastOwner.delete(key);
    if (ownerKey !== undefined) {
      if (change === 'added' && !pod.metadata.deletionTimestamp) this.expectations.creationObserved(ownerKey);
      if (change === 'deleted' || pod.metadata.deletionTimestamp)
        this.expectations.deletionObserved(ownerKey, key);
      this.controller.enqueue(ownerKey);
      return;
    }
    // an orphan: every ReplicaSet of its namespace that selects it may adopt it
    if (change === 'deleted' || pod.metadata.deletionTimestamp) return;
    for (const cached of this.options.replicaSets.list()) {
      const rs = cached.object;
      if ((rs.metadata.namespace ?? '') !== namespace) continue;
      if (selectorOf(rs).matches(pod.metadata.labels)) this.controller.enqueue(cached.key);
    }
  }

  /** Counts, adopts and releases, creates or deletes, and writes the status of one ReplicaSet. */
  async reconcile(key: string): Promise<ReconcileResult> {
    const cached = this.options.replicaSets.get(key);
    if (cached === undefined) {
      this.expectations.forget(key);
      this.warmBatch.delete(key);
      return;
    }
    const rs = cached.object;
    // While pods it created or deleted are not all in the informer yet, counting again would only
    // repeat the work of the last reconcile, once per pod event of the burst (the cost that held
    // scale-ups to a third of the API's create rate): the event that completes them enqueues this
    // ReplicaSet again, and a lost one is covered by the look after EXPECTATION_WAIT_MS.
    if (!this.expectations.satisfied(key) && !rs.metadata.deletionTimestamp)
      return { requeueAfterMs: EXPECTATION_WAIT_MS };
    const owned = await this.claimPods(rs);
    let failure: Condition | undefined;
    if (!rs.metadata.deletionTimestamp) failure = await this.manageReplicas(key, rs, owned);
    const status = this.statusOf(rs, owned, failure);
    if (!sameStatus(rs.status, status)) {
      try {
        await this.options.handlers.updateStatus({ ...rs, status } as never);
      } catch (err) {
        if (err instanceof NotFoundError) return;
        // the ReplicaSet changed since the cached copy: the newer one is on its way to the
        // informer, and with it another reconcile
        if (!(err instanceof ConflictError)) throw err;
      }
    }
    if (failure !== undefined) throw new Error(failure.message);
    const minReady = rs.spec.minReadySeconds ?? 0;
    if (minReady > 0 && status.readyReplicas === desiredOf(rs) && status.availableReplicas !== desiredOf(rs))
      return { requeueAfterMs: minReady * 1000 };
    return;
  }

  /** The active pods this ReplicaSet controls after adopting orphans and releasing strays. */
  private claimPods(rs: ReplicaSet): Promise<Pod[]> {
    const inNamespace = this.options.pods.byIndex(NAMESPACE_INDEX, rs.metadata.namespace ?? '');
    return claimObjects(
      this.options.handlers,
      rs,
      selectorOf(rs),
      inNamespace.map((cached) => cached.object).filter(isActive),
    );
  }

  /** Creates or deletes toward spec.replicas; the ReplicaFailure condition when that failed. */
  private async manageReplicas(key: string, rs: ReplicaSet, owned: Pod[]): Promise<Condition | undefined> {
    const diff = owned.length - desiredOf(rs);
    if (diff < 0) {
      const wanted = Math.min(-diff, this.burst);
      this.expectations.expectCreations(key, wanted);
      // a ReplicaSet whose last burst went through whole starts this one where that one ended
      // (at most WARM_BATCH_LIMIT); after a failure it starts from one again
      const { created, error, lastBatch } = await slowStart(
        wanted,
        () => this.createPod(rs),
        this.warmBatch.get(key),
      );
      if (error === undefined) this.warmBatch.set(key, Math.min(lastBatch, WARM_BATCH_LIMIT));
      else this.warmBatch.delete(key);
      // those never tried will not be seen either
      for (let i = created; i < wanted; i++) this.expectations.creationObserved(key);
      if (error !== undefined)
        return this.failure(rs, 'FailedCreate', `Error creating: ${errorMessage(error)}`);
    } else if (diff > 0) {
      const victims = podsToDelete(owned, Math.min(diff, this.burst));
      const victimKeys = victims.map((pod) => `${pod.metadata.namespace}/${pod.metadata.name}`);
      this.expectations.expectDeletions(key, victimKeys);
      const results = await Promise.allSettled(victims.map((pod) => this.deletePod(rs, pod)));
      let firstError: unknown;
      results.forEach((result, i) => {
        if (result.status === 'fulfilled') return;
        this.expectations.deletionObserved(key, victimKeys[i]!);
        firstError ??= result.reason;
      });
      if (firstError !== undefined)
        return this.failure(rs, 'FailedDelete', `Error deleting: ${errorMessage(firstError)}`);
    }
    return undefined;
  }

  private async createPod(rs: ReplicaSet): Promise<void> {
    const template = rs.spec.template ?? {};
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: `${rs.metadata.name}-`,
        namespace: rs.metadata.namespace ?? '',
        ...(template.metadata?.labels ? { labels: { ...template.metadata.labels } } : {}),
        ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
        ...(template.metadata?.finalizers ? { finalizers: [...template.metadata.finalizers] } : {}),
        ownerReferences: [controllerReference(rs)],
      },
      spec: structuredClone(template.spec ?? { containers: [] }),
    };
    const created = (await this.options.handlers.create(pod as never)).object as Pod;
    this.events.record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name}`);
  }

  private async deletePod(rs: ReplicaSet, pod: Pod): Promise<void> {
    try {
      await this.options.handlers.delete('Pod', pod.metadata.namespace ?? '', pod.metadata.name ?? '', {
        preconditions: { uid: pod.metadata.uid ?? '' },
      });
      this.events.record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`);
    } catch (err) {
      // gone already, or re-created under its name: either way not this replica any more
      if (err instanceof NotFoundError || err instanceof ConflictError) return;
      throw err;
    }
  }

  private failure(rs: ReplicaSet, reason: string, message: string): Condition {
    this.events.record(rs, 'Warning', reason, message);
    return {
      type: 'ReplicaFailure',
      status: 'True',
      reason,
      message,
      lastTransitionTime: rfc3339Seconds(new Date(this.clock.now())),
    };
  }

  private statusOf(
    rs: ReplicaSet,
    owned: Pod[],
    failure: Condition | undefined,
  ): NonNullable<ReplicaSet['status']> {
    const templateLabels = Object.entries(rs.spec.template?.metadata?.labels ?? {});
    const now = this.clock.now();
    const minReady = rs.spec.minReadySeconds ?? 0;
    let fullyLabeled = 0;
    let ready = 0;
    let available = 0;
    for (const pod of owned) {
      if (templateLabels.every(([k, v]) => pod.metadata.labels?.[k] === v)) fullyLabeled++;
      if (podReadySince(pod).ready) ready++;
      if (podAvailable(pod, minReady, now)) available++;
    }
    const previous = (rs.status?.conditions ?? []).find((c) => c.type === 'ReplicaFailure');
    const conditions = (rs.status?.conditions ?? []).filter((c) => c.type !== 'ReplicaFailure');
    if (failure !== undefined)
      conditions.push(
        previous !== undefined && previous.reason === failure.reason && previous.message === failure.message
          ? previous
          : failure,
      );
    // zeros left out, as the store leaves them out, so an unchanged status compares equal
    const counts = {
      replicas: owned.length,
      fullyLabeledReplicas: fullyLabeled,
      readyReplicas: ready,
      availableReplicas: available,
      observedGeneration: rs.metadata.generation ?? 0,
    };
    return {
      ...Object.fromEntries(Object.entries(counts).filter(([, value]) => value !== 0)),
      ...(conditions.length > 0 ? { conditions } : {}),
    };
  }
}

function desiredOf(rs: ReplicaSet): number {
  return rs.spec.replicas ?? 1;
}

function selectorOf(rs: ReplicaSet) {
  return labelSelectorFromObject(rs.spec.selector, 'spec.selector');
}

function isActive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed' && !pod.metadata.deletionTimestamp;
}

function sameStatus(a: ReplicaSet['status'], b: NonNullable<ReplicaSet['status']>): boolean {
  return isDeepStrictEqual(a ?? {}, b);
}

/**
 * Runs `count` calls in batches that double (1, 2, 4, …), each batch at once; stops after a batch
 * with a failure. Returns how many succeeded and the first error.
 */
export async function slowStart(
  count: number,
  call: () => Promise<void>,
  initialBatch = SLOW_START_INITIAL_BATCH,
): Promise<{ created: number; error: unknown; lastBatch: number }> {
  let done = 0;
  let batch = Math.min(count, Math.max(1, initialBatch));
  let lastBatch = batch;
  while (batch > 0) {
    lastBatch = batch;
    const results = await Promise.allSettled(Array.from({ length: batch }, () => call()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    done += results.filter((r) => r.status === 'fulfilled').length;
    if (failed) return { created: done, error: failed.reason, lastBatch };
    batch = Math.min(2 * batch, count - done);
  }
  return { created: done, error: undefined, lastBatch };
}
