/**
 * DefaultPreemption, the PostFilter: when no node fits a pod, find the node where evicting the
 * fewest, least important pods of lower priority makes room, as kube-scheduler does.
 *
 * 1. The pod must be allowed to preempt: not preemptionPolicy Never, and not already waiting for
 *    victims of an earlier preemption to terminate on its nominated node.
 * 2. Candidates: the nodes refused for a reason preemption may resolve (Unschedulable, not
 *    UnschedulableAndUnresolvable). From a random offset, up to max(10 % of them, 100) are tried.
 * 3. On each, every pod of lower priority is removed; if the pod then fits, the removed pods are
 *    put back one by one, the most important first (higher priority, then the longest running),
 *    and each that keeps the pod from fitting is a victim (reprieve: as few victims as possible).
 * 4. The node is chosen by, in turn: the lowest priority of its most important victim, the
 *    smallest sum of victim priorities, the fewest victims, the latest start among the most
 *    important victims, then the first (PodDisruptionBudgets, Kubernetes' first rule, are not
 *    served by skiff).
 * The scheduler then evicts the victims gracefully, nominates the node to the pod (counted there
 * for pods of lower priority until it is placed), and clears the nomination of lower-priority pods
 * nominated to that node.
 *
 * When preemption cannot help, what it says follows the FailedScheduling message:
 * `preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod,
 * 2 Preemption is not helpful for scheduling.`
 */
import { fitErrorMessage } from './fit-error.js';
import type { NodeInfo } from './framework/node-info.js';
import type { PodInfo } from './framework/pod-info.js';
import type { Framework, NominatedPods } from './framework/runtime.js';
import type { Snapshot } from './framework/snapshot.js';
import { unresolvable, type CycleState, type FilterPlugin, type Status } from './framework/types.js';
import { DEFAULT_PREEMPTION } from './plugins/registry.js';

export const REASON_NOT_HELPFUL = 'Preemption is not helpful for scheduling';
export const REASON_NO_VICTIMS = 'No preemption victims found for incoming pod';
export const NOT_ELIGIBLE_POLICY = 'not eligible due to preemptionPolicy=Never.';
export const NOT_ELIGIBLE_TERMINATING = 'not eligible due to a terminating pod on the nominated node.';

const NOT_HELPFUL = unresolvable(DEFAULT_PREEMPTION, REASON_NOT_HELPFUL);
const NO_VICTIMS = unresolvable(DEFAULT_PREEMPTION, REASON_NO_VICTIMS);

/** Kubernetes adds 2^31 to each priority before summing, so negative priorities sum sensibly. */
const PRIORITY_OFFSET = 2 ** 31;

export interface PreemptionOptions {
  /** Of the candidate nodes, at least this percentage is tried (default 10). */
  minCandidateNodesPercentage?: number;
  /** ... and at least this many (default 100). */
  minCandidateNodesAbsolute?: number;
}

export interface Candidate {
  readonly nodeName: string;
  /** The most important first. */
  readonly victims: readonly PodInfo[];
}

export type PreemptionResult =
  /** Room can be made on `candidate.nodeName` by evicting `candidate.victims`. */
  | { readonly candidate: Candidate; readonly message?: undefined; readonly clearNomination?: undefined }
  /**
   * Preemption cannot help now; `message` goes after the FailedScheduling message.
   * `clearNomination`: the pod's nomination no longer holds (else it is kept, e.g. while its
   * victims terminate).
   */
  | { readonly candidate?: undefined; readonly message: string; readonly clearNomination: boolean };

/** True when `a` is more important than `b`: higher priority, then running longer. */
export function moreImportant(a: PodInfo, b: PodInfo): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  return a.startTime < b.startTime;
}

export class DefaultPreemption {
  private readonly minPercentage: number;
  private readonly minAbsolute: number;

  constructor(
    private readonly framework: Framework,
    private readonly nominated: NominatedPods,
    private readonly random: () => number,
    options: PreemptionOptions = {},
  ) {
    this.minPercentage = options.minCandidateNodesPercentage ?? 10;
    this.minAbsolute = options.minCandidateNodesAbsolute ?? 100;
  }

  preempt(
    state: CycleState,
    pod: PodInfo,
    filters: readonly FilterPlugin[],
    snapshot: Snapshot,
    nodeStatuses: ReadonlyMap<string, Status>,
    nominatedNodeName: string | undefined,
  ): PreemptionResult {
    // Whatever preemption says is prefixed so, as DefaultPreemption's PostFilter does.
    if (pod.preemptionPolicy === 'Never')
      return { message: `preemption: ${NOT_ELIGIBLE_POLICY}`, clearNomination: false };
    if (nominatedNodeName) {
      const nominated = snapshot.get(nominatedNodeName);
      const status = nodeStatuses.get(nominatedNodeName);
      if (nominated !== undefined && status?.code !== 'UnschedulableAndUnresolvable') {
        const waiting = nominated.pods.some((other) => other.terminating && other.priority < pod.priority);
        if (waiting) return { message: `preemption: ${NOT_ELIGIBLE_TERMINATING}`, clearNomination: false };
      }
    }
    const potential: NodeInfo[] = [];
    for (const node of snapshot.nodes) {
      if (nodeStatuses.get(node.name)?.code === 'Unschedulable') potential.push(node);
    }
    const tried = new Map<string, Status>();
    const candidates: Candidate[] = [];
    if (potential.length > 0) {
      const wanted = Math.min(
        potential.length,
        Math.max(this.minAbsolute, Math.trunc((potential.length * this.minPercentage) / 100)),
      );
      const offset = Math.floor(this.random() * potential.length);
      for (let i = 0; i < potential.length && candidates.length < wanted; i++) {
        const node = potential[(offset + i) % potential.length]!;
        const outcome = this.selectVictims(state, pod, node, filters);
        if (!Array.isArray(outcome)) tried.set(node.name, outcome);
        // Room without a victim: the node was refused for something removing pods does not change.
        else if (outcome.length === 0) tried.set(node.name, NOT_HELPFUL);
        else candidates.push({ nodeName: node.name, victims: outcome });
      }
    }
    if (candidates.length === 0) {
      const statuses = new Map<string, Status>();
      for (const node of snapshot.nodes) statuses.set(node.name, tried.get(node.name) ?? NOT_HELPFUL);
      const message = fitErrorMessage({ numAllNodes: snapshot.nodeCount, nodeStatuses: statuses });
      return { message: `preemption: ${message}`, clearNomination: true };
    }
    return { candidate: pickCandidate(candidates) };
  }

  /** The victims that make room for `pod` on `node`, the most important first; or why there are none. */
  selectVictims(
    state: CycleState,
    pod: PodInfo,
    node: NodeInfo,
    filters: readonly FilterPlugin[],
  ): PodInfo[] | Status {
    const lower = node.pods.filter((other) => other.priority < pod.priority);
    if (lower.length === 0) return NO_VICTIMS;
    const trial = node.clone();
    const trialState = state.clone();
    for (const other of lower) {
      trial.removePod(other.key);
      this.framework.removePod(trialState, pod, other, trial);
    }
    const refusal = this.framework.filterWithNominated(trialState, pod, trial, filters, this.nominated);
    if (refusal !== undefined) return refusal;
    lower.sort((a, b) => (moreImportant(a, b) ? -1 : moreImportant(b, a) ? 1 : 0));
    const victims: PodInfo[] = [];
    for (const other of lower) {
      trial.addPod(other);
      this.framework.addPod(trialState, pod, other, trial);
      if (this.framework.filterWithNominated(trialState, pod, trial, filters, this.nominated) !== undefined) {
        trial.removePod(other.key);
        this.framework.removePod(trialState, pod, other, trial);
        victims.push(other);
      }
    }
    return victims;
  }
}

/** Kubernetes' pickOneNodeForPreemption without PodDisruptionBudgets. */
export function pickCandidate(candidates: readonly Candidate[]): Candidate {
  const rules: ((candidate: Candidate) => number)[] = [
    // The lowest priority of the most important victim.
    (c) => -c.victims[0]!.priority,
    // The smallest sum of priorities.
    (c) => -c.victims.reduce((sum, victim) => sum + victim.priority + PRIORITY_OFFSET, 0),
    // The fewest victims.
    (c) => -c.victims.length,
    // The latest start among the most important victims (the least work lost).
    (c) => {
      const top = c.victims[0]!.priority;
      let earliest = Number.POSITIVE_INFINITY;
      for (const victim of c.victims)
        if (victim.priority === top) earliest = Math.min(earliest, victim.startTime);
      return earliest;
    },
  ];
  let remaining = candidates;
  for (const rule of rules) {
    let best = Number.NEGATIVE_INFINITY;
    let chosen: Candidate[] = [];
    for (const candidate of remaining) {
      const score = rule(candidate);
      if (score > best) {
        best = score;
        chosen = [candidate];
      } else if (score === best) chosen.push(candidate);
    }
    if (chosen.length === 1) return chosen[0]!;
    remaining = chosen;
  }
  return remaining[0]!;
}
