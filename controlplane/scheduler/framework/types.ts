/**
 * The plugin contract of the scheduler, Kubernetes-shaped (kube-scheduler's framework): small
 * extension points a plugin implements as it needs, and verdicts that are values — a Status with a
 * code, reasons in Kubernetes' words and the plugin's name — so that "does not fit" is never
 * confused with "something broke".
 *
 *   PreFilter  once per pod: compute what Filter reads on every node (into the CycleState), or say
 *              the plugin has nothing to check for this pod ('skip')
 *   Filter     per node: undefined (fits) or a Status
 *   PreScore   once per pod over the feasible nodes; 'skip' when the plugin would score all alike
 *   Score      per feasible node: 0..100 (before normalisation)
 *   Normalize  once per pod over all scores (e.g. to 0..100, or reversed)
 *
 * Each plugin also names the cluster events that can make a pod it refused schedulable (events()),
 * so the scheduling queue retries such a pod only when one of them happens.
 */
import type { NodeInfo } from './node-info.js';
import type { PodInfo } from './pod-info.js';
import type { Snapshot } from './snapshot.js';

export const MAX_NODE_SCORE = 100;

/**
 * Unschedulable: the node does not fit now, and removing pods (preemption) might help.
 * UnschedulableAndUnresolvable: preemption cannot help (a taint, a selector, a missing label).
 * Error: the plugin could not decide (a bug or bad input); the pod is retried with back-off.
 */
export type StatusCode = 'Unschedulable' | 'UnschedulableAndUnresolvable' | 'Error';

export interface Status {
  readonly code: StatusCode;
  /** In Kubernetes' exact words: they are counted per node in the FailedScheduling message. */
  readonly reasons: readonly string[];
  readonly plugin: string;
}

export function unschedulable(plugin: string, ...reasons: string[]): Status {
  return Object.freeze({ code: 'Unschedulable', reasons: Object.freeze(reasons), plugin });
}

export function unresolvable(plugin: string, ...reasons: string[]): Status {
  return Object.freeze({ code: 'UnschedulableAndUnresolvable', reasons: Object.freeze(reasons), plugin });
}

export function errorStatus(plugin: string, message: string): Status {
  return Object.freeze({ code: 'Error', reasons: Object.freeze([message]), plugin });
}

/** Data a plugin keeps for one scheduling attempt; `clone()` lets preemption try nodes apart. */
export interface StateData {
  clone(): StateData;
}

/** What plugins keep per scheduling attempt of one pod (PreFilter results, PreScore results). */
export class CycleState {
  private readonly data = new Map<string, StateData>();

  read<T extends StateData>(key: string): T | undefined {
    return this.data.get(key) as T | undefined;
  }

  write(key: string, value: StateData): void {
    this.data.set(key, value);
  }

  /** A copy whose data may change (a node tried for preemption) without touching this one. */
  clone(): CycleState {
    const copy = new CycleState();
    for (const [key, value] of this.data) copy.data.set(key, value.clone());
    return copy;
  }
}

/**
 * What happened in the cluster, as far as a pod refused by a plugin can care. Node updates name
 * what changed; Pod events are about pods bound to nodes (they change what is on a node).
 */
export type ClusterEvent =
  | 'NodeAdd'
  | 'NodeDelete'
  | 'NodeUpdate:allocatable'
  | 'NodeUpdate:labels'
  | 'NodeUpdate:taints'
  | 'NodeUpdate:conditions'
  | 'NodeUpdate:unschedulable'
  | 'NodeUpdate:images'
  | 'PodAdd'
  | 'PodDelete'
  | 'PodUpdate:labels'
  | 'PodUpdate:requests'
  | 'PodUpdate:terminating'
  | 'NamespaceAdd'
  | 'NamespaceUpdate:labels';

export const ALL_CLUSTER_EVENTS: readonly ClusterEvent[] = [
  'NodeAdd',
  'NodeDelete',
  'NodeUpdate:allocatable',
  'NodeUpdate:labels',
  'NodeUpdate:taints',
  'NodeUpdate:conditions',
  'NodeUpdate:unschedulable',
  'NodeUpdate:images',
  'PodAdd',
  'PodDelete',
  'PodUpdate:labels',
  'PodUpdate:requests',
  'PodUpdate:terminating',
  'NamespaceAdd',
  'NamespaceUpdate:labels',
];

export interface Plugin {
  readonly name: string;
  /** The cluster events that can make a pod this plugin refused schedulable. */
  events(): readonly ClusterEvent[];
}

export interface FilterPlugin extends Plugin {
  /**
   * Once per scheduling attempt, before any Filter. A Status refuses the pod on every node (the
   * FailedScheduling message then carries its reason alone); 'skip' leaves Filter out for this pod.
   */
  preFilter?(state: CycleState, pod: PodInfo, snapshot: Snapshot): Status | 'skip' | undefined;
  filter(state: CycleState, pod: PodInfo, node: NodeInfo): Status | undefined;
  /**
   * Keep PreFilter's results right when a pod is added to or removed from a node for this attempt
   * only (a nominated pod counted, a preemption victim taken away). Plugins whose Filter reads
   * nothing but the NodeInfo need neither.
   */
  addPod?(state: CycleState, pod: PodInfo, added: PodInfo, node: NodeInfo): void;
  removePod?(state: CycleState, pod: PodInfo, removed: PodInfo, node: NodeInfo): void;
}

export interface ScorePlugin extends Plugin {
  preScore?(
    state: CycleState,
    pod: PodInfo,
    nodes: readonly NodeInfo[],
    snapshot: Snapshot,
  ): 'skip' | undefined;
  /** The node's raw score; 0..100 unless normalize() brings it there. */
  score(state: CycleState, pod: PodInfo, node: NodeInfo): number;
  /** Brings the scores (one per node of `nodes`, same order) to 0..100, in place. */
  normalize?(state: CycleState, pod: PodInfo, nodes: readonly NodeInfo[], scores: number[]): void;
}

export function isFilterPlugin(plugin: Plugin): plugin is FilterPlugin {
  return typeof (plugin as FilterPlugin).filter === 'function';
}

export function isScorePlugin(plugin: Plugin): plugin is ScorePlugin {
  return typeof (plugin as ScorePlugin).score === 'function';
}

/**
 * Kubernetes' DefaultNormalizeScore: scores scaled so the highest is 100 (all left at 0 when the
 * highest is 0); `reverse` turns them around (100 − score), so that fewer counts better. With
 * reverse and every score 0, every node gets 100.
 */
export function defaultNormalizeScore(scores: number[], reverse: boolean): void {
  let max = 0;
  for (const score of scores) if (score > max) max = score;
  if (max === 0) {
    if (reverse) scores.fill(MAX_NODE_SCORE);
    return;
  }
  for (let i = 0; i < scores.length; i++) {
    const scaled = Math.trunc((MAX_NODE_SCORE * scores[i]!) / max);
    scores[i] = reverse ? MAX_NODE_SCORE - scaled : scaled;
  }
}
