/**
 * The framework runtime of one profile: its plugins in order, and the extension points run over
 * them — PreFilter, Filter (first refusal wins, as kube-scheduler without RunAllFilters), Filter
 * with nominated pods counted, PreScore/Score/Normalize with weights. The scheduling cycle and
 * preemption both run plugins through it.
 */
import type { NodeInfo } from './node-info.js';
import type { PodInfo } from './pod-info.js';
import type { Snapshot } from './snapshot.js';
import {
  errorStatus,
  isFilterPlugin,
  isScorePlugin,
  type ClusterEvent,
  type CycleState,
  type FilterPlugin,
  type Plugin,
  type ScorePlugin,
  type Status,
} from './types.js';
import { errorMessage } from '../../../proto/errors.js';

export interface WeightedScorePlugin {
  readonly plugin: ScorePlugin;
  readonly weight: number;
}

/** Pods nominated to nodes, as the framework needs them (see Nominator). */
export interface NominatedPods {
  readonly size: number;
  podsFor(nodeName: string): readonly PodInfo[];
}

export type PreFilterOutcome =
  | { readonly status: Status; readonly filters?: undefined }
  | { readonly status?: undefined; readonly filters: readonly FilterPlugin[] };

export class Framework {
  readonly filters: readonly FilterPlugin[];
  readonly scores: readonly WeightedScorePlugin[];
  /** Filters that keep PreFilter state and so must hear of pods added or removed for an attempt. */
  private readonly stateful: readonly FilterPlugin[];

  constructor(
    private readonly plugins: ReadonlyMap<string, Plugin>,
    filterNames: readonly string[],
    scores: readonly { name: string; weight: number }[],
  ) {
    this.filters = filterNames.map((name) => {
      const plugin = plugins.get(name);
      if (plugin === undefined || !isFilterPlugin(plugin))
        throw new Error(`plugin ${name} is not a filter plugin`);
      return plugin;
    });
    this.scores = scores.map(({ name, weight }) => {
      const plugin = plugins.get(name);
      if (plugin === undefined || !isScorePlugin(plugin))
        throw new Error(`plugin ${name} is not a score plugin`);
      return { plugin, weight };
    });
    this.stateful = this.filters.filter(
      (plugin) => plugin.addPod !== undefined || plugin.removePod !== undefined,
    );
  }

  /** The events that can make a pod refused by plugin `name` schedulable. */
  eventsOf(name: string): readonly ClusterEvent[] {
    return this.plugins.get(name)?.events() ?? [];
  }

  /** Runs every PreFilter; a refusal stops at once. The filters that did not skip come back. */
  preFilter(state: CycleState, pod: PodInfo, snapshot: Snapshot): PreFilterOutcome {
    const active: FilterPlugin[] = [];
    for (const plugin of this.filters) {
      let outcome: Status | 'skip' | undefined;
      try {
        outcome = plugin.preFilter?.(state, pod, snapshot);
      } catch (err) {
        return { status: errorStatus(plugin.name, `${plugin.name} PreFilter: ${errorMessage(err)}`) };
      }
      if (outcome === 'skip') continue;
      if (outcome !== undefined) return { status: outcome };
      active.push(plugin);
    }
    return { filters: active };
  }

  /** The first refusal of `filters` on `node`, or undefined when the pod fits. */
  filter(
    state: CycleState,
    pod: PodInfo,
    node: NodeInfo,
    filters: readonly FilterPlugin[],
  ): Status | undefined {
    for (let i = 0; i < filters.length; i++) {
      const status = filters[i]!.filter(state, pod, node);
      if (status !== undefined) return status;
    }
    return undefined;
  }

  addPod(state: CycleState, pod: PodInfo, added: PodInfo, node: NodeInfo): void {
    for (const plugin of this.stateful) plugin.addPod?.(state, pod, added, node);
  }

  removePod(state: CycleState, pod: PodInfo, removed: PodInfo, node: NodeInfo): void {
    for (const plugin of this.stateful) plugin.removePod?.(state, pod, removed, node);
  }

  /**
   * Filter with the pods nominated to the node (of the pod's priority or higher, other than the pod)
   * counted as if placed, so the room kept for them is not taken; when they are counted and the
   * pod fits, it must also fit without them (as kube-scheduler: an affinity to a nominated pod
   * must not be what makes it fit).
   */
  filterWithNominated(
    state: CycleState,
    pod: PodInfo,
    node: NodeInfo,
    filters: readonly FilterPlugin[],
    nominated: NominatedPods,
  ): Status | undefined {
    if (nominated.size === 0) return this.filter(state, pod, node, filters);
    const others = nominated
      .podsFor(node.name)
      .filter((other) => other.priority >= pod.priority && other.key !== pod.key);
    if (others.length === 0) return this.filter(state, pod, node, filters);
    const withNominated = node.clone();
    const stateWithNominated = state.clone();
    for (const other of others) {
      withNominated.addPod(other);
      this.addPod(stateWithNominated, pod, other, withNominated);
    }
    return (
      this.filter(stateWithNominated, pod, withNominated, filters) ?? this.filter(state, pod, node, filters)
    );
  }

  /** The weighted sum of every score plugin's normalised score, per node of `nodes`. */
  score(state: CycleState, pod: PodInfo, nodes: readonly NodeInfo[], snapshot: Snapshot): number[] {
    const totals = new Array<number>(nodes.length).fill(0);
    const scores = new Array<number>(nodes.length);
    for (const { plugin, weight } of this.scores) {
      if (plugin.preScore?.(state, pod, nodes, snapshot) === 'skip') continue;
      for (let i = 0; i < nodes.length; i++) scores[i] = plugin.score(state, pod, nodes[i]!);
      plugin.normalize?.(state, pod, nodes, scores);
      for (let i = 0; i < nodes.length; i++) totals[i] += scores[i]! * weight;
    }
    return totals;
  }
}
