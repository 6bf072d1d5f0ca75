/**
 * NodeInfo: a node and what is placed on it, as the scheduler counts it — allocatable and
 * requested resources as integers, the pods (PodInfo), the host ports they use, the images the node
 * holds (from node.status.images) — with a generation bumped on every change, so that a snapshot
 * copies only the NodeInfos that changed since it last looked.
 *
 * A NodeInfo may exist without its Node: pods bound to a node the scheduler has not seen yet are
 * counted on it and show once the node arrives (snapshots leave such NodeInfos out).
 */
import type { Node, Taint } from '../../../proto/gen/types.js';
import type { HostPort, PodInfo } from './pod-info.js';
import { addResources, copyResources, emptyResources, nodeAllocatable, type Resources } from './resources.js';
import { normalizedImageName } from './pod-info.js';
import { TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE } from '../../../proto/taints.js';

/** A source of NodeInfo generations shared by one cache: every change takes the next number. */
export interface GenerationSource {
  next(): number;
}

const WILDCARD_IP = '0.0.0.0';

const NOT_READY: Taint = Object.freeze({ key: TAINT_NODE_NOT_READY, effect: 'NoSchedule' });
const UNREACHABLE: Taint = Object.freeze({ key: TAINT_NODE_UNREACHABLE, effect: 'NoSchedule' });

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  if (a === b) return true;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) if (a[key] !== b[key]) return false;
  return true;
}

function readinessTaintOf(node: Node): Taint | undefined {
  const ready = node.status?.conditions?.find((condition) => condition.type === 'Ready');
  if (ready?.status === 'True') return undefined;
  return ready?.status === 'Unknown' ? UNREACHABLE : NOT_READY;
}

/** Host ports in use on a node, by `protocol/port`, each with the addresses bound (counted). */
export class HostPorts {
  private readonly byPort = new Map<string, Map<string, number>>();

  get size(): number {
    return this.byPort.size;
  }

  add(port: HostPort): void {
    const key = `${port.protocol}/${port.port}`;
    let ips = this.byPort.get(key);
    if (ips === undefined) this.byPort.set(key, (ips = new Map()));
    ips.set(port.ip, (ips.get(port.ip) ?? 0) + 1);
  }

  remove(port: HostPort): void {
    const key = `${port.protocol}/${port.port}`;
    const ips = this.byPort.get(key);
    const count = ips?.get(port.ip);
    if (ips === undefined || count === undefined) return;
    if (count > 1) ips.set(port.ip, count - 1);
    else {
      ips.delete(port.ip);
      if (ips.size === 0) this.byPort.delete(key);
    }
  }

  /**
   * Whether `port` conflicts with one in use: the same protocol and port on the same address, or
   * on any address when either side binds 0.0.0.0.
   */
  conflicts(port: HostPort): boolean {
    const ips = this.byPort.get(`${port.protocol}/${port.port}`);
    if (ips === undefined) return false;
    if (port.ip === WILDCARD_IP) return true;
    return ips.has(port.ip) || ips.has(WILDCARD_IP);
  }

  clone(): HostPorts {
    const copy = new HostPorts();
    for (const [key, ips] of this.byPort) copy.byPort.set(key, new Map(ips));
    return copy;
  }
}

export class NodeInfo {
  node: Node | undefined;
  /** The node's labels ({} when it has none or is not known). */
  labels: Readonly<Record<string, string>> = {};
  taints: readonly Taint[] = [];
  /** spec.unschedulable (cordoned). */
  unschedulable = false;
  /**
   * The taint the node's Ready condition stands for, as Kubernetes' node lifecycle controller
   * would set it: `node.kubernetes.io/not-ready:NoSchedule` when Ready is False or not reported,
   * `node.kubernetes.io/unreachable:NoSchedule` when Unknown; undefined when Ready is True.
   */
  readinessTaint: Taint | undefined = undefined;
  /** Whether any taint has effect PreferNoSchedule (TaintToleration scores only such nodes). */
  hasPreferNoScheduleTaint = false;
  allocatable: Resources = emptyResources();
  /** The sum of the requests of the pods on the node. */
  requested: Resources = emptyResources();
  /** cpu and memory requested, with defaults for containers that name none (scoring only). */
  nonZeroMilliCpu = 0;
  nonZeroMemory = 0;
  pods: PodInfo[] = [];
  usedPorts = new HostPorts();
  /** Normalised image name → size in bytes, from node.status.images. */
  images = new Map<string, number>();
  /** Digests of the image layers the node holds (skiff's ContainerImage.layers). */
  layers = new Set<string>();
  generation: number;

  constructor(
    readonly name: string,
    private readonly generations: GenerationSource,
  ) {
    this.generation = generations.next();
  }

  private touch(): void {
    this.generation = this.generations.next();
  }

  setNode(node: Node): void {
    this.node = node;
    // The same labels keep the same object: the snapshot then re-counts only the pods that changed.
    const labels = node.metadata.labels ?? {};
    if (!sameLabels(this.labels, labels)) this.labels = labels;
    this.taints = node.spec.taints ?? [];
    this.unschedulable = node.spec.unschedulable === true;
    this.readinessTaint = readinessTaintOf(node);
    this.hasPreferNoScheduleTaint = this.taints.some((taint) => taint.effect === 'PreferNoSchedule');
    this.allocatable = nodeAllocatable(node);
    this.images = new Map();
    this.layers = new Set();
    for (const image of node.status?.images ?? []) {
      for (const name of image.names ?? []) this.images.set(normalizedImageName(name), image.sizeBytes ?? 0);
      for (const layer of image.layers ?? []) this.layers.add(layer);
    }
    this.touch();
  }

  /** Forgets the Node but keeps its pods, which stay counted should it come back. */
  removeNode(): void {
    this.node = undefined;
    this.labels = {};
    this.taints = [];
    this.unschedulable = false;
    this.readinessTaint = undefined;
    this.hasPreferNoScheduleTaint = false;
    this.allocatable = emptyResources();
    this.images = new Map();
    this.layers = new Set();
    this.touch();
  }

  addPod(pod: PodInfo): void {
    this.pods.push(pod);
    addResources(this.requested, pod.requests);
    this.nonZeroMilliCpu += pod.nonZeroMilliCpu;
    this.nonZeroMemory += pod.nonZeroMemory;
    for (const port of pod.hostPorts) this.usedPorts.add(port);
    this.touch();
  }

  /** Removes the pod of this key; false when it is not on the node. */
  removePod(key: string): boolean {
    const index = this.pods.findIndex((pod) => pod.key === key);
    if (index === -1) return false;
    const pod = this.pods[index]!;
    this.pods[index] = this.pods[this.pods.length - 1]!;
    this.pods.pop();
    addResources(this.requested, pod.requests, -1);
    this.nonZeroMilliCpu -= pod.nonZeroMilliCpu;
    this.nonZeroMemory -= pod.nonZeroMemory;
    for (const port of pod.hostPorts) this.usedPorts.remove(port);
    this.touch();
    return true;
  }

  /** A copy whose pod list, resources and ports may change without touching this one. */
  clone(): NodeInfo {
    const copy = Object.create(NodeInfo.prototype) as NodeInfo;
    Object.assign(copy, this);
    copy.requested = copyResources(this.requested);
    copy.pods = [...this.pods];
    copy.usedPorts = this.usedPorts.clone();
    // node, labels, taints, allocatable, images and layers are replaced, never changed in place.
    return copy;
  }
}
