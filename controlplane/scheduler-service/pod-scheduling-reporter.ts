/**
 * What the scheduler tells users about a pod, written through the API handlers: the PodScheduled
 * condition, `status.nominatedNodeName` and Events, as kube-scheduler writes them.
 *
 *   scheduled      Event Scheduled "Successfully assigned ns/pod to node" (bindPod already set
 *                  PodScheduled True and cleared nominatedNodeName in the binding's write)
 *   unschedulable  Event FailedScheduling (repeats fold into one Event's count); PodScheduled False,
 *                  reason Unschedulable, the message; nominatedNodeName set or cleared
 *   failed         the same with reason SchedulerError (a bind refused, a plugin's error)
 *   evict          Event Preempted on the victim, then a graceful delete (its own grace period)
 *
 * Nothing here blocks a scheduling cycle: status writes queue per pod, latest wins (a pod refused
 * twice before its first write lands is written once), a few at a time; a write that would change
 * nothing is not made, so a pod refused again for the same reasons costs no etcd write. Each write
 * re-reads the pod (the informer's copy first, the store's after a conflict) and stops when it was
 * bound, deleted or re-created meanwhile. `close()` drops what is not written yet: a scheduler
 * whose leadership term ended has no say any more.
 */
import { ConflictError, NotFoundError, errorMessage } from '../../proto/errors.js';
import type { EventRecorder } from '../../proto/events.js';
import type { Condition, Pod } from '../../proto/gen/types.js';
import type { Informer } from '../../proto/informer/informer.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';
import type { Logger } from '../../proto/support/logger.js';
import type { ApiHandlers } from '../api/handlers.js';
import type { Evictor, SchedulingReporter } from '../scheduler/scheduler.js';
import { podKey } from '../scheduler/framework/pod-info.js';

/** The status a write should leave: the condition, the nomination, or both. */
interface WantedStatus {
  uid: string | undefined;
  condition?: { reason: 'Unschedulable' | 'SchedulerError'; message: string };
  /** '' clears it. */
  nominatedNodeName?: string;
}

export interface PodSchedulingReporterOptions {
  handlers: ApiHandlers;
  pods: Informer<Pod>;
  events: EventRecorder;
  log: Logger;
  /** Status writes in flight at once; default 8. */
  concurrency?: number;
  now?: () => Date;
}

const WRITE_ATTEMPTS = 3;

export class PodSchedulingReporter implements SchedulingReporter, Evictor {
  private readonly pending = new Map<string, WantedStatus>();
  private writers = 0;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly now: () => Date;

  constructor(private readonly options: PodSchedulingReporterOptions) {
    this.now = options.now ?? (() => new Date());
  }

  scheduled(pod: Pod, nodeName: string): void {
    this.record(
      pod,
      'Normal',
      'Scheduled',
      `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${nodeName}`,
    );
  }

  unschedulable(pod: Pod, message: string, options: { nominatedNodeName?: string }): void {
    this.record(pod, 'Warning', 'FailedScheduling', message);
    this.enqueue(pod, {
      uid: pod.metadata.uid,
      condition: { reason: 'Unschedulable', message },
      ...(options.nominatedNodeName !== undefined ? { nominatedNodeName: options.nominatedNodeName } : {}),
    });
  }

  failed(pod: Pod, message: string): void {
    this.record(pod, 'Warning', 'FailedScheduling', message);
    this.enqueue(pod, { uid: pod.metadata.uid, condition: { reason: 'SchedulerError', message } });
  }

  nominationCleared(pod: Pod): void {
    this.enqueue(pod, { uid: pod.metadata.uid, nominatedNodeName: '' });
  }

  /** Preemption: tells the victim why, then deletes it gracefully (its own grace period). */
  async evict(victim: Pod, options: { preemptor: Pod; nodeName: string }): Promise<void> {
    if (this.closed) return;
    this.record(
      victim,
      'Normal',
      'Preempted',
      `Preempted by pod ${options.preemptor.metadata.uid} on node ${options.nodeName}`,
    );
    try {
      await this.options.handlers.delete('Pod', victim.metadata.namespace ?? '', victim.metadata.name ?? '', {
        ...(victim.metadata.uid ? { preconditions: { uid: victim.metadata.uid } } : {}),
      });
    } catch (err) {
      // gone already, or re-created under its name: nothing of this victim is left to evict
      if (err instanceof NotFoundError || err instanceof ConflictError) return;
      throw err;
    }
  }

  /** Drops the writes and Events not made yet; the ones under way finish. */
  close(): void {
    this.closed = true;
    this.pending.clear();
    this.options.events.discard();
  }

  /** Resolves once no status write is queued or under way. */
  async idle(): Promise<void> {
    if (this.writers === 0 && this.pending.size === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private record(pod: Pod, type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (!this.closed) this.options.events.record(pod, type, reason, message);
  }

  private enqueue(pod: Pod, wanted: WantedStatus): void {
    if (this.closed) return;
    const key = podKey(pod);
    // latest wins, field by field: a nomination asked for earlier stays unless changed since
    const before = this.pending.get(key);
    const earlier = before !== undefined && before.uid === wanted.uid ? before : undefined;
    const condition = wanted.condition ?? earlier?.condition;
    const nominatedNodeName = wanted.nominatedNodeName ?? earlier?.nominatedNodeName;
    this.pending.set(key, {
      uid: wanted.uid,
      ...(condition !== undefined ? { condition } : {}),
      ...(nominatedNodeName !== undefined ? { nominatedNodeName } : {}),
    });
    this.startWriters();
  }

  private startWriters(): void {
    while (this.writers < (this.options.concurrency ?? 8) && this.pending.size > 0) {
      this.writers++;
      void this.writeLoop();
    }
  }

  private async writeLoop(): Promise<void> {
    try {
      while (!this.closed) {
        const next = this.pending.entries().next();
        if (next.done === true) break;
        const [key, wanted] = next.value;
        this.pending.delete(key);
        try {
          await this.write(key, wanted);
        } catch (err) {
          this.options.log.warn({ pod: key, err: errorMessage(err) }, 'writing scheduling status failed');
        }
      }
    } finally {
      this.writers--;
      if (this.writers === 0 && (this.pending.size === 0 || this.closed)) {
        for (const wake of this.idleWaiters.splice(0)) wake();
      }
    }
  }

  private async write(key: string, wanted: WantedStatus): Promise<void> {
    const { handlers, pods } = this.options;
    const slash = key.indexOf('/');
    const [namespace, name] = [key.slice(0, slash), key.slice(slash + 1)];
    for (let attempt = 1; attempt <= WRITE_ATTEMPTS && !this.closed; attempt++) {
      let current: Pod | undefined;
      if (attempt === 1) current = pods.get(key)?.object;
      else {
        try {
          current = (await handlers.get('Pod', namespace, name)).object as Pod;
        } catch (err) {
          if (err instanceof NotFoundError) return;
          throw err;
        }
      }
      if (
        current === undefined ||
        (wanted.uid !== undefined && current.metadata.uid !== wanted.uid) ||
        current.spec.nodeName ||
        current.metadata.deletionTimestamp !== undefined
      )
        return;
      const next = withSchedulingStatus(current, wanted, rfc3339Seconds(this.now()));
      if (next === undefined) return;
      try {
        await handlers.updateStatus(next);
        return;
      } catch (err) {
        if (err instanceof NotFoundError) return;
        if (!(err instanceof ConflictError)) throw err;
        // changed since the copy was read (the informer lags, or another writer): read it again
      }
    }
  }
}

/** The pod with the wanted PodScheduled condition and nomination; undefined when it has them already. */
export function withSchedulingStatus(pod: Pod, wanted: WantedStatus, now: string): Pod | undefined {
  const status = { ...pod.status };
  let changed = false;
  if (wanted.condition !== undefined) {
    const conditions = status.conditions ?? [];
    const existing = conditions.find((c) => c.type === 'PodScheduled');
    const { reason, message } = wanted.condition;
    if (existing?.status !== 'False' || existing.reason !== reason || existing.message !== message) {
      const condition: Condition = {
        type: 'PodScheduled',
        status: 'False',
        reason,
        message,
        lastTransitionTime:
          existing?.status === 'False' && existing.lastTransitionTime ? existing.lastTransitionTime : now,
      };
      status.conditions = [condition, ...conditions.filter((c) => c.type !== 'PodScheduled')];
      changed = true;
    }
  }
  if (
    wanted.nominatedNodeName !== undefined &&
    (status.nominatedNodeName ?? '') !== wanted.nominatedNodeName
  ) {
    if (wanted.nominatedNodeName === '') delete status.nominatedNodeName;
    else status.nominatedNodeName = wanted.nominatedNodeName;
    changed = true;
  }
  return changed ? { ...pod, status } : undefined;
}
