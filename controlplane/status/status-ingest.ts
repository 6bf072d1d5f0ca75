/**
 * Status ingest: what agents report on NATS (proto/node-reports.ts) written to etcd.
 *
 *   skiff.node.<n>.pods            → the latest report per pod kept, written every flushMs in
 *   skiff.node-group.<g>.pods        batched transactions (ApiHandlers.updatePodStatuses: up to 128
 *                                    pods a transaction, each a compare-and-swap on the cached copy);
 *                                    a burst of reports about one pod costs one write, never older
 *                                    over newer (seq), only for a pod of that uid bound to the
 *                                    reporting node (a group's: to one of its members, by label)
 *   skiff.node.<n>.heartbeat       → remembered in memory (when each node was last heard); the
 *   skiff.node-group.<g>.heartbeat   Node's conditions written only when they change, or every
 *                                    nodeStatusReportMs (5 min) to renew lastHeartbeatTime, as the
 *                                    kubelet's node status updates with its Lease in between
 *   every checkMs                  → a Node not heard within nodeGraceMs becomes Ready=Unknown
 *                                    (NodeStatusUnknown), as Kubernetes' node lifecycle controller
 *                                    marks it
 *   on start                       → skiff.control.resync: every agent reports every pod again, so
 *                                    what changed while the control plane was away reaches etcd
 *
 * Several control planes: pod reports go to one of them (a NATS queue group); heartbeats go to
 * every one (no queue group: each keeps its own "last heard" map, so a standby that becomes leader
 * knows which nodes are alive), and only the leader (`leads`) writes Node status and marks silent
 * nodes. A node never heard since this control plane started gets the grace from its start.
 */
import type { NatsConnection, Subscription } from 'nats';
import { NotFoundError, errorMessage } from '../../proto/errors.js';
import type { Condition, Node, Pod } from '../../proto/gen/types.js';
import {
  NODE_SUBJECT_PREFIX,
  RESYNC_SUBJECT,
  decodeReport,
  groupResyncSubject,
  nodeResyncSubject,
  nodeSubjectToken,
  type NodeGroupHeartbeat,
  type NodeHeartbeat,
  type PodStatusBatch,
  type PodStatusReport,
} from '../../proto/node-reports.js';
import {
  NODE_GROUP_LABEL,
  NODE_GROUP_SUBJECT_PREFIX,
  isNodeGroupMemberName,
} from '../../proto/node-group.js';
import type { Logger } from '../../proto/support/logger.js';
import type { ApiHandlers, PodStatusWrite } from '../api/handlers.js';
import { MAX_WRITES_PER_TRANSACTION } from '../store/store.js';
import { EventRecorder } from '../../proto/events.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';

/** The NATS queue group of every control plane's pod status ingest. */
const STATUS_INGEST_QUEUE = 'skiff-status-ingest';

export interface StatusIngestOptions {
  nats: NatsConnection;
  handlers: ApiHandlers;
  log: Logger;
  /** Default 50 ms. */
  flushMs?: number;
  /** Transactions (of up to 128 pods) or Node writes at once; default 16. */
  concurrency?: number;
  /** Default 40 s (Kubernetes' node-monitor-grace-period). */
  nodeGraceMs?: number;
  /** A Node's unchanged status is written again this often (default 5 min, the kubelet's). */
  nodeStatusReportMs?: number;
  /**
   * Whether this process leads now: writes Node status from heartbeats and marks silent nodes
   * NotReady; default always. Pod reports are ingested either way.
   */
  marksSilentNodes?: () => boolean;
  /** Default 5 s. */
  checkMs?: number;
  /**
   * The Nodes as an informer holds them (decoded once per change): what the silent-node check
   * walks. Absent: the Nodes are listed from the watch cache at each check (decoded every time).
   */
  nodes?: { list(): { object: Node }[] };
  now?: () => Date;
}

/** Who reported a pod's status: a node (its subject token), or a group's member. */
interface PendingPod {
  reporter: { nodeToken: string } | { group: string; node: string };
  report: PodStatusReport;
}

/** A node's heartbeat, and the group that sent it for a member. */
type GroupedHeartbeat = NodeHeartbeat & { group?: string };

/** What was last written (or found stored) of a pod whose status this process reported. */
interface PodWritten {
  seq: number;
  revision: bigint;
}

export class StatusIngest {
  private readonly subscriptions: Subscription[] = [];
  private pendingPods = new Map<string, PendingPod>();
  private pendingNodes = new Map<string, GroupedHeartbeat>();
  /** Per pod uid: the highest seq written (or skipped as unchanged), and the revision written at. */
  private readonly podsWritten = new Map<string, PodWritten>();
  private readonly seqByNode = new Map<string, number>();
  /** When each node was last heard (ms), by this process. */
  private readonly lastHeard = new Map<string, number>();
  /** Per node: the conditions' signature stored, and when this process wrote or found it (ms). */
  private readonly nodeStatusWritten = new Map<string, { signature: string; at: number }>();
  /** Nodes found to be their group's (label), and when they were looked up (ms). */
  private readonly groupMembers = new Map<string, { group: string; at: number }>();
  /** Whether this process led at the last check. */
  private led = false;
  /** When each node's or group's resync was last asked for (ms). */
  private readonly resyncAsked = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly now: () => Date;
  private startedAt = 0;
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

  private leads(): boolean {
    return this.options.marksSilentNodes?.() ?? true;
  }

  start(): void {
    const { nats } = this.options;
    this.startedAt = this.now().getTime();
    const on = (subject: string, queue: boolean, receive: (subject: string, data: Uint8Array) => void) =>
      nats.subscribe(subject, {
        ...(queue ? { queue: STATUS_INGEST_QUEUE } : {}),
        callback: (err, msg) => {
          if (!err) receive(msg.subject, msg.data);
        },
      });
    this.subscriptions.push(
      // one queue group: with several control planes each report is written by one of them
      on(`${NODE_SUBJECT_PREFIX}.*.pods`, true, (subject, data) => this.receivePods(subject, data)),
      on(`${NODE_GROUP_SUBJECT_PREFIX}.*.pods`, true, (subject, data) => this.receivePods(subject, data)),
      // every control plane hears every heartbeat
      on(`${NODE_SUBJECT_PREFIX}.*.heartbeat`, false, (subject, data) =>
        this.receiveHeartbeat(subject, data),
      ),
      on(`${NODE_GROUP_SUBJECT_PREFIX}.*.heartbeat`, false, (subject, data) =>
        this.receiveGroupHeartbeat(subject, data),
      ),
    );
    void (async () => {
      for await (const s of nats.status()) {
        if (this.stopped) return;
        if (s.type === 'reconnect') this.askForResync();
      }
    })();
    this.askForResync();
    this.checkTimer = setInterval(() => {
      const leads = this.leads();
      // a leader that died may have taken reports in hand with it: every agent reports again
      if (leads && !this.led) this.askForResync();
      this.led = leads;
      if (leads) void this.markSilentNodes();
      else this.nodeStatusWritten.clear(); // a new leader checks what is stored before it writes
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

  /**
   * Every agent (or the one on `subject`: a node's, a node group's) reports every pod status
   * again. One subject is asked at most once a second: a group whose members all return in one
   * heartbeat re-sends its pods once.
   */
  private askForResync(subject = RESYNC_SUBJECT): void {
    const now = this.now().getTime();
    if (subject !== RESYNC_SUBJECT && now - (this.resyncAsked.get(subject) ?? -Infinity) < 1000) return;
    this.resyncAsked.set(subject, now);
    if (this.resyncAsked.size > 10_000) this.resyncAsked.clear(); // a bound, not a cache
    try {
      this.options.nats.publish(subject, '{}');
    } catch (err) {
      this.options.log.warn({ err: errorMessage(err) }, 'asking agents to resync failed');
    }
  }

  private receivePods(subject: string, data: Uint8Array): void {
    const [, , token = '', ...rest] = subject.split('.');
    const group = subject.startsWith(`${NODE_GROUP_SUBJECT_PREFIX}.`) ? token : undefined;
    let batch: PodStatusBatch;
    try {
      batch = decodeReport<PodStatusBatch>(subject, data);
      if (!Array.isArray(batch.reports)) throw new Error(`report on ${subject} has no reports list`);
    } catch (err) {
      this.options.log.warn({ subject, err: errorMessage(err) }, 'dropping a malformed status report');
      return;
    }
    if (rest.length !== 1) return;
    const nodeReporter = { nodeToken: token };
    for (const report of batch.reports) {
      if (!report || typeof report.uid !== 'string' || typeof report.seq !== 'number' || !report.status)
        continue;
      let reporter: PendingPod['reporter'];
      if (group === undefined) reporter = nodeReporter;
      else if (typeof report.node === 'string' && isNodeGroupMemberName(group, report.node))
        reporter = { group, node: report.node };
      else {
        this.options.log.warn(
          { subject, node: report.node, pod: `${report.namespace}/${report.name}` },
          'dropping a status report for a node outside the reporting group',
        );
        continue;
      }
      if ((this.podsWritten.get(report.uid)?.seq ?? 0) >= report.seq) continue;
      const key = `${report.namespace}/${report.name}`;
      const queued = this.pendingPods.get(key);
      if (queued && queued.report.uid === report.uid && queued.report.seq >= report.seq) continue;
      this.pendingPods.set(key, { reporter, report });
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
    this.heard(beat);
  }

  /** A group's heartbeat: one beat for each member it names. */
  private receiveGroupHeartbeat(subject: string, data: Uint8Array): void {
    const group = subject.split('.')[2] ?? '';
    let beat: NodeGroupHeartbeat;
    try {
      beat = decodeReport<NodeGroupHeartbeat>(subject, data);
      if (!Array.isArray(beat.nodes) || !Array.isArray(beat.conditions) || typeof beat.seq !== 'number')
        throw new Error(`heartbeat on ${subject} lacks nodes, conditions or seq`);
    } catch (err) {
      this.options.log.warn({ subject, err: errorMessage(err) }, 'dropping a malformed heartbeat');
      return;
    }
    for (const node of beat.nodes) {
      if (typeof node !== 'string' || !isNodeGroupMemberName(group, node)) continue;
      this.heard({ node, seq: beat.seq, time: beat.time, conditions: beat.conditions }, group);
    }
  }

  /** A node was heard: remembered; its Node written when the leader has something new to say. */
  private heard(beat: GroupedHeartbeat, group?: string): void {
    if ((this.seqByNode.get(beat.node) ?? 0) >= beat.seq) return;
    this.seqByNode.set(beat.node, beat.seq);
    const now = this.now().getTime();
    this.lastHeard.set(beat.node, now);
    if (!this.leads()) return;
    const written = this.nodeStatusWritten.get(beat.node);
    if (
      written !== undefined &&
      written.signature === conditionSignature(beat.conditions) &&
      now - written.at < (this.options.nodeStatusReportMs ?? 300_000)
    )
      return;
    if (group !== undefined) beat = { ...beat, group };
    const queued = this.pendingNodes.get(beat.node);
    if (queued && queued.seq >= beat.seq) return;
    this.pendingNodes.set(beat.node, beat);
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
    const work: (() => Promise<void>)[] = [...nodes.map((beat) => () => this.writeHeartbeat(beat))];
    for (let at = 0; at < pods.length; at += MAX_WRITES_PER_TRANSACTION) {
      const chunk = pods.slice(at, at + MAX_WRITES_PER_TRANSACTION);
      work.push(() => this.writePods(chunk));
    }
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

  /** One transaction's worth of pod statuses (ApiHandlers.updatePodStatuses). */
  private async writePods(pods: PendingPod[]): Promise<void> {
    const { handlers, log } = this.options;
    const fresh = pods.filter((p) => (this.podsWritten.get(p.report.uid)?.seq ?? 0) < p.report.seq);
    const writes: PodStatusWrite[] = [];
    for (const { reporter, report } of fresh) {
      const member =
        'group' in reporter
          ? (this.knownGroupMember(reporter.group, reporter.node) ??
            (await this.isGroupMember(reporter.group, reporter.node)))
          : true;
      const minRevision = this.podsWritten.get(report.uid)?.revision;
      writes.push({
        namespace: report.namespace,
        name: report.name,
        uid: report.uid,
        status: report.status,
        ...(minRevision !== undefined ? { minRevision } : {}),
        accept: (pod: Pod) =>
          'group' in reporter
            ? member && pod.spec.nodeName === reporter.node
            : nodeSubjectToken(pod.spec.nodeName ?? '') === reporter.nodeToken,
      });
    }
    if (writes.length === 0) return;
    const outcomes = await handlers.updatePodStatuses(writes);
    outcomes.forEach((outcome, i) => {
      const { reporter, report } = fresh[i]!;
      const pod = `${report.namespace}/${report.name}`;
      if (outcome === 'gone') this.podsWritten.delete(report.uid);
      else if (outcome === 'refused')
        log.warn(
          { pod, reportedBy: 'group' in reporter ? reporter.node : reporter.nodeToken },
          'dropping a status report from a node the pod is not bound to',
        );
      else if (outcome instanceof Error)
        log.warn({ pod, err: errorMessage(outcome) }, 'writing a reported status failed');
      else {
        const revision =
          outcome === 'unchanged' ? (this.podsWritten.get(report.uid)?.revision ?? 0n) : outcome.written;
        const seq = Math.max(report.seq, this.podsWritten.get(report.uid)?.seq ?? 0);
        this.podsWritten.set(report.uid, { seq, revision });
      }
    });
  }

  /** Whether `node` is a Node `group` registered, as looked up within 5 min; undefined: not known. */
  private knownGroupMember(group: string, node: string): boolean | undefined {
    const known = this.groupMembers.get(node);
    if (known === undefined || this.now().getTime() - known.at >= 300_000) return undefined;
    return known.group === group;
  }

  /** Whether `node` is a Node `group` registered (its label), looked up again after 5 min. */
  private async isGroupMember(group: string, node: string): Promise<boolean> {
    const known = this.knownGroupMember(group, node);
    if (known !== undefined) return known;
    const now = this.now().getTime();
    let labels: Record<string, string> = {};
    try {
      const found = (await this.options.handlers.get('Node', '', node, { minRevision: 0n })).object;
      labels = found.metadata.labels ?? {};
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    const owner = labels[NODE_GROUP_LABEL] ?? '';
    this.groupMembers.set(node, { group: owner, at: now });
    return owner === group;
  }

  private async writeHeartbeat(beat: GroupedHeartbeat): Promise<void> {
    if (beat.group !== undefined && !(await this.isGroupMember(beat.group, beat.node))) return;
    const signature = conditionSignature(beat.conditions);
    const reportMs = this.options.nodeStatusReportMs ?? 300_000;
    let returned = false;
    let written: { signature: string; at: number } | undefined;
    await this.updateNodeConditions(beat.node, (current) => {
      const now = this.now().getTime();
      const ready = current.find((c) => c.type === 'Ready');
      const stored = Date.parse(ready?.lastHeartbeatTime ?? '');
      // what is stored already says this, recently enough (another leader wrote it)
      if (conditionSignature(current) === signature && now - stored < reportMs) {
        this.nodeStatusWritten.set(beat.node, { signature, at: stored });
        return undefined;
      }
      const wasReady = ready?.status === 'True';
      returned = ready?.status === 'Unknown';
      const merged = mergeConditions(current, beat.conditions);
      const nowReady = merged.find((c) => c.type === 'Ready')?.status === 'True';
      if (nowReady !== wasReady)
        this.events.record(
          nodeRef(beat.node),
          'Normal',
          nowReady ? 'NodeReady' : 'NodeNotReady',
          `Node ${beat.node} status is now: ${nowReady ? 'NodeReady' : 'NodeNotReady'}`,
        );
      written = { signature: conditionSignature(merged), at: now };
      return merged;
    }).catch((err: unknown) => {
      // nothing is taken as stored: the next heartbeat writes again
      this.nodeStatusWritten.delete(beat.node);
      throw err;
    });
    if (written !== undefined) this.nodeStatusWritten.set(beat.node, written);
    // while it was away its pods were marked not ready (node lifecycle): it reports them all again
    if (returned)
      this.askForResync(
        beat.group !== undefined ? groupResyncSubject(beat.group) : nodeResyncSubject(beat.node),
      );
  }

  private async updateNodeConditions(
    name: string,
    change: (current: Condition[]) => Condition[] | undefined,
  ): Promise<void> {
    let node: Node;
    try {
      // the cached copy: what the change is decided on (the write reads the Node again)
      node = (await this.options.handlers.get('Node', '', name, { minRevision: 0n })).object as Node;
    } catch (err) {
      if (err instanceof NotFoundError) return; // not registered (yet)
      throw err;
    }
    const conditions = change(node.status?.conditions ?? []);
    if (!conditions) return;
    const { resourceVersion: _rv, ...metadata } = node.metadata;
    await this.options.handlers.updateStatus({ ...node, metadata, status: { ...node.status, conditions } });
  }

  /** Nodes not heard within the grace: Ready=Unknown, as every other condition. */
  private async markSilentNodes(): Promise<void> {
    const grace = this.options.nodeGraceMs ?? 40_000;
    const now = this.now();
    let nodes: Node[];
    try {
      nodes = this.options.nodes
        ? this.options.nodes.list().map((cached) => cached.object)
        : (await this.options.handlers.list('Node', { resourceVersion: '0' })).items.map(
            (i) => i.object as Node,
          );
    } catch {
      return;
    }
    for (const node of nodes) {
      const name = node.metadata.name!;
      const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
      if (!ready || ready.status === 'Unknown') continue;
      const stored = Date.parse(ready.lastHeartbeatTime ?? ready.lastTransitionTime ?? '');
      const heard = Math.max(
        this.lastHeard.get(name) ?? 0,
        Number.isNaN(stored) ? 0 : stored,
        this.startedAt,
      );
      if (now.getTime() - heard <= grace) continue;
      const at = rfc3339Seconds(now);
      this.options.log.warn(
        { node: name, lastHeard: new Date(heard).toISOString() },
        'node stopped posting status; marking it NotReady',
      );
      this.events.record(nodeRef(name), 'Normal', 'NodeNotReady', `Node ${name} status is now: NodeNotReady`);
      this.nodeStatusWritten.delete(name);
      await this.updateNodeConditions(name, (current) =>
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

/** What a node's conditions say, without their times: a change of it is written at once. */
function conditionSignature(conditions: readonly Condition[]): string {
  return conditions
    .filter((c) => typeof c?.type === 'string')
    .map((c) => `${c.type}=${c.status}/${c.reason ?? ''}/${c.message ?? ''}`)
    .sort()
    .join(';');
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
