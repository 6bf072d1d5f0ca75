/**
 * The node agent: registers its Node, follows the pods bound to it, runs them with the embedded
 * runtime (in-process), and reports what really runs through NATS.
 *
 *   start ─► runtime opened ─► Node registered (capacity, info, images) ─► podCIDR awaited (network)
 *         ─► Node informer: routes to the other nodes' pod CIDRs (peer-routing.ts)
 *         ─► informer: pods with spec.nodeName=<node> (list, then watch from its revision;
 *            a disconnect resumes from the last revision seen)
 *         ─► PodSync workers (level-triggered) ◄─ informer changes, runtime container events,
 *            back-off timers, a periodic resync (ConfigMap/Secret volumes follow their objects)
 *         ─► status reports on NATS (batched); heartbeats every heartbeatMs
 *
 * Stopping the agent leaves the containers running: the next agent adopts them (their records and
 * shims are the runtime's), so restartCount does not move.
 */
import type { NatsConnection } from 'nats';
import type { ApiClient } from '../../proto/client.js';
import { ConflictError, NotFoundError, UnavailableError, errorMessage } from '../../proto/errors.js';
import type { Condition, Node, Pod, Taint } from '../../proto/gen/types.js';
import { apiSource } from '../../proto/informer/api-source.js';
import { Controller } from '../../proto/informer/controller.js';
import { Informer } from '../../proto/informer/informer.js';
import { EventRecorder, referenceTo } from '../../proto/events.js';
import {
  RESYNC_SUBJECT,
  heartbeatSubject,
  nodeResyncSubject,
  podStatusSubject,
  reportSequence,
  type NodeHeartbeat,
  type PodStatusBatch,
  type PodStatusReport,
} from '../../proto/node-reports.js';
import type { Logger } from '../../proto/support/logger.js';
import type { ImageRuntime } from '../runtime/runtime.js';
import {
  DEFAULT_RESERVATIONS,
  nodeConditions,
  nodeStatusOf,
  readHost,
  type Reservations,
} from './node-facts.js';
import { LABEL_NAME, LABEL_NAMESPACE, PodSync, type BackoffPolicy } from './pod-sync.js';
import { PodStreamServer } from './pod-streams.js';
import { PeerRouting, type PeerRouter } from './peer-routing.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';

export interface AgentOptions {
  api: ApiClient;
  nats: NatsConnection;
  runtime: ImageRuntime;
  nodeName: string;
  nodeIP: string;
  /** Added to the node's own labels (kubernetes.io/hostname, os, arch). */
  labels?: Record<string, string>;
  /** Set when the Node is created (as the kubelet's --register-with-taints). */
  taints?: Taint[];
  allowedHostPaths?: readonly string[];
  /** Privileged containers may run (`skiff agent --allow-privileged`); refused otherwise. */
  allowPrivileged?: boolean;
  reservations?: Reservations;
  version: string;
  /** Default 10 s. */
  heartbeatMs?: number;
  /** Default 60 s: every pod reconciled again (volumes follow their ConfigMaps and Secrets). */
  resyncMs?: number;
  backoff?: BackoffPolicy;
  /** Pods reconciled at once; default 8. */
  workers?: number;
  /**
   * Plugs the node into its pod CIDR once the control plane has given it one (the pod network);
   * absent: pods get loopback only (tests of the agent alone).
   */
  prepareNetwork?: (
    podCIDR: string,
  ) => Promise<PeerRouter & { releaseExcept(live: Iterable<string>): Promise<unknown> }>;
  /** The host's network namespace when it is not this process's own (hostNetwork pods join it). */
  hostNetns?: string;
  /** Each pod's /etc/resolv.conf (pod-dns.ts); absent: the runtime's default. */
  resolvConfOf?: (pod: Pod) => string;
  /** Longest wait for the pod CIDR; default 60 s. */
  podCIDRWaitMs?: number;
  /** Waits between attempts to open the pod streams' tunnel; default 1 s doubling to 30 s. */
  tunnelReconnect?: { minMs: number; maxMs: number };
  log: Logger;
}

export class Agent {
  private informer: Informer<Pod> | undefined;
  private controller: Controller | undefined;
  private podSync: PodSync | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly nextSeq = reportSequence();
  private pending: PodStatusReport[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private closeWatch: (() => void) | undefined;
  private podStreams: PodStreamServer | undefined;
  private peerRouting: PeerRouting | undefined;
  private readonly subscriptions: { unsubscribe(): void }[] = [];
  private readonly events: EventRecorder;
  private lastConditions: Condition[] | undefined;

  constructor(private readonly options: AgentOptions) {
    this.events = new EventRecorder({
      sink: options.api,
      component: 'skiff-agent',
      host: options.nodeName,
      log: options.log.child({ component: 'events' }),
    });
  }

  get nodeName(): string {
    return this.options.nodeName;
  }

  /** Pod streams (logs, exec, attach, port-forward) being served now. */
  get podStreamSessions(): number {
    return this.podStreams?.active ?? 0;
  }

  async start(): Promise<void> {
    const { api, nats, nodeName, log } = this.options;
    let node = await this.register();
    if (this.options.prepareNetwork) {
      const until = Date.now() + (this.options.podCIDRWaitMs ?? 60_000);
      while (!node.spec?.podCIDR) {
        if (Date.now() > until)
          throw new UnavailableError(
            `start agent: node ${nodeName} got no pod CIDR from the control plane within ${this.options.podCIDRWaitMs ?? 60_000} ms; check the control plane's log (is its cluster CIDR full?)`,
            nodeName,
          );
        await new Promise((r) => setTimeout(r, 200));
        node = await api.get('Node', '', nodeName);
      }
      const network = await this.options.prepareNetwork(node.spec.podCIDR);
      // leases of sandboxes that went while the agent was away
      const live = await this.options.runtime.runtime.containers.listSandboxes();
      await network.releaseExcept(live.map((s) => s.id));
      log.info({ podCIDR: node.spec.podCIDR }, 'pod network ready');
      this.peerRouting = new PeerRouting({
        api,
        nodeName,
        router: network,
        event: (type, reason, message) => this.events.record(node0(nodeName), type, reason, message),
        log: log.child({ component: 'peer-routing' }),
      });
      this.peerRouting.start();
    }
    const informer = new Informer<Pod>({
      source: apiSource<Pod>({ api, kind: 'Pod', fieldSelector: `spec.nodeName=${nodeName}` }),
      resyncIntervalMs: this.options.resyncMs ?? 60_000,
      logger: log.child({ component: 'pod-informer' }),
    });
    this.informer = informer;
    const podSync = new PodSync({
      runtime: this.options.runtime.runtime,
      api,
      nodeName,
      hostIP: this.options.nodeIP,
      root: this.options.runtime.root,
      allowedHostPaths: this.options.allowedHostPaths ?? [],
      ...(this.options.hostNetns ? { hostNetns: this.options.hostNetns } : {}),
      ...(this.options.backoff ? { backoff: this.options.backoff } : {}),
      podIPOf: (sandbox) => sandbox.ips?.[0],
      ...(this.options.resolvConfOf ? { resolvConfOf: this.options.resolvConfOf } : {}),
      report: (report) => this.queueReport(report),
      event: (pod, type, reason, message, fieldPath) =>
        this.events.record(referenceTo(pod, fieldPath), type, reason, message),
      podOf: (key) => informer.get(key)?.object,
      enqueue: (key) => this.controller?.enqueue(key),
      allowPrivileged: this.options.allowPrivileged ?? false,
      version: this.options.version.split('.').slice(0, 2).join('.'),
      log: log.child({ component: 'pod-sync' }),
    });
    this.podSync = podSync;
    const controller = new Controller({
      reconcile: (key) => podSync.reconcile(key),
      workers: this.options.workers ?? 8,
      log: log.child({ component: 'pod-sync' }),
    });
    this.controller = controller;
    informer.onChange((key) => controller.enqueue(key));
    this.subscriptions.push(
      onResync(nats, log, nodeResyncSubject(this.options.nodeName), () => this.resendAll()),
    );
    void this.followNatsStatus();
    await this.followRuntime();
    informer.start();
    controller.start();
    await informer.waitForSync();
    // pods the runtime holds that this node no longer has (deleted while the agent was away)
    for (const sandbox of await this.options.runtime.runtime.containers.listSandboxes()) {
      const ns = sandbox.labels[LABEL_NAMESPACE];
      const name = sandbox.labels[LABEL_NAME];
      if (ns && name) controller.enqueue(`${ns}/${name}`);
    }
    this.heartbeat();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatMs ?? 10_000);
    this.heartbeatTimer.unref();
    // logs, exec, attach and port-forward: asked for over a tunnel this agent opens (it listens on no port)
    this.podStreams = new PodStreamServer({
      api,
      runtime: this.options.runtime.runtime,
      nodeName,
      version: this.options.version,
      podOf: (key) => informer.get(key)?.object,
      log: log.child({ component: 'pod-streams' }),
      ...(this.options.tunnelReconnect ? { reconnect: this.options.tunnelReconnect } : {}),
    });
    this.podStreams.start();
    log.info({ node: nodeName }, 'agent ready');
  }

  /** Stops following the cluster; containers keep running for the next agent to adopt. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.podStreams?.stop();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.closeWatch?.();
    for (const s of this.subscriptions) s.unsubscribe();
    this.informer?.stop();
    await this.peerRouting?.stop();
    this.podSync?.close();
    await this.controller?.stop();
    this.flush();
    await this.events.flush();
    await this.options.nats.flush().catch(() => {});
  }

  private resendAll(): void {
    this.podSync?.resendAll();
    for (const cached of this.informer?.list() ?? []) this.controller?.enqueue(cached.key);
    this.heartbeat();
  }

  private async followNatsStatus(): Promise<void> {
    for await (const s of this.options.nats.status()) {
      if (this.stopped) return;
      if (s.type === 'reconnect') {
        this.options.log.info('nats reconnected; reporting every pod again');
        this.resendAll();
      }
    }
  }

  /** Every container event re-reconciles its pod (exits, OOM kills, a shim that died). */
  private async followRuntime(): Promise<void> {
    const { runtime } = this.options.runtime;
    const watch = await runtime.containers.watchContainers({});
    this.closeWatch = () => watch.close();
    void (async () => {
      try {
        for await (const event of watch) {
          const ns = event.container.config.labels[LABEL_NAMESPACE];
          const name = event.container.config.labels[LABEL_NAME];
          if (ns && name) this.controller?.enqueue(`${ns}/${name}`);
        }
      } catch (err) {
        if (this.stopped) return;
        this.options.log.warn({ err: errorMessage(err) }, 'runtime watch ended; watching again');
      }
      if (!this.stopped) {
        await this.followRuntime().catch((err) =>
          this.options.log.error({ err: errorMessage(err) }, 'cannot watch the runtime'),
        );
        for (const cached of this.informer?.list() ?? []) this.controller?.enqueue(cached.key);
      }
    })();
  }

  private queueReport(report: Omit<PodStatusReport, 'seq'>): void {
    this.pending.push({ ...report, seq: this.nextSeq() });
    this.flushTimer ??= setTimeout(() => this.flush(), 20);
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.length === 0) return;
    const batch: PodStatusBatch = { node: this.options.nodeName, reports: this.pending };
    this.pending = [];
    try {
      this.options.nats.publish(podStatusSubject(this.options.nodeName), JSON.stringify(batch));
    } catch (err) {
      // NATS is down: the statuses are sent again (resendAll) once it reconnects
      this.options.log.warn({ err: errorMessage(err) }, 'publishing pod statuses failed');
    }
  }

  private heartbeat(): void {
    void (async () => {
      const reservations = this.options.reservations ?? DEFAULT_RESERVATIONS;
      const host = await readHost(this.options.runtime.root);
      const now = rfc3339Seconds(new Date());
      const conditions = nodeConditions(host, reservations, now, this.lastConditions);
      this.lastConditions = conditions;
      const beat: NodeHeartbeat = { node: this.options.nodeName, seq: this.nextSeq(), time: now, conditions };
      this.options.nats.publish(heartbeatSubject(this.options.nodeName), JSON.stringify(beat));
    })().catch((err) => this.options.log.warn({ err: errorMessage(err) }, 'heartbeat failed'));
  }

  /** Creates the Node, or updates its labels and status; the taints only at creation (as the kubelet). */
  async register(): Promise<Node> {
    const { api, nodeName, log } = this.options;
    const host = await readHost(this.options.runtime.root);
    const labels: Record<string, string> = {
      'kubernetes.io/hostname': nodeName,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': host.architecture,
      ...(this.options.labels ?? {}),
    };
    const images = (await this.options.runtime.images.list())
      .filter((i) => i.repository !== '<none>')
      .map((i) => ({ names: [i.name], sizeBytes: i.size }));
    for (let attempt = 0; ; attempt++) {
      let node: Node;
      try {
        const current = await api.get('Node', '', nodeName);
        node = await api.update({
          ...current,
          metadata: { ...current.metadata, labels: { ...current.metadata.labels, ...labels } },
        });
      } catch (err) {
        if (err instanceof ConflictError && attempt < 5) continue;
        if (!(err instanceof NotFoundError)) throw err;
        try {
          node = await api.create({
            apiVersion: 'v1',
            kind: 'Node',
            metadata: { name: nodeName, labels },
            spec: { ...(this.options.taints?.length ? { taints: this.options.taints } : {}) },
          } as Node);
          log.info({ node: nodeName }, 'node registered');
          this.events.record(
            node0(nodeName),
            'Normal',
            'RegisteredNode',
            `Node ${nodeName} registered with the cluster`,
          );
        } catch (createErr) {
          if (createErr instanceof ConflictError || (createErr as Error).name === 'AlreadyExistsError')
            continue;
          throw createErr;
        }
      }
      if (attempt === 0) this.events.record(node0(nodeName), 'Normal', 'Starting', 'Starting skiff agent.');
      const status = nodeStatusOf(host, this.options.reservations ?? DEFAULT_RESERVATIONS, {
        nodeIP: this.options.nodeIP,
        version: this.options.version,
        images,
        now: rfc3339Seconds(new Date()),
        ...(node.status?.conditions ? { previous: node.status.conditions } : {}),
      });
      this.lastConditions = status.conditions;
      try {
        return await api.updateStatus({ ...node, status: { ...node.status, ...status } });
      } catch (err) {
        if (err instanceof ConflictError && attempt < 5) continue;
        throw err;
      }
    }
  }
}

/** A Node as events name it (uid unknown before the first read; Kubernetes' node events omit it too). */
function node0(name: string): { kind: string; apiVersion: string; name: string } {
  return { kind: 'Node', apiVersion: 'v1', name };
}

/**
 * Calls `resendAll` whenever the control plane asks every agent for every pod status again, or
 * asks on `ownSubject` (this node's, or this node group's).
 */
export function onResync(
  nats: NatsConnection,
  log: Logger,
  ownSubject: string,
  resendAll: () => void,
): { unsubscribe(): void } {
  const callback = () => {
    log.info('the control plane asked for every pod status again');
    resendAll();
  };
  const subscriptions = [RESYNC_SUBJECT, ownSubject].map((subject) => nats.subscribe(subject, { callback }));
  return { unsubscribe: () => subscriptions.forEach((s) => s.unsubscribe()) };
}
