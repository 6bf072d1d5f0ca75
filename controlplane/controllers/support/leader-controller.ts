/**
 * What the leader's workload controllers share: a work queue of keys reconciled by `workers`
 * (proto/informer/controller.ts), an Event recorder writing through the API handlers, an
 * injectable clock, and the informer handlers `watch()` registers on start and stop removes.
 */
import type { EventRecorder } from '../../../proto/events.js';
import { Controller } from '../../../proto/informer/controller.js';
import { realClock, type Clock, type ReconcileResult } from '../../../proto/informer/work-queue.js';
import type { Logger } from '../../../proto/support/logger.js';
import type { ApiHandlers } from '../../api/handlers.js';
import { controllerEventRecorder } from './event-sink.js';

export interface LeaderControllerOptions {
  handlers: ApiHandlers;
  log: Logger;
  workers?: number;
  clock?: Clock;
}

export abstract class LeaderController {
  protected readonly controller: Controller;
  protected readonly events: EventRecorder;
  protected readonly clock: Clock;
  private readonly unsubscribe: (() => void)[] = [];

  /** `component`: the controller's name in its Events' source. */
  constructor(base: LeaderControllerOptions, component: string, defaultWorkers = 5) {
    this.clock = base.clock ?? realClock;
    this.controller = new Controller({
      reconcile: (key) => this.reconcile(key),
      workers: base.workers ?? defaultWorkers,
      queue: { clock: this.clock },
      log: base.log,
    });
    this.events = controllerEventRecorder(base.handlers, component, base.log, this.clock);
  }

  /** Re-reads what `key` names and makes it so. */
  abstract reconcile(key: string): Promise<ReconcileResult>;

  /** Registers the informer handlers (returning their removals) and enqueues what is there already. */
  protected abstract watch(): (() => void)[];

  start(): void {
    this.unsubscribe.push(...this.watch());
    this.controller.start();
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    await this.controller.stop();
    await this.events.flush();
  }
}
