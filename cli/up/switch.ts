/**
 * Network namespaces of this machine joined on one switch, as `skiff up` runs its nodes and the
 * multi-host tests run their hosts (test/harness/hosts.ts):
 *
 *   machine namespace           switch namespace                    host (node) namespaces
 *   ─────────────────           ────────────────                    ──────────────────────
 *   <veth> S.254/24 ──veth── to-machine ─┐                          eth0 S.1/24, lo
 *   (its one new link and                ├─ bridge switch0          eth0 S.2/24, lo …
 *    its one new address)    <port> ─────┘  (no address, no route)
 *                                           ── veth ── eth0 of each host
 *
 * S is a /24 of a /16 of 172.16.0.0/12 that neither an address nor a route of the machine's
 * namespace overlaps (every table; a default route aside), nor another user of the same pool (each
 * holds its /24 by a file made exclusively in the pool's directory under /run). Why it is safe:
 *   - the machine namespace gets one veth, IPv6 off, with one address on a range it did not route:
 *     its only new route is the connected S/24, so only what the machine itself sends to S enters;
 *   - the bridge lives in a namespace of its own with no address and no route: it switches frames
 *     between the veths and forwards nothing at layer 3;
 *   - a host has no default route, only the connected S/24 on eth0, so it addresses nothing beyond
 *     S but what it holds itself (its pods' bridge), and the machine never forwards for it (its
 *     ip_forward is left as it is, and no host can address a packet beyond S to it).
 *
 * Every step is idempotent: what exists is kept, so the switch of a cluster that still partly runs
 * is completed rather than made again.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../proto/errors.js';
import { cidrsOverlap, formatIPv4, ipv4Number, parseCidr, type Cidr } from '../../proto/cidr.js';

/** The machine's host number on the switch: S.254. */
export const MACHINE_HOST = 254;
const BRIDGE = 'switch0';
const MACHINE_PORT = 'to-machine';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `argv` to its end (killed after `timeoutMs`, default 30 s; then code null). */
export function runCommand(
  argv: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      {
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
        maxBuffer: 64 << 20,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr: stderr || (err && code === null ? err.message : '') });
      },
    );
    // a command that exits without reading its input must not fail this process (EPIPE)
    child.stdin?.on('error', () => {});
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/** `argv`'s standard output; a failure names `what` and what the command said. */
export async function mustRun(argv: string[], what = argv.join(' ')): Promise<string> {
  const result = await runCommand(argv);
  if (result.code !== 0)
    throw new FailedPreconditionError(
      `${what}: exit ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  return result.stdout;
}

/** A route or address as a CIDR (its network: `10.1.2.3/8` is 10.0.0.0/8); undefined for others. */
function asCidr(text: string): Cidr | undefined {
  const [ip, prefixText = '32'] = text.split('/');
  const value = ipv4Number(ip!);
  const prefix = Number(prefixText);
  if (value === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  return parseCidr(`${formatIPv4(value - (value % size))}/${prefix}`, 'route');
}

export interface MachineRoute {
  dst: string;
  type?: string;
  dev?: string;
  gateway?: string;
  metric?: number;
  table?: string;
}

/** The IPv4 routes of every table of this process's namespace (`ip -j -4 route show table all`). */
export async function machineRoutes(): Promise<MachineRoute[]> {
  return JSON.parse(await mustRun(['ip', '-j', '-4', 'route', 'show', 'table', 'all'])) as MachineRoute[];
}

/** What this process's namespace addresses or routes (a default route aside), as CIDRs. */
async function usedCidrs(): Promise<Cidr[]> {
  const used: Cidr[] = [];
  type Addr = { addr_info?: { family: string; local: string; prefixlen: number }[] };
  const addrs = JSON.parse(await mustRun(['ip', '-j', '-4', 'addr', 'show'])) as Addr[];
  for (const route of await machineRoutes()) {
    if (!route.dst || route.dst === 'default') continue;
    const cidr = asCidr(route.dst);
    if (cidr && cidr.prefix > 0) used.push(cidr);
  }
  for (const link of addrs)
    for (const info of link.addr_info ?? [])
      if (info.family === 'inet') {
        const cidr = asCidr(`${info.local}/${info.prefixlen}`);
        if (cidr) used.push(cidr, asCidr(`${info.local}/32`)!);
      }
  return used;
}

/** Where the users of one range hold their /24s: files `subnet-<a.b.c>` made exclusively in `dir`. */
export interface SubnetPool {
  /** A directory under /run (gone at reboot with the switches). */
  dir: string;
  /** The /16 the /24s come from, as its first two octets: `172.31`. */
  range: string;
}

export function reservationFile(pool: SubnetPool, subnet: Cidr): string {
  return join(pool.dir, `subnet-${subnet.text.replace(/\.0\/24$/, '')}`);
}

/** The holder written in a reservation file, or undefined when there is none. */
export function reservationHolder(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * A /24 of `pool` that neither an address nor a route of this namespace overlaps and no other
 * holder has, held for `holder` by creating its reservation file exclusively. `preferred` (a /24
 * the holder had before) is taken when free; else the search starts at a random third octet. A
 * reservation `isStale` says was abandoned is taken over.
 */
export async function reserveSubnet(
  pool: SubnetPool,
  holder: string,
  options: { preferred?: string; isStale?: (holder: string, reservation: string) => boolean } = {},
): Promise<{ subnet: Cidr; reservation: string }> {
  const used = await usedCidrs();
  mkdirSync(pool.dir, { recursive: true, mode: 0o700 });
  const start = randomBytes(1)[0]!;
  const octets = Array.from({ length: 256 }, (_, i) => (start + i) % 256);
  const preferred = options.preferred !== undefined ? asCidr(options.preferred) : undefined;
  const candidates = [
    ...(preferred && preferred.prefix === 24 && preferred.text.startsWith(`${pool.range}.`)
      ? [preferred]
      : []),
    ...octets.map((octet) => parseCidr(`${pool.range}.${octet}.0/24`, 'subnet')),
  ];
  for (const subnet of candidates) {
    if (used.some((u) => cidrsOverlap(u, subnet))) continue;
    const reservation = reservationFile(pool, subnet);
    const current = reservationHolder(reservation);
    if (current === holder) return { subnet, reservation };
    if (current !== undefined && options.isStale?.(current, reservation)) {
      // taken over in place: a second taker's exclusive create fails as it would on a live one
      writeFileSync(reservation, `${holder}\n`, { mode: 0o600 });
      return { subnet, reservation };
    }
    try {
      writeFileSync(reservation, `${holder}\n`, { flag: 'wx', mode: 0o600 });
    } catch {
      continue; // someone else's
    }
    return { subnet, reservation };
  }
  throw new FailedPreconditionError(
    `reserve a /24 of ${pool.range}.0.0/16: none is free on this machine (each overlaps an address or route here, or is held in ${pool.dir})`,
  );
}

/** How old a reservation file is, in ms (Infinity when it is gone). */
export function reservationAgeMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return Infinity;
  }
}

/** Host `host` of `subnet`: `addressIn(172.31.7.0/24, 2)` is 172.31.7.2. */
export function addressIn(subnet: Cidr, host: number): string {
  return formatIPv4(subnet.base + host);
}

export interface SwitchSpec {
  /** The switch's network namespace. */
  namespace: string;
  /** The machine's veth (at most 15 characters). */
  machineVeth: string;
  subnet: Cidr;
}

function linkExists(namespace: string | undefined, name: string): Promise<boolean> {
  return runCommand(['ip', ...(namespace ? ['-n', namespace] : []), 'link', 'show', 'dev', name]).then(
    (r) => r.code === 0,
  );
}

async function ensureNamespace(name: string): Promise<void> {
  if (!existsSync(`/run/netns/${name}`)) await mustRun(['ip', 'netns', 'add', name]);
  await mustRun(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
}

/** A switch namespace with its bridge and nothing else, made or completed. */
export async function ensureBridge(namespace: string): Promise<void> {
  await ensureNamespace(namespace);
  if (!(await linkExists(namespace, BRIDGE)))
    await mustRun(['ip', '-n', namespace, 'link', 'add', BRIDGE, 'type', 'bridge']);
  await mustRun(['ip', '-n', namespace, 'link', 'set', BRIDGE, 'up']);
}

/**
 * The switch namespace with its bridge, and the machine's veth on it (IPv6 off, S.254/24): made,
 * or completed where part of it exists.
 */
export async function ensureSwitch(spec: SwitchSpec): Promise<void> {
  const ns = spec.namespace;
  await ensureBridge(ns);
  const veth = spec.machineVeth;
  if (!(await linkExists(ns, MACHINE_PORT))) {
    // a veth left without its peer (the switch namespace was removed alone) cannot be reused
    if (await linkExists(undefined, veth)) await mustRun(['ip', 'link', 'del', veth]);
    await mustRun(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', MACHINE_PORT, 'netns', ns]);
  }
  await mustRun(['sysctl', '-q', '-w', `net.ipv6.conf.${veth}.disable_ipv6=1`]);
  await mustRun(['ip', 'addr', 'replace', `${addressIn(spec.subnet, MACHINE_HOST)}/24`, 'dev', veth]);
  await mustRun(['ip', 'link', 'set', veth, 'up']);
  await mustRun(['ip', '-n', ns, 'link', 'set', MACHINE_PORT, 'master', BRIDGE, 'up']);
}

/**
 * Host namespace `namespace` (made when missing) on the switch through port `port` of the switch
 * namespace, its end named eth0 with `address`/24.
 */
export async function attachToSwitch(
  spec: SwitchSpec,
  host: { namespace: string; port: string; address: string },
): Promise<void> {
  const ns = host.namespace;
  await ensureNamespace(ns);
  if (!(await linkExists(spec.namespace, host.port))) {
    if (await linkExists(ns, 'eth0')) await mustRun(['ip', '-n', ns, 'link', 'del', 'eth0']);
    await mustRun([
      'ip', '-n', spec.namespace, 'link', 'add', host.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns,
    ]); // prettier-ignore
  }
  await mustRun(['ip', '-n', spec.namespace, 'link', 'set', host.port, 'master', BRIDGE, 'up']);
  await mustRun(['ip', '-n', ns, 'addr', 'replace', `${host.address}/24`, 'dev', 'eth0']);
  await mustRun(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
}

/**
 * Removes `namespaces` (their veths and the bridge go with them), then the machine's veth; what
 * could not be removed, one line each.
 */
export async function removeSwitch(namespaces: readonly string[], machineVeth: string): Promise<string[]> {
  const problems: string[] = [];
  for (const name of namespaces) {
    if (!existsSync(`/run/netns/${name}`)) continue;
    const result = await runCommand(['ip', 'netns', 'del', name]);
    if (result.code !== 0) problems.push(`network namespace ${name}: ${result.stderr.trim()}`);
  }
  // `ip netns del` returns before the kernel has torn the namespace down, and the machine's veth
  // goes with its peer in the switch's namespace: it may still be listed here and gone by the
  // `ip link del` (a loaded machine), which is left behind only if it is still there after
  if (await linkExists(undefined, machineVeth)) {
    const result = await runCommand(['ip', 'link', 'del', machineVeth]);
    if (result.code !== 0 && existsSync(`/sys/class/net/${machineVeth}`))
      problems.push(`veth ${machineVeth}: ${result.stderr.trim()}`);
  }
  return problems;
}
