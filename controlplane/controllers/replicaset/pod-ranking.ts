/**
 * Which pods a controller deletes first when it scales down: the least valuable, in Kubernetes'
 * order (ActivePodsWithRanks), each rule breaking the ties of the one before:
 *
 *   1. not yet on a node before on a node
 *   2. Pending before Unknown before Running
 *   3. not ready before ready
 *   4. a lower `controller.kubernetes.io/pod-deletion-cost` annotation first
 *   5. on a node crowded with the owner's pods before on a node with fewer of them
 *   6. ready for a shorter time before ready for longer
 *   7. more container restarts before fewer
 *   8. the newest first
 */
import type { Pod } from '../../../proto/gen/types.js';

export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';

const PHASE_ORDER: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

/** The Ready condition's status and since when, as Kubernetes reads them. */
export function podReadySince(pod: Pod): { ready: boolean; since: number | undefined } {
  const condition = pod.status?.conditions?.find((c) => c.type === 'Ready');
  const ready = condition?.status === 'True';
  const since = condition?.lastTransitionTime ? Date.parse(condition.lastTransitionTime) : undefined;
  return { ready, since: Number.isNaN(since) ? undefined : since };
}

/** Ready, and for at least `minReadySeconds` by `now` (Kubernetes' "available"). */
export function podAvailable(pod: Pod, minReadySeconds: number, now: number): boolean {
  const { ready, since } = podReadySince(pod);
  if (!ready) return false;
  if (minReadySeconds <= 0) return true;
  return since !== undefined && since + minReadySeconds * 1000 <= now;
}

function deletionCost(pod: Pod): number {
  const value = Number(pod.metadata.annotations?.[POD_DELETION_COST] ?? 0);
  return Number.isFinite(value) ? value : 0;
}

function maxRestarts(pod: Pod): number {
  let most = 0;
  for (const status of pod.status?.containerStatuses ?? []) most = Math.max(most, status.restartCount ?? 0);
  return most;
}

function createdAt(pod: Pod): number {
  const at = pod.metadata.creationTimestamp ? Date.parse(pod.metadata.creationTimestamp) : NaN;
  return Number.isNaN(at) ? Number.POSITIVE_INFINITY : at;
}

/**
 * The `count` pods to delete of `pods`, least valuable first. `related`: the pods that crowd a node
 * (the owner's own, and for a Deployment its other ReplicaSets'); default `pods`.
 */
export function podsToDelete(pods: readonly Pod[], count: number, related: readonly Pod[] = pods): Pod[] {
  if (count <= 0) return [];
  const perNode = new Map<string, number>();
  for (const pod of related) {
    const node = pod.spec.nodeName;
    if (node) perNode.set(node, (perNode.get(node) ?? 0) + 1);
  }
  const ranked = pods.map((pod) => ({
    pod,
    onNode: pod.spec.nodeName ? 1 : 0,
    phase: PHASE_ORDER[pod.status?.phase ?? 'Pending'] ?? 0,
    ...podReadySince(pod),
    cost: deletionCost(pod),
    crowding: pod.spec.nodeName ? (perNode.get(pod.spec.nodeName) ?? 0) : 0,
    restarts: maxRestarts(pod),
    created: createdAt(pod),
  }));
  ranked.sort(
    (a, b) =>
      a.onNode - b.onNode ||
      a.phase - b.phase ||
      Number(a.ready) - Number(b.ready) ||
      a.cost - b.cost ||
      b.crowding - a.crowding ||
      (a.ready && b.ready ? (b.since ?? Infinity) - (a.since ?? Infinity) || 0 : 0) ||
      b.restarts - a.restarts ||
      b.created - a.created,
  );
  return ranked.slice(0, count).map((entry) => entry.pod);
}
