/**
 * SchedulerService: the scheduler (controlplane/scheduler/, pure logic) with its edges, for one
 * leadership term of the control plane that leads:
 *
 *   shared informers (pods, nodes, namespaces) ──handlers──► Scheduler ──bind──► ApiHandlers.bindPods
 *                                                                │        (a CAS each, nodeName set once;
 *                                                                │         many in one etcd txn)
 *                                                                ├─report─► PodSchedulingReporter
 *                                                                │          (PodScheduled, Events)
 *                                                                └─evict──► graceful delete
 *
 * `start()` makes a fresh Scheduler, registers it with the informers and hands it their current
 * state (namespaces, nodes, then pods: bound pods fill its cache, the others its queue), then runs
 * it. `stop()` (the term ended) unregisters it, drops the reporter's unwritten writes, stops the
 * loop and waits for the binds in flight: a bind that lands after another leader took over is
 * refused by bindPod (a pod is bound only while its nodeName is empty), so none binds twice.
 */
import type { Namespace, Node, Pod } from '../../proto/gen/types.js';
import { EventRecorder } from '../../proto/events.js';
import type { Informer } from '../../proto/informer/informer.js';
import type { Logger } from '../../proto/support/logger.js';
import type { ApiHandlers } from '../api/handlers.js';
import type { SchedulerProfile } from '../scheduler/profile.js';
import { Scheduler, type SchedulerOptions } from '../scheduler/scheduler.js';
import type { SchedulerMetrics } from './metrics.js';
import { BatchingBinder } from './batching-binder.js';
import { PodSchedulingReporter } from './pod-scheduling-reporter.js';

/** The Events' source.component, as kube-scheduler's. */
export const SCHEDULER_COMPONENT = 'default-scheduler';

export interface SchedulerServiceOptions {
  handlers: ApiHandlers;
  pods: Informer<Pod>;
  nodes: Informer<Node>;
  namespaces: Informer<Namespace>;
  profile?: SchedulerProfile;
  metrics?: SchedulerMetrics;
  /** Events' reportingInstance: this control plane. */
  instance: string;
  log: Logger;
  /** Scheduler tuning (benchmarks): binds in flight, the random source. */
  tuning?: Pick<SchedulerOptions, 'maxBindsInFlight' | 'random'>;
}

export class SchedulerService {
  readonly scheduler: Scheduler;
  readonly reporter: PodSchedulingReporter;
  private readonly events: EventRecorder;
  private readonly unsubscribe: (() => void)[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly options: SchedulerServiceOptions) {
    const { handlers, log } = options;
    this.events = new EventRecorder({
      sink: {
        create: async (object) => (await handlers.create(object)).object as never,
        update: async (object) => (await handlers.update(object)).object as never,
      },
      component: SCHEDULER_COMPONENT,
      host: options.instance,
      log: log.child({ component: 'scheduler-events' }),
    });
    this.reporter = new PodSchedulingReporter({ handlers, pods: options.pods, events: this.events, log });
    this.scheduler = new Scheduler({
      binder: new BatchingBinder(handlers),
      reporter: this.reporter,
      evictor: this.reporter,
      ...(options.profile !== undefined ? { profile: options.profile } : {}),
      ...(options.metrics !== undefined
        ? { onCycle: (outcome, ms) => options.metrics!.observeCycle(outcome, ms) }
        : {}),
      logger: log,
      ...options.tuning,
    });
  }

  /** Feeds the scheduler the informers' state and what changes from now on, and runs it. */
  start(): void {
    if (this.running !== undefined) return;
    const { pods, nodes, namespaces, metrics, log } = this.options;
    const scheduler = this.scheduler;
    // registered and fed in one synchronous step: no change falls between the two
    this.unsubscribe.push(
      follow(namespaces, {
        added: (namespace) => scheduler.namespaceAdded(namespace),
        updated: (old, namespace) => scheduler.namespaceUpdated(old, namespace),
        deleted: (namespace) => scheduler.namespaceDeleted(namespace),
      }),
      follow(nodes, {
        added: (node) => scheduler.nodeAdded(node),
        updated: (old, node) => scheduler.nodeUpdated(old, node),
        deleted: (node) => scheduler.nodeDeleted(node),
      }),
      follow(pods, {
        added: (pod) => scheduler.podAdded(pod),
        updated: (old, pod) => scheduler.podUpdated(old, pod),
        deleted: (pod) => scheduler.podDeleted(pod),
      }),
    );
    for (const { object } of namespaces.list()) scheduler.namespaceAdded(object);
    for (const { object } of nodes.list()) scheduler.nodeAdded(object);
    const all = pods.list();
    for (const { object } of all) if (object.spec.nodeName) scheduler.podAdded(object);
    for (const { object } of all) if (!object.spec.nodeName) scheduler.podAdded(object);
    metrics?.attach(scheduler);
    log.info(
      { nodes: nodes.list().length, pods: all.length, pending: scheduler.queue.lengths.active },
      'scheduler started',
    );
    this.running = scheduler.run();
  }

  /** Stops scheduling: no new cycle, no unwritten report; resolves once the binds in flight ended. */
  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    this.reporter.close();
    this.options.metrics?.attach(undefined);
    await this.scheduler.stop();
    await this.running;
    this.options.log.info('scheduler stopped');
  }

  /** Resolves once the Events and status writes recorded so far are written (tests, benchmarks). */
  async flush(): Promise<void> {
    await this.reporter.idle();
    await this.events.flush();
  }
}

/** Hands an informer's changes to the scheduler as objects (the informer passes keys): old and new. */
function follow<T>(
  informer: Informer<T>,
  to: { added(object: T): void; updated(old: T, object: T): void; deleted(object: T): void },
): () => void {
  return informer.onChange((key, change, before) => {
    if (change === 'deleted') {
      if (before !== undefined) to.deleted(before.object);
      return;
    }
    const now = informer.get(key)?.object;
    if (now === undefined) return;
    if (before === undefined) to.added(now);
    else if (before.object !== now) to.updated(before.object, now);
  });
}
