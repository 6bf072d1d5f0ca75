/**
 * PodNetwork — one node's pod network: a bridge holding the first address of the node's pod CIDR,
 * a veth pair per sandbox (its end `eth0` in the sandbox's namespace with the next free address
 * and a default route via the bridge), the node's nftables table `inet skiff` (host ports), the
 * routes to the other nodes' pod CIDRs (host-gw, or a VXLAN device), and `unreachable` routes for
 * the cluster and service CIDRs. It is the runtime's SandboxNetwork hook (../pod-runtime.ts): the
 * runtime calls setUp and tearDown; the agent calls the rest.
 *
 * Lifecycle
 *   prepareNode   unreachable routes → table inet skiff (with the host ports of the leases kept)
 *                 → VXLAN device (vxlan; removed with host-gw) → bridge (made, addressed, up)
 *                 → the host's own connections to the service CIDR routed onto the bridge (a
 *                   policy rule for `iif lo`: the table DNATs ClusterIPs in its output hook)
 *                 → sysctls → veths of kept leases back on the bridge
 *   routePeers    the routes (and VXLAN entries) to the other nodes' pod CIDRs made as given
 *                 (peer-routes.ts: a diff, so only what changed is touched)
 *   setUp         lease (address, veth name, host ports; refused when another sandbox holds a port)
 *                 saved → veth pair → eth0 addressed, up, default route → host ports in the table
 *   tearDown      veth deleted (its peer goes with it) → lease released → host ports rewritten
 *   releaseExcept tearDown of every lease whose sandbox is not among the live ones (start-up reconcile)
 *   removeNode    veths, the service CIDR's policy rule, bridge, VXLAN device, peer routes, table, then the unreachable routes
 *                 removed; sysctls put back; state cleared
 *
 * Invariants
 * - The host namespace gets `unreachable` routes for the cluster (and service) CIDR before anything
 *   else of skiff, and loses them last: a packet to a pod address that neither a bridge of this
 *   host nor a route to another node's pod CIDR holds is dropped here, never sent on. No default
 *   route is added on the host; forwarding is enabled only in a host namespace given as
 *   `hostNetns` (or when asked); out of the bridge the table lets through only the pod CIDR's own
 *   packets (masqueraded when not to the cluster CIDR) and replies to host-port connections
 *   (nft-ruleset.ts).
 * - A lease is saved before the network is touched, and released only once its veth is gone, so
 *   whatever a set-up made (all of it, or part) is found and undone by tearDown or releaseExcept,
 *   and an address is never held by two sandboxes.
 * - setUp and tearDown are idempotent: setUp again keeps a sandbox's address and a working veth
 *   pair; tearDown of what never was, or of a sandbox whose namespace is gone, succeeds.
 * - Leases and the table change one at a time (in this process); the table's host ports are
 *   always rewritten from the leases, whole, in one nft transaction.
 */
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../../../proto/errors.js';
import { componentLogger, type Logger } from '../../../proto/support/logger.js';
import { DEFAULT_NETWORK_BACKEND, type NetworkBackend } from '../../../proto/network-plan.js';
import { validatePortMappings } from '../containers/validate.js';
import type { SandboxNetwork, SandboxNetworkStatus, SandboxNetworkTarget } from '../pod-runtime.js';
import { cidrWithin, cidrsOverlap, parseCidr, type Cidr } from '../../../proto/cidr.js';
import {
  bridgeScript,
  checkBridge,
  checkNetnsPath,
  podAddressScript,
  repairPlan,
  staleAddresses,
  unreachableRoutesScript,
  localServiceRouteScript,
  removeLocalServiceRuleScript,
  type ShownRule,
  vethAttachScript,
  vethCreateScript,
  type ShownLink,
  type ShownRoute,
} from './ip-scripts.js';
import {
  capacityOf,
  gatewayOf,
  lease as leaseFor,
  leasesExcept,
  release,
  stateForCidr,
  type Lease,
  type LeaseState,
} from './ipam.js';
import { LeaseFile } from './lease-file.js';
import { bridgeMac, POD_INTERFACE, VETH_PREFIX, VXLAN_DEVICE, VXLAN_OVERHEAD, vethName } from './names.js';
import { NetCommandError, commandNetExec, type NetExec } from './net-exec.js';
import { hostPortsScript, nodeTableScript, removeTableScript, type HostPortRule } from './nft-ruleset.js';
import {
  checkPeers,
  peerPlan,
  uplinkOf,
  vtepOf,
  vxlanDevicePlan,
  vxlanDeviceScript,
  type Peer,
  type PeerScope,
  type ShownFdbEntry,
  type ShownNeighbour,
  type UnroutedPeer,
} from './peer-routes.js';

export interface PodNetworkOptions {
  /** This node's block of the cluster CIDR (the Node's `spec.podCIDR`), e.g. `10.244.3.0/24`. */
  podCIDR: string;
  /** Every pod address of the cluster (`10.244.0.0/16`); the node's block lies inside. */
  clusterCIDR: string;
  /** The Services' virtual addresses (`10.96.0.0/12`), once known: unreachable on the host too. */
  serviceCIDR?: string;
  /** The bridge's name; default `skiff0`. */
  bridge?: string;
  /** Where the leases are kept: a directory of this node's agent (made when missing). */
  stateDir: string;
  /**
   * The host's network namespace, as a path (`/run/netns/<name>`): every host-side command runs
   * there. Absent: this process's own namespace (`skiff up` on one machine).
   */
  hostNetns?: string;
  /** Of the bridge and every veth; default 1500 (with vxlan, at most the uplink's less 50). */
  mtu?: number;
  /** How the other nodes' pod CIDRs are reached (the cluster's, from Version); default host-gw. */
  backend?: NetworkBackend;
  /** This node's address (its InternalIP): the VXLAN device's local address. Needed by vxlan. */
  nodeIP?: string;
  /**
   * Turn on the host's forwarding (net.ipv4.ip_forward) so that host ports are reached from other
   * hosts (and put the old value back at removeNode). Default: only in a `hostNetns`, never in the
   * process's own namespace, whose forwarding reaches the machine's uplink.
   */
  ipForward?: boolean;
  log?: Logger;
  /** How commands run (tests give a recorder). */
  exec?: NetExec;
  now?: () => Date;
}

const BRIDGE_NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export class PodNetwork implements SandboxNetwork {
  readonly podCIDR: Cidr;
  readonly clusterCIDR: Cidr;
  readonly serviceCIDR: Cidr | undefined;
  readonly bridge: string;
  /** The bridge's address: the pods' default gateway. */
  readonly gateway: string;
  readonly hostNetns: string | undefined;
  readonly backend: NetworkBackend;
  private readonly nodeIP: string | undefined;
  private readonly configuredMtu: number;
  /** The bridge's and veths' MTU: the configured one, less with vxlan over a small uplink (prepareNode). */
  private effectiveMtu: number;
  private readonly ipForward: boolean;
  private readonly file: LeaseFile;
  private readonly exec: NetExec;
  private readonly log: Logger;
  private readonly now: () => Date;
  private state: LeaseState | undefined;
  /** Lease changes and table writes, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: PodNetworkOptions) {
    this.podCIDR = parseCidr(opts.podCIDR, 'podCIDR');
    this.clusterCIDR = parseCidr(opts.clusterCIDR, 'clusterCIDR');
    this.serviceCIDR =
      opts.serviceCIDR !== undefined ? parseCidr(opts.serviceCIDR, 'serviceCIDR') : undefined;
    if (!cidrWithin(this.podCIDR, this.clusterCIDR))
      throw new InvalidArgumentError(
        `podCIDR: ${this.podCIDR.text} is not inside the cluster CIDR ${this.clusterCIDR.text}`,
        'podCIDR',
      );
    if (capacityOf(this.podCIDR) < 1)
      throw new InvalidArgumentError(
        `podCIDR: ${this.podCIDR.text} holds no pod address (at most /30)`,
        'podCIDR',
      );
    if (this.serviceCIDR && cidrsOverlap(this.serviceCIDR, this.clusterCIDR))
      throw new InvalidArgumentError(
        `serviceCIDR: ${this.serviceCIDR.text} overlaps the cluster CIDR ${this.clusterCIDR.text}`,
        'serviceCIDR',
      );
    this.bridge = opts.bridge ?? 'skiff0';
    if (!BRIDGE_NAME_RE.test(this.bridge) || this.bridge.startsWith(VETH_PREFIX))
      throw new InvalidArgumentError(
        `bridge: "${this.bridge}" is not a bridge name skiff takes (1-15 of letters, digits, '_', '.', '-'; not starting ${VETH_PREFIX})`,
        'bridge',
      );
    this.configuredMtu = this.effectiveMtu = opts.mtu ?? 1500;
    if (!Number.isInteger(this.configuredMtu) || this.configuredMtu < 576 || this.configuredMtu > 65535)
      throw new InvalidArgumentError(`mtu: ${opts.mtu} is not an MTU (576-65535)`, 'mtu');
    this.backend = opts.backend ?? DEFAULT_NETWORK_BACKEND;
    if (this.backend === 'vxlan' && opts.nodeIP === undefined)
      throw new InvalidArgumentError("nodeIP: the vxlan backend needs the node's address", 'nodeIP');
    this.nodeIP = opts.nodeIP;
    if (opts.hostNetns !== undefined) checkNetnsPath(opts.hostNetns);
    this.hostNetns = opts.hostNetns;
    this.ipForward = opts.ipForward ?? opts.hostNetns !== undefined;
    this.gateway = gatewayOf(this.podCIDR);
    this.file = new LeaseFile(opts.stateDir);
    this.exec = opts.exec ?? commandNetExec;
    this.log = opts.log ?? componentLogger('pod-network', { podCIDR: this.podCIDR.text });
    this.now = opts.now ?? (() => new Date());
  }

  get mtu(): number {
    return this.effectiveMtu;
  }

  /** Every lease, as of now (a copy). */
  leases(): Lease[] {
    return Object.values(this.loaded().leases).map((l) => ({ ...l, portMappings: [...l.portMappings] }));
  }

  // ------------------------------------------------------------------ the node

  /**
   * Makes the host ready for pods, or makes it so again (after an agent restart, or something
   * removed part of it): idempotent, and it keeps the sandboxes that run (their veths are put back
   * on the bridge, their host ports back in the table).
   */
  async prepareNode(): Promise<void> {
    const started = performance.now();
    await this.serial(async () => {
      const state = this.loaded();
      const host = this.hostNetns;
      // first of all: nothing to a cluster or service address leaves this host
      const routes = (await this.exec.ipJson<ShownRoute[]>(host, ['route', 'show', 'table', 'main'])) ?? [];
      await this.exec.ip(host, unreachableRoutesScript(this.unreachableCidrs(), routes));
      await this.exec.nft(
        host,
        nodeTableScript(
          { bridge: this.bridge, podCIDR: this.podCIDR.text, clusterCIDR: this.clusterCIDR.text },
          rulesOf(state),
        ),
      );
      await this.prepareVxlan();
      const shown = (
        await this.exec.ipJson<ShownLink[]>(host, ['-d', 'addr', 'show', 'dev', this.bridge])
      )?.[0];
      const exists = checkBridge(this.bridge, shown);
      await this.exec.ip(
        host,
        bridgeScript({
          bridge: this.bridge,
          exists,
          mac: bridgeMac(this.gateway),
          mtu: this.mtu,
          gateway: this.gateway,
          prefix: this.podCIDR.prefix,
          staleAddresses: staleAddresses(shown, this.gateway),
        }),
      );
      if (this.serviceCIDR) {
        const rules = (await this.exec.ipJson<ShownRule[]>(host, ['rule', 'show'])) ?? [];
        await this.exec.ip(
          host,
          localServiceRouteScript({
            serviceCIDR: this.serviceCIDR.text,
            bridge: this.bridge,
            gateway: this.gateway,
            rules,
          }),
        );
      }
      await this.setSysctls();
      // sandboxes that outlived the bridge (removed by someone, or a reboot of the bridge only)
      const veths = new Map(
        ((await this.exec.ipJson<ShownLink[]>(host, ['link', 'show', 'type', 'veth'])) ?? []).map((l) => [
          l.ifname,
          l,
        ]),
      );
      const detached = Object.values(state.leases).filter((l) => {
        const link = veths.get(l.veth);
        return link !== undefined && link.master !== this.bridge;
      });
      await this.exec.ip(
        host,
        detached.map((l) => vethAttachScript({ veth: l.veth, bridge: this.bridge })).join(''),
      );
    });
    this.log.info(
      {
        bridge: this.bridge,
        gateway: this.gateway,
        hostNetns: this.hostNetns,
        ms: Math.round(performance.now() - started),
      },
      'pod network ready',
    );
  }

  /**
   * Removes everything skiff added to the host's namespace: every sandbox's veth (their pods lose
   * their network), the bridge, the table, then the unreachable routes; sysctls it changed get their
   * old values; the leases are forgotten. Idempotent.
   */
  async removeNode(): Promise<void> {
    await this.serial(async () => {
      const host = this.hostNetns;
      const state = this.loaded();
      const leased = new Set(Object.values(state.leases).map((l) => l.veth));
      const veths = (await this.exec.ipJson<ShownLink[]>(host, ['link', 'show', 'type', 'veth'])) ?? [];
      const ours = veths.filter(
        (l) => leased.has(l.ifname) || (l.ifname.startsWith(VETH_PREFIX) && l.master === this.bridge),
      );
      await this.exec.ip(host, ours.map((l) => `link del dev ${l.ifname}\n`).join(''));
      if (this.serviceCIDR) {
        const rules = (await this.exec.ipJson<ShownRule[]>(host, ['rule', 'show'])) ?? [];
        await this.exec.ip(host, removeLocalServiceRuleScript(this.serviceCIDR.text, rules));
      }
      if (await this.exec.ipJson(host, ['link', 'show', 'dev', this.bridge])) {
        await this.exec.ip(host, `link del dev ${this.bridge}\n`);
      }
      await this.removeVxlanDevice();
      await this.applyPeers('host-gw', []);
      await this.exec.nft(host, removeTableScript());
      const restore = this.file.loadNode().restore;
      await this.exec.writeSysctls(host, restore);
      const routes = (await this.exec.ipJson<ShownRoute[]>(host, ['route', 'show', 'table', 'main'])) ?? [];
      const unreachable = this.unreachableCidrs().filter((c) =>
        routes.some((r) => r.dst === c && r.type === 'unreachable'),
      );
      await this.exec.ip(host, unreachable.map((c) => `route del unreachable ${c}\n`).join(''));
      this.file.clear();
      this.state = stateForCidr(undefined, this.podCIDR);
    });
    this.log.info({ bridge: this.bridge, hostNetns: this.hostNetns }, 'pod network removed');
  }

  // ------------------------------------------------------------------ other nodes

  /**
   * Makes the host route the pod CIDRs of `candidates` (every other node; this one is left out by
   * the caller) with the cluster's backend, and nothing else of the cluster CIDR: a diff of what
   * the host shows, so a peer added, changed or gone touches its own entries only, and the same
   * peers again change nothing. Returns the peers that are not routed and why (a malformed or
   * overlapping pod CIDR; with host-gw, an address on no connected subnet), for the operator.
   */
  async routePeers(candidates: readonly Peer[]): Promise<{ unrouted: UnroutedPeer[]; changes: number }> {
    const started = performance.now();
    const { peers, refused } = checkPeers(candidates, this.peerScope());
    const plan = await this.serial(() => this.applyPeers(this.backend, peers));
    if (plan.changes > 0) {
      this.log.info(
        {
          backend: this.backend,
          peers: peers.length,
          changes: plan.changes,
          ms: Math.round(performance.now() - started),
        },
        'routes to other nodes updated',
      );
      // skiff turns forwarding on only where it may (a hostNetns, or asked): elsewhere it is the operator's
      if (peers.length > 0 && (await this.exec.readSysctl(this.hostNetns, 'net.ipv4.ip_forward')) !== '1')
        this.log.warn(
          { sysctl: 'net.ipv4.ip_forward' },
          "forwarding is off on this host: other nodes and their pods cannot reach this node's pods until net.ipv4.ip_forward=1",
        );
    }
    return { unrouted: [...refused, ...plan.offLink], changes: plan.changes };
  }

  private peerScope(): PeerScope {
    return {
      clusterCIDR: this.clusterCIDR,
      podCIDR: this.podCIDR,
      bridge: this.bridge,
      ...(this.nodeIP !== undefined ? { nodeIP: this.nodeIP } : {}),
    };
  }

  /** The peer plan made from what the host shows, and run. */
  private async applyPeers(backend: NetworkBackend, peers: readonly Peer[]) {
    const host = this.hostNetns;
    const vxlan = backend === 'vxlan';
    const [routes, neighbours, fdb] = await Promise.all([
      this.exec.ipJson<ShownRoute[]>(host, ['-4', 'route', 'show', 'table', 'main']),
      vxlan ? this.exec.ipJson<ShownNeighbour[]>(host, ['-4', 'neigh', 'show', 'dev', VXLAN_DEVICE]) : [],
      vxlan ? this.exec.bridgeJson<ShownFdbEntry[]>(host, ['fdb', 'show', 'dev', VXLAN_DEVICE]) : [],
    ]);
    const plan = peerPlan(
      backend,
      peers,
      { routes: routes ?? [], neighbours: neighbours ?? [], fdb: fdb ?? [] },
      this.peerScope(),
    );
    await this.exec.bridge(host, plan.fdbAdd);
    await this.exec.ip(host, plan.ip);
    await this.exec.bridge(host, plan.fdbDel);
    return plan;
  }

  /**
   * With vxlan: the VXLAN device made (or kept, or made again with changed settings) on the
   * uplink's address, and the pods' MTU lowered to fit in the tunnel. With host-gw: one left by a
   * former vxlan set-up removed.
   */
  private async prepareVxlan(): Promise<void> {
    const host = this.hostNetns;
    if (this.backend !== 'vxlan') return this.removeVxlanDevice();
    const nodeIP = this.nodeIP!;
    const links = (await this.exec.ipJson<ShownLink[]>(host, ['-4', 'addr', 'show'])) ?? [];
    const uplink = uplinkOf(links, nodeIP);
    const mtu = uplink.mtu - VXLAN_OVERHEAD;
    this.effectiveMtu = Math.min(this.configuredMtu, mtu);
    const shown = (
      await this.exec.ipJson<ShownLink[]>(host, ['-d', 'addr', 'show', 'dev', VXLAN_DEVICE])
    )?.[0];
    const vtep = vtepOf(this.podCIDR.text);
    await this.exec.ip(
      host,
      vxlanDeviceScript({
        plan: vxlanDevicePlan(shown, nodeIP),
        nodeIP,
        mtu,
        vtep,
        staleAddresses: staleAddresses(shown, vtep),
      }),
    );
  }

  /** The VXLAN device removed if there (its routes, neighbours and fdb entries go with it). */
  private async removeVxlanDevice(): Promise<void> {
    const shown = (
      await this.exec.ipJson<ShownLink[]>(this.hostNetns, ['-d', 'link', 'show', 'dev', VXLAN_DEVICE])
    )?.[0];
    if (shown?.linkinfo?.info_kind === 'vxlan')
      await this.exec.ip(this.hostNetns, `link del dev ${VXLAN_DEVICE}\n`);
  }

  // ------------------------------------------------------------------ sandboxes

  async setUp(target: SandboxNetworkTarget & { netnsPath: string }): Promise<SandboxNetworkStatus> {
    const started = performance.now();
    checkNetnsPath(target.netnsPath);
    const portMappings = validatePortMappings(target.portMappings);
    const veth = vethName(target.id);
    const lease = await this.serial(async () => {
      const next = leaseFor(
        this.loaded(),
        this.podCIDR,
        { id: target.id, name: target.name, portMappings },
        veth,
        this.now(),
      );
      await this.commit(next.state);
      return next.lease;
    });
    await this.plug(lease, target.netnsPath);
    if (portMappings.length > 0) await this.writeHostPorts();
    this.log.debug(
      { sandbox: target.id.slice(0, 12), ip: lease.ip, veth, ms: +(performance.now() - started).toFixed(1) },
      'sandbox network set up',
    );
    return { ips: [lease.ip] };
  }

  async tearDown(target: SandboxNetworkTarget): Promise<void> {
    const lease = this.loaded().leases[target.id];
    const veth = lease?.veth ?? (/^[0-9a-f]{12}/.test(target.id) ? vethName(target.id) : undefined);
    // unplugged first: its address is free only once no veth of it is on the bridge
    if (veth !== undefined) await this.deleteLink(veth);
    if (!lease) return;
    await this.serial(() => this.commit(release(this.loaded(), target.id)));
    if (lease.portMappings.length > 0) await this.writeHostPorts();
    this.log.debug({ sandbox: target.id.slice(0, 12), ip: lease.ip }, 'sandbox network torn down');
  }

  /**
   * Tears down the network of every sandbox not in `live` (the ids of the sandboxes the runtime
   * still has): for the agent's start-up reconcile, after a crash or a reboot. Returns what it
   * released.
   */
  async releaseExcept(live: Iterable<string>): Promise<Lease[]> {
    const gone = leasesExcept(this.loaded(), live);
    for (const lease of gone) await this.deleteLink(lease.veth);
    if (gone.length === 0) return [];
    await this.serial(async () => {
      let state = this.loaded();
      for (const lease of gone) state = release(state, lease.sandbox);
      await this.commit(state);
    });
    if (gone.some((l) => l.portMappings.length > 0)) await this.writeHostPorts();
    this.log.info(
      { released: gone.map((l) => `${l.name} ${l.ip}`) },
      'released the leases of sandboxes gone',
    );
    return gone;
  }

  // ------------------------------------------------------------------ mechanism

  private unreachableCidrs(): string[] {
    return [this.clusterCIDR.text, ...(this.serviceCIDR ? [this.serviceCIDR.text] : [])];
  }

  /** The state, loaded on first use (and checked against the pod CIDR). */
  private loaded(): LeaseState {
    this.state ??= stateForCidr(this.file.load(), this.podCIDR);
    return this.state;
  }

  private async commit(next: LeaseState): Promise<void> {
    if (next === this.state) return;
    await this.file.save(next);
    this.state = next;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** The veth pair made (or found whole, or made again) and both ends configured. */
  private async plug(lease: Lease, netnsPath: string): Promise<void> {
    const host = this.hostNetns;
    const create = vethCreateScript({ veth: lease.veth, netnsPath, mtu: this.mtu });
    const attach = vethAttachScript({ veth: lease.veth, bridge: this.bridge });
    try {
      await this.exec.ip(host, create + attach);
    } catch (err) {
      if (!(err instanceof NetCommandError)) throw err;
      // already there, whole or in part (a set-up called again, or one that stopped halfway)
      const [hostEnd, podEnd] = await Promise.all([
        this.exec.ipJson<ShownLink[]>(host, ['link', 'show', 'dev', lease.veth]),
        this.exec.ipJson<ShownLink[]>(netnsPath, ['link', 'show', 'dev', POD_INTERFACE]),
      ]);
      if (repairPlan(hostEnd?.[0], podEnd?.[0]) === 'recreate') {
        if (!hostEnd && !podEnd) throw err; // nothing in the way: the create itself failed
        if (hostEnd) await this.exec.ip(host, `link del dev ${lease.veth}\n`);
        if (podEnd?.[0] && (await this.exec.ipJson(netnsPath, ['link', 'show', 'dev', POD_INTERFACE])))
          await this.exec.ip(netnsPath, `link del dev ${POD_INTERFACE}\n`);
        await this.exec.ip(host, create);
      }
      await this.exec.ip(host, attach);
    }
    await this.exec.ip(
      netnsPath,
      podAddressScript({ ip: lease.ip, prefix: this.podCIDR.prefix, gateway: this.gateway }),
    );
  }

  /** Deletes a host link if it is there. */
  private async deleteLink(name: string): Promise<void> {
    try {
      await this.exec.ip(this.hostNetns, `link del dev ${name}\n`);
    } catch (err) {
      // gone already (with its sandbox's namespace, or never made)
      if (
        err instanceof NetCommandError &&
        !(await this.exec.ipJson(this.hostNetns, ['link', 'show', 'dev', name]))
      )
        return;
      throw err;
    }
  }

  /** The table's host ports rewritten from the leases (one transaction). */
  private writeHostPorts(): Promise<void> {
    return this.serial(async () => {
      try {
        await this.exec.nft(this.hostNetns, hostPortsScript(rulesOf(this.loaded())));
      } catch (err) {
        throw new FailedPreconditionError(
          `update the host ports of table inet skiff: ${errorMessage(err)} (was the node prepared? prepareNode makes the table)`,
          { cause: err },
        );
      }
    });
  }

  private async setSysctls(): Promise<void> {
    const host = this.hostNetns;
    // the bridge's own: 127.0.0.1:hostPort is forwarded to a pod (nft-ruleset.ts guards it)
    const values: Record<string, string> = { [`net.ipv4.conf.${this.bridge}.route_localnet`]: '1' };
    if (this.ipForward) {
      const key = 'net.ipv4.ip_forward';
      const record = this.file.loadNode();
      const was = await this.exec.readSysctl(host, key);
      if (was !== '1' && record.restore[key] === undefined) {
        await this.file.saveNode({ restore: { ...record.restore, [key]: was } });
      }
      values[key] = '1';
    }
    await this.exec.writeSysctls(host, values);
  }
}

/** The host ports of every lease, as the table forwards them. */
function rulesOf(state: LeaseState): HostPortRule[] {
  return Object.values(state.leases).flatMap((l) => l.portMappings.map((m) => ({ ...m, podIP: l.ip })));
}
