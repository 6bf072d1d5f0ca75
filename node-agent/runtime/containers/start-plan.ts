/**
 * What starting a container takes, decided from its record alone: the namespaces it makes and
 * joins, its cgroups and their limits, its mounts, its process, its seccomp filter, and the /etc
 * files its record gets. Pure: no file, process or cgroup is touched here, so every decision is
 * testable without root (start-plan.test.ts). LinuxContainerRuntime.start carries the plan out:
 * it writes the files, hands the helper the plan as a spec (helperSpecOf), and records the pids.
 */
import { InternalError } from '../../../proto/errors.js';
import type { Cgroups, CgroupLimits, CgroupPlan } from '../sys/cgroups.js';
import type { HelperContainerSpec, HelperProcessSpec, NamespaceType, RootMount } from '../sys/helper-spec.js';
import {
  DEFAULT_CAPABILITIES,
  ETC_FILES_ALWAYS_MOUNTED,
  MASKED_PATHS,
  READONLY_PATHS,
  hasHome,
} from './defaults.js';
import type { SeccompMode } from './seccomp.js';
import type { ContainerConfig, VolumeSpec } from './state.js';

/** The CFS period the runtime writes; a container's quota is its cpus times this. */
export const CPU_PERIOD_US = 100_000;

/** What the plan needs beyond the container's record: where things are, and what the host has. */
export interface StartContext {
  /** A file in a container's record directory (`<root>/containers/<id>/<file>`). */
  recordPath(id: string, file: string): string;
  /** The machine's cgroup layout, as Cgroups knows it (plan() and deviceFilterDirs() are pure). */
  cgroups: Pick<Cgroups, 'plan' | 'deviceFilterDirs'>;
  /**
   * Docker's default filter for this machine resolved for a set of capabilities (seccomp.ts
   * defaultSeccompFilter); undefined where skiff has no profile for its architecture.
   */
  seccompFilter(capabilities: readonly number[]): Buffer | undefined;
  /** The host's /etc/resolv.conf, given to a container on the host's network (undefined: the host has none). */
  hostResolvConf?: string;
  /**
   * With network container:C (and in a sandbox): C's running process, whose namespaces are
   * joined, and the /etc files C's record has, which are shared.
   */
  peer?: { pid: number; startTime: string; etcFiles: string[] };
}

export interface StartPlan {
  namespaces: {
    create: NamespaceType[];
    /** The network namespace to enter by its path (network host with a netnsPath). */
    netnsPath?: string;
    /** Another container's namespaces to enter, held by its pid and /proc start time. */
    join?: { pid: number; startTime: string; types: NamespaceType[] };
  };
  cgroups: CgroupPlan & {
    /** cgroup v2 directories that get the device filter program (v1 uses the devices controller). */
    deviceFilterDirs: string[];
  };
  mounts: {
    /** The directory the root mount is attached to before pivot_root. */
    rootfsPath: string;
    rootfs: RootMount;
    readonlyRoot: boolean;
    maskedPaths: string[];
    readonlyPaths: string[];
    /** Bind mounts in order: the generated /etc files first, so a user's volume there wins. */
    volumes: VolumeSpec[];
    /** /sys mounted read-write (a privileged container); read-only otherwise. */
    sysWritable: boolean;
  };
  process: Omit<HelperProcessSpec, 'cgroups' | 'joinNamespaces' | 'seccompFilter'>;
  seccomp: { mode: SeccompMode; filter?: Buffer };
  /** Set in the new UTS namespace; absent when the container joins another's. */
  hostname?: string;
  /** Bring `lo` up: the container has a network namespace of its own. */
  loopbackUp: boolean;
  /** Files written into the container's record before the start (the generated /etc files). */
  files: { path: string; text: string }[];
  log: { path: string; maxBytes: number; maxFiles: number };
  exitPath: string;
  /** The FIFOs the shim makes for input to the main process (stdin, terminal resizes). */
  io: { stdinFifo?: string; controlFifo?: string };
}

/** The cgroup limits a record asks for. */
export function cgroupLimitsOf(config: ContainerConfig): CgroupLimits {
  return {
    memoryBytes: config.memoryBytes,
    cpuQuotaUs: config.cpus !== undefined ? Math.round(config.cpus * CPU_PERIOD_US) : undefined,
    cpuPeriodUs: CPU_PERIOD_US,
    pidsMax: config.pidsLimit,
    ...(config.privileged ? { allDevices: true } : {}),
  };
}

/** The filter a container's processes get: none when unconfined or without a profile. */
export function seccompFilterOf(mode: SeccompMode, defaultFilter: Buffer | undefined): Buffer | undefined {
  return mode === 'unconfined' ? undefined : defaultFilter;
}

/**
 * /etc/hosts as docker and the kubelet write it: localhost, then the hostname at each of the
 * container's addresses, or at 127.0.1.1 while it has none (a sandbox's file is written again
 * with its IPs once its network is set up).
 */
export function hostsFileText(hostname: string, ips: readonly string[] = []): string {
  const own = ips.length > 0 ? ips.map((ip) => `${ip}\t${hostname}\n`).join('') : `127.0.1.1\t${hostname}\n`;
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${own}`;
}

/**
 * /etc/hosts and /etc/hostname as docker writes them, and /etc/resolv.conf: the record's own (a
 * pod sandbox's, from its dnsPolicy), else the host's with the host's network.
 */
function etcFileTexts(config: ContainerConfig, hostResolvConf: string | undefined): [string, string][] {
  const text: Record<(typeof ETC_FILES_ALWAYS_MOUNTED)[number], string> = {
    hosts: hostsFileText(config.hostname),
    hostname: `${config.hostname}\n`,
  };
  const files: [string, string][] = ETC_FILES_ALWAYS_MOUNTED.map((name) => [name, text[name]]);
  if (config.resolvConf !== undefined) files.push(['resolv.conf', config.resolvConf]);
  else if (config.network.mode === 'host' && hostResolvConf !== undefined)
    files.push(['resolv.conf', hostResolvConf]);
  return files;
}

export function planStart(config: ContainerConfig, ctx: StartContext): StartPlan {
  const { id, network } = config;
  const create: NamespaceType[] = ['pid', 'mnt', 'ipc', 'uts', 'cgroup'];
  if (network.mode === 'none') create.push('net');
  let join: StartPlan['namespaces']['join'];
  let files: StartPlan['files'] = [];
  let etcVolumes: VolumeSpec[];
  const asVolume = (owner: string, name: string): VolumeSpec => ({
    source: ctx.recordPath(owner, name),
    target: `/etc/${name}`,
    readonly: false,
  });
  if (network.mode === 'container') {
    if (!ctx.peer) {
      throw new InternalError(
        `plan the start of container ${config.name}: it joins container ${network.container}, whose process the caller did not give (StartContext.peer)`,
      );
    }
    join = { pid: ctx.peer.pid, startTime: ctx.peer.startTime, types: ['net', 'ipc', 'uts'] };
    create.splice(create.indexOf('ipc'), 1);
    create.splice(create.indexOf('uts'), 1);
    // the peer's files describe the namespaces shared with it
    etcVolumes = ctx.peer.etcFiles.map((name) => asVolume(network.container, name));
  } else {
    const texts = etcFileTexts(config, ctx.hostResolvConf);
    files = texts.map(([name, text]) => ({ path: ctx.recordPath(id, name), text }));
    etcVolumes = texts.map(([name]) => asVolume(id, name));
  }
  const capabilities = config.capabilities ?? DEFAULT_CAPABILITIES;
  const seccompFilter = seccompFilterOf(config.seccomp, ctx.seccompFilter(capabilities));
  const privileged = config.privileged === true;
  return {
    namespaces: {
      create,
      join,
      ...(network.mode === 'host' && network.netnsPath !== undefined ? { netnsPath: network.netnsPath } : {}),
    },
    cgroups: {
      ...ctx.cgroups.plan(id, cgroupLimitsOf(config)),
      // a privileged container may open every device: no filter program
      deviceFilterDirs: privileged ? [] : ctx.cgroups.deviceFilterDirs(id),
    },
    mounts: {
      rootfsPath: ctx.recordPath(id, 'rootfs'),
      rootfs: config.rootfs,
      readonlyRoot: config.readOnly,
      maskedPaths: privileged ? [] : MASKED_PATHS,
      readonlyPaths: privileged ? [] : READONLY_PATHS,
      volumes: [...etcVolumes, ...config.volumes],
      sysWritable: privileged,
    },
    process: {
      argv: config.argv,
      env: config.env,
      cwd: config.cwd,
      user: config.user,
      groupAdd: config.groupAdd,
      homeFromPasswd: !hasHome(config.env),
      capabilities,
      noNewPrivs: config.noNewPrivileges ?? true,
      rlimits: [],
      ...(config.terminal ? { terminal: config.terminal } : {}),
    },
    seccomp: seccompFilter ? { mode: config.seccomp, filter: seccompFilter } : { mode: config.seccomp },
    hostname: network.mode === 'container' ? undefined : config.hostname,
    loopbackUp: network.mode === 'none',
    files,
    log: {
      path: ctx.recordPath(id, 'container.log'),
      maxBytes: config.logMaxBytes,
      maxFiles: config.logMaxFiles,
    },
    exitPath: ctx.recordPath(id, 'exit.json'),
    io: {
      ...(config.openStdin ? { stdinFifo: ctx.recordPath(id, STDIN_FIFO) } : {}),
      ...(config.openStdin || config.terminal ? { controlFifo: ctx.recordPath(id, CONTROL_FIFO) } : {}),
    },
  };
}

/** The FIFOs in a container's record that its shim reads: input to its stdin, and control lines. */
export const STDIN_FIFO = 'stdin';
export const CONTROL_FIFO = 'control';

/** The plan as the helper reads it (sys/helper-spec.ts encodes it). */
export function helperSpecOf(plan: StartPlan): HelperContainerSpec {
  return {
    ...plan.process,
    seccompFilter: plan.seccomp.filter,
    cgroups: plan.cgroups.join,
    cgroupMkdirs: plan.cgroups.mkdirs,
    cgroupLimits: plan.cgroups.writes,
    joinNamespaces: plan.namespaces.join,
    newNamespaces: plan.namespaces.create,
    netnsPath: plan.namespaces.netnsPath,
    rootfsPath: plan.mounts.rootfsPath,
    rootfs: plan.mounts.rootfs,
    readonlyRoot: plan.mounts.readonlyRoot,
    hostname: plan.hostname,
    deviceFilterCgroups: plan.cgroups.deviceFilterDirs,
    maskedPaths: plan.mounts.maskedPaths,
    readonlyPaths: plan.mounts.readonlyPaths,
    volumes: plan.mounts.volumes,
    sysWritable: plan.mounts.sysWritable,
    loopbackUp: plan.loopbackUp,
    logPath: plan.log.path,
    logMaxBytes: plan.log.maxBytes,
    logMaxFiles: plan.log.maxFiles,
    exitPath: plan.exitPath,
    ...plan.io,
  };
}
