/**
 * The arithmetic of a rolling update, as Kubernetes' deployment controller does it: how far above
 * `replicas` the pods may surge and how far below it availability may dip, how many the new
 * ReplicaSet may grow to, and how many the old ones may lose.
 */
import type { IntOrString } from '../../../proto/gen/types.js';

/** A number, or a percentage of `total` rounded up (surge) or down (unavailable). */
export function scaledValue(value: IntOrString | undefined, total: number, roundUp: boolean): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  const match = /^(\d+)%$/.exec(value);
  if (match === null) {
    const number = Number(value);
    if (Number.isInteger(number)) return number;
    throw new Error(`"${value}" is neither a whole number nor a percentage`);
  }
  const exact = (Number(match[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/** maxSurge and maxUnavailable as pod counts; both 0 would never move, so unavailable is 1 then. */
export function fenceposts(
  maxSurge: IntOrString | undefined,
  maxUnavailable: IntOrString | undefined,
  replicas: number,
): { surge: number; unavailable: number } {
  const surge = scaledValue(maxSurge, replicas, true);
  const unavailable = scaledValue(maxUnavailable, replicas, false);
  return { surge, unavailable: surge === 0 && unavailable === 0 ? 1 : unavailable };
}

/**
 * The new ReplicaSet's replicas for this step: up to `replicas + surge` pods in all, never above
 * `replicas` for the new one.
 */
export function newReplicaSetReplicas(options: {
  replicas: number;
  surge: number;
  /** spec.replicas of every ReplicaSet of the Deployment, the new one's included */
  allReplicas: number;
  newReplicas: number;
}): number {
  const { replicas, surge, allReplicas, newReplicas } = options;
  const maxTotal = replicas + surge;
  if (allReplicas >= maxTotal) return newReplicas;
  return newReplicas + Math.min(maxTotal - allReplicas, Math.max(0, replicas - newReplicas));
}

/**
 * How many pods the old ReplicaSets may lose now without availability dropping below
 * `replicas - unavailable`, counting the new ReplicaSet's pods that are not available yet.
 */
export function maxScaledDown(options: {
  replicas: number;
  unavailable: number;
  allReplicas: number;
  newReplicas: number;
  newAvailable: number;
}): number {
  const { replicas, unavailable, allReplicas, newReplicas, newAvailable } = options;
  const minAvailable = replicas - unavailable;
  return allReplicas - minAvailable - Math.max(0, newReplicas - newAvailable);
}
