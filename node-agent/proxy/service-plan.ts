/**
 * What one Service asks of a node's table (after kube-proxy's nftables mode, KEP-3866): map
 * elements that send its addresses to its chains, a chain per load-balanced endpoint set whose
 * rules pick an endpoint and DNAT, and with ClientIP affinity a timed set per endpoint. Pure: the proxier
 * (service-proxy.ts) plans each changed Service, gathers the plans into a table (service-table.ts)
 * and writes what changed.
 *
 * ```
 * service-ips        CIP . tcp . 80      : goto svc-H-ns/web/tcp/80       (internal policy Cluster)
 *                                        : goto loc-H-ns/web/tcp/80       (internal policy Local)
 *                    EXTIP . tcp . 80    : goto ext-H-ns/web/tcp/80       (externalIPs, load-balancer IPs)
 * service-nodeports  tcp . 30080         : goto ext-H-ns/web/tcp/80
 * no-endpoint-*      the same keys when nothing can serve them: goto service-reject (none at all) or
 *                    drop (a Local policy and no endpoint on this node)
 *
 * svc-H-…  ip daddr CIP tcp dport 80 ip saddr != CLUSTER_CIDR jump mark-for-masquerade
 *          ip saddr @aff-H-IP-PORT-T update @aff-… dnat ip to IP:PORT     (ClientIP affinity, per endpoint)
 *          numgen random mod N == 0 dnat ip to IP1:PORT                   (the usable endpoints: the k-th
 *          numgen random mod N-1 == 0 dnat ip to IP2:PORT                  of N taken with 1/(N-k), so
 *          …  dnat ip to IPN:PORT                                          each gets 1/N)
 * loc-H-…  the same over this node's usable endpoints (no masquerade: the client's address is kept)
 * ext-H-…  Cluster: jump mark-for-masquerade; goto svc-H-…
 *          Local:   ip saddr CLUSTER_CIDR goto svc-H-… (pods get ClusterIP behaviour);
 *                   fib saddr type local: mark, goto svc-H-… (the node itself); goto loc-H-… or drop
 * ```
 *
 * A pod reaching itself (hairpin) leaves through the bridge DNATed from the pod CIDR, which the
 * table's postrouting masquerades already (nft-ruleset.ts), so its reply comes back through the host.
 *
 * Usable endpoints (Kubernetes' rule): the ready ones (ready, not terminating); when none is ready,
 * the serving terminating ones, so a Service whose pods are all shutting down still answers. The
 * same rule picks this node's endpoints for the Local policies. An endpoint that stops being usable
 * leaves the numgen map, so it gets no new connection; conntrack keeps its open ones going.
 *
 * Every name and number that reaches nft text is checked here (addresses as dotted quads, ports
 * 1-65535, timeouts 1-86400); a Service or endpoint that fails is left out with a problem naming it.
 * So is an endpoint or external address the API would refuse now (loopback, link-local, unspecified:
 * ../../proto/special-addresses.ts) that an object stored before that check may still carry: an
 * external IP of 127.0.0.1 would DNAT the node's own connections to 127.0.0.1 (etcd, NATS) to a pod.
 */
import { createHash } from 'node:crypto';
import { ipv4Number, type Cidr } from '../../proto/cidr.js';
import type { EndpointSlice, Service, ServicePort } from '../../proto/gen/types.js';
import { specialAddressProblem } from '../../proto/special-addresses.js';
import { SERVICE_OBJECTS } from '../runtime/net/nft-ruleset.js';

/** What the plan needs to know of the node. */
export interface NodeFacts {
  nodeName: string;
  /** Every pod address of the cluster: traffic from outside it to a ClusterIP is masqueraded. */
  clusterCIDR: Cidr;
}

/** A chain's rules, each one nft rule as text (no newlines). */
export type ChainRules = readonly string[];

/** An affinity set: a ClientIP's endpoint, remembered `timeoutSeconds` since its last packet. */
export interface AffinitySet {
  timeoutSeconds: number;
}

/** What one Service adds to the table. */
export interface ServicePlan {
  /** map name → element key → verdict */
  elements: ReadonlyMap<string, ReadonlyMap<string, string>>;
  chains: ReadonlyMap<string, ChainRules>;
  sets: ReadonlyMap<string, AffinitySet>;
  /** Why parts of the Service were left out (bad addresses, SCTP, …), for the log. */
  problems: readonly string[];
  /** Its own (checked) ClusterIP: keys of that address are its by right, ahead of any externalIP. */
  clusterIP?: string;
}

export const EMPTY_PLAN: ServicePlan = {
  elements: new Map(),
  chains: new Map(),
  sets: new Map(),
  problems: [],
};

const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
/** The characters a readable part of a chain name may have (the API's names are DNS labels). */
const NAME_PART_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/;

/** One endpoint as a Service port reaches it. */
interface Target {
  ip: string;
  port: number;
  local: boolean;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

function validPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

function validIPv4(s: unknown): s is string {
  return typeof s === 'string' && ipv4Number(s) !== undefined;
}

/**
 * Kubernetes' choice of endpoints for new connections: the ready ones, else the serving
 * terminating ones.
 */
export function usableEndpoints<E extends { ready: boolean; serving: boolean; terminating: boolean }>(
  all: readonly E[],
): E[] {
  const ready = all.filter((e) => e.ready && !e.terminating);
  return ready.length > 0 ? ready : all.filter((e) => e.serving && e.terminating);
}

/**
 * The endpoints of one Service port from the Service's slices: matched by port name and protocol
 * (the slice carries the resolved number), IPv4 slices only, one target per address.
 */
function targetsOf(
  port: ServicePort,
  protocol: string,
  slices: readonly EndpointSlice[],
  node: NodeFacts,
  problems: string[],
): Target[] {
  const byAddress = new Map<string, Target>();
  const wanted = port.name ?? '';
  for (const slice of slices) {
    if ((slice.addressType ?? 'IPv4') !== 'IPv4') continue;
    const slicePort = (slice.ports ?? []).find(
      (p) => (p.name ?? '') === wanted && (p.protocol ?? 'TCP') === protocol,
    );
    if (!slicePort) continue;
    if (!validPort(slicePort.port)) {
      problems.push(`EndpointSlice ${slice.metadata.name}: port "${wanted}" has no valid number`);
      continue;
    }
    for (const endpoint of slice.endpoints ?? []) {
      const ip = endpoint.addresses?.[0];
      if (!validIPv4(ip)) {
        problems.push(`EndpointSlice ${slice.metadata.name}: address ${JSON.stringify(ip)} is not IPv4`);
        continue;
      }
      const special = specialAddressProblem(ip);
      if (special !== undefined) {
        problems.push(`EndpointSlice ${slice.metadata.name}: address ${ip} ${special}`);
        continue;
      }
      const c = endpoint.conditions ?? {};
      // absent conditions: ready (and so serving), not terminating, as discovery/v1 reads them
      const ready = c.ready ?? true;
      const target: Target = {
        ip,
        port: slicePort.port,
        local: endpoint.nodeName === node.nodeName,
        ready,
        serving: c.serving ?? ready,
        terminating: c.terminating ?? false,
      };
      if (!byAddress.has(`${ip}:${target.port}`)) byAddress.set(`${ip}:${target.port}`, target);
    }
  }
  return [...byAddress.values()].sort((a, b) => ipv4Number(a.ip)! - ipv4Number(b.ip)! || a.port - b.port);
}

/** The Service's addresses that reach it from outside: externalIPs and its load balancers'. */
function externalAddresses(service: Service, problems: string[]): string[] {
  const spec = service.spec;
  const addresses = [
    ...(spec.externalIPs ?? []),
    ...(spec.type === 'LoadBalancer'
      ? (service.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : []))
      : []),
  ];
  const valid = addresses.filter((a) => {
    const problem = validIPv4(a) ? specialAddressProblem(a) : 'is not IPv4';
    if (problem === undefined) return true;
    problems.push(`external address ${JSON.stringify(a)} ${problem}`);
    return false;
  });
  return [...new Set(valid)];
}

class PlanBuilder {
  readonly elements = new Map<string, Map<string, string>>();
  readonly chains = new Map<string, ChainRules>();
  readonly sets = new Map<string, AffinitySet>();

  element(map: string, key: string, verdict: string): void {
    let m = this.elements.get(map);
    if (!m) this.elements.set(map, (m = new Map()));
    m.set(key, verdict);
  }
}

/** The readable, checked part of a chain name: `ns/name/proto/port`, or nothing if not safe. */
function readableName(service: Service, protocol: string, port: number): string {
  const { namespace = '', name = '' } = service.metadata;
  return NAME_PART_RE.test(namespace) && NAME_PART_RE.test(name)
    ? `-${namespace}/${name}/${protocol.toLowerCase()}/${port}`
    : '';
}

/**
 * The plan of one Service: what the table must hold for it (see the file's comment).
 * `nodeLocalIP`: an address of this node that serves the Service itself on the Service's own port
 * numbers (a node-local DNS server for kube-dns): every port goes there instead of to the endpoints.
 */
export function planService(
  service: Service,
  slices: readonly EndpointSlice[],
  node: NodeFacts,
  nodeLocalIP?: string,
): ServicePlan {
  const spec = service.spec;
  const problems: string[] = [];
  if (nodeLocalIP !== undefined && !validIPv4(nodeLocalIP))
    return { ...EMPTY_PLAN, problems: [`node-local address ${JSON.stringify(nodeLocalIP)} is not IPv4`] };
  const clusterIP = spec.clusterIP;
  // headless and ExternalName Services are names only (DNS); nothing to balance
  if (spec.type === 'ExternalName' || clusterIP === undefined || clusterIP === 'None' || clusterIP === '')
    return EMPTY_PLAN;
  if (!validIPv4(clusterIP))
    return { ...EMPTY_PLAN, problems: [`clusterIP ${JSON.stringify(clusterIP)} is not IPv4`] };
  const externals = externalAddresses(service, problems);
  const affinity = spec.sessionAffinity === 'ClientIP';
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  if (affinity && !(Number.isInteger(timeout) && timeout >= 1 && timeout <= 86400))
    return {
      ...EMPTY_PLAN,
      problems: [`sessionAffinityConfig.clientIP.timeoutSeconds ${timeout} is not 1-86400`],
    };
  const internalLocal = spec.internalTrafficPolicy === 'Local';
  const externalLocal =
    spec.externalTrafficPolicy === 'Local' && (spec.type === 'NodePort' || spec.type === 'LoadBalancer');
  const plan = new PlanBuilder();
  const o = SERVICE_OBJECTS;
  for (const [i, port] of (spec.ports ?? []).entries()) {
    const protocol = port.protocol ?? 'TCP';
    if (protocol !== 'TCP' && protocol !== 'UDP') {
      problems.push(`ports[${i}]: protocol ${protocol} is not served by the node's proxy (TCP and UDP are)`);
      continue;
    }
    if (!validPort(port.port)) {
      problems.push(`ports[${i}]: port ${JSON.stringify(port.port)} is not 1-65535`);
      continue;
    }
    const proto = protocol.toLowerCase();
    const nodePort =
      (spec.type === 'NodePort' || spec.type === 'LoadBalancer') && port.nodePort !== undefined
        ? port.nodePort
        : undefined;
    if (nodePort !== undefined && !validPort(nodePort)) {
      problems.push(`ports[${i}]: nodePort ${JSON.stringify(nodePort)} is not 1-65535`);
      continue;
    }
    const svcKey = `${service.metadata.namespace}/${service.metadata.name}/${proto}/${port.port}`;
    const hash = createHash('sha256').update(svcKey).digest('hex').slice(0, 8);
    const readable = readableName(service, protocol, port.port);
    const clusterChain = `svc-${hash}${readable}`;
    const localChain = `loc-${hash}${readable}`;
    const externalChain = `ext-${hash}${readable}`;
    const affinitySet = (t: Target) => `aff-${hash}-${t.ip}-${t.port}-${timeout}`;

    const targets =
      nodeLocalIP !== undefined
        ? [{ ip: nodeLocalIP, port: port.port, local: true, ready: true, serving: true, terminating: false }]
        : targetsOf(port, protocol, slices, node, problems);
    const clusterTargets = usableEndpoints(targets);
    const localTargets = usableEndpoints(targets.filter((t) => t.local));

    const dnat = (t: Target) =>
      `${affinity ? `update @${affinitySet(t)} { ip saddr } ` : ''}meta l4proto ${proto} dnat ip to ${t.ip}:${t.port}`;
    /**
     * The rules that pick one of `ts`: with affinity, the client's endpoint while its entry lasts;
     * else the k-th of n with probability 1/(n-k) (uniform over all), the last one always. Plain
     * rules, no set per Service: the kernel's cost of adding a set grows with the sets the table
     * has, so a numgen verdict map per Service made a full write quadratic (README.md, Cost).
     */
    const balance = (ts: readonly Target[]): string[] => [
      ...(affinity ? ts.map((t) => `ip saddr @${affinitySet(t)} ${dnat(t)}`) : []),
      ...ts.map((t, k) =>
        k < ts.length - 1 ? `numgen random mod ${ts.length - k} == 0 ${dnat(t)}` : dnat(t),
      ),
    ];
    if (clusterTargets.length > 0)
      plan.chains.set(clusterChain, [
        `ip daddr ${clusterIP} ${proto} dport ${port.port} ip saddr != ${node.clusterCIDR.text} jump ${o.markForMasquerade}`,
        ...balance(clusterTargets),
      ]);
    if ((internalLocal || externalLocal) && localTargets.length > 0)
      plan.chains.set(localChain, balance(localTargets));
    if (affinity)
      for (const t of new Set([...clusterTargets, ...localTargets]))
        plan.sets.set(affinitySet(t), { timeoutSeconds: timeout });

    // ClusterIP: the internal policy's endpoints, else rejected (none at all) or dropped (none here)
    const internalKey = `${clusterIP} . ${proto} . ${port.port}`;
    if (clusterTargets.length === 0) plan.element(o.noEndpointServices, internalKey, `goto ${o.reject}`);
    else if (!internalLocal) plan.element(o.serviceIps, internalKey, `goto ${clusterChain}`);
    else if (localTargets.length > 0) plan.element(o.serviceIps, internalKey, `goto ${localChain}`);
    else plan.element(o.noEndpointServices, internalKey, 'drop');

    // from outside: node ports and external addresses, through the external chain
    const externalKeys = externals.map((ip) => `${ip} . ${proto} . ${port.port}`);
    if (nodePort === undefined && externalKeys.length === 0) continue;
    if (clusterTargets.length === 0) {
      for (const key of externalKeys) plan.element(o.noEndpointServices, key, `goto ${o.reject}`);
      if (nodePort !== undefined)
        plan.element(o.noEndpointNodePorts, `${proto} . ${nodePort}`, `goto ${o.reject}`);
      continue;
    }
    plan.chains.set(
      externalChain,
      externalLocal
        ? [
            `ip saddr ${node.clusterCIDR.text} goto ${clusterChain}`,
            `fib saddr type local jump ${o.markForMasquerade}`,
            `fib saddr type local goto ${clusterChain}`,
            localTargets.length > 0 ? `goto ${localChain}` : 'drop',
          ]
        : [`jump ${o.markForMasquerade}`, `goto ${clusterChain}`],
    );
    for (const key of externalKeys) plan.element(o.serviceIps, key, `goto ${externalChain}`);
    if (nodePort !== undefined)
      plan.element(o.serviceNodePorts, `${proto} . ${nodePort}`, `goto ${externalChain}`);
  }
  return { elements: plan.elements, chains: plan.chains, sets: plan.sets, problems, clusterIP };
}
