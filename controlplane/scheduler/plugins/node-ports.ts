/**
 * NodePorts: a pod's host ports must be free on the node — no pod there uses the same protocol and
 * port on the same address, or on any address when either binds 0.0.0.0. Preemption may help.
 */
import type { NodeInfo } from '../framework/node-info.js';
import type { PodInfo } from '../framework/pod-info.js';
import { unschedulable, type ClusterEvent, type FilterPlugin, type Status } from '../framework/types.js';

export const NODE_PORTS = 'NodePorts';
export const REASON_NODE_PORTS = "node(s) didn't have free ports for the requested pod ports";

const REFUSED = unschedulable(NODE_PORTS, REASON_NODE_PORTS);

export class NodePorts implements FilterPlugin {
  readonly name = NODE_PORTS;

  events(): readonly ClusterEvent[] {
    return ['NodeAdd', 'PodDelete'];
  }

  preFilter(_state: unknown, pod: PodInfo): 'skip' | undefined {
    return pod.hostPorts.length === 0 ? 'skip' : undefined;
  }

  filter(_state: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    if (node.usedPorts.size === 0) return undefined;
    for (const port of pod.hostPorts) if (node.usedPorts.conflicts(port)) return REFUSED;
    return undefined;
  }
}
