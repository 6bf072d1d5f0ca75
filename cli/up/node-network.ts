/**
 * The network a local cluster's nodes share (`skiff up --agents N`): each node a network
 * namespace on a switch of the cluster's own (switch.ts), with an address on the switch's /24 that
 * is its InternalIP, and the machine on the same switch at S.254, where the control plane and NATS
 * listen for the agents:
 *
 *   machine namespace                         skiff-<id>-switch              skiff-<id>-<n>
 *   unreachable 10.244.0.0/16, 10.96.0.0/12   bridge switch0                 eth0 S.n/24 (the node's IP),
 *   skiff-<id> S.254/24  ────────veth──────── to-machine, n1, n2 … ──veth──  its pods' bridge, table, …
 *
 *   DIR/network.json          the /24 and the routes' metric: kept by `down`, so the next `up` takes
 *                             the same /24 (the nodes keep their addresses) while it is free
 *   /run/skiff-up/subnet-172.30.N   the /24 held while the switch exists (it names DIR)
 *
 * What this adds to the machine's namespace is one veth (IPv6 off), one address, and `unreachable`
 * routes for the cluster and service CIDRs, added before anything else and removed last: a packet
 * from the machine to a pod or Service address goes nowhere, while a node's address (a hostPort, a
 * NodePort) is reached over the switch. Each cluster's routes carry a metric of their own, so two
 * local clusters each add and remove theirs. The machine's forwarding is never touched; each node
 * namespace forwards (between its eth0 and its pods' bridge, as a Kubernetes node must), which
 * reaches nothing beyond the switch: no node has a default route.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cidrsOverlap, parseCidr, type Cidr } from '../../proto/cidr.js';
import { FailedPreconditionError } from '../../proto/errors.js';
import { DEFAULT_CLUSTER_CIDR, DEFAULT_SERVICE_CIDR } from '../../proto/network-plan.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import {
  MACHINE_HOST,
  addressIn,
  attachToSwitch,
  ensureSwitch,
  machineRoutes,
  mustRun,
  removeSwitch,
  reservationAgeMs,
  reservationFile,
  reservationHolder,
  reserveSubnet,
  runCommand,
  type MachineRoute,
  type SubnetPool,
  type SwitchSpec,
} from './switch.js';

/** Local clusters' /24s: 172.30.0.0/16 (the multi-host tests take 172.31.0.0/16). */
export const NODE_SUBNET_POOL: SubnetPool = { dir: '/run/skiff-up', range: '172.30' };
/** The addresses that never leave a node: `skiff up` runs the control plane with the defaults. */
export const UNREACHABLE_CIDRS = [DEFAULT_CLUSTER_CIDR, DEFAULT_SERVICE_CIDR];
/** The metrics the clusters' unreachable routes take, the first free one each. */
const FIRST_ROUTE_METRIC = 3000;

/** What DIR/network.json holds. */
interface NetworkPlan {
  /** The switch's /24, once reserved. */
  subnet?: string;
  /** The metric of this cluster's unreachable routes on the machine. */
  routeMetric: number;
}

export interface NodeNetwork {
  subnet: string;
  /** The machine's address on the switch: where the control plane and NATS listen for agents. */
  machineAddress: string;
  switchNamespace: string;
  machineVeth: string;
}

/** 8 hex digits naming the cluster of `stateDir` in namespace and link names. */
function clusterId(stateDir: string): string {
  return createHash('sha256').update(stateDir).digest('hex').slice(0, 8);
}

/** A network namespace name for node `index` of the cluster in `stateDir` (unique per state dir). */
function nodeNetnsName(stateDir: string, index: number): string {
  return `skiff-${clusterId(stateDir)}-${index}`;
}

function names(stateDir: string): { switchNamespace: string; machineVeth: string } {
  const id = clusterId(stateDir);
  return { switchNamespace: `skiff-${id}-switch`, machineVeth: `skiff-${id}` };
}

function planFile(stateDir: string): string {
  return join(stateDir, 'network.json');
}

function readPlan(stateDir: string): NetworkPlan | undefined {
  try {
    const plan = JSON.parse(readFileSync(planFile(stateDir), 'utf8')) as NetworkPlan;
    return Number.isInteger(plan.routeMetric) ? plan : undefined;
  } catch {
    return undefined;
  }
}

function writePlan(stateDir: string, plan: NetworkPlan): Promise<void> {
  return writeFileAtomic(planFile(stateDir), `${JSON.stringify(plan, null, 2)}\n`, { mode: 0o600 });
}

/** Whether `route` (an entry of `ip -j route`) covers any address of `block`. */
function routeOverlaps(route: MachineRoute, block: Cidr): boolean {
  try {
    return cidrsOverlap(parseCidr(route.dst.includes('/') ? route.dst : `${route.dst}/32`), block);
  } catch {
    return false; // not an IPv4 block
  }
}

/**
 * What `ip route` must add to the machine's main table `routes` so that `cidrs` are unreachable
 * with this cluster's `metric`: nothing where such a route is there. Refused when the machine
 * routes any part of them otherwise (the default route aside): a cluster's unreachable route would
 * cut the machine off from that network. Pure.
 */
export function unreachableRoutesToAdd(
  routes: readonly MachineRoute[],
  cidrs: readonly string[],
  metric: number,
): string[] {
  const commands: string[] = [];
  for (const cidr of cidrs) {
    const block = parseCidr(cidr);
    const other = routes.find(
      (r) => r.dst !== 'default' && r.type !== 'unreachable' && routeOverlaps(r, block),
    );
    if (other !== undefined)
      throw new FailedPreconditionError(
        `prepare the nodes' network: this machine routes ${other.dst}${other.gateway ? ` via ${other.gateway}` : ''}${other.dev ? ` on ${other.dev}` : ''}, which overlaps ${cidr}, the addresses a local cluster keeps unreachable here: remove that route, or run the cluster elsewhere`,
      );
    if (!routes.some((r) => r.dst === cidr && r.type === 'unreachable' && (r.metric ?? 0) === metric))
      commands.push(`route add unreachable ${cidr} metric ${metric}`);
  }
  return commands;
}

/** The lowest metric from FIRST_ROUTE_METRIC that no unreachable route for `cidrs` has. Pure. */
export function freeRouteMetric(routes: readonly MachineRoute[], cidrs: readonly string[]): number {
  const taken = new Set(
    routes.filter((r) => r.type === 'unreachable' && cidrs.includes(r.dst)).map((r) => r.metric ?? 0),
  );
  let metric = FIRST_ROUTE_METRIC;
  while (taken.has(metric)) metric++;
  return metric;
}

const mainTable = (routes: MachineRoute[]): MachineRoute[] =>
  routes.filter((r) => r.table === undefined || r.table === 'main');

/**
 * Makes the cluster's node network, or completes it (a restart of `up`): the unreachable routes
 * first, then the /24 (the one of network.json while it is free), the switch and the machine's veth.
 */
export async function ensureNodeNetwork(stateDir: string): Promise<NodeNetwork> {
  let plan = readPlan(stateDir);
  if (plan === undefined) {
    plan = { routeMetric: freeRouteMetric(mainTable(await machineRoutes()), UNREACHABLE_CIDRS) };
    await writePlan(stateDir, plan);
  }
  for (const command of unreachableRoutesToAdd(
    mainTable(await machineRoutes()),
    UNREACHABLE_CIDRS,
    plan.routeMetric,
  ))
    await mustRun(['ip', ...command.split(' ')]);
  const { switchNamespace, machineVeth } = names(stateDir);
  // a switch that still runs keeps its /24 (its address is the machine's now: not free to reserve)
  const running = existsSync(`/run/netns/${switchNamespace}`) && plan.subnet !== undefined;
  const { subnet, reservation } = running
    ? {
        subnet: parseCidr(plan.subnet!),
        reservation: reservationFile(NODE_SUBNET_POOL, parseCidr(plan.subnet!)),
      }
    : await reserveSubnet(NODE_SUBNET_POOL, stateDir, {
        ...(plan.subnet !== undefined ? { preferred: plan.subnet } : {}),
        // a holder whose state dir no longer names the /24 (removed, or moved to another /24,
        // without `down`) left it; a young one may be between its reservation and its plan
        isStale: (holder, path) => {
          const held = readPlan(holder)?.subnet;
          return (
            (held === undefined || reservationFile(NODE_SUBNET_POOL, parseCidr(held)) !== path) &&
            reservationAgeMs(path) > 60_000
          );
        },
      });
  if (running && reservationHolder(reservation) !== stateDir)
    await writeFileAtomic(reservation, `${stateDir}\n`, { mode: 0o600 });
  if (plan.subnet !== subnet.text) {
    plan = { ...plan, subnet: subnet.text };
    await writePlan(stateDir, plan);
  }
  await ensureSwitch({ namespace: switchNamespace, machineVeth, subnet });
  return {
    subnet: subnet.text,
    machineAddress: addressIn(subnet, MACHINE_HOST),
    switchNamespace,
    machineVeth,
  };
}

/** Node `index` (1, 2, …) on the switch: its namespace, and its address S.index. */
export async function attachNode(
  stateDir: string,
  network: NodeNetwork,
  index: number,
): Promise<{ netns: string; address: string }> {
  const netns = nodeNetnsName(stateDir, index);
  const subnet = parseCidr(network.subnet);
  const address = addressIn(subnet, index);
  const spec: SwitchSpec = { namespace: network.switchNamespace, machineVeth: network.machineVeth, subnet };
  await attachToSwitch(spec, { namespace: netns, port: `n${index}`, address });
  // a node forwards between the switch and its pods (hostPorts, NodePorts): as a Kubernetes node must
  await mustRun(['ip', 'netns', 'exec', netns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  return { netns, address };
}

/**
 * Removes what ensureNodeNetwork and attachNode made: the node and switch namespaces, the machine's
 * veth and address, the /24's reservation, and last the unreachable routes. network.json stays.
 * What could not be removed, one line each.
 */
export async function removeNodeNetwork(stateDir: string): Promise<string[]> {
  const plan = readPlan(stateDir);
  if (plan === undefined) return [];
  const { switchNamespace, machineVeth } = names(stateDir);
  const prefix = `skiff-${clusterId(stateDir)}-`;
  const nodes = existsSync('/run/netns')
    ? readdirSync('/run/netns').filter((n) => n.startsWith(prefix) && n !== switchNamespace)
    : [];
  const problems = await removeSwitch([...nodes, switchNamespace], machineVeth);
  if (problems.length > 0) return problems;
  if (plan.subnet !== undefined) {
    const reservation = reservationFile(NODE_SUBNET_POOL, parseCidr(plan.subnet));
    if (reservationHolder(reservation) === stateDir) rmSync(reservation, { force: true });
  }
  const routes = await machineRoutes();
  for (const cidr of UNREACHABLE_CIDRS) {
    if (
      !routes.some((r) => r.dst === cidr && r.type === 'unreachable' && (r.metric ?? 0) === plan.routeMetric)
    )
      continue;
    const result = await runCommand([
      'ip',
      'route',
      'del',
      'unreachable',
      cidr,
      'metric',
      String(plan.routeMetric),
    ]);
    if (result.code !== 0)
      problems.push(`route unreachable ${cidr} metric ${plan.routeMetric}: ${result.stderr.trim()}`);
  }
  return problems;
}
