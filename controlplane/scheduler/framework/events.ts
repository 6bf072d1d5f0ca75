/**
 * The cluster events an object change amounts to, for the scheduling queue: a node update is
 * told apart by what changed (allocatable, labels, taints, conditions, cordon, images), so that a
 * heartbeat that changes only a timestamp moves no pod.
 */
import type { Condition, Namespace, Node, Pod } from '../../../proto/gen/types.js';
import type { ClusterEvent } from './types.js';

function sameRecord(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const left = a ?? {};
  const right = b ?? {};
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  for (const key of keys) if (left[key] !== right[key]) return false;
  return true;
}

function conditionStates(conditions: Condition[] | undefined): string {
  return (conditions ?? [])
    .map((condition) => `${condition.type}=${condition.status}`)
    .sort()
    .join(',');
}

function imageNames(node: Node): string {
  return (node.status?.images ?? [])
    .map((image) => `${(image.names ?? []).join('+')}:${image.sizeBytes ?? 0}:${(image.layers ?? []).length}`)
    .join(',');
}

export function nodeUpdateEvents(old: Node, updated: Node): ClusterEvent[] {
  const events: ClusterEvent[] = [];
  if (!sameRecord(old.status?.allocatable, updated.status?.allocatable))
    events.push('NodeUpdate:allocatable');
  if (!sameRecord(old.metadata.labels, updated.metadata.labels)) events.push('NodeUpdate:labels');
  if (JSON.stringify(old.spec.taints ?? []) !== JSON.stringify(updated.spec.taints ?? [])) {
    events.push('NodeUpdate:taints');
  }
  if (conditionStates(old.status?.conditions) !== conditionStates(updated.status?.conditions)) {
    events.push('NodeUpdate:conditions');
  }
  if ((old.spec.unschedulable ?? false) !== (updated.spec.unschedulable ?? false)) {
    events.push('NodeUpdate:unschedulable');
  }
  if (imageNames(old) !== imageNames(updated)) events.push('NodeUpdate:images');
  return events;
}

/** Events of an update to a pod bound to a node. */
export function assignedPodUpdateEvents(old: Pod, updated: Pod): ClusterEvent[] {
  const events: ClusterEvent[] = [];
  if (!sameRecord(old.metadata.labels, updated.metadata.labels)) events.push('PodUpdate:labels');
  const requests = (pod: Pod) =>
    JSON.stringify([pod.spec.containers?.map((c) => c.resources?.requests), pod.spec.resources?.requests]);
  if (requests(old) !== requests(updated)) events.push('PodUpdate:requests');
  // A pod that starts terminating no longer counts for topology spread.
  if (old.metadata.deletionTimestamp === undefined && updated.metadata.deletionTimestamp !== undefined) {
    events.push('PodUpdate:terminating');
  }
  return events;
}

export function namespaceUpdateEvents(old: Namespace, updated: Namespace): ClusterEvent[] {
  return sameRecord(old.metadata.labels, updated.metadata.labels) ? [] : ['NamespaceUpdate:labels'];
}
