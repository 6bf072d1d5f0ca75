/**
 * SchedulingQueue: the pods waiting for a node, as kube-scheduler's PriorityQueue holds them.
 *
 *   add(pod) ──► activeQ (heap: higher priority first, then earlier queued) ──pop()──► in flight
 *                  ▲   ▲                                                              │
 *                  │   └── backoffQ (until the pod's back-off passes: 1 s, doubling  ◄─┤ requeueAfterError
 *                  │        per attempt, at most 10 s)                                │ (or an event that
 *                  │                                                                  │  came while in flight)
 *                  └── unschedulable (with the plugins that refused it) ◄─────────────┘ requeueUnschedulable
 *                        left only by a cluster event one of those plugins cares about
 *                        (onClusterEvent), by an update of the pod itself, or after 5 min
 *                        without any (a safety net)
 *
 * So a pod that can never fit costs nothing until the cluster changes in a way that could make it
 * fit. Pods with schedulingGates wait aside (gated) until an update removes the last gate.
 *
 * Events that arrive while a pod is being scheduled are remembered, so a pod refused by a plugin
 * whose event came meanwhile is retried (after its back-off) rather than parked and forgotten.
 * Time comes from a Clock, so back-off and flushes are testable without waiting.
 */
import type { Pod } from '../../proto/gen/types.js';
import { realClock, type Clock } from '../../proto/informer/work-queue.js';
import { newPodInfo, podKey, type PodInfo } from './framework/pod-info.js';
import { ALL_CLUSTER_EVENTS, type ClusterEvent } from './framework/types.js';
import { Heap } from './heap.js';

export interface QueuedPod {
  readonly key: string;
  pod: Pod;
  info: PodInfo;
  /** Scheduling attempts so far (counted at pop). */
  attempts: number;
  /** When the pod was last queued (orders pods of one priority; back-off counts from it). */
  timestamp: number;
  /** When the pod was first queued. */
  readonly firstQueuedAt: number;
  /** The plugins that refused it in its last attempt. */
  unschedulablePlugins: ReadonlySet<string>;
}

/**
 * inFlight: popped, its scheduling cycle running. binding: placed (assumed), its bind being
 * written; it leaves the queue when the bind is done, or comes back when it failed.
 */
type Place = 'active' | 'backoff' | 'unschedulable' | 'gated' | 'inFlight' | 'binding';

interface Entry {
  queued: QueuedPod;
  place: Place;
  /** In flight: the event sequence number when it was popped. */
  poppedAtEvent: number;
  /** In flight or binding: the pod was changed meanwhile in a way that may change the outcome. */
  updatedInFlight: boolean;
  /** In flight or binding: the pod was deleted (or bound by someone else) meanwhile. */
  deletedInFlight: boolean;
  /** Unschedulable: the events it waits for (undefined: any). */
  waitsFor: readonly ClusterEvent[] | undefined;
  backoffUntil: number;
}

export interface SchedulingQueueOptions {
  clock?: Clock;
  /** The events that can make a pod refused by the plugin of this name schedulable. */
  eventsOf: (plugin: string) => readonly ClusterEvent[];
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long a pod stays unschedulable without an event before it is retried anyway. */
  maxUnschedulableMs?: number;
  /** How often unschedulable pods are checked against maxUnschedulableMs. */
  unschedulableFlushIntervalMs?: number;
}

export interface QueueLengths {
  active: number;
  backoff: number;
  unschedulable: number;
  gated: number;
  inFlight: number;
  binding: number;
}

function byPriorityThenTime(a: QueuedPod, b: QueuedPod): boolean {
  if (a.info.priority !== b.info.priority) return a.info.priority > b.info.priority;
  return a.timestamp < b.timestamp;
}

/** Whether an update of a waiting pod may change where (or whether) it fits. */
function changedForScheduling(old: Pod, updated: Pod): boolean {
  return (
    JSON.stringify(old.spec) !== JSON.stringify(updated.spec) ||
    JSON.stringify(old.metadata.labels ?? {}) !== JSON.stringify(updated.metadata.labels ?? {})
  );
}

function isGated(pod: Pod): boolean {
  return (pod.spec.schedulingGates?.length ?? 0) > 0;
}

export class SchedulingQueue {
  private readonly clock: Clock;
  private readonly eventsOf: (plugin: string) => readonly ClusterEvent[];
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxUnschedulableMs: number;
  private readonly entries = new Map<string, Entry>();
  private readonly active = new Heap<QueuedPod>((pod) => pod.key, byPriorityThenTime);
  private readonly backoff = new Heap<Entry>(
    (entry) => entry.queued.key,
    (a, b) => a.backoffUntil < b.backoffUntil,
  );
  /** Unschedulable pods by the event they wait for; `anyEvent`: refused by no plugin in particular. */
  private readonly waiting = new Map<ClusterEvent, Set<string>>();
  private readonly anyEvent = new Set<string>();
  private unschedulableCount = 0;
  private gatedCount = 0;
  private inFlight = 0;
  private bindingCount = 0;
  /** Events seen while pods were in flight: [sequence number, event]. */
  private eventLog: [number, ClusterEvent][] = [];
  private eventSequence = 0;
  private readonly waiters: ((pod: QueuedPod | undefined) => void)[] = [];
  private backoffTimer: { at: number; timer: { cancel(): void } } | undefined;
  private flushTimer: { cancel(): void } | undefined;
  private readonly flushIntervalMs: number;
  private closed = false;

  constructor(options: SchedulingQueueOptions) {
    this.clock = options.clock ?? realClock;
    this.eventsOf = options.eventsOf;
    this.initialBackoffMs = options.initialBackoffMs ?? 1000;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.maxUnschedulableMs = options.maxUnschedulableMs ?? 5 * 60_000;
    this.flushIntervalMs = options.unschedulableFlushIntervalMs ?? 30_000;
    this.scheduleFlush();
  }

  get lengths(): QueueLengths {
    return {
      active: this.active.size,
      backoff: this.backoff.size,
      unschedulable: this.unschedulableCount,
      gated: this.gatedCount,
      inFlight: this.inFlight,
      binding: this.bindingCount,
    };
  }

  /** Whether the pod of this key is anywhere in the queue (in flight included). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** A pod without a node: queued to be scheduled (an update when it is already queued). */
  add(pod: Pod): void {
    if (this.closed) return;
    const key = podKey(pod);
    const known = this.entries.get(key);
    if (known !== undefined) {
      this.update(known.queued.pod, pod);
      return;
    }
    const now = this.clock.now();
    const queued: QueuedPod = {
      key,
      pod,
      info: newPodInfo(pod),
      attempts: 0,
      timestamp: now,
      firstQueuedAt: now,
      unschedulablePlugins: new Set(),
    };
    const entry: Entry = {
      queued,
      place: 'active',
      poppedAtEvent: 0,
      updatedInFlight: false,
      deletedInFlight: false,
      waitsFor: undefined,
      backoffUntil: now,
    };
    this.entries.set(key, entry);
    if (isGated(pod)) this.moveTo(entry, 'gated');
    else this.moveTo(entry, 'active');
  }

  /** A queued pod changed. */
  update(old: Pod | undefined, pod: Pod): void {
    if (this.closed) return;
    const entry = this.entries.get(podKey(pod));
    if (entry === undefined) {
      this.add(pod);
      return;
    }
    const previous = old ?? entry.queued.pod;
    const changed = changedForScheduling(previous, pod);
    entry.queued.pod = pod;
    if (changed || entry.queued.info.pod !== pod) entry.queued.info = newPodInfo(pod);
    switch (entry.place) {
      case 'inFlight':
      case 'binding':
        if (changed) entry.updatedInFlight = true;
        return;
      case 'gated':
        if (!isGated(pod)) this.moveTo(entry, 'active');
        return;
      case 'active':
        this.active.push(entry.queued);
        return;
      case 'backoff':
        return;
      case 'unschedulable':
        if (changed) this.moveTo(entry, this.backingOff(entry) ? 'backoff' : 'active');
        return;
    }
  }

  /** The pod was deleted, or got a node: it leaves the queue. */
  delete(pod: Pod | string): void {
    const key = typeof pod === 'string' ? pod : podKey(pod);
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    if (entry.place === 'inFlight' || entry.place === 'binding') {
      entry.deletedInFlight = true;
      return;
    }
    this.leave(entry);
    this.entries.delete(key);
  }

  /**
   * The next pod to schedule, the highest priority first; waits while there is none. Undefined once
   * the queue is closed. The caller ends the attempt with done, requeueUnschedulable or
   * requeueAfterError.
   */
  pop(): Promise<QueuedPod | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const next = this.takeActive();
    if (next !== undefined) return Promise.resolve(next);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Like pop, without waiting: undefined when no pod is active now. */
  tryPop(): QueuedPod | undefined {
    return this.closed ? undefined : this.takeActive();
  }

  private takeActive(): QueuedPod | undefined {
    const queued = this.active.pop();
    if (queued === undefined) return undefined;
    const entry = this.entries.get(queued.key)!;
    entry.place = 'inFlight';
    entry.poppedAtEvent = this.eventSequence;
    entry.updatedInFlight = false;
    entry.deletedInFlight = false;
    this.inFlight++;
    queued.attempts++;
    return queued;
  }

  /**
   * The pod's cycle placed it and its bind is being written: it stays known to the queue (so that a
   * failed bind brings it back with its attempts counted) but no longer counts as in flight.
   */
  binding(queued: QueuedPod): void {
    const entry = this.entries.get(queued.key);
    if (entry === undefined || entry.place !== 'inFlight' || entry.queued !== queued) return;
    this.endFlight();
    entry.place = 'binding';
    this.bindingCount++;
  }

  /** The attempt of a popped pod ended with the pod placed (or dropped): it leaves the queue. */
  done(queued: QueuedPod): void {
    const entry = this.entries.get(queued.key);
    if (entry === undefined || entry.queued !== queued) return;
    if (entry.place === 'inFlight') this.endFlight();
    else if (entry.place === 'binding') this.bindingCount--;
    else return;
    this.entries.delete(queued.key);
    this.pruneEventLog();
  }

  /** Moves an unschedulable pod on at once (its circumstances changed in a way events do not tell). */
  activate(key: string): void {
    const entry = this.entries.get(key);
    if (entry?.place === 'unschedulable') this.moveTo(entry, this.backingOff(entry) ? 'backoff' : 'active');
  }

  /**
   * The attempt of a popped pod found no node: it waits, refused by `plugins`, for an event one of
   * them cares about (any event when `plugins` is empty).
   */
  requeueUnschedulable(queued: QueuedPod, plugins: Iterable<string>): void {
    const entry = this.landing(queued);
    if (entry === undefined) return;
    queued.unschedulablePlugins = new Set(plugins);
    queued.timestamp = this.clock.now();
    entry.backoffUntil = queued.timestamp + this.backoffMs(queued.attempts);
    const waitsFor = this.waitsFor(queued.unschedulablePlugins);
    entry.waitsFor = waitsFor;
    if (entry.updatedInFlight || this.eventCameInFlight(entry.poppedAtEvent, waitsFor)) {
      this.moveTo(entry, 'backoff');
    } else {
      this.moveTo(entry, 'unschedulable');
    }
    this.pruneEventLog();
  }

  /** The attempt of a popped pod failed (an error, a failed bind): it is retried after its back-off. */
  requeueAfterError(queued: QueuedPod): void {
    const entry = this.landing(queued);
    if (entry === undefined) return;
    queued.timestamp = this.clock.now();
    entry.backoffUntil = queued.timestamp + this.backoffMs(queued.attempts);
    this.moveTo(entry, 'backoff');
    this.pruneEventLog();
  }

  /** Ends the flight (or bind) of `queued`; undefined when it was deleted meanwhile (then it is gone). */
  private landing(queued: QueuedPod): Entry | undefined {
    const entry = this.entries.get(queued.key);
    if (entry === undefined || entry.queued !== queued) return undefined;
    if (entry.place === 'inFlight') this.endFlight();
    else if (entry.place === 'binding') this.bindingCount--;
    else return undefined;
    if (entry.deletedInFlight || this.closed) {
      this.entries.delete(queued.key);
      this.pruneEventLog();
      return undefined;
    }
    return entry;
  }

  private endFlight(): void {
    this.inFlight--;
  }

  /**
   * Something changed in the cluster: pods waiting for this kind of event move on — to backoffQ
   * while their back-off lasts, else to activeQ.
   */
  onClusterEvent(event: ClusterEvent): void {
    if (this.closed) return;
    this.eventSequence++;
    if (this.inFlight > 0) this.eventLog.push([this.eventSequence, event]);
    const keys = [...(this.waiting.get(event) ?? []), ...this.anyEvent];
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry?.place === 'unschedulable') this.moveTo(entry, this.backingOff(entry) ? 'backoff' : 'active');
    }
  }

  /** Moves every unschedulable pod on (for events the queue cannot tell apart). */
  moveAllUnschedulable(): void {
    for (const entry of this.entries.values()) {
      if (entry.place === 'unschedulable') this.moveTo(entry, this.backingOff(entry) ? 'backoff' : 'active');
    }
  }

  /** Retries pods unschedulable for longer than maxUnschedulableMs (the queue does it on a timer). */
  flushUnschedulableLeftover(): void {
    const now = this.clock.now();
    for (const entry of this.entries.values()) {
      if (entry.place === 'unschedulable' && now - entry.queued.timestamp > this.maxUnschedulableMs) {
        this.moveTo(entry, this.backingOff(entry) ? 'backoff' : 'active');
      }
    }
  }

  /** Moves pods whose back-off has passed to activeQ (the queue does it on a timer). */
  flushBackoffCompleted(): void {
    const now = this.clock.now();
    for (
      let head = this.backoff.peek();
      head !== undefined && head.backoffUntil <= now;
      head = this.backoff.peek()
    ) {
      this.moveTo(head, 'active');
    }
    this.armBackoffTimer();
  }

  /** Stops the queue: pop() answers undefined from now on, waiting pops at once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.backoffTimer?.timer.cancel();
    this.backoffTimer = undefined;
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  /** Every pod the queue holds, with where it is (for diagnostics and tests). */
  pending(): { pod: Pod; place: Place; unschedulablePlugins: string[] }[] {
    return [...this.entries.values()].map((entry) => ({
      pod: entry.queued.pod,
      place: entry.place,
      unschedulablePlugins: [...entry.queued.unschedulablePlugins],
    }));
  }

  // ---------------------------------------------------------------------------------------------

  /** Back-off after `attempts` attempts: initial · 2^(attempts−1), at most the maximum. */
  private backoffMs(attempts: number): number {
    let delay = this.initialBackoffMs;
    for (let i = 1; i < attempts; i++) {
      delay *= 2;
      if (delay >= this.maxBackoffMs) return this.maxBackoffMs;
    }
    return Math.min(delay, this.maxBackoffMs);
  }

  private backingOff(entry: Entry): boolean {
    return entry.backoffUntil > this.clock.now();
  }

  private waitsFor(plugins: ReadonlySet<string>): readonly ClusterEvent[] | undefined {
    if (plugins.size === 0) return undefined;
    const events = new Set<ClusterEvent>();
    for (const plugin of plugins) for (const event of this.eventsOf(plugin)) events.add(event);
    return ALL_CLUSTER_EVENTS.filter((event) => events.has(event));
  }

  private eventCameInFlight(since: number, waitsFor: readonly ClusterEvent[] | undefined): boolean {
    for (const [sequence, event] of this.eventLog) {
      if (sequence > since && (waitsFor === undefined || waitsFor.includes(event))) return true;
    }
    return false;
  }

  /** Forgets the events no pod in flight can still need. */
  private pruneEventLog(): void {
    if (this.inFlight === 0) {
      this.eventLog = [];
      return;
    }
    if (this.eventLog.length < 1024) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (const entry of this.entries.values()) {
      if (entry.place === 'inFlight') oldest = Math.min(oldest, entry.poppedAtEvent);
    }
    this.eventLog = this.eventLog.filter(([sequence]) => sequence > oldest);
  }

  /** Takes the entry out of where it is (not out of `entries`). */
  private leave(entry: Entry): void {
    switch (entry.place) {
      case 'active':
        this.active.delete(entry.queued.key);
        return;
      case 'backoff':
        this.backoff.delete(entry.queued.key);
        return;
      case 'unschedulable':
        this.unschedulableCount--;
        if (entry.waitsFor === undefined) this.anyEvent.delete(entry.queued.key);
        else for (const event of entry.waitsFor) this.waiting.get(event)?.delete(entry.queued.key);
        return;
      case 'gated':
        this.gatedCount--;
        return;
      case 'inFlight':
      case 'binding':
        return;
    }
  }

  private moveTo(entry: Entry, place: Place): void {
    if (entry.place !== 'inFlight' && entry.place !== 'binding') this.leave(entry);
    entry.place = place;
    switch (place) {
      case 'active': {
        this.active.push(entry.queued);
        const waiter = this.waiters.shift();
        if (waiter !== undefined) waiter(this.takeActive());
        return;
      }
      case 'backoff':
        if (!this.backingOff(entry)) {
          this.moveTo(entry, 'active');
          return;
        }
        this.backoff.push(entry);
        this.armBackoffTimer();
        return;
      case 'unschedulable': {
        this.unschedulableCount++;
        const key = entry.queued.key;
        if (entry.waitsFor === undefined) this.anyEvent.add(key);
        else {
          for (const event of entry.waitsFor) {
            let keys = this.waiting.get(event);
            if (keys === undefined) this.waiting.set(event, (keys = new Set()));
            keys.add(key);
          }
        }
        return;
      }
      case 'gated':
        this.gatedCount++;
        return;
      case 'inFlight':
      case 'binding':
        return;
    }
  }

  private armBackoffTimer(): void {
    const head = this.backoff.peek();
    if (head === undefined || this.closed) {
      this.backoffTimer?.timer.cancel();
      this.backoffTimer = undefined;
      return;
    }
    if (this.backoffTimer !== undefined && this.backoffTimer.at <= head.backoffUntil) return;
    this.backoffTimer?.timer.cancel();
    const at = head.backoffUntil;
    this.backoffTimer = {
      at,
      timer: this.clock.setTimeout(
        () => {
          this.backoffTimer = undefined;
          this.flushBackoffCompleted();
        },
        Math.max(0, at - this.clock.now()),
      ),
    };
  }

  private scheduleFlush(): void {
    this.flushTimer = this.clock.setTimeout(() => {
      if (this.closed) return;
      this.flushUnschedulableLeftover();
      this.scheduleFlush();
    }, this.flushIntervalMs);
  }
}
