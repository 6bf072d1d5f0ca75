/**
 * NodeResourcesBalancedAllocation: favours nodes whose cpu and memory would be used in equal
 * shares with the pod placed: score = (1 − standard deviation of the used fractions) · 100, the
 * fractions of allocatable requested (capped at 1) — for two resources |f_cpu − f_memory| / 2.
 * Requests as declared (no defaults), as Kubernetes counts them here.
 */
import type { NodeInfo } from '../framework/node-info.js';
import type { PodInfo } from '../framework/pod-info.js';
import { MAX_NODE_SCORE, type ClusterEvent, type ScorePlugin } from '../framework/types.js';

export const NODE_RESOURCES_BALANCED_ALLOCATION = 'NodeResourcesBalancedAllocation';

export class NodeResourcesBalancedAllocation implements ScorePlugin {
  readonly name = NODE_RESOURCES_BALANCED_ALLOCATION;

  events(): readonly ClusterEvent[] {
    return [];
  }

  score(_state: unknown, pod: PodInfo, node: NodeInfo): number {
    const cpuCapacity = node.allocatable.milliCpu;
    const memoryCapacity = node.allocatable.memory;
    if (cpuCapacity === 0 || memoryCapacity === 0) return MAX_NODE_SCORE;
    const cpu = Math.min(1, (node.requested.milliCpu + pod.requests.milliCpu) / cpuCapacity);
    const memory = Math.min(1, (node.requested.memory + pod.requests.memory) / memoryCapacity);
    const deviation = Math.abs(cpu - memory) / 2;
    return Math.trunc((1 - deviation) * MAX_NODE_SCORE);
  }
}
