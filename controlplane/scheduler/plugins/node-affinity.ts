/**
 * NodeAffinity: the pod's nodeSelector and required node affinity must match the node
 * (`node(s) didn't match Pod's node affinity/selector`; preemption cannot help). Score: the sum of
 * the weights of the preferred terms the node matches, scaled so the best node has 100.
 */
import type { PreferredSchedulingTerm } from '../../../proto/gen/types.js';
import type { NodeInfo } from '../framework/node-info.js';
import { preferredAffinityScore, RequiredNodeAffinity } from '../framework/node-affinity.js';
import type { PodInfo } from '../framework/pod-info.js';
import {
  defaultNormalizeScore,
  unresolvable,
  type ClusterEvent,
  type CycleState,
  type FilterPlugin,
  type ScorePlugin,
  type StateData,
  type Status,
} from '../framework/types.js';

export const NODE_AFFINITY = 'NodeAffinity';
export const REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector";

const PRE_FILTER_KEY = `PreFilter${NODE_AFFINITY}`;
const REFUSED = unresolvable(NODE_AFFINITY, REASON_NODE_AFFINITY);

class RequiredState implements StateData {
  constructor(readonly required: RequiredNodeAffinity) {}
  clone(): StateData {
    return this;
  }
}

function preferredTerms(pod: PodInfo): readonly PreferredSchedulingTerm[] {
  return pod.pod.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
}

export class NodeAffinity implements FilterPlugin, ScorePlugin {
  readonly name = NODE_AFFINITY;

  events(): readonly ClusterEvent[] {
    return ['NodeAdd', 'NodeUpdate:labels'];
  }

  preFilter(state: CycleState, pod: PodInfo): 'skip' | undefined {
    const required = new RequiredNodeAffinity(pod.pod);
    if (!required.restricts) return 'skip';
    state.write(PRE_FILTER_KEY, new RequiredState(required));
    return undefined;
  }

  filter(state: CycleState, pod: PodInfo, node: NodeInfo): Status | undefined {
    const required = state.read<RequiredState>(PRE_FILTER_KEY)?.required ?? new RequiredNodeAffinity(pod.pod);
    return node.node !== undefined && required.matches(node.node) ? undefined : REFUSED;
  }

  preScore(_state: CycleState, pod: PodInfo): 'skip' | undefined {
    return preferredTerms(pod).length === 0 ? 'skip' : undefined;
  }

  score(_state: CycleState, pod: PodInfo, node: NodeInfo): number {
    return node.node === undefined ? 0 : preferredAffinityScore(preferredTerms(pod), node.node);
  }

  normalize(_state: CycleState, _pod: PodInfo, _nodes: readonly NodeInfo[], scores: number[]): void {
    defaultNormalizeScore(scores, false);
  }
}
