/**
 * Builders of nodes and pods for the scheduler's tests and benchmarks: short to write, Kubernetes-
 * shaped, Ready nodes by default.
 */
import type {
  Affinity,
  Container,
  Node,
  Pod,
  Taint,
  Toleration,
  TopologySpreadConstraint,
} from '../../proto/gen/types.js';
import { NodeInfo } from './framework/node-info.js';
import { newPodInfo, podKey, type PodInfo } from './framework/pod-info.js';
import { CycleState, type FilterPlugin, type ScorePlugin, type Status } from './framework/types.js';
import type { Snapshot } from './framework/snapshot.js';
import { SchedulerCache } from './cache.js';
import { seededRandom } from '../../proto/support/seeded-random.js';
import { ManualClock } from '../../proto/informer/manual-clock.js';
import { NotFoundError } from '../../proto/errors.js';
import { Scheduler, type CycleOutcome, type SchedulerOptions } from './scheduler.js';

export interface NodeSpec {
  cpu?: string;
  memory?: string;
  pods?: number;
  ephemeralStorage?: string;
  extended?: Record<string, string>;
  labels?: Record<string, string>;
  taints?: Taint[];
  unschedulable?: boolean;
  /** Ready condition status; default 'True'; null: no Ready condition at all. */
  ready?: 'True' | 'False' | 'Unknown' | null;
  images?: { names: string[]; sizeBytes: number; layers?: string[] }[];
  zone?: string;
}

export function makeNode(name: string, spec: NodeSpec = {}): Node {
  const allocatable: Record<string, string> = {
    cpu: spec.cpu ?? '4',
    memory: spec.memory ?? '8Gi',
    pods: String(spec.pods ?? 110),
    ...(spec.ephemeralStorage === undefined ? {} : { 'ephemeral-storage': spec.ephemeralStorage }),
    ...spec.extended,
  };
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name, ...spec.labels };
  if (spec.zone !== undefined) labels['topology.kubernetes.io/zone'] = spec.zone;
  const ready = spec.ready === undefined ? 'True' : spec.ready;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels },
    spec: {
      ...(spec.taints === undefined ? {} : { taints: spec.taints }),
      ...(spec.unschedulable === undefined ? {} : { unschedulable: spec.unschedulable }),
    },
    status: {
      capacity: allocatable,
      allocatable,
      conditions: ready === null ? [] : [{ type: 'Ready', status: ready }],
      ...(spec.images === undefined ? {} : { images: spec.images }),
    },
  };
}

export interface PodSpecInput {
  namespace?: string;
  cpu?: string;
  memory?: string;
  requests?: Record<string, string>;
  labels?: Record<string, string>;
  nodeName?: string;
  priority?: number;
  preemptionPolicy?: string;
  tolerations?: Toleration[];
  nodeSelector?: Record<string, string>;
  affinity?: Affinity;
  topologySpreadConstraints?: TopologySpreadConstraint[];
  hostPorts?: number[];
  image?: string;
  initContainers?: Container[];
  overhead?: Record<string, string>;
  schedulerName?: string;
  schedulingGates?: string[];
  owner?: string;
  startTime?: string;
  deletionTimestamp?: string;
  nominatedNodeName?: string;
  uid?: string;
}

export function makePod(name: string, spec: PodSpecInput = {}): Pod {
  const requests: Record<string, string> = { ...spec.requests };
  if (spec.cpu !== undefined) requests.cpu = spec.cpu;
  if (spec.memory !== undefined) requests.memory = spec.memory;
  const container: Container = {
    name: 'main',
    image: spec.image ?? 'busybox:1',
    ...(Object.keys(requests).length > 0 ? { resources: { requests } } : {}),
    ...(spec.hostPorts === undefined
      ? {}
      : { ports: spec.hostPorts.map((port) => ({ containerPort: port, hostPort: port })) }),
  };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: spec.namespace ?? 'default',
      uid: spec.uid ?? `uid-${name}`,
      ...(spec.labels === undefined ? {} : { labels: spec.labels }),
      ...(spec.owner === undefined
        ? {}
        : {
            ownerReferences: [
              {
                apiVersion: 'apps/v1',
                kind: 'ReplicaSet',
                name: spec.owner,
                uid: `rs-${spec.owner}`,
                controller: true,
              },
            ],
          }),
      ...(spec.deletionTimestamp === undefined ? {} : { deletionTimestamp: spec.deletionTimestamp }),
    },
    spec: {
      containers: [container],
      schedulerName: spec.schedulerName ?? 'default-scheduler',
      priority: spec.priority ?? 0,
      ...(spec.preemptionPolicy === undefined ? {} : { preemptionPolicy: spec.preemptionPolicy }),
      ...(spec.nodeName === undefined ? {} : { nodeName: spec.nodeName }),
      ...(spec.tolerations === undefined ? {} : { tolerations: spec.tolerations }),
      ...(spec.nodeSelector === undefined ? {} : { nodeSelector: spec.nodeSelector }),
      ...(spec.affinity === undefined ? {} : { affinity: spec.affinity }),
      ...(spec.topologySpreadConstraints === undefined
        ? {}
        : { topologySpreadConstraints: spec.topologySpreadConstraints }),
      ...(spec.initContainers === undefined ? {} : { initContainers: spec.initContainers }),
      ...(spec.overhead === undefined ? {} : { overhead: spec.overhead }),
      ...(spec.schedulingGates === undefined
        ? {}
        : { schedulingGates: spec.schedulingGates.map((n) => ({ name: n })) }),
    },
    status: {
      phase: 'Pending',
      ...(spec.startTime === undefined ? {} : { startTime: spec.startTime }),
      ...(spec.nominatedNodeName === undefined ? {} : { nominatedNodeName: spec.nominatedNodeName }),
    },
  };
}

/** A NodeInfo of `node` with `pods` on it (generations from a throwaway counter). */
export function nodeInfoOf(node: Node, pods: Pod[] = []): NodeInfo {
  let generation = 0;
  const info = new NodeInfo(node.metadata.name!, { next: () => ++generation });
  info.setNode(node);
  for (const pod of pods)
    info.addPod(newPodInfo({ ...pod, spec: { ...pod.spec, nodeName: node.metadata.name! } }));
  return info;
}

/** A snapshot of nodes with the pods bound to them (pods with spec.nodeName). */
export function snapshotOf(nodes: Node[], pods: Pod[] = []): Snapshot {
  const cache = new SchedulerCache();
  for (const node of nodes) cache.addNode(node);
  for (const pod of pods) cache.addPod(pod);
  return cache.snapshot();
}

/** Runs a filter plugin's PreFilter then Filter for `pod` on every node of the snapshot. */
export function filterAll(
  plugin: FilterPlugin,
  pod: Pod,
  snapshot: Snapshot,
): Map<string, Status | undefined> {
  const state = new CycleState();
  const info = newPodInfo(pod);
  const pre = plugin.preFilter?.(state, info, snapshot);
  const result = new Map<string, Status | undefined>();
  for (const node of snapshot.nodes) {
    if (pre === 'skip') result.set(node.name, undefined);
    else if (pre !== undefined) result.set(node.name, pre);
    else result.set(node.name, plugin.filter(state, info, node));
  }
  return result;
}

/**
 * Runs a score plugin's PreScore, Score and Normalize for `pod` over the snapshot's nodes (all of
 * them feasible); undefined when PreScore skips.
 */
export function scoreAll(plugin: ScorePlugin, pod: Pod, snapshot: Snapshot): Map<string, number> | undefined {
  const state = new CycleState();
  const info = newPodInfo(pod);
  const nodes = snapshot.nodes;
  if (plugin.preScore?.(state, info, nodes, snapshot) === 'skip') return undefined;
  const scores = nodes.map((node) => plugin.score(state, info, node));
  plugin.normalize?.(state, info, nodes, scores);
  return new Map(nodes.map((node, i) => [node.name, scores[i]!]));
}

export function podInfo(pod: Pod): PodInfo {
  return newPodInfo(pod);
}

/**
 * A scheduler over an in-memory cluster: binds succeed (or fail as told) at once and come back
 * as the informer would bring them; reports and evictions are recorded. Cycles run when asked
 * (`cycle()` schedules every pod active now), on a manual clock.
 */
export class InMemoryCluster {
  readonly clock = new ManualClock();
  readonly scheduler: Scheduler;
  readonly pods = new Map<string, Pod>();
  readonly bound = new Map<string, string>();
  readonly messages = new Map<string, string>();
  readonly nominated = new Map<string, string>();
  readonly evicted: string[] = [];
  readonly outcomes: CycleOutcome[] = [];
  /** Set to make the next binds fail with this error. */
  bindError: Error | undefined;
  binds = 0;

  constructor(options: Partial<SchedulerOptions> = {}) {
    this.scheduler = new Scheduler({
      clock: this.clock,
      random: seededRandom(7),
      binder: {
        bind: async (pod, nodeName) => {
          this.binds++;
          if (this.bindError !== undefined) throw this.bindError;
          const key = podKey(pod);
          const current = this.pods.get(key);
          if (current === undefined) throw new NotFoundError(`pod ${key} not found`);
          const updated: Pod = { ...current, spec: { ...current.spec, nodeName } };
          this.pods.set(key, updated);
          this.bound.set(key, nodeName);
          this.scheduler.podUpdated(current, updated);
        },
      },
      reporter: {
        scheduled: () => {},
        unschedulable: (pod, message, { nominatedNodeName }) => {
          this.messages.set(podKey(pod), message);
          if (nominatedNodeName !== undefined) this.nominated.set(podKey(pod), nominatedNodeName);
        },
        failed: (pod, message) => {
          this.messages.set(podKey(pod), message);
        },
      },
      evictor: {
        evict: async (victim) => {
          this.evicted.push(podKey(victim));
        },
      },
      ...options,
    });
  }

  addNode(node: Node): void {
    this.scheduler.nodeAdded(node);
  }

  addPod(pod: Pod): void {
    this.pods.set(podKey(pod), pod);
    this.scheduler.podAdded(pod);
  }

  deletePod(key: string): void {
    const pod = this.pods.get(key);
    if (pod === undefined) return;
    this.pods.delete(key);
    this.bound.delete(key);
    this.scheduler.podDeleted(pod);
  }

  /** Marks a pod terminating, as a graceful delete does. */
  terminate(key: string): void {
    const pod = this.pods.get(key)!;
    const updated: Pod = { ...pod, metadata: { ...pod.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
    this.pods.set(key, updated);
    this.scheduler.podUpdated(pod, updated);
  }

  /** Schedules every pod active now, waits for their binds; returns this round's outcomes. */
  async cycle(): Promise<CycleOutcome[]> {
    const round: CycleOutcome[] = [];
    for (
      let queued = this.scheduler.queue.tryPop();
      queued !== undefined;
      queued = this.scheduler.queue.tryPop()
    ) {
      round.push(this.scheduler.scheduleQueued(queued));
    }
    await this.scheduler.drainBinds();
    this.outcomes.push(...round);
    return round;
  }
}
