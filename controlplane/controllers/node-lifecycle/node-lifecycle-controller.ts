/**
 * The node lifecycle controller, as Kubernetes' (nodelifecycle and taint eviction) does it, on
 * the Ready condition the status ingest keeps (a node silent past the grace is Ready=Unknown):
 *
 *   node conditions      → NoSchedule taints: not-ready (Ready False), unreachable (Unknown),
 *                          memory/disk/pid-pressure, network-unavailable, unschedulable (cordoned)
 *   node not Ready       → the not-ready or unreachable NoExecute taint, once it has been so for
 *                          a monitor period (the status ingest marks silent nodes one by one:
 *                          all of them are counted before any is tainted), at most
 *                          `rate` nodes a second per zone (slower or not at all in a zone where
 *                          most nodes are down; none while every node of the cluster is down, when
 *                          the control plane is more likely the one cut off), removed at once
 *                          when the node is Ready again
 *   node Unknown         → its pods' Ready condition False (their Services stop sending to them)
 *   NoExecute taint      → pods that do not tolerate it are evicted at once; pods that tolerate
 *                          it for tolerationSeconds (300 s by default: the API adds them), then;
 *                          pods that tolerate it with no limit (DaemonSets') stay
 *
 * An evicted pod gets the DisruptionTarget condition and is deleted gracefully: its controller
 * replaces it elsewhere at once, and the node's agent, if it comes back, stops it and confirms.
 *
 * Keys of the work queue: `node/<name>` and `pod/<namespace>/<name>`.
 */
import { NotFoundError } from '../../../proto/errors.js';
import type { Node, Pod, Taint } from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { rfc3339Seconds } from '../../../proto/support/kube-time.js';
import { withDefaultTolerations } from '../../../proto/taints.js';
import { LeaderController, type LeaderControllerOptions } from '../support/leader-controller.js';
import { NODE_NAME_INDEX, indexByNodeName } from '../support/indexes.js';
import {
  DEFAULT_EVICTION_RATES,
  TaintLimiter,
  currentNoExecuteTaint,
  evictionTime,
  noScheduleTaints,
  readinessOf,
  sameTaints,
  taintAddedAt,
  wantedNoExecuteKey,
  withManagedTaints,
  zoneOf,
  zoneRate,
  zoneState,
  type EvictionRates,
  type ZoneState,
} from './node-health.js';

export interface NodeLifecycleOptions extends LeaderControllerOptions {
  nodes: Informer<Node>;
  pods: Informer<Pod>;
  rates?: Partial<EvictionRates>;
  /** What pods stored without the API's default tolerations tolerate; default 300 s each. */
  defaultTolerationSeconds?: { notReady?: number; unreachable?: number };
  /** How often the nodes are looked at again; default 5 s (Kubernetes' --node-monitor-period). */
  monitorPeriodMs?: number;
}

const NODE_PREFIX = 'node/';
const POD_PREFIX = 'pod/';

interface ZoneCount {
  ready: number;
  notReady: number;
}

export class NodeLifecycleController extends LeaderController {
  private readonly rates: EvictionRates;
  private readonly defaultSeconds: { notReady: number; unreachable: number };
  private readonly monitorPeriodMs: number;
  /** Nodes Ready and not, per zone, kept from every node change (what a taint is decided on). */
  private readonly zoneCounts = new Map<string, ZoneCount>();
  private readonly zones = new Map<string, { state: ZoneState; limiter: TaintLimiter }>();
  /** Every zone fully disrupted: no node is tainted NoExecute (and none keeps such a taint). */
  private everyZoneDown = false;
  /** The Ready transition time of the outage whose pods were marked not ready, per node. */
  private readonly podsMarkedNotReady = new Map<string, string>();
  /** When this term first saw each NoExecute taint without timeAdded (`node|key|effect`). */
  private readonly untimedTaintSeen = new Map<string, number>();
  private monitor: { cancel(): void } | undefined;
  private stopped = false;

  constructor(private readonly options: NodeLifecycleOptions) {
    super(options, 'node-controller', 4);
    this.rates = { ...DEFAULT_EVICTION_RATES, ...options.rates };
    this.defaultSeconds = {
      notReady: options.defaultTolerationSeconds?.notReady ?? 300,
      unreachable: options.defaultTolerationSeconds?.unreachable ?? 300,
    };
    this.monitorPeriodMs = options.monitorPeriodMs ?? 5000;
    indexByNodeName(options.pods);
  }

  protected watch(): (() => void)[] {
    const { nodes, pods } = this.options;
    const removals = [
      nodes.onChange((key, change, before) => {
        const after = change === 'deleted' ? undefined : nodes.get(key)?.object;
        if (change === 'deleted' || change === 'modified') this.countNode(before?.object, -1);
        if (change === 'added' || change === 'modified') this.countNode(after, +1);
        this.controller.enqueue(NODE_PREFIX + key);
        if (after === undefined) return;
        const noExecute = (node: Node | undefined) =>
          JSON.stringify((node?.spec.taints ?? []).filter((t) => t.effect === 'NoExecute'));
        if (noExecute(after) !== noExecute(before?.object)) this.enqueuePodsOf(key);
      }),
      pods.onChange((key, change) => {
        if (change === 'deleted') return;
        const nodeName = pods.get(key)?.object.spec.nodeName;
        const node = nodeName ? nodes.get(nodeName)?.object : undefined;
        if (node?.spec.taints?.some((t) => t.effect === 'NoExecute'))
          this.controller.enqueue(POD_PREFIX + key);
      }),
    ];
    for (const { object } of nodes.list()) this.countNode(object, +1);
    this.refreshZones();
    for (const cached of nodes.list()) this.controller.enqueue(NODE_PREFIX + cached.key);
    this.scheduleMonitor();
    return removals;
  }

  override async stop(): Promise<void> {
    this.stopped = true;
    this.monitor?.cancel();
    await super.stop();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    if (key.startsWith(NODE_PREFIX)) return this.reconcileNode(key.slice(NODE_PREFIX.length));
    if (key.startsWith(POD_PREFIX)) return this.reconcilePod(key.slice(POD_PREFIX.length));
  }

  private countNode(node: Node | undefined, by: 1 | -1): void {
    if (node === undefined) return;
    const zone = zoneOf(node);
    const count = this.zoneCounts.get(zone) ?? { ready: 0, notReady: 0 };
    if (readinessOf(node) === 'True') count.ready += by;
    else count.notReady += by;
    if (count.ready <= 0 && count.notReady <= 0) this.zoneCounts.delete(zone);
    else this.zoneCounts.set(zone, count);
  }

  private scheduleMonitor(): void {
    if (this.stopped) return;
    this.monitor = this.clock.setTimeout(() => {
      this.refreshZones();
      // nodes whose taints may have to change: those not Ready, and those with managed taints
      for (const { key, object: node } of this.options.nodes.list()) {
        if (
          readinessOf(node) !== 'True' ||
          !sameTaints(withManagedTaints(node, noScheduleTaints(node)), node.spec.taints ?? [])
        )
          this.controller.enqueue(NODE_PREFIX + key);
      }
      this.scheduleMonitor();
    }, this.monitorPeriodMs);
  }

  /** Each zone's state from the counts, and the rate its nodes may be tainted at. */
  private refreshZones(): void {
    const states = new Map(
      [...this.zoneCounts].map(([zone, c]) => [
        zone,
        zoneState(c.ready, c.notReady, this.rates.unhealthyZoneThreshold),
      ]),
    );
    const everyZoneDown = states.size > 0 && [...states.values()].every((s) => s === 'FullDisruption');
    if (everyZoneDown !== this.everyZoneDown) {
      if (everyZoneDown)
        this.options.log.warn(
          { nodes: this.options.nodes.list().length },
          'no node is Ready: evicting nothing (the control plane may be the one cut off from them)',
        );
      else this.options.log.info('nodes are Ready again: evictions resume');
      this.everyZoneDown = everyZoneDown;
    }
    for (const [zone, state] of states) {
      const count = this.zoneCounts.get(zone)!;
      const rate = everyZoneDown ? 0 : zoneRate(state, count.ready + count.notReady, this.rates);
      const known = this.zones.get(zone);
      if (known === undefined) this.zones.set(zone, { state, limiter: new TaintLimiter(rate) });
      else {
        if (known.state !== state)
          this.options.log.info(
            { zone: zone || '(none)', from: known.state, to: state },
            'zone state changed',
          );
        known.state = state;
        known.limiter.setRate(rate);
      }
    }
    for (const zone of [...this.zones.keys()]) if (!states.has(zone)) this.zones.delete(zone);
  }

  private async reconcileNode(name: string): Promise<ReconcileResult> {
    const node = this.options.nodes.get(name)?.object;
    if (node === undefined) {
      this.podsMarkedNotReady.delete(name);
      this.forgetUntimedTaints(name, []);
      return;
    }
    this.forgetUntimedTaints(name, node.spec.taints ?? []);
    const managed = noScheduleTaints(node);
    const wanted = wantedNoExecuteKey(node);
    const current = currentNoExecuteTaint(node);
    const now = this.clock.now();
    let result: ReconcileResult = undefined;
    if (wanted !== undefined) {
      this.refreshZones(); // from the counts as they are now, not as of the last monitor pass
      const notReadyFor = now - (Date.parse(this.readyCondition(node)?.lastTransitionTime ?? '') || 0);
      if (this.everyZoneDown) {
        // none, and none kept
      } else if (current?.key === wanted) {
        managed.push(current);
      } else if (current !== undefined) {
        // not-ready <-> unreachable: swapped at once, the eviction clock kept
        managed.push({
          key: wanted,
          effect: 'NoExecute',
          timeAdded: current.timeAdded ?? rfc3339Seconds(new Date(now)),
        });
      } else if (notReadyFor < this.monitorPeriodMs) {
        // other nodes of the same outage may not be marked yet: count them first
        result = { requeueAfterMs: this.monitorPeriodMs - notReadyFor };
      } else if (this.zoneLimiter(node).tryTake(now)) {
        managed.push({ key: wanted, effect: 'NoExecute', timeAdded: rfc3339Seconds(new Date(now)) });
      } else {
        const wait = this.zoneLimiter(node).waitMs(now);
        if (wait !== undefined) result = { requeueAfterMs: Math.max(wait, 100) };
      }
    }
    const taints = withManagedTaints(node, managed);
    if (!sameTaints(taints, node.spec.taints ?? [])) {
      const added = taints.find((t) => t.effect === 'NoExecute' && t.key === wanted && t !== current);
      if (added !== undefined)
        this.options.log.warn({ node: name, taint: added.key }, 'node is not Ready: tainting it NoExecute');
      else if (current !== undefined && !taints.includes(current))
        this.options.log.info({ node: name, taint: current.key }, 'removing the NoExecute taint');
      try {
        await this.options.handlers.update({ ...node, spec: { ...node.spec, taints } });
      } catch (err) {
        if (err instanceof NotFoundError) return;
        throw err;
      }
    }
    if (readinessOf(node) === 'Unknown') await this.markPodsNotReady(node);
    return result;
  }

  private readyCondition(node: Node) {
    return node.status?.conditions?.find((c) => c.type === 'Ready');
  }

  private zoneLimiter(node: Node): TaintLimiter {
    const zone = zoneOf(node);
    let known = this.zones.get(zone);
    if (known === undefined) {
      known = { state: 'Normal', limiter: new TaintLimiter(this.everyZoneDown ? 0 : this.rates.rate) };
      this.zones.set(zone, known);
    }
    return known.limiter;
  }

  private enqueuePodsOf(nodeName: string): void {
    for (const cached of this.options.pods.byIndex(NODE_NAME_INDEX, nodeName))
      this.controller.enqueue(POD_PREFIX + cached.key);
  }

  /**
   * Once per outage (the Ready condition's transition), every pod on the node that is Ready is
   * written not Ready: nothing on an unreachable node should get traffic. The agent reports the
   * truth again when the node returns (the status ingest asks it to). The node is read again from
   * the store first, and each pod written over the copy it was decided on (a compare-and-swap),
   * so a node that came back meanwhile, or a status reported meanwhile, is not overwritten.
   */
  private async markPodsNotReady(node: Node): Promise<void> {
    const name = node.metadata.name!;
    const outage = this.readyCondition(node)?.lastTransitionTime ?? '';
    if (this.podsMarkedNotReady.get(name) === outage) return;
    const stored = (await this.options.handlers.get('Node', '', name)).object as Node;
    const storedReady = this.readyCondition(stored);
    if (storedReady?.status !== 'Unknown' || (storedReady.lastTransitionTime ?? '') !== outage) return;
    const at = rfc3339Seconds(new Date(this.clock.now()));
    let marked = 0;
    for (const { object: pod } of this.options.pods.byIndex(NODE_NAME_INDEX, name)) {
      if (!pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) continue;
      await this.writePodConditions(pod, (conditions) =>
        conditions.map((c) =>
          c.type === 'Ready' ? { ...c, status: 'False', reason: 'NodeNotReady', lastTransitionTime: at } : c,
        ),
      );
      marked++;
    }
    if (marked > 0)
      this.options.log.info({ node: name, pods: marked }, 'node is unreachable: its pods marked not ready');
    this.podsMarkedNotReady.set(name, outage);
  }

  /**
   * Writes the pod's status with its conditions changed, over the copy the informer holds (its
   * resourceVersion): a ConflictError when it changed since, and the key is tried again.
   */
  private async writePodConditions(
    pod: Pod,
    change: (
      conditions: NonNullable<NonNullable<Pod['status']>['conditions']>,
    ) => NonNullable<NonNullable<Pod['status']>['conditions']>,
  ): Promise<boolean> {
    try {
      await this.options.handlers.updateStatus({
        ...pod,
        status: { ...pod.status, conditions: change(pod.status?.conditions ?? []) },
      });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  private forgetUntimedTaints(nodeName: string, taints: readonly Taint[]): void {
    for (const key of this.untimedTaintSeen.keys()) {
      if (!key.startsWith(`${nodeName}|`)) continue;
      if (!taints.some((t) => key === untimedKey(nodeName, t))) this.untimedTaintSeen.delete(key);
    }
  }

  private async reconcilePod(key: string): Promise<ReconcileResult> {
    const cached = this.options.pods.get(key)?.object;
    if (cached === undefined || cached.metadata.deletionTimestamp || !cached.spec.nodeName) return;
    const nodeName = cached.spec.nodeName;
    const node = this.options.nodes.get(nodeName)?.object;
    const noExecute = (node?.spec.taints ?? []).filter((t) => t.effect === 'NoExecute');
    if (noExecute.length === 0) return;
    const now = this.clock.now();
    // a pod stored before the API added the default tolerations is given them here
    const pod: Pod = {
      ...cached,
      spec: {
        ...cached.spec,
        tolerations: withDefaultTolerations(cached.spec.tolerations, this.defaultSeconds),
      },
    };
    const due = evictionTime(pod, noExecute, (taint) => {
      const added = taintAddedAt(taint);
      if (added !== undefined) return added;
      const seen = untimedKey(nodeName, taint);
      if (!this.untimedTaintSeen.has(seen)) this.untimedTaintSeen.set(seen, now);
      return this.untimedTaintSeen.get(seen)!;
    });
    if (due === undefined) return;
    if (due > now) return { requeueAfterMs: due - now };
    await this.evict(cached, noExecute);
  }

  /** The DisruptionTarget condition, then a graceful delete of that very pod (its uid). */
  private async evict(pod: Pod, taints: readonly Taint[]): Promise<void> {
    const namespace = pod.metadata.namespace ?? '';
    const name = pod.metadata.name ?? '';
    const uid = pod.metadata.uid ?? '';
    const at = rfc3339Seconds(new Date(this.clock.now()));
    const written = await this.writePodConditions(pod, (conditions) => [
      ...conditions.filter((c) => c.type !== 'DisruptionTarget'),
      {
        type: 'DisruptionTarget',
        status: 'True',
        reason: 'DeletionByTaintManager',
        message: 'Taint manager: deleting due to NoExecute taint',
        lastTransitionTime: at,
      },
    ]);
    if (!written) return;
    try {
      await this.options.handlers.delete('Pod', namespace, name, { preconditions: { uid } });
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    const taintNames = taints.map((t) => `${t.key}:${t.effect}`).join(', ');
    this.options.log.info(
      { pod: `${namespace}/${name}`, node: pod.spec.nodeName, taints: taintNames },
      'evicting pod',
    );
    this.events.record(
      { kind: 'Pod', apiVersion: 'v1', namespace, name, uid },
      'Normal',
      'TaintManagerEviction',
      `Marking for deletion Pod ${namespace}/${name}`,
    );
  }
}

function untimedKey(nodeName: string, taint: Taint): string {
  return `${nodeName}|${taint.key}|${taint.effect}`;
}
