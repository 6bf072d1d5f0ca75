/**
 * The DaemonSet controller runs one pod of each DaemonSet on every node it fits, as Kubernetes'
 * does: a pod per eligible node (nodeSelector, required node affinity, taints against the
 * template's tolerations plus the DaemonSet defaults), placed by the scheduler through a required
 * node affinity on `metadata.name`; a node that joins gets one, a node that stops fitting loses it.
 *
 *   reconcile(namespace/name):
 *     its pods (claimed), by node ─► per node: none but should run → create; more than one →
 *       delete the newest; should not run (an untolerated NoExecute taint, a selector no longer
 *       matched) → delete; Failed → delete (recreated on the next pass)
 *     RollingUpdate ─► pods of an older template (`controller-revision-hash`) are deleted, the
 *       unavailable first, the available as far as maxUnavailable allows (their replacements come
 *       from the pass above); OnDelete ─► old pods stay until someone deletes them
 *     ─► status: desired, current, misscheduled, ready, available, unavailable, updated
 *
 * An untolerated NoSchedule taint keeps a new pod off a node but lets one already there run on,
 * as Kubernetes has it. Creations are counted as expectations, so none is made twice.
 */
import { LeaderController, type LeaderControllerOptions } from '../support/leader-controller.js';
import { isDeepStrictEqual } from 'node:util';
import { ConflictError, NotFoundError, errorMessage } from '../../../proto/errors.js';
import type { DaemonSet, Node, Pod, Toleration } from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { labelSelectorFromObject } from '../../api/selectors.js';
import { RequiredNodeAffinity } from '../../scheduler/framework/node-affinity.js';
import { tolerationsTolerate } from '../../../proto/taints.js';
import { scaledValue } from '../deployment/rollout-math.js';
import { podAvailable, podReadySince } from '../replicaset/pod-ranking.js';
import { claimObjects, controllerRefOf, controllerReference } from '../support/claims.js';
import { Expectations } from '../support/expectations.js';
import { NAMESPACE_INDEX, indexByNamespace } from '../support/indexes.js';
import { templateHash } from '../support/template-hash.js';

export const REVISION_HASH_LABEL = 'controller-revision-hash';

/** What Kubernetes adds to every DaemonSet pod: it keeps running through the node's troubles. */
export const DAEMON_TOLERATIONS: readonly Toleration[] = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
];

export interface DaemonSetControllerOptions extends LeaderControllerOptions {
  daemonSets: Informer<DaemonSet>;
  pods: Informer<Pod>;
  nodes: Informer<Node>;
}

export class DaemonSetController extends LeaderController {
  private readonly expectations: Expectations;

  constructor(private readonly options: DaemonSetControllerOptions) {
    super(options, 'daemonset-controller', 2);
    this.expectations = new Expectations(this.clock);
    indexByNamespace(options.pods);
  }

  protected watch(): (() => void)[] {
    const { daemonSets, pods, nodes } = this.options;
    const enqueueAll = () => {
      for (const cached of daemonSets.list()) this.controller.enqueue(cached.key);
    };
    const removals = [
      daemonSets.onChange((key, change) => {
        if (change === 'deleted') this.expectations.forget(key);
        this.controller.enqueue(key);
      }),
      nodes.onChange(enqueueAll),
      pods.onChange((key, change, lastKnown) => {
        const pod = change === 'deleted' ? lastKnown?.object : pods.get(key)?.object;
        const ref = pod && controllerRefOf(pod, 'DaemonSet');
        if (pod === undefined || ref === undefined) return;
        const owner = `${pod.metadata.namespace}/${ref.name}`;
        if (change === 'added') this.expectations.creationObserved(owner);
        this.controller.enqueue(owner);
      }),
    ];
    enqueueAll();
    return removals;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const ds = this.options.daemonSets.get(key)?.object;
    if (ds === undefined) {
      this.expectations.forget(key);
      return;
    }
    const selector = labelSelectorFromObject(ds.spec.selector, 'spec.selector');
    const inNamespace = this.options.pods
      .byIndex(NAMESPACE_INDEX, ds.metadata.namespace ?? '')
      .map((cached) => cached.object)
      .filter((pod) => !pod.metadata.deletionTimestamp);
    const owned = await claimObjects(this.options.handlers, ds, selector, inNamespace);
    const hash = templateHash(ds.spec.template);
    const probe = daemonPod(ds, '', hash);
    const affinity = new RequiredNodeAffinity(probe);
    const now = this.clock.now();
    const minReady = ds.spec.minReadySeconds ?? 0;
    const byNode = new Map<string, Pod[]>();
    for (const pod of owned) {
      const node = targetNodeOf(pod);
      if (node === undefined) continue;
      byNode.set(node, [...(byNode.get(node) ?? []), pod]);
    }

    const create: string[] = [];
    const remove: Pod[] = [];
    const status = { desired: 0, current: 0, misscheduled: 0, ready: 0, available: 0, updated: 0 };
    const nodeNames = new Set<string>();
    const oldPods: Pod[] = [];
    for (const { object: node } of this.options.nodes.list()) {
      const name = node.metadata.name ?? '';
      nodeNames.add(name);
      const pods = (byNode.get(name) ?? []).sort((a, b) =>
        (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''),
      );
      const fits = affinity.matches(node);
      const taints = node.spec?.taints ?? [];
      const noExecute = taints.some(
        (t) => t.effect === 'NoExecute' && !tolerationsTolerate(probe.spec.tolerations, t),
      );
      const noSchedule = taints.some(
        (t) => t.effect === 'NoSchedule' && !tolerationsTolerate(probe.spec.tolerations, t),
      );
      const shouldRun = fits && !noExecute && !noSchedule;
      const mayContinue = fits && !noExecute;
      if (shouldRun) status.desired++;
      if (!mayContinue) {
        if (pods.length > 0) status.misscheduled++;
        remove.push(...pods);
        continue;
      }
      const failed = pods.filter((pod) => pod.status?.phase === 'Failed');
      remove.push(...failed);
      const live = pods.filter((pod) => pod.status?.phase !== 'Failed');
      if (live.length === 0) {
        if (shouldRun) create.push(name);
        continue;
      }
      if (shouldRun) status.current++;
      remove.push(...live.slice(1));
      const pod = live[0]!;
      if (podReadySince(pod).ready) status.ready++;
      if (podAvailable(pod, minReady, now)) status.available++;
      if (pod.metadata.labels?.[REVISION_HASH_LABEL] === hash) status.updated++;
      else oldPods.push(pod);
    }
    // pods for nodes that are gone
    for (const [node, pods] of byNode) if (!nodeNames.has(node)) remove.push(...pods);

    const needsSync = this.expectations.satisfied(key);
    let failure: unknown;
    if (needsSync && !ds.metadata.deletionTimestamp) {
      if (ds.spec.updateStrategy?.type !== 'OnDelete')
        remove.push(...this.rollingVictims(ds, oldPods, status, minReady, now));
      this.expectations.expectCreations(key, create.length);
      const results = await Promise.allSettled(create.map((node) => this.createPod(ds, node, hash)));
      results.forEach((result) => {
        if (result.status === 'rejected') {
          this.expectations.creationObserved(key);
          failure ??= result.reason;
        }
      });
      for (const pod of new Set(remove)) await this.deletePod(ds, pod);
    }
    await this.writeStatus(ds, status);
    if (failure !== undefined) {
      this.events.record(ds, 'Warning', 'FailedCreate', `Error creating: ${errorMessage(failure)}`);
      throw failure;
    }
    if (minReady > 0 && status.ready !== status.available) return { requeueAfterMs: minReady * 1000 };
    return undefined;
  }

  /** Old-template pods to replace now: the unavailable, then the available within maxUnavailable. */
  private rollingVictims(
    ds: DaemonSet,
    oldPods: Pod[],
    status: { desired: number; available: number },
    minReady: number,
    now: number,
  ): Pod[] {
    const maxUnavailable = scaledValue(
      ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable ?? 1,
      status.desired,
      true,
    );
    const unavailableNow = status.desired - status.available;
    const victims = oldPods.filter((pod) => !podAvailable(pod, minReady, now));
    let budget = maxUnavailable - unavailableNow;
    for (const pod of oldPods) {
      if (budget <= 0) break;
      if (victims.includes(pod)) continue;
      victims.push(pod);
      budget--;
    }
    return victims;
  }

  private async createPod(ds: DaemonSet, node: string, hash: string): Promise<void> {
    const created = (await this.options.handlers.create(daemonPod(ds, node, hash))).object as Pod;
    this.events.record(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name}`);
  }

  private async deletePod(ds: DaemonSet, pod: Pod): Promise<void> {
    try {
      await this.options.handlers.delete('Pod', pod.metadata.namespace ?? '', pod.metadata.name ?? '', {
        preconditions: { uid: pod.metadata.uid ?? '' },
      });
      this.events.record(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  private async writeStatus(
    ds: DaemonSet,
    s: {
      desired: number;
      current: number;
      misscheduled: number;
      ready: number;
      available: number;
      updated: number;
    },
  ): Promise<void> {
    const counts = {
      currentNumberScheduled: s.current,
      numberMisscheduled: s.misscheduled,
      desiredNumberScheduled: s.desired,
      numberReady: s.ready,
      observedGeneration: ds.metadata.generation ?? 0,
      updatedNumberScheduled: s.updated,
      numberAvailable: s.available,
      numberUnavailable: Math.max(0, s.desired - s.available),
    };
    // zeros left out, as the store leaves them out, so an unchanged status compares equal
    const status = Object.fromEntries(Object.entries(counts).filter(([, value]) => value !== 0));
    const { conditions: _conditions, ...previous } = ds.status ?? {};
    if (isDeepStrictEqual(previous, status)) return;
    try {
      await this.options.handlers.updateStatus({
        ...ds,
        status: { ...status, ...(ds.status?.conditions ? { conditions: ds.status.conditions } : {}) },
      });
    } catch (err) {
      // gone, or changed since the cached copy (the newer one brings another reconcile)
      if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
    }
  }
}

/** The node a DaemonSet pod is for: its node, or the one its required affinity names. */
function targetNodeOf(pod: Pod): string | undefined {
  if (pod.spec.nodeName) return pod.spec.nodeName;
  const terms =
    pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  for (const term of terms)
    for (const field of term.matchFields ?? [])
      if (field.key === 'metadata.name' && field.operator === 'In' && field.values?.length === 1)
        return field.values[0];
  return undefined;
}

/** The pod for `node` (with `node` empty: the template as eligibility reads it). */
function daemonPod(ds: DaemonSet, node: string, hash: string): Pod {
  const template = structuredClone(ds.spec.template ?? {});
  const spec = template.spec ?? { containers: [] };
  const tolerations = [...(spec.tolerations ?? [])];
  for (const toleration of DAEMON_TOLERATIONS)
    if (!tolerations.some((t) => t.key === toleration.key && t.effect === toleration.effect))
      tolerations.push(toleration);
  const affinity = node
    ? {
        ...spec.affinity,
        nodeAffinity: {
          ...spec.affinity?.nodeAffinity,
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }],
          },
        },
      }
    : spec.affinity;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${ds.metadata.name}-`,
      namespace: ds.metadata.namespace ?? '',
      labels: { ...template.metadata?.labels, [REVISION_HASH_LABEL]: hash },
      ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
      ownerReferences: [controllerReference(ds)],
    },
    spec: { ...spec, tolerations, ...(affinity ? { affinity } : {}) },
  };
}
