/**
 * Scheduler: places pods without a node on nodes, one pod per scheduling cycle, as kube-scheduler.
 *
 *   pop (SchedulingQueue) → snapshot (SchedulerCache, O(changed nodes)) → PreFilter
 *     → the nominated node first, if the pod has one
 *     → Filter over the nodes from a rotating start, stopping once enough feasible nodes are found
 *       (percentageOfNodesToScore)
 *     → none: PostFilter (preemption), FailedScheduling message, back to the queue as unschedulable
 *     → Score (weighted, normalised) → the highest, ties broken at random
 *     → assume (the pod counts on the node at once) → bind, asynchronously
 *         ok: the cache expects the informer to confirm; reporter.scheduled
 *         failed: forget the assumption, back to the queue with back-off
 *
 * The cycle is synchronous from snapshot to assume; binds run beside it, at most
 * `maxBindsInFlight` at once, so throughput is not bound by the store's write latency.
 *
 * I/O stays at the edges, injected: the Binder writes the binding (compare-and-swap on the pod; it
 * throws ConflictError or NotFoundError from proto/errors.ts), the SchedulingReporter records the
 * PodScheduled condition and Events, the Evictor deletes preemption victims gracefully. The
 * informer's pods, nodes and namespaces come in through podAdded/podUpdated/podDeleted,
 * nodeAdded/..., namespaceAdded/...; clock and randomness are parameters.
 *
 * Which pods: those whose spec.schedulerName is the profile's (default `default-scheduler`, what
 * the API sets when a pod names none; no alias such as `skiff-scheduler`, so a second scheduler of
 * another name can run beside this one), without a node, not being deleted, with no
 * schedulingGates (those wait in the queue until the last gate goes).
 */
import { ConflictError, errorMessage, NotFoundError } from '../../proto/errors.js';
import type { Namespace, Node, Pod } from '../../proto/gen/types.js';
import { realClock, type Clock } from '../../proto/informer/work-queue.js';
import type { Logger } from '../../proto/support/logger.js';
import { SchedulerCache } from './cache.js';
import { fitErrorMessage, NO_NODES_AVAILABLE } from './fit-error.js';
import { assignedPodUpdateEvents, namespaceUpdateEvents, nodeUpdateEvents } from './framework/events.js';
import type { NodeInfo } from './framework/node-info.js';
import { podKey, type PodInfo } from './framework/pod-info.js';
import { Framework } from './framework/runtime.js';
import { Snapshot } from './framework/snapshot.js';
import {
  CycleState,
  type ClusterEvent,
  type FilterPlugin,
  type Plugin,
  type Status,
} from './framework/types.js';
import { Nominator } from './nominator.js';
import { DefaultPreemption, type PreemptionOptions } from './preemption.js';
import { defaultProfile, feasibleNodesToFind, type SchedulerProfile } from './profile.js';
import { DEFAULT_PREEMPTION, instantiatePlugins } from './plugins/registry.js';
import { SchedulingQueue, type QueuedPod } from './queue.js';

/** Writes a pod's binding to a node. Throws ConflictError / NotFoundError when the pod changed or went. */
export interface Binder {
  bind(pod: Pod, nodeName: string): Promise<void>;
}

/** Records what became of a pod: its PodScheduled condition and Events. */
export interface SchedulingReporter {
  scheduled(pod: Pod, nodeName: string): void | Promise<void>;
  /**
   * No node fits (condition PodScheduled False, reason Unschedulable; a FailedScheduling Event).
   * `nominatedNodeName`: set it in the status; '' clears it; undefined leaves it as it is.
   */
  unschedulable(pod: Pod, message: string, options: { nominatedNodeName?: string }): void | Promise<void>;
  /** The attempt failed otherwise (a bind refused, a plugin error; reason SchedulerError). */
  failed?(pod: Pod, message: string): void | Promise<void>;
  /** A higher-priority pod took the node this pod was nominated to: clear its nominatedNodeName. */
  nominationCleared?(pod: Pod): void | Promise<void>;
}

/** Deletes a preemption victim gracefully. */
export interface Evictor {
  evict(victim: Pod, options: { preemptor: Pod; nodeName: string }): Promise<void>;
}

export interface SchedulerOptions {
  binder: Binder;
  reporter: SchedulingReporter;
  /** Without one, preemption chooses victims but evicts none (and nominates no node). */
  evictor?: Evictor;
  profile?: SchedulerProfile;
  clock?: Clock;
  /** A number in [0, 1): tie breaks between equal scores, preemption's starting node. */
  random?: () => number;
  logger?: Logger;
  /** Binds written at once (default 256). */
  maxBindsInFlight?: number;
  /** How long an assumed pod whose bind was written stays counted without the informer's word. */
  assumedTtlMs?: number;
  preemption?: PreemptionOptions;
  /** Plugins by name, in place of the built-in ones (tests). */
  plugins?: ReadonlyMap<string, Plugin>;
  /** Told of every cycle and how long it took (ms, real time): metrics. */
  onCycle?: (outcome: CycleOutcome, durationMs: number) => void;
}

/** What one scheduling cycle did (for tests and metrics). */
export type CycleOutcome =
  | { readonly kind: 'assumed'; readonly pod: Pod; readonly nodeName: string }
  | {
      readonly kind: 'unschedulable';
      readonly pod: Pod;
      readonly message: string;
      readonly nominatedNodeName?: string;
    }
  | { readonly kind: 'error'; readonly pod: Pod; readonly message: string }
  | { readonly kind: 'skipped'; readonly pod: Pod };

const EXPIRE_INTERVAL_MS = 1000;

export class Scheduler {
  readonly cache: SchedulerCache;
  readonly queue: SchedulingQueue;
  readonly nominator = new Nominator();
  readonly profile: SchedulerProfile;
  readonly framework: Framework;
  private readonly preemption: DefaultPreemption | undefined;
  private readonly snapshot = new Snapshot();
  private readonly binder: Binder;
  private readonly reporter: SchedulingReporter;
  private readonly evictor: Evictor | undefined;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly logger: Logger | undefined;
  private readonly maxBindsInFlight: number;
  private readonly binds = new Set<Promise<void>>();
  private nextStartNodeIndex = 0;
  private running: Promise<void> | undefined;
  private stopping = false;
  private expireTimer: { cancel(): void } | undefined;
  private readonly onCycle: ((outcome: CycleOutcome, durationMs: number) => void) | undefined;

  constructor(options: SchedulerOptions) {
    this.profile = options.profile ?? defaultProfile();
    this.binder = options.binder;
    this.reporter = options.reporter;
    this.evictor = options.evictor;
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.logger = options.logger;
    this.maxBindsInFlight = options.maxBindsInFlight ?? 256;
    this.onCycle = options.onCycle;
    const plugins =
      options.plugins ??
      instantiatePlugins([...this.profile.filters, ...this.profile.scores.map((s) => s.name)]);
    this.framework = new Framework(plugins, this.profile.filters, this.profile.scores);
    this.preemption = this.profile.postFilters.includes(DEFAULT_PREEMPTION)
      ? new DefaultPreemption(this.framework, this.nominator, this.random, options.preemption)
      : undefined;
    this.cache = new SchedulerCache({ assumedTtlMs: options.assumedTtlMs });
    this.queue = new SchedulingQueue({
      clock: this.clock,
      eventsOf: (plugin) => this.framework.eventsOf(plugin),
      initialBackoffMs: this.profile.podInitialBackoffSeconds * 1000,
      maxBackoffMs: this.profile.podMaxBackoffSeconds * 1000,
    });
  }

  /** Whether this scheduler places the pod (its schedulerName), bound or not. */
  responsibleFor(pod: Pod): boolean {
    return (pod.spec.schedulerName || this.profile.schedulerName) === this.profile.schedulerName;
  }

  // ---------------------------------------------------------------------------------------------
  // The informer's edge

  private event(event: ClusterEvent): void {
    this.queue.onClusterEvent(event);
  }

  podAdded(pod: Pod): void {
    if (pod.spec.nodeName) {
      this.cache.addPod(pod);
      this.queue.delete(pod);
      this.nominator.remove(podKey(pod));
      this.event('PodAdd');
      return;
    }
    this.pendingPodChanged(undefined, pod);
  }

  podUpdated(old: Pod, pod: Pod): void {
    if (pod.spec.nodeName) {
      if (!old.spec.nodeName) {
        this.podAdded(pod);
        return;
      }
      this.cache.updatePod(pod);
      for (const event of assignedPodUpdateEvents(old, pod)) this.event(event);
      return;
    }
    this.pendingPodChanged(old, pod);
  }

  private pendingPodChanged(old: Pod | undefined, pod: Pod): void {
    const key = podKey(pod);
    if (!this.responsibleFor(pod) || pod.metadata.deletionTimestamp !== undefined) {
      this.queue.delete(pod);
      this.nominator.remove(key);
      return;
    }
    // Assumed: its bind is being written; the informer's view is just behind.
    if (this.cache.isAssumed(key)) return;
    this.nominator.podUpdated(old, pod);
    if (old === undefined) this.queue.add(pod);
    else this.queue.update(old, pod);
  }

  podDeleted(pod: Pod): void {
    const key = podKey(pod);
    if (pod.spec.nodeName || this.cache.nodeOf(key) !== undefined) {
      this.cache.removePod(pod);
      this.queue.delete(pod);
      this.event('PodDelete');
      return;
    }
    this.queue.delete(pod);
    if (this.nominator.nominatedNode(key) !== undefined) {
      this.nominator.remove(key);
      // The room kept for it is free for others.
      this.event('PodDelete');
    }
  }

  nodeAdded(node: Node): void {
    this.cache.addNode(node);
    this.event('NodeAdd');
  }

  nodeUpdated(old: Node, node: Node): void {
    this.cache.updateNode(node);
    for (const event of nodeUpdateEvents(old, node)) this.event(event);
  }

  nodeDeleted(node: Node): void {
    this.cache.removeNode(node.metadata.name ?? '');
    this.event('NodeDelete');
  }

  namespaceAdded(namespace: Namespace): void {
    this.cache.addNamespace(namespace);
    this.event('NamespaceAdd');
  }

  namespaceUpdated(old: Namespace, namespace: Namespace): void {
    this.cache.updateNamespace(namespace);
    for (const event of namespaceUpdateEvents(old, namespace)) this.event(event);
  }

  namespaceDeleted(namespace: Namespace): void {
    this.cache.removeNamespace(namespace.metadata.name ?? '');
  }

  // ---------------------------------------------------------------------------------------------
  // Running

  /** Schedules pods until stop(). */
  run(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  private async loop(): Promise<void> {
    this.armExpiry();
    // Real time, whatever the injected clock: this is about the event loop, not about scheduling.
    let lastYield = performance.now();
    while (!this.stopping) {
      if (this.binds.size >= this.maxBindsInFlight) await Promise.race(this.binds);
      const queued = await this.queue.pop();
      if (queued === undefined) break;
      this.scheduleQueued(queued);
      // A run of ready pods resolves pops without a macrotask turn: let the informer's events in.
      if (performance.now() - lastYield >= 5) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
  }

  /** Stops scheduling; resolves once the loop ended and the binds in flight are done. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.queue.close();
    this.expireTimer?.cancel();
    this.expireTimer = undefined;
    await this.running;
    await this.drainBinds();
  }

  /** Resolves once every bind started so far is done. */
  async drainBinds(): Promise<void> {
    while (this.binds.size > 0) await Promise.allSettled([...this.binds]);
  }

  private armExpiry(): void {
    this.expireTimer = this.clock.setTimeout(() => {
      for (const expired of this.cache.expireAssumedPods(this.clock.now())) {
        this.logger?.warn({ pod: expired.key }, 'assumed pod expired without its bind being seen');
        this.event('PodDelete');
      }
      if (!this.stopping) this.armExpiry();
    }, EXPIRE_INTERVAL_MS);
  }

  /** Pops one pod (waiting for one) and schedules it; false once the queue is closed. */
  async scheduleOne(): Promise<CycleOutcome | undefined> {
    const queued = await this.queue.pop();
    return queued === undefined ? undefined : this.scheduleQueued(queued);
  }

  /** One scheduling cycle for a popped pod. */
  scheduleQueued(queued: QueuedPod): CycleOutcome {
    if (this.onCycle === undefined) return this.guardedAttempt(queued);
    const start = performance.now();
    const outcome = this.guardedAttempt(queued);
    this.onCycle(outcome, performance.now() - start);
    return outcome;
  }

  private guardedAttempt(queued: QueuedPod): CycleOutcome {
    try {
      return this.attempt(queued);
    } catch (err) {
      // A plugin's bug must not stop the scheduler: the pod is retried after its back-off.
      this.logger?.error({ pod: queued.key, err: errorMessage(err) }, 'scheduling cycle failed');
      return this.fail(queued, `scheduling cycle of pod ${queued.key} failed: ${errorMessage(err)}`);
    }
  }

  private attempt(queued: QueuedPod): CycleOutcome {
    const pod = queued.pod;
    if (
      pod.spec.nodeName ||
      pod.metadata.deletionTimestamp !== undefined ||
      !this.responsibleFor(pod) ||
      this.cache.isAssumed(queued.key)
    ) {
      this.queue.done(queued);
      return { kind: 'skipped', pod };
    }
    this.cache.updateSnapshot(this.snapshot);
    const snapshot = this.snapshot;
    const info = queued.info;
    if (snapshot.nodeCount === 0) return this.refuse(queued, NO_NODES_AVAILABLE, [], undefined);

    const state = new CycleState();
    const preFiltered = this.framework.preFilter(state, info, snapshot);
    if (preFiltered.status !== undefined) {
      const status = preFiltered.status;
      if (status.code === 'Error') return this.fail(queued, status.reasons.join(', '));
      const statuses = new Map<string, Status>();
      for (const node of snapshot.nodes) statuses.set(node.name, status);
      return this.unfit(queued, state, [], snapshot, statuses, status.reasons.join(', '));
    }
    const filters = preFiltered.filters;

    const nominatedNodeName = pod.status?.nominatedNodeName || this.nominator.nominatedNode(queued.key);
    if (nominatedNodeName) {
      const node = snapshot.get(nominatedNodeName);
      if (node !== undefined) {
        const status = this.framework.filterWithNominated(state, info, node, filters, this.nominator);
        if (status === undefined) return this.assume(queued, node.name);
      }
    }

    const nodes = snapshot.nodes;
    const total = nodes.length;
    const wanted = feasibleNodesToFind(this.profile.percentageOfNodesToScore, total);
    const feasible: NodeInfo[] = [];
    // Refused nodes and why, as parallel lists: a Map costs more, and is needed only when none fits.
    const refused: NodeInfo[] = [];
    const refusals: Status[] = [];
    const start = this.nextStartNodeIndex % total;
    const nominated = this.nominator.size > 0 ? this.nominator : undefined;
    const framework = this.framework;
    let processed = 0;
    for (let i = start; processed < total && feasible.length < wanted; i = i + 1 === total ? 0 : i + 1) {
      const node = nodes[i]!;
      processed++;
      const status =
        nominated === undefined
          ? framework.filter(state, info, node, filters)
          : framework.filterWithNominated(state, info, node, filters, nominated);
      if (status === undefined) feasible.push(node);
      else if (status.code === 'Error')
        return this.fail(queued, `${status.plugin}: ${status.reasons.join(', ')}`);
      else {
        refused.push(node);
        refusals.push(status);
      }
    }
    this.nextStartNodeIndex = (start + processed) % total;

    if (feasible.length === 0) {
      const statuses = new Map<string, Status>();
      for (let i = 0; i < refused.length; i++) statuses.set(refused[i]!.name, refusals[i]!);
      return this.unfit(queued, state, filters, snapshot, statuses, undefined);
    }
    if (feasible.length === 1) return this.assume(queued, feasible[0]!.name);
    const scores = this.framework.score(state, info, feasible, snapshot);
    return this.assume(queued, feasible[this.pickHighest(scores)]!.name);
  }

  /** The index of the highest score; ties broken at random, each tied node equally likely. */
  private pickHighest(scores: readonly number[]): number {
    let best = 0;
    let ties = 1;
    for (let i = 1; i < scores.length; i++) {
      if (scores[i]! > scores[best]!) {
        best = i;
        ties = 1;
      } else if (scores[i] === scores[best]) {
        ties++;
        if (this.random() * ties < 1) best = i;
      }
    }
    return best;
  }

  /** No node fits: preemption, then the message, then the queue. */
  private unfit(
    queued: QueuedPod,
    state: CycleState,
    filters: readonly FilterPlugin[],
    snapshot: Snapshot,
    statuses: Map<string, Status>,
    preFilterMessage: string | undefined,
  ): CycleOutcome {
    const info = queued.info;
    const plugins = new Set<string>();
    for (const status of statuses.values()) plugins.add(status.plugin);
    let nominatedNodeName: string | undefined;
    let postFilterMessage: string | undefined;
    if (this.preemption !== undefined) {
      const current = queued.pod.status?.nominatedNodeName || this.nominator.nominatedNode(queued.key);
      const result = this.preemption.preempt(state, info, filters, snapshot, statuses, current);
      if (result.candidate !== undefined) {
        nominatedNodeName = result.candidate.nodeName;
        this.carryOut(info, result.candidate.nodeName, result.candidate.victims);
      } else {
        postFilterMessage = result.message;
        if (result.clearNomination && current) {
          nominatedNodeName = '';
          this.nominator.remove(queued.key);
        }
      }
    }
    const message = fitErrorMessage({
      numAllNodes: snapshot.nodeCount,
      nodeStatuses: statuses,
      preFilterMessage,
      postFilterMessage,
    });
    return this.refuse(queued, message, plugins, nominatedNodeName);
  }

  /** Evicts the victims, nominates the node, and clears lower-priority nominations there. */
  private carryOut(preemptor: PodInfo, nodeName: string, victims: readonly PodInfo[]): void {
    this.nominator.add(preemptor, nodeName);
    for (const other of this.nominator.podsFor(nodeName)) {
      if (other.priority < preemptor.priority) {
        this.nominator.remove(other.key);
        this.queue.activate(other.key);
        this.reportSafely(() => this.reporter.nominationCleared?.(other.pod));
      }
    }
    if (this.evictor === undefined) return;
    for (const victim of victims) {
      this.logger?.info({ pod: victim.key, preemptor: preemptor.key, node: nodeName }, 'preempting pod');
      this.evictor.evict(victim.pod, { preemptor: preemptor.pod, nodeName }).catch((err: unknown) => {
        this.logger?.warn(
          { pod: victim.key, preemptor: preemptor.key, err: errorMessage(err) },
          'preemption eviction failed',
        );
      });
    }
  }

  private refuse(
    queued: QueuedPod,
    message: string,
    plugins: Iterable<string>,
    nominatedNodeName: string | undefined,
  ): CycleOutcome {
    const pod = queued.pod;
    this.reportSafely(() =>
      this.reporter.unschedulable(pod, message, nominatedNodeName === undefined ? {} : { nominatedNodeName }),
    );
    this.queue.requeueUnschedulable(queued, plugins);
    return nominatedNodeName === undefined
      ? { kind: 'unschedulable', pod, message }
      : { kind: 'unschedulable', pod, message, nominatedNodeName };
  }

  private fail(queued: QueuedPod, message: string): CycleOutcome {
    const pod = queued.pod;
    this.logger?.warn({ pod: queued.key, err: message }, 'scheduling attempt failed');
    this.reportSafely(() => this.reporter.failed?.(pod, message));
    this.queue.requeueAfterError(queued);
    return { kind: 'error', pod, message };
  }

  private assume(queued: QueuedPod, nodeName: string): CycleOutcome {
    const pod = queued.pod;
    this.cache.assume(pod, nodeName, queued.info);
    this.nominator.remove(queued.key);
    this.queue.binding(queued);
    const bind = this.bind(queued, nodeName).finally(() => this.binds.delete(bind));
    this.binds.add(bind);
    return { kind: 'assumed', pod, nodeName };
  }

  private async bind(queued: QueuedPod, nodeName: string): Promise<void> {
    const pod = queued.pod;
    try {
      await this.binder.bind(pod, nodeName);
    } catch (err) {
      this.cache.forget(pod);
      // The pod counted on the node until now: pods refused for its room may fit.
      this.event('PodDelete');
      if (err instanceof NotFoundError) {
        this.queue.done(queued);
        return;
      }
      const message = `binding rejected: bind pod ${queued.key} to node ${nodeName}: ${errorMessage(err)}`;
      if (!(err instanceof ConflictError))
        this.logger?.warn({ pod: queued.key, node: nodeName, err: errorMessage(err) }, 'bind failed');
      this.reportSafely(() => this.reporter.failed?.(pod, message));
      this.queue.requeueAfterError(queued);
      return;
    }
    this.cache.finishBinding(pod, this.clock.now());
    this.queue.done(queued);
    this.reportSafely(() => this.reporter.scheduled(pod, nodeName));
  }

  /** Runs a reporter call; a failure (sync or async) is logged, never the scheduler's problem. */
  private reportSafely(report: () => void | Promise<void>): void {
    try {
      const result = report();
      if (result instanceof Promise) {
        result.catch((err: unknown) =>
          this.logger?.warn({ err: errorMessage(err) }, 'scheduling report failed'),
        );
      }
    } catch (err) {
      this.logger?.warn({ err: errorMessage(err) }, 'scheduling report failed');
    }
  }
}
