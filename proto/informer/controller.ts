/**
 * Controller: what every controller shares (STYLE.md, "reconcile, don't react"). Informer handlers
 * only enqueue keys; `workers` loops take them from one WorkQueue and call `reconcile(key)`, which
 * re-reads the state, acts, and returns nothing or a requeue; a throw backs the key off and is
 * logged. A key is never reconciled by two workers at once.
 *
 *   informer.onChange ──► controller.enqueue(key) ──► WorkQueue ──► reconcile(key)
 *                                                        ▲            │ error: back off
 *                                                        └────────────┘ requeueAfterMs
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../support/logger.js';
import { WorkQueue, runWorkers, type ReconcileResult, type WorkQueueOptions } from './work-queue.js';

export interface ControllerOptions {
  /** Re-reads what `key` names and makes it so. */
  reconcile: (key: string) => Promise<ReconcileResult>;
  /** Reconciles at once; default 1. */
  workers?: number;
  queue?: WorkQueueOptions;
  log: Logger;
}

export class Controller {
  private readonly queue: WorkQueue;
  private running: Promise<void> | undefined;

  constructor(private readonly options: ControllerOptions) {
    this.queue = new WorkQueue(options.queue);
  }

  /** Asks for `key` to be reconciled (soon; once however often it is asked). */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  start(): void {
    this.running ??= runWorkers(
      this.queue,
      this.options.workers ?? 1,
      this.options.reconcile,
      (key, err, retryInMs) =>
        this.options.log.warn({ key, err: errorMessage(err), retryInMs }, 'reconcile failed, retrying'),
    );
  }

  /** Stops taking keys; resolves once the reconciles under way have finished. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.queue.drained();
    await this.running;
  }
}
