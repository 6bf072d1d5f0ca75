/**
 * NodeResourcesFit: the pod's requests must fit in what the node has left — allocatable minus the
 * requests of the pods on it — for cpu, memory, ephemeral storage, every extended resource it
 * asks for, and one more pod than the node holds. Each resource short is a reason of its own
 * (`Insufficient cpu`, `Insufficient example.com/gpu`, `Too many pods`); preemption may help.
 *
 * Score, LeastAllocated (Kubernetes' default strategy): per resource (cpu, memory, weight 1 each)
 * (allocatable − requested) · 100 / allocatable with the pod added, requests counted with defaults
 * for containers that name none (100m cpu, 200Mi memory), then the weighted mean — the emptier the
 * node, the higher.
 */
import type { NodeInfo } from '../framework/node-info.js';
import type { PodInfo } from '../framework/pod-info.js';
import {
  MAX_NODE_SCORE,
  unschedulable,
  type ClusterEvent,
  type FilterPlugin,
  type ScorePlugin,
  type Status,
} from '../framework/types.js';

export const NODE_RESOURCES_FIT = 'NodeResourcesFit';

const TOO_MANY_PODS = 'Too many pods';
const INSUFFICIENT_CPU = 'Insufficient cpu';
const INSUFFICIENT_MEMORY = 'Insufficient memory';
const INSUFFICIENT_EPHEMERAL_STORAGE = 'Insufficient ephemeral-storage';

/** Refusals by their reasons, made once: nodes short of the same resources share one Status. */
const refusals = new Map<string, Status>();
const MAX_REMEMBERED_REFUSALS = 1024;

function refusal(reasons: string[]): Status {
  const key = reasons.join('\n');
  let status = refusals.get(key);
  if (status === undefined) {
    status = unschedulable(NODE_RESOURCES_FIT, ...reasons);
    if (refusals.size < MAX_REMEMBERED_REFUSALS) refusals.set(key, status);
  }
  return status;
}

/** The reasons `pod` does not fit on `node`, in Kubernetes' order; empty when it fits. */
export function insufficientResources(pod: PodInfo, node: NodeInfo): string[] {
  const reasons: string[] = [];
  const allocatable = node.allocatable;
  const requested = node.requested;
  if (node.pods.length + 1 > allocatable.pods) reasons.push(TOO_MANY_PODS);
  const wants = pod.requests;
  if (wants.milliCpu > 0 && wants.milliCpu > allocatable.milliCpu - requested.milliCpu) {
    reasons.push(INSUFFICIENT_CPU);
  }
  if (wants.memory > 0 && wants.memory > allocatable.memory - requested.memory)
    reasons.push(INSUFFICIENT_MEMORY);
  if (
    wants.ephemeralStorage > 0 &&
    wants.ephemeralStorage > allocatable.ephemeralStorage - requested.ephemeralStorage
  ) {
    reasons.push(INSUFFICIENT_EPHEMERAL_STORAGE);
  }
  if (wants.scalar !== undefined) {
    for (const [name, quantity] of wants.scalar) {
      if (quantity === 0) continue;
      const free = (allocatable.scalar?.get(name) ?? 0) - (requested.scalar?.get(name) ?? 0);
      if (quantity > free) reasons.push(`Insufficient ${name}`);
    }
  }
  return reasons;
}

/** (capacity − requested) · 100 / capacity, 0 when the request is over capacity. */
function leastRequestedScore(requested: number, capacity: number): number {
  if (requested > capacity) return 0;
  return Math.trunc(((capacity - requested) * MAX_NODE_SCORE) / capacity);
}

export class NodeResourcesFit implements FilterPlugin, ScorePlugin {
  readonly name = NODE_RESOURCES_FIT;

  events(): readonly ClusterEvent[] {
    return ['NodeAdd', 'NodeUpdate:allocatable', 'PodDelete', 'PodUpdate:requests'];
  }

  filter(_state: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    // The common case first, without building a list of reasons.
    const allocatable = node.allocatable;
    const requested = node.requested;
    const wants = pod.requests;
    if (
      node.pods.length < allocatable.pods &&
      wants.milliCpu <= allocatable.milliCpu - requested.milliCpu &&
      wants.memory <= allocatable.memory - requested.memory &&
      wants.ephemeralStorage <= allocatable.ephemeralStorage - requested.ephemeralStorage &&
      wants.scalar === undefined
    ) {
      return undefined;
    }
    const reasons = insufficientResources(pod, node);
    return reasons.length === 0 ? undefined : refusal(reasons);
  }

  score(_state: unknown, pod: PodInfo, node: NodeInfo): number {
    const cpuCapacity = node.allocatable.milliCpu;
    const memoryCapacity = node.allocatable.memory;
    let total = 0;
    let weights = 0;
    if (cpuCapacity > 0) {
      total += leastRequestedScore(node.nonZeroMilliCpu + pod.nonZeroMilliCpu, cpuCapacity);
      weights++;
    }
    if (memoryCapacity > 0) {
      total += leastRequestedScore(node.nonZeroMemory + pod.nonZeroMemory, memoryCapacity);
      weights++;
    }
    return weights === 0 ? 0 : Math.trunc(total / weights);
  }
}
