/**
 * NodeReady: a node whose Ready condition is not True takes only pods that tolerate what Kubernetes'
 * node lifecycle controller would taint it with — `node.kubernetes.io/not-ready:NoSchedule` when
 * Ready is False (or not reported yet), `node.kubernetes.io/unreachable:NoSchedule` when it is
 * Unknown (the agent stopped reporting) — and is refused in that taint's words. A node that already
 * carries the taint is left to TaintToleration, so the reason is not counted twice.
 *
 * Not a Kubernetes plugin (there the controller's taint does this); skiff checks the condition
 * itself so that a node is never used in the moments before any controller reacts.
 */
import type { NodeInfo } from '../framework/node-info.js';
import type { PodInfo } from '../framework/pod-info.js';
import type { Snapshot } from '../framework/snapshot.js';
import {
  TAINT_NODE_NOT_READY,
  TAINT_NODE_UNREACHABLE,
  tolerationsTolerate,
  untoleratedTaintReason,
} from '../../../proto/taints.js';
import { unresolvable, type ClusterEvent, type FilterPlugin, type Status } from '../framework/types.js';

export const NODE_READY = 'NodeReady';

const REFUSED_NOT_READY = unresolvable(
  NODE_READY,
  untoleratedTaintReason({ key: TAINT_NODE_NOT_READY, effect: 'NoSchedule' }),
);
const REFUSED_UNREACHABLE = unresolvable(
  NODE_READY,
  untoleratedTaintReason({ key: TAINT_NODE_UNREACHABLE, effect: 'NoSchedule' }),
);

export class NodeReady implements FilterPlugin {
  readonly name = NODE_READY;

  events(): readonly ClusterEvent[] {
    return ['NodeAdd', 'NodeUpdate:conditions', 'NodeUpdate:taints'];
  }

  preFilter(_state: unknown, _pod: PodInfo, snapshot: Snapshot): 'skip' | undefined {
    return snapshot.notReadyNodeCount === 0 ? 'skip' : undefined;
  }

  filter(_state: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    const taint = node.readinessTaint;
    if (taint === undefined) return undefined;
    if (node.taints.some((other) => other.key === taint.key)) return undefined;
    if (tolerationsTolerate(pod.pod.spec.tolerations, taint)) return undefined;
    return taint.key === TAINT_NODE_UNREACHABLE ? REFUSED_UNREACHABLE : REFUSED_NOT_READY;
  }
}
