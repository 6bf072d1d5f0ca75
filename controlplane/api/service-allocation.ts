/**
 * A Service's ClusterIP and node ports, as Kubernetes' Service REST storage gives them: allocated
 * from the service CIDR and the node port range when the user gives none, checked when given (in
 * range, not held by another Service), kept across updates that leave them out, dropped when the
 * type no longer uses them. What a Service holds is reserved in the store (reservations.ts) in the
 * transaction that writes it.
 */
import { cidrContains, formatIPv4, ipv4Number, type Cidr } from '../../proto/cidr.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import type { Service, ServicePort } from '../../proto/gen/types.js';
import type { Reservation, ReservationRange } from './reservations.js';

/** Node ports one Service may hold: its write and their keys go in one etcd transaction (128). */
export const MAX_NODE_PORTS = 100;

export interface ServiceRanges {
  /** Where ClusterIPs come from (`--service-cidr`, default 10.96.0.0/12). */
  serviceCIDR: Cidr;
  /** Node ports (`--service-node-port-range`, default 30000-32767). */
  nodePorts: { min: number; max: number };
}

export interface ReservationLookup {
  /** Who holds the value (`namespace/name`), or undefined when it is free. */
  holderOf(range: ReservationRange, value: string): Promise<string | undefined>;
  /** Every value of the range that is held. */
  held(range: ReservationRange): Promise<Set<string>>;
  random(): number;
}

/** The types whose ports may hold node ports (given ones are held whatever else they say). */
const usesNodePorts = (spec: Service['spec']) => spec.type === 'NodePort' || spec.type === 'LoadBalancer';
/** Those given node ports when they name none: LoadBalancers not if allocateLoadBalancerNodePorts is false. */
const allocatesNodePorts = (spec: Service['spec']) =>
  usesNodePorts(spec) && !(spec.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts === false);
const hasClusterIP = (service: Service) =>
  service.spec.type !== 'ExternalName' && service.spec.clusterIP !== 'None';

/** What the Service holds: its ClusterIP and its node ports. */
export function serviceReservations(service: Service): Reservation[] {
  const held: Reservation[] = [];
  if (hasClusterIP(service) && service.spec.clusterIP)
    held.push({ range: 'serviceIPs', value: service.spec.clusterIP, field: 'spec.clusterIP' });
  if (usesNodePorts(service.spec))
    (service.spec.ports ?? []).forEach((port, i) => {
      // one node port may serve a port over TCP and UDP (DNS): held once
      if (port.nodePort && !held.some((h) => h.range === 'nodePorts' && h.value === String(port.nodePort)))
        held.push({ range: 'nodePorts', value: String(port.nodePort), field: `spec.ports[${i}].nodePort` });
    });
  const health = service.spec.healthCheckNodePort;
  if (needsHealthCheck(service.spec) && health)
    held.push({ range: 'nodePorts', value: String(health), field: 'spec.healthCheckNodePort' });
  return held;
}

/** The old port a new one continues: the same name, or (unnamed) the same number and protocol. */
const continues = (port: ServicePort, old: ServicePort) =>
  port.name
    ? port.name === old.name && (port.protocol || 'TCP') === (old.protocol || 'TCP')
    : port.port === old.port && (port.protocol || 'TCP') === (old.protocol || 'TCP');

/**
 * On update, before validation: what the user left out is what the Service had (its ClusterIP, the
 * node ports of ports it keeps), and what the new type no longer uses goes if it was the old value.
 */
export function carryServiceAllocations(service: Service, old: Service): void {
  const spec = service.spec;
  if (spec.type === 'ExternalName') {
    if (spec.clusterIP === old.spec.clusterIP) delete spec.clusterIP;
    if (JSON.stringify(spec.clusterIPs) === JSON.stringify(old.spec.clusterIPs)) delete spec.clusterIPs;
  } else if (!spec.clusterIP && old.spec.clusterIP && old.spec.type !== 'ExternalName') {
    spec.clusterIP = old.spec.clusterIP;
    spec.clusterIPs = old.spec.clusterIPs ?? [old.spec.clusterIP];
  }
  if (needsHealthCheck(spec)) {
    if (!spec.healthCheckNodePort && needsHealthCheck(old.spec) && old.spec.healthCheckNodePort)
      spec.healthCheckNodePort = old.spec.healthCheckNodePort;
  } else if (spec.healthCheckNodePort && spec.healthCheckNodePort === old.spec.healthCheckNodePort) {
    delete spec.healthCheckNodePort;
  }
  const ports = spec.ports ?? [];
  const oldPorts = old.spec.ports ?? [];
  for (const port of ports) {
    const before = oldPorts.find((o) => continues(port, o));
    if (usesNodePorts(spec)) {
      if (
        !port.nodePort &&
        before?.nodePort &&
        usesNodePorts(old.spec) &&
        !ports.some((p) => p.nodePort === before.nodePort)
      )
        port.nodePort = before.nodePort;
    } else if (port.nodePort && port.nodePort === before?.nodePort) {
      delete port.nodePort;
    }
  }
}

/**
 * Gives the Service what it lacks and checks what it was given, reading what others hold. `old`:
 * the stored Service on update (what it holds already is its own).
 */
export async function allocateService(
  service: Service,
  old: Service | undefined,
  ranges: ServiceRanges,
  lookup: ReservationLookup,
  what: string,
): Promise<void> {
  const spec = service.spec;
  const mine = new Set((old ? serviceReservations(old) : []).map((r) => `${r.range}/${r.value}`));
  const takenByOther = async (range: ReservationRange, value: string) =>
    mine.has(`${range}/${value}`) ? undefined : lookup.holderOf(range, value);

  if (spec.type === 'ExternalName' && spec.clusterIP)
    throw new InvalidArgumentError(
      `${what}: spec.clusterIP: Invalid value: "${spec.clusterIP}": may not be set for type ExternalName`,
      'spec.clusterIP',
    );
  if (hasClusterIP(service)) {
    const { serviceCIDR } = ranges;
    // clusterIPs alone states the address as well
    if (!spec.clusterIP && spec.clusterIPs?.[0]) spec.clusterIP = spec.clusterIPs[0];
    // what it holds already stays, whatever the range says now (--service-cidr changed)
    if (spec.clusterIP && !mine.has(`serviceIPs/${spec.clusterIP}`)) {
      const address = ipv4Number(spec.clusterIP);
      const last = serviceCIDR.base + serviceCIDR.size - 1;
      if (
        address === undefined ||
        !cidrContains(serviceCIDR, address) ||
        address === serviceCIDR.base ||
        address === last
      )
        throw new InvalidArgumentError(
          `${what}: spec.clusterIP: Invalid value: "${spec.clusterIP}": provided IP is not in the valid range. The range of valid IPs is ${serviceCIDR.text}`,
          'spec.clusterIP',
        );
      const holder = await takenByOther('serviceIPs', spec.clusterIP);
      if (holder !== undefined)
        throw new InvalidArgumentError(
          `${what}: spec.clusterIP: Invalid value: "${spec.clusterIP}": provided IP is already allocated (to Service ${holder})`,
          'spec.clusterIP',
        );
    } else if (!spec.clusterIP) {
      spec.clusterIP = await freeServiceIP(serviceCIDR, lookup, what);
    }
    spec.clusterIPs = [spec.clusterIP];
  }

  if (usesNodePorts(spec)) {
    const { min, max } = ranges.nodePorts;
    const ports = spec.ports ?? [];
    if (ports.length > MAX_NODE_PORTS)
      throw new InvalidArgumentError(
        `${what}: spec.ports: a Service of type ${spec.type} may have at most ${MAX_NODE_PORTS} ports (each holds a node port), got ${ports.length}`,
        'spec.ports',
      );
    /** A node port the client gave: in the range and free, unless the Service holds it already. */
    const checkGivenPort = async (port: number, field: string): Promise<void> => {
      if (mine.has(`nodePorts/${port}`)) return; // held already, whatever the range says now
      if (port < min || port > max)
        throw new InvalidArgumentError(
          `${what}: ${field}: Invalid value: ${port}: provided port is not in the valid range. The range of valid ports is ${min}-${max}`,
          field,
        );
      const holder = await takenByOther('nodePorts', String(port));
      if (holder !== undefined)
        throw new InvalidArgumentError(
          `${what}: ${field}: Invalid value: ${port}: provided port is already allocated (to Service ${holder})`,
          field,
        );
    };
    const inThisService = new Set(ports.map((p) => p.nodePort).filter((n): n is number => !!n));
    const seen = new Map<string, number>();
    for (const [i, port] of ports.entries()) {
      if (!port.nodePort) continue;
      const field = `spec.ports[${i}].nodePort`;
      const byProtocol = `${port.nodePort}/${port.protocol || 'TCP'}`;
      if (seen.has(byProtocol))
        throw new InvalidArgumentError(
          `${what}: ${field}: Duplicate value: ${port.nodePort}: spec.ports[${seen.get(byProtocol)}] has it for ${port.protocol || 'TCP'} already`,
          field,
        );
      seen.set(byProtocol, i);
      await checkGivenPort(port.nodePort, field);
    }
    for (const port of allocatesNodePorts(spec) ? ports : []) {
      if (port.nodePort) continue;
      port.nodePort = await freeNodePort(min, max, inThisService, lookup, what);
      inThisService.add(port.nodePort);
    }
    // the port load balancers probe on every node for whether it has local endpoints
    if (needsHealthCheck(spec)) {
      const field = 'spec.healthCheckNodePort';
      const given = spec.healthCheckNodePort;
      if (given && inThisService.has(given))
        throw new InvalidArgumentError(
          `${what}: ${field}: Duplicate value: ${given}: a port of the Service has it`,
          field,
        );
      if (given) await checkGivenPort(given, field);
      else spec.healthCheckNodePort = await freeNodePort(min, max, inThisService, lookup, what);
    }
  }
}

/** A LoadBalancer that keeps traffic on the node it arrives at has a health check node port. */
const needsHealthCheck = (spec: Service['spec']) =>
  spec.type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local';

/**
 * A free address: random picks from above the static band first (Kubernetes keeps the lowest
 * addresses, 1/16 of the range between 16 and 256, for ClusterIPs users choose), then a scan.
 */
async function freeServiceIP(cidr: Cidr, lookup: ReservationLookup, what: string): Promise<string> {
  const first = cidr.base + 1;
  const last = cidr.base + cidr.size - 2;
  const count = last - first + 1;
  if (count < 1) throw new FailedPreconditionError(`${what}: the service CIDR ${cidr.text} holds no address`);
  const band = Math.min(256, Math.max(16, Math.floor(cidr.size / 16)));
  const dynamicFirst = count > band ? first + band : first;
  for (let attempt = 0; attempt < 16; attempt++) {
    const address = formatIPv4(dynamicFirst + Math.floor(lookup.random() * (last - dynamicFirst + 1)));
    if ((await lookup.holderOf('serviceIPs', address)) === undefined) return address;
  }
  const held = await lookup.held('serviceIPs');
  for (let n = dynamicFirst; n <= last; n++) if (!held.has(formatIPv4(n))) return formatIPv4(n);
  for (let n = first; n < dynamicFirst; n++) if (!held.has(formatIPv4(n))) return formatIPv4(n);
  throw new FailedPreconditionError(
    `${what}: every address of the service CIDR ${cidr.text} is allocated; delete Services or widen --service-cidr`,
  );
}

async function freeNodePort(
  min: number,
  max: number,
  alsoTaken: ReadonlySet<number>,
  lookup: ReservationLookup,
  what: string,
): Promise<number> {
  for (let attempt = 0; attempt < 16; attempt++) {
    const port = min + Math.floor(lookup.random() * (max - min + 1));
    if (!alsoTaken.has(port) && (await lookup.holderOf('nodePorts', String(port))) === undefined) return port;
  }
  const held = await lookup.held('nodePorts');
  for (let port = min; port <= max; port++) if (!alsoTaken.has(port) && !held.has(String(port))) return port;
  throw new FailedPreconditionError(
    `${what}: every node port from ${min} to ${max} is allocated; delete NodePort Services or give a port range with more room`,
  );
}
