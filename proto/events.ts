/**
 * EventRecorder: Events (v1) about objects, as Kubernetes' recorder writes them, for every side
 * that acts on objects (agents, the scheduler, controllers).
 *
 * - Repeats fold: the same object, type, reason and message within `foldWindowMs` update one Event
 *   (count + 1, lastTimestamp) instead of creating another; the first is kept from the first.
 * - Recording never fails the caller: the API is told in the background, at most `maxPending`
 *   events wait (newer ones are dropped and counted), and a failed write is logged.
 * - Up to `maxInFlight` writes run at once (a scheduler records one Event per pod it binds, hundreds
 *   a second), never two of one folding key: a repeat waits for the write it folds into.
 * - With `perObjectLimit` (the controllers'), one object's Events are rate-limited as client-go's
 *   EventSourceObjectSpamFilter does: a burst of 25, then one per 5 minutes (a token bucket per
 *   object, any reason or message); the rest are dropped. A ReplicaSet scaled to 3,000 then records
 *   its first 25 SuccessfulCreate Events, not 3,000 writes competing with its pods'.
 * - An Event lives in its object's namespace (`default` for cluster-scoped objects such as Nodes),
 *   named `<object>.<hex time>` as kubectl users know them.
 */
import type { ApiClient } from './client.js';
import { ConflictError, NotFoundError, errorMessage } from './errors.js';
import type { Event, KubeObject, ObjectReference } from './gen/types.js';
import type { Logger } from './support/logger.js';
import { rfc3339Seconds } from './support/kube-time.js';

export type EventType = 'Normal' | 'Warning';

/** What the recorder needs of the API: create and update of Events. */
export type EventSink = Pick<ApiClient, 'create' | 'update'>;

export interface EventRecorderOptions {
  sink: EventSink;
  /** source.component / reportingComponent: `skiff-agent`, `skiff-scheduler`… */
  component: string;
  /** source.host / reportingInstance: the node or process. */
  host: string;
  log: Logger;
  /** Default 10 min (Kubernetes folds similar events over that long). */
  foldWindowMs?: number;
  /** Default 1000. */
  maxPending?: number;
  /** Writes at once; default 8. */
  maxInFlight?: number;
  now?: () => Date;
  /** Rate-limits each object's Events (a token bucket); off when absent. */
  perObjectLimit?: PerObjectEventLimit;
}

export interface PerObjectEventLimit {
  burst: number;
  refillPerSecond: number;
}

/** client-go's defaults (tools/record: defaultSpamBurst 25, defaultSpamQPS 1/300). */
export const KUBERNETES_EVENT_LIMIT: PerObjectEventLimit = { burst: 25, refillPerSecond: 1 / 300 };

/** Objects whose token buckets are kept (client-go's LRU size); the least recently used go first. */
const MAX_LIMITED_OBJECTS = 4096;

interface Folded {
  event: Event;
  at: number;
}

export function referenceTo(object: KubeObject, fieldPath?: string): ObjectReference {
  return {
    kind: object.kind,
    apiVersion: object.apiVersion,
    name: object.metadata.name ?? '',
    ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}),
    ...(object.metadata.uid ? { uid: object.metadata.uid } : {}),
    ...(fieldPath ? { fieldPath } : {}),
  };
}

export class EventRecorder {
  private readonly folded = new Map<string, Folded>();
  private readonly queue: { key: string; run: () => Promise<void> }[] = [];
  /** The folding keys being written now. */
  private readonly writing = new Set<string>();
  /** The workers under way. */
  private readonly workers = new Set<Promise<void>>();
  private dropped = 0;
  private readonly now: () => Date;
  /** object → its token bucket, least recently used first */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly options: EventRecorderOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** Records that `reason` happened to `object` (a reference, or the object itself). */
  record(object: KubeObject | ObjectReference, type: EventType, reason: string, message: string): void {
    const ref = 'metadata' in object ? referenceTo(object) : object;
    const key = [ref.kind, ref.namespace, ref.name, ref.uid, ref.fieldPath, type, reason, message].join(
      '\u0000',
    );
    // stamped when it happened, not when the queue reaches it
    const at = this.now();
    if (!this.withinLimit(ref, at.getTime())) return;
    if (this.queue.length >= (this.options.maxPending ?? 1000)) {
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 100 === 0)
        this.options.log.warn({ dropped: this.dropped }, 'events dropped: the API is not keeping up');
      return;
    }
    this.queue.push({ key, run: () => this.write(key, ref, type, reason, message, at) });
    if (this.workers.size < (this.options.maxInFlight ?? 8)) {
      const worker = this.drain().finally(() => this.workers.delete(worker));
      this.workers.add(worker);
    }
  }

  /** Takes a token from the object's bucket (refilled since it was last used); false when empty. */
  private withinLimit(ref: ObjectReference, now: number): boolean {
    const limit = this.options.perObjectLimit;
    if (limit === undefined) return true;
    const key = [ref.kind, ref.apiVersion, ref.namespace, ref.name, ref.uid].join('\u0000');
    const bucket = this.buckets.get(key) ?? { tokens: limit.burst, at: now };
    const tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.refillPerSecond);
    this.buckets.delete(key);
    this.buckets.set(key, { tokens: tokens >= 1 ? tokens - 1 : tokens, at: now });
    if (this.buckets.size > MAX_LIMITED_OBJECTS) this.buckets.delete(this.buckets.keys().next().value!);
    return tokens >= 1;
  }

  /**
   * Drops the events not yet written (the one being written finishes): for a recorder whose owner's
   * authority ended, as a scheduler's when its leadership term does.
   */
  discard(): void {
    this.queue.length = 0;
  }

  /** Resolves once every event recorded so far was written (or failed). */
  async flush(): Promise<void> {
    while (this.workers.size > 0) await Promise.all([...this.workers]);
  }

  /**
   * Writes queued events in order, skipping past those whose key is being written (folding reads
   * the previous write of its key; that write's worker takes them after); never rejects.
   */
  private async drain(): Promise<void> {
    for (;;) {
      const index = this.queue.findIndex((job) => !this.writing.has(job.key));
      if (index < 0) return;
      const [job] = this.queue.splice(index, 1);
      this.writing.add(job!.key);
      try {
        await job!.run();
      } catch (err) {
        this.options.log.warn({ err: errorMessage(err) }, 'recording an event failed');
      } finally {
        this.writing.delete(job!.key);
      }
    }
  }

  private async write(
    key: string,
    ref: ObjectReference,
    type: EventType,
    reason: string,
    message: string,
    now: Date,
  ): Promise<void> {
    const { sink, component, host } = this.options;
    const stamp = rfc3339Seconds(now);
    const window = this.options.foldWindowMs ?? 600_000;
    const previous = this.folded.get(key);
    if (previous && now.getTime() - previous.at < window) {
      const next: Event = { ...previous.event, count: (previous.event.count ?? 1) + 1, lastTimestamp: stamp };
      try {
        const stored = (await sink.update(next)) as Event;
        this.folded.set(key, { event: stored, at: now.getTime() });
        return;
      } catch (err) {
        if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
        // gone (expired, deleted) or changed: record it anew
      }
    }
    const event: Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {
        name: `${ref.name}.${(BigInt(now.getTime()) * 1_000_000n + BigInt(this.sequence++ % 1_000_000)).toString(16)}`,
        namespace: ref.namespace || 'default',
      },
      involvedObject: ref,
      reason,
      message,
      type,
      source: { component, host },
      firstTimestamp: stamp,
      lastTimestamp: stamp,
      count: 1,
      reportingComponent: component,
      reportingInstance: host,
    };
    const stored = (await sink.create(event)) as Event;
    this.folded.set(key, { event: stored, at: now.getTime() });
    if (this.folded.size > 4096) {
      // forget the oldest half: they only fold repeats
      const entries = [...this.folded.entries()].sort((a, b) => a[1].at - b[1].at);
      for (const [k] of entries.slice(0, entries.length / 2)) this.folded.delete(k);
    }
  }

  private sequence = 0;
}
