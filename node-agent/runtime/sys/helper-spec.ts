/**
 * The spec skiff-helper executes: everything the container process becomes, decided here in
 * TypeScript. The helper reads it as NUL-terminated strings, a key followed by a fixed number of
 * values (see skiff-helper.c), so any byte but NUL may appear in a path, argument or variable.
 */
import { InvalidArgumentError } from '../../../proto/errors.js';

export type NamespaceType = 'pid' | 'mnt' | 'uts' | 'ipc' | 'net' | 'cgroup';

/** A mount description, as a Snapshotter returns it (containerd semantics). */
export interface RootMount {
  type: string;
  source: string;
  options: string[];
}

export interface Rlimit {
  /** RLIMIT_* number (RLIMIT_NOFILE = 7, RLIMIT_NPROC = 6, ...). */
  resource: number;
  soft: bigint;
  hard: bigint;
}

export interface HelperProcessSpec {
  argv: string[];
  env: string[];
  cwd: string;
  /**
   * NAME|UID[:GROUP|GID] ("" is uid 0), resolved by the helper inside the container from its own
   * /etc/passwd and /etc/group, as Docker does (runc's libcontainer/user).
   */
  user: string;
  /** Group names or numbers added to the supplementary groups (--group-add). */
  groupAdd: string[];
  /** The environment has no HOME: the helper sets the user's from /etc/passwd ("/" without an entry). */
  homeFromPasswd: boolean;
  /**
   * Capability numbers kept in every set but ambient (and in none when uid != 0, as Docker), each
   * at most the kernel's last one (capset refuses the rest).
   */
  capabilities: number[];
  /**
   * Set no_new_privs. Without it a seccomp filter is installed while the helper still holds
   * CAP_SYS_ADMIN, before the capabilities are dropped (as runc does); with it, last before execve.
   */
  noNewPrivs: boolean;
  rlimits: Rlimit[];
  /** cgroup directories to join (cgroup.procs) before any namespace is entered. */
  cgroups: string[];
  /**
   * Namespaces of another process to enter, and that process as the runtime identified it (pid
   * and /proc start time): the helper holds it by a pidfd while it opens them, so a pid reused
   * meanwhile is refused, never joined.
   */
  joinNamespaces?: { pid: number; startTime: string; types: NamespaceType[] };
  /**
   * A seccomp filter (struct sock_filter[], containers/seccomp.ts) installed as the last step
   * before execve; none when absent (--security-opt seccomp=unconfined).
   */
  seccompFilter?: Buffer;
  /**
   * A new pseudo-terminal of the container's own devpts as the process's stdin, stdout, stderr
   * and controlling terminal, of this size (0: the kernel's). Its master stays with the helper
   * (exec) or the shim (a container's start); the container only ever holds the slave.
   */
  terminal?: TerminalSize;
}

export interface TerminalSize {
  rows: number;
  cols: number;
}

/** A limit file the helper writes into a container's new cgroup. */
export interface CgroupLimitWrite {
  path: string;
  value: string;
  /** Skipped when the file does not exist (memsw without swap accounting). */
  optional: boolean;
}

export interface HelperContainerSpec extends HelperProcessSpec {
  /**
   * cgroup directories the shim creates (parents first; existing ones are fine) and the limits
   * it writes into them, before the container's process joins `cgroups`.
   */
  cgroupMkdirs: string[];
  cgroupLimits: CgroupLimitWrite[];
  newNamespaces: NamespaceType[];
  /**
   * A network namespace to enter by its path instead of making one (`/run/netns/<name>`: the host's
   * network where the host is a namespace); absent: a new one, or the runtime's own.
   */
  netnsPath?: string;
  /** The directory the root mount is attached to before pivot_root. */
  rootfsPath: string;
  rootfs: RootMount;
  readonlyRoot: boolean;
  hostname?: string;
  /** cgroup v2 directories that get the device filter (docker's allowed devices only). */
  deviceFilterCgroups: string[];
  maskedPaths: string[];
  readonlyPaths: string[];
  volumes: { source: string; target: string; readonly: boolean }[];
  /** Mount /sys read-write (a privileged container); read-only otherwise. */
  sysWritable?: boolean;
  /** Bring `lo` up in a new network namespace. */
  loopbackUp: boolean;
  logPath: string;
  logMaxBytes: number;
  logMaxFiles: number;
  exitPath: string;
  /**
   * The container's stdin stays open: a pipe whose write end the shim holds, fed from the FIFO it
   * makes at `stdinFifo` (docker's -i, Kubernetes' `stdin: true`).
   */
  stdinFifo?: string;
  /** A FIFO the shim makes for "resize ROWS COLS" and "close-stdin" lines (with stdin or a terminal). */
  controlFifo?: string;
}

/** The kernel's limit on a classic BPF program's length (linux/bpf_common.h). */
const BPF_MAXINSNS = 4096;

function check(value: string, field: string): string {
  if (value.includes('\0'))
    throw new InvalidArgumentError(`encode helper spec: ${field} contains a NUL byte`, field);
  return value;
}

function encode(pairs: [string, ...string[]][]): Buffer {
  const parts: string[] = [];
  for (const [key, ...values] of pairs) {
    parts.push(key);
    values.forEach((v, i) => parts.push(check(v, values.length > 1 ? `${key}[${i}]` : key)));
  }
  return Buffer.from(parts.join('\0') + '\0', 'utf8');
}

function processPairs(spec: HelperProcessSpec): [string, ...string[]][] {
  if (spec.argv.length === 0) throw new InvalidArgumentError('encode helper spec: no command to run', 'argv');
  const pairs: [string, ...string[]][] = [];
  for (const a of spec.argv) pairs.push(['arg', a]);
  for (const e of spec.env) pairs.push(['env', e]);
  pairs.push(['cwd', spec.cwd], ['user', spec.user]);
  for (const g of spec.groupAdd) pairs.push(['group_add', g]);
  pairs.push(['home_from_passwd', spec.homeFromPasswd ? '1' : '0']);
  for (const c of spec.capabilities) pairs.push(['cap', String(c)]);
  pairs.push(['no_new_privs', spec.noNewPrivs ? '1' : '0']);
  for (const r of spec.rlimits) pairs.push(['rlimit', String(r.resource), String(r.soft), String(r.hard)]);
  for (const c of spec.cgroups) pairs.push(['cgroup', c]);
  if (spec.joinNamespaces) {
    const { pid, startTime, types } = spec.joinNamespaces;
    pairs.push(['ns.owner', String(pid), startTime]);
    for (const type of types) pairs.push(['ns.join', type]);
  }
  if (spec.seccompFilter !== undefined) {
    const insns = spec.seccompFilter.length / 8;
    if (!Number.isInteger(insns) || insns < 1 || insns > BPF_MAXINSNS)
      throw new InvalidArgumentError(
        `encode helper spec: a seccomp filter is 1 to ${BPF_MAXINSNS} 8-byte instructions, not ${spec.seccompFilter.length} bytes`,
        'seccompFilter',
      );
    pairs.push(['seccomp', spec.seccompFilter.toString('hex')]);
  }
  if (spec.terminal !== undefined) {
    const { rows, cols } = spec.terminal;
    for (const [field, value] of [
      ['rows', rows],
      ['cols', cols],
    ] as const) {
      if (!Number.isInteger(value) || value < 0 || value > 65535)
        throw new InvalidArgumentError(
          `encode helper spec: terminal ${field} must be 0 to 65535, not ${value}`,
          `terminal.${field}`,
        );
    }
    pairs.push(['tty', '1'], ['tty.rows', String(rows)], ['tty.cols', String(cols)]);
  }
  return pairs;
}

export function encodeExecSpec(spec: HelperProcessSpec): Buffer {
  return encode(processPairs(spec));
}

export function encodeContainerSpec(spec: HelperContainerSpec): Buffer {
  const pairs = processPairs(spec);
  for (const d of spec.cgroupMkdirs) pairs.push(['cgroup.mkdir', d]);
  for (const l of spec.cgroupLimits) pairs.push(['cgroup.limit', l.path, l.value, l.optional ? '1' : '0']);
  for (const ns of spec.newNamespaces) pairs.push(['ns.new', ns]);
  if (spec.netnsPath !== undefined) pairs.push(['ns.net_path', spec.netnsPath]);
  pairs.push(
    ['rootfs.path', spec.rootfsPath],
    ['rootfs.type', spec.rootfs.type],
    ['rootfs.source', spec.rootfs.source],
  );
  for (const o of spec.rootfs.options) pairs.push(['rootfs.option', o]);
  pairs.push(['readonly_root', spec.readonlyRoot ? '1' : '0']);
  if (spec.hostname !== undefined) pairs.push(['hostname', spec.hostname]);
  for (const d of spec.deviceFilterCgroups) pairs.push(['device_filter', d]);
  for (const p of spec.maskedPaths) pairs.push(['masked', p]);
  for (const p of spec.readonlyPaths) pairs.push(['readonly', p]);
  for (const v of spec.volumes) pairs.push(['volume', v.source, v.target, v.readonly ? '1' : '0']);
  if (spec.sysWritable) pairs.push(['sys_rw', '1']);
  pairs.push(['lo_up', spec.loopbackUp ? '1' : '0']);
  pairs.push(
    ['log.path', spec.logPath],
    ['log.max_bytes', String(spec.logMaxBytes)],
    ['log.max_files', String(spec.logMaxFiles)],
  );
  pairs.push(['exit_path', spec.exitPath]);
  if (spec.stdinFifo !== undefined) pairs.push(['stdin', '1'], ['io.stdin', spec.stdinFifo]);
  if (spec.controlFifo !== undefined) pairs.push(['io.control', spec.controlFifo]);
  return encode(pairs);
}

/** What the helper said on fd 3: the pid it started, or the setup step that failed. */
export type HelperReport =
  | { ok: true; pid: number; helperPid: number }
  | { ok: false; step: string; path: string; errno: number; message: string };

export function parseHelperReport(text: string): HelperReport | undefined {
  const line = text.split('\n')[0] ?? '';
  const fields = line.split('\t');
  if (fields[0] === 'ok' && /^\d+$/.test(fields[1] ?? '') && /^\d+$/.test(fields[2] ?? '')) {
    return { ok: true, pid: Number(fields[1]), helperPid: Number(fields[2]) };
  }
  if (fields[0] === 'error' && fields.length >= 5) {
    return {
      ok: false,
      step: fields[1]!,
      path: fields[2]!,
      errno: Number(fields[3]),
      message: fields.slice(4).join('\t'),
    };
  }
  return undefined;
}
