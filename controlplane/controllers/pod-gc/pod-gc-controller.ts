/**
 * The pod garbage collector removes pods no agent will ever finish, as Kubernetes' podgc does:
 *
 *   - pods bound to a node that does not exist (deleted, or never registered): no agent will run
 *     them or confirm their end, so a delete of such a pod would leave it Terminating for ever.
 *     A node missing from the informer on two passes in a row, and then from the API, is gone
 *     (a node just registered may not be in the informer yet);
 *   - pods being deleted that never got a node;
 *   - pods being deleted on a node that is not Ready and that the operator tainted
 *     `node.kubernetes.io/out-of-service` (it is known to be down: shut off, its disks detached),
 *     which will never confirm their end;
 *   - more terminated pods (Succeeded, Failed) than `terminatedPodThreshold`: the oldest go.
 *
 * Each is removed at once (grace 0), with its uid as a precondition.
 */
import { NotFoundError, errorMessage } from '../../../proto/errors.js';
import type { Node, Pod } from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { Logger } from '../../../proto/support/logger.js';
import type { ApiHandlers } from '../../api/handlers.js';

/** The taint an operator puts on a node known to be down for good (Kubernetes' non-graceful shutdown). */
export const TAINT_OUT_OF_SERVICE = 'node.kubernetes.io/out-of-service';

function isOutOfService(node: Node): boolean {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  return ready !== 'True' && (node.spec.taints ?? []).some((t) => t.key === TAINT_OUT_OF_SERVICE);
}

export interface PodGcOptions {
  handlers: ApiHandlers;
  pods: Informer<Pod>;
  nodes: Informer<Node>;
  log: Logger;
  /** Between passes; default 20 s (Kubernetes' gcCheckPeriod). */
  periodMs?: number;
  /** Terminated pods kept; default 12,500 (kube-controller-manager's default). */
  terminatedPodThreshold?: number;
}

export class PodGarbageCollector {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Nodes pods were bound to that the informer lacked on the last pass. */
  private missingBefore = new Set<string>();

  constructor(private readonly options: PodGcOptions) {}

  start(): void {
    const schedule = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.running = this.pass()
          .catch((err) =>
            this.options.log.warn({ err: errorMessage(err) }, 'pod garbage collection failed; trying again'),
          )
          .finally(schedule);
      }, this.options.periodMs ?? 20_000);
    };
    schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over the informers' pods. */
  async pass(): Promise<void> {
    const { pods, nodes } = this.options;
    const missingNow = new Set<string>();
    // asked of the API once a pass per node, however many pods are bound to it
    const gone = new Map<string, Promise<boolean>>();
    const terminated: Pod[] = [];
    for (const { object: pod } of pods.list()) {
      const node = pod.spec.nodeName;
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') terminated.push(pod);
      if (!node) {
        if (pod.metadata.deletionTimestamp) await this.remove(pod, 'being deleted and never bound to a node');
        continue;
      }
      const known = nodes.get(node)?.object;
      if (known !== undefined) {
        if (pod.metadata.deletionTimestamp && isOutOfService(known))
          await this.remove(pod, `being deleted on node ${node}, which is out of service`);
        continue;
      }
      missingNow.add(node);
      if (!this.missingBefore.has(node)) continue;
      if (!gone.has(node))
        gone.set(
          node,
          this.nodeExists(node).then((exists) => !exists),
        );
      if (await gone.get(node)!) await this.remove(pod, `bound to node ${node}, which does not exist`);
    }
    this.missingBefore = missingNow;
    const threshold = this.options.terminatedPodThreshold ?? 12_500;
    if (terminated.length > threshold) {
      terminated.sort((a, b) =>
        (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''),
      );
      for (const pod of terminated.slice(0, terminated.length - threshold))
        await this.remove(pod, `terminated, beyond the ${threshold} terminated pods kept`);
    }
  }

  private async nodeExists(name: string): Promise<boolean> {
    try {
      await this.options.handlers.get('Node', '', name);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  private async remove(pod: Pod, why: string): Promise<void> {
    const namespace = pod.metadata.namespace ?? '';
    const name = pod.metadata.name ?? '';
    try {
      await this.options.handlers.delete('Pod', namespace, name, {
        gracePeriodSeconds: 0,
        preconditions: { uid: pod.metadata.uid ?? '' },
      });
      this.options.log.info({ pod: `${namespace}/${name}`, why }, 'pod garbage-collected');
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
}
