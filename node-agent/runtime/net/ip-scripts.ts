/**
 * What `ip -batch` is told to do, and the decisions taken from what `ip -j` showed. Pure: every
 * line is testable without root (ip-scripts.test.ts); net-exec.ts runs them.
 */
import { FailedPreconditionError } from '../../../proto/errors.js';
import { POD_INTERFACE } from './names.js';

/** A route as `ip -j route show` prints it (the fields used here). */
export interface ShownRoute {
  dst: string;
  type?: string;
  dev?: string;
  gateway?: string;
  /** `link` for a connected subnet. */
  scope?: string;
  flags?: string[];
}

/** A link as `ip -j -d link show` or `ip -j addr show` prints it (the fields used here). */
export interface ShownLink {
  ifindex: number;
  ifname: string;
  /** The peer's ifindex, for a veth (in the peer's namespace). */
  link_index?: number;
  master?: string;
  operstate?: string;
  flags?: string[];
  mtu?: number;
  address?: string;
  linkinfo?: {
    info_kind?: string;
    /** A VXLAN device's settings (the fields used here). */
    info_data?: { id?: number; local?: string; port?: number; learning?: boolean };
  };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/**
 * The `unreachable` routes a host namespace needs for `cidrs` (the cluster's and the services'):
 * none for a block that already has one; a block the host routes otherwise is refused, since
 * skiff's addresses would then reach that network.
 */
export function unreachableRoutesScript(cidrs: readonly string[], routes: readonly ShownRoute[]): string {
  const lines: string[] = [];
  for (const cidr of cidrs) {
    const existing = routes.find((r) => r.dst === cidr);
    if (existing?.type === 'unreachable') continue;
    if (existing) {
      const via = existing.gateway ? ` via ${existing.gateway}` : existing.dev ? ` on ${existing.dev}` : '';
      throw new FailedPreconditionError(
        `prepare the node's network: the host already routes ${cidr}${via}; skiff's addresses there must never leave the host: choose another cluster or service CIDR, or remove that route`,
      );
    }
    lines.push(`route add unreachable ${cidr}`);
  }
  return lines.map((l) => l + '\n').join('');
}

/**
 * The policy rule's priority and the route table that let the host's own connections to the
 * service CIDR reach the table's output hook, where a ClusterIP is DNATed to an endpoint: the
 * service CIDR's `unreachable` route would fail their connect() before it. Only packets the host
 * itself makes (`iif lo`) look here: forwarded ones still meet the unreachable route.
 */
export const LOCAL_SERVICE_RULE_PRIORITY = 31000;
export const LOCAL_SERVICE_TABLE = 31000;

/** A policy rule as `ip -j rule show` prints it (the fields used here). */
export interface ShownRule {
  priority?: number;
  dst?: string;
  dstlen?: number;
  iif?: string;
  table?: string;
}

function isLocalServiceRule(rule: ShownRule, serviceCIDR: string): boolean {
  return (
    rule.priority === LOCAL_SERVICE_RULE_PRIORITY &&
    `${rule.dst}/${rule.dstlen}` === serviceCIDR &&
    rule.iif === 'lo' &&
    rule.table === String(LOCAL_SERVICE_TABLE)
  );
}

/**
 * The host's own connections to the service CIDR routed onto the bridge, from its gateway address
 * (the output hook then DNATs a ClusterIP to an endpoint; an address no Service holds finds no
 * neighbour there and never leaves the host). The rule is added once; the route is replaced.
 */
export function localServiceRouteScript(opts: {
  serviceCIDR: string;
  bridge: string;
  gateway: string;
  rules: readonly ShownRule[];
}): string {
  const present = opts.rules.some((r) => isLocalServiceRule(r, opts.serviceCIDR));
  return [
    ...(present
      ? []
      : [
          `rule add priority ${LOCAL_SERVICE_RULE_PRIORITY} to ${opts.serviceCIDR} iif lo lookup ${LOCAL_SERVICE_TABLE}`,
        ]),
    `route replace ${opts.serviceCIDR} dev ${opts.bridge} src ${opts.gateway} table ${LOCAL_SERVICE_TABLE}`,
    '',
  ].join('\n');
}

/** What localServiceRouteScript added, removed (the route goes with the bridge). */
export function removeLocalServiceRuleScript(serviceCIDR: string, rules: readonly ShownRule[]): string {
  return rules.some((r) => isLocalServiceRule(r, serviceCIDR))
    ? `rule del priority ${LOCAL_SERVICE_RULE_PRIORITY} to ${serviceCIDR} iif lo lookup ${LOCAL_SERVICE_TABLE}\n`
    : '';
}

/** The bridge made (unless it exists), addressed, with a fixed link address and MTU, up. */
export function bridgeScript(opts: {
  bridge: string;
  exists: boolean;
  mac: string;
  mtu: number;
  gateway: string;
  prefix: number;
  /** IPv4 addresses it has that are not the gateway's (a former pod CIDR's): removed. */
  staleAddresses: string[];
}): string {
  const { bridge } = opts;
  return [
    ...(opts.exists ? [] : [`link add ${bridge} type bridge`]),
    `link set dev ${bridge} address ${opts.mac} mtu ${opts.mtu}`,
    ...opts.staleAddresses.map((a) => `addr del ${a} dev ${bridge}`),
    `addr replace ${opts.gateway}/${opts.prefix} dev ${bridge}`,
    `link set dev ${bridge} up`,
    '',
  ].join('\n');
}

/** A link `ip -j -d link show dev X` showed is a bridge, or it is refused (something else took the name). */
export function checkBridge(bridge: string, link: ShownLink | undefined): boolean {
  if (!link) return false;
  if (link.linkinfo?.info_kind !== 'bridge') {
    throw new FailedPreconditionError(
      `prepare the node's network: the host has a link named ${bridge} that is not a bridge (${link.linkinfo?.info_kind ?? 'a device'}); remove it or give skiff another bridge name`,
    );
  }
  return true;
}

/** `kept` aside, the link's IPv4 addresses (as ADDR/PREFIX): the bridge's or the VXLAN device's. */
export function staleAddresses(link: ShownLink | undefined, kept: string): string[] {
  return (link?.addr_info ?? [])
    .filter((a) => a.family === 'inet' && a.local !== kept)
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/** The host side of a sandbox: its veth pair made, the sandbox's end as eth0 in its namespace, ours on the bridge. */
export function vethCreateScript(opts: { veth: string; netnsPath: string; mtu: number }): string {
  return `link add ${opts.veth} mtu ${opts.mtu} type veth peer name ${POD_INTERFACE} mtu ${opts.mtu} netns ${opts.netnsPath}\n`;
}

/**
 * The host end on the bridge and up; hairpin, so that a pod reaching itself through one of its
 * host ports gets its packets back out of the port they came in by (with br_netfilter the bridge
 * sends them there itself). Each line is idempotent.
 */
export function vethAttachScript(opts: { veth: string; bridge: string }): string {
  return [
    `link set dev ${opts.veth} master ${opts.bridge}`,
    `link set dev ${opts.veth} type bridge_slave hairpin on`,
    `link set dev ${opts.veth} up`,
    '',
  ].join('\n');
}

/** Inside the sandbox: its address, eth0 up, the default route via the bridge. Each line is idempotent. */
export function podAddressScript(opts: { ip: string; prefix: number; gateway: string }): string {
  return [
    `addr replace ${opts.ip}/${opts.prefix} dev ${POD_INTERFACE}`,
    `link set dev ${POD_INTERFACE} up`,
    `route replace default via ${opts.gateway} dev ${POD_INTERFACE}`,
    '',
  ].join('\n');
}

/**
 * After a create failed because a link was already there (a set-up called again, or one that
 * stopped halfway): keep the pair when the host's veth and the sandbox's eth0 are each other's
 * peers, else remove what is there and make it again.
 */
export function repairPlan(
  hostEnd: ShownLink | undefined,
  podEnd: ShownLink | undefined,
): 'keep' | 'recreate' {
  if (hostEnd && podEnd && hostEnd.link_index === podEnd.ifindex && podEnd.link_index === hostEnd.ifindex) {
    return 'keep';
  }
  return 'recreate';
}

/** Arguments of `ip` must not split or smuggle a command: a path for a netns has no whitespace. */
export function checkNetnsPath(path: string): void {
  if (!path.startsWith('/') || /[\s\0]/.test(path)) {
    throw new FailedPreconditionError(`network namespace "${path}": not an absolute path without spaces`);
  }
}
