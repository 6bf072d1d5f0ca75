/**
 * Hosts for multi-host tests: each host a Linux network namespace on this machine, with its own
 * address, its own directory (a runtime root under it) and its own cgroup parent, on one switch
 * (cli/up/switch.ts, which `skiff up` runs its nodes on too), or, asked for, some of them on a
 * second switch behind a router (below).
 * What runs "on" a host is a process entered into its network namespace (`nsenter --net`, nothing
 * else: mounts, cgroups and pids stay the machine's, as an agent needs them).
 *
 *   machine namespace        switch namespace skl-<id>-switch       host namespaces skl-<id>-<host>
 *   ─────────────────        ────────────────────────────────       ───────────────────────────────
 *   skl<id> S.254/24 ─veth── to-machine ─┐                          cp: eth0 S.1/24, lo
 *   (the test process:                   ├─ bridge switch0          n1: eth0 S.2/24, lo
 *    CLI, probes)            h-cp ───────┤  (no address, no route)  n2: eth0 S.3/24, lo …
 *                            h-n1 ───────┘  ── veth ── eth0 of each host
 *
 * S is a /24 of 172.31.0.0/16 that neither the machine's addresses nor any of its routes (every
 * table; a default route aside) overlap, nor another lab running now (each holds its /24 by a
 * file made exclusively under /run/skiff-labs). Why this is safe:
 *   - the machine namespace gets one veth and one address, S.254/24, on a range it did not route:
 *     its only new route is the connected S/24, so only traffic the machine itself addresses to S
 *     enters the lab, and IPv6 is off on that veth;
 *   - the bridge lives in a namespace of its own with no address and no route: it only switches
 *     frames between the lab's veths; nothing there forwards at layer 3;
 *   - a host has no default route and only the connected S/24 on eth0, and forwarding is off in
 *     it when made (checked), so it can address nothing outside S but its own pods (and other
 *     nodes' pods, through the routes skiff's agents add: lab.ts turns forwarding on in agent hosts,
 *     which then forward between the lab's addresses only); pod addresses (and the cluster and
 *     service CIDRs, which skiff's agent routes `unreachable` there) never leave the lab; the
 *     machine never forwards (its ip_forward is left as it is, and no host can address a packet
 *     beyond S to it).
 *
 * Two subnets (`secondSubnet`: the hosts named there): a second switch namespace skl-<id>-switch2
 * on a second free /24, S2, and a router namespace joining the two:
 *
 *   switch0 (S) ── eth0 S.253/24 ┐ skl-<id>-router ┌ eth1 S2.253/24 ── switch0 of switch2 (S2)
 *   hosts of S: route S2 via S.253                       hosts of S2: route S via S2.253
 *
 * Forwarding is on in the router namespace only, which has the two connected /24s and no other
 * route, so it forwards between S and S2 and nothing else; a `blackhole` route there for the
 * machine's S.254 keeps every packet from S2 away from the machine, whose reply (it has no route
 * to S2) would take its default route. Hosts still have no default route, and the machine is on S
 * only.
 *
 * Clean-up (`dispose`, also run for a lab whose test process died: `sweepAbandonedLabs`, from
 * `createHosts` and run-suite.sh's exit trap) removes, from the lab's record in /run/skiff-labs:
 * every process in a lab namespace or in a lab cgroup (after SIGTERM to the ones it started), the
 * cgroups under `<hierarchy>/skiff-lab-<id>`, every mount under the lab directory, the namespaces,
 * the machine's veth, the directory; and it names what it could not remove.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  MACHINE_HOST,
  addressIn,
  attachToSwitch,
  ensureBridge,
  ensureSwitch,
  mustRun,
  removeSwitch,
  reserveSubnet,
  runCommand,
  type CommandResult,
} from '../../cli/up/switch.js';
import type { Cidr } from '../../proto/cidr.js';
import { processStartTime } from '../../proto/support/pid-lock.js';

/** Where labs record themselves (what a later clean-up needs) and hold their /24. */
const RECORDS = '/run/skiff-labs';
/** The /16 the labs' /24s come from. */
const LAB_RANGE = '172.31';
/** The router's address on each of two subnets. */
const ROUTER_HOST = 253;

export type RunResult = CommandResult;

/** Killed after `timeoutMs` (default 30 s); the result then has code null. */
export type HostRunOptions = Parameters<typeof runCommand>[1];

/** A long-running process on a host, in a process group of its own. */
export interface HostProcess {
  name: string;
  pid: number;
  logFile: string;
  /** Resolves once it has exited (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: boolean;
  /** Sends `signal` to the process alone (not its group): an agent "crashing" leaves its containers. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM to its group, SIGKILL after `graceMs` (default 10 s); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface Host {
  name: string;
  /** Its address on the switch, e.g. 172.31.7.2. */
  address: string;
  /** Its switch's /24. */
  subnet: string;
  /** The network namespace's name (`ip -n NAME`) and path (`nsenter --net=PATH`). */
  netns: string;
  netnsPath: string;
  /** Its own directory (logs, state), under the lab's. */
  dir: string;
  /** Its runtime root: `<dir>/root`. */
  root: string;
  /** Its cgroup parent: `skiff-lab-<id>/<host>`. */
  cgroupParent: string;
  /** Runs `argv` on the host to its end. */
  run(argv: string[], options?: HostRunOptions): Promise<RunResult>;
  /** Starts `argv` on the host, output to `<dir>/<name>.log` (appended), tracked until dispose. */
  spawn(name: string, argv: string[], options?: { env?: NodeJS.ProcessEnv }): HostProcess;
}

export interface Hosts {
  id: string;
  /** The lab's directory (the hosts' directories are under it). */
  dir: string;
  /** The switch's /24, e.g. 172.31.7.0/24 (the first switch's, the machine's). */
  subnet: string;
  /** Every switch's /24: the first, and the second's with `secondSubnet`. */
  subnets: string[];
  /** With `secondSubnet`: the router's address on each subnet, in the order of `subnets`. */
  routerAddresses: string[];
  /** The machine namespace's address on the switch (S.254): what the test process is seen as. */
  machineAddress: string;
  hosts: Host[];
  host(name: string): Host;
  /**
   * Stops what runs on the hosts and removes everything the lab made; throws naming what is
   * left, so a test that leaves something behind fails. Idempotent.
   */
  dispose(): Promise<void>;
}

/** What a clean-up needs, kept in /run/skiff-labs/<id>.json while the lab exists. */
interface LabRecord {
  id: string;
  owner: { pid: number; startTime: string };
  dir: string;
  subnet: string;
  /** The /24 reservation file. */
  reservation: string;
  /** With `secondSubnet`: the second /24 and its reservation file. */
  second?: { subnet: string; reservation: string };
  machineVeth: string;
  /** Namespace names: the switch's first (the second switch's and the router's), then the hosts'. */
  namespaces: string[];
  /** `skiff-lab-<id>`, below each cgroup hierarchy's root. */
  cgroupRoot: string;
  /** Process groups started on the hosts. */
  groups: { pid: number; startTime: string }[];
}

const HOST_NAME = /^[a-z][a-z0-9-]{0,11}$/;

function writeRecord(record: LabRecord): void {
  writeFileSync(join(RECORDS, `${record.id}.json`), JSON.stringify(record, null, 2) + '\n', {
    mode: 0o600,
  });
}

/** Process groups started on hosts of labs of this process, killed if it exits without dispose. */
const liveGroups = new Set<number>();
let exitHook = false;
function killGroupsAtExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
}

/**
 * Makes the switch and one namespace per name in `names` (cp first, say), each with its address:
 * S.1, S.2, … in that order; the hosts named in `secondSubnet` on S2 instead (S2.n for the nth
 * name), behind a router. Sweeps abandoned labs first.
 */
export async function createHosts(
  names: string[],
  options: { prefix?: string; secondSubnet?: string[] } = {},
): Promise<Hosts> {
  for (const name of names)
    if (!HOST_NAME.test(name) || ['switch', 'switch2', 'router', 'machine'].includes(name))
      throw new Error(`create hosts: "${name}" is not a host name (a-z, 0-9, -; at most 12)`);
  const behindRouter = new Set(options.secondSubnet ?? []);
  for (const name of behindRouter)
    if (!names.includes(name)) throw new Error(`create hosts: secondSubnet names ${name}, not a host`);
  if (new Set(names).size !== names.length) throw new Error('create hosts: a name is given twice');
  if (options.prefix !== undefined && !/^[a-z0-9-]{1,40}$/.test(options.prefix))
    throw new Error(`create hosts: prefix "${options.prefix}" is not a-z, 0-9 and - (at most 40)`);
  if (names.length > 250) throw new Error('create hosts: at most 250 hosts');
  if (process.getuid?.() !== 0) throw new Error('create hosts: needs root (namespaces, veths, cgroups)');
  await sweepAbandonedLabs();
  const id = randomBytes(3).toString('hex');
  const pool = { dir: RECORDS, range: LAB_RANGE };
  const { subnet, reservation } = await reserveSubnet(pool, id);
  let second: { subnet: Cidr; reservation: string } | undefined;
  try {
    // the second /24 is held under a holder of its own: reserveSubnet hands a holder its own /24 back
    second = behindRouter.size > 0 ? await reserveSubnet(pool, `${id}-2`) : undefined;
  } catch (err) {
    rmSync(reservation, { force: true });
    throw err;
  }
  const routed = second !== undefined;
  const dir = mkdtempSync(join(tmpdir(), `skiff-${options.prefix ?? 'lab'}-${id}-`));
  const record: LabRecord = {
    id,
    owner: { pid: process.pid, startTime: processStartTime(process.pid) ?? '' },
    dir,
    subnet: subnet.text,
    reservation,
    ...(second ? { second: { subnet: second.subnet.text, reservation: second.reservation } } : {}),
    machineVeth: `skl${id}`,
    namespaces: [
      `skl-${id}-switch`,
      ...(routed ? [`skl-${id}-switch2`, `skl-${id}-router`] : []),
      ...names.map((name) => `skl-${id}-${name}`),
    ],
    cgroupRoot: `skiff-lab-${id}`,
    groups: [],
  };
  // recorded before anything is made, so a clean-up finds whatever this gets to
  writeRecord(record);
  const processes = new Map<number, HostProcess>();
  let disposed: Promise<void> | undefined;
  const dispose = (): Promise<void> =>
    (disposed ??= (async () => {
      await Promise.all([...processes.values()].map((p) => p.stop(5000).catch(() => {})));
      const problems = await cleanUpLab(record);
      if (problems.length > 0) throw new Error(`dispose lab ${id}: left behind:\n  ${problems.join('\n  ')}`);
    })());
  try {
    const switchNs = record.namespaces[0]!;
    const [switch2Ns, routerNs] = routed ? [record.namespaces[1]!, record.namespaces[2]!] : [];
    const hostNs = record.namespaces.slice(routed ? 3 : 1);
    const switchSpec = { namespace: switchNs, machineVeth: record.machineVeth, subnet };
    await ensureSwitch(switchSpec);
    // the second switch has no port to the machine: only the router joins it to the first
    const switch2Spec =
      second && switch2Ns ? { ...switchSpec, namespace: switch2Ns, subnet: second.subnet } : undefined;
    if (switch2Spec) await ensureBridge(switch2Spec.namespace);
    if (second && switch2Ns && routerNs)
      await makeRouter(routerNs, [switchNs, switch2Ns], [subnet, second.subnet]);
    const hosts: Host[] = [];
    for (const [i, name] of names.entries()) {
      const netns = hostNs[i]!;
      const onSecond = switch2Spec !== undefined && behindRouter.has(name);
      const own = onSecond ? switch2Spec.subnet : subnet;
      const address = addressIn(own, i + 1);
      await attachToSwitch(onSecond ? switch2Spec : switchSpec, {
        namespace: netns,
        port: `h-${name}`,
        address,
      });
      if (second) {
        // the other subnet through the router; nothing else beyond its own
        const [other, via] = onSecond ? [subnet, second.subnet] : [second.subnet, subnet];
        await mustRun(['ip', '-n', netns, 'route', 'add', other.text, 'via', addressIn(via, ROUTER_HOST)]);
      }
      const hostDir = join(dir, name);
      mkdirSync(join(hostDir, 'root'), { recursive: true, mode: 0o700 });
      hosts.push(
        makeHost({
          name,
          address,
          subnet: own.text,
          netns,
          dir: hostDir,
          cgroupParent: `${record.cgroupRoot}/${name}`,
          onSpawn: (p, startTime) => {
            processes.set(p.pid, p);
            liveGroups.add(p.pid);
            record.groups.push({ pid: p.pid, startTime });
            writeRecord(record);
            void p.exited.then(() => liveGroups.delete(p.pid));
          },
        }),
      );
    }
    killGroupsAtExit();
    await checkContained(hosts, [switchNs, ...(switch2Ns ? [switch2Ns] : [])], routerNs);
    return {
      id,
      dir,
      subnet: subnet.text,
      subnets: [subnet.text, ...(second ? [second.subnet.text] : [])],
      routerAddresses: second ? [addressIn(subnet, ROUTER_HOST), addressIn(second.subnet, ROUTER_HOST)] : [],
      machineAddress: addressIn(subnet, MACHINE_HOST),
      hosts,
      host(name) {
        const host = hosts.find((h) => h.name === name);
        if (!host) throw new Error(`lab ${id} has no host ${name}`);
        return host;
      },
      dispose,
    };
  } catch (err) {
    await dispose().catch(() => {});
    throw err;
  }
}

/**
 * The router: eth0 on the first switch, eth1 on the second, each with the subnet's .253;
 * forwarding on here alone; the machine's address blackholed (see the header).
 */
async function makeRouter(routerNs: string, switches: string[], subnets: Cidr[]): Promise<void> {
  await mustRun(['ip', 'netns', 'add', routerNs]);
  await mustRun(['ip', '-n', routerNs, 'link', 'set', 'lo', 'up']);
  for (const [i, switchNs] of switches.entries()) {
    const dev = `eth${i}`;
    await mustRun([
      'ip',
      '-n',
      switchNs,
      'link',
      'add',
      'to-router',
      'type',
      'veth',
      'peer',
      'name',
      dev,
      'netns',
      routerNs,
    ]);
    await mustRun(['ip', '-n', switchNs, 'link', 'set', 'to-router', 'master', 'switch0', 'up']);
    await mustRun([
      'ip',
      '-n',
      routerNs,
      'addr',
      'add',
      `${addressIn(subnets[i]!, ROUTER_HOST)}/24`,
      'dev',
      dev,
    ]);
    await mustRun(['ip', '-n', routerNs, 'link', 'set', dev, 'up']);
  }
  await mustRun([
    'ip',
    '-n',
    routerNs,
    'route',
    'add',
    'blackhole',
    `${addressIn(subnets[0]!, MACHINE_HOST)}/32`,
  ]);
  await mustRun(['nsenter', `--net=/run/netns/${routerNs}`, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
}

/**
 * Every host: eth0 and lo only, no default route, forwarding off. The switches: no address. The
 * router, if any: no default route.
 */
async function checkContained(
  hosts: Host[],
  switches: string[],
  routerNs: string | undefined,
): Promise<void> {
  for (const host of hosts) {
    const routes = await mustRun(['ip', '-n', host.netns, '-4', 'route', 'show']);
    if (/^default/m.test(routes)) throw new Error(`host ${host.name} has a default route:\n${routes}`);
    const forward = (await host.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim();
    if (forward !== '0') {
      await mustRun(['nsenter', `--net=${host.netnsPath}`, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    }
  }
  for (const switchNs of switches) {
    const addresses = await mustRun(['ip', '-n', switchNs, '-4', 'addr', 'show']);
    if (/inet (?!127\.)/.test(addresses))
      throw new Error(`the switch namespace has an address:\n${addresses}`);
  }
  if (routerNs !== undefined) {
    const routes = await mustRun(['ip', '-n', routerNs, '-4', 'route', 'show']);
    if (/^default/m.test(routes)) throw new Error(`the router has a default route:\n${routes}`);
  }
}

function makeHost(spec: {
  name: string;
  address: string;
  subnet: string;
  netns: string;
  dir: string;
  cgroupParent: string;
  onSpawn(p: HostProcess, startTime: string): void;
}): Host {
  const netnsPath = `/run/netns/${spec.netns}`;
  const enter = (argv: string[]) => ['nsenter', `--net=${netnsPath}`, '--', ...argv];
  return {
    name: spec.name,
    address: spec.address,
    subnet: spec.subnet,
    netns: spec.netns,
    netnsPath,
    dir: spec.dir,
    root: join(spec.dir, 'root'),
    cgroupParent: spec.cgroupParent,
    run: (argv, options) => runCommand(enter(argv), options),
    spawn(name, argv, options = {}) {
      const logFile = join(spec.dir, `${name}.log`);
      const fd = openSync(logFile, 'a');
      let child: ChildProcess;
      try {
        const [command, ...args] = enter(argv);
        // a group of its own: stop() reaches what it starts that stays in it
        child = spawn(command!, args, {
          detached: true,
          stdio: ['ignore', fd, fd],
          env: options.env ?? process.env,
        });
      } finally {
        closeSync(fd);
      }
      if (child.pid === undefined) throw new Error(`start ${name} on ${spec.name}: it did not start`);
      const pid = child.pid;
      let running = true;
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.once('error', () => resolve({ code: null, signal: null }));
        child.once('exit', (code, signal) => resolve({ code, signal }));
      }).then((result) => {
        running = false;
        return result;
      });
      const signalGroup = (signal: NodeJS.Signals) => {
        try {
          process.kill(-pid, signal);
        } catch {
          // gone
        }
      };
      const hostProcess: HostProcess = {
        name,
        pid,
        logFile,
        exited,
        get running() {
          return running;
        },
        kill(signal = 'SIGKILL') {
          try {
            process.kill(pid, signal);
          } catch {
            // gone
          }
        },
        async stop(graceMs = 10_000) {
          if (!running) return;
          signalGroup('SIGTERM');
          const timer = sleep(graceMs).then(() => 'late' as const);
          if ((await Promise.race([exited, timer])) === 'late') {
            signalGroup('SIGKILL');
            await exited;
          }
          // what it left in its group (it is the group's leader)
          signalGroup('SIGKILL');
        },
      };
      spec.onSpawn(hostProcess, processStartTime(pid) ?? '');
      return hostProcess;
    },
  };
}

/**
 * Removes every lab whose test process has gone (crashed, killed) without disposing of it; the
 * problems, one line each. Safe beside running labs: only those whose owner is dead are touched.
 */
export async function sweepAbandonedLabs(): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(RECORDS).filter((name) => name.endsWith('.json'));
  } catch {
    return [];
  }
  const problems: string[] = [];
  for (const name of names) {
    let record: LabRecord;
    try {
      record = JSON.parse(readFileSync(join(RECORDS, name), 'utf8')) as LabRecord;
    } catch {
      continue; // being written
    }
    if (processStartTime(record.owner.pid) === record.owner.startTime) continue;
    problems.push(...(await cleanUpLab(record)).map((p) => `lab ${record.id}: ${p}`));
  }
  // reservations whose lab record is gone (it died between the two writes)
  for (const name of readdirSync(RECORDS).filter((n) => n.startsWith('subnet-'))) {
    const path = join(RECORDS, name);
    try {
      // a second subnet's holder is `<id>-2`
      const id = readFileSync(path, 'utf8').trim().replace(/-2$/, '');
      const age = Date.now() - statSync(path).mtimeMs;
      if (!existsSync(join(RECORDS, `${id}.json`)) && age > 60_000) unlinkSync(path);
    } catch {
      // removed meanwhile
    }
  }
  return problems;
}

/** Inode and device of a namespace file, to tell which processes are in it. */
function nsIdentity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Pids (not this process) whose network namespace is one of `namespaces`. */
function pidsInNamespaces(namespaces: Set<string>): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const id = nsIdentity(`/proc/${entry}/ns/net`);
    if (id && namespaces.has(id)) pids.push(Number(entry));
  }
  return pids;
}

function cgroupMounts(): string[] {
  const mounts: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    const type = right?.split(' ')[0];
    if (type === 'cgroup' || type === 'cgroup2') mounts.push(left!.split(' ')[4]!);
  }
  return mounts;
}

/** Directories under `dir` (itself included), deepest first. */
function treeDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) if (entry.isDirectory()) out.push(...treeDeepestFirst(join(dir, entry.name)));
  out.push(dir);
  return out;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Mount points under `dir`, deepest first (this process's view: the machine's mount namespace). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .map((path) => path.replace(/\\040/g, ' '))
    .filter((path) => path === dir || path.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Why `record` may not be acted on, if it may not: every name in it must be one createHosts makes
 * for its id, so a damaged record can never point the clean-up at a cgroup, namespace, link or
 * directory of anything else (an empty cgroup root would be every process of the machine).
 */
function recordProblem(record: LabRecord): string | undefined {
  const id = record.id;
  if (typeof id !== 'string' || !/^[0-9a-f]{6}$/.test(id)) return `id ${JSON.stringify(id)}`;
  if (record.cgroupRoot !== `skiff-lab-${id}`) return `cgroup root ${JSON.stringify(record.cgroupRoot)}`;
  if (record.machineVeth !== `skl${id}`) return `veth ${JSON.stringify(record.machineVeth)}`;
  if (!Array.isArray(record.namespaces) || !record.namespaces.every((n) => n.startsWith(`skl-${id}-`)))
    return 'namespaces';
  // mkdtemp's name for this id, wherever TMPDIR pointed
  if (
    typeof record.dir !== 'string' ||
    !isAbsolute(record.dir) ||
    resolve(record.dir) !== record.dir ||
    !new RegExp(`^skiff-[a-z0-9-]+-${id}-[A-Za-z0-9]{6}$`).test(basename(record.dir))
  )
    return `directory ${JSON.stringify(record.dir)}`;
  const held = `${RECORDS}/subnet-${LAB_RANGE}.`;
  for (const reservation of [record.reservation, ...(record.second ? [record.second.reservation] : [])])
    if (!String(reservation).startsWith(held) || !/^\d{1,3}$/.test(String(reservation).slice(held.length)))
      return `reservation ${JSON.stringify(reservation)}`;
  if (!Array.isArray(record.groups)) return 'groups';
  return undefined;
}

/** Removes what the lab of `record` made; what could not be removed, one line each. */
async function cleanUpLab(record: LabRecord): Promise<string[]> {
  const problems: string[] = [];
  const invalid = recordProblem(record);
  if (invalid !== undefined)
    return [`record ${record.id}: not acted on, its ${invalid} is not one a lab makes`];
  // 1. processes: the groups it started, then anything in a lab namespace or cgroup (shims,
  //    containers, pause processes), until none is left
  for (const group of record.groups)
    if (processStartTime(group.pid) === group.startTime) {
      try {
        process.kill(-group.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  const namespaces = new Set(
    record.namespaces.map((name) => nsIdentity(`/run/netns/${name}`)).filter((id): id is string => !!id),
  );
  const cgroupDirs = cgroupMounts().map((mount) => join(mount, record.cgroupRoot));
  for (let round = 0; ; round++) {
    const inCgroups = cgroupDirs.flatMap((top) =>
      treeDeepestFirst(top).flatMap((dir) => {
        try {
          return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
        } catch {
          return [];
        }
      }),
    );
    const left = [...new Set([...pidsInNamespaces(namespaces), ...inCgroups])].filter(
      (pid) => pid !== process.pid && processStartTime(pid) !== undefined,
    );
    if (left.length === 0) break;
    if (round >= 50) {
      problems.push(`processes ${left.join(', ')} survive SIGKILL`);
      break;
    }
    killAll(left);
    await sleep(100);
  }
  // 2. cgroups, deepest first (a dying cgroup may stay busy for a moment)
  for (const top of cgroupDirs) {
    for (const dir of treeDeepestFirst(top)) {
      for (let attempt = 0; ; attempt++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (attempt >= 50) {
            problems.push(`cgroup ${dir}: ${(err as Error).message}`);
            break;
          }
          await sleep(100);
        }
      }
    }
  }
  // 3. mounts under the lab's directory
  for (const mount of mountsUnder(record.dir)) {
    const result = await runCommand(['umount', '-l', mount]);
    if (result.code !== 0 && mountsUnder(record.dir).includes(mount))
      problems.push(`mount ${mount}: ${result.stderr.trim()}`);
  }
  // 4. namespaces (their veths and the bridge go with them), the machine's veth
  problems.push(...(await removeSwitch([...record.namespaces].reverse(), record.machineVeth)));
  // 5. the directory, the record and the /24
  try {
    rmSync(record.dir, { recursive: true, force: true });
  } catch (err) {
    problems.push(`directory ${record.dir}: ${(err as Error).message}`);
  }
  if (problems.length === 0) {
    rmSync(record.reservation, { force: true });
    if (record.second) rmSync(record.second.reservation, { force: true });
    rmSync(join(RECORDS, `${record.id}.json`), { force: true });
  }
  return problems;
}

/** What a lab of `id` would have left on this machine (for tests of the clean-up). */
export function leftovers(lab: { id: string; dir: string }): string[] {
  const found: string[] = [];
  const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const name of namespaces.filter((n) => n.startsWith(`skl-${lab.id}-`)))
    found.push(`network namespace ${name}`);
  if (existsSync(`/sys/class/net/skl${lab.id}`)) found.push(`veth skl${lab.id}`);
  for (const mount of cgroupMounts())
    if (existsSync(join(mount, `skiff-lab-${lab.id}`)))
      found.push(`cgroup ${join(mount, `skiff-lab-${lab.id}`)}`);
  for (const mount of mountsUnder(lab.dir)) found.push(`mount ${mount}`);
  if (existsSync(lab.dir)) found.push(`directory ${lab.dir}`);
  if (existsSync(join(RECORDS, `${lab.id}.json`))) found.push(`record ${join(RECORDS, `${lab.id}.json`)}`);
  return found;
}
