/**
 * Address management for one node's pod CIDR, and the record of what each sandbox holds: its
 * address, the host end of its veth, its host ports. Pure: the state is a plain object that
 * PodNetwork keeps in memory and writes to `<stateDir>/leases.json` (lease-file.ts) after every
 * change and before the network is touched, so whatever a set-up made is recorded first.
 *
 * Addresses: the first of the CIDR is the network, the second the bridge's (the pods' gateway),
 * the last the broadcast; the rest go to sandboxes, one each, round robin from the last one given
 * (as CNI's host-local), so an address just released is not handed out again at once while
 * neighbours' ARP caches and conntrack entries may still name it.
 */
import { FailedPreconditionError, InternalError, ResourceExhaustedError } from '../../../proto/errors.js';
import { hostPortText, hostPortsOverlap } from '../containers/validate.js';
import type { PortMapping } from '../pod-runtime.js';
import { cidrContains, formatIPv4, parseCidr, ipv4Number, type Cidr } from '../../../proto/cidr.js';

/** What one sandbox holds on the node. */
export interface Lease {
  /** The sandbox's id. */
  sandbox: string;
  /** The sandbox's name, for messages. */
  name: string;
  ip: string;
  /** The host end of its veth pair (names.ts). */
  veth: string;
  /** Forwarded by the node's nftables table while the lease lives. */
  portMappings: PortMapping[];
  /** ISO 8601. */
  since: string;
}

export interface LeaseState {
  /** The pod CIDR the leases are in. */
  podCIDR: string;
  /** The address handed out last; the next search starts after it. */
  last?: string;
  /** By sandbox id. */
  leases: Record<string, Lease>;
}

export function emptyLeaseState(podCIDR: Cidr): LeaseState {
  return { podCIDR: podCIDR.text, leases: {} };
}

/** The bridge's address, the pods' gateway: the CIDR's second address. */
export function gatewayOf(cidr: Cidr): string {
  return formatIPv4(cidr.base + 1);
}

/** How many sandboxes the CIDR holds (all but the network, gateway and broadcast addresses). */
export function capacityOf(cidr: Cidr): number {
  return Math.max(0, cidr.size - 3);
}

/**
 * The state as loaded for a node whose pod CIDR is `podCIDR`: a state of another CIDR with no
 * leases is started afresh (the node got a new CIDR); one with leases is refused, since sandboxes
 * still hold those addresses.
 */
export function stateForCidr(loaded: LeaseState | undefined, podCIDR: Cidr): LeaseState {
  if (!loaded) return emptyLeaseState(podCIDR);
  if (loaded.podCIDR === podCIDR.text) return loaded;
  const held = Object.values(loaded.leases);
  if (held.length === 0) return emptyLeaseState(podCIDR);
  throw new FailedPreconditionError(
    `open pod network ${podCIDR.text}: ${held.length} sandboxes still hold addresses of the node's former pod CIDR ${loaded.podCIDR} (${held
      .slice(0, 3)
      .map((l) => `${l.name} ${l.ip}`)
      .join(', ')}${held.length > 3 ? ', …' : ''}); remove them first (releaseExcept([]))`,
  );
}

/** The next free address after `state.last`, round robin; ResourceExhaustedError naming the CIDR when none is. */
export function nextAddress(state: LeaseState, cidr: Cidr, forSandbox: string): string {
  const capacity = capacityOf(cidr);
  const first = cidr.base + 2;
  const inUse = new Set(Object.values(state.leases).map((l) => l.ip));
  const last = state.last !== undefined ? ipv4Number(state.last) : undefined;
  const start = last !== undefined && cidrContains(cidr, last) && last >= first ? last - first + 1 : 0;
  for (let i = 0; i < capacity; i++) {
    const ip = formatIPv4(first + ((start + i) % capacity));
    if (!inUse.has(ip)) return ip;
  }
  throw new ResourceExhaustedError(
    `allocate an address for sandbox ${forSandbox}: the pod CIDR ${cidr.text} has no address left (${inUse.size} of ${capacity} held)`,
  );
}

/** The lease holding a host port that `mappings` asks for, other than `self`'s, and the two mappings. */
export function hostPortHolder(
  state: LeaseState,
  mappings: readonly PortMapping[],
  self: string,
): { lease: Lease; held: PortMapping; wanted: PortMapping } | undefined {
  for (const lease of Object.values(state.leases)) {
    if (lease.sandbox === self) continue;
    for (const held of lease.portMappings) {
      const wanted = mappings.find((m) => hostPortsOverlap(m, held));
      if (wanted) return { lease, held, wanted };
    }
  }
  return undefined;
}

/**
 * The state with a lease for the sandbox: its existing one (a set-up called again), or a new one
 * with the next address. A host port another sandbox holds is refused (FailedPreconditionError
 * naming the port and the holder); so is a veth name another sandbox's lease has.
 */
export function lease(
  state: LeaseState,
  cidr: Cidr,
  sandbox: { id: string; name: string; portMappings: PortMapping[] },
  veth: string,
  now: Date,
): { state: LeaseState; lease: Lease; created: boolean } {
  const holder = hostPortHolder(state, sandbox.portMappings, sandbox.id);
  if (holder) {
    const held = hostPortText(holder.held);
    const wanted = hostPortText(holder.wanted);
    throw new FailedPreconditionError(
      `host port ${wanted} is held by sandbox ${holder.lease.name} (${holder.lease.sandbox.slice(0, 12)})${held === wanted ? '' : ` as ${held}`}`,
    );
  }
  const existing = state.leases[sandbox.id];
  if (existing) {
    const same =
      existing.portMappings.length === sandbox.portMappings.length &&
      existing.portMappings.every((m, i) => JSON.stringify(m) === JSON.stringify(sandbox.portMappings[i]));
    if (same) return { state, lease: existing, created: false };
    const updated = { ...existing, portMappings: sandbox.portMappings };
    return {
      state: { ...state, leases: { ...state.leases, [sandbox.id]: updated } },
      lease: updated,
      created: false,
    };
  }
  const clash = Object.values(state.leases).find((l) => l.veth === veth);
  if (clash) {
    throw new InternalError(
      `set up the network of sandbox ${sandbox.name}: its veth name ${veth} is that of sandbox ${clash.name} (${clash.sandbox.slice(0, 12)})`,
    );
  }
  const ip = nextAddress(state, cidr, sandbox.name);
  const created: Lease = {
    sandbox: sandbox.id,
    name: sandbox.name,
    ip,
    veth,
    portMappings: sandbox.portMappings,
    since: now.toISOString(),
  };
  return {
    state: { ...state, last: ip, leases: { ...state.leases, [sandbox.id]: created } },
    lease: created,
    created: true,
  };
}

/** The state without the sandbox's lease (the same state when it has none). */
export function release(state: LeaseState, sandbox: string): LeaseState {
  if (!(sandbox in state.leases)) return state;
  const leases = { ...state.leases };
  delete leases[sandbox];
  return { ...state, leases };
}

/** The leases of sandboxes not in `live`: what a start-up reconcile releases. */
export function leasesExcept(state: LeaseState, live: Iterable<string>): Lease[] {
  const keep = new Set(live);
  return Object.values(state.leases).filter((l) => !keep.has(l.sandbox));
}

/** A loaded file's state, checked: anything malformed is an error naming the file (never a silent reset). */
export function parseLeaseState(text: string, path: string): LeaseState {
  const fail = (why: string) =>
    new InternalError(
      `read pod network leases ${path}: ${why}; move the file away to start afresh (sandboxes still running keep their addresses but are no longer counted)`,
    );
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw fail(`not JSON (${(err as Error).message})`);
  }
  const v = value as Partial<LeaseState>;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.podCIDR !== 'string' ||
    typeof v.leases !== 'object' ||
    v.leases === null
  )
    throw fail('not a lease file (podCIDR, leases)');
  const cidr = parseCidr(v.podCIDR, 'podCIDR');
  for (const [id, l] of Object.entries(v.leases)) {
    const ip = typeof l?.ip === 'string' ? ipv4Number(l.ip) : undefined;
    if (
      l?.sandbox !== id ||
      ip === undefined ||
      !cidrContains(cidr, ip) ||
      typeof l.veth !== 'string' ||
      !Array.isArray(l.portMappings)
    )
      throw fail(`the lease of sandbox ${id.slice(0, 12)} is malformed`);
  }
  return {
    podCIDR: cidr.text,
    last: typeof v.last === 'string' ? v.last : undefined,
    leases: v.leases as Record<string, Lease>,
  };
}
