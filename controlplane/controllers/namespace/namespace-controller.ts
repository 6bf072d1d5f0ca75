/**
 * The namespace controller finishes the deletion of Terminating namespaces. A delete of a
 * namespace only marks it (deletionTimestamp, phase Terminating); this controller deletes every
 * namespaced object in it through the API handlers (so finalizers and grace periods apply as to
 * any delete), and once nothing is left and no finalizer holds it, removes the namespace itself.
 *
 * The namespace informer enqueues every namespace it sees marked (at start-up too, so a deletion
 * left half-done by a restart resumes); reconcile(name) re-reads the namespace and returns a
 * requeue after `resyncMs` while objects remain (they go as their own finalizers and grace periods
 * allow). Conflicts with a concurrent writer are retried with back-off.
 */
import { ConflictError, NotFoundError } from '../../../proto/errors.js';
import type { Namespace } from '../../../proto/gen/types.js';
import { KINDS } from '../../../proto/kinds.js';
import type { Logger } from '../../../proto/support/logger.js';
import type { ApiHandlers } from '../../api/handlers.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { Controller } from '../../../proto/informer/controller.js';

export interface NamespaceControllerOptions {
  handlers: ApiHandlers;
  namespaces: Informer<Namespace>;
  log: Logger;
  /** Wait before looking again at a namespace whose contents are still going; default 2 s. */
  resyncMs?: number;
}

export class NamespaceController {
  private readonly controller: Controller;
  private readonly resyncMs: number;
  private stopHandler: (() => void) | undefined;

  constructor(private readonly options: NamespaceControllerOptions) {
    this.resyncMs = options.resyncMs ?? 2000;
    this.controller = new Controller({
      reconcile: (name) => this.reconcile(name),
      log: options.log,
    });
  }

  start(): void {
    this.stopHandler = this.options.namespaces.onChange((key, change) => {
      if (change === 'deleted') return;
      if (this.options.namespaces.get(key)?.object.metadata.deletionTimestamp) this.controller.enqueue(key);
    });
    // what the informer already holds (its first list may have come before this handler)
    for (const cached of this.options.namespaces.list()) {
      if (cached.object.metadata.deletionTimestamp) this.controller.enqueue(cached.key);
    }
    this.controller.start();
  }

  async stop(): Promise<void> {
    this.stopHandler?.();
    await this.controller.stop();
  }

  /** Deletes what is in the namespace, then the namespace; requeues while anything is left. */
  async reconcile(name: string): Promise<ReconcileResult> {
    const { handlers, log } = this.options;
    let namespace: Namespace;
    try {
      namespace = (await handlers.get('Namespace', '', name)).object as Namespace;
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    if (!namespace.metadata.deletionTimestamp) return;
    const remaining = await this.deleteContents(name);
    if (remaining > 0 || (namespace.metadata.finalizers ?? []).length > 0)
      return { requeueAfterMs: this.resyncMs };
    try {
      await handlers.removeTerminatedNamespace(name, namespace.metadata.resourceVersion!);
      log.info({ namespace: name }, 'namespace deleted');
    } catch (err) {
      if (err instanceof NotFoundError) return;
      // a concurrent change (another control plane, a late finalizer): look again soon
      if (err instanceof ConflictError) return { requeueAfterMs: 0 };
      throw err;
    }
  }

  /** Deletes what is in `namespace`; resolves with the number of objects still there. */
  private async deleteContents(namespace: string): Promise<number> {
    const { handlers } = this.options;
    let remaining = 0;
    for (const info of KINDS) {
      if (!info.namespaced) continue;
      const { items } = await handlers.list(info.kind, { namespace });
      for (const { object: item } of items) {
        remaining++;
        if (item.metadata.deletionTimestamp) continue;
        try {
          await handlers.delete(info.kind, namespace, item.metadata.name!);
        } catch (err) {
          if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
        }
      }
    }
    if (remaining === 0) return 0;
    // Count again: plain objects are gone now, marked ones wait for their finalizers or grace.
    let left = 0;
    for (const info of KINDS) {
      if (info.namespaced) left += (await handlers.list(info.kind, { namespace, limit: 1 })).items.length;
    }
    return left;
  }
}
