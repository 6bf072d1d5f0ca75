/**
 * How a node reaches the other nodes' pod CIDRs, as scripts (`ip -batch`, `bridge -batch`) made
 * from the peers wanted and what the host shows. Pure: every line is testable without root
 * (peer-routes.test.ts); PodNetwork.routePeers runs them.
 *
 * ```
 * host-gw   route <peer podCIDR> via <peer address>                 the peer is on a connected subnet
 *
 * vxlan     skiff.vxlan  vxlan id 1 local <node IP> dstport 8472 nolearning, MTU uplink - 50,
 *                        address <own podCIDR>.0/32, link address vtepMac(<own podCIDR>.0)
 *           per peer:    fdb   vtepMac(<peer .0>) dst <peer address>       (bridge: whose VTEP the MAC is)
 *                        neigh <peer .0> lladdr vtepMac(<peer .0>)         (ip: no ARP over the tunnel)
 *                        route <peer podCIDR> via <peer .0> dev skiff.vxlan onlink
 * ```
 *
 * The plan is a diff: an entry the host already shows as wanted is left alone, so a peer added,
 * changed or gone touches its own entries only, and running the plan again changes nothing. The
 * routes skiff owns are the unicast routes inside the cluster CIDR that are not the bridge's own
 * (the cluster CIDR itself is skiff's `unreachable` route, and prepareNode refuses a cluster CIDR
 * the host routes elsewhere): whatever of them is not wanted is removed, so the routes of a node
 * deleted while the agent was away go at its first sync. A VTEP's link address is derived from
 * its address (names.ts), so the plan needs nothing but the Node objects.
 */
import {
  cidrContains,
  cidrWithin,
  cidrsOverlap,
  formatIPv4,
  ipv4Number,
  parseCidr,
  type Cidr,
} from '../../../proto/cidr.js';
import { FailedPreconditionError, errorMessage } from '../../../proto/errors.js';
import type { NetworkBackend } from '../../../proto/network-plan.js';
import { specialAddressProblem } from '../../../proto/special-addresses.js';
import { compareCodePoints } from '../../../proto/support/code-point-order.js';
import type { ShownLink, ShownRoute } from './ip-scripts.js';
import { VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI, vtepMac } from './names.js';

/** 224.0.0.0: from here on no address is a node's. */
const MULTICAST_AND_ABOVE = 0xe0000000;

/** Another node, as routing needs it. */
export interface Peer {
  node: string;
  /** Its `spec.podCIDR`. */
  podCIDR: string;
  /** Its InternalIP: where its pods' packets (or their VXLAN packets) are sent. */
  address: string;
}

/** A peer that cannot be routed, and why (said to the operator: a log line and an Event). */
export interface UnroutedPeer {
  node: string;
  reason: string;
}

/** What routing is confined to on this node. */
export interface PeerScope {
  clusterCIDR: Cidr;
  /** This node's own block (routed by the bridge). */
  podCIDR: Cidr;
  bridge: string;
  /** This node's own address (its InternalIP), when known: no peer may claim it. */
  nodeIP?: string;
}

/** A neighbour entry as `ip -j neigh show dev X` prints it. */
export interface ShownNeighbour {
  dst: string;
  lladdr?: string;
  state?: string[];
}

/** A forwarding database entry as `bridge -j fdb show dev X` prints it. */
export interface ShownFdbEntry {
  mac: string;
  dst?: string;
  state?: string;
}

/** What the host shows of routing to peers (neighbours and fdb: of the VXLAN device, if any). */
export interface ShownPeerState {
  routes: readonly ShownRoute[];
  neighbours: readonly ShownNeighbour[];
  fdb: readonly ShownFdbEntry[];
}

/** The scripts, in the order they run: fdb entries added, then `ip`, then fdb entries removed. */
export interface PeerPlan {
  fdbAdd: string;
  ip: string;
  fdbDel: string;
  /** Peers host-gw cannot route: their address is on no subnet this host is connected to. */
  offLink: UnroutedPeer[];
  /** How many entries the scripts add, change or remove (0: the host is as wanted). */
  changes: number;
}

/** The VTEP address of a node: its pod CIDR's first (network) address, which no pod holds. */
export function vtepOf(podCIDR: string): string {
  return formatIPv4(parseCidr(podCIDR, 'podCIDR').base);
}

/**
 * The peers that can be routed, and why the others cannot: an address that is not IPv4, lies in
 * the cluster CIDR, is this node's own, loopback, link-local, unspecified or multicast, a pod CIDR that is malformed, outside the cluster CIDR, or overlapping this
 * node's or another peer's (the first by node name keeps it). Sorted by node name.
 */
export function checkPeers(
  candidates: readonly Peer[],
  scope: PeerScope,
): { peers: Peer[]; refused: UnroutedPeer[] } {
  const peers: Peer[] = [];
  const refused: UnroutedPeer[] = [];
  const taken: { node: string; cidr: Cidr }[] = [{ node: 'this node', cidr: scope.podCIDR }];
  for (const peer of [...candidates].sort((a, b) => compareCodePoints(a.node, b.node))) {
    const reason = peerProblem(peer, scope, taken);
    if (reason !== undefined) refused.push({ node: peer.node, reason });
    else {
      peers.push(peer);
      taken.push({ node: peer.node, cidr: parseCidr(peer.podCIDR) });
    }
  }
  return { peers, refused };
}

function peerProblem(
  peer: Peer,
  scope: PeerScope,
  taken: { node: string; cidr: Cidr }[],
): string | undefined {
  const address = ipv4Number(peer.address);
  if (address === undefined) return `its address "${peer.address}" is not an IPv4 address`;
  // `route … via` one of our own addresses fails, and with it the whole `ip -batch` (every peer)
  if (peer.address === scope.nodeIP) return `its address ${peer.address} is this node's own`;
  const special =
    address >= MULTICAST_AND_ABOVE ? 'may not be multicast or reserved' : specialAddressProblem(peer.address);
  if (special !== undefined) return `its address ${peer.address} ${special}`;
  if (cidrContains(scope.clusterCIDR, address))
    return `its address ${peer.address} is inside the cluster CIDR ${scope.clusterCIDR.text}`;
  let cidr: Cidr;
  try {
    cidr = parseCidr(peer.podCIDR, 'podCIDR');
  } catch (err) {
    return errorMessage(err);
  }
  if (!cidrWithin(cidr, scope.clusterCIDR))
    return `its pod CIDR ${cidr.text} is outside the cluster CIDR ${scope.clusterCIDR.text}`;
  if (cidr.prefix > 30) return `its pod CIDR ${cidr.text} holds no pod address`;
  const overlapped = taken.find((t) => cidrsOverlap(t.cidr, cidr));
  if (overlapped) return `its pod CIDR ${cidr.text} overlaps ${overlapped.node}'s ${overlapped.cidr.text}`;
  return undefined;
}

/** A route's destination as a block (`ip -j` prints a host route without its /32); undefined for `default`. */
function routeCidr(route: ShownRoute): Cidr | undefined {
  if (route.dst === 'default') return undefined;
  try {
    return parseCidr(route.dst.includes('/') ? route.dst : `${route.dst}/32`);
  } catch {
    return undefined;
  }
}

const unicast = (r: ShownRoute) => r.type === undefined || r.type === 'unicast';

/** The routes skiff made to peers: unicast, inside the cluster CIDR, not the cluster CIDR, not the bridge's. */
export function peerRoutesShown(routes: readonly ShownRoute[], scope: PeerScope): ShownRoute[] {
  return routes.filter((r) => {
    const cidr = routeCidr(r);
    return (
      cidr !== undefined &&
      unicast(r) &&
      r.dev !== scope.bridge &&
      cidr.text !== scope.clusterCIDR.text &&
      cidrWithin(cidr, scope.clusterCIDR)
    );
  });
}

/**
 * Whether the kernel takes `address` as a gateway: a route of scope link (a connected subnet, or
 * a link route an operator added) holds it. Not the bridge's or the VXLAN device's, nor inside the
 * cluster CIDR: a peer must be reached over the nodes' own network.
 */
export function onLink(address: string, routes: readonly ShownRoute[], scope: PeerScope): boolean {
  const n = ipv4Number(address);
  if (n === undefined) return false;
  return routes.some((r) => {
    const cidr = routeCidr(r);
    return (
      cidr !== undefined &&
      unicast(r) &&
      r.scope === 'link' &&
      r.gateway === undefined &&
      r.dev !== scope.bridge &&
      r.dev !== VXLAN_DEVICE &&
      !cidrsOverlap(cidr, scope.clusterCIDR) &&
      cidrContains(cidr, n)
    );
  });
}

function routeDel(r: ShownRoute): string {
  return `route del ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`;
}

/**
 * The plan that makes the host route `peers` (already checked: checkPeers) with `backend`, from
 * what it shows. With host-gw, the VXLAN device's neighbours and fdb are not looked at (the device
 * is removed: PodNetwork); `peers` empty removes every peer route.
 */
export function peerPlan(
  backend: NetworkBackend,
  peers: readonly Peer[],
  shown: ShownPeerState,
  scope: PeerScope,
): PeerPlan {
  const ours = peerRoutesShown(shown.routes, scope);
  const ip: string[] = [];
  const fdbAdd: string[] = [];
  const fdbDel: string[] = [];
  const offLink: UnroutedPeer[] = [];
  const routed = new Set<string>();
  const neighboursKept = new Set<string>();
  const macsKept = new Set<string>();
  const routeAdds: string[] = [];
  const neighbourAdds: string[] = [];
  for (const peer of peers) {
    const cidr = parseCidr(peer.podCIDR).text;
    const existing = ours.filter((r) => routeCidr(r)?.text === cidr);
    if (backend === 'host-gw') {
      if (!onLink(peer.address, shown.routes, scope)) {
        offLink.push({
          node: peer.node,
          reason: `host-gw cannot route its pod CIDR ${cidr}: its address ${peer.address} is on no subnet this node is connected to (nodes on different subnets need the vxlan backend)`,
        });
        continue;
      }
      routed.add(cidr);
      if (!existing.some((r) => r.gateway === peer.address && r.dev !== VXLAN_DEVICE))
        routeAdds.push(`route replace ${cidr} via ${peer.address}`);
      continue;
    }
    const vtep = vtepOf(cidr);
    const mac = vtepMac(vtep);
    routed.add(cidr);
    neighboursKept.add(vtep);
    macsKept.add(mac);
    if (!shown.fdb.some((e) => e.mac === mac && e.dst === peer.address))
      fdbAdd.push(`fdb replace ${mac} dev ${VXLAN_DEVICE} dst ${peer.address} self permanent`);
    if (
      !shown.neighbours.some(
        (n) => n.dst === vtep && n.lladdr === mac && (n.state ?? []).includes('PERMANENT'),
      )
    )
      neighbourAdds.push(`neigh replace ${vtep} lladdr ${mac} dev ${VXLAN_DEVICE} nud permanent`);
    if (
      !existing.some(
        (r) => r.gateway === vtep && r.dev === VXLAN_DEVICE && (r.flags ?? []).includes('onlink'),
      )
    )
      routeAdds.push(`route replace ${cidr} via ${vtep} dev ${VXLAN_DEVICE} onlink`);
  }
  // gone first (a route replaced in place is not gone), then what is wanted
  for (const r of ours) if (!routed.has(routeCidr(r)!.text)) ip.push(routeDel(r));
  if (backend === 'vxlan') {
    for (const n of shown.neighbours)
      if (!neighboursKept.has(n.dst)) ip.push(`neigh del ${n.dst} dev ${VXLAN_DEVICE}`);
    // a VXLAN device's own unicast and multicast addresses show without a dst: not ours to remove
    for (const e of shown.fdb)
      if (e.dst !== undefined && !macsKept.has(e.mac))
        fdbDel.push(`fdb del ${e.mac} dev ${VXLAN_DEVICE} dst ${e.dst} self`);
  }
  ip.push(...neighbourAdds, ...routeAdds);
  const text = (lines: string[]) => lines.map((l) => l + '\n').join('');
  return {
    fdbAdd: text(fdbAdd),
    ip: text(ip),
    fdbDel: text(fdbDel),
    offLink,
    changes: fdbAdd.length + ip.length + fdbDel.length,
  };
}

/** The uplink: the interface holding the node's address (`ip -j addr show`), whose MTU bounds the tunnel's. */
export function uplinkOf(links: readonly ShownLink[], nodeIP: string): { ifname: string; mtu: number } {
  const link = links.find((l) => (l.addr_info ?? []).some((a) => a.family === 'inet' && a.local === nodeIP));
  if (!link)
    throw new FailedPreconditionError(
      `prepare the node's VXLAN device: no interface of the host holds the node's address ${nodeIP}; check --node-ip`,
    );
  return { ifname: link.ifname, mtu: link.mtu ?? 1500 };
}

/**
 * What to do with what holds the VXLAN device's name: make it (absent), keep it (a VXLAN device
 * with our VNI, port, local address and no learning), or make it again (one with other settings,
 * which the kernel does not change in place). Another kind of link is refused.
 */
export function vxlanDevicePlan(link: ShownLink | undefined, nodeIP: string): 'create' | 'keep' | 'recreate' {
  if (!link) return 'create';
  const kind = link.linkinfo?.info_kind;
  if (kind !== 'vxlan')
    throw new FailedPreconditionError(
      `prepare the node's VXLAN device: the host has a link named ${VXLAN_DEVICE} that is not a VXLAN device (${kind ?? 'a device'}); remove it`,
    );
  const data = link.linkinfo?.info_data ?? {};
  const same =
    data.id === VXLAN_VNI && data.port === VXLAN_PORT && data.local === nodeIP && data.learning === false;
  return same ? 'keep' : 'recreate';
}

/** The VXLAN device made (unless kept), with its link address, MTU and VTEP address, up. Idempotent lines. */
export function vxlanDeviceScript(opts: {
  plan: 'create' | 'keep' | 'recreate';
  nodeIP: string;
  mtu: number;
  vtep: string;
  /** IPv4 addresses it has that are not the VTEP's (a former pod CIDR's): removed. */
  staleAddresses: string[];
}): string {
  const dev = VXLAN_DEVICE;
  const make = `link add ${dev} type vxlan id ${VXLAN_VNI} local ${opts.nodeIP} dstport ${VXLAN_PORT} nolearning`;
  return [
    ...(opts.plan === 'recreate' ? [`link del ${dev}`] : []),
    ...(opts.plan === 'keep' ? [] : [make]),
    `link set dev ${dev} address ${vtepMac(opts.vtep)} mtu ${opts.mtu}`,
    ...opts.staleAddresses.map((a) => `addr del ${a} dev ${dev}`),
    `addr replace ${opts.vtep}/32 dev ${dev}`,
    `link set dev ${dev} up`,
    '',
  ].join('\n');
}
