/**
 * Linux capabilities by name, and a container's set from Docker's default plus what is added and
 * dropped (`docker run --cap-add/--cap-drop`, Kubernetes' securityContext.capabilities). Pure but
 * for the capabilities this process holds, read once.
 *
 * Names are as Docker and Kubernetes write them, with or without `CAP_`, in any case (`NET_ADMIN`,
 * `cap_net_admin`); `ALL` means every capability the runtime itself holds (heldCapabilities). The order is containerd's (CRI),
 * so that a Kubernetes manifest means here what it means on a containerd node: add ALL, then drop
 * ALL, then the named additions, then the named drops. So `add: [ALL], drop: [NET_RAW]` is all but
 * NET_RAW, `drop: [ALL], add: [NET_BIND_SERVICE]` is NET_BIND_SERVICE alone, and a name both added
 * and dropped is dropped.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../../../proto/errors.js';
import { DEFAULT_CAPABILITIES } from './defaults.js';

/** linux/capability.h, by number (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40). */
export const CAPABILITY_NAMES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
] as const;

export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

/** `NET_ADMIN`, `CAP_NET_ADMIN`, `net_admin` → 12; undefined for a name no kernel has. */
export function capabilityNumber(name: string): number | undefined {
  const upper = name.toUpperCase();
  const bare = upper.startsWith('CAP_') ? upper.slice(4) : upper;
  const n = (CAPABILITY_NAMES as readonly string[]).indexOf(bare);
  return n < 0 ? undefined : n;
}

/** The name of capability `n` (`NET_ADMIN`), or its number as text for one newer than this table. */
export function capabilityName(n: number): string {
  return CAPABILITY_NAMES[n] ?? String(n);
}

let held: number[] | undefined;

/**
 * The capabilities this process holds (its effective set, /proc/self/status CapEff): what `ALL`
 * means, as containerd's `cap.Current()` does, since a container can be given no capability its
 * runtime lacks (capset refuses it). On a whole machine that is every capability of the kernel; in
 * a container or a restricted service some are missing (here: SYS_MODULE). Read once.
 */
export function heldCapabilities(): number[] {
  if (held === undefined) {
    let eff = 0n;
    try {
      const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
      eff = m ? BigInt(`0x${m[1]}`) : 0n;
    } catch {
      eff = 0n;
    }
    held = [];
    for (let n = 0; n < 64; n++) if ((eff >> BigInt(n)) & 1n) held.push(n);
  }
  return held;
}

/** Every capability of a kernel whose last one is `last` (0 … last). */
export function allCapabilities(last: number): number[] {
  return Array.from({ length: last + 1 }, (_, i) => i);
}

export interface CapabilityChanges {
  add?: readonly string[];
  drop?: readonly string[];
}

/**
 * The set a container gets: `base` (Docker's default) with `add` and `drop` applied in
 * containerd's order (see the module comment), sorted. `held` is what the runtime holds (default:
 * this process's), which `ALL` means and which bounds what may be added by name. An unknown name,
 * or one the runtime lacks, is an InvalidArgumentError naming `field.add[i]` / `field.drop[i]`.
 */
export function resolveCapabilities(
  changes: CapabilityChanges,
  options: { base?: readonly number[]; held?: readonly number[]; field?: string } = {},
): number[] {
  const field = options.field ?? 'capabilities';
  const held = options.held ?? heldCapabilities();
  const parse = (list: readonly string[] | undefined, which: 'add' | 'drop'): (number | 'ALL')[] =>
    (list ?? []).map((name, i) => {
      if (name.toUpperCase() === 'ALL') return 'ALL';
      const n = capabilityNumber(name);
      if (n === undefined)
        throw new InvalidArgumentError(
          `${field}.${which}[${i}]: "${name}" is not a Linux capability (e.g. NET_ADMIN, SYS_TIME, ALL)`,
          `${field}.${which}[${i}]`,
        );
      if (which === 'add' && !held.includes(n))
        throw new InvalidArgumentError(
          `${field}.${which}[${i}]: ${capabilityName(n)} cannot be given: this runtime does not hold it itself (it runs without CAP_${capabilityName(n)})`,
          `${field}.${which}[${i}]`,
        );
      return n;
    });
  const add = parse(changes.add, 'add');
  const drop = parse(changes.drop, 'drop');
  const set = new Set(options.base ?? DEFAULT_CAPABILITIES);
  if (add.includes('ALL')) for (const n of held) set.add(n);
  if (drop.includes('ALL')) set.clear();
  for (const n of add) if (n !== 'ALL') set.add(n);
  for (const n of drop) if (n !== 'ALL') set.delete(n);
  return [...set].sort((a, b) => a - b);
}
