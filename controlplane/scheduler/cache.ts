/**
 * SchedulerCache: the nodes and the pods bound to them, as the scheduler counts them, fed by the
 * informer (addNode/updateNode/removeNode, addPod/updatePod/removePod for pods with a nodeName)
 * and by the scheduler itself:
 *
 *   assume(pod, node)   the moment a node is chosen, before the bind is written: the pod counts on
 *                       the node at once, so the next decision sees it
 *   finishBinding(pod)  the bind was written; from now the assumption expires after `assumedTtlMs`
 *                       unless the informer brings the bound pod (addPod), which confirms it
 *   forget(pod)         the bind failed: the pod no longer counts
 *
 * Pods bound to a node the cache does not know yet are kept and counted when it appears.
 * `updateSnapshot` brings a Snapshot up to date by copying only the NodeInfos changed since it last
 * did (a set of dirty node names), O(changed) per cycle.
 */
import type { Namespace, Node, Pod } from '../../proto/gen/types.js';
import { nodeUpdateEvents } from './framework/events.js';
import { NodeInfo, type GenerationSource } from './framework/node-info.js';
import { newPodInfo, podKey, type PodInfo } from './framework/pod-info.js';
import { Snapshot } from './framework/snapshot.js';

/** Whether two versions of a bound pod read the same to the scheduler. */
function samePlacement(a: Pod, b: Pod): boolean {
  return (
    a.metadata.deletionTimestamp === b.metadata.deletionTimestamp &&
    a.status?.startTime === b.status?.startTime &&
    JSON.stringify(a.metadata.labels ?? {}) === JSON.stringify(b.metadata.labels ?? {}) &&
    (a.spec === b.spec || JSON.stringify(a.spec) === JSON.stringify(b.spec))
  );
}

interface PodState {
  info: PodInfo;
  nodeName: string;
  assumed: boolean;
  /** For an assumed pod whose bind was written: when the assumption expires (ms). */
  deadline: number | undefined;
}

/** What a snapshot has seen of this cache, so that the next update copies only what changed. */
interface SnapshotBookkeeping {
  cache: SchedulerCache;
  dirty: Set<string>;
  namespacesVersion: number;
}

export interface SchedulerCacheOptions {
  /** How long an assumed pod whose bind was written stays counted without the informer's word. */
  assumedTtlMs?: number;
}

export class SchedulerCache {
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly pods = new Map<string, PodState>();
  private readonly namespaces = new Map<string, Readonly<Record<string, string>>>();
  private namespacesVersion = 0;
  private generation = 0;
  private readonly generations: GenerationSource = { next: () => ++this.generation };
  /** Snapshots being kept up to date, each with the node names changed since its last update. */
  private readonly snapshots = new Set<SnapshotBookkeeping>();
  private readonly assumedTtlMs: number;

  constructor(options: SchedulerCacheOptions = {}) {
    this.assumedTtlMs = options.assumedTtlMs ?? 30_000;
  }

  get nodeCount(): number {
    let count = 0;
    for (const info of this.nodes.values()) if (info.node !== undefined) count++;
    return count;
  }

  get podCount(): number {
    return this.pods.size;
  }

  private markDirty(name: string): void {
    for (const snapshot of this.snapshots) snapshot.dirty.add(name);
  }

  private nodeInfo(name: string): NodeInfo {
    let info = this.nodes.get(name);
    if (info === undefined) this.nodes.set(name, (info = new NodeInfo(name, this.generations)));
    return info;
  }

  /** Drops a NodeInfo left with neither node nor pods. */
  private dropIfEmpty(info: NodeInfo): void {
    if (info.node === undefined && info.pods.length === 0) this.nodes.delete(info.name);
  }

  // ---------------------------------------------------------------------------------------------
  // Nodes

  addNode(node: Node): void {
    const name = node.metadata.name ?? '';
    this.nodeInfo(name).setNode(node);
    this.markDirty(name);
  }

  /**
   * A node changed. An update that changes nothing the scheduler reads (a heartbeat: the
   * conditions' times) is dropped, so thousands of heartbeating nodes copy no NodeInfo.
   */
  updateNode(node: Node): void {
    const current = this.nodes.get(node.metadata.name ?? '')?.node;
    if (current !== undefined && nodeUpdateEvents(current, node).length === 0) return;
    this.addNode(node);
  }

  removeNode(name: string): void {
    const info = this.nodes.get(name);
    if (info === undefined) return;
    info.removeNode();
    this.dropIfEmpty(info);
    this.markDirty(name);
  }

  /** The node as last changed in a way the scheduler reads (heartbeats are not kept). */
  getNode(name: string): Node | undefined {
    return this.nodes.get(name)?.node;
  }

  // ---------------------------------------------------------------------------------------------
  // Pods

  private place(info: PodInfo, nodeName: string, assumed: boolean): void {
    this.nodeInfo(nodeName).addPod(info);
    this.pods.set(info.key, { info, nodeName, assumed, deadline: undefined });
    this.markDirty(nodeName);
  }

  private unplace(state: PodState): void {
    const info = this.nodes.get(state.nodeName);
    if (info !== undefined) {
      info.removePod(state.info.key);
      this.dropIfEmpty(info);
    }
    this.pods.delete(state.info.key);
    this.markDirty(state.nodeName);
  }

  /** A pod bound to a node (spec.nodeName), from the informer; confirms an assumption of it. */
  addPod(pod: Pod): void {
    const nodeName = pod.spec.nodeName;
    if (!nodeName) return;
    const key = podKey(pod);
    const known = this.pods.get(key);
    if (known !== undefined) this.unplace(known);
    this.place(newPodInfo(pod), nodeName, false);
  }

  /**
   * An update of a bound pod (or of a pod that just got bound). One that changes nothing the
   * scheduler reads (the status an agent reports, but for the start time) is dropped.
   */
  updatePod(pod: Pod): void {
    if (!pod.spec.nodeName) {
      this.removePod(pod);
      return;
    }
    const known = this.pods.get(podKey(pod));
    if (
      known !== undefined &&
      !known.assumed &&
      known.nodeName === pod.spec.nodeName &&
      samePlacement(known.info.pod, pod)
    ) {
      return;
    }
    this.addPod(pod);
  }

  removePod(pod: Pod): void {
    const state = this.pods.get(podKey(pod));
    if (state !== undefined) this.unplace(state);
  }

  /**
   * Counts `pod` on `nodeName` at once, before its bind is written. `parsed`: the pod's PodInfo,
   * when the caller has it, saves parsing the pod again.
   */
  assume(pod: Pod, nodeName: string, parsed?: PodInfo): PodInfo {
    const key = podKey(pod);
    const known = this.pods.get(key);
    if (known !== undefined) this.unplace(known);
    const bound: Pod = { ...pod, spec: { ...pod.spec, nodeName } };
    const info: PodInfo =
      parsed !== undefined && parsed.pod === pod ? { ...parsed, pod: bound } : newPodInfo(bound);
    this.place(info, nodeName, true);
    return info;
  }

  /** The bind of an assumed pod was written: its assumption now expires unless confirmed. */
  finishBinding(pod: Pod, now: number): void {
    const state = this.pods.get(podKey(pod));
    if (state?.assumed) state.deadline = now + this.assumedTtlMs;
  }

  /** The bind of an assumed pod failed: it no longer counts. */
  forget(pod: Pod): void {
    const state = this.pods.get(podKey(pod));
    if (state?.assumed) this.unplace(state);
  }

  isAssumed(key: string): boolean {
    return this.pods.get(key)?.assumed === true;
  }

  /** Where the cache counts the pod of this key, if anywhere. */
  nodeOf(key: string): string | undefined {
    return this.pods.get(key)?.nodeName;
  }

  /** Drops assumed pods whose bind was written more than the TTL ago and never confirmed. */
  expireAssumedPods(now: number): PodInfo[] {
    const expired: PodInfo[] = [];
    for (const state of this.pods.values()) {
      if (state.assumed && state.deadline !== undefined && state.deadline <= now) {
        expired.push(state.info);
        this.unplace(state);
      }
    }
    return expired;
  }

  // ---------------------------------------------------------------------------------------------
  // Namespaces (their labels serve namespaceSelector in affinity terms)

  addNamespace(namespace: Namespace): void {
    this.namespaces.set(namespace.metadata.name ?? '', namespace.metadata.labels ?? {});
    this.namespacesVersion++;
  }

  updateNamespace(namespace: Namespace): void {
    this.addNamespace(namespace);
  }

  removeNamespace(name: string): void {
    if (this.namespaces.delete(name)) this.namespacesVersion++;
  }

  // ---------------------------------------------------------------------------------------------
  // Snapshots

  /** A new snapshot of the cache, kept up to date by updateSnapshot. */
  snapshot(): Snapshot {
    const snapshot = new Snapshot();
    this.updateSnapshot(snapshot);
    return snapshot;
  }

  /**
   * Brings `snapshot` up to date: copies the NodeInfos that changed since its last update (all of
   * them the first time), and what depends on them.
   */
  updateSnapshot(snapshot: Snapshot): void {
    let bookkeeping = snapshot.cacheState as SnapshotBookkeeping | undefined;
    if (bookkeeping === undefined || bookkeeping.cache !== this) {
      bookkeeping = { cache: this, dirty: new Set(this.nodes.keys()), namespacesVersion: -1 };
      snapshot.cacheState = bookkeeping;
      this.snapshots.add(bookkeeping);
    }
    if (bookkeeping.namespacesVersion !== this.namespacesVersion) {
      snapshot.setNamespaces(new Map(this.namespaces));
      bookkeeping.namespacesVersion = this.namespacesVersion;
    }
    if (bookkeeping.dirty.size === 0) return;
    for (const name of bookkeeping.dirty) {
      const info = this.nodes.get(name);
      const current = snapshot.get(name);
      if (info?.node === undefined) snapshot.setNodeInfo(name, undefined);
      else if (current === undefined || current.generation !== info.generation)
        snapshot.setNodeInfo(name, info.clone());
    }
    bookkeeping.dirty.clear();
    snapshot.finishUpdate();
  }

  /** Stops keeping `snapshot` up to date (the cache forgets its bookkeeping). */
  releaseSnapshot(snapshot: Snapshot): void {
    const bookkeeping = snapshot.cacheState as SnapshotBookkeeping | undefined;
    if (bookkeeping !== undefined) this.snapshots.delete(bookkeeping);
    snapshot.cacheState = undefined;
  }
}
