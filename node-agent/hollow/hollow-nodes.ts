/**
 * Hollow nodes (kubemark-style): one process registers many Nodes and plays their agents without
 * running anything, so the control plane can be measured at thousands of nodes on one machine.
 *
 *   start ─► register <group>-0000 … (Node created with the group's label, then its status:
 *            capacity from the flags, Ready) ─► one pod informer for the whole group
 *            (spec.nodeGroup=<group>) ─► Controller ─► reconcile(pod):
 *              new pod         → Running at once (PodScheduled, Initialized, ContainersReady,
 *                                Ready; containers running; podIP from its node's pod CIDR)
 *              being deleted   → deleted (grace 0, that uid), as the agent finishes a deletion
 *         ─► statuses on skiff.node-group.<group>.pods (batched every 20 ms, each report naming its
 *            node), heartbeats of every member on skiff.node-group.<group>.heartbeat
 *
 * What a hollow node costs: its name, its pod CIDR once known and the next address to hand out
 * (a few hundred bytes); the pods are the informer's, as any agent's. One API connection, one
 * watch, one NATS connection for the whole group. The statuses are the real agent's (pod-status.ts
 * podStatus over containers shown running; node-facts.ts over the flags' capacity).
 */
import type { NatsConnection } from 'nats';
import type { ApiClient } from '../../proto/client.js';
import { AlreadyExistsError, ConflictError, NotFoundError, errorMessage } from '../../proto/errors.js';
import type { Condition, Container, Node, Pod, Taint } from '../../proto/gen/types.js';
import { apiSource } from '../../proto/informer/api-source.js';
import { Controller } from '../../proto/informer/controller.js';
import { Informer } from '../../proto/informer/informer.js';
import { formatIPv4, parseCidr } from '../../proto/cidr.js';
import {
  NODE_GROUP_FIELD,
  NODE_GROUP_LABEL,
  nodeGroupHeartbeatSubject,
  nodeGroupMember,
  nodeGroupOfName,
  nodeGroupPodsSubject,
} from '../../proto/node-group.js';
import {
  groupResyncSubject,
  reportSequence,
  type NodeGroupHeartbeat,
  type PodStatusBatch,
  type PodStatusReport,
} from '../../proto/node-reports.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';
import type { Logger } from '../../proto/support/logger.js';
import { nodeConditions, nodeStatusOf, type HostReadings, type Reservations } from '../agent/node-facts.js';
import { onResync } from '../agent/agent.js';
import { CONTAINER_ID_PREFIX, podStatus, type ContainerView } from '../agent/pod-status.js';

/** The zone label, spread over the members (`--zones`). */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

export interface HollowNodesOptions {
  api: ApiClient;
  nats: NatsConnection;
  /** The group's name: members are <group>-0000 … */
  group: string;
  count: number;
  /** What each member offers. */
  capacity: { cpus: number; memoryBytes: number; pods: number };
  /** Added to every member's labels. */
  labels?: Record<string, string>;
  /** Set on each member when it is created. */
  taints?: Taint[];
  /** Members spread over this many zones (zone-<i % zones>); none: no zone label. */
  zones?: number;
  /** The members' InternalIP (one address: nothing listens there). */
  nodeIP: string;
  version: string;
  /** Default 10 s. */
  heartbeatMs?: number;
  /** Registrations and pod reconciles at once; default 16. */
  concurrency?: number;
  log: Logger;
  /** How often every pod is looked at again (a report the API lacks is sent again); default 30 s. */
  resyncMs?: number;
}

/** One member: what it needs to hand out pod addresses. */
interface HollowNode {
  name: string;
  /** The first address of its pod CIDR and how many it holds, once the control plane gave one. */
  podRange?: { base: number; size: number };
  /** The next host number to hand out (1 is the gateway, as the real agent's IPAM). */
  next: number;
  /** The read of its Node under way, which every pod waiting for its pod CIDR shares. */
  lookup?: Promise<void>;
}

/** Reports in one NATS message (each a pod's status, about 1.5 KB: well under NATS' 1 MiB). */
const REPORTS_PER_MESSAGE = 200;
/** Member names in one heartbeat message. */
const NODES_PER_HEARTBEAT = 2000;

export class HollowNodes {
  private readonly nodes: HollowNode[] = [];
  private informer: Informer<Pod> | undefined;
  private controller: Controller | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private pending: PodStatusReport[] = [];
  /** Pods reported Running (uid → their address): reported again on a resync, never twice otherwise. */
  private readonly running = new Map<string, string | undefined>();
  private readonly nextSeq = reportSequence();
  private lastConditions: Condition[] | undefined;
  private readonly subscriptions: { unsubscribe(): void }[] = [];
  private readonly host: HostReadings;
  private readonly reservations: Reservations;
  private stopped = false;

  constructor(private readonly options: HollowNodesOptions) {
    for (let i = 0; i < options.count; i++)
      this.nodes.push({ name: nodeGroupMember(options.group, i), next: 2 });
    const { cpus, memoryBytes, pods } = options.capacity;
    this.host = {
      cpus,
      memTotalBytes: memoryBytes,
      memAvailableBytes: memoryBytes,
      diskTotalBytes: 100 * 2 ** 30,
      diskFreeBytes: 100 * 2 ** 30,
      pids: 100,
      pidMax: 4_194_304,
      kernelVersion: 'hollow',
      osImage: 'skiff hollow node',
      architecture: 'amd64',
      machineID: '',
      bootID: '',
    };
    this.reservations = {
      cpuMillis: 0,
      memoryBytes: 0,
      memoryEvictionBytes: 0,
      diskEvictionFraction: 0,
      maxPods: pods,
    };
  }

  /** The members' names. */
  get nodeNames(): string[] {
    return this.nodes.map((n) => n.name);
  }

  async start(): Promise<void> {
    const { api, nats, group, log } = this.options;
    await this.registerAll();
    const informer = new Informer<Pod>({
      source: apiSource<Pod>({ api, kind: 'Pod', fieldSelector: `${NODE_GROUP_FIELD}=${group}` }),
      resyncIntervalMs: this.options.resyncMs ?? 30_000,
      logger: log.child({ component: 'pod-informer' }),
    });
    this.informer = informer;
    const controller = new Controller({
      reconcile: (key) => this.reconcile(key),
      workers: this.options.concurrency ?? 16,
      log: log.child({ component: 'hollow-pods' }),
    });
    this.controller = controller;
    informer.onChange((key) => controller.enqueue(key));
    this.subscriptions.push(onResync(nats, log, groupResyncSubject(group), () => this.resendAll()));
    informer.start();
    controller.start();
    await informer.waitForSync();
    this.heartbeat();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatMs ?? 10_000);
    this.heartbeatTimer.unref();
    log.info({ group, nodes: this.nodes.length }, 'hollow nodes ready');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const s of this.subscriptions) s.unsubscribe();
    await this.informer?.stop();
    await this.controller?.stop();
    this.flush();
    await this.options.nats.flush().catch(() => {});
  }

  /** Every member registered, `concurrency` at a time. */
  private async registerAll(): Promise<void> {
    let next = 0;
    const began = Date.now();
    await Promise.all(
      Array.from({ length: Math.min(this.options.concurrency ?? 16, this.nodes.length) }, async () => {
        while (next < this.nodes.length) {
          const index = next++;
          await this.register(index);
        }
      }),
    );
    this.options.log.info(
      { group: this.options.group, nodes: this.nodes.length, ms: Date.now() - began },
      'hollow nodes registered',
    );
  }

  /** Creates member `index`'s Node (or takes its labels over), then writes its status. */
  private async register(index: number): Promise<void> {
    const { api, group } = this.options;
    const member = this.nodes[index]!;
    const labels: Record<string, string> = {
      'kubernetes.io/hostname': member.name,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': this.host.architecture,
      ...(this.options.zones ? { [ZONE_LABEL]: `zone-${index % this.options.zones}` } : {}),
      ...(this.options.labels ?? {}),
      [NODE_GROUP_LABEL]: group,
    };
    for (let attempt = 1; ; attempt++) {
      let node: Node;
      try {
        node = await api.create({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name: member.name, labels },
          spec: { ...(this.options.taints?.length ? { taints: this.options.taints } : {}) },
        } as Node);
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
        const current = await api.get('Node', '', member.name);
        try {
          node = await api.update({
            ...current,
            metadata: { ...current.metadata, labels: { ...current.metadata.labels, ...labels } },
          });
        } catch (updateErr) {
          if (updateErr instanceof ConflictError && attempt < 5) continue;
          throw updateErr;
        }
      }
      const now = rfc3339Seconds(new Date());
      const status = nodeStatusOf(this.host, this.reservations, {
        nodeIP: this.options.nodeIP,
        version: this.options.version,
        images: [],
        now,
        ...(node.status?.conditions ? { previous: node.status.conditions } : {}),
      });
      status.addresses = [
        { type: 'InternalIP', address: this.options.nodeIP },
        { type: 'Hostname', address: member.name },
      ];
      this.lastConditions ??= status.conditions;
      try {
        const written = await api.updateStatus({ ...node, status: { ...node.status, ...status } });
        this.learnPodCIDR(member, written.spec?.podCIDR);
        return;
      } catch (err) {
        if (err instanceof ConflictError && attempt < 5) continue;
        throw err;
      }
    }
  }

  private learnPodCIDR(member: HollowNode, podCIDR: string | undefined): void {
    if (!podCIDR || member.podRange) return;
    const cidr = parseCidr(podCIDR, 'spec.podCIDR');
    member.podRange = { base: cidr.base, size: cidr.size };
  }

  /**
   * Reads the member's Node for its pod CIDR: one read at a time per member, and none within a
   * second of the last, however many of its pods wait (a fresh cluster gives thousands of nodes
   * their CIDRs one by one).
   */
  private lookUpPodCIDR(member: HollowNode): Promise<void> {
    member.lookup ??= (async () => {
      try {
        this.learnPodCIDR(member, (await this.options.api.get('Node', '', member.name)).spec?.podCIDR);
      } finally {
        setTimeout(() => (member.lookup = undefined), member.podRange ? 0 : 1000).unref();
      }
    })();
    return member.lookup;
  }

  /** The member a pod is bound to, when it is one of this process's. */
  private memberOf(pod: Pod): HollowNode | undefined {
    const name = pod.spec.nodeName ?? '';
    if (nodeGroupOfName(name) !== this.options.group) return undefined;
    const index = Number(name.slice(this.options.group.length + 1));
    const member = this.nodes[index];
    return member?.name === name ? member : undefined;
  }

  private async reconcile(key: string): Promise<void | { requeueAfterMs: number }> {
    const pod = this.informer?.get(key)?.object;
    if (pod === undefined) return;
    const uid = pod.metadata.uid!;
    const member = this.memberOf(pod);
    if (member === undefined) return; // another process's member
    if (pod.metadata.deletionTimestamp) {
      // nothing runs: the graceful deletion is finished at once, as the agent does when its
      // containers have stopped
      try {
        await this.options.api.delete('Pod', pod.metadata.namespace!, pod.metadata.name!, {
          gracePeriodSeconds: 0,
          preconditions: { uid },
        });
      } catch (err) {
        if (!(err instanceof NotFoundError || err instanceof ConflictError)) throw err;
      }
      this.running.delete(uid);
      return;
    }
    if (this.running.has(uid)) {
      // reported Running, yet the API says otherwise: the report was lost (the control plane it
      // went to died with it in hand), so again; the informer's resync brings every pod here
      if (pod.status?.phase !== 'Running') this.report(pod, member, this.running.get(uid));
      return;
    }
    if (!member.podRange && !pod.spec.hostNetwork) {
      await this.lookUpPodCIDR(member);
      if (!member.podRange) return { requeueAfterMs: 1000 }; // no CIDR yet
    }
    const podIP = pod.spec.hostNetwork ? this.options.nodeIP : this.nextAddress(member);
    this.running.set(uid, podIP);
    this.report(pod, member, podIP);
  }

  /** The next address of the member's pod CIDR (wrapping round: hollow pods hold none for real). */
  private nextAddress(member: HollowNode): string | undefined {
    const range = member.podRange;
    if (!range) return undefined;
    if (member.next >= range.size - 1) member.next = 2;
    return formatIPv4(range.base + member.next++);
  }

  /** The pod as the agent reports one whose containers all run. */
  private report(pod: Pod, member: HollowNode, podIP: string | undefined): void {
    const now = rfc3339Seconds(new Date());
    const startedAt = pod.status?.startTime ?? now;
    const view = (container: Container, i: number): ContainerView => ({
      spec: container,
      current: {
        id: `hollow-${pod.metadata.uid}-${i}`,
        name: container.name,
        config: {} as never,
        state: { status: 'running', startedAt } as never,
      },
      restartCount: 0,
      ready: true,
      imageID: container.image ?? '',
    });
    const status = podStatus({
      pod,
      sandboxReady: true,
      ...(podIP ? { podIP } : {}),
      hostIP: this.options.nodeIP,
      // init containers of a hollow pod have succeeded at once
      initContainers: (pod.spec.initContainers ?? []).map((container, i) => ({
        ...view(container, 100 + i),
        current: {
          id: `hollow-${pod.metadata.uid}-init-${i}`,
          name: container.name,
          config: {} as never,
          state: { status: 'exited', exitCode: 0, startedAt, finishedAt: startedAt } as never,
        },
        ready: false,
      })),
      containers: (pod.spec.containers ?? []).map(view),
      startTime: startedAt,
      now,
    });
    for (const container of status.containerStatuses ?? [])
      container.containerID = container.containerID?.replace(CONTAINER_ID_PREFIX, 'hollow://');
    this.pending.push({
      namespace: pod.metadata.namespace!,
      name: pod.metadata.name!,
      uid: pod.metadata.uid!,
      seq: this.nextSeq(),
      status,
      node: member.name,
    });
    this.flushTimer ??= setTimeout(() => this.flush(), 20);
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const subject = nodeGroupPodsSubject(this.options.group);
    for (let at = 0; at < this.pending.length; at += REPORTS_PER_MESSAGE) {
      const batch: PodStatusBatch = {
        node: this.options.group,
        reports: this.pending.slice(at, at + REPORTS_PER_MESSAGE),
      };
      try {
        this.options.nats.publish(subject, JSON.stringify(batch));
      } catch (err) {
        // NATS is down: the control plane asks for everything again once it is back (resync)
        this.options.log.warn({ err: errorMessage(err) }, 'publishing pod statuses failed');
      }
    }
    this.pending = [];
  }

  private resendAll(): void {
    for (const cached of this.informer?.list() ?? []) {
      const pod = cached.object;
      const member = this.memberOf(pod);
      const uid = pod.metadata.uid!;
      if (member && this.running.has(uid) && !pod.metadata.deletionTimestamp)
        this.report(pod, member, this.running.get(uid));
      else this.controller?.enqueue(cached.key);
    }
    this.heartbeat();
  }

  /** One heartbeat for every member: the same conditions (Ready), in few messages. */
  private heartbeat(): void {
    const now = rfc3339Seconds(new Date());
    const conditions = nodeConditions(this.host, this.reservations, now, this.lastConditions);
    this.lastConditions = conditions;
    const subject = nodeGroupHeartbeatSubject(this.options.group);
    const seq = this.nextSeq();
    try {
      for (let at = 0; at < this.nodes.length; at += NODES_PER_HEARTBEAT) {
        const beat: NodeGroupHeartbeat = {
          seq,
          time: now,
          nodes: this.nodes.slice(at, at + NODES_PER_HEARTBEAT).map((n) => n.name),
          conditions,
        };
        this.options.nats.publish(subject, JSON.stringify(beat));
      }
    } catch (err) {
      this.options.log.warn({ err: errorMessage(err) }, 'heartbeat failed');
    }
  }
}
