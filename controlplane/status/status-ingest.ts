/**
 * Status ingest: what agents report on NATS (proto/node-reports.ts) written to etcd.
 *
 *   skiff.node.<n>.pods       → the latest report per pod kept, written in batches every flushMs
 *                               (a burst of reports about one pod costs one write), never older
 *                               over newer (seq), only for a pod of that uid bound to that node
 *   skiff.node.<n>.heartbeat  → the Node's conditions (lastHeartbeatTime), batched the same way
 *   every checkMs             → a Node whose Ready condition was not renewed within nodeGraceMs
 *                               becomes Ready=Unknown (NodeStatusUnknown), as Kubernetes' node
 *                               lifecycle controller marks it
 *   on start                  → skiff.control.resync: every agent reports every pod again, so
 *                               what changed while the control plane was away reaches etcd
 */
import type { NatsConnection, Subscription } from 'nats';
import { ConflictError, NotFoundError, errorMessage } from '../../proto/errors.js';
import type { Condition, Node, Pod } from '../../proto/gen/types.js';
import {
  NODE_SUBJECT_PREFIX,
  RESYNC_SUBJECT,
  decodeReport,
  nodeSubjectToken,
  type NodeHeartbeat,
  type PodStatusBatch,
  type PodStatusReport,
} from '../../proto/node-reports.js';
import type { Logger } from '../../proto/support/logger.js';
import type { ApiHandlers } from '../api/handlers.js';
import { EventRecorder } from '../../proto/events.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';

/** The NATS queue group of every control plane's ingest. */
const STATUS_INGEST_QUEUE = 'skiff-status-ingest';

export interface StatusIngestOptions {
  nats: NatsConnection;
  handlers: ApiHandlers;
  log: Logger;
  /** Default 50 ms. */
  flushMs?: number;
  /** Writes at once; default 16. */
  concurrency?: number;
  /** Default 40 s (Kubernetes' node-monitor-grace-period). */
  nodeGraceMs?: number;
  /**
   * Whether this process marks silent nodes NotReady now (the leading control plane); default
   * always. Reports are ingested either way.
   */
  marksSilentNodes?: () => boolean;
  /** Default 5 s. */
  checkMs?: number;
  now?: () => Date;
}

interface PendingPod {
  nodeToken: string;
  report: PodStatusReport;
}

export class StatusIngest {
  private readonly subscriptions: Subscription[] = [];
  private pendingPods = new Map<string, PendingPod>();
  private pendingNodes = new Map<string, { token: string; beat: NodeHeartbeat }>();
  /** Highest seq written (or skipped as unchanged) per pod uid. */
  private readonly seqByUid = new Map<string, number>();
  private readonly seqByNode = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly now: () => Date;
  private stopped = false;
  private readonly events: EventRecorder;

  constructor(private readonly options: StatusIngestOptions) {
    this.now = options.now ?? (() => new Date());
    const { handlers } = options;
    this.events = new EventRecorder({
      sink: {
        create: async (object) => (await handlers.create(object)).object as never,
        update: async (object) => (await handlers.update(object)).object as never,
      },
      component: 'node-controller',
      host: 'skiff-controlplane',
      log: options.log.child({ component: 'events' }),
    });
  }

  start(): void {
    const { nats } = this.options;
    this.subscriptions.push(
      // one queue group: with several control planes each report is written by one of them
      nats.subscribe(`${NODE_SUBJECT_PREFIX}.*.pods`, {
        queue: STATUS_INGEST_QUEUE,
        callback: (err, msg) => {
          if (err) return;
          this.receivePods(msg.subject, msg.data);
        },
      }),
      nats.subscribe(`${NODE_SUBJECT_PREFIX}.*.heartbeat`, {
        queue: STATUS_INGEST_QUEUE,
        callback: (err, msg) => {
          if (err) return;
          this.receiveHeartbeat(msg.subject, msg.data);
        },
      }),
    );
    void (async () => {
      for await (const s of nats.status()) {
        if (this.stopped) return;
        if (s.type === 'reconnect') this.askForResync();
      }
    })();
    this.askForResync();
    this.checkTimer = setInterval(() => {
      if (this.options.marksSilentNodes?.() ?? true) void this.markSilentNodes();
    }, this.options.checkMs ?? 5000);
    this.checkTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.subscriptions) s.unsubscribe();
    if (this.checkTimer) clearInterval(this.checkTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.flushing;
    await this.events.flush();
  }

  private askForResync(): void {
    try {
      this.options.nats.publish(RESYNC_SUBJECT, '{}');
    } catch (err) {
      this.options.log.warn({ err: errorMessage(err) }, 'asking agents to resync failed');
    }
  }

  private receivePods(subject: string, data: Uint8Array): void {
    const token = subject.split('.')[2] ?? '';
    let batch: PodStatusBatch;
    try {
      batch = decodeReport<PodStatusBatch>(subject, data);
      if (!Array.isArray(batch.reports)) throw new Error(`report on ${subject} has no reports list`);
    } catch (err) {
      this.options.log.warn({ subject, err: errorMessage(err) }, 'dropping a malformed status report');
      return;
    }
    for (const report of batch.reports) {
      if (!report || typeof report.uid !== 'string' || typeof report.seq !== 'number' || !report.status)
        continue;
      if ((this.seqByUid.get(report.uid) ?? 0) >= report.seq) continue;
      const key = `${report.namespace}/${report.name}`;
      const queued = this.pendingPods.get(key);
      if (queued && queued.report.uid === report.uid && queued.report.seq >= report.seq) continue;
      this.pendingPods.set(key, { nodeToken: token, report });
    }
    this.scheduleFlush();
  }

  private receiveHeartbeat(subject: string, data: Uint8Array): void {
    const token = subject.split('.')[2] ?? '';
    let beat: NodeHeartbeat;
    try {
      beat = decodeReport<NodeHeartbeat>(subject, data);
    } catch (err) {
      this.options.log.warn({ subject, err: errorMessage(err) }, 'dropping a malformed heartbeat');
      return;
    }
    if (
      typeof beat.node !== 'string' ||
      nodeSubjectToken(beat.node) !== token ||
      !Array.isArray(beat.conditions)
    ) {
      this.options.log.warn({ subject }, 'dropping a heartbeat for another node than its subject names');
      return;
    }
    const queued = this.pendingNodes.get(beat.node);
    if (queued && queued.beat.seq >= beat.seq) return;
    this.pendingNodes.set(beat.node, { token, beat });
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      this.flushing = this.flushing.then(() => this.flush());
    }, this.options.flushMs ?? 50);
  }

  /** Writes what is pending; what arrives meanwhile waits for the next flush. */
  async flush(): Promise<void> {
    const pods = [...this.pendingPods.values()];
    const nodes = [...this.pendingNodes.values()];
    this.pendingPods = new Map();
    this.pendingNodes = new Map();
    const work: (() => Promise<void>)[] = [
      ...pods.map((p) => () => this.writePod(p)),
      ...nodes.map((n) => () => this.writeHeartbeat(n.beat)),
    ];
    const concurrency = this.options.concurrency ?? 16;
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, work.length) }, async () => {
        while (next < work.length) {
          const job = work[next++]!;
          await job().catch((err) =>
            this.options.log.warn({ err: errorMessage(err) }, 'writing a reported status failed'),
          );
        }
      }),
    );
  }

  private async writePod({ nodeToken, report }: PendingPod): Promise<void> {
    const { handlers, log } = this.options;
    let pod: Pod;
    try {
      pod = (await handlers.get('Pod', report.namespace, report.name)).object as Pod;
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    if (pod.metadata.uid !== report.uid) return; // an older pod of that name
    if (nodeSubjectToken(pod.spec.nodeName ?? '') !== nodeToken) {
      log.warn(
        { pod: `${report.namespace}/${report.name}`, reportedBy: nodeToken, boundTo: pod.spec.nodeName },
        'dropping a status report from a node the pod is not bound to',
      );
      return;
    }
    if ((this.seqByUid.get(report.uid) ?? 0) >= report.seq) return;
    this.seqByUid.set(report.uid, report.seq);
    if (JSON.stringify(pod.status ?? {}) === JSON.stringify(report.status)) return;
    try {
      const { resourceVersion: _rv, ...metadata } = pod.metadata;
      await handlers.updateStatus({ ...pod, metadata, status: report.status });
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof ConflictError) return; // deleted, or re-created
      throw err;
    }
  }

  private async writeHeartbeat(beat: NodeHeartbeat): Promise<void> {
    if ((this.seqByNode.get(beat.node) ?? 0) >= beat.seq) return;
    this.seqByNode.set(beat.node, beat.seq);
    await this.updateNodeConditions(beat.node, (current) => {
      const wasReady = current.find((c) => c.type === 'Ready')?.status === 'True';
      const merged = mergeConditions(current, beat.conditions);
      const nowReady = merged.find((c) => c.type === 'Ready')?.status === 'True';
      if (nowReady !== wasReady)
        this.events.record(
          nodeRef(beat.node),
          'Normal',
          nowReady ? 'NodeReady' : 'NodeNotReady',
          `Node ${beat.node} status is now: ${nowReady ? 'NodeReady' : 'NodeNotReady'}`,
        );
      return merged;
    });
  }

  private async updateNodeConditions(
    name: string,
    change: (current: Condition[]) => Condition[] | undefined,
  ): Promise<void> {
    let node: Node;
    try {
      node = (await this.options.handlers.get('Node', '', name)).object as Node;
    } catch (err) {
      if (err instanceof NotFoundError) return; // not registered (yet)
      throw err;
    }
    const conditions = change(node.status?.conditions ?? []);
    if (!conditions) return;
    const { resourceVersion: _rv, ...metadata } = node.metadata;
    await this.options.handlers.updateStatus({ ...node, metadata, status: { ...node.status, conditions } });
  }

  /** Nodes whose agent went silent: Ready=Unknown, as every other condition. */
  private async markSilentNodes(): Promise<void> {
    const grace = this.options.nodeGraceMs ?? 40_000;
    const now = this.now();
    let nodes: Node[];
    try {
      nodes = (await this.options.handlers.list('Node')).items.map((i) => i.object as Node);
    } catch {
      return;
    }
    for (const node of nodes) {
      const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
      if (!ready || ready.status === 'Unknown') continue;
      const beat = Date.parse(ready.lastHeartbeatTime ?? ready.lastTransitionTime ?? '');
      if (Number.isNaN(beat) || now.getTime() - beat <= grace) continue;
      const at = rfc3339Seconds(now);
      this.options.log.warn(
        { node: node.metadata.name, lastHeartbeat: ready.lastHeartbeatTime },
        'node stopped posting status; marking it NotReady',
      );
      this.events.record(
        nodeRef(node.metadata.name!),
        'Normal',
        'NodeNotReady',
        `Node ${node.metadata.name} status is now: NodeNotReady`,
      );
      await this.updateNodeConditions(node.metadata.name!, (current) =>
        current.map((c) => ({
          ...c,
          status: 'Unknown',
          reason: 'NodeStatusUnknown',
          message: 'skiff agent stopped posting node status',
          lastTransitionTime: c.status === 'Unknown' ? c.lastTransitionTime : at,
        })),
      ).catch((err) => this.options.log.warn({ err: errorMessage(err) }, 'marking a node NotReady failed'));
    }
  }
}

function nodeRef(name: string): { kind: string; apiVersion: string; name: string } {
  return { kind: 'Node', apiVersion: 'v1', name };
}

/** The reported conditions replace those of the same type; others are kept. */
function mergeConditions(current: Condition[], reported: Condition[]): Condition[] {
  const byType = new Map(current.map((c) => [c.type, c]));
  for (const c of reported) {
    if (typeof c?.type !== 'string' || typeof c.status !== 'string') continue;
    byType.set(c.type, c);
  }
  return [...byType.values()];
}
