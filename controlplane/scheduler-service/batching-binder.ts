/**
 * The scheduler's Binder: each bind is ApiHandlers' binding (a compare-and-swap that sets nodeName
 * only while it is empty), and the binds the scheduler starts within one turn of the event loop go
 * to etcd together (ApiHandlers.bindPods: up to 128 in one transaction, each checked as alone).
 * At 1,000 pods a second one etcd round trip per pod is most of the control plane's CPU; a batch
 * of them costs little more than one.
 *
 *   bind(pod, node) ──► pending ──(setImmediate, or 128 waiting)──► bindPods(batch) ──► each answer
 */
import type { Pod } from '../../proto/gen/types.js';
import type { ApiHandlers, PodBinding } from '../api/handlers.js';
import type { Binder } from '../scheduler/scheduler.js';
import { MAX_WRITES_PER_TRANSACTION } from '../store/store.js';

interface PendingBind {
  binding: PodBinding;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class BatchingBinder implements Binder {
  private pending: PendingBind[] = [];
  private flushScheduled = false;

  constructor(private readonly handlers: Pick<ApiHandlers, 'bindPods'>) {}

  bind(pod: Pod, nodeName: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        binding: {
          namespace: pod.metadata.namespace ?? '',
          name: pod.metadata.name ?? '',
          ...(pod.metadata.uid ? { uid: pod.metadata.uid } : {}),
          nodeName,
          // the version the scheduler decided on: the check reads the watch cache, not etcd
          ...(pod.metadata.resourceVersion ? { seenResourceVersion: pod.metadata.resourceVersion } : {}),
        },
        resolve,
        reject,
      });
      if (this.pending.length >= MAX_WRITES_PER_TRANSACTION) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.handlers.bindPods(batch.map((each) => each.binding)).then(
      (answers) =>
        batch.forEach((each, i) => {
          const answer = answers[i];
          if (answer instanceof Error) each.reject(answer);
          else each.resolve();
        }),
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        for (const each of batch) each.reject(error);
      },
    );
  }
}
