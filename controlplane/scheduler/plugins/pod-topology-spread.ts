/**
 * PodTopologySpread: topologySpreadConstraints, as Kubernetes evaluates them.
 *
 * Filter (whenUnsatisfiable: DoNotSchedule): for each constraint, the node must carry the topology
 * key (else `node(s) didn't match pod topology spread constraints (missing required label)`,
 * preemption cannot help), and placing the pod there must keep
 *     pods matching the selector in the node's domain + 1 (if the pod matches it itself)
 *       − the fewest in any domain  ≤  maxSkew
 * (else `node(s) didn't match pod topology spread constraints`). Domains are the values of the key
 * over the nodes that carry every constraint's key and, by the constraint's policies, match the
 * pod's node affinity (nodeAffinityPolicy, default Honor) and whose taints it tolerates
 * (nodeTaintsPolicy, default Ignore). With fewer domains than minDomains the fewest counts as 0.
 * Only pods of the pod's namespace that are not terminating count; matchLabelKeys adds the pod's
 * own label values to the selector.
 *
 * Score (whenUnsatisfiable: ScheduleAnyway, or — when the pod has no constraints at all and has a
 * controller — the system defaults: its controller's pods spread over `kubernetes.io/hostname`
 * with maxSkew 3 and `topology.kubernetes.io/zone` with maxSkew 5): a node scores
 * Σ matching pods in its domain · log(domains + 2) + (maxSkew − 1) over the constraints, and the
 * scores are turned around (fewer matching pods, higher score) onto 0..100.
 *
 * Counts per domain come from the snapshot's pod count indexes. When every node qualifies for
 * every constraint (no node affinity to honour, no taints to honour, every node carries the keys)
 * the index's per-domain counts are used as they are, O(1) per node; otherwise the domains are
 * counted over the nodes that qualify, O(nodes) per pod, as Kubernetes always does.
 */
import type { Pod } from '../../../proto/gen/types.js';
import { NOTHING, type LabelRequirement } from '../../api/selectors.js';
import type { NodeInfo } from '../framework/node-info.js';
import { RequiredNodeAffinity } from '../framework/node-affinity.js';
import { cachedLabelSelector, withRequirements, type PodInfo } from '../framework/pod-info.js';
import type { DomainCounts, PodCountIndex, PodMatcher, Snapshot } from '../framework/snapshot.js';
import { firstUntoleratedHardTaint } from '../../../proto/taints.js';
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
import { errorMessage } from '../../../proto/errors.js';

export const POD_TOPOLOGY_SPREAD = 'PodTopologySpread';
export const REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints";
export const REASON_NODE_LABEL_NOT_MATCH = `${REASON_CONSTRAINTS_NOT_MATCH} (missing required label)`;

export const LABEL_HOSTNAME = 'kubernetes.io/hostname';
export const LABEL_ZONE = 'topology.kubernetes.io/zone';

const PRE_FILTER_KEY = `PreFilter${POD_TOPOLOGY_SPREAD}`;
const PRE_SCORE_KEY = `PreScore${POD_TOPOLOGY_SPREAD}`;

const REFUSED_SKEW = unschedulable(POD_TOPOLOGY_SPREAD, REASON_CONSTRAINTS_NOT_MATCH);
const REFUSED_LABEL = unresolvable(POD_TOPOLOGY_SPREAD, REASON_NODE_LABEL_NOT_MATCH);

interface Constraint {
  readonly maxSkew: number;
  readonly topologyKey: string;
  readonly minDomains: number;
  readonly honorNodeAffinity: boolean;
  readonly honorTaints: boolean;
  readonly matcher: PodMatcher;
  /** Whether the pod being placed matches the selector (it then adds one to its domain). */
  readonly selfMatch: boolean;
}

function constraintsOf(pod: PodInfo, whenUnsatisfiable: string, systemDefaults: boolean): Constraint[] {
  const own = pod.pod.spec.topologySpreadConstraints ?? [];
  if (own.length > 0) {
    return own
      .filter((c) => c.whenUnsatisfiable === whenUnsatisfiable)
      .map((c, i) => {
        let selector = cachedLabelSelector(
          c.labelSelector,
          `spec.topologySpreadConstraints[${i}].labelSelector`,
        );
        const extra: LabelRequirement[] = [];
        for (const key of c.matchLabelKeys ?? []) {
          const value = pod.labels[key];
          if (value !== undefined) extra.push({ key, operator: 'In', values: [value] });
        }
        selector = withRequirements(selector, extra);
        return {
          maxSkew: c.maxSkew ?? 1,
          topologyKey: c.topologyKey,
          minDomains: c.minDomains ?? 1,
          honorNodeAffinity: (c.nodeAffinityPolicy ?? 'Honor') === 'Honor',
          honorTaints: (c.nodeTaintsPolicy ?? 'Ignore') === 'Honor',
          matcher: {
            key: `spread:${selector === NOTHING ? '<nothing>' : selector.toString()}`,
            namespace: pod.namespace,
            matches: (other: PodInfo) => !other.terminating && selector.matches(other.labels),
          },
          selfMatch: selector.matches(pod.labels),
        };
      });
  }
  if (!systemDefaults || whenUnsatisfiable !== 'ScheduleAnyway' || pod.controllerUid === undefined) return [];
  const owner = pod.controllerUid;
  const matcher: PodMatcher = {
    key: `owner:${owner}`,
    namespace: pod.namespace,
    matches: (other) => !other.terminating && other.controllerUid === owner,
  };
  const base = { minDomains: 1, honorNodeAffinity: true, honorTaints: false, matcher, selfMatch: true };
  return [
    { ...base, maxSkew: 3, topologyKey: LABEL_HOSTNAME },
    { ...base, maxSkew: 5, topologyKey: LABEL_ZONE },
  ];
}

function hasAllKeys(node: NodeInfo, constraints: readonly Constraint[]): boolean {
  for (const c of constraints) if (node.labels[c.topologyKey] === undefined) return false;
  return true;
}

/** Whether the node's pods count for constraint `c` (its node inclusion policies). */
function qualifies(c: Constraint, pod: Pod, required: RequiredNodeAffinity, node: NodeInfo): boolean {
  if (
    c.honorNodeAffinity &&
    required.restricts &&
    (node.node === undefined || !required.matches(node.node))
  ) {
    return false;
  }
  if (
    c.honorTaints &&
    node.taints.length > 0 &&
    firstUntoleratedHardTaint(node.taints, pod.spec.tolerations)
  ) {
    return false;
  }
  return true;
}

/**
 * Whether every node qualifies for every constraint, so the index's per-domain counts over all
 * nodes are the counts over the qualifying ones.
 */
function everyNodeQualifies(
  constraints: readonly Constraint[],
  required: RequiredNodeAffinity,
  snapshot: Snapshot,
  requireAllKeys: boolean,
): boolean {
  for (const c of constraints) {
    if (c.honorNodeAffinity && required.restricts) return false;
    if (c.honorTaints && snapshot.nodesWithHardTaints > 0) return false;
  }
  if (requireAllKeys) {
    for (const c of constraints)
      if (snapshot.nodesWithLabel(c.topologyKey) !== snapshot.nodeCount) return false;
  }
  return true;
}

/** One constraint's matching pods per domain for one attempt: counts, domains, the fewest. */
class Domains {
  /** Changes for this attempt only (nominated pods added, victims removed), by domain. */
  private delta = new Map<string, number>();
  private minimum: number | undefined;

  constructor(
    readonly constraint: Constraint,
    /** The index's counts over all nodes, or counts over the qualifying nodes (zeros included). */
    private readonly indexed: DomainCounts | undefined,
    private readonly counted: Map<string, number> | undefined,
    readonly domains: number,
  ) {}

  clone(): Domains {
    const copy = new Domains(
      this.constraint,
      this.indexed,
      this.counted === undefined ? undefined : new Map(this.counted),
      this.domains,
    );
    copy.delta = new Map(this.delta);
    copy.minimum = this.minimum;
    return copy;
  }

  count(value: string): number {
    if (this.counted !== undefined) return this.counted.get(value) ?? 0;
    const base = this.indexed!.counts.get(value) ?? 0;
    return this.delta.size === 0 ? base : base + (this.delta.get(value) ?? 0);
  }

  change(value: string, delta: number): void {
    if (this.counted !== undefined) {
      if (this.counted.has(value)) this.counted.set(value, this.counted.get(value)! + delta);
    } else {
      this.delta.set(value, (this.delta.get(value) ?? 0) + delta);
    }
    this.minimum = undefined;
  }

  /** The fewest matching pods in any domain; 0 with fewer domains than minDomains. */
  fewest(): number {
    if (this.domains < this.constraint.minDomains) return 0;
    if (this.minimum !== undefined) return this.minimum;
    let fewest: number;
    if (this.counted !== undefined) {
      fewest = Number.POSITIVE_INFINITY;
      for (const count of this.counted.values()) if (count < fewest) fewest = count;
    } else if (this.delta.size === 0) {
      fewest = this.indexed!.minimum(this.domains);
    } else {
      let nonEmpty = 0;
      fewest = Number.POSITIVE_INFINITY;
      for (const value of new Set([...this.indexed!.counts.keys(), ...this.delta.keys()])) {
        const count = this.count(value);
        if (count > 0) nonEmpty++;
        if (count < fewest) fewest = count;
      }
      if (nonEmpty < this.domains) fewest = Math.min(fewest, 0);
    }
    this.minimum = fewest;
    return fewest;
  }
}

class FilterState implements StateData {
  constructor(
    readonly pod: PodInfo,
    readonly required: RequiredNodeAffinity,
    readonly domains: Domains[],
  ) {}

  clone(): StateData {
    return new FilterState(
      this.pod,
      this.required,
      this.domains.map((d) => d.clone()),
    );
  }

  change(other: PodInfo, node: NodeInfo, sign: 1 | -1): void {
    if (other.namespace !== this.pod.namespace) return;
    if (
      !hasAllKeys(
        node,
        this.domains.map((d) => d.constraint),
      )
    )
      return;
    for (const d of this.domains) {
      const c = d.constraint;
      if (!c.matcher.matches(other, () => undefined)) continue;
      if (!qualifies(c, this.pod.pod, this.required, node)) continue;
      d.change(node.labels[c.topologyKey]!, sign);
    }
  }
}

class ScoreState implements StateData {
  constructor(
    readonly constraints: readonly Constraint[],
    readonly indexes: readonly PodCountIndex[],
    /** Per constraint: matching pods per domain (unused for the hostname key: counted per node). */
    readonly counts: readonly ((value: string) => number)[],
    readonly weights: readonly number[],
    readonly ignored: ReadonlySet<string>,
  ) {}
  clone(): StateData {
    return this;
  }
}

export interface PodTopologySpreadOptions {
  /** Spread a controller's pods by hostname and zone when they have no constraints (default true). */
  systemDefaults?: boolean;
}

export class PodTopologySpread implements FilterPlugin, ScorePlugin {
  readonly name = POD_TOPOLOGY_SPREAD;
  private readonly systemDefaults: boolean;
  /** The last cycle's state and its FilterState: Filter runs per node, the lookup once. */
  private lastCycle: CycleState | undefined;
  private lastFilterState: FilterState | undefined;

  constructor(options: PodTopologySpreadOptions = {}) {
    this.systemDefaults = options.systemDefaults ?? true;
  }

  events(): readonly ClusterEvent[] {
    return [
      'NodeAdd',
      'NodeDelete',
      'NodeUpdate:labels',
      'NodeUpdate:taints',
      'PodAdd',
      'PodDelete',
      'PodUpdate:labels',
      'PodUpdate:terminating',
    ];
  }

  preFilter(state: CycleState, pod: PodInfo, snapshot: Snapshot): Status | 'skip' | undefined {
    this.lastCycle = undefined;
    let constraints: Constraint[];
    try {
      constraints = constraintsOf(pod, 'DoNotSchedule', this.systemDefaults);
    } catch (err) {
      return errorStatus(
        POD_TOPOLOGY_SPREAD,
        `read the topology spread constraints of pod ${pod.key}: ${errorMessage(err)}`,
      );
    }
    if (constraints.length === 0) return 'skip';
    const required = new RequiredNodeAffinity(pod.pod);
    let domains: Domains[];
    if (everyNodeQualifies(constraints, required, snapshot, true)) {
      domains = constraints.map(
        (c) =>
          new Domains(
            c,
            snapshot.podCountIndex(c.matcher).domainCounts(c.topologyKey),
            undefined,
            snapshot.labelValueCount(c.topologyKey),
          ),
      );
    } else {
      const indexes = constraints.map((c) => snapshot.podCountIndex(c.matcher));
      const counted = constraints.map(() => new Map<string, number>());
      for (const node of snapshot.nodes) {
        if (!hasAllKeys(node, constraints)) continue;
        constraints.forEach((c, i) => {
          if (!qualifies(c, pod.pod, required, node)) return;
          const value = node.labels[c.topologyKey]!;
          counted[i]!.set(value, (counted[i]!.get(value) ?? 0) + indexes[i]!.countOn(node.name));
        });
      }
      domains = constraints.map((c, i) => new Domains(c, undefined, counted[i], counted[i]!.size));
    }
    state.write(PRE_FILTER_KEY, new FilterState(pod, required, domains));
    return undefined;
  }

  filter(state: CycleState, _pod: PodInfo, node: NodeInfo): Status | undefined {
    if (state !== this.lastCycle) {
      this.lastCycle = state;
      this.lastFilterState = state.read<FilterState>(PRE_FILTER_KEY);
    }
    const s = this.lastFilterState;
    if (s === undefined) return undefined;
    for (const d of s.domains) {
      const c = d.constraint;
      const value = node.labels[c.topologyKey];
      if (value === undefined) return REFUSED_LABEL;
      const skew = d.count(value) + (c.selfMatch ? 1 : 0) - d.fewest();
      if (skew > c.maxSkew) return REFUSED_SKEW;
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
    nodes: readonly NodeInfo[],
    snapshot: Snapshot,
  ): 'skip' | undefined {
    if (snapshot.nodeCount === 0) return 'skip';
    let constraints: Constraint[];
    try {
      constraints = constraintsOf(pod, 'ScheduleAnyway', this.systemDefaults);
    } catch {
      return 'skip';
    }
    if (constraints.length === 0) return 'skip';
    // System defaults spread by hostname even on nodes without a zone label.
    const requireAllKeys = (pod.pod.spec.topologySpreadConstraints?.length ?? 0) > 0;
    const ignored = new Set<string>();
    const seen = constraints.map(() => new Set<string>());
    for (const node of nodes) {
      if (requireAllKeys && !hasAllKeys(node, constraints)) {
        ignored.add(node.name);
        continue;
      }
      constraints.forEach((c, i) => {
        if (c.topologyKey !== LABEL_HOSTNAME) seen[i]!.add(node.labels[c.topologyKey] ?? '');
      });
    }
    const weights = constraints.map((c, i) =>
      Math.log((c.topologyKey === LABEL_HOSTNAME ? nodes.length - ignored.size : seen[i]!.size) + 2),
    );
    const indexes = constraints.map((c) => snapshot.podCountIndex(c.matcher));
    const required = new RequiredNodeAffinity(pod.pod);
    let counts: ((value: string) => number)[];
    if (everyNodeQualifies(constraints, required, snapshot, requireAllKeys)) {
      counts = constraints.map((c, i) => {
        const domains = indexes[i]!.domainCounts(c.topologyKey);
        return (value: string) => domains.counts.get(value) ?? 0;
      });
    } else {
      const counted = constraints.map(() => new Map<string, number>());
      const hostnameOnly = constraints.every((c) => c.topologyKey === LABEL_HOSTNAME);
      if (!hostnameOnly) {
        for (const node of snapshot.nodes) {
          if (requireAllKeys && !hasAllKeys(node, constraints)) continue;
          constraints.forEach((c, i) => {
            if (c.topologyKey === LABEL_HOSTNAME) return;
            const value = node.labels[c.topologyKey] ?? '';
            if (!seen[i]!.has(value) || !qualifies(c, pod.pod, required, node)) return;
            counted[i]!.set(value, (counted[i]!.get(value) ?? 0) + indexes[i]!.countOn(node.name));
          });
        }
      }
      counts = counted.map((map) => (value: string) => map.get(value) ?? 0);
    }
    state.write(PRE_SCORE_KEY, new ScoreState(constraints, indexes, counts, weights, ignored));
    return undefined;
  }

  score(state: CycleState, _pod: PodInfo, node: NodeInfo): number {
    const s = state.read<ScoreState>(PRE_SCORE_KEY);
    if (s === undefined || s.ignored.has(node.name)) return 0;
    let score = 0;
    for (let i = 0; i < s.constraints.length; i++) {
      const c = s.constraints[i]!;
      const value = node.labels[c.topologyKey];
      if (value === undefined) continue;
      const count = c.topologyKey === LABEL_HOSTNAME ? s.indexes[i]!.countOn(node.name) : s.counts[i]!(value);
      score += count * s.weights[i]! + (c.maxSkew - 1);
    }
    return Math.round(score);
  }

  normalize(state: CycleState, _pod: PodInfo, nodes: readonly NodeInfo[], scores: number[]): void {
    const s = state.read<ScoreState>(PRE_SCORE_KEY);
    if (s === undefined) return;
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (let i = 0; i < scores.length; i++) {
      if (s.ignored.has(nodes[i]!.name)) continue;
      if (scores[i]! < min) min = scores[i]!;
      if (scores[i]! > max) max = scores[i]!;
    }
    for (let i = 0; i < scores.length; i++) {
      if (s.ignored.has(nodes[i]!.name)) scores[i] = 0;
      else if (max === 0) scores[i] = MAX_NODE_SCORE;
      else scores[i] = Math.trunc((MAX_NODE_SCORE * (max + min - scores[i]!)) / max);
    }
  }
}
