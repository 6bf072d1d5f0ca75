/**
 * The default seccomp profile, Docker's (moby profiles/seccomp/default.json) for x86_64, and its
 * compilation to the classic BPF program skiff-helper installs as the last step before execve.
 *
 * An allowlist, as Docker's is, rather than a denylist of what Docker leaves out: a denylist
 * would let every system call added after it was written through (listns, lsm_config_*...),
 * where an allowlist refuses them until someone decides. It is Docker's list resolved for the
 * capabilities a container has, as Docker resolves it: the entries Docker keys on a capability
 * (CAPABILITY_SYSCALLS below) are allowed when the container has it. With the default set that is
 * only SYS_CHROOT of them (defaults.ts), so chroot is allowed and mount, unshare, setns, bpf,
 * perf_event_open, reboot, the module calls, iopl/ioperm, settimeofday/clock_settime, ptrace's
 * CAP_SYS_PTRACE extras (kcmp, pidfd_getfd, process_madvise), the NUMA policy calls, syslog, acct,
 * vhangup and open_by_handle_at are not; a container given SYS_ADMIN may mount, unshare and clone
 * new namespaces (clone3 too), one given SYS_TIME may set the clock. ptrace and
 * process_vm_readv/writev are allowed to all (Docker's minKernel 4.8). Each distinct set compiles
 * once per process (defaultSeccompFilter).
 * Where Docker has changed since: io_uring_* are refused (moby#46762 dropped them for Docker 25),
 * and calls newer than the profile that are the unprivileged counterparts of allowed ones
 * (fchmodat2, the futex2 calls, the *xattrat calls, cachestat, map_shadow_stack, mseal,
 * file_getattr/file_setattr) are allowed; the mount and LSM ones (statmount, listmount,
 * open_tree_attr, lsm_*) and uprobe/uretprobe are not.
 *
 * What a refused call returns: EPERM, as Docker's defaultErrnoRet. Numbers the kernel table below
 * does not name (gaps, and calls newer than it) return ENOSYS, as runc does, so a libc that
 * probes a new call falls back to an old one instead of failing. clone3 returns ENOSYS too
 * without SYS_ADMIN (Docker): its flags are in memory a filter cannot read, and glibc then falls
 * back to clone, whose flags are checked. Any architecture but x86_64 (i386 via int 0x80) and the
 * x32 ABI (numbers with bit 30 set) kill the process: the numbers below mean nothing there.
 */
import { DEFAULT_CAPABILITIES } from './defaults.js';

/** The x86_64 system call numbers, from the kernel's arch/x86/entry/syscalls/syscall_64.tbl
 * (common and 64 entries, through Linux 6.18; the x32-only 512-547 are left out). */
export const SYSCALLS_X86_64: Readonly<Record<string, number>> = Object.freeze({
  read: 0,
  write: 1,
  open: 2,
  close: 3,
  stat: 4,
  fstat: 5,
  lstat: 6,
  poll: 7,
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  brk: 12,
  rt_sigaction: 13,
  rt_sigprocmask: 14,
  rt_sigreturn: 15,
  ioctl: 16,
  pread64: 17,
  pwrite64: 18,
  readv: 19,
  writev: 20,
  access: 21,
  pipe: 22,
  select: 23,
  sched_yield: 24,
  mremap: 25,
  msync: 26,
  mincore: 27,
  madvise: 28,
  shmget: 29,
  shmat: 30,
  shmctl: 31,
  dup: 32,
  dup2: 33,
  pause: 34,
  nanosleep: 35,
  getitimer: 36,
  alarm: 37,
  setitimer: 38,
  getpid: 39,
  sendfile: 40,
  socket: 41,
  connect: 42,
  accept: 43,
  sendto: 44,
  recvfrom: 45,
  sendmsg: 46,
  recvmsg: 47,
  shutdown: 48,
  bind: 49,
  listen: 50,
  getsockname: 51,
  getpeername: 52,
  socketpair: 53,
  setsockopt: 54,
  getsockopt: 55,
  clone: 56,
  fork: 57,
  vfork: 58,
  execve: 59,
  exit: 60,
  wait4: 61,
  kill: 62,
  uname: 63,
  semget: 64,
  semop: 65,
  semctl: 66,
  shmdt: 67,
  msgget: 68,
  msgsnd: 69,
  msgrcv: 70,
  msgctl: 71,
  fcntl: 72,
  flock: 73,
  fsync: 74,
  fdatasync: 75,
  truncate: 76,
  ftruncate: 77,
  getdents: 78,
  getcwd: 79,
  chdir: 80,
  fchdir: 81,
  rename: 82,
  mkdir: 83,
  rmdir: 84,
  creat: 85,
  link: 86,
  unlink: 87,
  symlink: 88,
  readlink: 89,
  chmod: 90,
  fchmod: 91,
  chown: 92,
  fchown: 93,
  lchown: 94,
  umask: 95,
  gettimeofday: 96,
  getrlimit: 97,
  getrusage: 98,
  sysinfo: 99,
  times: 100,
  ptrace: 101,
  getuid: 102,
  syslog: 103,
  getgid: 104,
  setuid: 105,
  setgid: 106,
  geteuid: 107,
  getegid: 108,
  setpgid: 109,
  getppid: 110,
  getpgrp: 111,
  setsid: 112,
  setreuid: 113,
  setregid: 114,
  getgroups: 115,
  setgroups: 116,
  setresuid: 117,
  getresuid: 118,
  setresgid: 119,
  getresgid: 120,
  getpgid: 121,
  setfsuid: 122,
  setfsgid: 123,
  getsid: 124,
  capget: 125,
  capset: 126,
  rt_sigpending: 127,
  rt_sigtimedwait: 128,
  rt_sigqueueinfo: 129,
  rt_sigsuspend: 130,
  sigaltstack: 131,
  utime: 132,
  mknod: 133,
  uselib: 134,
  personality: 135,
  ustat: 136,
  statfs: 137,
  fstatfs: 138,
  sysfs: 139,
  getpriority: 140,
  setpriority: 141,
  sched_setparam: 142,
  sched_getparam: 143,
  sched_setscheduler: 144,
  sched_getscheduler: 145,
  sched_get_priority_max: 146,
  sched_get_priority_min: 147,
  sched_rr_get_interval: 148,
  mlock: 149,
  munlock: 150,
  mlockall: 151,
  munlockall: 152,
  vhangup: 153,
  modify_ldt: 154,
  pivot_root: 155,
  _sysctl: 156,
  prctl: 157,
  arch_prctl: 158,
  adjtimex: 159,
  setrlimit: 160,
  chroot: 161,
  sync: 162,
  acct: 163,
  settimeofday: 164,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  sethostname: 170,
  setdomainname: 171,
  iopl: 172,
  ioperm: 173,
  create_module: 174,
  init_module: 175,
  delete_module: 176,
  get_kernel_syms: 177,
  query_module: 178,
  quotactl: 179,
  nfsservctl: 180,
  getpmsg: 181,
  putpmsg: 182,
  afs_syscall: 183,
  tuxcall: 184,
  security: 185,
  gettid: 186,
  readahead: 187,
  setxattr: 188,
  lsetxattr: 189,
  fsetxattr: 190,
  getxattr: 191,
  lgetxattr: 192,
  fgetxattr: 193,
  listxattr: 194,
  llistxattr: 195,
  flistxattr: 196,
  removexattr: 197,
  lremovexattr: 198,
  fremovexattr: 199,
  tkill: 200,
  time: 201,
  futex: 202,
  sched_setaffinity: 203,
  sched_getaffinity: 204,
  set_thread_area: 205,
  io_setup: 206,
  io_destroy: 207,
  io_getevents: 208,
  io_submit: 209,
  io_cancel: 210,
  get_thread_area: 211,
  lookup_dcookie: 212,
  epoll_create: 213,
  epoll_ctl_old: 214,
  epoll_wait_old: 215,
  remap_file_pages: 216,
  getdents64: 217,
  set_tid_address: 218,
  restart_syscall: 219,
  semtimedop: 220,
  fadvise64: 221,
  timer_create: 222,
  timer_settime: 223,
  timer_gettime: 224,
  timer_getoverrun: 225,
  timer_delete: 226,
  clock_settime: 227,
  clock_gettime: 228,
  clock_getres: 229,
  clock_nanosleep: 230,
  exit_group: 231,
  epoll_wait: 232,
  epoll_ctl: 233,
  tgkill: 234,
  utimes: 235,
  vserver: 236,
  mbind: 237,
  set_mempolicy: 238,
  get_mempolicy: 239,
  mq_open: 240,
  mq_unlink: 241,
  mq_timedsend: 242,
  mq_timedreceive: 243,
  mq_notify: 244,
  mq_getsetattr: 245,
  kexec_load: 246,
  waitid: 247,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  ioprio_set: 251,
  ioprio_get: 252,
  inotify_init: 253,
  inotify_add_watch: 254,
  inotify_rm_watch: 255,
  migrate_pages: 256,
  openat: 257,
  mkdirat: 258,
  mknodat: 259,
  fchownat: 260,
  futimesat: 261,
  newfstatat: 262,
  unlinkat: 263,
  renameat: 264,
  linkat: 265,
  symlinkat: 266,
  readlinkat: 267,
  fchmodat: 268,
  faccessat: 269,
  pselect6: 270,
  ppoll: 271,
  unshare: 272,
  set_robust_list: 273,
  get_robust_list: 274,
  splice: 275,
  tee: 276,
  sync_file_range: 277,
  vmsplice: 278,
  move_pages: 279,
  utimensat: 280,
  epoll_pwait: 281,
  signalfd: 282,
  timerfd_create: 283,
  eventfd: 284,
  fallocate: 285,
  timerfd_settime: 286,
  timerfd_gettime: 287,
  accept4: 288,
  signalfd4: 289,
  eventfd2: 290,
  epoll_create1: 291,
  dup3: 292,
  pipe2: 293,
  inotify_init1: 294,
  preadv: 295,
  pwritev: 296,
  rt_tgsigqueueinfo: 297,
  perf_event_open: 298,
  recvmmsg: 299,
  fanotify_init: 300,
  fanotify_mark: 301,
  prlimit64: 302,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  clock_adjtime: 305,
  syncfs: 306,
  sendmmsg: 307,
  setns: 308,
  getcpu: 309,
  process_vm_readv: 310,
  process_vm_writev: 311,
  kcmp: 312,
  finit_module: 313,
  sched_setattr: 314,
  sched_getattr: 315,
  renameat2: 316,
  seccomp: 317,
  getrandom: 318,
  memfd_create: 319,
  kexec_file_load: 320,
  bpf: 321,
  execveat: 322,
  userfaultfd: 323,
  membarrier: 324,
  mlock2: 325,
  copy_file_range: 326,
  preadv2: 327,
  pwritev2: 328,
  pkey_mprotect: 329,
  pkey_alloc: 330,
  pkey_free: 331,
  statx: 332,
  io_pgetevents: 333,
  rseq: 334,
  uretprobe: 335,
  uprobe: 336,
  pidfd_send_signal: 424,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  pidfd_open: 434,
  clone3: 435,
  close_range: 436,
  openat2: 437,
  pidfd_getfd: 438,
  faccessat2: 439,
  process_madvise: 440,
  epoll_pwait2: 441,
  mount_setattr: 442,
  quotactl_fd: 443,
  landlock_create_ruleset: 444,
  landlock_add_rule: 445,
  landlock_restrict_self: 446,
  memfd_secret: 447,
  process_mrelease: 448,
  futex_waitv: 449,
  set_mempolicy_home_node: 450,
  cachestat: 451,
  fchmodat2: 452,
  map_shadow_stack: 453,
  futex_wake: 454,
  futex_wait: 455,
  futex_requeue: 456,
  statmount: 457,
  listmount: 458,
  lsm_get_self_attr: 459,
  lsm_set_self_attr: 460,
  lsm_list_modules: 461,
  mseal: 462,
  setxattrat: 463,
  getxattrat: 464,
  listxattrat: 465,
  removexattrat: 466,
  open_tree_attr: 467,
  file_getattr: 468,
  file_setattr: 469,
});

/** Docker's unconditional allowlist, as it applies on x86_64 (its 32-bit-only names dropped). */
const ALLOWED = [
  'accept',
  'accept4',
  'access',
  'adjtimex', // read-only without CAP_SYS_TIME, which the kernel checks
  'alarm',
  'bind',
  'brk',
  'capget',
  'capset',
  'chdir',
  'chmod',
  'chown',
  'clock_adjtime',
  'clock_getres',
  'clock_gettime',
  'clock_nanosleep',
  'close',
  'close_range',
  'connect',
  'copy_file_range',
  'creat',
  'dup',
  'dup2',
  'dup3',
  'epoll_create',
  'epoll_create1',
  'epoll_ctl',
  'epoll_ctl_old',
  'epoll_pwait',
  'epoll_pwait2',
  'epoll_wait',
  'epoll_wait_old',
  'eventfd',
  'eventfd2',
  'execve',
  'execveat',
  'exit',
  'exit_group',
  'faccessat',
  'faccessat2',
  'fadvise64',
  'fallocate',
  'fanotify_mark',
  'fchdir',
  'fchmod',
  'fchmodat',
  'fchown',
  'fchownat',
  'fcntl',
  'fdatasync',
  'fgetxattr',
  'flistxattr',
  'flock',
  'fork',
  'fremovexattr',
  'fsetxattr',
  'fstat',
  'fstatfs',
  'fsync',
  'ftruncate',
  'futex',
  'futex_waitv',
  'futimesat',
  'getcpu',
  'getcwd',
  'getdents',
  'getdents64',
  'getegid',
  'geteuid',
  'getgid',
  'getgroups',
  'getitimer',
  'getpeername',
  'getpgid',
  'getpgrp',
  'getpid',
  'getppid',
  'getpriority',
  'getrandom',
  'getresgid',
  'getresuid',
  'getrlimit',
  'get_robust_list',
  'getrusage',
  'getsid',
  'getsockname',
  'getsockopt',
  'get_thread_area',
  'gettid',
  'gettimeofday',
  'getuid',
  'getxattr',
  'inotify_add_watch',
  'inotify_init',
  'inotify_init1',
  'inotify_rm_watch',
  'io_cancel',
  'ioctl',
  'io_destroy',
  'io_getevents',
  'io_pgetevents',
  'ioprio_get',
  'ioprio_set',
  'io_setup',
  'io_submit',
  'kill',
  'landlock_add_rule',
  'landlock_create_ruleset',
  'landlock_restrict_self',
  'lchown',
  'lgetxattr',
  'link',
  'linkat',
  'listen',
  'listxattr',
  'llistxattr',
  'lremovexattr',
  'lseek',
  'lsetxattr',
  'lstat',
  'madvise',
  'membarrier',
  'memfd_create',
  'memfd_secret',
  'mincore',
  'mkdir',
  'mkdirat',
  'mknod',
  'mknodat',
  'mlock',
  'mlock2',
  'mlockall',
  'mmap',
  'mprotect',
  'mq_getsetattr',
  'mq_notify',
  'mq_open',
  'mq_timedreceive',
  'mq_timedsend',
  'mq_unlink',
  'mremap',
  'msgctl',
  'msgget',
  'msgrcv',
  'msgsnd',
  'msync',
  'munlock',
  'munlockall',
  'munmap',
  'name_to_handle_at',
  'nanosleep',
  'newfstatat',
  'open',
  'openat',
  'openat2',
  'pause',
  'pidfd_open',
  'pidfd_send_signal',
  'pipe',
  'pipe2',
  'pkey_alloc',
  'pkey_free',
  'pkey_mprotect',
  'poll',
  'ppoll',
  'prctl',
  'pread64',
  'preadv',
  'preadv2',
  'prlimit64',
  'process_mrelease',
  'pselect6',
  'pwrite64',
  'pwritev',
  'pwritev2',
  'read',
  'readahead',
  'readlink',
  'readlinkat',
  'readv',
  'recvfrom',
  'recvmmsg',
  'recvmsg',
  'remap_file_pages',
  'removexattr',
  'rename',
  'renameat',
  'renameat2',
  'restart_syscall',
  'rmdir',
  'rseq',
  'rt_sigaction',
  'rt_sigpending',
  'rt_sigprocmask',
  'rt_sigqueueinfo',
  'rt_sigreturn',
  'rt_sigsuspend',
  'rt_sigtimedwait',
  'rt_tgsigqueueinfo',
  'sched_getaffinity',
  'sched_getattr',
  'sched_getparam',
  'sched_get_priority_max',
  'sched_get_priority_min',
  'sched_getscheduler',
  'sched_rr_get_interval',
  'sched_setaffinity',
  'sched_setattr',
  'sched_setparam',
  'sched_setscheduler',
  'sched_yield',
  'seccomp',
  'select',
  'semctl',
  'semget',
  'semop',
  'semtimedop',
  'sendfile',
  'sendmmsg',
  'sendmsg',
  'sendto',
  'setfsgid',
  'setfsuid',
  'setgid',
  'setgroups',
  'setitimer',
  'setpgid',
  'setpriority',
  'setregid',
  'setresgid',
  'setresuid',
  'setreuid',
  'setrlimit',
  'set_robust_list',
  'setsid',
  'setsockopt',
  'set_thread_area',
  'set_tid_address',
  'setuid',
  'setxattr',
  'shmat',
  'shmctl',
  'shmdt',
  'shmget',
  'shutdown',
  'sigaltstack',
  'signalfd',
  'signalfd4',
  'socketpair',
  'splice',
  'stat',
  'statfs',
  'statx',
  'symlink',
  'symlinkat',
  'sync',
  'sync_file_range',
  'syncfs',
  'sysinfo',
  'tee',
  'tgkill',
  'time',
  'timer_create',
  'timer_delete',
  'timer_getoverrun',
  'timer_gettime',
  'timer_settime',
  'timerfd_create',
  'timerfd_gettime',
  'timerfd_settime',
  'times',
  'tkill',
  'truncate',
  'umask',
  'uname',
  'unlink',
  'unlinkat',
  'utime',
  'utimensat',
  'utimes',
  'vfork',
  'vmsplice',
  'wait4',
  'waitid',
  'write',
  'writev',
  // Docker's minKernel 4.8 entries (ptrace cannot bypass seccomp since then)
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  // Docker's amd64 entries
  'arch_prctl',
  'modify_ldt',
  // newer than Docker's list: unprivileged counterparts of calls it allows (see the module comment)
  'cachestat',
  'fchmodat2',
  'map_shadow_stack',
  'futex_wake',
  'futex_wait',
  'futex_requeue',
  'mseal',
  'setxattrat',
  'getxattrat',
  'listxattrat',
  'removexattrat',
  'file_getattr',
  'file_setattr',
] as const;

/** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
 * CLONE_NEWNET: Docker's mask for clone without CAP_SYS_ADMIN. */
export const CLONE_NAMESPACE_FLAGS = 0x7e020000;
/** Docker's allowed personality(2) values: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
 * and 0xffffffff (a query). */
const PERSONALITY_ALLOWED = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
const AF_VSOCK = 40;

export const EPERM = 1;
export const ENOSYS = 38;
export const AUDIT_ARCH_X86_64 = 0xc000003e;
/** The x32 ABI's bit in the system call number. */
export const X32_SYSCALL_BIT = 0x40000000;

/** SECCOMP_RET_* values (linux/seccomp.h). */
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;

/** What the filter does with one system call number. */
export type SyscallRule =
  | { action: 'allow' }
  | { action: 'errno'; errno: number }
  | { action: 'kill' }
  /** allowed when the low 32 bits of args[0] are none of these values */
  | { action: 'allow-unless-arg0'; values: number[] }
  /** allowed when args[0] is one of these values (high 32 bits zero) */
  | { action: 'allow-if-arg0'; values: number[] }
  /** allowed when args[0] has none of these bits */
  | { action: 'allow-unless-arg0-bits'; mask: number };

export interface SeccompProfile {
  /** AUDIT_ARCH_* the numbers belong to; any other architecture is killed. */
  auditArch: number;
  /** Per known number; numbers absent here (gaps, newer calls) get ENOSYS. */
  rules: Map<number, SyscallRule>;
}

/**
 * Docker's entries keyed on a capability (its "includes": { "caps" }), by capability number:
 * allowed for a container that has it.
 */
const CAPABILITY_SYSCALLS: ReadonlyMap<number, readonly string[]> = new Map([
  [2, ['open_by_handle_at']], // DAC_READ_SEARCH
  [
    21, // SYS_ADMIN (clone and clone3 too: see defaultProfileX86_64)
    [
      'bpf',
      'fanotify_init',
      'fsconfig',
      'fsmount',
      'fsopen',
      'fspick',
      'lookup_dcookie',
      'mount',
      'mount_setattr',
      'move_mount',
      'open_tree',
      'perf_event_open',
      'quotactl',
      'quotactl_fd',
      'setdomainname',
      'sethostname',
      'setns',
      'syslog',
      'umount2',
      'unshare',
    ],
  ],
  [22, ['reboot']], // SYS_BOOT
  [18, ['chroot']], // SYS_CHROOT
  [16, ['delete_module', 'init_module', 'finit_module']], // SYS_MODULE
  [20, ['acct']], // SYS_PACCT
  [19, ['kcmp', 'pidfd_getfd', 'process_madvise']], // SYS_PTRACE (ptrace itself: minKernel 4.8)
  [17, ['iopl', 'ioperm']], // SYS_RAWIO
  [25, ['settimeofday', 'clock_settime']], // SYS_TIME
  [26, ['vhangup']], // SYS_TTY_CONFIG
  [23, ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node']], // SYS_NICE
  [34, ['syslog']], // SYSLOG
  [39, ['bpf']], // BPF
  [38, ['perf_event_open']], // PERFMON
]);

const SYS_ADMIN = 21;

/** Docker's default profile for x86_64, resolved for a container with `capabilities`. */
export function defaultProfileX86_64(capabilities: readonly number[] = DEFAULT_CAPABILITIES): SeccompProfile {
  const rules = new Map<number, SyscallRule>();
  const denied: SyscallRule = { action: 'errno', errno: EPERM };
  for (const nr of Object.values(SYSCALLS_X86_64)) rules.set(nr, denied);
  const nr = (name: string) => {
    const n = SYSCALLS_X86_64[name];
    if (n === undefined) throw new Error(`seccomp profile: no x86_64 system call named ${name}`);
    return n;
  };
  for (const name of ALLOWED) rules.set(nr(name), { action: 'allow' });
  rules.set(nr('socket'), { action: 'allow-unless-arg0', values: [AF_VSOCK] });
  rules.set(nr('personality'), { action: 'allow-if-arg0', values: PERSONALITY_ALLOWED });
  for (const cap of capabilities)
    for (const name of CAPABILITY_SYSCALLS.get(cap) ?? []) rules.set(nr(name), { action: 'allow' });
  if (capabilities.includes(SYS_ADMIN)) {
    rules.set(nr('clone'), { action: 'allow' });
    rules.set(nr('clone3'), { action: 'allow' });
  } else {
    rules.set(nr('clone'), { action: 'allow-unless-arg0-bits', mask: CLONE_NAMESPACE_FLAGS });
    rules.set(nr('clone3'), { action: 'errno', errno: ENOSYS });
  }
  return { auditArch: AUDIT_ARCH_X86_64, rules };
}

/** One classic BPF instruction (struct sock_filter). */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export const BPF_LD_W_ABS = 0x20;
export const BPF_JMP_JA = 0x05;
export const BPF_JMP_JEQ_K = 0x15;
export const BPF_JMP_JGE_K = 0x35;
export const BPF_JMP_JSET_K = 0x45;
export const BPF_RET_K = 0x06;
/** struct seccomp_data offsets: nr, arch, args[0] low and high words (little-endian). */
export const DATA_NR = 0;
export const DATA_ARCH = 4;
export const DATA_ARG0_LO = 16;
export const DATA_ARG0_HI = 20;

const ld = (offset: number): BpfInsn => ({ code: BPF_LD_W_ABS, jt: 0, jf: 0, k: offset });
const ret = (value: number): BpfInsn => ({ code: BPF_RET_K, jt: 0, jf: 0, k: value >>> 0 });
const jump = (code: number, k: number, jt: number, jf: number): BpfInsn => ({ code, jt, jf, k: k >>> 0 });

function returnValue(rule: { action: 'allow' } | { action: 'errno'; errno: number } | { action: 'kill' }) {
  if (rule.action === 'allow') return SECCOMP_RET_ALLOW;
  if (rule.action === 'kill') return SECCOMP_RET_KILL_PROCESS;
  return SECCOMP_RET_ERRNO | rule.errno;
}

const DENY = SECCOMP_RET_ERRNO | EPERM;

/** The instructions deciding one rule; the accumulator holds the number on entry. */
function ruleCode(rule: SyscallRule): BpfInsn[] {
  switch (rule.action) {
    case 'allow':
    case 'errno':
    case 'kill':
      return [ret(returnValue(rule))];
    case 'allow-unless-arg0': {
      const n = rule.values.length;
      // each match jumps to the deny at n+1; falling through all of them reaches the allow at n
      return [
        ld(DATA_ARG0_LO),
        ...rule.values.map((v, i) => jump(BPF_JMP_JEQ_K, v, n - i, 0)),
        ret(SECCOMP_RET_ALLOW),
        ret(DENY),
      ];
    }
    case 'allow-if-arg0': {
      const n = rule.values.length;
      // layout: ld hi, jeq 0, ld lo, n x jeq, deny (3+n), allow (4+n)
      return [
        ld(DATA_ARG0_HI),
        jump(BPF_JMP_JEQ_K, 0, 0, n + 1),
        ld(DATA_ARG0_LO),
        ...rule.values.map((v, i) => jump(BPF_JMP_JEQ_K, v, n - i, 0)),
        ret(DENY),
        ret(SECCOMP_RET_ALLOW),
      ];
    }
    case 'allow-unless-arg0-bits':
      return [ld(DATA_ARG0_LO), jump(BPF_JMP_JSET_K, rule.mask, 1, 0), ret(SECCOMP_RET_ALLOW), ret(DENY)];
  }
}

interface Range {
  from: number;
  rule: SyscallRule;
}

function sameReturn(a: SyscallRule, b: SyscallRule): boolean {
  if (a.action === 'allow' || a.action === 'kill') return a.action === b.action;
  if (a.action === 'errno') return b.action === 'errno' && a.errno === b.errno;
  return false;
}

/** The whole 32-bit number space as ranges of one rule each, adjacent equal returns merged. */
function ranges(profile: SeccompProfile): Range[] {
  const unknown: SyscallRule = { action: 'errno', errno: ENOSYS };
  const points: Range[] = [];
  const known = [...profile.rules.keys()].sort((a, b) => a - b);
  let next = 0;
  for (const nr of known) {
    if (nr < 0 || nr >= X32_SYSCALL_BIT || !Number.isInteger(nr))
      throw new Error(`seccomp profile: system call number ${nr} out of range`);
    if (nr > next) points.push({ from: next, rule: unknown });
    points.push({ from: nr, rule: profile.rules.get(nr)! });
    next = nr + 1;
  }
  points.push({ from: next, rule: unknown });
  points.push({ from: X32_SYSCALL_BIT, rule: { action: 'kill' } });
  points.push({ from: 0x80000000, rule: unknown });
  const merged: Range[] = [];
  for (const r of points) {
    const last = merged[merged.length - 1];
    if (last && sameReturn(last.rule, r.rule)) continue;
    merged.push(r);
  }
  return merged;
}

/** Instructions searchCode emits for ranges [lo, hi). */
function searchSize(rs: Range[], lo: number, hi: number): number {
  if (hi - lo === 1) return ruleCode(rs[lo]!.rule).length;
  const mid = (lo + hi) >> 1;
  const below = searchSize(rs, lo, mid);
  return (below <= 255 ? 1 : 2) + below + searchSize(rs, mid, hi);
}

/** A binary search over ranges [lo, hi): log2(ranges) comparisons for any number. */
function searchCode(rs: Range[], lo: number, hi: number, out: BpfInsn[]): void {
  if (hi - lo === 1) {
    for (const insn of ruleCode(rs[lo]!.rule)) out.push(insn);
    return;
  }
  const mid = (lo + hi) >> 1;
  const below = searchSize(rs, lo, mid);
  const k = rs[mid]!.from;
  // conditional jumps reach 255 instructions; past that, an unconditional one carries it
  if (below <= 255) out.push(jump(BPF_JMP_JGE_K, k, below, 0));
  else out.push(jump(BPF_JMP_JGE_K, k, 0, 1), { code: BPF_JMP_JA, jt: 0, jf: 0, k: below });
  searchCode(rs, lo, mid, out);
  searchCode(rs, mid, hi, out);
}

/** The filter program: architecture check, then the search over the system call number. */
export function compileSeccompFilter(profile: SeccompProfile): BpfInsn[] {
  const program = [
    ld(DATA_ARCH),
    jump(BPF_JMP_JEQ_K, profile.auditArch, 1, 0),
    ret(SECCOMP_RET_KILL_PROCESS),
    ld(DATA_NR),
  ];
  const rs = ranges(profile);
  searchCode(rs, 0, rs.length, program);
  return program;
}

/** struct sock_filter[] as the kernel reads it (host byte order, little-endian on x86_64). */
export function encodeSeccompFilter(program: BpfInsn[]): Buffer {
  const words = new Uint32Array(program.length * 2);
  program.forEach((insn, i) => {
    words[i * 2] = insn.code | (insn.jt << 16) | (insn.jf << 24);
    words[i * 2 + 1] = insn.k;
  });
  return Buffer.from(words.buffer);
}

export type SeccompMode = 'default' | 'unconfined';

/** Compiled filters by capability set (a process sees a handful of distinct sets). */
const filters = new Map<string, Buffer>();

/**
 * The encoded default filter for the machine's architecture, resolved for a container with
 * `capabilities` (Docker's default set when absent), or undefined where skiff has no profile (the
 * caller starts the container without one). Compiled once per process and set.
 */
export function defaultSeccompFilter(
  arch: string = process.arch,
  capabilities: readonly number[] = DEFAULT_CAPABILITIES,
): Buffer | undefined {
  if (arch !== 'x64') return undefined;
  const key = [...new Set(capabilities)].sort((a, b) => a - b).join(',');
  let filter = filters.get(key);
  if (!filter) {
    filter = encodeSeccompFilter(compileSeccompFilter(defaultProfileX86_64(capabilities)));
    filters.set(key, filter);
  }
  return filter;
}
