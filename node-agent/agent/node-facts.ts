/**
 * What a node is, read from the host: capacity and allocatable, system info, addresses, and the
 * pressure conditions. The readings come in through `HostReadings` so the arithmetic is testable.
 */
import { availableParallelism, arch, hostname, networkInterfaces, release } from 'node:os';
import { readFile, statfs } from 'node:fs/promises';
import type { Condition, NodeStatus } from '../../proto/gen/types.js';

export interface HostReadings {
  cpus: number;
  memTotalBytes: number;
  memAvailableBytes: number;
  /** The file system holding the agent's root. */
  diskTotalBytes: number;
  diskFreeBytes: number;
  pids: number;
  pidMax: number;
  kernelVersion: string;
  osImage: string;
  architecture: string;
  machineID: string;
  bootID: string;
}

export interface Reservations {
  /** Kept for the system and the agent (allocatable = capacity − reserved − eviction threshold). */
  cpuMillis: number;
  memoryBytes: number;
  /** Below this much available memory the node reports MemoryPressure (the kubelet's hard eviction default). */
  memoryEvictionBytes: number;
  /** Below this fraction of free disk, DiskPressure. */
  diskEvictionFraction: number;
  maxPods: number;
}

export const DEFAULT_RESERVATIONS: Reservations = {
  cpuMillis: 0,
  memoryBytes: 0,
  memoryEvictionBytes: 100 * 1024 * 1024,
  diskEvictionFraction: 0.1,
  maxPods: 110,
};

export async function readHost(root: string): Promise<HostReadings> {
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const kb = (key: string): number =>
    Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0) * 1024;
  const fs = await statfs(root);
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? 'Linux';
  const text = async (path: string): Promise<string> => (await readFile(path, 'utf8').catch(() => '')).trim();
  const pidMax = Number(await text('/proc/sys/kernel/pid_max')) || 32768;
  const loadavg = await text('/proc/loadavg'); // "0.00 0.01 0.05 1/123 4567": running/total
  const pids = Number(loadavg.split(' ')[3]?.split('/')[1] ?? 0);
  return {
    cpus: availableParallelism(),
    memTotalBytes: kb('MemTotal'),
    memAvailableBytes: kb('MemAvailable'),
    diskTotalBytes: fs.blocks * fs.bsize,
    diskFreeBytes: fs.bavail * fs.bsize,
    pids,
    pidMax,
    kernelVersion: release(),
    osImage: pretty,
    architecture: ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[arch()] ?? arch(),
    machineID: await text('/etc/machine-id'),
    bootID: await text('/proc/sys/kernel/random/boot_id'),
  };
}

const Ki = 1024;

export function capacityOf(
  host: HostReadings,
  reserved: Reservations,
): {
  capacity: Record<string, string>;
  allocatable: Record<string, string>;
} {
  const capacity = {
    cpu: String(host.cpus),
    memory: `${Math.floor(host.memTotalBytes / Ki)}Ki`,
    pods: String(reserved.maxPods),
    'ephemeral-storage': `${Math.floor(host.diskTotalBytes / Ki)}Ki`,
  };
  const cpuMillis = Math.max(0, host.cpus * 1000 - reserved.cpuMillis);
  const memory = Math.max(0, host.memTotalBytes - reserved.memoryBytes - reserved.memoryEvictionBytes);
  const disk = Math.max(0, Math.floor(host.diskTotalBytes * (1 - reserved.diskEvictionFraction)));
  return {
    capacity,
    allocatable: {
      cpu: cpuMillis % 1000 === 0 ? String(cpuMillis / 1000) : `${cpuMillis}m`,
      memory: `${Math.floor(memory / Ki)}Ki`,
      pods: String(reserved.maxPods),
      'ephemeral-storage': String(disk),
    },
  };
}

/** Ready and the three pressures, as the kubelet names their reasons. */
export function nodeConditions(
  host: HostReadings,
  reserved: Reservations,
  now: string,
  previous?: Condition[],
): Condition[] {
  const keep = (c: Condition): Condition => {
    const before = previous?.find((p) => p.type === c.type);
    const transition =
      before?.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : now;
    return { ...c, lastTransitionTime: transition, lastHeartbeatTime: now } as Condition;
  };
  const memoryLow = host.memAvailableBytes < reserved.memoryEvictionBytes;
  const diskLow =
    host.diskTotalBytes > 0 && host.diskFreeBytes / host.diskTotalBytes < reserved.diskEvictionFraction;
  const pidsLow = host.pids > host.pidMax * 0.9;
  return [
    keep(
      pressure(
        'MemoryPressure',
        memoryLow,
        'KubeletHasInsufficientMemory',
        'KubeletHasSufficientMemory',
        'memory available',
      ),
    ),
    keep(
      pressure(
        'DiskPressure',
        diskLow,
        'KubeletHasDiskPressure',
        'KubeletHasNoDiskPressure',
        'disk space available',
      ),
    ),
    keep(
      pressure(
        'PIDPressure',
        pidsLow,
        'KubeletHasInsufficientPID',
        'KubeletHasSufficientPID',
        'PIDs available',
      ),
    ),
    keep({
      type: 'Ready',
      status: 'True',
      reason: 'KubeletReady',
      message: 'skiff agent is posting ready status',
    }),
  ];
}

function pressure(type: string, under: boolean, yes: string, no: string, what: string): Condition {
  return under
    ? { type, status: 'True', reason: yes, message: `node has insufficient ${what}` }
    : { type, status: 'False', reason: no, message: `node has sufficient ${what}` };
}

/** The first IPv4 address not on loopback (the node's InternalIP when none is given). */
export function detectNodeIP(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const addr of list ?? []) if (addr.family === 'IPv4' && !addr.internal) return addr.address;
  }
  return '127.0.0.1';
}

export function nodeStatusOf(
  host: HostReadings,
  reserved: Reservations,
  options: {
    nodeIP: string;
    version: string;
    images: { names: string[]; sizeBytes: number }[];
    now: string;
    previous?: Condition[];
  },
): NodeStatus {
  const { capacity, allocatable } = capacityOf(host, reserved);
  return {
    capacity,
    allocatable,
    conditions: nodeConditions(host, reserved, options.now, options.previous),
    addresses: [
      { type: 'InternalIP', address: options.nodeIP },
      { type: 'Hostname', address: hostname() },
    ],
    nodeInfo: {
      machineID: host.machineID,
      bootID: host.bootID,
      kernelVersion: host.kernelVersion,
      osImage: host.osImage,
      containerRuntimeVersion: `skiff://${options.version}`,
      kubeletVersion: `v${options.version}`,
      operatingSystem: 'linux',
      architecture: host.architecture,
    },
    images: options.images,
  };
}
