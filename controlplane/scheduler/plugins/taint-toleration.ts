/**
 * TaintToleration: a node's NoSchedule and NoExecute taints must all be tolerated by the pod; the
 * first that is not is the reason, in Kubernetes' words: `node(s) had untolerated taint {key: value}`.
 * Preemption cannot help.
 *
 * Score: the fewer PreferNoSchedule taints the pod does not tolerate (with tolerations of that
 * effect or of any effect), the better — counts normalised in reverse, the node with most at 0.
 */
import type { Toleration } from '../../../proto/gen/types.js';
import type { NodeInfo } from '../framework/node-info.js';
import type { PodInfo } from '../framework/pod-info.js';
import type { Snapshot } from '../framework/snapshot.js';
import {
  firstUntoleratedHardTaint,
  tolerationsTolerate,
  untoleratedTaintReason,
} from '../../../proto/taints.js';
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

export const TAINT_TOLERATION = 'TaintToleration';

const PRE_SCORE_KEY = `PreScore${TAINT_TOLERATION}`;

class PreferNoScheduleTolerations implements StateData {
  constructor(readonly tolerations: readonly Toleration[]) {}
  clone(): StateData {
    return this;
  }
}

/** Refusals by taint text, so a cluster of alike nodes shares one Status per taint. */
const refusals = new Map<string, Status>();

export class TaintToleration implements FilterPlugin, ScorePlugin {
  readonly name = TAINT_TOLERATION;

  events(): readonly ClusterEvent[] {
    return ['NodeAdd', 'NodeUpdate:taints'];
  }

  preFilter(_state: unknown, _pod: PodInfo, snapshot: Snapshot): 'skip' | undefined {
    return snapshot.nodesWithHardTaints === 0 ? 'skip' : undefined;
  }

  filter(_state: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    if (node.taints.length === 0) return undefined;
    const taint = firstUntoleratedHardTaint(node.taints, pod.pod.spec.tolerations);
    if (taint === undefined) return undefined;
    const reason = untoleratedTaintReason(taint);
    let status = refusals.get(reason);
    if (status === undefined) {
      status = unresolvable(TAINT_TOLERATION, reason);
      if (refusals.size < 1024) refusals.set(reason, status);
    }
    return status;
  }

  preScore(
    state: CycleState,
    pod: PodInfo,
    _nodes: readonly NodeInfo[],
    snapshot: Snapshot,
  ): 'skip' | undefined {
    // No node with such a taint: every node would score alike.
    if (snapshot.nodesWithPreferNoScheduleTaints === 0) return 'skip';
    const tolerations = (pod.pod.spec.tolerations ?? []).filter(
      (toleration) => !toleration.effect || toleration.effect === 'PreferNoSchedule',
    );
    state.write(PRE_SCORE_KEY, new PreferNoScheduleTolerations(tolerations));
    return undefined;
  }

  score(state: CycleState, _pod: PodInfo, node: NodeInfo): number {
    if (!node.hasPreferNoScheduleTaint) return 0;
    const tolerations = state.read<PreferNoScheduleTolerations>(PRE_SCORE_KEY)?.tolerations ?? [];
    let untolerated = 0;
    for (const taint of node.taints) {
      if (taint.effect === 'PreferNoSchedule' && !tolerationsTolerate(tolerations, taint)) untolerated++;
    }
    return untolerated;
  }

  normalize(_state: CycleState, _pod: PodInfo, _nodes: readonly NodeInfo[], scores: number[]): void {
    defaultNormalizeScore(scores, true);
  }
}
