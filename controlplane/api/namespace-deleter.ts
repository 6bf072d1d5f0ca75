/**
 * NamespaceDeleter: finishes the deletion of Terminating namespaces. A delete of a namespace only
 * marks it (deletionTimestamp, phase Terminating); this worker deletes every namespaced object in
 * it through the API handlers (so finalizers and grace periods apply as to any delete), and once
 * nothing is left, removes the namespace itself.
 *
 * Level-triggered: each pass lists the namespaces and works on every Terminating one, so a
 * control-plane restart in the middle simply resumes. Passes run at start, when poked (after a
 * namespace delete) and every `resyncMs` while any namespace is still Terminating.
 */
import { NotFoundError, ConflictError, errorMessage } from '../../proto/errors.js';
import type { Namespace } from '../../proto/gen/types.js';
import { KINDS } from '../../proto/kinds.js';
import type { Logger } from '../../proto/logger.js';
import type { ApiHandlers } from './handlers.js';

export interface NamespaceDeleterOptions {
  handlers: ApiHandlers;
  log: Logger;
  /** Pause between passes while something is still terminating (or after a failed pass); default 2 s. */
  resyncMs?: number;
}

export class NamespaceDeleter {
  private readonly resyncMs: number;
  private wake: (() => void) | undefined;
  private poked = false;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: NamespaceDeleterOptions) {
    this.resyncMs = options.resyncMs ?? 2000;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Asks for a pass soon (a namespace was just marked). */
  poke(): void {
    this.poked = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      this.poked = false;
      let pending = false;
      try {
        pending = await this.pass();
      } catch (err) {
        pending = true;
        this.options.log.warn({ err: errorMessage(err) }, 'namespace deletion pass failed; retrying');
      }
      if (this.stopped) break;
      if (this.poked) continue;
      await new Promise<void>((resolve) => {
        const timer = pending ? setTimeout(resolve, this.resyncMs) : undefined;
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** One pass over every Terminating namespace; resolves true while any is left. */
  async pass(): Promise<boolean> {
    const { handlers } = this.options;
    const namespaces = (await handlers.list('Namespace')).items.map((item) => item.object as Namespace);
    let pending = false;
    for (const ns of namespaces) {
      if (!ns.metadata.deletionTimestamp || this.stopped) continue;
      const name = ns.metadata.name!;
      const remaining = await this.deleteContents(name);
      if (remaining > 0 || (ns.metadata.finalizers ?? []).length > 0) {
        pending = true;
        continue;
      }
      try {
        await this.options.handlers.removeTerminatedNamespace(name, ns.metadata.resourceVersion!);
        this.options.log.info({ namespace: name }, 'namespace deleted');
      } catch (err) {
        // A concurrent change (another control plane, a late finalizer) is seen on the next pass.
        if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
        pending = true;
      }
    }
    return pending;
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
