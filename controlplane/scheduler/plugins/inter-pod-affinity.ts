/**
 * InterPodAffinity: required pod affinity and anti-affinity over a topology key, both ways.
 *
 * Filter, in Kubernetes' order and words:
 * 1. the pod's required affinity: the node must carry every term's topology key, and its domain must
 *    hold a pod matching all the terms — `node(s) didn't match pod affinity rules` (preemption cannot
 *    help). A pod that matches its own terms may go anywhere while no pod in the cluster matches
 *    them (the first of a group that wants to be together);
 * 2. the pod's required anti-affinity: no pod matching a term in the node's domain of that term —
 *    `node(s) didn't match pod anti-affinity rules`;
 * 3. existing pods' required anti-affinity: no pod in the node's domain whose term matches this pod
 *    — `node(s) didn't satisfy existing pods anti-affinity rules`.
 * Terms select pods by label selector, in the namespaces they name (their pod's own by default) or
 * those their namespaceSelector matches ({} = all); matchLabelKeys / mismatchLabelKeys take values
 * from the pod's own labels.
 *
 * Score: per topology domain, + weight for each pod matching a preferred affinity term of this pod,
 * − weight per pod matching a preferred anti-affinity term; + weight (− for anti) for each existing
 * pod whose preferred term matches this pod, + 1 for each whose required affinity term does; a
 * node scores the sum over its domains, min–max scaled to 0..100.
 *
 * Counting matching pods per domain uses the snapshot's pod count indexes, kept up to date as pods
 * come and go, instead of walking every pod of the cluster per attempt.
 */
import type { NodeInfo } from '../framework/node-info.js';
import type { AffinityTerm, NamespaceLabels, PodInfo } from '../framework/pod-info.js';
import type { PodCountIndex, PodMatcher, Snapshot } from '../framework/snapshot.js';
import {
  errorStatus,
  MAX_NODE_SCORE,
  unresolvable,
  unschedulable,
  type ClusterEvent,
  type CycleState,
  type FilterPlugin,
  type ScorePlugin,
  type StateData,
  type Status,
} from '../framework/types.js';

export const INTER_POD_AFFINITY = 'InterPodAffinity';
export const REASON_AFFINITY = "node(s) didn't match pod affinity rules";
export const REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules";
export const REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules";

/** What an existing pod's required affinity term adds to a domain's score (Kubernetes' default). */
const HARD_POD_AFFINITY_WEIGHT = 1;

const PRE_FILTER_KEY = `PreFilter${INTER_POD_AFFINITY}`;
const PRE_SCORE_KEY = `PreScore${INTER_POD_AFFINITY}`;

const REFUSED_AFFINITY = unresolvable(INTER_POD_AFFINITY, REASON_AFFINITY);
const REFUSED_ANTI_AFFINITY = unschedulable(INTER_POD_AFFINITY, REASON_ANTI_AFFINITY);
const REFUSED_EXISTING_ANTI_AFFINITY = unschedulable(INTER_POD_AFFINITY, REASON_EXISTING_ANTI_AFFINITY);

function pair(key: string, value: string): string {
  return `${key}\u0000${value}`;
}

function bump(counts: Map<string, number>, at: string, delta: number): void {
  const next = (counts.get(at) ?? 0) + delta;
  if (next === 0) counts.delete(at);
  else counts.set(at, next);
}

/** The namespace a term's pods are all in, when it is one. */
function singleNamespace(terms: readonly AffinityTerm[]): string | undefined {
  let namespace: string | undefined;
  for (const term of terms) {
    if (term.namespaceSelector !== undefined || term.namespaces.size !== 1) return undefined;
    const only = term.namespaces.values().next().value!;
    if (namespace !== undefined && namespace !== only) return undefined;
    namespace = only;
  }
  return namespace;
}

function termsMatcher(prefix: string, terms: readonly AffinityTerm[]): PodMatcher {
  return {
    key: `${prefix}:${terms.map((term) => term.matcherKey).join('&')}`,
    namespace: singleNamespace(terms),
    matches: (pod, namespaceLabels) => terms.every((term) => term.matches(pod, namespaceLabels)),
  };
}

class FilterState implements StateData {
  constructor(
    readonly pod: PodInfo,
    readonly namespaceLabels: NamespaceLabels,
    /** Pods matching all the pod's required affinity terms. */
    readonly affinity: PodCountIndex | undefined,
    /** Per required anti-affinity term, pods matching it. */
    readonly antiAffinity: readonly PodCountIndex[],
    /** (topology key, value) → existing pods whose required anti-affinity term matches this pod. */
    readonly existingAntiAffinity: Map<string, number>,
    readonly existingAntiAffinityKeys: Set<string>,
    /** Changes for this attempt only (nominated pods added, victims removed). */
    readonly affinityDelta = new Map<string, number>(),
    readonly antiAffinityDelta: Map<string, number>[] = antiAffinity.map(() => new Map()),
  ) {}

  clone(): StateData {
    return new FilterState(
      this.pod,
      this.namespaceLabels,
      this.affinity,
      this.antiAffinity,
      new Map(this.existingAntiAffinity),
      new Set(this.existingAntiAffinityKeys),
      new Map(this.affinityDelta),
      this.antiAffinityDelta.map((delta) => new Map(delta)),
    );
  }

  affinityCount(key: string, value: string): number {
    return (
      (this.affinity!.domainCounts(key).counts.get(value) ?? 0) +
      (this.affinityDelta.get(pair(key, value)) ?? 0)
    );
  }

  /** No pod anywhere matches all the affinity terms on a node with the term's key. */
  noAffinityMatchAnywhere(): boolean {
    for (const term of this.pod.requiredAffinityTerms) {
      if (this.affinity!.domainCounts(term.topologyKey).counts.size > 0) {
        // Removed pods (preemption victims) may leave none: check with the changes.
        if (this.affinityDelta.size === 0) return false;
        for (const value of this.affinity!.domainCounts(term.topologyKey).counts.keys()) {
          if (this.affinityCount(term.topologyKey, value) > 0) return false;
        }
      }
    }
    for (const count of this.affinityDelta.values()) if (count > 0) return false;
    return true;
  }

  /** Keeps the counts right when `other` comes (sign 1) or goes (−1) on `node` for this attempt. */
  change(other: PodInfo, node: NodeInfo, sign: 1 | -1): void {
    for (const term of other.requiredAntiAffinityTerms) {
      const value = node.labels[term.topologyKey];
      if (value === undefined || !term.matches(this.pod, this.namespaceLabels)) continue;
      bump(this.existingAntiAffinity, pair(term.topologyKey, value), sign);
      this.existingAntiAffinityKeys.add(term.topologyKey);
    }
    const affinityTerms = this.pod.requiredAffinityTerms;
    if (
      affinityTerms.length > 0 &&
      affinityTerms.every((term) => term.matches(other, this.namespaceLabels))
    ) {
      for (const term of affinityTerms) {
        const value = node.labels[term.topologyKey];
        if (value !== undefined) bump(this.affinityDelta, pair(term.topologyKey, value), sign);
      }
    }
    this.pod.requiredAntiAffinityTerms.forEach((term, i) => {
      const value = node.labels[term.topologyKey];
      if (value !== undefined && term.matches(other, this.namespaceLabels)) {
        bump(this.antiAffinityDelta[i]!, pair(term.topologyKey, value), sign);
      }
    });
  }
}

class ScoreState implements StateData {
  constructor(readonly topologyScores: Map<string, Map<string, number>>) {}
  clone(): StateData {
    return this;
  }
}

export class InterPodAffinity implements FilterPlugin, ScorePlugin {
  readonly name = INTER_POD_AFFINITY;

  events(): readonly ClusterEvent[] {
    return [
      'NodeAdd',
      'NodeUpdate:labels',
      'PodAdd',
      'PodDelete',
      'PodUpdate:labels',
      'NamespaceAdd',
      'NamespaceUpdate:labels',
    ];
  }

  preFilter(state: CycleState, pod: PodInfo, snapshot: Snapshot): Status | 'skip' | undefined {
    if (pod.parseError !== undefined) {
      return errorStatus(INTER_POD_AFFINITY, `read the pod affinity of pod ${pod.key}: ${pod.parseError}`);
    }
    if (
      pod.requiredAffinityTerms.length === 0 &&
      pod.requiredAntiAffinityTerms.length === 0 &&
      !snapshot.hasPodTerms('requiredAntiAffinity')
    ) {
      return 'skip';
    }
    const namespaceLabels = snapshot.namespaceLabels;
    const existingAntiAffinity = new Map<string, number>();
    const existingAntiAffinityKeys = new Set<string>();
    for (const existing of snapshot.podTerms('requiredAntiAffinity')) {
      const term = existing.term;
      if (!term.matches(pod, namespaceLabels)) continue;
      for (const [value, count] of existing.domains)
        bump(existingAntiAffinity, pair(term.topologyKey, value), count);
      existingAntiAffinityKeys.add(term.topologyKey);
    }
    const affinity =
      pod.requiredAffinityTerms.length > 0
        ? snapshot.podCountIndex(termsMatcher('affinity', pod.requiredAffinityTerms))
        : undefined;
    const antiAffinity = pod.requiredAntiAffinityTerms.map((term) =>
      snapshot.podCountIndex(termsMatcher('term', [term])),
    );
    state.write(
      PRE_FILTER_KEY,
      new FilterState(
        pod,
        namespaceLabels,
        affinity,
        antiAffinity,
        existingAntiAffinity,
        existingAntiAffinityKeys,
      ),
    );
    return undefined;
  }

  filter(state: CycleState, pod: PodInfo, node: NodeInfo): Status | undefined {
    const s = state.read<FilterState>(PRE_FILTER_KEY);
    if (s === undefined) return undefined;
    const labels = node.labels;
    if (s.affinity !== undefined) {
      let podsExist = true;
      for (const term of pod.requiredAffinityTerms) {
        const value = labels[term.topologyKey];
        if (value === undefined) return REFUSED_AFFINITY;
        if (s.affinityCount(term.topologyKey, value) <= 0) podsExist = false;
      }
      if (
        !podsExist &&
        !(
          s.noAffinityMatchAnywhere() &&
          pod.requiredAffinityTerms.every((term) => term.matches(pod, s.namespaceLabels))
        )
      ) {
        return REFUSED_AFFINITY;
      }
    }
    for (let i = 0; i < s.antiAffinity.length; i++) {
      const term = pod.requiredAntiAffinityTerms[i]!;
      const value = labels[term.topologyKey];
      if (value === undefined) continue;
      const count =
        (s.antiAffinity[i]!.domainCounts(term.topologyKey).counts.get(value) ?? 0) +
        (s.antiAffinityDelta[i]!.get(pair(term.topologyKey, value)) ?? 0);
      if (count > 0) return REFUSED_ANTI_AFFINITY;
    }
    for (const key of s.existingAntiAffinityKeys) {
      const value = labels[key];
      if (value !== undefined && (s.existingAntiAffinity.get(pair(key, value)) ?? 0) > 0) {
        return REFUSED_EXISTING_ANTI_AFFINITY;
      }
    }
    return undefined;
  }

  addPod(state: CycleState, _pod: PodInfo, added: PodInfo, node: NodeInfo): void {
    state.read<FilterState>(PRE_FILTER_KEY)?.change(added, node, 1);
  }

  removePod(state: CycleState, _pod: PodInfo, removed: PodInfo, node: NodeInfo): void {
    state.read<FilterState>(PRE_FILTER_KEY)?.change(removed, node, -1);
  }

  preScore(
    state: CycleState,
    pod: PodInfo,
    _nodes: readonly NodeInfo[],
    snapshot: Snapshot,
  ): 'skip' | undefined {
    const hasPreferred = pod.preferredAffinityTerms.length + pod.preferredAntiAffinityTerms.length > 0;
    if (
      !hasPreferred &&
      !snapshot.hasPodTerms('requiredAffinity') &&
      !snapshot.hasPodTerms('preferredAffinity') &&
      !snapshot.hasPodTerms('preferredAntiAffinity')
    ) {
      return 'skip';
    }
    const namespaceLabels = snapshot.namespaceLabels;
    const scores = new Map<string, Map<string, number>>();
    const add = (key: string, value: string, delta: number) => {
      if (delta === 0) return;
      let values = scores.get(key);
      if (values === undefined) scores.set(key, (values = new Map()));
      values.set(value, (values.get(value) ?? 0) + delta);
    };
    for (const [terms, sign] of [
      [pod.preferredAffinityTerms, 1],
      [pod.preferredAntiAffinityTerms, -1],
    ] as const) {
      for (const { weight, term } of terms) {
        if (weight === 0) continue;
        const index = snapshot.podCountIndex(termsMatcher('term', [term]));
        for (const [value, count] of index.domainCounts(term.topologyKey).counts) {
          add(term.topologyKey, value, sign * weight * count);
        }
      }
    }
    // Existing pods' terms that this pod matches: their required affinity weighs 1 per pod.
    for (const [kind, sign] of [
      ['requiredAffinity', 1],
      ['preferredAffinity', 1],
      ['preferredAntiAffinity', -1],
    ] as const) {
      for (const existing of snapshot.podTerms(kind)) {
        if (!existing.term.matches(pod, namespaceLabels)) continue;
        const weight = kind === 'requiredAffinity' ? HARD_POD_AFFINITY_WEIGHT : existing.weight;
        for (const [value, count] of existing.domains)
          add(existing.term.topologyKey, value, sign * weight * count);
      }
    }
    if (scores.size === 0) return 'skip';
    state.write(PRE_SCORE_KEY, new ScoreState(scores));
    return undefined;
  }

  score(state: CycleState, _pod: PodInfo, node: NodeInfo): number {
    const s = state.read<ScoreState>(PRE_SCORE_KEY);
    if (s === undefined) return 0;
    let score = 0;
    for (const [key, values] of s.topologyScores) {
      const value = node.labels[key];
      if (value !== undefined) score += values.get(value) ?? 0;
    }
    return score;
  }

  normalize(_state: CycleState, _pod: PodInfo, _nodes: readonly NodeInfo[], scores: number[]): void {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const score of scores) {
      if (score > max) max = score;
      if (score < min) min = score;
    }
    const spread = max - min;
    for (let i = 0; i < scores.length; i++) {
      scores[i] = spread > 0 ? Math.trunc((MAX_NODE_SCORE * (scores[i]! - min)) / spread) : 0;
    }
  }
}
