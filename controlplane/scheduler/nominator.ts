/**
 * Nominator: pods nominated to a node (status.nominatedNodeName) — the preemptors waiting for their
 * victims to go. The scheduler counts a nominated pod on its node when it filters pods of lower or
 * equal priority, so the room made for it is not taken by them (kube-scheduler's PodNominator).
 */
import type { Pod } from '../../proto/gen/types.js';
import { newPodInfo, podKey, type PodInfo } from './framework/pod-info.js';

export class Nominator {
  private readonly byNode = new Map<string, PodInfo[]>();
  private readonly nodeOf = new Map<string, string>();

  get size(): number {
    return this.nodeOf.size;
  }

  nominatedNode(key: string): string | undefined {
    return this.nodeOf.get(key);
  }

  /** The pods nominated to `nodeName`. */
  podsFor(nodeName: string): readonly PodInfo[] {
    return this.byNode.get(nodeName) ?? [];
  }

  add(pod: PodInfo | Pod, nodeName: string): void {
    const info = 'key' in pod ? pod : newPodInfo(pod);
    this.remove(info.key);
    let pods = this.byNode.get(nodeName);
    if (pods === undefined) this.byNode.set(nodeName, (pods = []));
    pods.push(info);
    this.nodeOf.set(info.key, nodeName);
  }

  remove(key: string): void {
    const nodeName = this.nodeOf.get(key);
    if (nodeName === undefined) return;
    this.nodeOf.delete(key);
    const remaining = (this.byNode.get(nodeName) ?? []).filter((pod) => pod.key !== key);
    if (remaining.length === 0) this.byNode.delete(nodeName);
    else this.byNode.set(nodeName, remaining);
  }

  /**
   * Follows an informer update of an unbound pod, as Kubernetes does: a nominatedNodeName set or
   * changed in the status (re)nominates, one cleared removes the nomination; an update that says
   * nothing of it keeps the scheduler's own nomination (its status write may not have landed yet).
   */
  podUpdated(old: Pod | undefined, pod: Pod): void {
    const key = podKey(pod);
    const before = old?.status?.nominatedNodeName;
    const after = pod.status?.nominatedNodeName;
    if (after) {
      this.add(pod, after);
      return;
    }
    if (before) {
      this.remove(key);
      return;
    }
    const nodeName = this.nodeOf.get(key);
    if (nodeName !== undefined) this.add(pod, nodeName);
  }
}
