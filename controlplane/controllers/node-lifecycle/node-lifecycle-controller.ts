/**
 * The node lifecycle controller, as Kubernetes' (nodelifecycle and taint eviction) does it, on
 * the Ready condition the status ingest keeps (a node silent past the grace is Ready=Unknown):
 *
 *   node conditions      → NoSchedule taints: not-ready (Ready False), unreachable (Unknown),
 *                          memory/disk/pid-pressure, network-unavailable, unschedulable (cordoned)
 *   node not Ready       → the not-ready or unreachable NoExecute taint, added at most
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
import type { Condition, Node, Pod, Taint } from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { rfc3339Seconds } from '../../../proto/support/kube-time.js';
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
  /** How often the zones are counted again; default 5 s (Kubernetes' --node-monitor-period). */
  monitorPeriodMs?: number;
}

const NODE_PREFIX = 'node/';
const POD_PREFIX = 'pod/';

export class NodeLifecycleController extends LeaderController {
  private readonly rates: EvictionRates;
  private readonly zones = new Map<string, { state: ZoneState; limiter: TaintLimiter }>();
  /** Every zone fully disrupted: no node is tainted NoExecute (and none keeps such a taint). */
  private everyZoneDown = false;
  /** The Ready transition time of the outage whose pods were marked not ready, per node. */
  private readonly podsMarkedNotReady = new Map<string, string>();
  /** When this term first saw a NoExecute taint without timeAdded, per node. */
  private readonly untimedTaintSeen = new Map<string, number>();
  private monitor: { cancel(): void } | undefined;
  private stopped = false;

  constructor(private readonly options: NodeLifecycleOptions) {
    super(options, 'node-controller', 4);
    this.rates = { ...DEFAULT_EVICTION_RATES, ...options.rates };
    indexByNodeName(options.pods);
  }

  protected watch(): (() => void)[] {
    const { nodes, pods } = this.options;
    const removals = [
      nodes.onChange((key, change, before) => {
        this.controller.enqueue(NODE_PREFIX + key);
        if (change === 'deleted') return;
        const now = nodes.get(key)?.object;
        const noExecute = (node: Node | undefined) =>
          JSON.stringify((node?.spec.taints ?? []).filter((t) => t.effect === 'NoExecute'));
        if (now !== undefined && noExecute(now) !== noExecute(before?.object)) this.enqueuePodsOf(key);
      }),
      pods.onChange((key, change) => {
        if (change === 'deleted') return;
        const nodeName = pods.get(key)?.object.spec.nodeName;
        const node = nodeName ? nodes.get(nodeName)?.object : undefined;
        if (node?.spec.taints?.some((t) => t.effect === 'NoExecute'))
          this.controller.enqueue(POD_PREFIX + key);
      }),
    ];
    this.countZones();
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

  private scheduleMonitor(): void {
    if (this.stopped) return;
    this.monitor = this.clock.setTimeout(() => {
      this.countZones();
      // nodes whose taints may have to change: those not Ready, and those with managed taints
      for (const { key, object: node } of this.options.nodes.list()) {
        if (
          readinessOf(node) !== 'True' ||
          !sameTaints(withManagedTaints(node, noScheduleTaints(node)), node.spec.taints ?? [])
        )
          this.controller.enqueue(NODE_PREFIX + key);
      }
      this.scheduleMonitor();
    }, this.options.monitorPeriodMs ?? 5000);
  }

  /** Each zone's state from its nodes' readiness, and the rate its nodes may be tainted at. */
  private countZones(): void {
    const counts = new Map<string, { ready: number; notReady: number }>();
    for (const { object: node } of this.options.nodes.list()) {
      const zone = zoneOf(node);
      const count = counts.get(zone) ?? { ready: 0, notReady: 0 };
      if (readinessOf(node) === 'True') count.ready++;
      else count.notReady++;
      counts.set(zone, count);
    }
    const states = new Map(
      [...counts].map(([zone, c]) => [
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
    const now = this.clock.now();
    for (const [zone, state] of states) {
      const count = counts.get(zone)!;
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
        known.limiter.setRate(rate, now);
      }
    }
    for (const zone of [...this.zones.keys()]) if (!states.has(zone)) this.zones.delete(zone);
  }

  private async reconcileNode(name: string): Promise<ReconcileResult> {
    const node = this.options.nodes.get(name)?.object;
    if (node === undefined) {
      this.podsMarkedNotReady.delete(name);
      this.untimedTaintSeen.delete(name);
      return;
    }
    if (readinessOf(node) === 'Unknown') await this.markPodsNotReady(node);
    const managed = noScheduleTaints(node);
    const wanted = wantedNoExecuteKey(node);
    const current = currentNoExecuteTaint(node);
    let result: ReconcileResult = undefined;
    if (wanted !== undefined && !this.everyZoneDown) {
      const now = this.clock.now();
      if (current?.key === wanted) managed.push(current);
      // not-ready ↔ unreachable: swapped without waiting for the zone's rate
      else if (current !== undefined || this.zoneLimiter(node).tryTake(now))
        managed.push({ key: wanted, effect: 'NoExecute', timeAdded: rfc3339Seconds(new Date(now)) });
      else {
        const wait = this.zoneLimiter(node).waitMs(now);
        if (wait !== undefined) result = { requeueAfterMs: Math.max(wait, 100) };
      }
    }
    const taints = withManagedTaints(node, managed);
    if (sameTaints(taints, node.spec.taints ?? [])) return result;
    const added = taints.find((t) => t.effect === 'NoExecute' && t !== current && t.key === wanted);
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
    return result;
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
   * truth again when the node returns (the status ingest asks it to).
   */
  private async markPodsNotReady(node: Node): Promise<void> {
    const name = node.metadata.name!;
    const outage = node.status?.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime ?? '';
    if (this.podsMarkedNotReady.get(name) === outage) return;
    const at = rfc3339Seconds(new Date(this.clock.now()));
    const writes = this.options.pods
      .byIndex(NODE_NAME_INDEX, name)
      .map((cached) => cached.object)
      .filter((pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
      .map((pod) => ({
        namespace: pod.metadata.namespace ?? '',
        name: pod.metadata.name ?? '',
        uid: pod.metadata.uid ?? '',
        status: {
          ...pod.status,
          conditions: (pod.status?.conditions ?? []).map((c): Condition =>
            c.type === 'Ready'
              ? { ...c, status: 'False', reason: 'NodeNotReady', lastTransitionTime: at }
              : c,
          ),
        },
        accept: (stored: Pod) => stored.spec.nodeName === name,
      }));
    const outcomes = await this.options.handlers.updatePodStatuses(writes);
    const failed = outcomes.find((o): o is Error => o instanceof Error);
    if (failed !== undefined) throw failed;
    if (writes.length > 0)
      this.options.log.info(
        { node: name, pods: writes.length },
        'node is unreachable: its pods marked not ready',
      );
    this.podsMarkedNotReady.set(name, outage);
  }

  private async reconcilePod(key: string): Promise<ReconcileResult> {
    const pod = this.options.pods.get(key)?.object;
    if (pod === undefined || pod.metadata.deletionTimestamp || !pod.spec.nodeName) return;
    const nodeName = pod.spec.nodeName;
    const node = this.options.nodes.get(nodeName)?.object;
    const noExecute = (node?.spec.taints ?? []).filter((t) => t.effect === 'NoExecute');
    if (noExecute.length === 0) {
      this.untimedTaintSeen.delete(nodeName);
      return;
    }
    const now = this.clock.now();
    if (!this.untimedTaintSeen.has(nodeName)) this.untimedTaintSeen.set(nodeName, now);
    const due = evictionTime(pod, noExecute, this.untimedTaintSeen.get(nodeName)!);
    if (due === undefined) return;
    if (due > now) return { requeueAfterMs: due - now };
    await this.evict(pod, noExecute);
  }

  /** The DisruptionTarget condition, then a graceful delete of that very pod (its uid). */
  private async evict(pod: Pod, taints: readonly Taint[]): Promise<void> {
    const namespace = pod.metadata.namespace ?? '';
    const name = pod.metadata.name ?? '';
    const uid = pod.metadata.uid ?? '';
    const at = rfc3339Seconds(new Date(this.clock.now()));
    const conditions = (pod.status?.conditions ?? []).filter((c) => c.type !== 'DisruptionTarget');
    conditions.push({
      type: 'DisruptionTarget',
      status: 'True',
      reason: 'DeletionByTaintManager',
      message: 'Taint manager: deleting due to NoExecute taint',
      lastTransitionTime: at,
    });
    const [outcome] = await this.options.handlers.updatePodStatuses([
      { namespace, name, uid, status: { ...pod.status, conditions } },
    ]);
    if (outcome === 'gone') return;
    if (outcome instanceof Error) throw outcome;
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
