/**
 * What Kubernetes' node lifecycle controller decides, as pure functions: the taints a node's
 * conditions stand for, the state of each zone (how many of its nodes are not Ready), how fast
 * nodes of a zone may be tainted NoExecute, and when a pod on a NoExecute-tainted node is evicted.
 */
import type { Node, Pod, Taint, Toleration } from '../../../proto/gen/types.js';
import {
  TAINT_NODE_NOT_READY,
  TAINT_NODE_UNREACHABLE,
  TAINT_NODE_UNSCHEDULABLE,
  toleratesTaint,
} from '../../../proto/taints.js';

/** NoSchedule taints a node condition stands for when it has the given status (TaintNodesByCondition). */
const CONDITION_TAINTS: readonly { type: string; status: string; key: string }[] = [
  { type: 'MemoryPressure', status: 'True', key: 'node.kubernetes.io/memory-pressure' },
  { type: 'DiskPressure', status: 'True', key: 'node.kubernetes.io/disk-pressure' },
  { type: 'PIDPressure', status: 'True', key: 'node.kubernetes.io/pid-pressure' },
  { type: 'NetworkUnavailable', status: 'True', key: 'node.kubernetes.io/network-unavailable' },
];

/** Every taint key this controller adds and removes; other taints on a node are the operator's. */
export const MANAGED_TAINT_KEYS: ReadonlySet<string> = new Set([
  TAINT_NODE_NOT_READY,
  TAINT_NODE_UNREACHABLE,
  TAINT_NODE_UNSCHEDULABLE,
  ...CONDITION_TAINTS.map((each) => each.key),
]);

export type Readiness = 'True' | 'False' | 'Unknown';

/** The node's Ready status; a node that never reported one is not ready (False). */
export function readinessOf(node: Node): Readiness {
  const status = node.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  return status === 'True' || status === 'Unknown' ? status : 'False';
}

/** The NoSchedule taints the node's conditions and spec.unschedulable stand for. */
export function noScheduleTaints(node: Node): Taint[] {
  const taints: Taint[] = [];
  const readiness = readinessOf(node);
  if (readiness !== 'True')
    taints.push({
      key: readiness === 'Unknown' ? TAINT_NODE_UNREACHABLE : TAINT_NODE_NOT_READY,
      effect: 'NoSchedule',
    });
  const conditions = node.status?.conditions ?? [];
  for (const { type, status, key } of CONDITION_TAINTS)
    if (conditions.some((c) => c.type === type && c.status === status))
      taints.push({ key, effect: 'NoSchedule' });
  if (node.spec.unschedulable === true) taints.push({ key: TAINT_NODE_UNSCHEDULABLE, effect: 'NoSchedule' });
  return taints;
}

/** The NoExecute taint a node that is not Ready should carry (undefined when it is Ready). */
export function wantedNoExecuteKey(node: Node): string | undefined {
  const readiness = readinessOf(node);
  if (readiness === 'True') return undefined;
  return readiness === 'Unknown' ? TAINT_NODE_UNREACHABLE : TAINT_NODE_NOT_READY;
}

/** The not-ready or unreachable NoExecute taint the node carries now, if any. */
export function currentNoExecuteTaint(node: Node): Taint | undefined {
  return (node.spec.taints ?? []).find(
    (t) => t.effect === 'NoExecute' && (t.key === TAINT_NODE_NOT_READY || t.key === TAINT_NODE_UNREACHABLE),
  );
}

/**
 * The node's taints with the managed ones replaced: `managed` (the conditions' NoSchedule taints
 * and at most one NoExecute taint), the operator's kept in their order. A managed taint the node
 * has already keeps its timeAdded.
 */
export function withManagedTaints(node: Node, managed: readonly Taint[]): Taint[] {
  const current = node.spec.taints ?? [];
  const kept = current.filter((t) => !isManaged(t));
  const same = (a: Taint, b: Taint) => a.key === b.key && a.effect === b.effect;
  return [...kept, ...managed.map((t) => current.find((c) => same(c, t)) ?? t)];
}

/** Whether the taint is one this controller keeps (its key with an effect it gives that key). */
function isManaged(taint: Taint): boolean {
  if (taint.key === TAINT_NODE_NOT_READY || taint.key === TAINT_NODE_UNREACHABLE)
    return taint.effect === 'NoSchedule' || taint.effect === 'NoExecute';
  return MANAGED_TAINT_KEYS.has(taint.key) && taint.effect === 'NoSchedule';
}

export function sameTaints(a: readonly Taint[], b: readonly Taint[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (t, i) =>
        t.key === b[i]!.key &&
        t.effect === b[i]!.effect &&
        (t.value ?? '') === (b[i]!.value ?? '') &&
        (t.timeAdded ?? '') === (b[i]!.timeAdded ?? ''),
    )
  );
}

// ---- zones

export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const REGION_LABEL = 'topology.kubernetes.io/region';

/** The zone a node counts in (region and zone; '' for nodes without the labels). */
export function zoneOf(node: Node): string {
  const labels = node.metadata.labels ?? {};
  const region = labels[REGION_LABEL] ?? '';
  const zone = labels[ZONE_LABEL] ?? '';
  return region === '' && zone === '' ? '' : `${region}:\u0000:${zone}`;
}

export type ZoneState = 'Normal' | 'PartialDisruption' | 'FullDisruption';

/**
 * Kubernetes' computeZoneState: a zone none of whose nodes is Ready is fully disrupted; one with
 * more than two nodes not Ready that are at least `unhealthyThreshold` of it, partially.
 */
export function zoneState(ready: number, notReady: number, unhealthyThreshold: number): ZoneState {
  if (ready === 0 && notReady > 0) return 'FullDisruption';
  if (notReady > 2 && notReady / (ready + notReady) >= unhealthyThreshold) return 'PartialDisruption';
  return 'Normal';
}

export interface EvictionRates {
  /** Nodes tainted NoExecute per second in a healthy zone; default 0.1 (`--node-eviction-rate`). */
  rate: number;
  /** The same in a partially disrupted large zone; default 0.01 (`--secondary-node-eviction-rate`). */
  secondaryRate: number;
  /** The share of a zone's nodes not Ready at which it is partially disrupted; default 0.55. */
  unhealthyZoneThreshold: number;
  /** Zones up to this size stop tainting when partially disrupted; default 50. */
  largeClusterThreshold: number;
}

export const DEFAULT_EVICTION_RATES: EvictionRates = {
  rate: 0.1,
  secondaryRate: 0.01,
  unhealthyZoneThreshold: 0.55,
  largeClusterThreshold: 50,
};

/** Kubernetes' setLimiterInZone: how fast a zone in `state` may have its nodes tainted NoExecute. */
export function zoneRate(state: ZoneState, zoneSize: number, rates: EvictionRates): number {
  switch (state) {
    case 'Normal':
    case 'FullDisruption':
      return rates.rate;
    case 'PartialDisruption':
      return zoneSize > rates.largeClusterThreshold ? rates.secondaryRate : 0;
  }
}

/** A token bucket of burst 1: one taint at once, then one every 1/rate seconds. */
export class TaintLimiter {
  private lastTakenAt = -Infinity;

  constructor(private rate: number) {}

  /** A new rate counts from the last token taken (a slower rate makes the next one wait longer). */
  setRate(rate: number): void {
    this.rate = rate;
  }

  private get nextAt(): number {
    return this.lastTakenAt + 1000 / this.rate;
  }

  /** True when a taint may be added now (and takes the token); false when not yet. */
  tryTake(now: number): boolean {
    if (this.rate <= 0 || now < this.nextAt) return false;
    this.lastTakenAt = now;
    return true;
  }

  /** Milliseconds until the next token (undefined when the rate is zero). */
  waitMs(now: number): number | undefined {
    return this.rate <= 0 ? undefined : Math.max(0, this.nextAt - now);
  }
}

// ---- eviction of pods from NoExecute-tainted nodes

/**
 * When a pod on a node with these NoExecute taints is evicted, as Kubernetes' taint eviction
 * decides: at once when a taint is not tolerated; never when every taint is tolerated without
 * tolerationSeconds; otherwise the shortest tolerationSeconds of the tolerations used, counted
 * from when the last of the taints tolerated for a limited time was added (`addedAt` gives a
 * taint's time: its timeAdded, or when it was first seen). Returns ms since the epoch, or
 * undefined for never.
 */
export function evictionTime(
  pod: Pod,
  noExecuteTaints: readonly Taint[],
  addedAt: (taint: Taint) => number,
): number | undefined {
  const tolerations: readonly Toleration[] = pod.spec.tolerations ?? [];
  let seconds = Infinity;
  let since = 0;
  for (const taint of noExecuteTaints) {
    const used = tolerations.filter((t) => toleratesTaint(t, taint));
    if (used.length === 0) return 0;
    const limits = used
      .filter((t) => t.tolerationSeconds !== undefined)
      .map((t) => Math.max(0, t.tolerationSeconds!));
    if (limits.length === 0) continue; // tolerated for ever: no clock of its own
    seconds = Math.min(seconds, ...limits);
    since = Math.max(since, addedAt(taint));
  }
  return seconds === Infinity ? undefined : since + seconds * 1000;
}

/** A taint's timeAdded in ms, or undefined when it has none (or an unreadable one). */
export function taintAddedAt(taint: Taint): number | undefined {
  const parsed = Date.parse(taint.timeAdded ?? '');
  return Number.isNaN(parsed) ? undefined : parsed;
}
