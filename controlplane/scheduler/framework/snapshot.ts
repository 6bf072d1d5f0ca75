/**
 * Snapshot: the scheduler's view of the cluster for one scheduling cycle, kept by the cache
 * (SchedulerCache.updateSnapshot) and brought up to date before each cycle by copying only the
 * NodeInfos that changed since — O(changed), not O(nodes), as kube-scheduler's snapshot does.
 *
 * Besides the NodeInfos it keeps, incrementally, what plugins would otherwise recompute from every
 * node on every cycle:
 * - how many nodes carry each label key and value (topology domains),
 * - how many nodes hold each image, and which layers an image has,
 * - the labels of namespaces (namespaceSelector),
 * - pod count indexes: for a set of pods (a spread constraint's selector, an affinity term), how
 *   many of them are on each node and in each topology domain. An index is made the first time a
 *   plugin asks for it (O(pods)) and then kept up to date as NodeInfos change (O(pods changed));
 *   the least recently used are dropped beyond a bound;
 * - the inter-pod affinity terms of the pods placed, alike terms together, with how many pods
 *   hold each per topology domain: checking a pod against every existing pod's anti-affinity is
 *   then O(distinct terms), not O(pods with affinity).
 */
import type { NodeInfo } from './node-info.js';
import { normalizedImageName, type AffinityTerm, type NamespaceLabels, type PodInfo } from './pod-info.js';
import { isHardTaint } from '../../../proto/taints.js';

export interface KnownImage {
  readonly size: number;
  /** Layer digests (skiff's ContainerImage.layers); empty when not reported. */
  readonly layers: readonly string[];
}

export type ExistingTermKind =
  'requiredAffinity' | 'requiredAntiAffinity' | 'preferredAffinity' | 'preferredAntiAffinity';

/** An inter-pod affinity term as pods placed hold it: how many pods per domain of its key. */
export interface ExistingTerm {
  readonly kind: ExistingTermKind;
  /** The preferred term's weight (0 for required terms). */
  readonly weight: number;
  readonly term: AffinityTerm;
  /** Value of term.topologyKey on the pod's node → pods holding the term there. */
  readonly domains: Map<string, number>;
}

/** A set of pods an index counts. */
export interface PodMatcher {
  /** Equal keys match the same pods (and so share one index). */
  readonly key: string;
  /** Pods of this namespace only; undefined: pods of every namespace. */
  readonly namespace: string | undefined;
  matches(pod: PodInfo, namespaceLabels: NamespaceLabels): boolean;
}

/** Matching pods per value of one topology key (only values with at least one pod are kept). */
export class DomainCounts {
  readonly counts = new Map<string, number>();
  /** How many domains have each positive count. */
  private readonly histogram = new Map<number, number>();

  add(value: string, delta: number): void {
    const before = this.counts.get(value) ?? 0;
    const after = before + delta;
    if (before > 0) this.bump(before, -1);
    if (after > 0) {
      this.bump(after, 1);
      this.counts.set(value, after);
    } else this.counts.delete(value);
  }

  private bump(count: number, delta: number): void {
    const next = (this.histogram.get(count) ?? 0) + delta;
    if (next === 0) this.histogram.delete(count);
    else this.histogram.set(count, next);
  }

  /** The smallest count over `totalDomains` domains, those without a matching pod counting 0. */
  minimum(totalDomains: number): number {
    if (this.counts.size < totalDomains || this.counts.size === 0) return 0;
    for (let count = 1; ; count++) if (this.histogram.has(count)) return count;
  }
}

export class PodCountIndex {
  /** Matching pods per node name (nodes without any are absent). */
  readonly countsByNode = new Map<string, number>();
  total = 0;
  private readonly domains = new Map<string, DomainCounts>();

  constructor(
    readonly matcher: PodMatcher,
    private readonly snapshot: Snapshot,
  ) {
    for (const node of snapshot.nodes) for (const pod of node.pods) this.apply(pod, node, 1);
  }

  countOn(nodeName: string): number {
    return this.countsByNode.get(nodeName) ?? 0;
  }

  /** Matching pods per value of `topologyKey` over the nodes that carry it. */
  domainCounts(topologyKey: string): DomainCounts {
    let domains = this.domains.get(topologyKey);
    if (domains === undefined) {
      domains = new DomainCounts();
      for (const [nodeName, count] of this.countsByNode) {
        const value = this.snapshot.get(nodeName)?.labels[topologyKey];
        if (value !== undefined) domains.add(value, count);
      }
      this.domains.set(topologyKey, domains);
    }
    return domains;
  }

  /** @internal the snapshot tells its indexes of pods coming and going. */
  apply(pod: PodInfo, node: NodeInfo, sign: 1 | -1): void {
    const matcher = this.matcher;
    if (matcher.namespace !== undefined && pod.namespace !== matcher.namespace) return;
    if (!matcher.matches(pod, this.snapshot.namespaceLabels)) return;
    const next = (this.countsByNode.get(node.name) ?? 0) + sign;
    if (next === 0) this.countsByNode.delete(node.name);
    else this.countsByNode.set(node.name, next);
    this.total += sign;
    for (const [key, domains] of this.domains) {
      const value = node.labels[key];
      if (value !== undefined) domains.add(value, sign);
    }
  }
}

/** How many pod count indexes a snapshot keeps; the least recently used go first. */
const MAX_INDEXES = 256;

function zoneOf(node: NodeInfo): string {
  const labels = node.labels;
  return `${labels['topology.kubernetes.io/region'] ?? ''}:${labels['topology.kubernetes.io/zone'] ?? ''}`;
}

export class Snapshot {
  private readonly infos = new Map<string, NodeInfo>();
  private list: NodeInfo[] = [];
  private readonly position = new Map<string, number>();
  private membershipChanged = false;
  private readonly existingTerms: Record<ExistingTermKind, Map<string, ExistingTerm>> = {
    requiredAffinity: new Map(),
    requiredAntiAffinity: new Map(),
    preferredAffinity: new Map(),
    preferredAntiAffinity: new Map(),
  };
  /** label key → value → nodes carrying it */
  private readonly labelValues = new Map<string, Map<string, number>>();
  /** label key → nodes carrying it (any value) */
  private readonly labelNodes = new Map<string, number>();
  /** image name → nodes holding it */
  private readonly imageNodes = new Map<string, number>();
  /** image name → its size and layers as some node reported them */
  private readonly knownImages = new Map<string, KnownImage>();
  private namespaces = new Map<string, Readonly<Record<string, string>>>();
  private readonly indexes = new Map<string, PodCountIndex>();
  /** Nodes with a NoSchedule or NoExecute taint. */
  private hardTaintedNodes = 0;
  private preferNoScheduleNodes = 0;
  private unschedulableNodes = 0;
  private notReadyNodes = 0;

  /** @internal the cache's bookkeeping of what this snapshot has seen. */
  cacheState: unknown = undefined;

  readonly namespaceLabels: NamespaceLabels = (namespace) => this.namespaces.get(namespace);

  get(name: string): NodeInfo | undefined {
    return this.infos.get(name);
  }

  /** Every node, zones interleaved (so a partial search still meets every zone early). */
  get nodes(): readonly NodeInfo[] {
    return this.list;
  }

  get nodeCount(): number {
    return this.list.length;
  }

  /** The affinity terms of this kind that pods placed hold (with their domains). */
  podTerms(kind: ExistingTermKind): Iterable<ExistingTerm> {
    return this.existingTerms[kind].values();
  }

  hasPodTerms(kind: ExistingTermKind): boolean {
    return this.existingTerms[kind].size > 0;
  }

  /** How many nodes carry the label `key` (any value). */
  nodesWithLabel(key: string): number {
    return this.labelNodes.get(key) ?? 0;
  }

  /** The distinct values of label `key` over the nodes (the topology domains of that key). */
  labelValueCount(key: string): number {
    return this.labelValues.get(key)?.size ?? 0;
  }

  get nodesWithHardTaints(): number {
    return this.hardTaintedNodes;
  }

  get nodesWithPreferNoScheduleTaints(): number {
    return this.preferNoScheduleNodes;
  }

  /** Cordoned nodes (spec.unschedulable). */
  get unschedulableNodeCount(): number {
    return this.unschedulableNodes;
  }

  /** Nodes whose Ready condition is not True. */
  get notReadyNodeCount(): number {
    return this.notReadyNodes;
  }

  imageNodeCount(image: string): number {
    return this.imageNodes.get(image) ?? 0;
  }

  /** The size and layers of an image as the last node to report it said (kept after it left). */
  knownImage(image: string): KnownImage | undefined {
    return this.knownImages.get(image);
  }

  /** The index counting the pods of `matcher`, made now if it does not exist yet. */
  podCountIndex(matcher: PodMatcher): PodCountIndex {
    const key = `${matcher.namespace ?? '*'}\u0000${matcher.key}`;
    let index = this.indexes.get(key);
    if (index !== undefined) {
      // Map order is the LRU order: move it to the end.
      this.indexes.delete(key);
      this.indexes.set(key, index);
      return index;
    }
    index = new PodCountIndex(matcher, this);
    this.indexes.set(key, index);
    if (this.indexes.size > MAX_INDEXES) this.indexes.delete(this.indexes.keys().next().value!);
    return index;
  }

  // ---------------------------------------------------------------------------------------------
  // Updates, by the cache only.

  /** @internal */
  setNamespaces(namespaces: Map<string, Readonly<Record<string, string>>>): void {
    this.namespaces = namespaces;
    // Indexes with a namespaceSelector may now select other pods.
    for (const [key, index] of this.indexes)
      if (index.matcher.namespace === undefined) this.indexes.delete(key);
  }

  private countNode(node: NodeInfo, sign: 1 | -1): void {
    for (const key in node.labels) {
      const carrying = (this.labelNodes.get(key) ?? 0) + sign;
      if (carrying === 0) this.labelNodes.delete(key);
      else this.labelNodes.set(key, carrying);
      let values = this.labelValues.get(key);
      if (values === undefined) this.labelValues.set(key, (values = new Map()));
      const value = node.labels[key]!;
      const next = (values.get(value) ?? 0) + sign;
      if (next === 0) {
        values.delete(value);
        if (values.size === 0) this.labelValues.delete(key);
      } else values.set(value, next);
    }
    for (const image of node.images.keys()) {
      const next = (this.imageNodes.get(image) ?? 0) + sign;
      if (next === 0) this.imageNodes.delete(image);
      else this.imageNodes.set(image, next);
    }
    if (sign === 1) {
      for (const image of node.node?.status?.images ?? []) {
        const known = { size: image.sizeBytes ?? 0, layers: image.layers ?? [] };
        for (const name of image.names ?? []) this.knownImages.set(normalizedImageName(name), known);
      }
    }
    if (node.taints.some(isHardTaint)) this.hardTaintedNodes += sign;
    if (node.hasPreferNoScheduleTaint) this.preferNoScheduleNodes += sign;
    if (node.unschedulable) this.unschedulableNodes += sign;
    if (node.readinessTaint !== undefined) this.notReadyNodes += sign;
  }

  private indexPods(pods: readonly PodInfo[], node: NodeInfo, sign: 1 | -1): void {
    for (const pod of pods) {
      for (const index of this.indexes.values()) index.apply(pod, node, sign);
      if (pod.hasAffinity) this.indexTerms(pod, node, sign);
    }
  }

  private indexTerm(
    kind: ExistingTermKind,
    weight: number,
    term: AffinityTerm,
    node: NodeInfo,
    sign: 1 | -1,
  ): void {
    const value = node.labels[term.topologyKey];
    if (value === undefined) return;
    const terms = this.existingTerms[kind];
    const key = `${weight}|${term.topologyKey}|${term.matcherKey}`;
    let existing = terms.get(key);
    if (existing === undefined) terms.set(key, (existing = { kind, weight, term, domains: new Map() }));
    const next = (existing.domains.get(value) ?? 0) + sign;
    if (next === 0) {
      existing.domains.delete(value);
      if (existing.domains.size === 0) terms.delete(key);
    } else existing.domains.set(value, next);
  }

  private indexTerms(pod: PodInfo, node: NodeInfo, sign: 1 | -1): void {
    for (const term of pod.requiredAffinityTerms) this.indexTerm('requiredAffinity', 0, term, node, sign);
    for (const term of pod.requiredAntiAffinityTerms)
      this.indexTerm('requiredAntiAffinity', 0, term, node, sign);
    for (const { weight, term } of pod.preferredAffinityTerms)
      this.indexTerm('preferredAffinity', weight, term, node, sign);
    for (const { weight, term } of pod.preferredAntiAffinityTerms) {
      this.indexTerm('preferredAntiAffinity', weight, term, node, sign);
    }
  }

  /** @internal Puts `info` (undefined: removes the node) in place of what the snapshot had. */
  setNodeInfo(name: string, info: NodeInfo | undefined): void {
    const old = this.infos.get(name);
    if (old === info) return;
    if (old !== undefined) {
      const nodeChanged = info === undefined || old.node !== info.node;
      if (nodeChanged) this.countNode(old, -1);
      if (info !== undefined && old.labels === info.labels) {
        // The same labels: only the pods that came or went change the indexes.
        const before = new Set(old.pods);
        const after = new Set(info.pods);
        this.indexPods(
          old.pods.filter((pod) => !after.has(pod)),
          old,
          -1,
        );
        this.indexPods(
          info.pods.filter((pod) => !before.has(pod)),
          info,
          1,
        );
      } else {
        this.indexPods(old.pods, old, -1);
        if (info !== undefined) this.indexPods(info.pods, info, 1);
      }
      if (info !== undefined && nodeChanged) this.countNode(info, 1);
    } else if (info !== undefined) {
      this.countNode(info, 1);
      this.indexPods(info.pods, info, 1);
    }
    if (info === undefined) {
      this.infos.delete(name);
      this.membershipChanged = true;
      return;
    }
    this.infos.set(name, info);
    const at = this.position.get(name);
    if (at === undefined) this.membershipChanged = true;
    else this.list[at] = info;
  }

  /** @internal Rebuilds the node list when nodes came or went. */
  finishUpdate(): void {
    if (this.membershipChanged) {
      this.membershipChanged = false;
      const zones = new Map<string, NodeInfo[]>();
      for (const info of this.infos.values()) {
        const zone = zoneOf(info);
        let members = zones.get(zone);
        if (members === undefined) zones.set(zone, (members = []));
        members.push(info);
      }
      const groups = [...zones.values()];
      const list: NodeInfo[] = [];
      for (let i = 0; list.length < this.infos.size; i++) {
        for (const group of groups) if (i < group.length) list.push(group[i]!);
      }
      this.list = list;
      this.position.clear();
      list.forEach((info, i) => this.position.set(info.name, i));
    }
  }
}
