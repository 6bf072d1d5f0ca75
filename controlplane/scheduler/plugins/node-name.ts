/**
 * NodeName: a pod that names its node (spec.nodeName) fits only there. The scheduler does not
 * place pods that already have a node; the plugin is here as Kubernetes has it, for profiles and
 * for preemption's checks.
 */
import type { NodeInfo } from '../framework/node-info.js';
import type { PodInfo } from '../framework/pod-info.js';
import { unresolvable, type ClusterEvent, type FilterPlugin, type Status } from '../framework/types.js';

export const NODE_NAME = 'NodeName';
export const REASON_NODE_NAME = "node(s) didn't match the requested node name";

const REFUSED = unresolvable(NODE_NAME, REASON_NODE_NAME);

export class NodeName implements FilterPlugin {
  readonly name = NODE_NAME;

  events(): readonly ClusterEvent[] {
    return ['NodeAdd'];
  }

  preFilter(_state: unknown, pod: PodInfo): 'skip' | undefined {
    return pod.pod.spec.nodeName ? undefined : 'skip';
  }

  filter(_state: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    const wanted = pod.pod.spec.nodeName;
    return !wanted || wanted === node.name ? undefined : REFUSED;
  }
}
