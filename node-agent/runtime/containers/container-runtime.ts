/**
 * The container half of the runtime: create, start, wait, stop, kill, exec, remove, list (by
 * label), inspect and logs, over state kept under `<root>/containers/`; pod sandboxes and the
 * containers' event stream (../pod-runtime.ts). Any process can pick up where another left off:
 * the container's process belongs to its shim, not to whoever started it.
 *
 * Lifecycle:  create → created ─start→ running ─(exit | stop | kill | shim death)→ exited ─rm→ gone
 *
 * The container's pid 1 is the user's process (as docker without --init): it gets no default
 * signal handlers, so `stop` ends a process that ignores SIGTERM with SIGKILL after the grace.
 * Mounts exist only inside the container's private mount namespace and vanish with it, so no
 * container ever leaves a mount behind on the host.
 */
import { watch, type FSWatcher } from 'node:fs';
import {
  closeSync,
  constants as fsConstants,
  mkdirSync,
  openSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { availableParallelism, constants as osConstants } from 'node:os';
import type { StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  errorMessage,
} from '../../../proto/errors.js';
import type {
  ContainerSelector,
  ContainerWatch,
  ContainerWatcher,
  CreateSandboxOptions,
  ListContainersOptions,
  SandboxInfo,
  SandboxNetwork,
  SandboxNetworkStatus,
  SandboxNetworkTarget,
  SandboxService,
} from '../pod-runtime.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { Cgroups, type CgroupStats } from '../sys/cgroups.js';
import { encodeContainerSpec, encodeExecSpec, type NamespaceType } from '../sys/helper-spec.js';
import {
  runCapturedExec,
  startExec,
  startPortForward,
  startShim,
  type CapturedExec,
  type ExecHandle,
  type PortForwardHandle,
  type WarmShims,
} from '../sys/helper.js';
import type { TerminalSize } from '../sys/helper-spec.js';
import { PidLock, isSameProcess, processStartTime } from '../../../proto/support/pid-lock.js';
import { readTextOr } from '../../../proto/support/small-files.js';
import {
  DEFAULT_CAPABILITIES,
  DEFAULT_LOG_MAX_BYTES,
  DEFAULT_LOG_MAX_FILES,
  ETC_FILES_ALWAYS_MOUNTED,
  containerEnv,
  hasHome,
} from './defaults.js';
import { heldCapabilities, resolveCapabilities } from './capabilities.js';
import { ContainerEventHub, selects, type ContainerEventHubOptions } from './container-events.js';
import { readLogs, type LogEntry, type ReadLogsOptions } from './logs.js';
import { PAUSE_COMMAND, pauseRootfs } from './pause-rootfs.js';
import { defaultSeccompFilter, type SeccompMode } from './seccomp.js';
import {
  CONTROL_FIFO,
  STDIN_FIFO,
  helperSpecOf,
  hostsFileText,
  planStart,
  seccompFilterOf,
  type StartContext,
} from './start-plan.js';
import {
  ContainerStore,
  exitInfo,
  newContainerId,
  type ContainerConfig,
  type ContainerKind,
  type ContainerState,
  type ExitFile,
  type ExitInfo,
} from './state.js';
import {
  parseUser,
  validateArgv,
  validateCwd,
  validateEnv,
  validateGroupAdd,
  validateHostname,
  validateLabels,
  validateLimits,
  validateHostIps,
  validateNetwork,
  validatePortMappings,
  validateSeccompMode,
  validateVolumes,
  type ParsedUser,
} from './validate.js';
import { compareCodePoints } from '../../../proto/support/code-point-order.js';

const log = componentLogger('containers');

let warnedNoSeccompProfile = false;

/** Says once per process that containers run without a system call filter on this architecture. */
function warnIfUnfiltered(seccomp: { mode: SeccompMode; filter?: Buffer }): void {
  if (seccomp.mode !== 'default' || seccomp.filter !== undefined || warnedNoSeccompProfile) return;
  warnedNoSeccompProfile = true;
  log.warn(
    { arch: process.arch },
    'no default seccomp profile for this architecture: containers start without a system call filter',
  );
}

/** What removes a container's writable snapshot (a Snapshotter fits). */
export interface SnapshotRemover {
  remove(key: string): Promise<void>;
}

/** Finds the snapshotter a container's snapshot belongs to, by its name ('overlay', 'copy'). */
export type SnapshotResolver = (snapshotterName: string) => Promise<SnapshotRemover>;

/**
 * What `create` is given: a ContainerConfig's fields, minus those the runtime assigns (id,
 * created), with the ones that have defaults optional and the user as one field.
 */
export type CreateContainerOptions = Pick<ContainerConfig, 'rootfs' | 'argv'> &
  Partial<
    Pick<
      ContainerConfig,
      | 'name'
      | 'image'
      | 'imageDigest'
      | 'snapshotKey'
      | 'snapshotter'
      | 'env'
      | 'cwd'
      | 'hostname'
      | 'network'
      | 'memoryBytes'
      | 'cpus'
      | 'pidsLimit'
      | 'readOnly'
      | 'seccomp'
      | 'volumes'
      | 'autoRemove'
      | 'labels'
      | 'logMaxBytes'
      | 'logMaxFiles'
      | 'groupAdd'
      | 'sandbox'
      | 'stopSignal'
      | 'terminal'
      | 'openStdin'
      | 'noNewPrivileges'
    >
  > & {
    user?: UserOption;
    /**
     * Capabilities added to and dropped from Docker's default set, by name (`NET_ADMIN`,
     * `CAP_SYS_TIME`, `ALL`), in containerd's order (capabilities.ts).
     */
    capAdd?: string[];
    capDrop?: string[];
    /**
     * Docker's --privileged: every capability, no seccomp filter, no no_new_privs, no masked or
     * read-only /proc paths, /sys read-write, every device allowed by the device cgroup (no host
     * device nodes are added). capAdd, capDrop, seccomp and noNewPrivileges may not be given with it.
     */
    privileged?: boolean;
  };

/**
 * Who a process runs as: Docker's NAME|UID[:GROUP|GID] (names resolved inside the container from
 * its own /etc/passwd and /etc/group), or numbers (Kubernetes' runAsUser, runAsGroup and
 * supplementalGroups; the last are added as --group-add is).
 */
export type UserOption = string | { uid: number; gid?: number; additionalGids?: number[] };

/** A UserOption as the text the helper resolves, plus the groups it adds; syntax checked. */
function userRequest(
  user: UserOption | undefined,
  groupAdd: string[] = [],
): { text: string; parsed: ParsedUser; groupAdd: string[] } {
  const text =
    user === undefined
      ? ''
      : typeof user === 'string'
        ? user
        : user.gid !== undefined
          ? `${user.uid}:${user.gid}`
          : `${user.uid}`;
  const added = [...(typeof user === 'object' ? (user.additionalGids ?? []).map(String) : []), ...groupAdd];
  const parsed = parseUser(text);
  validateGroupAdd(added);
  return { text, parsed, groupAdd: added };
}

export interface ContainerInfo {
  id: string;
  name: string;
  config: ContainerConfig;
  state: ContainerState;
}

export type { ExitInfo };

export interface ExecOptions {
  argv: string[];
  env?: string[];
  cwd?: string;
  /** Else the container's user; the container's added groups apply either way (as Docker). */
  user?: UserOption;
  /**
   * stdio of the exec'd process, as for child_process.spawn (default: 'ignore', as `docker exec
   * -d`). With 'pipe', read the handle's stdout and stderr (or relayExec): a process whose output
   * nobody reads blocks once the pipe is full. What is given here is the container's: never a
   * terminal (refused), and a file or socket only when the container may have it.
   */
  stdio?: StdioOptions;
  /**
   * A pseudo-terminal for the process (`docker exec -t`), of this first size: made in the
   * container's own devpts, its master kept by the helper, which copies the handle's stdin to it
   * and its output to the handle's stdout (stdio 0 'pipe' or 'ignore'; stderr is the terminal's).
   * handle.resize changes its size.
   */
  terminal?: TerminalSize;
}

/**
 * Input to a container's main process, for attach: what is written to `stdin` reaches the process
 * (the shim copies it from the record's FIFO to the process's stdin or terminal).
 */
export interface ContainerInput {
  /** Absent when the container does not keep its stdin open (created without openStdin). */
  stdin?: Writable;
  /** Sets the terminal's size (no-op without one). */
  resize(rows: number, cols: number): void;
  /** Ends the process's stdin (with a terminal: sends end-of-file, ^D). */
  closeStdin(): void;
  /** Stops writing; the process's stdin stays open for the next attach. */
  close(): void;
}

export type { CapturedExec };

/** An exec run to its end, its output captured (probes, hooks). */
export interface ExecCaptureOptions extends Omit<ExecOptions, 'stdio'> {
  /** Kill the process after this long (its exit code is then 137 and `timedOut` set); 0: never. */
  timeoutMs?: number;
}

/** The Runtime interface others code against (the agent, the CLI, benchmarks). */
export interface ContainerRuntime {
  create(opts: CreateContainerOptions): Promise<ContainerInfo>;
  start(ref: string): Promise<ContainerInfo>;
  wait(ref: string, opts?: { timeoutMs?: number }): Promise<ExitInfo>;
  stop(ref: string, graceSeconds?: number): Promise<ExitInfo | undefined>;
  kill(ref: string, signal?: NodeJS.Signals | number): Promise<void>;
  remove(ref: string, opts?: { force?: boolean }): Promise<void>;
  exec(ref: string, opts: ExecOptions): Promise<ExecHandle>;
  /** Input to a running container's main process (attach); see ContainerInput. */
  openInput(ref: string): Promise<ContainerInput>;
  /** A TCP connection to `port` on the loopback of the container's (or sandbox's) network namespace. */
  portForward(ref: string, port: number): Promise<PortForwardHandle>;
  execCapture(ref: string, opts: ExecCaptureOptions): Promise<CapturedExec>;
  list(opts?: ListContainersOptions): Promise<ContainerInfo[]>;
  /** With live cgroup stats while it runs, and how it ended once it exited. */
  inspect(ref: string): Promise<ContainerInfo & { stats?: CgroupStats; exit?: ExitInfo }>;
  logs(ref: string, opts?: Omit<ReadLogsOptions, 'finished'>): AsyncGenerator<LogEntry>;
  resolve(ref: string): Promise<string>;
}

export function signalNumber(signal: NodeJS.Signals | number | string): number {
  if (typeof signal === 'number' || /^\d+$/.test(String(signal))) {
    const n = Number(signal);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = String(signal).toUpperCase();
    const full = name.startsWith('SIG') ? name : `SIG${name}`;
    const n = (osConstants.signals as Record<string, number>)[full];
    if (n !== undefined) return n;
  }
  throw new InvalidArgumentError(
    `signal: "${signal}" is not a signal name or number (e.g. TERM, SIGKILL, 9)`,
    'signal',
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function validateTerminalSize(size: TerminalSize, field: string): void {
  for (const key of ['rows', 'cols'] as const) {
    const value = size[key];
    if (!Number.isInteger(value) || value < 0 || value > 65535)
      throw new InvalidArgumentError(
        `${field}.${key}: must be a whole number 0 to 65535, got ${value}`,
        `${field}.${key}`,
      );
  }
}

/** An exec's stdio with a terminal: input relayed when asked for, output always ('pipe'). */
function terminalStdio(stdio: StdioOptions | undefined): StdioOptions {
  const input = Array.isArray(stdio) ? stdio[0] : stdio;
  return [input === 'pipe' ? 'pipe' : 'ignore', 'pipe', 'ignore'];
}

/** What a create's security options come to in the record; names checked (InvalidArgumentError). */
function securityOf(opts: CreateContainerOptions): {
  capabilities: number[];
  seccomp: SeccompMode;
  noNewPrivileges: boolean;
  privileged: boolean;
} {
  if (opts.privileged) {
    for (const field of ['capAdd', 'capDrop', 'seccomp', 'noNewPrivileges'] as const)
      if (opts[field] !== undefined)
        throw new InvalidArgumentError(
          `${field}: a privileged container has every capability, no seccomp filter and no no_new_privs; drop ${field}`,
          field,
        );
    return {
      capabilities: [...heldCapabilities()],
      seccomp: 'unconfined',
      noNewPrivileges: false,
      privileged: true,
    };
  }
  const add = opts.capAdd ?? [];
  const drop = opts.capDrop ?? [];
  const capabilities = resolveCapabilities({ add, drop }, { field: 'capabilities' });
  return {
    capabilities,
    seccomp: opts.seccomp ?? 'default',
    noNewPrivileges: opts.noNewPrivileges ?? true,
    privileged: false,
  };
}

/** A process's network namespace, as a path other tools open (nsenter --net=, CNI's CNI_NETNS). */
function netnsPath(pid: number): string {
  return `/proc/${pid}/ns/net`;
}

export interface LinuxContainerRuntimeOptions {
  root: string;
  snapshots?: SnapshotResolver;
  cgroups?: Cgroups;
  /**
   * The cgroup parent new containers get (`<hierarchy>/<parent>/<id>`, sys/cgroups.ts); default
   * `skiff`. Several runtimes on one machine (agents of a test's hosts) each take their own, so
   * their containers' cgroups never mix. Ignored when `cgroups` is given (it has its parent).
   */
  cgroupParent?: string;
  /**
   * Shims to keep parked with their container process already in its cgroups (cgroup v1 and
   * hybrid; ignored on v2), for a long-lived process such as the agent: starts then skip the
   * ~10 ms the kernel often takes to move a process into a v1 cgroup. 0 (default) for one-off use.
   */
  warmShims?: number;
  /** Plugs sandboxes into the node's network; without it a sandbox has loopback only. */
  sandboxNetwork?: SandboxNetwork;
  /** How watchContainers notices changes (container-events.ts). */
  events?: ContainerEventHubOptions;
}

export class LinuxContainerRuntime implements ContainerRuntime, SandboxService, ContainerWatcher {
  private readonly events: ContainerEventHub;

  private constructor(
    readonly store: ContainerStore,
    readonly cgroups: Cgroups,
    private readonly root: string,
    private readonly snapshots: SnapshotResolver | undefined,
    private readonly warm: WarmShims | undefined,
    private readonly sandboxNetwork: SandboxNetwork | undefined,
    eventOptions: ContainerEventHubOptions | undefined,
  ) {
    this.events = new ContainerEventHub(
      {
        dir: store.dir,
        ids: () => store.ids(),
        read: (id) => this.refresh(id),
        changedUnannounced: ({ state }) =>
          state.status === 'running' && !isSameProcess(state.shimPid, state.shimStartTime),
      },
      eventOptions,
    );
  }

  static async open(opts: LinuxContainerRuntimeOptions): Promise<LinuxContainerRuntime> {
    const store = new ContainerStore(opts.root);
    await store.init();
    const cgroups = opts.cgroups ?? (await Cgroups.detect(opts.cgroupParent));
    let warm: WarmShims | undefined;
    if (opts.warmShims && cgroups.layout.kind !== 'v2') {
      const cgroupParents = cgroups.parentDirs();
      await cgroups.prepareWarm();
      warm = { count: opts.warmShims, cgroupParents };
    }
    return new LinuxContainerRuntime(
      store,
      cgroups,
      opts.root,
      opts.snapshots,
      warm,
      opts.sandboxNetwork,
      opts.events,
    );
  }

  resolve(ref: string): Promise<string> {
    return this.store.resolve(ref);
  }

  /** The cgroups of a container: under the parent its record names, whatever this runtime's is. */
  private cgroupsOf(config: ContainerConfig): Cgroups {
    return this.cgroups.withParent(config.cgroupParent);
  }

  create(opts: CreateContainerOptions): Promise<ContainerInfo> {
    return this.createRecord(opts, 'container');
  }

  private async createRecord(
    opts: CreateContainerOptions,
    kind: ContainerKind,
    /** A sandbox's own fields (validated). */
    sandboxFields: Pick<ContainerConfig, 'portMappings' | 'resolvConf'> = {},
  ): Promise<ContainerInfo> {
    const id = newContainerId();
    let network = opts.network ?? { mode: 'none' };
    let sandbox: string | undefined;
    if (opts.sandbox !== undefined) {
      if (opts.network !== undefined) {
        throw new InvalidArgumentError(
          "network: a container in a sandbox uses the sandbox's network; drop the network option",
          'network',
        );
      }
      sandbox = (await this.sandboxRecord(opts.sandbox, 'create container')).id;
      network = { mode: 'container', container: sandbox };
    }
    validateArgv(opts.argv);
    validateEnv(opts.env ?? []);
    validateCwd(opts.cwd ?? '/');
    if (opts.hostname !== undefined) validateHostname(opts.hostname);
    validateNetwork(network, opts.hostname);
    validateVolumes(opts.volumes ?? []);
    for (const [i, v] of (opts.volumes ?? []).entries()) {
      try {
        statSync(v.source);
      } catch (err) {
        throw new InvalidArgumentError(
          `volumes[${i}]: host path ${v.source}: ${errorMessage(err)}`,
          `volumes[${i}].source`,
        );
      }
    }
    validateLimits(opts, availableParallelism());
    if (opts.seccomp !== undefined) validateSeccompMode(opts.seccomp);
    validateLabels(opts.labels ?? {});
    if (opts.terminal !== undefined) validateTerminalSize(opts.terminal, 'terminal');
    const security = securityOf(opts);
    const user = userRequest(opts.user, opts.groupAdd);
    let hostname = opts.hostname ?? id.slice(0, 12);
    if (network.mode === 'container') {
      network.container = await this.store.resolve(network.container);
      // its UTS namespace, /etc/hostname and so HOSTNAME are the joined container's
      hostname = (await this.store.config(network.container)).hostname;
    }
    const config: ContainerConfig = {
      id,
      name: opts.name ?? `skiff-${kind === 'sandbox' ? 'sandbox-' : ''}${id.slice(0, 12)}`,
      created: new Date().toISOString(),
      kind,
      sandbox,
      image: opts.image,
      imageDigest: opts.imageDigest,
      rootfs: opts.rootfs,
      snapshotKey: opts.snapshotKey,
      snapshotter: opts.snapshotKey ? (opts.snapshotter ?? 'overlay') : undefined,
      argv: opts.argv,
      env: containerEnv(opts.env ?? [], hostname),
      cwd: opts.cwd ?? '/',
      user: user.text,
      uid: user.parsed.uid,
      gid: user.parsed.gid,
      groupAdd: user.groupAdd,
      hostname,
      network,
      memoryBytes: opts.memoryBytes,
      cpus: opts.cpus,
      pidsLimit: opts.pidsLimit,
      readOnly: opts.readOnly ?? false,
      seccomp: security.seccomp,
      capabilities: security.capabilities,
      ...(security.noNewPrivileges ? {} : { noNewPrivileges: false }),
      ...(security.privileged ? { privileged: true } : {}),
      volumes: opts.volumes ?? [],
      autoRemove: opts.autoRemove ?? false,
      logMaxBytes: opts.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES,
      logMaxFiles: opts.logMaxFiles ?? DEFAULT_LOG_MAX_FILES,
      labels: opts.labels ?? {},
      cgroupParent: this.cgroups.parent,
      ...(opts.terminal !== undefined ? { terminal: { ...opts.terminal } } : {}),
      ...(opts.openStdin ? { openStdin: true } : {}),
    };
    if (sandboxFields.portMappings?.length) config.portMappings = sandboxFields.portMappings;
    if (sandboxFields.resolvConf !== undefined) config.resolvConf = sandboxFields.resolvConf;
    await this.store.create(config, { status: 'created' });
    return { id, name: config.name, config, state: { status: 'created' } };
  }

  async start(ref: string): Promise<ContainerInfo> {
    const id = await this.store.resolve(ref);
    const config = await this.store.config(id);
    const state = await this.store.state(id);
    if (state.status !== 'created') {
      throw new FailedPreconditionError(
        `start container ${config.name}: it is ${state.status}; create a new one`,
      );
    }
    const network = config.network;
    if (config.sandbox !== undefined && !this.store.networkReady(config.sandbox)) {
      throw new FailedPreconditionError(
        `start container ${config.name}: its sandbox ${config.sandbox.slice(0, 12)} is not ready (its network was never set up); remove the sandbox and create it again`,
      );
    }
    let peer: StartContext['peer'];
    if (network.mode === 'container') {
      const joined = await this.refresh(network.container);
      if (joined.state.status !== 'running' || !joined.state.pid) {
        throw new FailedPreconditionError(
          `start container ${config.name}: the container ${joined.name} whose namespaces it joins is not running`,
        );
      }
      peer = {
        pid: joined.state.pid,
        startTime: joined.state.pidStartTime ?? '',
        etcFiles: [...ETC_FILES_ALWAYS_MOUNTED, 'resolv.conf'].filter((name) =>
          statSync(this.store.path(network.container, name), { throwIfNoEntry: false }),
        ),
      };
    }
    const cgroups = this.cgroupsOf(config);
    const plan = planStart(config, {
      recordPath: (owner, file) => this.store.path(owner, file),
      cgroups,
      seccompFilter: (capabilities) => defaultSeccompFilter(process.arch, capabilities),
      hostResolvConf: network.mode === 'host' ? readTextOr('/etc/resolv.conf', undefined) : undefined,
      peer,
    });
    warnIfUnfiltered(plan.seccomp);
    const specPath = this.store.path(id, 'helper.spec');
    try {
      await cgroups.prepareParent();
      for (const file of plan.files) writeFileSync(file.path, file.text, { mode: 0o644 });
      writeFileSync(specPath, encodeContainerSpec(helperSpecOf(plan)), { mode: 0o600 });
      // the peer's pid was read above: make sure it still names the same process
      if (network.mode === 'container') {
        const joined = await this.store.state(network.container);
        if (!isSameProcess(joined.pid, joined.pidStartTime)) {
          throw new FailedPreconditionError(
            `start container ${config.name}: the container it joins exited meanwhile`,
          );
        }
      }
      // warm shims park under this runtime's parent: a container recorded under another starts cold
      const warm = cgroups === this.cgroups ? this.warm : undefined;
      const started = await startShim(specPath, `start container ${config.name}`, warm);
      const pidStartTime = processStartTime(started.pid);
      const shimStartTime = processStartTime(started.shimPid);
      const running: ContainerState = {
        status: 'running',
        pid: started.pid,
        pidStartTime,
        shimPid: started.shimPid,
        shimStartTime,
        startedAt: new Date().toISOString(),
      };
      await this.store.writeState(id, running);
      log.debug({ id, pid: started.pid }, 'container started');
      return { id, name: config.name, config, state: running };
    } catch (err) {
      await cgroups.remove(id).catch(() => {});
      await this.store
        .writeState(id, {
          status: 'exited',
          exitCode: 127,
          reason: 'StartError',
          error: errorMessage(err),
          finishedAt: new Date().toISOString(),
        })
        .catch(() => {});
      throw err;
    }
  }

  /**
   * Re-reads a container and settles what happened since: an exit the shim recorded, or a shim
   * that died (its container is then killed and marked exited with reason ShimDied).
   */
  async refresh(ref: string): Promise<ContainerInfo> {
    const id = await this.store.resolve(ref);
    const config = await this.store.config(id);
    let state = await this.store.state(id);
    if (state.status === 'running') {
      // the exit file first: once it exists the shim's liveness no longer matters
      const exit = await this.store.exitFile(id);
      if (exit || !isSameProcess(state.shimPid, state.shimStartTime)) {
        state = await this.finish(id, config, state, exit);
      }
    }
    return { id, name: config.name, config, state };
  }

  private async finish(
    id: string,
    config: ContainerConfig,
    running: ContainerState,
    /** The shim's exit file, when read; without it the shim was found dead. */
    exitFile: ExitFile | undefined,
  ): Promise<ContainerState> {
    // One process settles the exit; others wait for its result, so the reason is read once.
    if (!(await this.takeFinishLock(id))) {
      for (let i = 0; i < 400; i++) {
        const s = await this.store.state(id);
        if (s.status !== 'running') return s;
        await sleep(5);
      }
      return running;
    }
    // the shim may have written the exit file just before it was found gone
    let exit = exitFile ?? (await this.store.exitFile(id));
    let state: ContainerState;
    if (!exit) {
      if (isSameProcess(running.pid, running.pidStartTime)) {
        try {
          process.kill(running.pid!, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      exit = await this.store.exitFile(id); // or just before its container was killed
    }
    const cgroups = this.cgroupsOf(config);
    const oomKills = await cgroups.oomKills(id);
    await cgroups
      .remove(id)
      .catch((err) => log.warn({ id, err: errorMessage(err) }, 'cgroup removal failed'));
    if (exit) {
      state = {
        ...running,
        status: 'exited',
        exitCode: exit.exitCode,
        signal: exit.signal,
        finishedAt: exit.finishedAt,
        reason: oomKills > 0 ? 'OOMKilled' : exit.exitCode === 0 ? 'Completed' : 'Error',
      };
    } else {
      state = {
        ...running,
        status: 'exited',
        exitCode: 255,
        finishedAt: new Date().toISOString(),
        reason: 'ShimDied',
        error: `shim died: the container's monitor (pid ${running.shimPid}) is gone; its processes were killed`,
      };
      log.warn({ id, shimPid: running.shimPid }, 'shim died');
    }
    await this.store.writeState(id, state);
    return state;
  }

  /** Never released: it marks the exit as settled by a live process; a dead settler's is taken over. */
  private async takeFinishLock(id: string): Promise<boolean> {
    return (await PidLock.tryAcquire(this.store.path(id, 'finish.lock'))) !== undefined;
  }

  async wait(ref: string, opts: { timeoutMs?: number } = {}): Promise<ExitInfo> {
    const id = await this.store.resolve(ref);
    const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity;
    let woken = false;
    let wake: () => void = () => {};
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(this.store.path(id), () => {
        woken = true;
        wake();
      });
    } catch {
      // fall back to polling
    }
    try {
      for (;;) {
        woken = false;
        const info = await this.refresh(id);
        if (info.state.status === 'exited') return exitInfo(info.state);
        if (info.state.status === 'created') {
          throw new FailedPreconditionError(`wait for container ${info.name}: it was never started`);
        }
        if (Date.now() > deadline)
          throw new DeadlineExceededError(`wait for container ${info.name}: still running`);
        if (!woken) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 200);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
      }
    } finally {
      watcher?.close();
    }
  }

  async kill(ref: string, signal: NodeJS.Signals | number = 'SIGKILL'): Promise<void> {
    const signo = signalNumber(signal);
    const info = await this.refresh(ref);
    if (info.state.status !== 'running') {
      throw new FailedPreconditionError(
        `kill container ${info.name}: it is not running (${info.state.status})`,
      );
    }
    if (!isSameProcess(info.state.pid, info.state.pidStartTime)) return; // exiting now
    try {
      process.kill(info.state.pid!, signo);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  async stop(ref: string, graceSeconds = 10): Promise<ExitInfo | undefined> {
    const info = await this.refresh(ref);
    if (info.state.status !== 'running')
      return info.state.status === 'exited' ? exitInfo(info.state) : undefined;
    await this.kill(info.id, (info.config.stopSignal as NodeJS.Signals | undefined) ?? 'SIGTERM').catch(
      () => {},
    );
    try {
      return await this.wait(info.id, { timeoutMs: graceSeconds * 1000 });
    } catch (err) {
      if (!(err instanceof DeadlineExceededError)) throw err;
    }
    await this.kill(info.id, 'SIGKILL').catch(() => {});
    return this.wait(info.id, { timeoutMs: 10_000 });
  }

  /** A sandbox's process is removed as its sandbox is: with its containers and its network. */
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<void> {
    const info = await this.refresh(ref);
    if (info.state.status === 'running' && !opts.force) {
      throw new FailedPreconditionError(
        `remove container ${info.name}: it is running; stop it first or use --force`,
      );
    }
    if (info.config.kind === 'sandbox') return this.removeSandbox(info.id);
    await this.removeContainer(info);
  }

  private async removeContainer(info: ContainerInfo): Promise<void> {
    if (info.state.status === 'running') {
      await this.kill(info.id, 'SIGKILL').catch(() => {});
      await this.wait(info.id, { timeoutMs: 10_000 });
    }
    // the shim is releasing the container's mounts meanwhile: awaited last
    const shimGone = this.shimGone(info.state);
    await Promise.all([this.cgroupsOf(info.config).remove(info.id), this.removeSnapshot(info)]);
    await this.store.delete(info.id, info.name);
    await shimGone;
    log.debug({ id: info.id }, 'container removed');
  }

  /** Before the container's record goes: prune keeps an active snapshot until its container is gone. */
  private async removeSnapshot(info: ContainerInfo): Promise<void> {
    if (!info.config.snapshotKey) return;
    if (!this.snapshots) {
      throw new FailedPreconditionError(
        `remove container ${info.name}: its snapshot ${info.config.snapshotKey} needs the ${info.config.snapshotter} snapshotter, which this runtime was opened without`,
      );
    }
    const snapshots = await this.snapshots(info.config.snapshotter ?? 'overlay');
    try {
      await snapshots.remove(info.config.snapshotKey);
    } catch (err) {
      if ((err as { code?: string }).code !== 'NotFound') throw err;
    }
  }

  /**
   * The shim holds the container's mount namespace (its root and the rest, mounted nowhere else)
   * until the exit is recorded, then releases it and exits: once it is gone nothing of the
   * container is mounted anywhere (its writable layer, already in the snapshotter's trash, is
   * deleted later still). A shim that lingers after the record (stopped?) has nothing left to do
   * and is killed.
   */
  private async shimGone(state: ContainerState): Promise<void> {
    // the release takes about a millisecond after the record: look often at first
    for (let i = 0; i < 220; i++) {
      if (!isSameProcess(state.shimPid, state.shimStartTime)) return;
      await sleep(i < 20 ? 1 : 5);
    }
    try {
      process.kill(state.shimPid!, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    for (let i = 0; i < 200 && isSameProcess(state.shimPid, state.shimStartTime); i++) await sleep(5);
  }

  async exec(ref: string, opts: ExecOptions): Promise<ExecHandle> {
    return this.withExecSpec(ref, opts, (specPath, name) =>
      startExec(
        specPath,
        opts.terminal !== undefined ? terminalStdio(opts.stdio) : (opts.stdio ?? 'ignore'),
        `exec in container ${name}`,
        opts.terminal !== undefined,
      ),
    );
  }

  /**
   * Runs a process in a running container to its end and returns its exit code and the start of
   * its output (stdout and stderr as they came, at most 10 KiB), as probes and hooks want it:
   * through the helper's long-lived exec server, which forks a worker per call rather than this
   * process forking a helper (sys/helper.ts ExecServer). Killed after `timeoutMs` (timedOut).
   */
  async execCapture(ref: string, opts: ExecCaptureOptions): Promise<CapturedExec> {
    return this.withExecSpec(ref, opts, (specPath, name) =>
      runCapturedExec(specPath, opts.timeoutMs ?? 0, `exec in container ${name}`),
    );
  }

  /** Writes the exec spec of `opts` in `ref`'s record, calls `run` with it, removes it. */
  private async withExecSpec<T>(
    ref: string,
    opts: Omit<ExecOptions, 'stdio'>,
    run: (specPath: string, name: string) => Promise<T>,
  ): Promise<T> {
    const info = await this.refresh(ref);
    if (info.state.status !== 'running' || !info.state.pid) {
      throw new FailedPreconditionError(
        `exec in container ${info.name}: it is not running (${info.state.status})`,
      );
    }
    validateArgv(opts.argv);
    validateEnv(opts.env ?? []);
    if (opts.cwd !== undefined) validateCwd(opts.cwd);
    if (opts.terminal !== undefined) validateTerminalSize(opts.terminal, 'terminal');
    const user = opts.user !== undefined ? userRequest(opts.user, info.config.groupAdd) : undefined;
    const pid = info.state.pid;
    const env = [...info.config.env];
    for (const e of opts.env ?? []) {
      const key = e.slice(0, e.indexOf('=') + 1);
      const at = env.findIndex((x) => x.startsWith(key));
      if (at >= 0) env[at] = e;
      else env.push(e);
    }
    const types: NamespaceType[] = ['cgroup', 'ipc', 'uts', 'net', 'pid', 'mnt'];
    // the container's own capabilities, no_new_privs and filter, as runc exec gives
    const capabilities = info.config.capabilities ?? DEFAULT_CAPABILITIES;
    const seccompFilter = seccompFilterOf(
      info.config.seccomp,
      defaultSeccompFilter(process.arch, capabilities),
    );
    warnIfUnfiltered({ mode: info.config.seccomp, filter: seccompFilter });
    const spec = encodeExecSpec({
      argv: opts.argv,
      env,
      cwd: opts.cwd ?? info.config.cwd,
      user: user?.text ?? info.config.user,
      groupAdd: user?.groupAdd ?? info.config.groupAdd,
      homeFromPasswd: !hasHome(env),
      capabilities,
      noNewPrivs: info.config.noNewPrivileges ?? true,
      seccompFilter,
      rlimits: [],
      cgroups: this.cgroupsOf(info.config).dirs(info.id),
      joinNamespaces: { pid, startTime: info.state.pidStartTime ?? '', types },
      ...(opts.terminal !== undefined ? { terminal: opts.terminal } : {}),
    });
    // a small file in the page cache: synchronous calls, as the records' (README)
    const execDir = this.store.path(info.id, 'exec');
    mkdirSync(execDir, { recursive: true, mode: 0o700 });
    const specPath = `${execDir}/${randomBytes(8).toString('hex')}.spec`;
    writeFileSync(specPath, spec, { mode: 0o600 });
    try {
      if (!isSameProcess(pid, info.state.pidStartTime)) {
        throw new FailedPreconditionError(`exec in container ${info.name}: it exited`);
      }
      return await run(specPath, info.name);
    } finally {
      try {
        unlinkSync(specPath);
      } catch {
        // removed with the container meanwhile
      }
    }
  }

  async openInput(ref: string): Promise<ContainerInput> {
    const info = await this.refresh(ref);
    const action = `attach to container ${info.name}`;
    if (info.state.status !== 'running')
      throw new FailedPreconditionError(`${action}: it is not running (${info.state.status})`);
    const control = this.store.path(info.id, CONTROL_FIFO);
    const sendControl = (line: string): void => {
      // one short line is one atomic write; a shim whose FIFO is full (or gone) drops it
      let fd: number | undefined;
      try {
        fd = openSync(control, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
        writeSync(fd, `${line}\n`);
      } catch {
        // no shim reading: the container exited, or has no terminal and no stdin
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    };
    let stdin: Socket | undefined;
    if (info.config.openStdin) {
      let fd: number;
      try {
        // non-blocking, and so ENXIO when no shim reads it any more
        fd = openSync(this.store.path(info.id, STDIN_FIFO), fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
      } catch (err) {
        throw new FailedPreconditionError(
          `${action}: its stdin is closed (${errorMessage(err)}); it has exited`,
          {
            cause: err,
          },
        );
      }
      stdin = new Socket({ fd, readable: false, writable: true });
      stdin.on('error', () => {});
    }
    return {
      ...(stdin ? { stdin } : {}),
      resize: (rows, cols) => {
        if (info.config.terminal) sendControl(`resize ${Math.trunc(rows)} ${Math.trunc(cols)}`);
      },
      closeStdin: () => sendControl('close-stdin'),
      close: () => stdin?.destroy(),
    };
  }

  async portForward(ref: string, port: number): Promise<PortForwardHandle> {
    const info = await this.refresh(ref);
    const action = `port-forward to ${info.name}:${port}`;
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new InvalidArgumentError(`${action}: the port must be 1 to 65535`, 'port');
    if (info.state.status !== 'running' || !info.state.pid || !info.state.pidStartTime)
      throw new FailedPreconditionError(`${action}: it is not running (${info.state.status})`);
    return startPortForward(info.state.pid, info.state.pidStartTime, port, action);
  }

  async list(opts: ListContainersOptions = {}): Promise<ContainerInfo[]> {
    const out: ContainerInfo[] = [];
    for (const id of await this.store.ids()) {
      try {
        // the config (cached, never changed) selects: only the containers asked for are re-read
        if (!selects(opts, await this.store.config(id))) continue;
        const info = await this.refresh(id);
        // detached --rm containers have no one waiting for them: the next listing removes them
        if (info.state.status === 'exited' && info.config.autoRemove) {
          await this.remove(id).catch((err) =>
            log.warn({ id, err: errorMessage(err) }, 'auto-remove failed'),
          );
          continue;
        }
        if (opts.all || info.state.status === 'running') out.push(info);
      } catch {
        // removed meanwhile
      }
    }
    return out.sort((a, b) => compareCodePoints(b.config.created, a.config.created));
  }

  async inspect(ref: string): Promise<ContainerInfo & { stats?: CgroupStats; exit?: ExitInfo }> {
    const info = await this.refresh(ref);
    if (info.state.status === 'exited') return { ...info, exit: exitInfo(info.state) };
    if (info.state.status !== 'running') return info;
    return { ...info, stats: await this.cgroupsOf(info.config).stats(info.id) };
  }

  watchContainers(selector?: ContainerSelector): Promise<ContainerWatch> {
    return this.events.watch(selector);
  }

  // ------------------------------------------------------------------ sandboxes

  async createSandbox(opts: CreateSandboxOptions = {}): Promise<SandboxInfo> {
    const hostNetwork = opts.hostNetwork;
    if (hostNetwork) validateHostIps(hostNetwork.ips);
    const portMappings = validatePortMappings(opts.portMappings ?? [], {
      samePort: hostNetwork !== undefined,
    });
    const created = await this.createRecord(
      {
        name: opts.name,
        labels: opts.labels,
        hostname: opts.hostname,
        rootfs: { type: 'bind', source: await pauseRootfs(this.root), options: ['rbind', 'ro'] },
        readOnly: true,
        argv: PAUSE_COMMAND,
        // nothing to resolve in a root without /etc/passwd, and no capability it needs
        user: { uid: 65535, gid: 65535 },
        env: ['HOME=/'],
        network: hostNetwork
          ? {
              mode: 'host',
              ...(hostNetwork.netnsPath !== undefined ? { netnsPath: hostNetwork.netnsPath } : {}),
            }
          : { mode: 'none' },
      },
      'sandbox',
      { portMappings, ...(opts.resolvConf !== undefined ? { resolvConf: opts.resolvConf } : {}) },
    );
    const action = `create sandbox ${created.name}`;
    try {
      const started = await this.start(created.id);
      let status: SandboxNetworkStatus = { ips: hostNetwork ? [...hostNetwork.ips] : [] };
      if (this.sandboxNetwork && !hostNetwork) {
        try {
          status = await this.sandboxNetwork.setUp({
            ...this.networkTarget(started),
            netnsPath: netnsPath(started.state.pid!),
          });
        } catch (err) {
          throw new FailedPreconditionError(`${action}: network set-up: ${errorMessage(err)}`, {
            cause: err,
          });
        }
        // the hook was given /proc/<pid>/ns/net: it must still have been this sandbox's
        if (!isSameProcess(started.state.pid, started.state.pidStartTime)) {
          throw new FailedPreconditionError(`${action}: its process exited during the network set-up`);
        }
      }
      // in place: the pause process has it mounted; the pod's containers mount it when they start
      if (status.ips.length > 0)
        writeFileSync(
          this.store.path(created.id, 'hosts'),
          hostsFileText(created.config.hostname, status.ips),
        );
      await this.store.markNetworkReady(created.id, status);
      return this.sandboxInfo(await this.refresh(created.id));
    } catch (err) {
      // whatever the set-up got to is torn down with it
      await this.removeSandbox(created.id).catch((removeErr) =>
        log.warn(
          { sandbox: created.id, err: errorMessage(removeErr) },
          'removing a sandbox that failed to start failed; remove it again',
        ),
      );
      throw err;
    }
  }

  async inspectSandbox(ref: string): Promise<SandboxInfo> {
    return this.sandboxInfo(await this.sandboxRecord(ref, 'inspect sandbox'));
  }

  async listSandboxes(selector: Pick<ContainerSelector, 'labels'> = {}): Promise<SandboxInfo[]> {
    const records = await this.list({ all: true, labels: selector.labels, kind: 'sandbox' });
    return records.map((info) => this.sandboxInfo(info));
  }

  async removeSandbox(ref: string): Promise<void> {
    const info = await this.sandboxRecord(ref, 'remove sandbox');
    for (const member of await this.list({ all: true, sandbox: info.id })) {
      await this.removeContainer(member).catch((err) => {
        if (!(err instanceof NotFoundError)) throw err; // removed meanwhile
      });
    }
    // a sandbox on the host network had no set-up: nothing of it to tear down
    if (this.sandboxNetwork && info.config.network.mode !== 'host') {
      const running =
        info.state.status === 'running' && isSameProcess(info.state.pid, info.state.pidStartTime);
      const target: SandboxNetworkTarget = this.networkTarget(info);
      if (running) target.netnsPath = netnsPath(info.state.pid!);
      try {
        await this.sandboxNetwork.tearDown(target);
      } catch (err) {
        throw new FailedPreconditionError(
          `remove sandbox ${info.name}: network tear-down: ${errorMessage(err)}; its containers are removed, the sandbox is kept: remove it again`,
          { cause: err },
        );
      }
    }
    await this.removeContainer(await this.refresh(info.id));
  }

  /** The sandbox `ref` names, refreshed; InvalidArgumentError when it is an ordinary container. */
  private async sandboxRecord(ref: string, action: string): Promise<ContainerInfo> {
    const info = await this.refresh(ref);
    if (info.config.kind !== 'sandbox') {
      throw new InvalidArgumentError(
        `${action}: ${ref} is a container, not a sandbox (see listSandboxes)`,
        'sandbox',
      );
    }
    return info;
  }

  private networkTarget(info: ContainerInfo): SandboxNetworkTarget {
    return {
      id: info.id,
      name: info.name,
      labels: info.config.labels,
      hostname: info.config.hostname,
      portMappings: info.config.portMappings ?? [],
    };
  }

  private sandboxInfo(info: ContainerInfo): SandboxInfo {
    const running = info.state.status === 'running' && info.state.pid !== undefined;
    const network = this.store.networkStatus(info.id);
    const out: SandboxInfo = {
      id: info.id,
      name: info.name,
      labels: info.config.labels,
      hostname: info.config.hostname,
      created: info.config.created,
      state: running && network !== undefined ? 'ready' : 'notready',
      ips: network?.ips ?? [],
      hostNetwork: info.config.network.mode === 'host',
      portMappings: info.config.portMappings ?? [],
    };
    if (running) {
      out.pid = info.state.pid;
      out.netnsPath = netnsPath(info.state.pid!);
    }
    return out;
  }

  async *logs(ref: string, opts: Omit<ReadLogsOptions, 'finished'> = {}): AsyncGenerator<LogEntry> {
    const id = await this.store.resolve(ref);
    const config = await this.store.config(id);
    yield* readLogs(this.store.path(id, 'container.log'), config.logMaxFiles, {
      ...opts,
      finished: async () => (await this.refresh(id)).state.status !== 'running',
    });
  }
}
