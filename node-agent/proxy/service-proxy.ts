/**
 * ServiceProxy — a node's Service data plane (kube-proxy's job) in the node's table `inet skiff`.
 *
 *   services, endpointSlices informers (service-informers.ts, shared with the node's DNS)
 *        │ a change → its Service's key marked dirty (a slice marks the Service it names)
 *        ▼ after `batchMs` (a burst is one write)
 *   planService(each dirty Service) → gatherTable(every plan) → changeScript(applied, wanted)
 *        ▼
 *   nft -f (one transaction, in the host's namespace) → applied = wanted
 *
 * The first write, a write after a failed one and one every `fullResyncMs` are full scripts
 * (service-table.ts): whatever the kernel holds, it ends up holding exactly the wanted objects.
 * Writes happen one at a time; changes that arrive during one are written by the next.
 *
 * The table itself (its maps and the chains that jump to them) is PodNetwork's, written by
 * prepareNode, which must run first; PodNetwork.removeNode removes it with everything here.
 */
import { parseCidr } from '../../proto/cidr.js';
import { serviceKeyOfSlice } from '../../proto/endpoint-slices.js';
import { errorMessage } from '../../proto/errors.js';
import { componentLogger, type Logger } from '../../proto/support/logger.js';
import { SLICES_BY_SERVICE, type ServiceInformers } from '../agent/service-informers.js';
import { commandNetExec, type NetExec } from '../runtime/net/net-exec.js';
import { planService, type NodeFacts, type ServicePlan } from './service-plan.js';
import { EMPTY_TABLE, changeScript, fullScript, gatherTable, type ServiceTable } from './service-table.js';

export interface ServiceProxyOptions {
  informers: ServiceInformers;
  nodeName: string;
  /** The cluster CIDR: traffic from outside it to a ClusterIP is masqueraded. */
  clusterCIDR: string;
  /** The host's network namespace (a path), as PodNetwork's; absent: this process's own. */
  hostNetns?: string;
  /** Wait after a change before writing, so a burst is one write; default 50 ms. */
  batchMs?: number;
  /** Every object written again this often; default 1 h (as kube-proxy's nftables mode). */
  fullResyncMs?: number;
  /** Wait before writing again after a failed write; default 1 s. */
  retryMs?: number;
  exec?: Pick<NetExec, 'nft'>;
  log?: Logger;
}

/** What one write did (the latest is `lastWrite`; tests and the bench read it). */
export interface ProxyWrite {
  full: boolean;
  /** Services planned again for it. */
  planned: number;
  /** Bytes of nft script written. */
  scriptBytes: number;
  /** Planning and script building, then nft. */
  planMs: number;
  nftMs: number;
  /** performance.now() when the write ended. */
  at: number;
}

export class ServiceProxy {
  private readonly node: NodeFacts;
  private readonly exec: Pick<NetExec, 'nft'>;
  private readonly log: Logger;
  private readonly batchMs: number;
  private readonly plans = new Map<string, ServicePlan>();
  private readonly nodeLocal = new Map<string, string>();
  private applied: ServiceTable = EMPTY_TABLE;
  private dirty = new Set<string>();
  private full = true;
  private timer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  private readonly unsubscribe: (() => void)[] = [];
  private writes = 0;
  lastWrite: ProxyWrite | undefined;

  constructor(private readonly options: ServiceProxyOptions) {
    this.node = { nodeName: options.nodeName, clusterCIDR: parseCidr(options.clusterCIDR, 'clusterCIDR') };
    this.exec = options.exec ?? commandNetExec;
    this.log = options.log ?? componentLogger('service-proxy', { node: options.nodeName });
    this.batchMs = options.batchMs ?? 50;
  }

  /**
   * Follows the informers (started by their owner) and writes the table once both have listed.
   * Resolves after that first write (or its failure, which is retried).
   */
  async start(): Promise<void> {
    const { services, endpointSlices } = this.options.informers;
    this.unsubscribe.push(
      services.onChange((key) => this.changed(key)),
      endpointSlices.onChange((key, _change, lastKnown) => {
        for (const slice of [endpointSlices.get(key)?.object, lastKnown?.object]) {
          const service = slice ? serviceKeyOfSlice(slice) : undefined;
          if (service !== undefined) this.changed(service);
        }
      }),
    );
    await Promise.all([services.waitForSync(), endpointSlices.waitForSync()]);
    if (this.stopped) return;
    this.started = true;
    for (const cached of services.list()) this.dirty.add(cached.key);
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.write();
    const every = this.options.fullResyncMs ?? 3_600_000;
    this.resyncTimer = setInterval(() => {
      this.full = true;
      this.schedule(0);
    }, every);
    this.resyncTimer.unref();
  }

  /**
   * Sends every port of Service `namespace/name` to `ip` (an address of this node serving it on the
   * same port numbers, such as a node-local DNS server for kube-system/kube-dns) instead of its
   * endpoints; `undefined` gives the Service back its endpoints.
   */
  setNodeLocal(service: string, ip: string | undefined): void {
    if (ip === undefined) this.nodeLocal.delete(service);
    else this.nodeLocal.set(service, ip);
    this.changed(service);
  }

  /** Stops following changes and waits for a write under way. The table keeps what it has. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const off of this.unsubscribe.splice(0)) off();
    clearTimeout(this.timer);
    clearInterval(this.resyncTimer);
    await this.writing;
  }

  /** Services with objects in the table now. */
  get services(): number {
    return this.plans.size;
  }

  private changed(service: string): void {
    this.dirty.add(service);
    if (this.started) this.schedule(this.batchMs);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // one write at a time: a change during a write is written by the next
      if (this.writing) void this.writing.then(() => this.schedule(0));
      else void this.write();
    }, delayMs);
  }

  private write(): Promise<void> {
    const run = this.writeNow().finally(() => (this.writing = undefined));
    this.writing = run;
    return run;
  }

  private async writeNow(): Promise<void> {
    if (this.stopped) return;
    const started = performance.now();
    const dirty = this.dirty;
    this.dirty = new Set();
    for (const key of dirty) this.plan(key);
    const { table, conflicts } = gatherTable(this.plans);
    for (const conflict of conflicts) this.log.warn({ conflict }, 'service address claimed twice');
    const full = this.full;
    const script = full ? fullScript(this.applied, table) : changeScript(this.applied, table);
    const planned = performance.now();
    if (script === '') return;
    try {
      await this.exec.nft(this.options.hostNetns, script);
    } catch (err) {
      // nft -f is one transaction: the kernel still holds what it held; write all of it next time
      this.full = true;
      this.log.warn(
        { err: errorMessage(err), full, retryMs: this.options.retryMs ?? 1000 },
        'writing the service rules failed',
      );
      if (!this.stopped) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          void this.write();
        }, this.options.retryMs ?? 1000);
        this.timer.unref();
      }
      return;
    }
    this.applied = table;
    this.full = false;
    const ended = performance.now();
    this.lastWrite = {
      full,
      planned: dirty.size,
      scriptBytes: script.length,
      planMs: planned - started,
      nftMs: ended - planned,
      at: ended,
    };
    this.writes++;
    const fields = { ...this.lastWrite, services: this.plans.size, at: undefined };
    if (full || this.writes === 1) this.log.info(fields, 'service rules written');
    else this.log.debug(fields, 'service rules updated');
  }

  private plan(key: string): void {
    const { services, endpointSlices } = this.options.informers;
    const service = services.get(key)?.object;
    if (service === undefined) {
      this.plans.delete(key);
      return;
    }
    const slices = endpointSlices.byIndex(SLICES_BY_SERVICE, key).map((c) => c.object);
    const plan = planService(service, slices, this.node, this.nodeLocal.get(key));
    const before = this.plans.get(key);
    if (plan.problems.length > 0 && plan.problems.join() !== before?.problems.join())
      this.log.warn({ service: key, problems: plan.problems }, 'service partly left out');
    this.plans.set(key, plan);
  }
}
