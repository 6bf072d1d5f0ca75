/**
 * Container records under `<root>/containers/<id>/`: config.json (what was asked, immutable),
 * state.json (what happened; absent while the container is only created), exit.json (written by
 * the shim), container.log*, the rootfs/ mount point, and in a sandbox's record network-ready
 * (its network hook returned: the sandbox's IPs as JSON; empty from skiff before IPs were kept). Names live in `<root>/containers/.names/<name>` (created
 * exclusively, so two creates cannot take one name). Every JSON write is temp + rename, without
 * fsync: the records must survive the agent or CLI dying (rename is atomic in the page cache, so
 * a reader sees the old file or the new one, never a torn one), not a reboot, which no container
 * survives either. An fsync cost 1–8 ms on this machine's disk, four of them on every start-to-exit.
 *
 * The records are small files read and written on every start, wait and removal, so they are
 * handled with synchronous calls (microseconds each) rather than trips through Node's thread pool
 * (~80 µs each here, dozens per start-to-exit). Listing all containers stays asynchronous.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  InvalidArgumentError,
  NotFoundError,
  errorMessage,
  InternalError,
} from '../../../proto/errors.js';
import { writeFileAtomic } from '../../../proto/support/atomic-file.js';
import type { PortMapping, SandboxNetworkStatus } from '../pod-runtime.js';
import type { RootMount } from '../sys/helper-spec.js';
import { readTextOr, unlinkIfPresent } from '../../../proto/support/small-files.js';
import type { SeccompMode } from './seccomp.js';
import { DEFAULT_CGROUP_PARENT } from '../sys/cgroups.js';

/**
 * none: a network namespace of its own with loopback only; host: the host's, which is the
 * runtime's own or, given `netnsPath`, the namespace there (a host that is itself a namespace);
 * container: another container's.
 */
export type NetworkMode =
  { mode: 'none' } | { mode: 'host'; netnsPath?: string } | { mode: 'container'; container: string };

export interface VolumeSpec {
  source: string;
  target: string;
  readonly: boolean;
}

/**
 * What a record is: an ordinary container, or the process of a pod sandbox (it owns the network,
 * IPC and UTS namespaces the pod's containers join; see ../pod-runtime.ts).
 */
export type ContainerKind = 'container' | 'sandbox';

export interface ContainerConfig {
  id: string;
  name: string;
  created: string;
  kind: ContainerKind;
  /** The sandbox (its id) whose namespaces this container joins; network is then container:<sandbox>. */
  sandbox?: string;
  image?: string;
  imageDigest?: string;
  /** The root file system mount (from the snapshotter, or a bind of a directory). */
  rootfs: RootMount;
  /** The writable snapshot to remove with the container, and the snapshotter that holds it. */
  snapshotKey?: string;
  snapshotter?: string;
  argv: string[];
  env: string[];
  cwd: string;
  /**
   * Who the process runs as, as asked: NAME|UID[:GROUP|GID] ("" for the default, uid 0). Names are
   * resolved at each start and exec from the container's own /etc/passwd and /etc/group.
   */
  user: string;
  /** The user's and group's numbers, where they were given as numbers. */
  uid?: number;
  gid?: number;
  /** Group names or numbers added to the supplementary groups (--group-add). */
  groupAdd: string[];
  hostname: string;
  network: NetworkMode;
  memoryBytes?: number;
  cpus?: number;
  pidsLimit?: number;
  readOnly: boolean;
  /**
   * The system calls the container may make: Docker's default profile (containers/seccomp.ts), or
   * none (--security-opt seccomp=unconfined). Records written before this field existed read as
   * 'default' too. Its exec'd processes get the same.
   */
  seccomp: SeccompMode;
  /**
   * The capabilities of its root processes (numbers, linux/capability.h), pid 1's and each exec'd
   * one's; Docker's default set (defaults.ts) when absent, as in records from before the field.
   */
  capabilities?: number[];
  /** Set no_new_privs on its processes; absent means yes (the runtime's default, and older records'). */
  noNewPrivileges?: boolean;
  /**
   * Docker's --privileged: no masked or read-only /proc paths, /sys read-write, every device
   * allowed by the device cgroup (the host's device nodes are not added to its /dev). Its
   * capabilities (all), seccomp (unconfined) and no_new_privs (off) are set in their own fields.
   */
  privileged?: boolean;
  volumes: VolumeSpec[];
  autoRemove: boolean;
  logMaxBytes: number;
  logMaxFiles: number;
  labels: Record<string, string>;
  /** A sandbox's host ports, forwarded by its network hook (../pod-runtime.ts); absent when none. */
  portMappings?: PortMapping[];
  /**
   * A sandbox's /etc/resolv.conf as its creator wrote it (the agent's, from the pod's dnsPolicy and
   * dnsConfig), which its containers share; absent: the host's with the host's network, none else.
   */
  resolvConf?: string;
  /** What `stop` sends first (the image's STOPSIGNAL, docker's --stop-signal); SIGTERM when absent. */
  stopSignal?: string;
  /**
   * The cgroup parent its cgroups are made under (`<hierarchy>/<parent>/<id>`): the runtime's at
   * create, so whichever runtime later starts, inspects or removes it finds them. Records written
   * before this field existed read as `skiff`, the only parent there was.
   */
  cgroupParent: string;
  /**
   * The main process gets a pseudo-terminal of this first size (docker's -t, Kubernetes' `tty`):
   * the shim keeps its master, logs its output as stdout, and takes resizes on the control FIFO.
   */
  terminal?: { rows: number; cols: number };
  /**
   * The main process's stdin stays open (docker's -i, Kubernetes' `stdin`): written through the
   * FIFO `stdin` in the record (attach), ended by "close-stdin" on the FIFO `control`.
   */
  openStdin?: boolean;
}

export type ContainerStatus = 'created' | 'running' | 'exited';
export type ExitReason = 'Completed' | 'Error' | 'OOMKilled' | 'ShimDied' | 'StartError';

export interface ContainerState {
  status: ContainerStatus;
  pid?: number;
  /** /proc/<pid>/stat start time, so a reused pid is never mistaken for the container. */
  pidStartTime?: string;
  shimPid?: number;
  shimStartTime?: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  signal?: number;
  reason?: ExitReason;
  error?: string;
}

/** How an exited container ended, as its state records it. */
export interface ExitInfo {
  /** The process's exit code, 128+signal when a signal killed it. */
  exitCode: number;
  signal?: number;
  reason: ExitReason;
  /** The container's memory cgroup counted an OOM kill. */
  oomKilled: boolean;
  error?: string;
}

export function exitInfo(state: ContainerState): ExitInfo {
  return {
    exitCode: state.exitCode ?? 255,
    signal: state.signal || undefined,
    reason: state.reason ?? 'Error',
    oomKilled: state.reason === 'OOMKilled',
    error: state.error,
  };
}

export interface ExitFile {
  exitCode: number;
  signal: number;
  finishedAt: string;
}

export const ID_RE = /^[0-9a-f]{64}$/;
/** In a sandbox's record directory once its network hook returned (an empty file). */
const NETWORK_READY = 'network-ready';
export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

/** Replaces a record as one step for concurrent readers; not durable across a power loss (see above). */
function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n', { mode: 0o600, durable: false });
}

/**
 * A record as an earlier skiff wrote it: numbers for the user, no added groups, no seccomp mode, no
 * kind, no cgroup parent.
 */
type EarlierConfig = Omit<ContainerConfig, 'user' | 'groupAdd' | 'seccomp' | 'kind' | 'cgroupParent'> &
  Partial<Pick<ContainerConfig, 'user' | 'groupAdd' | 'seccomp' | 'kind' | 'cgroupParent'>> & {
    additionalGids?: number[];
  };

/**
 * A record of any skiff version in today's shape: shims outlive an upgrade, so containers made
 * before it are still started, exec'd into and removed after it, as the same user.
 */
export function upgradeConfig(record: EarlierConfig): ContainerConfig {
  const { additionalGids, ...rest } = record;
  const numeric =
    rest.uid === undefined ? '' : rest.gid === undefined ? `${rest.uid}` : `${rest.uid}:${rest.gid}`;
  return {
    ...rest,
    user: rest.user ?? numeric,
    groupAdd: rest.groupAdd ?? (additionalGids ?? []).map(String),
    seccomp: rest.seccomp ?? 'default',
    kind: rest.kind ?? 'container',
    cgroupParent: rest.cgroupParent ?? DEFAULT_CGROUP_PARENT,
  };
}

export class ContainerStore {
  readonly dir: string;
  private readonly namesDir: string;
  /** config.json never changes after create, and ids are never reused: read each one once. */
  private readonly configs = new Map<string, ContainerConfig>();

  constructor(root: string) {
    this.dir = join(root, 'containers');
    this.namesDir = join(this.dir, '.names');
  }

  async init(): Promise<void> {
    await mkdir(this.namesDir, { recursive: true, mode: 0o700 });
  }

  path(id: string, file = ''): string {
    return join(this.dir, id, file);
  }

  /** Reserves the name and creates the record; undoes both when anything fails. */
  async create(config: ContainerConfig, state: ContainerState): Promise<void> {
    if (!NAME_RE.test(config.name)) {
      throw new InvalidArgumentError(
        `create container: name "${config.name}" must match ${NAME_RE.source}`,
        'name',
      );
    }
    try {
      writeFileSync(join(this.namesDir, config.name), config.id, { flag: 'wx', mode: 0o600 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        const owner = readTextOr(join(this.namesDir, config.name), undefined) ?? '?';
        throw new AlreadyExistsError(
          `create container: the name "${config.name}" is in use by container ${owner.slice(0, 12)}; remove it or choose another name`,
        );
      }
      throw err;
    }
    try {
      mkdirSync(this.path(config.id, 'rootfs'), { recursive: true, mode: 0o700 });
      await writeJsonAtomic(this.path(config.id, 'config.json'), config);
      this.configs.set(config.id, config);
      // no state file means "created": one fsync less on the start path
      if (state.status !== 'created') await writeJsonAtomic(this.path(config.id, 'state.json'), state);
    } catch (err) {
      rmSync(this.path(config.id), { recursive: true, force: true });
      rmSync(join(this.namesDir, config.name), { force: true });
      throw new InternalError(`create container ${config.name}: ${errorMessage(err)}`, { cause: err });
    }
  }

  async ids(): Promise<string[]> {
    let ids: string[];
    try {
      ids = (await readdir(this.dir)).filter((n) => ID_RE.test(n));
    } catch {
      return [];
    }
    // forget containers another process removed
    const present = new Set(ids);
    for (const id of this.configs.keys()) if (!present.has(id)) this.configs.delete(id);
    return ids;
  }

  async config(id: string): Promise<ContainerConfig> {
    const cached = this.configs.get(id);
    if (cached) return cached;
    try {
      const config = upgradeConfig(JSON.parse(readFileSync(this.path(id, 'config.json'), 'utf8')));
      this.configs.set(id, config);
      return config;
    } catch (err) {
      throw new NotFoundError(`read container ${id.slice(0, 12)}: ${errorMessage(err)}`, { cause: err });
    }
  }

  async state(id: string): Promise<ContainerState> {
    try {
      return JSON.parse(readFileSync(this.path(id, 'state.json'), 'utf8')) as ContainerState;
    } catch (err) {
      // on disk, not from the cache: another process may have removed the container
      if (
        (err as NodeJS.ErrnoException).code === 'ENOENT' &&
        statSync(this.path(id, 'config.json'), { throwIfNoEntry: false }) !== undefined
      ) {
        return { status: 'created' };
      }
      throw new NotFoundError(`read container state ${id.slice(0, 12)}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  async writeState(id: string, state: ContainerState): Promise<void> {
    await writeJsonAtomic(this.path(id, 'state.json'), state);
  }

  /**
   * Records that a sandbox's network was set up (its hook returned), with what it gave the sandbox:
   * its containers may start.
   */
  async markNetworkReady(id: string, status: SandboxNetworkStatus): Promise<void> {
    // temp + rename: a reader sees no file (not ready) or all of it, never an empty one
    await writeJsonAtomic(this.path(id, NETWORK_READY), { ips: status.ips });
  }

  networkReady(id: string): boolean {
    return statSync(this.path(id, NETWORK_READY), { throwIfNoEntry: false }) !== undefined;
  }

  /** What the sandbox's set-up gave it; undefined until it is ready. */
  networkStatus(id: string): SandboxNetworkStatus | undefined {
    const text = readTextOr(this.path(id, NETWORK_READY), undefined);
    if (text === undefined) return undefined;
    if (text.trim() === '') return { ips: [] }; // marked by a skiff that kept no IPs
    try {
      const { ips } = JSON.parse(text) as Partial<SandboxNetworkStatus>;
      return { ips: Array.isArray(ips) ? ips.filter((ip) => typeof ip === 'string') : [] };
    } catch {
      return { ips: [] };
    }
  }

  async exitFile(id: string): Promise<ExitFile | undefined> {
    const text = readTextOr(this.path(id, 'exit.json'), undefined);
    try {
      return text === undefined ? undefined : (JSON.parse(text) as ExitFile);
    } catch {
      return undefined;
    }
  }

  /** Resolves a full id, a name, or a unique id prefix (as docker does). */
  async resolve(ref: string): Promise<string> {
    if (!ref) throw new InvalidArgumentError('find container: empty container reference', 'container');
    if (ID_RE.test(ref) && statSync(this.path(ref), { throwIfNoEntry: false })?.isDirectory()) return ref;
    if (NAME_RE.test(ref)) {
      const id = readTextOr(join(this.namesDir, ref), undefined)?.trim();
      if (id !== undefined && ID_RE.test(id)) return id;
    }
    if (/^[0-9a-f]+$/.test(ref)) {
      const matches = (await this.ids()).filter((id) => id.startsWith(ref));
      if (matches.length === 1) return matches[0]!;
      if (matches.length > 1) {
        throw new InvalidArgumentError(
          `find container ${ref}: the prefix matches ${matches.length} containers; give more of the id`,
          'container',
        );
      }
    }
    throw new NotFoundError(`find container ${ref}: no such container (see \`skiff runtime ps -a\`)`);
  }

  async delete(id: string, name: string): Promise<void> {
    this.configs.delete(id);
    rmSync(this.path(id), { recursive: true, force: true });
    // only if it is still ours: another container may have taken the name since
    if (readTextOr(join(this.namesDir, name), undefined)?.trim() === id)
      unlinkIfPresent(join(this.namesDir, name));
  }
}
