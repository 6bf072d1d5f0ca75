/** Docker's default hardening (moby oci/defaults.go), the runtime's policy for every container. */

/** CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT
 * MKNOD AUDIT_WRITE SETFCAP: the mask 0x00000000a80425fb. */
export const DEFAULT_CAPABILITIES = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The environment a container sees: the given one plus PATH and HOSTNAME when missing. HOME, when
 * missing, is the user's from the container's /etc/passwd, set by the helper (hasHome).
 */
export function containerEnv(env: string[], hostname: string): string[] {
  const has = (k: string) => env.some((e) => e.startsWith(`${k}=`));
  const out = [...env];
  if (!has('PATH')) out.unshift(DEFAULT_PATH);
  if (!has('HOSTNAME')) out.push(`HOSTNAME=${hostname}`);
  return out;
}

/** Whether an environment sets HOME (else the helper takes the user's from /etc/passwd). */
export function hasHome(env: string[]): boolean {
  return env.some((e) => e.startsWith('HOME='));
}

/**
 * The files under /etc every container gets bind-mounted from its record (generated per
 * container, or its peer's with --network container:C); /etc/resolv.conf is added when the record
 * has its own (a pod sandbox's) or with the host's network. Images' init layers hold their mount points (images/init-layer.ts).
 */
export const ETC_FILES_ALWAYS_MOUNTED = ['hosts', 'hostname'] as const;

export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_MAX_FILES = 2;
