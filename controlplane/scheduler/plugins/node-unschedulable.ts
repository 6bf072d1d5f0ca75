/**
 * NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that tolerate the
 * `node.kubernetes.io/unschedulable:NoSchedule` taint (DaemonSet pods do). Preemption cannot help.
 */
import type { Taint } from '../../../proto/gen/types.js';
import type { NodeInfo } from '../framework/node-info.js';
import type { PodInfo } from '../framework/pod-info.js';
import type { Snapshot } from '../framework/snapshot.js';
import { TAINT_NODE_UNSCHEDULABLE, tolerationsTolerate } from '../../../proto/taints.js';
import { unresolvable, type ClusterEvent, type FilterPlugin, type Status } from '../framework/types.js';

export const NODE_UNSCHEDULABLE = 'NodeUnschedulable';
export const REASON_UNSCHEDULABLE = 'node(s) were unschedulable';

const CORDON_TAINT: Taint = { key: TAINT_NODE_UNSCHEDULABLE, effect: 'NoSchedule' };
const REFUSED = unresolvable(NODE_UNSCHEDULABLE, REASON_UNSCHEDULABLE);

export class NodeUnschedulable implements FilterPlugin {
  readonly name = NODE_UNSCHEDULABLE;

  events(): readonly ClusterEvent[] {
    return ['NodeAdd', 'NodeUpdate:unschedulable', 'NodeUpdate:taints'];
  }

  preFilter(_state: unknown, _pod: PodInfo, snapshot: Snapshot): 'skip' | undefined {
    return snapshot.unschedulableNodeCount === 0 ? 'skip' : undefined;
  }

  filter(_state: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    if (!node.unschedulable) return undefined;
    return tolerationsTolerate(pod.pod.spec.tolerations, CORDON_TAINT) ? undefined : REFUSED;
  }
}
