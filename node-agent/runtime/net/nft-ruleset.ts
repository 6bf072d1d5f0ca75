/**
 * The node's nftables table, `inet skiff`, as `nft -f` scripts. Pure: PodNetwork runs them with
 * `nft -f -` in the host's namespace; each script is one transaction (all of it or none).
 *
 * ```
 * table inet skiff
 *   map hostports      tcp|udp . hostPort            : podIP . containerPort   (any local address)
 *   map hostports_ip   hostIP . tcp|udp . hostPort   : podIP . containerPort
 *   chain hostports    dnat through hostports_ip, then hostports (a miss matches nothing)
 *   maps service-ips, service-nodeports, no-endpoint-services, no-endpoint-nodeports, chains
 *        services, service-endpoints-check, mark-for-masquerade, masquerading, service-reject:
 *        declared empty here, filled by the Service proxy (../../proxy/README.md)
 *   chain prerouting   nat, dstnat:  → services; IPv4 to a local address → hostports  (from other hosts, from pods)
 *   chain output       nat, -100:    → services; IPv4 to a local address → hostports  (from the host itself, 127.0.0.1 too)
 *   chain postrouting  nat, srcnat:  marked by a Service → masquerade;
 *                                    out the bridge, DNATed, from 127.0.0.0/8 or the pod CIDR → masquerade;
 *                                    not out the bridge, from the pod CIDR, not to the cluster CIDR → masquerade
 *   chain services-filter-prerouting / -output  filter, before DNAT: a new connection to a Service
 *                                    with no endpoints → service-endpoints-check (rejected at once)
 *   chain input        filter:       from the bridge to 127.0.0.0/8, not a reply → drop
 *   chain forward      filter:       from the bridge to elsewhere: a DNATed connection's → accept;
 *                                    invalid → drop; from the pod CIDR → accept; anything else → drop
 * ```
 *
 * Why each rule:
 * - Services first (jump services in both nat chains): a Service's nodePort wins over a host port
 *   of the same number. The reject of a Service without endpoints runs in filter chains before
 *   DNAT, where the ClusterIP is still the destination; in prerouting, because the service CIDR's
 *   unreachable route would otherwise answer it (host unreachable) before forward sees it.
 * - masquerading: a connection a Service chain marked (from outside the cluster CIDR to a
 *   ClusterIP, to a nodePort of policy Cluster, a pod reaching itself) leaves with the node's
 *   address, so its reply comes back through this node to be un-DNATed.
 * - Masquerade: a connection from 127.0.0.1 (the bridge has route_localnet, so it may leave with
 *   that source) or from a pod (whose reply from a pod on the same bridge would go straight back
 *   over the bridge, never un-DNATed, without br_netfilter) is answered through the host.
 * - input: route_localnet would otherwise let a pod reach the host's 127.0.0.1 services by sending
 *   to 127.0.0.1 over the bridge (CVE-2020-8558; kube-proxy drops the same). Replies pass: a
 *   host-port connection from 127.0.0.1 gets its answers over the bridge, un-masqueraded to it.
 * - forward and the second masquerade (routing between nodes, peer-routes.ts): what a pod sends to
 *   another node's pod leaves with the pod's own address (no NAT inside the cluster CIDR), and so
 *   do its replies to a connection another node made to it (conntrack applies NAT to a
 *   connection's first packet only, so a reply is never masqueraded); a connection a pod opens to
 *   anything outside the cluster CIDR is masqueraded to the node's address, so a pod address
 *   never reaches another network. Invalid packets are dropped first: NAT skips them, and they
 *   would leave with the pod's address (kube-proxy drops them for the same reason). A source not
 *   of the pod CIDR (a pod that forged it) is dropped, as is everything else a pod sends out but
 *   replies of host-port connections. Pod to pod on the bridge is never dropped here, br_netfilter
 *   or not (bridged packets are seen with the bridge as both interfaces).
 *
 * Host ports are elements of the two maps, so a pod's come and go by rewriting the maps (flush and
 * fill, in one transaction) without touching the chains; the table as a whole is written at node
 * set-up (delete and create, in one transaction).
 */
import type { PortMapping } from '../pod-runtime.js';
import { compareCodePoints } from '../../../proto/support/code-point-order.js';

export const TABLE_FAMILY = 'inet';
export const TABLE_NAME = 'skiff';
const TABLE = `${TABLE_FAMILY} ${TABLE_NAME}`;

/** One host port as the table forwards it. */
export interface HostPortRule extends PortMapping {
  podIP: string;
}

export interface NodeTable {
  /** The bridge's name (checked by the caller: letters, digits, '_', '.', '-'). */
  bridge: string;
  podCIDR: string;
  /** Every pod address of the cluster: what a pod reaches without NAT. */
  clusterCIDR: string;
}

function hostPortElement(r: HostPortRule): string {
  const target = `${r.podIP} . ${r.containerPort}`;
  const key = `${r.protocol.toLowerCase()} . ${r.hostPort}`;
  return r.hostIP !== undefined ? `${r.hostIP} . ${key} : ${target}` : `${key} : ${target}`;
}

function elements(map: string, rules: HostPortRule[]): string[] {
  return rules.length === 0
    ? []
    : [`add element ${TABLE} ${map} { ${rules.map(hostPortElement).join(', ')} }`];
}

/** The map contents for `rules`, replacing what the maps held (needs the table). */
export function hostPortsScript(rules: readonly HostPortRule[]): string {
  const sorted = [...rules].sort(
    (a, b) => a.hostPort - b.hostPort || compareCodePoints(a.protocol, b.protocol),
  );
  return [
    `flush map ${TABLE} hostports`,
    `flush map ${TABLE} hostports_ip`,
    ...elements(
      'hostports',
      sorted.filter((r) => r.hostIP === undefined),
    ),
    ...elements(
      'hostports_ip',
      sorted.filter((r) => r.hostIP !== undefined),
    ),
    '',
  ].join('\n');
}

/**
 * The Service proxy's objects (../../proxy/): the maps it fills and the chains the base chains
 * below jump to. Declared with the table, so the jumps always have a target; an empty map matches
 * nothing, so a node without Services (or without the proxy) forwards as before.
 */
export const SERVICE_OBJECTS = {
  /** ClusterIP (or external IP) . protocol . port → goto its Service chain */
  serviceIps: 'service-ips',
  /** protocol . nodePort → goto its Service's external chain */
  serviceNodePorts: 'service-nodeports',
  /** the same keys, for Services with no usable endpoint → goto service-reject, or drop */
  noEndpointServices: 'no-endpoint-services',
  noEndpointNodePorts: 'no-endpoint-nodeports',
  markForMasquerade: 'mark-for-masquerade',
  reject: 'service-reject',
} as const;

/** The packet mark that asks postrouting to masquerade (kube-proxy's bit). */
export const MASQUERADE_MARK = '0x00004000';

function serviceDeclarations(): string {
  const o = SERVICE_OBJECTS;
  return `  map ${o.serviceIps} {
    type ipv4_addr . inet_proto . inet_service : verdict
  }
  map ${o.serviceNodePorts} {
    type inet_proto . inet_service : verdict
  }
  map ${o.noEndpointServices} {
    type ipv4_addr . inet_proto . inet_service : verdict
  }
  map ${o.noEndpointNodePorts} {
    type inet_proto . inet_service : verdict
  }
  chain ${o.markForMasquerade} {
    meta mark set meta mark | ${MASQUERADE_MARK}
  }
  chain masquerading {
    meta mark & ${MASQUERADE_MARK} == 0 return
    meta mark set meta mark ^ ${MASQUERADE_MARK}
    masquerade fully-random
  }
  chain ${o.reject} {
    meta l4proto tcp reject with tcp reset
    reject
  }
  chain services {
    ip daddr . meta l4proto . th dport vmap @${o.serviceIps}
    meta nfproto ipv4 fib daddr type local meta l4proto . th dport vmap @${o.serviceNodePorts}
  }
  chain service-endpoints-check {
    ip daddr . meta l4proto . th dport vmap @${o.noEndpointServices}
    meta nfproto ipv4 fib daddr type local meta l4proto . th dport vmap @${o.noEndpointNodePorts}
  }
  chain services-filter-prerouting {
    type filter hook prerouting priority dstnat - 10; policy accept;
    ct state new jump service-endpoints-check
  }
  chain services-filter-output {
    type filter hook output priority -110; policy accept;
    ct state new jump service-endpoints-check
  }
`;
}

/** The whole table, replacing any table of that name (created first, so the delete never fails). */
export function nodeTableScript(spec: NodeTable, rules: readonly HostPortRule[]): string {
  const br = JSON.stringify(spec.bridge);
  return `add table ${TABLE}
delete table ${TABLE}
table ${TABLE} {
${serviceDeclarations()}  map hostports {
    type inet_proto . inet_service : ipv4_addr . inet_service
  }
  map hostports_ip {
    type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
  }
  chain hostports {
    dnat ip to ip daddr . meta l4proto . th dport map @hostports_ip
    dnat ip to meta l4proto . th dport map @hostports
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
    meta nfproto ipv4 fib daddr type local jump hostports
  }
  chain output {
    type nat hook output priority -100; policy accept;
    jump services
    meta nfproto ipv4 fib daddr type local jump hostports
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    jump masquerading
    oifname ${br} ct status dnat ip saddr { 127.0.0.0/8, ${spec.podCIDR} } masquerade
    # routing between nodes: a pod's own connections out of the cluster CIDR
    oifname != ${br} ip saddr ${spec.podCIDR} ip daddr != ${spec.clusterCIDR} masquerade
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname ${br} ip daddr 127.0.0.0/8 ct state != { established, related } drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname ${br} oifname != ${br} ct status dnat accept
    # routing between nodes: pods' own packets, masqueraded in postrouting when not to the cluster CIDR
    iifname ${br} oifname != ${br} ct state invalid drop
    iifname ${br} oifname != ${br} ip saddr ${spec.podCIDR} accept
    iifname ${br} oifname != ${br} drop
  }
}
${hostPortsScript(rules)}`;
}

/** Removes the table if it is there. */
export function removeTableScript(): string {
  return `add table ${TABLE}\ndelete table ${TABLE}\n`;
}
