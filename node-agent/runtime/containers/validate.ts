/** Checks of what a user asks a container to be. Pure: every error names the field at fault. */
import { isIP, isIPv4 } from 'node:net';
import { isAbsolute, normalize } from 'node:path';
import { InvalidArgumentError } from '../../../proto/errors.js';
import type { PortMapping } from '../pod-runtime.js';
import type { SeccompMode } from './seccomp.js';
import type { NetworkMode, VolumeSpec } from './state.js';

const MIN_MEMORY = 6 * 1024 * 1024; // as docker: below this a container cannot even start its shell
const HOSTNAME_RE =
  /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

function noNul(value: string, field: string): void {
  if (value.includes('\0')) throw new InvalidArgumentError(`${field}: contains a NUL byte`, field);
}

export function validateEnv(env: string[], field = 'env'): void {
  env.forEach((e, i) => {
    noNul(e, `${field}[${i}]`);
    const eq = e.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${field}[${i}]: "${e}" is not KEY=VALUE`, `${field}[${i}]`);
  });
}

export function validateArgv(argv: string[], field = 'command'): void {
  if (argv.length === 0 || argv[0] === '') {
    throw new InvalidArgumentError(
      `${field}: no command to run (the image has no Entrypoint or Cmd; give one)`,
      field,
    );
  }
  argv.forEach((a, i) => noNul(a, `${field}[${i}]`));
}

export function validateCwd(cwd: string, field = 'workdir'): void {
  noNul(cwd, field);
  if (!isAbsolute(cwd)) throw new InvalidArgumentError(`${field}: "${cwd}" is not an absolute path`, field);
}

export function validateHostname(hostname: string): void {
  if (hostname.length > 64 || !HOSTNAME_RE.test(hostname)) {
    throw new InvalidArgumentError(
      `hostname: "${hostname}" is not a valid host name (letters, digits, '-', '.', at most 64)`,
      'hostname',
    );
  }
}

export function validateVolumes(volumes: VolumeSpec[]): void {
  volumes.forEach((v, i) => {
    const field = `volumes[${i}]`;
    noNul(v.source, `${field}.source`);
    noNul(v.target, `${field}.target`);
    if (!isAbsolute(v.source))
      throw new InvalidArgumentError(`${field}: host path "${v.source}" is not absolute`, `${field}.source`);
    if (!isAbsolute(v.target))
      throw new InvalidArgumentError(
        `${field}: container path "${v.target}" is not absolute`,
        `${field}.target`,
      );
    const target = normalize(v.target);
    if (target === '/')
      throw new InvalidArgumentError(`${field}: cannot mount over the container's root`, `${field}.target`);
    // Volumes are attached after /proc, /sys and /dev are set up, so one in /proc or /sys would
    // cover their masked and read-only paths. In /dev (a tmpfs of the container's own) a file or
    // directory may be mounted (Kubernetes' /dev/termination-log, an emptyDir on /dev/shm), but
    // not /dev itself, nor /dev/null, over which the masked paths are mounted.
    const kernelDir = ['/proc', '/sys'].find((d) => target === d || target.startsWith(`${d}/`));
    if (kernelDir !== undefined)
      throw new InvalidArgumentError(
        `${field}: container path "${v.target}" is under ${kernelDir}, which the runtime sets up itself; mount the volume elsewhere`,
        `${field}.target`,
      );
    const bare = target.replace(/\/+$/, '');
    if (bare === '/dev' || bare === '/dev/null')
      throw new InvalidArgumentError(
        `${field}: container path "${v.target}" is set up by the runtime itself; mount the volume elsewhere`,
        `${field}.target`,
      );
  });
}

export function validateLimits(
  limits: { memoryBytes?: number; cpus?: number; pidsLimit?: number },
  hostCpus: number,
): void {
  const { memoryBytes, cpus, pidsLimit } = limits;
  if (memoryBytes !== undefined && (!Number.isSafeInteger(memoryBytes) || memoryBytes < MIN_MEMORY)) {
    throw new InvalidArgumentError(`memory: ${memoryBytes} bytes is below the minimum of 6Mi`, 'memory');
  }
  if (cpus !== undefined && (!Number.isFinite(cpus) || cpus <= 0 || cpus > hostCpus)) {
    throw new InvalidArgumentError(
      `cpus: ${cpus} must be above 0 and at most the host's ${hostCpus}`,
      'cpus',
    );
  }
  // the runtime writes a quota of cpus x its 100 ms CFS period, and the kernel refuses one under 1 ms
  if (cpus !== undefined && Math.round(cpus * 100_000) < 1000) {
    throw new InvalidArgumentError(
      `cpus: ${cpus} is below the minimum of 0.01 (a CPU quota under the kernel's 1 ms per 100 ms period)`,
      'cpus',
    );
  }
  if (pidsLimit !== undefined && (!Number.isSafeInteger(pidsLimit) || pidsLimit < 1)) {
    throw new InvalidArgumentError(`pids-limit: ${pidsLimit} must be a whole number >= 1`, 'pids-limit');
  }
}

const SECCOMP_MODES: readonly string[] = ['default', 'unconfined'] satisfies SeccompMode[];

export function validateSeccompMode(mode: string): asserts mode is SeccompMode {
  if (!SECCOMP_MODES.includes(mode))
    throw new InvalidArgumentError(
      `seccomp: "${mode}" is not a profile skiff has (default or unconfined)`,
      'seccomp',
    );
}

/**
 * Docker's --security-opt values, of which skiff has seccomp=unconfined (no filter) and
 * seccomp=default; no-new-privileges is accepted as a no-op, since every container has it.
 */
export function parseSecurityOpts(opts: string[]): { seccomp: SeccompMode } {
  let seccomp: SeccompMode = 'default';
  opts.forEach((opt, i) => {
    const field = `security-opt[${i}]`;
    const eq = opt.indexOf('=');
    const key = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? undefined : opt.slice(eq + 1);
    if (key === 'seccomp' && value !== undefined) {
      if (!SECCOMP_MODES.includes(value))
        throw new InvalidArgumentError(
          `${field}: "${opt}": skiff has the default seccomp profile and unconfined only (no profile files)`,
          field,
        );
      seccomp = value as SeccompMode;
    } else if (key === 'no-new-privileges' && (value === undefined || value === 'true')) {
      // always set
    } else {
      throw new InvalidArgumentError(
        `${field}: "${opt}" is not supported (seccomp=unconfined, seccomp=default or no-new-privileges)`,
        field,
      );
    }
  });
  return { seccomp };
}

/** Labels: non-empty keys; keys and values without NUL bytes (they are stored and matched as given). */
export function validateLabels(labels: Record<string, string>): void {
  for (const [key, value] of Object.entries(labels)) {
    const field = `labels[${JSON.stringify(key)}]`;
    if (key === '') throw new InvalidArgumentError('labels: a label key is empty', 'labels');
    if (typeof value !== 'string')
      throw new InvalidArgumentError(`${field}: the value must be a string, not ${typeof value}`, field);
    noNul(key, field);
    noNul(value, field);
  }
}

/** docker's `--label KEY=VALUE` (repeatable; `KEY` alone is an empty value) → labels; a later key wins. */
export function parseLabels(texts: string[], field = 'label'): Record<string, string> {
  const entries = new Map<string, string>();
  texts.forEach((text, i) => {
    const eq = text.indexOf('=');
    const key = eq < 0 ? text : text.slice(0, eq);
    if (key === '')
      throw new InvalidArgumentError(`${field}[${i}]: "${text}" must be KEY=VALUE`, `${field}[${i}]`);
    entries.set(key, eq < 0 ? '' : text.slice(eq + 1));
  });
  // own properties whatever the key (`__proto__` included)
  const labels = Object.fromEntries(entries);
  validateLabels(labels);
  return labels;
}

export function validateNetwork(network: NetworkMode, hostname: string | undefined): void {
  if (network.mode === 'host' && network.netnsPath !== undefined) {
    noNul(network.netnsPath, 'network.netnsPath');
    if (!isAbsolute(network.netnsPath))
      throw new InvalidArgumentError(
        `network.netnsPath: "${network.netnsPath}" is not an absolute path`,
        'network.netnsPath',
      );
  }
  if (network.mode === 'container' && hostname !== undefined) {
    throw new InvalidArgumentError(
      "hostname: a container that joins another container's namespaces shares its hostname; drop --hostname",
      'hostname',
    );
  }
}

const PROTOCOLS: readonly string[] = ['TCP', 'UDP'] satisfies PortMapping['protocol'][];

function validPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}

/**
 * Two mappings take the same host port: same protocol and port, and the same host address or
 * either on all of them (absent or 0.0.0.0), as the kubelet and the scheduler's host-port filter
 * count them.
 */
export function hostPortsOverlap(a: PortMapping, b: PortMapping): boolean {
  return (
    a.protocol === b.protocol &&
    a.hostPort === b.hostPort &&
    (a.hostIP === undefined || b.hostIP === undefined || a.hostIP === b.hostIP)
  );
}

/** "8080/TCP" or "10.0.0.1:8080/TCP": a mapping's host side, as messages name it. */
export function hostPortText(m: PortMapping): string {
  return `${m.hostIP !== undefined ? `${m.hostIP}:` : ''}${m.hostPort}/${m.protocol}`;
}

/**
 * A sandbox's host ports: each port 1–65535, protocol TCP or UDP, hostIP an IPv4 address;
 * no two taking the same host port. Returns them normalized (a hostIP of 0.0.0.0 or "" dropped:
 * all addresses). `samePort`: each hostPort must equal its containerPort (the host network).
 */
export function validatePortMappings(
  mappings: readonly PortMapping[],
  opts: { samePort?: boolean; field?: string } = {},
): PortMapping[] {
  const field = opts.field ?? 'portMappings';
  const out: PortMapping[] = [];
  mappings.forEach((m, i) => {
    const at = `${field}[${i}]`;
    for (const key of ['hostPort', 'containerPort'] as const) {
      if (!validPort(m[key]))
        throw new InvalidArgumentError(
          `${at}.${key}: ${String(m[key])} is not a port (1-65535)`,
          `${at}.${key}`,
        );
    }
    if (!PROTOCOLS.includes(m.protocol))
      throw new InvalidArgumentError(
        `${at}.protocol: "${String(m.protocol)}" is not a protocol skiff forwards (TCP or UDP)`,
        `${at}.protocol`,
      );
    const hostIP = m.hostIP === '' || m.hostIP === '0.0.0.0' ? undefined : m.hostIP;
    if (hostIP !== undefined && !isIPv4(hostIP))
      throw new InvalidArgumentError(
        `${at}.hostIP: "${hostIP}" is not an IPv4 address (host ports are forwarded for IPv4 only)`,
        `${at}.hostIP`,
      );
    if (opts.samePort && m.hostPort !== m.containerPort)
      throw new InvalidArgumentError(
        `${at}.hostPort: ${m.hostPort} differs from containerPort ${m.containerPort}; on the host network a pod's port is the host's`,
        `${at}.hostPort`,
      );
    const mapping: PortMapping = {
      hostPort: m.hostPort,
      containerPort: m.containerPort,
      protocol: m.protocol,
    };
    if (hostIP !== undefined) mapping.hostIP = hostIP;
    const twin = out.findIndex((o) => hostPortsOverlap(o, mapping));
    if (twin >= 0)
      throw new InvalidArgumentError(
        `${at}: host port ${hostPortText(mapping)} is already taken by ${field}[${twin}]`,
        at,
      );
    out.push(mapping);
  });
  return out;
}

/** A host-network sandbox's addresses: at least one, each an IPv4 or IPv6 address. */
export function validateHostIps(ips: readonly string[], field = 'hostNetwork.ips'): void {
  if (ips.length === 0)
    throw new InvalidArgumentError(
      `${field}: a pod on the host network reports the host's address; give it`,
      field,
    );
  ips.forEach((ip, i) => {
    if (isIP(ip) === 0)
      throw new InvalidArgumentError(`${field}[${i}]: "${ip}" is not an IP address`, `${field}[${i}]`);
  });
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1000,
  kb: 1000,
  ki: 1024,
  kib: 1024,
  m: 1000 ** 2,
  mb: 1000 ** 2,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1000 ** 3,
  gb: 1000 ** 3,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
};

/** "64Mi", "512m", "1G", "1048576" → bytes. Docker's lowercase k/m/g are binary units, as there. */
export function parseBytes(text: string, field: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unitKey = m?.[2] ?? '';
  let mult = UNITS[unitKey.toLowerCase()];
  if (['k', 'm', 'g'].includes(unitKey)) mult = 1024 ** (['k', 'm', 'g'].indexOf(unitKey) + 1);
  if (!m || mult === undefined) {
    throw new InvalidArgumentError(`${field}: "${text}" is not a size (examples: 64Mi, 512m, 1G)`, field);
  }
  return Math.floor(Number(m[1]) * mult);
}

/**
 * POSIX-ish user and group names (letters, digits, '.', '_', '-'), as useradd takes them; not
 * starting with '-', so that "-1" is never taken for a name.
 */
const ID_NAME_RE = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/;
const MAX_ID = 0xfffffffe; // (uid_t)-1 means "unchanged" to the kernel
/** The helper's limit on added groups (skiff-helper.c MAX_GROUP_ADD). */
export const MAX_GROUP_ADD = 64;

/** One side of NAME|UID[:GROUP|GID]: a number, or a name the container's files resolve. */
function parseId(
  text: string,
  kind: 'user' | 'group',
  whole: string,
  field: string,
): { id?: number; name?: string } {
  if (/^\d+$/.test(text)) {
    const id = Number(text);
    if (id > MAX_ID)
      throw new InvalidArgumentError(
        `${field}: ${kind} id ${text} in "${whole}" is out of range (at most ${MAX_ID})`,
        field,
      );
    return { id };
  }
  if (!ID_NAME_RE.test(text))
    throw new InvalidArgumentError(
      `${field}: "${whole}" must be NAME|UID[:GROUP|GID]; the ${kind} "${text}" is not a number or a name (letters, digits, '.', '_', '-' but not first, at most 32)`,
      field,
    );
  return { name: text };
}

/** What a user asked a process to run as; names are resolved later, inside the container. */
export interface ParsedUser {
  uid?: number;
  userName?: string;
  gid?: number;
  groupName?: string;
}

/**
 * "NAME|UID[:GROUP|GID]" → its parts (syntax only: names are resolved by the helper from the
 * container's own /etc/passwd and /etc/group, which are not readable from here). "" is the
 * default user, uid 0.
 */
export function parseUser(text: string, field = 'user'): ParsedUser {
  noNul(text, field);
  if (text === '') return { uid: 0 };
  const colon = text.indexOf(':');
  const userPart = colon < 0 ? text : text.slice(0, colon);
  const user = parseId(userPart, 'user', text, field);
  const out: ParsedUser = user.name !== undefined ? { userName: user.name } : { uid: user.id };
  if (colon < 0) return out;
  const group = parseId(text.slice(colon + 1), 'group', text, field);
  return group.name !== undefined ? { ...out, groupName: group.name } : { ...out, gid: group.id };
}

/** --group-add: each a group name or number. */
export function validateGroupAdd(groups: string[], field = 'group-add'): void {
  if (groups.length > MAX_GROUP_ADD)
    throw new InvalidArgumentError(
      `${field}: ${groups.length} groups; at most ${MAX_GROUP_ADD} can be added`,
      field,
    );
  groups.forEach((g, i) => {
    noNul(g, `${field}[${i}]`);
    parseId(g, 'group', g, `${field}[${i}]`);
  });
}

/** "HOSTDIR:DIR[:ro|rw]" → a volume. */
export function parseVolume(text: string, index: number): VolumeSpec {
  const parts = text.split(':');
  const field = `volume[${index}]`;
  if (parts.length < 2 || parts.length > 3 || (parts[2] !== undefined && !['ro', 'rw'].includes(parts[2]))) {
    throw new InvalidArgumentError(`${field}: "${text}" must be HOSTDIR:DIR[:ro|rw]`, field);
  }
  return { source: parts[0]!, target: parts[1]!, readonly: parts[2] === 'ro' };
}

export function parseNetwork(text: string): NetworkMode {
  if (text === 'none') return { mode: 'none' };
  if (text === 'host') return { mode: 'host' };
  if (text.startsWith('container:') && text.length > 'container:'.length) {
    return { mode: 'container', container: text.slice('container:'.length) };
  }
  throw new InvalidArgumentError(`network: "${text}" must be none, host or container:NAME`, 'network');
}
