/*
 * skiff-helper: the system calls Node cannot make, executed mechanically from a spec that
 * TypeScript writes (node-agent/runtime/sys/helper-spec.ts). No policy lives here: every path,
 * namespace, capability and limit comes from the spec.
 *
 *   skiff-helper launcher [WARM CGROUP_PARENT...]
 *                            a small long-lived process that starts shims for its caller: reads
 *                            "ID\tSPEC\0" requests on stdin and answers "ID\t" + the shim's
 *                            report line on stdout, as each shim reports (several at once). A
 *                            shim: detach (setsid, double fork), start the container, report
 *                            "ok PID SHIM_PID" or "error STEP\tPATH\tERRNO\tMESSAGE", then
 *                            monitor it: write its stdout/stderr as CRI log lines, reap, write
 *                            the exit file, exit. The launcher exits at EOF on stdin. With WARM,
 *                            it keeps that many warm shims parked (see run_warm_shim).
 *   skiff-helper exec SPEC   enter a running container (setns, cgroups, fork into its pid ns),
 *                            report on fd 3 as above, then wait and exit with the process's
 *                            status (128+signal when killed). stdio is the caller's; with a
 *                            terminal in the spec the process gets a new pseudo-terminal of the
 *                            container's devpts instead, whose master stays here: stdin is copied
 *                            to it, its output to stdout, "resize ROWS COLS" lines on fd 4 set its
 *                            size (relay_terminal).
 *   skiff-helper port-forward PID START_TIME PORT
 *                            enter the network namespace of PID (that process, by its start time),
 *                            connect to 127.0.0.1:PORT (else [::1]:PORT), report "ok 0 PID" or the
 *                            failed step on fd 3, then copy stdin to the connection and the
 *                            connection to stdout, each direction ending on its own
 *                            (run_port_forward).
 *   skiff-helper exec-server a long-lived process that runs exec specs for its caller and answers
 *                            with their status and output (see run_exec_server).
 * The launcher, exec and exec-server modes first re-execute from a sealed memfd copy
 * (run_from_sealed_copy).
 *   skiff-helper probe-overlay DIR
 *                            mount DIR/lower, DIR/upper, DIR/work as an overlay that is never
 *                            attached anywhere (it vanishes when the helper exits, whatever
 *                            happens), write DIR-relative "probe" through it, report "ok 0 PID".
 *   skiff-helper dialer NETNS|-
 *                            a small long-lived process in the network namespace NETNS (- : its
 *                            own) that makes TCP connections there for its caller, a Node.js
 *                            process whose IPC channel it was given (NODE_CHANNEL_FD): connects and
 *                            passes the socket as Node passes a net.Socket, or makes a TCP or HTTP
 *                            probe's exchange itself and answers with the result (see run_dialer).
 *                            Exits at EOF on stdin or when the channel closes.
 *   skiff-helper init-layer TYPE SOURCE [OPTION...] -- [FILE...]
 *                            mount an image's prepared init layer (never attached), create in it
 *                            the mount points every container gets (/proc, /sys, /dev and each
 *                            FILE), report "ok 0 PID" (see run_init_layer).
 *
 * The spec is a sequence of NUL-terminated strings: a key followed by a fixed number of values.
 * Built statically so nothing (NSS, libc) is ever loaded from a container's root (CVE-2019-14271).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_ITEMS 512
#define MAX_GROUP_ADD 64
#define REPORT_FD 3

/* ---------- spec ---------- */

struct volume {
  const char *source, *target;
  int readonly;
};
struct rlim {
  int resource;
  rlim_t soft, hard;
};
struct cgroup_limit {
  const char *path, *value;
  int optional; /* absent file (memsw without swap accounting): skipped */
};

struct spec {
  const char *rootfs_path;    /* where the root mount is attached before pivot_root */
  const char *rootfs_type;    /* "overlay" (new mount API) or "bind" */
  const char *rootfs_source;
  const char *rootfs_opts[MAX_ITEMS];
  int n_rootfs_opts;
  int readonly_root;
  const char *hostname;
  const char *cwd;
  const char *env[MAX_ITEMS + 1];
  int n_env;
  const char *argv[MAX_ITEMS + 1];
  int n_argv;
  const char *user; /* NAME|UID[:GROUP|GID], resolved inside the container (resolve_identity) */
  const char *group_add[MAX_GROUP_ADD]; /* group names or numbers added to the supplementary groups */
  int n_group_add;
  int home_from_passwd; /* the environment has no HOME: take the user's from /etc/passwd */
  uint64_t caps;
  int no_new_privs;
  const char *masked[64];
  int n_masked;
  const char *readonly[64];
  int n_readonly;
  const char *cgroups[16];
  int n_cgroups;
  const char *cgroup_mkdirs[32]; /* created in order (parents first) before the limits */
  int n_cgroup_mkdirs;
  struct cgroup_limit cgroup_limits[64];
  int n_cgroup_limits;
  const char *device_cgroups[4]; /* cgroup v2 dirs that get the device filter */
  int n_device_cgroups;
  struct rlim rlimits[16];
  int n_rlimits;
  struct volume volumes[64];
  int n_volumes;
  int new_ns; /* CLONE_NEW* flags to unshare */
  /* the process whose namespaces are joined, as the runtime identified it, and which ones */
  int join_pid;
  const char *join_start_time;
  const char *joins[8];
  int n_joins;
  const char *net_path; /* a network namespace to enter by its path (a host that is a namespace) */
  int lo_up;
  int sys_rw; /* /sys read-write (a privileged container) */
  const char *log_path;
  long long log_max_bytes;
  int log_max_files;
  const char *exit_path;
  struct sock_filter *seccomp; /* installed last before execve; NULL: none */
  unsigned short n_seccomp;
  /* the process gets a new pseudo-terminal (its master kept by the shim or the exec helper) */
  int tty;
  unsigned short tty_rows, tty_cols; /* its first size; 0: the kernel's */
  /* a container's stdin stays open: a pipe the shim holds, fed from the FIFO at stdin_path */
  int open_stdin;
  const char *stdin_path;
  const char *control_path; /* a FIFO of "resize ROWS COLS" and "close-stdin" lines, for the shim */
};

#define REPORT_FD_EARLY 3
static void die_usage(const char *msg) {
  char line[512];
  int n = snprintf(line, sizeof line, "error\tusage\t\t0\tskiff-helper: %s\n", msg);
  if (write(REPORT_FD_EARLY, line, (size_t)n) < 0 && write(2, line, (size_t)n) < 0) {
  }
  exit(125);
}

static char *read_file_all(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return NULL;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  *len = n;
  return buf;
}

static int ns_flag(const char *name) {
  if (!strcmp(name, "pid")) return CLONE_NEWPID;
  if (!strcmp(name, "mnt")) return CLONE_NEWNS;
  if (!strcmp(name, "uts")) return CLONE_NEWUTS;
  if (!strcmp(name, "ipc")) return CLONE_NEWIPC;
  if (!strcmp(name, "net")) return CLONE_NEWNET;
  if (!strcmp(name, "cgroup")) return CLONE_NEWCGROUP;
  return -1;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* The filter TypeScript compiled (containers/seccomp.ts), as hex of struct sock_filter[]. */
static void parse_seccomp(const char *hex, struct spec *s) {
  size_t len = strlen(hex);
  if (len == 0 || len % (2 * sizeof(struct sock_filter)) != 0 || len / (2 * sizeof(struct sock_filter)) > BPF_MAXINSNS)
    die_usage("spec: bad seccomp filter length");
  size_t n = len / (2 * sizeof(struct sock_filter));
  unsigned char *bytes = malloc(n * sizeof(struct sock_filter));
  if (!bytes) die_usage("spec: no memory for the seccomp filter");
  for (size_t i = 0; i < len / 2; i++) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) die_usage("spec: seccomp filter is not hex");
    bytes[i] = (unsigned char)(hi << 4 | lo);
  }
  s->seccomp = (struct sock_filter *)bytes;
  s->n_seccomp = (unsigned short)n;
}

static void parse_spec(const char *path, struct spec *s) {
  size_t len;
  char *buf = read_file_all(path, &len);
  if (!buf) die_usage("cannot read spec file");
  if (len == 0 || buf[len - 1] != '\0') die_usage("spec is not NUL-terminated");
  const char *tok[8];
  size_t pos = 0;
#define NEXT() (pos < len ? (tok[0] = buf + pos, pos += strlen(buf + pos) + 1, tok[0]) : NULL)
  memset(s, 0, sizeof *s);
  s->log_max_files = 1;
  const char *key;
  while ((key = NEXT()) != NULL) {
    const char *v = NEXT();
    if (!v) die_usage("spec: key without value");
    if (!strcmp(key, "rootfs.path")) s->rootfs_path = v;
    else if (!strcmp(key, "rootfs.type")) s->rootfs_type = v;
    else if (!strcmp(key, "rootfs.source")) s->rootfs_source = v;
    else if (!strcmp(key, "rootfs.option")) {
      if (s->n_rootfs_opts >= MAX_ITEMS) die_usage("spec: too many rootfs options");
      s->rootfs_opts[s->n_rootfs_opts++] = v;
    } else if (!strcmp(key, "readonly_root")) s->readonly_root = atoi(v);
    else if (!strcmp(key, "hostname")) s->hostname = v;
    else if (!strcmp(key, "cwd")) s->cwd = v;
    else if (!strcmp(key, "env")) {
      if (s->n_env >= MAX_ITEMS) die_usage("spec: too many env entries");
      s->env[s->n_env++] = v;
    } else if (!strcmp(key, "arg")) {
      if (s->n_argv >= MAX_ITEMS) die_usage("spec: too many arguments");
      s->argv[s->n_argv++] = v;
    } else if (!strcmp(key, "user")) s->user = v;
    else if (!strcmp(key, "group_add")) {
      if (s->n_group_add >= MAX_GROUP_ADD) die_usage("spec: too many added groups");
      s->group_add[s->n_group_add++] = v;
    } else if (!strcmp(key, "home_from_passwd")) s->home_from_passwd = atoi(v);
    else if (!strcmp(key, "cap")) {
      int c = atoi(v);
      if (c < 0 || c > 63) die_usage("spec: capability out of range");
      s->caps |= 1ULL << c;
    } else if (!strcmp(key, "no_new_privs")) s->no_new_privs = atoi(v);
    else if (!strcmp(key, "masked")) {
      if (s->n_masked >= 64) die_usage("spec: too many masked paths");
      s->masked[s->n_masked++] = v;
    } else if (!strcmp(key, "readonly")) {
      if (s->n_readonly >= 64) die_usage("spec: too many read-only paths");
      s->readonly[s->n_readonly++] = v;
    } else if (!strcmp(key, "cgroup")) {
      if (s->n_cgroups >= 16) die_usage("spec: too many cgroups");
      s->cgroups[s->n_cgroups++] = v;
    } else if (!strcmp(key, "cgroup.mkdir")) {
      if (s->n_cgroup_mkdirs >= 32) die_usage("spec: too many cgroup directories");
      s->cgroup_mkdirs[s->n_cgroup_mkdirs++] = v;
    } else if (!strcmp(key, "cgroup.limit")) {
      const char *value = NEXT(), *optional = NEXT();
      if (!value || !optional || s->n_cgroup_limits >= 64) die_usage("spec: bad cgroup limit");
      struct cgroup_limit *l = &s->cgroup_limits[s->n_cgroup_limits++];
      l->path = v;
      l->value = value;
      l->optional = atoi(optional);
    } else if (!strcmp(key, "device_filter")) {
      if (s->n_device_cgroups >= 4) die_usage("spec: too many device filter cgroups");
      s->device_cgroups[s->n_device_cgroups++] = v;
    } else if (!strcmp(key, "rlimit")) {
      const char *soft = NEXT(), *hard = NEXT();
      if (!soft || !hard || s->n_rlimits >= 16) die_usage("spec: bad rlimit");
      struct rlim *r = &s->rlimits[s->n_rlimits++];
      r->resource = atoi(v);
      r->soft = strtoull(soft, NULL, 10);
      r->hard = strtoull(hard, NULL, 10);
    } else if (!strcmp(key, "volume")) {
      const char *target = NEXT(), *ro = NEXT();
      if (!target || !ro || s->n_volumes >= 64) die_usage("spec: bad volume");
      struct volume *vol = &s->volumes[s->n_volumes++];
      vol->source = v;
      vol->target = target;
      vol->readonly = atoi(ro);
    } else if (!strcmp(key, "ns.new")) {
      int f = ns_flag(v);
      if (f < 0) die_usage("spec: unknown namespace");
      s->new_ns |= f;
    } else if (!strcmp(key, "ns.owner")) {
      const char *start_time = NEXT();
      if (!start_time || atoi(v) <= 0) die_usage("spec: bad namespace owner");
      s->join_pid = atoi(v);
      s->join_start_time = start_time;
    } else if (!strcmp(key, "ns.join")) {
      if (ns_flag(v) < 0 || s->n_joins >= 8) die_usage("spec: bad namespace join");
      s->joins[s->n_joins++] = v;
    } else if (!strcmp(key, "ns.net_path")) {
      if (v[0] != '/') die_usage("spec: bad network namespace path");
      s->net_path = v;
    } else if (!strcmp(key, "lo_up")) s->lo_up = atoi(v);
    else if (!strcmp(key, "sys_rw")) s->sys_rw = atoi(v);
    else if (!strcmp(key, "log.path")) s->log_path = v;
    else if (!strcmp(key, "log.max_bytes")) s->log_max_bytes = atoll(v);
    else if (!strcmp(key, "log.max_files")) s->log_max_files = atoi(v);
    else if (!strcmp(key, "exit_path")) s->exit_path = v;
    else if (!strcmp(key, "seccomp")) parse_seccomp(v, s);
    else if (!strcmp(key, "tty")) s->tty = atoi(v);
    else if (!strcmp(key, "tty.rows")) s->tty_rows = (unsigned short)atoi(v);
    else if (!strcmp(key, "tty.cols")) s->tty_cols = (unsigned short)atoi(v);
    else if (!strcmp(key, "stdin")) s->open_stdin = atoi(v);
    else if (!strcmp(key, "io.stdin")) s->stdin_path = v;
    else if (!strcmp(key, "io.control")) s->control_path = v;
    else die_usage("spec: unknown key");
  }
#undef NEXT
  if (s->n_argv == 0) die_usage("spec: no argv");
  if (s->open_stdin && !s->stdin_path) die_usage("spec: stdin without io.stdin");
  s->env[s->n_env] = NULL;
  s->argv[s->n_argv] = NULL;
}

/* ---------- error reporting ---------- */

static int err_fd = -1; /* the setup child's end of the error pipe */
static const char *fail_prefix = ""; /* "error\t" where fail() reports on fd 3 itself */

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    buf += w;
    len -= (size_t)w;
  }
}

/* A failed setup step: "STEP\tPATH\tERRNO\tMESSAGE" to the parent, then exit. */
__attribute__((noreturn)) static void fail(const char *step, const char *path, int err, const char *fmt, ...) {
  char msg[512] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  } else if (err) {
    snprintf(msg, sizeof msg, "%s", strerror(err));
  }
  char line[PATH_MAX + 1024];
  int n = snprintf(line, sizeof line, "%s%s\t%s\t%d\t%s\n", fail_prefix, step, path ? path : "", err, msg);
  if (n > (int)sizeof line) n = sizeof line;
  if (err_fd >= 0) write_all(err_fd, line, (size_t)n);
  else write_all(2, line, (size_t)n);
  _exit(err == ENOENT ? 127 : err == EACCES ? 126 : 125);
}

/* ---------- small syscall wrappers ---------- */

static int openat2_fd(int dirfd, const char *path, int flags, unsigned long long resolve) {
  struct open_how how = {.flags = (unsigned long long)flags | O_CLOEXEC, .mode = 0, .resolve = resolve};
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static void write_file(const char *step, const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(step, path, errno, NULL);
  ssize_t len = (ssize_t)strlen(data);
  if (write(fd, data, (size_t)len) != len) fail(step, path, errno, NULL);
  close(fd);
}

/* What ensure_path makes of a missing component: directories (the last one a file with
 * MAKE_FILE), or nothing (ENOENT). */
enum make_missing { MAKE_DIRS, MAKE_FILE, MAKE_NOTHING };

/* mkdir -p inside the current (already pivoted) root, returning an O_PATH descriptor of the result.
 * Walks one component at a time without following anything: a symlink's target is spliced into
 * the rest of the path and resolved from the root again, so ".." and absolute links never leave
 * the container's root, links in /proc are refused, and a dangling
 * link is created where it points inside the root (as filepath-securejoin's MkdirAll does). */
static int ensure_path(const char *path, enum make_missing make) {
  char rest[PATH_MAX];
  if (snprintf(rest, sizeof rest, "%s", path) >= (int)sizeof rest) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int links = 0;
  char *p = rest;
  while (cur >= 0) {
    while (*p == '/') p++;
    if (*p == '\0') return cur;
    char *slash = strchr(p, '/');
    char comp[NAME_MAX + 1];
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len > NAME_MAX) {
      close(cur);
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(comp, p, len);
    comp[len] = '\0';
    p += len;
    int last = strspn(p, "/") == strlen(p);
    if (!strcmp(comp, ".")) continue;
    int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && make != MAKE_NOTHING) {
      int made = (last && make == MAKE_FILE) ? openat(cur, comp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644)
                                             : mkdirat(cur, comp, 0755);
      if (made < 0 && errno != EEXIST) {
        int saved = errno;
        close(cur);
        errno = saved;
        return -1;
      }
      if (made > 0 && last && make == MAKE_FILE) close(made);
      fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      int saved = errno;
      close(cur);
      errno = saved;
      return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
      int saved = errno;
      close(fd);
      close(cur);
      errno = saved;
      return -1;
    }
    if (!S_ISLNK(st.st_mode)) {
      close(cur);
      cur = fd;
      continue;
    }
    /* links in procfs name the caller's descriptors and roots (/proc/self/fd/N, /proc/1/cwd):
     * a path through them is refused outright (CVE-2024-21626) */
    struct statfs sfs;
    if (fstatfs(fd, &sfs) < 0 || sfs.f_type == PROC_SUPER_MAGIC) {
      close(fd);
      close(cur);
      errno = ELOOP;
      return -1;
    }
    char target[PATH_MAX], joined[PATH_MAX];
    ssize_t n = readlinkat(fd, "", target, sizeof target - 1);
    int saved = errno;
    close(fd);
    if (n < 0 || ++links > 40) {
      close(cur);
      errno = n < 0 ? saved : ELOOP;
      return -1;
    }
    target[n] = '\0';
    if (snprintf(joined, sizeof joined, "%s/%s", target, p) >= (int)sizeof joined) {
      close(cur);
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(rest, joined, sizeof rest);
    p = rest;
    if (target[0] == '/') {
      close(cur);
      cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
  }
  return -1;
}

/* A directory the runtime mounts on (/proc, /sys, /dev) must be a real directory, not a link. */
static void ensure_dir_no_link(const char *path) {
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) fail("mount", path, ENOTDIR, "%s in the image is not a directory", path);
    return;
  }
  if (errno != ENOENT || mkdir(path, 0755) < 0) fail("mkdir", path, errno, NULL);
}

/* The mount points every container gets, in the current root. setup_container calls it on the
 * container's root and init-layer on an image's init layer, so an init layer holds exactly what a
 * container would otherwise create in its own writable layer on every start. */
static void ensure_mount_points(void) {
  ensure_dir_no_link("/proc");
  ensure_dir_no_link("/sys");
  ensure_dir_no_link("/dev");
}

/* A bind mount's target (created as a file when a file is mounted on it), as an O_PATH descriptor. */
static int ensure_mount_target(const char *step, const char *target, int as_file) {
  int tfd = ensure_path(target, as_file ? MAKE_FILE : MAKE_DIRS);
  if (tfd < 0) fail(step, target, errno, NULL);
  return tfd;
}

static void attach_fd(const char *step, int mntfd, const char *target, int as_file) {
  int tfd = ensure_mount_target(step, target, as_file);
  if (move_mount(mntfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    fail(step, target, errno, NULL);
  close(tfd);
  close(mntfd);
}

/* ---------- container setup ---------- */

/* Why a step failed, for the caller to report its own way: fail() in a process that exits on an
 * error, a report line from the shim, which must record the exit first. */
struct failure {
  const char *step;
  char path[PATH_MAX];
  int err;
  char msg[512];
};

__attribute__((format(printf, 5, 6))) static int failed(struct failure *f, const char *step, const char *path, int err,
                                                        const char *fmt, ...) {
  f->step = step;
  snprintf(f->path, sizeof f->path, "%s", path ? path : "");
  f->err = err;
  f->msg[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
  } else if (err) {
    snprintf(f->msg, sizeof f->msg, "%s", strerror(err));
  }
  return -1;
}

/* The root file system as a detached mount (attached nowhere until moved), or -1 with *f filled. */
static int try_open_rootfs_mount(const struct spec *s, struct failure *f) {
  if (!s->rootfs_type) return failed(f, "rootfs", NULL, EINVAL, "no root file system in the spec");
  if (!strcmp(s->rootfs_type, "bind")) {
    int fd = open_tree(AT_FDCWD, s->rootfs_source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0) return failed(f, "mount rootfs", s->rootfs_source, errno, NULL);
    /* a snapshotter's read-only view is a bind with "ro": it must stay read-only */
    for (int i = 0; i < s->n_rootfs_opts; i++) {
      if (strcmp(s->rootfs_opts[i], "ro") != 0) continue;
      struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
      if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
        int err = errno;
        close(fd);
        return failed(f, "mount rootfs", s->rootfs_source, err, NULL);
      }
    }
    return fd;
  }
  if (strcmp(s->rootfs_type, "overlay") != 0)
    return failed(f, "mount rootfs", s->rootfs_source, EINVAL, "unsupported root mount type %s", s->rootfs_type);
  /* The new mount API has no one-page limit on options: each lower layer is its own "lowerdir+"
   * call, so images with hundreds of layers mount. */
  int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
  if (fsfd < 0) return failed(f, "fsopen overlay", NULL, errno, NULL);
  int ret = -1;
  for (int i = 0; i < s->n_rootfs_opts; i++) {
    const char *opt = s->rootfs_opts[i];
    const char *eq = strchr(opt, '=');
    if (!eq) {
      if (fsconfig(fsfd, FSCONFIG_SET_FLAG, opt, NULL, 0) < 0) {
        failed(f, "overlay option", opt, errno, NULL);
        goto out;
      }
      continue;
    }
    char key[64];
    size_t klen = (size_t)(eq - opt);
    if (klen >= sizeof key) {
      failed(f, "overlay option", opt, EINVAL, "option name too long");
      goto out;
    }
    memcpy(key, opt, klen);
    key[klen] = '\0';
    if (!strcmp(key, "lowerdir")) {
      /* lowerdir=A:B:C (leftmost uppermost) becomes lowerdir+ A, lowerdir+ B, ... in that order */
      const char *d = eq + 1;
      while (*d) {
        const char *colon = strchr(d, ':');
        size_t len = colon ? (size_t)(colon - d) : strlen(d);
        char dir[PATH_MAX];
        if (len >= sizeof dir) {
          failed(f, "overlay lowerdir", d, ENAMETOOLONG, NULL);
          goto out;
        }
        memcpy(dir, d, len);
        dir[len] = '\0';
        if (len > 0 && fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", dir, 0) < 0) {
          failed(f, "overlay lowerdir", dir, errno, NULL);
          goto out;
        }
        d += len + (colon ? 1 : 0);
      }
    } else if (fsconfig(fsfd, FSCONFIG_SET_STRING, key, eq + 1, 0) < 0) {
      failed(f, "overlay option", opt, errno, NULL);
      goto out;
    }
  }
  if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
    int err = errno;
    char log[256];
    ssize_t n = read(fsfd, log, sizeof log - 1); /* the kernel's reason, when it gives one */
    if (n > 0) log[n] = '\0';
    failed(f, "mount overlay", s->rootfs_path, err, "%s%s%s", strerror(err), n > 0 ? ": " : "", n > 0 ? log : "");
    goto out;
  }
  ret = fsmount(fsfd, FSMOUNT_CLOEXEC, 0);
  if (ret < 0) failed(f, "fsmount overlay", s->rootfs_path, errno, NULL);
out:
  close(fsfd);
  return ret;
}

/* For the helper's one-shot modes, which exit on an error. */
static int open_rootfs_mount(const struct spec *s) {
  struct failure f;
  int fd = try_open_rootfs_mount(s, &f);
  if (fd < 0) fail(f.step, f.path, f.err, "%s", f.msg);
  return fd;
}

/* The container's root mount is made by its shim, not by the container's process (as containerd
 * mounts a container's root itself): whatever the kernel allocates for it, such as the block of an
 * overlay's work directory, is then charged to the shim's cgroup. Charged to the container's
 * memory cgroup, it kept that cgroup alive, dying, long after the container was gone: one per
 * start, each making every later cgroup creation and migration slower. The mount travels to the
 * container's process over a socket pair (SCM_RIGHTS) while that process sets up its namespaces. */
static int rootfs_sock = -1; /* the setup child's end of the socket its root mount arrives on */

static int send_fd(int sock, int fd) {
  char byte = 'r';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t r;
  do r = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r == 1 ? 0 : -1;
}

static int recv_fd(int sock) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t r;
  do r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r != 1) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

/* In the container's process: the root mount from the shim. The socket stays open when more
 * travels on it: the stdin pipe the shim keeps open, or the terminal's master, which goes back. */
static int receive_rootfs_mount(const struct spec *s) {
  int fd = recv_fd(rootfs_sock);
  /* a shim that could not mount it has reported why and kills this process; anything else is
   * reported here, so a start never looks successful without a root */
  if (fd < 0) fail("receive root mount", NULL, EPIPE, "the shim did not hand over the container's root mount");
  if (!s->open_stdin && !s->tty) {
    close(rootfs_sock);
    rootfs_sock = -1;
  }
  return fd;
}

/* ---------- terminals ---------- */

#ifndef DEVPTS_SUPER_MAGIC
#define DEVPTS_SUPER_MAGIC 0x1cd1
#endif

/* A new pseudo-terminal of the devpts instance at /dev/pts of this mount namespace (a container's
 * own, which mount_dev made with newinstance), sized ROWS x COLS when given. Returns its master
 * (non-blocking) and sets *slave to its slave, opened through the master (TIOCGPTPEER), never by a
 * path. /dev/pts must be a devpts mount reached without a link, and ptmx in it the 5:2 device:
 * a container's root can rename and make nodes in its /dev (it cannot mount), and must not hand
 * the caller a FIFO to hang on or a device of its choosing. -1 with errno and *step on failure. */
static int open_pty(unsigned short rows, unsigned short cols, int *slave, const char **step) {
  *step = "open /dev/pts";
  int dir = openat2_fd(AT_FDCWD, "/dev/pts", O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
  if (dir < 0) return -1;
  struct statfs sfs;
  if (fstatfs(dir, &sfs) < 0 || sfs.f_type != DEVPTS_SUPER_MAGIC) {
    close(dir);
    errno = ENOTTY;
    return -1;
  }
  *step = "open /dev/pts/ptmx";
  int master = openat2_fd(dir, "ptmx", O_RDWR | O_NOCTTY | O_NONBLOCK, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
  close(dir);
  if (master < 0) return -1;
  struct stat st;
  int unlock = 0;
  if (fstat(master, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2) {
    close(master);
    errno = ENOTTY;
    return -1;
  }
  *step = "unlock terminal";
  if (ioctl(master, TIOCSPTLCK, &unlock) < 0) goto failed;
  if (rows > 0 && cols > 0) {
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    *step = "size terminal";
    if (ioctl(master, TIOCSWINSZ, &ws) < 0) goto failed;
  }
  *step = "open terminal";
  *slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave < 0) goto failed;
  return master;
failed:;
  int err = errno;
  close(master);
  errno = err;
  return -1;
}

/* In the process about to become the container's (or the exec'd one), a session leader: the
 * terminal becomes its controlling terminal and its stdin, stdout and stderr. */
static void take_terminal(int slave) {
  if (ioctl(slave, TIOCSCTTY, 0) < 0) fail("set controlling terminal", NULL, errno, NULL);
  for (int fd = 0; fd <= 2; fd++)
    if (dup2(slave, fd) < 0) fail("terminal as stdio", NULL, errno, NULL);
  if (slave > 2) close(slave);
}

/* Sets the terminal's size from a "resize ROWS COLS" line (the kernel then signals SIGWINCH to
 * its foreground process group); anything else is ignored. */
static void resize_terminal(int master, const char *line) {
  unsigned rows, cols;
  if (master < 0 || sscanf(line, "resize %u %u", &rows, &cols) != 2 || rows > 65535 || cols > 65535) return;
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  ioctl(master, TIOCSWINSZ, &ws);
}

/* Lines read from a control descriptor, each handed to `apply` (partial lines wait; a line longer
 * than the buffer is dropped). Returns 0 at EOF. */
struct control_lines {
  int fd;
  char buf[256];
  size_t len;
};

static int read_control(struct control_lines *c, void (*apply)(const char *line, void *arg), void *arg) {
  ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
  if (r < 0) return errno == EINTR || errno == EAGAIN;
  if (r == 0) return 0;
  c->len += (size_t)r;
  c->buf[c->len] = '\0';
  char *start = c->buf, *nl;
  while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->buf))) != NULL) {
    *nl = '\0';
    apply(start, arg);
    start = nl + 1;
  }
  c->len -= (size_t)(start - c->buf);
  memmove(c->buf, start, c->len);
  if (c->len == sizeof c->buf - 1) c->len = 0;
  return 1;
}

static void mount_dev(void) {
  if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_STRICTATIME, "mode=755,size=65536k") < 0)
    fail("mount", "/dev", errno, NULL);
  static const struct {
    const char *name;
    unsigned maj, min;
  } devs[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  char p[64];
  mode_t old = umask(0);
  for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
    snprintf(p, sizeof p, "/dev/%s", devs[i].name);
    if (mknod(p, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) < 0) fail("mknod", p, errno, NULL);
  }
  umask(old);
  static const char *links[][2] = {{"/proc/self/fd", "/dev/fd"},     {"/proc/self/fd/0", "/dev/stdin"},
                                   {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
                                   {"pts/ptmx", "/dev/ptmx"},          {"/proc/kcore", "/dev/core"}};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlink(links[i][0], links[i][1]) < 0) fail("symlink", links[i][1], errno, NULL);
  if (mkdir("/dev/pts", 0755) < 0) fail("mkdir", "/dev/pts", errno, NULL);
  if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
    fail("mount", "/dev/pts", errno, NULL);
  if (mkdir("/dev/shm", 01777) < 0) fail("mkdir", "/dev/shm", errno, NULL);
  if (mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k") < 0)
    fail("mount", "/dev/shm", errno, NULL);
}

/* Masking binds /dev/null; a /dev/null that is anything but the real char device 1:3 would let a
 * container redirect the mask onto a file of its choice (CVE-2025-31133). */
static int verified_dev_null(void) {
  int fd = openat2_fd(AT_FDCWD, "/dev/null", O_PATH | O_NOFOLLOW, RESOLVE_NO_SYMLINKS);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) fail("mask", "/dev/null", errno, NULL);
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
    fail("mask", "/dev/null", EPERM, "/dev/null is not the null device 1:3");
  return fd;
}

/* Kernels differ in what /proc and /sys hold (timer_stats is gone from recent ones), so a masked
 * path may be absent — but only from the real procfs or sysfs: its nearest existing ancestor must
 * be one, or something mounted over it would hide the path instead of the kernel never having it. */
static int absent_from_kernel_fs(const char *path) {
  long want = strncmp(path, "/proc/", 6) == 0 ? PROC_SUPER_MAGIC : strncmp(path, "/sys/", 5) == 0 ? SYSFS_MAGIC : 0;
  if (want == 0) return 0;
  char dir[PATH_MAX];
  if (strlen(path) >= sizeof dir) return 0;
  strcpy(dir, path);
  for (;;) {
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = 0;
    int fd = openat2_fd(AT_FDCWD, dir, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS);
    if (fd < 0) {
      if (errno == ENOENT) continue;
      return 0;
    }
    struct statfs sfs;
    int ok = fstatfs(fd, &sfs) == 0 && (long)sfs.f_type == want;
    close(fd);
    return ok;
  }
}

static void mask_paths(const struct spec *s) {
  if (s->n_masked == 0) return;
  int null_fd = verified_dev_null();
  for (int i = 0; i < s->n_masked; i++) {
    const char *p = s->masked[i];
    int tfd = openat2_fd(AT_FDCWD, p, O_PATH | O_NOFOLLOW, RESOLVE_NO_SYMLINKS);
    if (tfd < 0) {
      int err = errno;
      if (err == ENOENT && absent_from_kernel_fs(p)) continue;
      if (err == ENOENT) fail("mask", p, err, "a masked path is missing and its parent is not the kernel's procfs or sysfs");
      fail("mask", p, err, NULL);
    }
    struct stat st;
    if (fstat(tfd, &st) < 0) fail("mask", p, errno, NULL);
    int mfd;
    if (S_ISDIR(st.st_mode)) {
      int fsfd = fsopen("tmpfs", FSOPEN_CLOEXEC);
      if (fsfd < 0 || fsconfig(fsfd, FSCONFIG_SET_STRING, "size", "0", 0) < 0 ||
          fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        fail("mask", p, errno, NULL);
      mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
      close(fsfd);
    } else {
      mfd = open_tree(null_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    }
    if (mfd < 0) fail("mask", p, errno, NULL);
    if (move_mount(mfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) fail("mask", p, errno, NULL);
    close(mfd);
    close(tfd);
  }
  close(null_fd);
}

static void readonly_paths(const struct spec *s) {
  for (int i = 0; i < s->n_readonly; i++) {
    const char *p = s->readonly[i];
    int mfd = open_tree(AT_FDCWD, p, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
    if (mfd < 0) {
      if (errno == ENOENT) continue;
      fail("read-only path", p, errno, NULL);
    }
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(mfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) fail("read-only path", p, errno, NULL);
    if (move_mount(mfd, "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) < 0) fail("read-only path", p, errno, NULL);
    close(mfd);
  }
}

static void bring_lo_up(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) fail("loopback up", "lo", errno, NULL);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) fail("loopback up", "lo", errno, NULL);
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) fail("loopback up", "lo", errno, NULL);
  close(sock);
}

static void join_cgroups(const struct spec *s) {
  char p[PATH_MAX];
  for (int i = 0; i < s->n_cgroups; i++) {
    snprintf(p, sizeof p, "%s/cgroup.procs", s->cgroups[i]);
    write_file("join cgroup", p, "0");
  }
}

/* Whether the process of a /proc/PID directory started at `start_time` (field 22 of its stat). */
static int has_start_time(int procfd, const char *start_time) {
  char buf[1024];
  int fd = openat(procfd, "stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  /* the command name may hold spaces and parentheses: the fields start after the last ')' */
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ') return 0;
  p += 2;
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p, ' ');
    if (p) p++;
  }
  if (!p) return 0;
  size_t len = strcspn(p, " ");
  return len == strlen(start_time) && strncmp(p, start_time, len) == 0;
}

/* Opens every namespace to join before entering any, so the paths still name the host's /proc.
 * The runtime names the process by pid and start time. Its /proc/PID directory, once open, stays
 * that process's (files opened through it fail once the process is gone, even if its pid is
 * reused): the start time is checked and the namespaces opened through it, so a newcomer that took
 * the pid is refused, never joined. */
static void join_namespaces(const struct spec *s, int mnt_last) {
  if (s->n_joins == 0) return;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/%d", s->join_pid);
  if (s->join_pid <= 0 || !s->join_start_time) fail("join namespaces", NULL, EINVAL, "no process to join named");
  int procfd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (procfd < 0 || !has_start_time(procfd, s->join_start_time))
    fail("join namespaces", proc, ESRCH, "pid %d is no longer the process whose namespaces were to be joined", s->join_pid);
  int fds[8];
  char paths[8][96];
  for (int i = 0; i < s->n_joins; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/ns/%s", proc, s->joins[i]);
    fds[i] = openat(procfd, paths[i] + strlen(proc) + 1, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) fail("open namespace", paths[i], errno, NULL);
  }
  close(procfd);
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < s->n_joins; i++) {
      int is_mnt = ns_flag(s->joins[i]) == CLONE_NEWNS;
      if (mnt_last && is_mnt != pass) continue;
      if (!mnt_last && pass == 1) continue;
      if (setns(fds[i], ns_flag(s->joins[i])) < 0) fail("setns", paths[i], errno, NULL);
      close(fds[i]);
    }
  }
}

static void set_rlimits(const struct spec *s) {
  for (int i = 0; i < s->n_rlimits; i++) {
    struct rlimit cur, want = {.rlim_cur = s->rlimits[i].soft, .rlim_max = s->rlimits[i].hard};
    if (getrlimit(s->rlimits[i].resource, &cur) < 0) fail("setrlimit", NULL, errno, NULL);
    /* Raising a hard limit needs CAP_SYS_RESOURCE, which the runtime does not assume. */
    if (want.rlim_max > cur.rlim_max) fail("setrlimit", NULL, EPERM, "rlimit %d hard limit %llu is above the host's %llu",
                                           s->rlimits[i].resource, (unsigned long long)want.rlim_max, (unsigned long long)cur.rlim_max);
    if (setrlimit(s->rlimits[i].resource, &want) < 0) fail("setrlimit", NULL, errno, NULL);
  }
}

/* ---------- identity: the user and its groups, from the container's own files ---------- */

/* NAME|UID[:GROUP|GID] is resolved as runc's libcontainer/user does (Docker's semantics), from the
 * image's /etc/passwd and /etc/group. Those files are hostile input: they are read only once the
 * root is the container's, resolved inside it, refused unless regular, and bounded in size and
 * line length; no count in them is trusted. */
#define ID_FILE_MAX (1 << 20)
#define ID_LINE_MAX 65536
#define MAX_GIDS 1024

struct id_file {
  const char *path;
  char *data; /* NULL: the image has no such file, which reads as no entries (as runc) */
  size_t len;
  int read;
  /* A file that cannot be read (not regular, too big, unreadable) reads as no entries instead of
   * failing: set when only numbers are asked for, so what a container does to its own files never
   * locks its operator out of exec (a uid without an entry runs as runc runs it: gid 0, HOME=/). */
  int lenient;
};

/* A problem with an id file: fatal, unless the file is lenient (then it reads as empty). */
#define ID_FILE_PROBLEM(f, err, ...)                                                                  \
  do {                                                                                                \
    if ((f)->lenient) {                                                                               \
      free((f)->data);                                                                                \
      (f)->data = NULL;                                                                               \
      (f)->len = 0;                                                                                   \
      return;                                                                                         \
    }                                                                                                 \
    fail("user", NULL, err, __VA_ARGS__);                                                             \
  } while (0)

struct identity {
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GIDS]; /* setgroups: the primary gid first, as Docker (CVE-2022-36109) */
  int n_groups;
  const char *home;
};

static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a fifo";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

static void read_id_file(struct id_file *f) {
  if (f->read) return;
  f->read = 1;
  int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) fail("user", NULL, errno, "open the container's root: %s", strerror(errno));
  /* Every link resolves inside the root ("/" and ".." stop there) and never through a /proc magic
   * link, the last component's included: a link to a host path finds the container's file of
   * that name or nothing. O_NONBLOCK: a fifo must not block the open before it is refused. */
  int fd = openat2_fd(root, f->path, O_RDONLY | O_NONBLOCK | O_NOCTTY, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  int err = errno;
  close(root);
  if (fd < 0) {
    if (err == ENOENT || err == ENOTDIR) return;
    ID_FILE_PROBLEM(f, err, "open %s of the image: %s", f->path, strerror(err));
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    close(fd);
    ID_FILE_PROBLEM(f, errno, "stat %s of the image: %s", f->path, strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    ID_FILE_PROBLEM(f, EINVAL, "%s of the image is %s; refused", f->path, file_kind(st.st_mode));
  }
  if (st.st_size > ID_FILE_MAX) {
    close(fd);
    ID_FILE_PROBLEM(f, EFBIG, "%s of the image is %lld bytes, above the limit of %d (1 MiB); refused", f->path,
                    (long long)st.st_size, ID_FILE_MAX);
  }
  /* sized by the file (a 1 MiB buffer costs an mmap and its unmap: most of a small file's read);
   * one byte more shows a file that grew meanwhile, which is read on up to the limit */
  size_t cap = (size_t)st.st_size + 1, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) fail("user", NULL, ENOMEM, NULL);
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int read_err = errno;
      close(fd);
      f->data = buf; /* freed by ID_FILE_PROBLEM when lenient */
      ID_FILE_PROBLEM(f, read_err, "read %s of the image: %s", f->path, strerror(read_err));
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n > ID_FILE_MAX) {
      close(fd);
      f->data = buf;
      ID_FILE_PROBLEM(f, EFBIG, "%s of the image grew above the limit of %d (1 MiB); refused", f->path, ID_FILE_MAX);
    }
    if (n == cap) {
      cap = cap * 2 > ID_FILE_MAX + 1 ? ID_FILE_MAX + 1 : cap * 2;
      buf = realloc(buf, cap + 1);
      if (!buf) fail("user", NULL, ENOMEM, NULL);
    }
  }
  close(fd);
  f->data = buf;
  f->len = n;
}

static char id_line[ID_LINE_MAX + 1];

/* The next entry of f from *pos, split in place (in id_line) into at most max ':'-separated
 * fields, the last one keeping any further ':'. Returns the field count, or -1 at the end.
 * Blank lines, comments and lines above ID_LINE_MAX (never copied: no entry is that long) are
 * skipped, so a container that writes one into its own file does not break every later exec. */
static int next_id_entry(const struct id_file *f, size_t *pos, int *lineno, char **fields, int max) {
  while (f->data && *pos < f->len) {
    const char *start = f->data + *pos;
    const char *nl = memchr(start, '\n', f->len - *pos);
    size_t len = nl ? (size_t)(nl - start) : f->len - *pos;
    *pos += len + (nl ? 1 : 0);
    (*lineno)++;
    if (len > ID_LINE_MAX) continue;
    memcpy(id_line, start, len);
    id_line[len] = '\0';
    char *line = id_line;
    while (*line == ' ' || *line == '\t') line++;
    char *end = line + strlen(line);
    while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) *--end = '\0';
    if (*line == '\0' || *line == '#') continue;
    int n = 0;
    for (char *p = line;;) {
      fields[n++] = p;
      char *colon = strchr(p, ':');
      if (!colon || n == max) break;
      *colon = '\0';
      p = colon + 1;
    }
    return n;
  }
  return -1;
}

/* A uid or gid: decimal, at most 2^32-2 ((uid_t)-1 means "unchanged" to the kernel). */
static int parse_id(const char *text, uint32_t *out) {
  if (!*text) return 0;
  uint64_t v = 0;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9') return 0;
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > 0xfffffffeULL) return 0;
  }
  *out = (uint32_t)v;
  return 1;
}

/* The first passwd entry with this name (or uid, when by_uid); malformed entries never match. */
static int find_passwd_entry(struct id_file *f, const char *name, int by_uid, uint32_t uid, char **entry_name,
                             uint32_t *entry_uid, uint32_t *entry_gid, char **home) {
  read_id_file(f);
  size_t pos = 0;
  int lineno = 0, n;
  char *fl[7];
  while ((n = next_id_entry(f, &pos, &lineno, fl, 7)) >= 0) {
    uint32_t u, g;
    if (n < 4 || !parse_id(fl[2], &u) || !parse_id(fl[3], &g)) continue;
    if (by_uid ? u != uid : strcmp(fl[0], name) != 0) continue;
    *entry_name = strdup(fl[0]);
    *home = strdup(n >= 6 && fl[5][0] ? fl[5] : "/");
    if (!*entry_name || !*home) fail("user", NULL, ENOMEM, NULL);
    *entry_uid = u;
    *entry_gid = g;
    return 1;
  }
  return 0;
}

static int find_group_by_name(struct id_file *f, const char *name, uint32_t *gid) {
  read_id_file(f);
  size_t pos = 0;
  int lineno = 0, n;
  char *fl[4];
  while ((n = next_id_entry(f, &pos, &lineno, fl, 4)) >= 0) {
    uint32_t g;
    if (n >= 3 && parse_id(fl[2], &g) && !strcmp(fl[0], name)) {
      *gid = g;
      return 1;
    }
  }
  return 0;
}

static void add_group(struct identity *id, gid_t gid) {
  for (int i = 0; i < id->n_groups; i++)
    if (id->groups[i] == gid) return;
  if (id->n_groups >= MAX_GIDS) fail("user", NULL, E2BIG, "more than %d supplementary groups; refused", MAX_GIDS);
  id->groups[id->n_groups++] = gid;
}

/* The groups of /etc/group whose member list names the user. */
static void add_member_groups(struct identity *id, struct id_file *f, const char *member) {
  read_id_file(f);
  size_t pos = 0;
  int lineno = 0, n;
  char *fl[4];
  while ((n = next_id_entry(f, &pos, &lineno, fl, 4)) >= 0) {
    uint32_t g;
    if (n < 4 || !parse_id(fl[2], &g)) continue;
    for (char *m = fl[3], *comma; m; m = comma ? comma + 1 : NULL) {
      comma = strchr(m, ',');
      size_t len = comma ? (size_t)(comma - m) : strlen(m);
      if (len == strlen(member) && !strncmp(m, member, len)) {
        add_group(id, g);
        break;
      }
    }
  }
}

/* runc's GetExecUser and GetAdditionalGroups: a name must be in the file; a number need not be (a
 * uid without an entry runs with gid 0 and HOME=/). The primary gid is passwd's unless a group is
 * given, and only then does the user's membership in /etc/group add groups. Files are read only
 * when something needs them: UID:GID with HOME set and numeric added groups reads nothing. */
static void resolve_identity(const struct spec *s, struct identity *id) {
  char user[512];
  if (snprintf(user, sizeof user, "%s", s->user ? s->user : "") >= (int)sizeof user)
    fail("user", NULL, EINVAL, "the user is longer than %zu bytes", sizeof user - 1);
  char *group = strchr(user, ':');
  if (group) *group++ = '\0';
  struct id_file passwd = {.path = "/etc/passwd"}, groups = {.path = "/etc/group"};
  uint32_t uid = 0, gid = 0;
  int uid_given = user[0] == '\0' || parse_id(user, &uid); /* no user: uid 0, looked up as such */
  /* A number needs no entry: a file that cannot be read then means none (HOME=/, gid 0). */
  passwd.lenient = uid_given;
  uint32_t group_number;
  groups.lenient = uid_given && s->n_group_add == 0 && (!group || parse_id(group, &group_number));
  char *member = NULL;
  memset(id, 0, sizeof *id);
  id->home = "/";
  if (!uid_given || !group || s->home_from_passwd) {
    char *home;
    if (find_passwd_entry(&passwd, user, uid_given, uid, &member, &uid, &gid, &home)) {
      id->home = home;
    } else if (!uid_given) {
      fail("user", NULL, ENOENT, "no user \"%s\" in /etc/passwd of the image%s", user, passwd.data ? "" : " (it has none)");
    }
  }
  id->uid = uid;
  if (group && !parse_id(group, &gid) && !find_group_by_name(&groups, group, &gid))
    fail("user", NULL, ENOENT, "no group \"%s\" in /etc/group of the image%s", group, groups.data ? "" : " (it has none)");
  id->gid = gid;
  add_group(id, gid);
  if (!group && member) add_member_groups(id, &groups, member);
  for (int i = 0; i < s->n_group_add; i++) {
    uint32_t added;
    if (!parse_id(s->group_add[i], &added) && !find_group_by_name(&groups, s->group_add[i], &added))
      fail("user", NULL, ENOENT, "no group \"%s\" (an added group) in /etc/group of the image%s", s->group_add[i],
           groups.data ? "" : " (it has none)");
    add_group(id, added);
  }
  free(passwd.data);
  free(groups.data);
}

/* A new anonymous session keyring, as runc gives every container process: otherwise the one this
 * helper inherited (the launcher's caller's) would be the container's too. Kernels built without
 * keys have nothing to share (ENOSYS). */
static void join_session_keyring(void) {
  if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL, 0, 0, 0) < 0 && errno != ENOSYS)
    fail("join session keyring", NULL, errno, NULL);
}

/* Needs no_new_privs or CAP_SYS_ADMIN. With no_new_privs (the default) it is installed last, just
 * after no_new_privs is set, so the filter never applies to the helper's own setup: only execve
 * (and fail's write and exit) run under it. Without no_new_privs (allowPrivilegeEscalation) it is
 * installed while the helper still holds CAP_SYS_ADMIN, before the capabilities are dropped and
 * the user changes, as runc does; the rest of the setup (prctl, openat2, fchdir, setgroups,
 * setres[ug]id, capset, close_range, execve) is allowed by every profile the runtime writes. */
static void install_seccomp(const struct spec *s) {
  if (!s->seccomp) return;
  struct sock_fprog prog = {.len = s->n_seccomp, .filter = s->seccomp};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) fail("install seccomp filter", NULL, errno, NULL);
}

/* Session keyring, identity, capabilities, no_new_privs, descriptors, working directory, seccomp;
 * then execve. `make_cwd`: a missing working directory is created (a container's start, as
 * docker's WORKDIR); an exec'd process must find it (as runc exec), and never has one made for it
 * as root. */
__attribute__((noreturn)) static void become_process(const struct spec *s, int make_cwd) {
  static struct identity id;
  join_session_keyring();
  resolve_identity(s, &id);
  set_rlimits(s);
  if (!s->no_new_privs) install_seccomp(s);
  for (int c = 0; c <= 63; c++) {
    if (s->caps & (1ULL << c)) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) fail("drop capability", NULL, errno, "capability %d: %s", c, strerror(errno));
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) fail("clear ambient capabilities", NULL, errno, NULL);

  if (s->cwd) {
    /* Resolved without magic links, so a descriptor leaked from the host (/proc/self/fd/N) can
     * never become the working directory (CVE-2024-21626). */
    int dfd = ensure_path(s->cwd, make_cwd ? MAKE_DIRS : MAKE_NOTHING);
    if (dfd < 0) fail("chdir", s->cwd, errno, NULL);
    if (fchdir(dfd) < 0) fail("chdir", s->cwd, errno, NULL);
    close(dfd);
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf) || buf[0] != '/') fail("chdir", s->cwd, EPERM, "working directory %s is outside the container root", s->cwd);
  }

  if (setgroups((size_t)id.n_groups, id.groups) < 0) fail("setgroups", NULL, errno, NULL);
  if (setresgid(id.gid, id.gid, id.gid) < 0) fail("setgid", NULL, errno, NULL);
  if (setresuid(id.uid, id.uid, id.uid) < 0) fail("setuid", NULL, errno, NULL);
  if (id.uid == 0) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    data[0].effective = data[0].permitted = (uint32_t)(s->caps & 0xffffffffu);
    data[1].effective = data[1].permitted = (uint32_t)(s->caps >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0) fail("capset", NULL, errno, NULL);
  }
  if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("no_new_privs", NULL, errno, NULL);

  /* Everything but stdio closes at execve; the error pipe stays usable until then. */
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) fail("close descriptors", NULL, errno, NULL);

  static const char *envp[MAX_ITEMS + 2];
  memcpy(envp, s->env, sizeof(char *) * (size_t)s->n_env);
  int n_env = s->n_env;
  if (s->home_from_passwd) {
    char *home = malloc(strlen(id.home) + sizeof "HOME=");
    if (!home) fail("user", NULL, ENOMEM, NULL);
    strcpy(home, "HOME=");
    strcat(home, id.home);
    envp[n_env++] = home;
  }
  envp[n_env] = NULL;
  environ = (char **)envp;
  if (s->no_new_privs) install_seccomp(s);
  execvp(s->argv[0], (char *const *)s->argv);
  fail("exec", s->argv[0], errno, NULL);
}

/* Runs in the child that becomes the container's pid 1. */
static int cgroups_joined_fd = -1; /* the setup child's end of the "cgroups joined" pipe */
static int mounts_ready_fd = -1;    /* the setup child's end of the "mounts built" pipe */

/* The shim creates the child's cgroups, writes their limits and moves the child in while the
 * child builds its mounts: on cgroup v1 the move waits for an RCU grace period (~3-10 ms here),
 * which so overlaps the setup instead of preceding it. The child execs only after the move, so
 * every limit applies from its first instruction. The cgroup namespace is entered afterwards, so
 * its root is the container's. */
static void wait_for_cgroups(const struct spec *s) {
  char byte = 'm';
  ssize_t r;
  if (mounts_ready_fd >= 0) { /* the shim takes hold of the mount namespace now (hold_mount_ns) */
    if (write(mounts_ready_fd, &byte, 1) != 1) _exit(125);
    close(mounts_ready_fd);
  }
  do r = read(cgroups_joined_fd, &byte, 1);
  while (r < 0 && errno == EINTR);
  if (r != 1) _exit(125); /* the shim failed and reports why */
  close(cgroups_joined_fd);
  if ((s->new_ns & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0) fail("unshare cgroup", NULL, errno, NULL);
}

/* The host's network when the host is itself a namespace (/run/netns/NAME): entered by its path,
 * which the runtime was given by whoever set the host up; setns refuses anything but a network
 * namespace. */
static void enter_net_path(const struct spec *s) {
  if (!s->net_path) return;
  int fd = open(s->net_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open network namespace", s->net_path, errno, NULL);
  if (setns(fd, CLONE_NEWNET) < 0) fail("setns", s->net_path, errno, NULL);
  close(fd);
}

__attribute__((noreturn)) static void setup_container(const struct spec *s) {
  join_namespaces(s, 0);
  enter_net_path(s);
  if (unshare(s->new_ns & ~(CLONE_NEWPID | CLONE_NEWCGROUP)) < 0) fail("unshare", NULL, errno, NULL);
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail("make mounts private", "/", errno, NULL);

  /* Host-side sources are opened as detached mounts while the host is still visible. */
  int rootfd = receive_rootfs_mount(s);
  int stdin_fd = -1;
  if (s->open_stdin && !s->tty) {
    stdin_fd = recv_fd(rootfs_sock);
    if (stdin_fd < 0) fail("receive stdin", NULL, EPIPE, "the shim did not hand over the container's stdin");
    close(rootfs_sock);
    rootfs_sock = -1;
  }
  int volfds[64];
  for (int i = 0; i < s->n_volumes; i++) {
    volfds[i] = open_tree(AT_FDCWD, s->volumes[i].source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (volfds[i] < 0) fail("bind volume", s->volumes[i].source, errno, NULL);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (s->volumes[i].readonly ? MOUNT_ATTR_RDONLY : 0)};
    if (mount_setattr(volfds[i], "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) fail("bind volume", s->volumes[i].source, errno, NULL);
  }
  if (move_mount(rootfd, "", AT_FDCWD, s->rootfs_path, MOVE_MOUNT_F_EMPTY_PATH) < 0) fail("attach rootfs", s->rootfs_path, errno, NULL);
  close(rootfd);
  if (chdir(s->rootfs_path) < 0) fail("chdir", s->rootfs_path, errno, NULL);
  if (syscall(SYS_pivot_root, ".", ".") < 0) fail("pivot_root", s->rootfs_path, errno, NULL);
  if (umount2(".", MNT_DETACH) < 0) fail("detach old root", "/", errno, NULL);
  if (chdir("/") < 0) fail("chdir", "/", errno, NULL);

  /* From here on every path resolves inside the container's root. */
  ensure_mount_points();
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) < 0) fail("mount", "/proc", errno, NULL);
  if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | (s->sys_rw ? 0 : MS_RDONLY), NULL) < 0) fail("mount", "/sys", errno, NULL);
  mount_dev();
  int tty_slave = -1;
  if (s->tty) {
    /* the terminal is the container's own devpts's: its master goes to the shim, which keeps it */
    const char *step;
    int master = open_pty(s->tty_rows, s->tty_cols, &tty_slave, &step);
    if (master < 0) fail(step, "/dev/pts/ptmx", errno, NULL);
    if (send_fd(rootfs_sock, master) < 0) fail("hand over terminal", NULL, errno, NULL);
    close(master);
    close(rootfs_sock);
    rootfs_sock = -1;
  }
  for (int i = 0; i < s->n_volumes; i++) {
    struct stat st;
    int as_file = fstat(volfds[i], &st) == 0 && !S_ISDIR(st.st_mode);
    attach_fd("bind volume", volfds[i], s->volumes[i].target, as_file);
  }
  mask_paths(s);
  readonly_paths(s);
  if (s->readonly_root) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof attr) < 0) fail("read-only root", "/", errno, NULL);
  }
  if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0) fail("sethostname", s->hostname, errno, NULL);
  if (s->lo_up) bring_lo_up();
  wait_for_cgroups(s);
  if (tty_slave >= 0) take_terminal(tty_slave);
  if (stdin_fd >= 0) {
    if (dup2(stdin_fd, 0) < 0) fail("stdin", NULL, errno, NULL);
    close(stdin_fd);
  }
  become_process(s, 1);
}

/* ---------- the parent side: start, report, monitor ---------- */

static void write_exit_file(const struct spec *s, int code, int signo);

/* A shim's container spec until its start succeeded: a failed start is recorded (exit 127) before
 * it is reported, so the runtime, which removes the container's directory once it has the error,
 * never races the shim's write of exit.json into it. */
static const struct spec *unstarted = NULL;

static void report(const char *line) {
  if (unstarted && !strncmp(line, "error", 5)) {
    write_exit_file(unstarted, 127, 0);
    unstarted = NULL;
  }
  write_all(REPORT_FD, line, strlen(line));
}

/* ---------- device access on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program ---------- */

/* cgroup v2 has no devices controller; the kernel asks a BPF program instead. This one encodes
 * docker's fixed rules, the same list as DEVICE_ALLOW_V1 in sys/cgroups.ts: mknod of anything,
 * and read/write of c 1:3 1:5 1:7 1:8 1:9 5:0 5:1 5:2 136:*. TypeScript decides where it applies. */
#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

static int load_device_program(void) {
  enum { ALLOW = 1000, DENY = 1001 }; /* jump targets, fixed up below */
  struct bpf_insn prog[64];
  int n = 0;
  prog[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);       /* r2 = ctx->access_type */
  prog[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0);     /* r3 = r2 */
  prog[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, 3, 0, 0, 0xffff);  /* w3 = device type */
  prog[n++] = INSN(BPF_ALU | BPF_RSH | BPF_K, 2, 0, 0, 16);      /* w2 = access */
  prog[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);       /* r4 = major */
  prog[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);       /* r5 = minor */
  prog[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 2, 0, 0);     /* r6 = access */
  prog[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, 6, 0, 0, BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE);
  prog[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, ALLOW, 0);   /* mknod only: allowed */
  prog[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 3, 0, DENY, BPF_DEVCG_DEV_CHAR);
  static const struct {
    int major, minor; /* minor -1: any */
  } allowed[] = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, -1}};
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
    if (allowed[i].minor < 0) {
      prog[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, 4, 0, ALLOW, allowed[i].major);
      continue;
    }
    prog[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 1, allowed[i].major); /* skip the next */
    prog[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, 5, 0, ALLOW, allowed[i].minor);
  }
  int deny_at = n;
  prog[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
  prog[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  int allow_at = n;
  prog[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
  prog[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  for (int i = 0; i < n; i++) {
    if (BPF_CLASS(prog[i].code) != BPF_JMP || BPF_OP(prog[i].code) == BPF_EXIT) continue;
    if (prog[i].off == ALLOW) prog[i].off = (short)(allow_at - (i + 1));
    else if (prog[i].off == DENY) prog[i].off = (short)(deny_at - (i + 1));
  }
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (uint64_t)(uintptr_t)prog;
  attr.insn_cnt = (uint32_t)n;
  attr.license = (uint64_t)(uintptr_t) "Apache-2.0";
  return (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
}

/* Attaches the device program to each cgroup v2 directory; 0 on success, else reported. */
static int restrict_devices(const struct spec *s) {
  if (s->n_device_cgroups == 0) return 0;
  int prog = load_device_program();
  if (prog < 0) {
    char line[256];
    snprintf(line, sizeof line, "error\tload device filter\t\t%d\t%s\n", errno, strerror(errno));
    report(line);
    return -1;
  }
  for (int i = 0; i < s->n_device_cgroups; i++) {
    int cg = open(s->device_cgroups[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.target_fd = (uint32_t)cg;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (cg < 0 || syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof attr) < 0) {
      char line[PATH_MAX + 256];
      snprintf(line, sizeof line, "error\tattach device filter\t%s\t%d\t%s\n", s->device_cgroups[i], errno, strerror(errno));
      report(line);
      if (cg >= 0) close(cg);
      close(prog);
      return -1;
    }
    close(cg);
  }
  close(prog); /* the cgroups hold the program now */
  return 0;
}

/* Creates the container's cgroups and writes their limits, while the child builds its mounts;
 * 0 on success, else the error is reported (the runtime removes what was created). */
static int create_cgroups(const struct spec *s) {
  char line[PATH_MAX + 512];
  for (int i = 0; i < s->n_cgroup_mkdirs; i++) {
    if (mkdir(s->cgroup_mkdirs[i], 0755) < 0 && errno != EEXIST) {
      snprintf(line, sizeof line, "error\tcreate cgroup\t%s\t%d\t%s\n", s->cgroup_mkdirs[i], errno, strerror(errno));
      report(line);
      return -1;
    }
  }
  for (int i = 0; i < s->n_cgroup_limits; i++) {
    const struct cgroup_limit *l = &s->cgroup_limits[i];
    int fd = open(l->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && l->optional) continue;
    ssize_t len = (ssize_t)strlen(l->value);
    if (fd < 0 || write(fd, l->value, (size_t)len) != len) {
      int err = errno;
      snprintf(line, sizeof line, "error\tset cgroup limit\t%s\t%d\twriting %s: %s\n", l->path, err, l->value, strerror(err));
      report(line);
      if (fd >= 0) close(fd);
      return -1;
    }
    close(fd);
  }
  return 0;
}

/* Writes the child's pid into each cgroup; 0 on success, else the error is reported. */
static int move_into_cgroups(const struct spec *s, pid_t pid) {
  char path[PATH_MAX], num[32];
  int len = snprintf(num, sizeof num, "%d", (int)pid);
  for (int i = 0; i < s->n_cgroups; i++) {
    snprintf(path, sizeof path, "%s/cgroup.procs", s->cgroups[i]);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, num, (size_t)len) != len) {
      char line[PATH_MAX + 256];
      snprintf(line, sizeof line, "error\tjoin cgroup\t%s\t%d\t%s\n", path, errno, strerror(errno));
      report(line);
      if (fd >= 0) close(fd);
      return -1;
    }
    close(fd);
  }
  return 0;
}

static pid_t await_exec(pid_t pid, int ep_read);

/* The container's mount namespace, held by the shim from before the exec until its exit is
 * recorded. Without it the namespace dies with the container's pid 1, and the kernel unmounts
 * its whole tree (the overlay root, /proc, /sys, /dev...) inside that process's exit, before the
 * shim can reap it: ~0.5-1 ms between the exit and its record. Held here, that teardown happens
 * when the shim exits, after exit.json is written. It stays private to the container's namespace
 * either way: nothing is ever mounted on the host. */
static int held_mnt_ns = -1;

/* Waits for the child to report its mounts built (EOF: it failed, and says why on the error
 * pipe), then opens its mount namespace; the child execs only after the shim's go-ahead, so it
 * cannot have exited yet. Failing to hold it only costs the teardown on the exit path. */
static void hold_mount_ns(pid_t child, int ready_read) {
  char byte;
  ssize_t r;
  do r = read(ready_read, &byte, 1);
  while (r < 0 && errno == EINTR);
  close(ready_read);
  if (r != 1) return;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)child);
  held_mnt_ns = open(path, O_RDONLY | O_CLOEXEC);
}

/* Every container process (pid 1 and each exec'd one) starts its own session, as runc's init
 * does: it has no controlling terminal, so a terminal descriptor that reached it anyway cannot
 * inject input into the caller's shell (TIOCSTI on a terminal that is not the caller's own
 * controlling terminal fails with EPERM without CAP_SYS_ADMIN) nor signal the caller's job. */
static void leave_session(void) {
  if (setsid() < 0) fail("setsid", NULL, errno, NULL);
}

#define HANDOVER_LOST (-2)

/* What a container with stdin or a terminal has beside its log pipes, in its shim: where input
 * goes (the write end of its stdin pipe, or its terminal's master), and the master, whose output
 * is the container's stdout. */
static int shim_input = -1;
static int shim_master = -1;

/* In the shim, after the root mount: the read end of a new pipe becomes the container's stdin
 * (it dup2s it onto 0 before exec), the write end stays here. -1 (reported) or HANDOVER_LOST as
 * hand_over_rootfs. */
static int hand_over_stdin(const struct spec *s, int sock) {
  if (!s->open_stdin || s->tty) return 0;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    report("error\tpipe\t\t0\tcannot create the stdin pipe\n");
    return -1;
  }
  int sent = send_fd(sock, p[0]);
  close(p[0]);
  if (sent < 0) {
    close(p[1]);
    return HANDOVER_LOST;
  }
  fcntl(p[1], F_SETFL, O_NONBLOCK);
  shim_input = p[1];
  return 0;
}

/* In the shim, once the child's mounts are built: its terminal's master, which it sent after
 * making /dev (a child that died before sends nothing: its error is on the error pipe). */
static void receive_terminal(const struct spec *s, int sock) {
  if (!s->tty) return;
  int master = recv_fd(sock);
  if (master < 0) return;
  shim_master = shim_input = master;
}

/* In the shim: mounts the container's root and hands it to the container's process over `sock`;
 * -1 after reporting why it could not be mounted, HANDOVER_LOST when the process is gone (its
 * own error is then on its error pipe). */
static int hand_over_rootfs(const struct spec *s, int sock) {
  struct failure f;
  int fd = try_open_rootfs_mount(s, &f);
  if (fd < 0) {
    char line[PATH_MAX + 1024];
    snprintf(line, sizeof line, "error\t%s\t%s\t%d\t%s\n", f.step, f.path, f.err, f.msg);
    report(line);
    return -1;
  }
  int sent = send_fd(sock, fd);
  close(fd);
  return sent < 0 ? HANDOVER_LOST : 0;
}

/* An exec with a terminal: its master (kept by the helper) and slave (the process's stdio). */
static int exec_tty_master = -1;
static int exec_tty_slave = -1;

/* Forks the process that becomes the container (or the exec'd process); returns its pid after
 * setup succeeded, or reports the setup error on fd 3 and returns -1. */
static pid_t start_child(const struct spec *s, int is_exec) {
  int ep[2], cp[2], mp[2], rp[2] = {-1, -1};
  if (pipe2(ep, O_CLOEXEC) < 0 || pipe2(cp, O_CLOEXEC) < 0 || pipe2(mp, O_CLOEXEC) < 0 ||
      (!is_exec && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rp) < 0)) {
    report("error\tpipe\t\t0\tcannot create a pipe\n");
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    char line[256];
    snprintf(line, sizeof line, "error\tfork\t\t%d\t%s\n", errno, strerror(errno));
    report(line);
    return -1;
  }
  if (pid == 0) {
    close(ep[0]);
    close(cp[1]);
    close(mp[0]);
    err_fd = ep[1];
    fail_prefix = ""; /* the parent's await_exec prefixes what comes through the error pipe */
    cgroups_joined_fd = cp[0];
    if (is_exec) close(mp[1]);
    else mounts_ready_fd = mp[1];
    if (!is_exec) {
      close(rp[0]);
      rootfs_sock = rp[1];
    }
    signal(SIGPIPE, SIG_DFL);
    leave_session();
    if (is_exec) {
      if (exec_tty_slave >= 0) {
        close(exec_tty_master);
        take_terminal(exec_tty_slave);
      }
      become_process(s, 0);
    }
    setup_container(s);
  }
  close(ep[1]);
  close(cp[0]);
  close(mp[1]);
  if (is_exec) close(mp[0]);
  if (!is_exec) {
    /* the mount first: the container's process must not be in its cgroups yet (see rootfs_sock) */
    close(rp[1]);
    int handed = hand_over_rootfs(s, rp[0]);
    if (handed == 0) handed = hand_over_stdin(s, rp[0]);
    if (handed == HANDOVER_LOST) {
      close(rp[0]);
      close(cp[1]);
      close(mp[0]);
      return await_exec(pid, ep[0]);
    }
    if (handed < 0 || create_cgroups(s) < 0 || restrict_devices(s) < 0 || move_into_cgroups(s, pid) < 0) {
      close(rp[0]);
      close(cp[1]);
      close(ep[0]);
      close(mp[0]);
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      return -1;
    }
    hold_mount_ns(pid, mp[0]);
    receive_terminal(s, rp[0]);
    close(rp[0]);
    if (write(cp[1], "j", 1) != 1) { /* the child died: its error is on the error pipe */
    }
  }
  close(cp[1]);
  return await_exec(pid, ep[0]);
}

/* Reads the child's error pipe until exec closes it (success: returns the pid) or a setup step
 * reports its failure (reported on fd 3; returns -1). */
static pid_t await_exec(pid_t pid, int ep_read) {
  char buf[PATH_MAX + 1024];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(ep_read, buf + n, sizeof buf - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
    if (n >= sizeof buf - 1) break;
  }
  close(ep_read);
  if (n > 0) {
    buf[n] = '\0';
    char line[PATH_MAX + 1100];
    snprintf(line, sizeof line, "error\t%s", buf);
    report(line);
    int status;
    waitpid(pid, &status, 0);
    return -1;
  }
  return pid;
}

static int exit_code_of(int status, int *signo) {
  *signo = 0;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    *signo = WTERMSIG(status);
    return 128 + *signo;
  }
  return 255;
}

/* ---------- logs ---------- */

struct log_stream {
  int fd;
  const char *name;
  char buf[16384];
  size_t len;
  /* a terminal's: what a read brought is logged at once, a line's start as a partial entry (a
   * prompt waits for no newline) */
  int flush_partial;
};

static int log_fd = -1;
static long long log_size = 0;

static void open_log(const struct spec *s) {
  log_fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  struct stat st;
  log_size = (log_fd >= 0 && fstat(log_fd, &st) == 0) ? st.st_size : 0;
}

static void rotate_log(const struct spec *s) {
  char from[PATH_MAX], to[PATH_MAX];
  close(log_fd);
  for (int i = s->log_max_files - 1; i >= 1; i--) {
    if (i == 1) snprintf(from, sizeof from, "%s", s->log_path);
    else snprintf(from, sizeof from, "%s.%d", s->log_path, i - 1);
    snprintf(to, sizeof to, "%s.%d", s->log_path, i);
    rename(from, to);
  }
  if (s->log_max_files <= 1) unlink(s->log_path);
  open_log(s);
}

static void rfc3339nano(char *out, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

static void log_line(const struct spec *s, const char *stream, const char *text, size_t len, int partial) {
  if (log_fd < 0) return;
  char head[160];
  char ts[96];
  rfc3339nano(ts, sizeof ts);
  int hlen = snprintf(head, sizeof head, "%s %s %c ", ts, stream, partial ? 'P' : 'F');
  long long entry = hlen + (long long)len + 1;
  if (s->log_max_bytes > 0 && log_size > 0 && log_size + entry > s->log_max_bytes) rotate_log(s);
  if (log_fd < 0) return;
  struct iovec iov[3] = {{head, (size_t)hlen}, {(void *)text, len}, {"\n", 1}};
  ssize_t w = writev(log_fd, iov, 3);
  if (w > 0) log_size += w;
}

/* Drains a pipe (or a terminal's master: EIO once no one holds its slave); returns 0 at EOF. */
static int pump(const struct spec *s, struct log_stream *ls) {
  ssize_t r = read(ls->fd, ls->buf + ls->len, sizeof ls->buf - ls->len);
  if (r < 0) return errno == EINTR || errno == EAGAIN;
  if (r == 0) {
    if (ls->len > 0) log_line(s, ls->name, ls->buf, ls->len, 0);
    ls->len = 0;
    return 0;
  }
  ls->len += (size_t)r;
  size_t start = 0;
  for (size_t i = 0; i < ls->len; i++) {
    if (ls->buf[i] == '\n') {
      log_line(s, ls->name, ls->buf + start, i - start, 0);
      start = i + 1;
    }
  }
  if ((start == 0 && ls->len == sizeof ls->buf) || (ls->flush_partial && start < ls->len)) {
    /* a line longer than the buffer (or a terminal's unfinished line): emitted in parts */
    log_line(s, ls->name, ls->buf + start, ls->len - start, 1);
    start = ls->len;
  }
  memmove(ls->buf, ls->buf + start, ls->len - start);
  ls->len -= start;
  return 1;
}

static void write_exit_file(const struct spec *s, int code, int signo) {
  char tmp[PATH_MAX], body[256], ts[96];
  rfc3339nano(ts, sizeof ts);
  snprintf(tmp, sizeof tmp, "%s.tmp", s->exit_path);
  int n = snprintf(body, sizeof body, "{\"exitCode\":%d,\"signal\":%d,\"finishedAt\":\"%s\"}\n", code, signo, ts);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return;
  write_all(fd, body, (size_t)n);
  /* no fsync: the file must outlive the shim and the agent, not a reboot (which the container
   * does not survive either); the rename alone makes it appear whole to readers */
  close(fd);
  rename(tmp, s->exit_path);
}

/* Detach: the process the launcher forked exits at once, so the shim is nobody's child but init's
 * (or a subreaper's) and survives whatever started it. That process called setsid(). Returns the
 * signalfd the monitor loop reads; `mask` is left blocked. */
static int shim_detach(sigset_t *mask) {
  pid_t p = fork();
  if (p < 0) {
    report("error\tfork shim\t\t0\tcannot fork\n");
    _exit(125);
  }
  if (p > 0) _exit(0);
  if (chdir("/") < 0) { /* not fatal: only keeps the shim from pinning a directory */
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(mask);
  sigaddset(mask, SIGCHLD);
  sigaddset(mask, SIGTERM);
  sigaddset(mask, SIGINT);
  sigaddset(mask, SIGHUP);
  sigprocmask(SIG_BLOCK, mask, NULL);
  return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int shim_monitor(const struct spec *s, pid_t child, int out_read, int err_read, int sfd);

/* Runs start(arg), which forks the container's process, with the log pipes' write ends (out[1],
 * errp[1]) as its stdout and stderr (dup2 clears O_CLOEXEC on 1 and 2) and no signal blocked; then
 * puts the shim's own stdout and stderr back, blocks `mask` again and closes the two write ends.
 * Returns what start returned: the child's pid, or < 0 if it was not started. */
static pid_t start_on_log_pipes(const int out[2], const int errp[2], const sigset_t *mask, pid_t (*start)(void *),
                                void *arg) {
  int saved_out = dup(1), saved_err = dup(2);
  dup2(out[1], 1);
  dup2(errp[1], 2);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  pid_t child = start(arg);
  sigprocmask(SIG_BLOCK, mask, NULL);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  close(out[1]);
  close(errp[1]);
  return child;
}

static pid_t start_cold_child(void *s) { return start_child(s, 0); }

static int run_shim(const struct spec *s) {
  sigset_t mask;
  int sfd = shim_detach(&mask);

  int out[2], errp[2];
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
    report("error\tpipe\t\t0\tcannot create log pipes\n");
    return 125;
  }
  if (s->new_ns & CLONE_NEWPID) {
    if (unshare(CLONE_NEWPID) < 0) {
      char line[256];
      snprintf(line, sizeof line, "error\tunshare pid\t\t%d\t%s\n", errno, strerror(errno));
      report(line);
      return 125;
    }
  }
  unstarted = s;
  pid_t child = start_on_log_pipes(out, errp, &mask, start_cold_child, (void *)s);
  if (child < 0) return 125;
  unstarted = NULL;
  return shim_monitor(s, child, out[0], errp[0], sfd);
}

/* How long the log pipes are still read once the container's pid 1 is reaped. Normally they are
 * at EOF by then (the kernel kills the rest of the pid namespace), but a write end can live on
 * elsewhere: a container may pass its stdout to another one over a unix socket. Without a
 * deadline that one could keep the exit unrecorded (the container shown running, kill a no-op,
 * rm failing) and go on writing into this container's log. */
#define LOG_DRAIN_AFTER_EXIT_MS 1000

static long long monotonic_ms(void);

/* Input to a container with stdin or a terminal: the FIFO writers put bytes in (attach, the CLI),
 * copied by the shim to the container's stdin pipe or terminal, with the control FIFO beside it.
 * Both FIFOs are made here (0600, in the container's state directory, which only root reaches)
 * and opened with a write end of the shim's own, so that the last writer leaving is no EOF. */
struct shim_io {
  int in_fd, in_keep;   /* the stdin FIFO, and the shim's own write end of it */
  struct control_lines ctl;
  int ctl_keep;
  char buf[16384];      /* read from the FIFO, not yet written to the container */
  size_t len, off;
};

static int open_fifo(const char *path, int *keep) {
  unlink(path);
  if (mkfifo(path, 0600) < 0) return -1;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  *keep = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  return fd;
}

static void shim_io_open(const struct spec *s, struct shim_io *io) {
  memset(io, 0, sizeof *io);
  io->in_fd = io->in_keep = io->ctl.fd = io->ctl_keep = -1;
  if (s->open_stdin && s->stdin_path && shim_input >= 0) io->in_fd = open_fifo(s->stdin_path, &io->in_keep);
  if ((s->open_stdin || s->tty) && s->control_path) io->ctl.fd = open_fifo(s->control_path, &io->ctl_keep);
}

static void shim_io_close(const struct spec *s, struct shim_io *io) {
  int fds[] = {io->in_fd, io->in_keep, io->ctl.fd, io->ctl_keep};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (fds[i] >= 0) close(fds[i]);
  io->in_fd = io->in_keep = io->ctl.fd = io->ctl_keep = -1;
  /* a writer that comes after the exit finds no FIFO, rather than one nobody reads */
  if (s->stdin_path) unlink(s->stdin_path);
  if (s->control_path) unlink(s->control_path);
}

/* "close-stdin": the container's stdin pipe ends (with a terminal: an end-of-file character, which
 * is what a terminal can do); "resize ROWS COLS": the terminal's size. */
static void shim_control(const char *line, void *arg) {
  (void)arg;
  if (!strcmp(line, "close-stdin")) {
    if (shim_master >= 0) {
      char eof = 4;
      if (write(shim_master, &eof, 1) < 0) { /* a full terminal: dropped */
      }
    } else if (shim_input >= 0) {
      close(shim_input);
      shim_input = -1;
    }
  } else {
    resize_terminal(shim_master, line);
  }
}

/* Reports the started container, then writes its output as log lines until it exits and its
 * pipes are drained (or LOG_DRAIN_AFTER_EXIT_MS passed), records the exit and closes the pipes:
 * a process still holding a write end then gets EPIPE. A container with a terminal logs what its
 * master reads as stdout (its log pipes end at once: the terminal replaced them); one with stdin
 * or a terminal takes input from its FIFOs (shim_io) until it exits. */
static int shim_monitor(const struct spec *s, pid_t child, int out_read, int err_read, int sfd) {
  open_log(s);
  struct shim_io io;
  shim_io_open(s, &io);
  char line[64];
  snprintf(line, sizeof line, "ok\t%d\t%d\n", (int)child, (int)getpid());
  report(line);
  close(REPORT_FD);

  static struct log_stream streams[3];
  streams[0] = (struct log_stream){.fd = out_read, .name = "stdout"};
  streams[1] = (struct log_stream){.fd = err_read, .name = "stderr"};
  streams[2] = (struct log_stream){.fd = shim_master, .name = "stdout", .flush_partial = 1};
  int open_streams = shim_master >= 0 ? 3 : 2, exited = 0, code = 0, signo = 0;
  long long drain_until = 0;
  while (open_streams > 0 || !exited) {
    int timeout_ms = -1;
    if (exited) {
      long long left = drain_until - monotonic_ms();
      if (left <= 0) break;
      timeout_ms = (int)left;
    }
    struct pollfd pfds[8];
    int n = 0;
    pfds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    int first_stream = n;
    for (int i = 0; i < 3; i++)
      if (streams[i].fd >= 0) pfds[n++] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
    int streams_end = n, in_at = -1, to_at = -1, ctl_at = -1;
    if (!exited && io.in_fd >= 0 && io.len == 0 && shim_input >= 0) {
      in_at = n;
      pfds[n++] = (struct pollfd){.fd = io.in_fd, .events = POLLIN};
    }
    if (!exited && io.len > 0 && shim_input >= 0) {
      to_at = n;
      pfds[n++] = (struct pollfd){.fd = shim_input, .events = POLLOUT};
    }
    if (!exited && io.ctl.fd >= 0) {
      ctl_at = n;
      pfds[n++] = (struct pollfd){.fd = io.ctl.fd, .events = POLLIN};
    }
    if (poll(pfds, (nfds_t)n, timeout_ms) < 0 && errno != EINTR) break;
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
      /* SIGTERM/SIGINT/SIGHUP are ignored: stopping is the runtime's job, through the pid. */
    }
    int status;
    pid_t w;
    while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
      if (w == child) {
        code = exit_code_of(status, &signo);
        exited = 1;
        drain_until = monotonic_ms() + LOG_DRAIN_AFTER_EXIT_MS;
      }
    }
    for (int i = first_stream; i < streams_end; i++) {
      if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      for (int k = 0; k < 3; k++) {
        if (streams[k].fd != pfds[i].fd) continue;
        if (!pump(s, &streams[k])) {
          if (streams[k].fd != shim_master) close(streams[k].fd);
          streams[k].fd = -1;
          open_streams--;
        }
      }
    }
    if (in_at >= 0 && (pfds[in_at].revents & (POLLIN | POLLHUP))) {
      ssize_t r = read(io.in_fd, io.buf, sizeof io.buf);
      if (r > 0) {
        io.len = (size_t)r;
        io.off = 0;
      }
    }
    if (to_at >= 0 && (pfds[to_at].revents & (POLLOUT | POLLERR | POLLHUP)) && shim_input >= 0) {
      ssize_t w2 = write(shim_input, io.buf + io.off, io.len - io.off);
      if (w2 > 0) io.off += (size_t)w2;
      else if (w2 < 0 && errno != EAGAIN && errno != EINTR) io.off = io.len; /* the container closed its stdin */
      if (io.off >= io.len) io.len = io.off = 0;
    }
    if (ctl_at >= 0 && (pfds[ctl_at].revents & (POLLIN | POLLHUP))) read_control(&io.ctl, shim_control, NULL);
  }
  for (int k = 0; k < 3; k++) {
    if (streams[k].fd < 0) continue;
    if (streams[k].len > 0) log_line(s, streams[k].name, streams[k].buf, streams[k].len, 0);
    if (streams[k].fd != shim_master) close(streams[k].fd);
  }
  shim_io_close(s, &io);
  if (shim_input >= 0 && shim_input != shim_master) close(shim_input);
  if (shim_master >= 0) close(shim_master);
  /* no fsync of the log: readers see it through the page cache, and only exit.json must be durable */
  write_exit_file(s, code, signo);
  if (held_mnt_ns >= 0) close(held_mnt_ns); /* the container's mounts go now, after the record */
  return 0;
}

/* How long an exec's terminal is still read once its process exited: a process it left behind
 * may hold the terminal open (as relayExec's EXEC_OUTPUT_DRAIN_MS for pipes). */
#define EXEC_DRAIN_AFTER_EXIT_MS 1000

struct byte_buffer {
  char data[65536];
  size_t len, off;
};

/* Writes what `b` holds to fd (non-blocking); -1 when fd failed (the reader went away). */
static int flush_buffer(int fd, struct byte_buffer *b) {
  ssize_t w = write(fd, b->data + b->off, b->len - b->off);
  if (w < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
  b->off += (size_t)w;
  if (b->off >= b->len) b->len = b->off = 0;
  return 0;
}

static void exec_control(const char *line, void *arg) { resize_terminal(*(int *)arg, line); }

/* exec with a terminal: stdin to the master, the master to stdout, "resize" lines from fd 4,
 * signals passed on to the process (a terminal's Ctrl-C is a byte in stdin, not a signal here).
 * stdin's end leaves the terminal open (a terminal has no end of input, only ^D, which the
 * caller sends as a byte). Returns the process's status once it exited and the terminal is
 * drained (EIO: nobody holds the slave) or EXEC_DRAIN_AFTER_EXIT_MS passed. */
static int relay_terminal(pid_t child, int master, int sfd) {
  signal(SIGPIPE, SIG_IGN);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  struct control_lines ctl = {.fd = fcntl(4, F_GETFD) >= 0 ? 4 : -1};
  if (ctl.fd >= 0) fcntl(ctl.fd, F_SETFL, fcntl(ctl.fd, F_GETFL) | O_NONBLOCK);
  static struct byte_buffer in, out;
  int in_open = 1, out_open = 1, stdout_gone = 0, exited = 0, code = 0, signo;
  long long drain_until = 0;
  for (;;) {
    if (exited && !out_open && (out.len == 0 || stdout_gone)) break;
    int timeout_ms = -1;
    if (exited) {
      long long left = drain_until - monotonic_ms();
      if (left <= 0) break;
      timeout_ms = (int)left;
    }
    struct pollfd p[5];
    int n = 0, at_sig, at_in = -1, at_master = -1, at_out = -1, at_ctl = -1;
    at_sig = n;
    p[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    if (in_open && in.len == 0 && !exited) {
      at_in = n;
      p[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    }
    short master_events = (short)((out_open && out.len == 0 ? POLLIN : 0) | (in.len > 0 && !exited ? POLLOUT : 0));
    if (master_events) {
      at_master = n;
      p[n++] = (struct pollfd){.fd = master, .events = master_events};
    }
    if (out.len > 0 && !stdout_gone) {
      at_out = n;
      p[n++] = (struct pollfd){.fd = 1, .events = POLLOUT};
    }
    if (ctl.fd >= 0) {
      at_ctl = n;
      p[n++] = (struct pollfd){.fd = ctl.fd, .events = POLLIN};
    }
    if (poll(p, (nfds_t)n, timeout_ms) < 0 && errno != EINTR) break;
    if (p[at_sig].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si)
        if (si.ssi_signo != SIGCHLD) kill(child, (int)si.ssi_signo);
    }
    int status;
    if (!exited && waitpid(child, &status, WNOHANG) == child) {
      code = exit_code_of(status, &signo);
      exited = 1;
      drain_until = monotonic_ms() + EXEC_DRAIN_AFTER_EXIT_MS;
    }
    if (at_in >= 0 && (p[at_in].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = read(0, in.data, sizeof in.data);
      if (r > 0) in.len = (size_t)r, in.off = 0;
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) in_open = 0;
    }
    if (at_master >= 0) {
      short ev = p[at_master].revents;
      if ((ev & POLLOUT) && in.len > 0 && flush_buffer(master, &in) < 0) in.len = in.off = 0;
      if ((ev & (POLLIN | POLLHUP | POLLERR)) && out_open && out.len == 0) {
        ssize_t r = read(master, out.data, sizeof out.data);
        if (r > 0) out.len = (size_t)r, out.off = 0;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR)) out_open = 0; /* EIO: no slave left */
      }
    }
    if (stdout_gone) out.len = out.off = 0;
    if (at_out >= 0 && (p[at_out].revents & (POLLOUT | POLLERR | POLLHUP)) && flush_buffer(1, &out) < 0) {
      stdout_gone = 1; /* the caller went away: the output is dropped, the process goes on */
      out.len = out.off = 0;
    }
    if (at_ctl >= 0 && (p[at_ctl].revents & (POLLIN | POLLHUP)) && !read_control(&ctl, exec_control, &master)) {
      close(ctl.fd);
      ctl.fd = -1;
    }
  }
  if (!exited) {
    int status;
    waitpid(child, &status, 0);
    code = exit_code_of(status, &signo);
  }
  return code;
}

static int run_exec(const struct spec *s) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no ptrace of the helper from inside (CVE-2016-9962) */
  join_cgroups(s); /* the helper itself, so the forked process is born inside */
  join_namespaces(s, 1);
  if (s->tty) { /* in the container's mount namespace: its devpts */
    const char *step;
    exec_tty_master = open_pty(s->tty_rows, s->tty_cols, &exec_tty_slave, &step);
    if (exec_tty_master < 0) fail(step, "/dev/pts/ptmx", errno, NULL);
  }
  sigset_t mask, old;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGQUIT);
  sigaddset(&mask, SIGUSR2);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, &old);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  sigprocmask(SIG_SETMASK, &old, NULL);
  pid_t child = start_child(s, 1);
  if (exec_tty_slave >= 0) close(exec_tty_slave);
  if (child < 0) return 125;
  sigprocmask(SIG_BLOCK, &mask, NULL);
  char line[64];
  snprintf(line, sizeof line, "ok\t%d\t%d\n", (int)child, (int)getpid());
  report(line);
  close(REPORT_FD);
  if (exec_tty_master >= 0) {
    fcntl(sfd, F_SETFL, O_NONBLOCK);
    return relay_terminal(child, exec_tty_master, sfd);
  }
  for (;;) {
    int status;
    pid_t w = waitpid(child, &status, WNOHANG);
    if (w == child) {
      int signo;
      return exit_code_of(status, &signo);
    }
    struct signalfd_siginfo si;
    /* signals are passed on; SIGUSR2 (which SIGKILL cannot be, being uncatchable) kills it */
    if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGCHLD)
      kill(child, si.ssi_signo == SIGUSR2 ? SIGKILL : (int)si.ssi_signo);
  }
}

/* port-forward: a TCP connection made from inside a pod's network namespace to its loopback,
 * copied to and from the caller's stdin and stdout. Only the network namespace is entered: the
 * helper stays in the host's mount and pid namespaces, where the pod's processes cannot reach it,
 * and runs nothing of the pod's. Each direction ends on its own (stdin's end shuts the
 * connection's write side; the connection's end closes stdout); the helper exits when both
 * ended, or when either side fails (a reset, the caller gone). */
static int run_port_forward(const char *pid_text, const char *start_time, const char *port_text) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  err_fd = REPORT_FD;
  fail_prefix = "error\t";
  char *end;
  long port = strtol(port_text, &end, 10);
  if (*end || port < 1 || port > 65535) fail("usage", port_text, EINVAL, "port %s is not 1-65535", port_text);
  static struct spec s;
  s.join_pid = atoi(pid_text);
  s.join_start_time = start_time;
  s.joins[0] = "net";
  s.n_joins = 1;
  join_namespaces(&s, 0);
  int sock = -1, err = 0;
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  struct {
    int family;
    struct sockaddr *addr;
    socklen_t len;
  } tries[] = {{AF_INET, (struct sockaddr *)&v4, sizeof v4}, {AF_INET6, (struct sockaddr *)&v6, sizeof v6}};
  for (size_t i = 0; i < 2 && sock < 0; i++) {
    int fd = socket(tries[i].family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      if (!err) err = errno;
      continue;
    }
    int r;
    do r = connect(fd, tries[i].addr, tries[i].len);
    while (r < 0 && errno == EINTR);
    if (r == 0) sock = fd;
    else {
      if (!err) err = errno; /* the IPv4 answer, unless there was none */
      close(fd);
    }
  }
  if (sock < 0) fail("connect", port_text, err, "connect to port %ld in the pod: %s", port, strerror(err));
  int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char line[64];
  snprintf(line, sizeof line, "ok\t0\t%d\n", (int)getpid());
  write_all(REPORT_FD, line, strlen(line));
  close(REPORT_FD);
  signal(SIGPIPE, SIG_IGN);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
  static struct byte_buffer up, down; /* caller -> pod, pod -> caller */
  int up_open = 1, down_open = 1;
  while (up_open || up.len > 0 || down_open || down.len > 0) {
    struct pollfd p[4];
    int n = 0, at_in = -1, at_sock = -1, at_out = -1;
    if (up_open && up.len == 0) {
      at_in = n;
      p[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    }
    short sock_events = (short)((down_open && down.len == 0 ? POLLIN : 0) | (up.len > 0 ? POLLOUT : 0));
    if (sock_events) {
      at_sock = n;
      p[n++] = (struct pollfd){.fd = sock, .events = sock_events};
    }
    if (down.len > 0) {
      at_out = n;
      p[n++] = (struct pollfd){.fd = 1, .events = POLLOUT};
    }
    if (n == 0) break;
    if (poll(p, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (at_in >= 0 && p[at_in].revents) {
      ssize_t r = read(0, up.data, sizeof up.data);
      if (r > 0) up.len = (size_t)r, up.off = 0;
      else if (r == 0) {
        up_open = 0;
        shutdown(sock, SHUT_WR);
      } else if (errno != EAGAIN && errno != EINTR) return 1;
    }
    if (at_sock >= 0) {
      short ev = p[at_sock].revents;
      if ((ev & (POLLOUT | POLLERR | POLLHUP)) && up.len > 0) {
        if (flush_buffer(sock, &up) < 0) return 1; /* reset by the pod */
        if (up.len == 0 && !up_open) shutdown(sock, SHUT_WR);
      }
      if ((ev & (POLLIN | POLLHUP | POLLERR)) && down_open && down.len == 0) {
        ssize_t r = read(sock, down.data, sizeof down.data);
        if (r > 0) down.len = (size_t)r, down.off = 0;
        else if (r == 0) {
          down_open = 0;
          close(1);
        } else if (errno != EAGAIN && errno != EINTR) return 1;
      }
    }
    if (at_out >= 0 && p[at_out].revents) {
      if (flush_buffer(1, &down) < 0) return 1; /* the caller went away */
      if (down.len == 0 && !down_open) close(1);
    }
  }
  close(sock);
  return 0;
}

/* Whether the kernel takes an overlay with an upper dir here; TypeScript judges the result. */
static int run_probe_overlay(const char *dir) {
  char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX];
  if (snprintf(lower, sizeof lower, "%s/lower", dir) >= (int)sizeof lower || snprintf(upper, sizeof upper, "%s/upper", dir) >= (int)sizeof upper ||
      snprintf(work, sizeof work, "%s/work", dir) >= (int)sizeof work)
    die_usage("probe directory path too long");
  struct spec s;
  memset(&s, 0, sizeof s);
  char opt_lower[PATH_MAX + 16], opt_upper[PATH_MAX + 16], opt_work[PATH_MAX + 16];
  snprintf(opt_lower, sizeof opt_lower, "lowerdir=%s", lower);
  snprintf(opt_upper, sizeof opt_upper, "upperdir=%s", upper);
  snprintf(opt_work, sizeof opt_work, "workdir=%s", work);
  s.rootfs_type = "overlay";
  s.rootfs_source = "overlay";
  s.rootfs_path = dir;
  s.rootfs_opts[s.n_rootfs_opts++] = opt_lower;
  s.rootfs_opts[s.n_rootfs_opts++] = opt_upper;
  s.rootfs_opts[s.n_rootfs_opts++] = opt_work;
  err_fd = REPORT_FD;
  fail_prefix = "error\t";
  int mfd = open_rootfs_mount(&s);
  int fd = openat(mfd, "probe", O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail("write through overlay", "probe", errno, NULL);
  if (write(fd, "upper", 5) != 5) fail("write through overlay", "probe", errno, NULL);
  close(fd);
  close(mfd);
  char line[64];
  snprintf(line, sizeof line, "ok\t0\t%d\n", (int)getpid());
  report(line);
  return 0;
}

/* An image's init layer: the prepared snapshot's root mount (TYPE SOURCE OPTION...) entered in a
 * private mount namespace, and the mount points every container needs created in it by the code
 * that would otherwise create them in each container's writable layer: ensure_mount_points() and
 * ensure_mount_target() for each FILE (the bind targets the runtime always mounts). The root is a
 * detached mount entered by chroot, so every path (a hostile image's links included) resolves
 * inside it; it is never attached anywhere and goes away with the helper. */
static int run_init_layer(int argc, char **argv) {
  err_fd = REPORT_FD;
  fail_prefix = "error\t";
  if (argc < 5) die_usage("usage: skiff-helper init-layer TYPE SOURCE [OPTION...] -- [FILE...]");
  struct spec s;
  memset(&s, 0, sizeof s);
  s.rootfs_type = argv[2];
  s.rootfs_source = argv[3];
  s.rootfs_path = "init layer";
  int i = 4;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (s.n_rootfs_opts >= MAX_ITEMS) die_usage("init-layer: too many root mount options");
    s.rootfs_opts[s.n_rootfs_opts++] = argv[i];
  }
  if (i == argc) die_usage("init-layer: no -- before the files");
  if (unshare(CLONE_NEWNS) < 0) fail("unshare", NULL, errno, NULL);
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail("make mounts private", "/", errno, NULL);
  int mfd = open_rootfs_mount(&s);
  if (fchdir(mfd) < 0) fail("chdir", "init layer", errno, NULL);
  if (chroot(".") < 0) fail("chroot", "init layer", errno, NULL);
  if (chdir("/") < 0) fail("chdir", "/", errno, NULL);
  close(mfd);
  ensure_mount_points();
  for (i++; i < argc; i++) close(ensure_mount_target("create mount point", argv[i], 1));
  char line[64];
  snprintf(line, sizeof line, "ok\t0\t%d\n", (int)getpid());
  report(line);
  return 0;
}

/* ---------- warm shims: a container process parked in its cgroups ahead of time ---------- */

/* On cgroup v1 the first move of a process into a cgroup after a quiet spell waits for an RCU
 * grace period (~10 ms here, on about half of back-to-back starts). A process forked inside a
 * cgroup is born there without that wait. So the launcher keeps a few shims ready: each has
 * already unshared its pid namespace, forked its container's pid 1 and moved it into empty
 * cgroups named warm-<shim pid> under the runtime's cgroup parents. A start hands one the spec:
 * the shim renames those cgroups to the container's, writes the limits and lets the child set
 * up and exec, all before exec exactly as a cold start does. A warm shim whose launcher goes
 * away (EOF on its control pipe) kills its child and removes its cgroups. */

#define WARM_CTL_FD 4
#define MAX_PARENTS 16

static const char *warm_parents[MAX_PARENTS];
static int n_warm_parents;

static void warm_dir(char *out, size_t len, int i, pid_t shim) {
  snprintf(out, len, "%s/warm-%d", warm_parents[i], (int)shim);
}

static void warm_discard(pid_t child) {
  char dir[PATH_MAX];
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  for (int i = 0; i < n_warm_parents; i++) {
    warm_dir(dir, sizeof dir, i, getpid());
    rmdir(dir);
  }
}

/* Reads one NUL-terminated path from fd; 0 at EOF before any byte. */
static int read_path(int fd, char *out, size_t len) {
  size_t n = 0;
  while (n < len - 1) {
    ssize_t r = read(fd, out + n, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (out[n] == '\0') return 1;
    n++;
  }
  out[n] = '\0';
  return n > 0;
}

/* The warm shim's extra pipes, beside the log pipes: gp carries the spec path to the child, ep its
 * setup errors back, cp and mp the cgroups-joined and mounts-ready handshakes. */
struct warm_pipes {
  int *gp, *ep, *cp, *mp, *rp;
};

/* Forks the warm child, which waits for a spec path on gp and then sets up as a cold child does. */
static pid_t fork_warm_child(void *arg) {
  const struct warm_pipes *p = arg;
  pid_t child = fork();
  if (child == 0) {
    close(p->ep[0]);
    close(p->cp[1]);
    close(p->gp[1]);
    close(p->mp[0]);
    close(WARM_CTL_FD);
    close(REPORT_FD);
    err_fd = p->ep[1];
    cgroups_joined_fd = p->cp[0];
    mounts_ready_fd = p->mp[1];
    close(p->rp[0]);
    rootfs_sock = p->rp[1];
    signal(SIGPIPE, SIG_DFL);
    leave_session();
    static char path[PATH_MAX];
    if (!read_path(p->gp[0], path, sizeof path)) _exit(0); /* discarded unused */
    close(p->gp[0]);
    static struct spec cs;
    parse_spec(path, &cs);
    setup_container(&cs);
  }
  return child;
}

static int run_warm_shim(void) {
  sigset_t mask;
  int sfd = shim_detach(&mask);
  int out[2], errp[2], gp[2], ep[2], cp[2], mp[2], rp[2];
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(gp, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 ||
      pipe2(cp, O_CLOEXEC) < 0 || pipe2(mp, O_CLOEXEC) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rp) < 0 ||
      unshare(CLONE_NEWPID) < 0)
    return 125;
  struct warm_pipes wp = {.gp = gp, .ep = ep, .cp = cp, .mp = mp, .rp = rp};
  pid_t child = start_on_log_pipes(out, errp, &mask, fork_warm_child, &wp);
  close(ep[1]);
  close(cp[0]);
  close(gp[0]);
  close(mp[1]);
  close(rp[1]);
  if (child < 0) return 125;

  /* park the child in this shim's warm cgroups: the grace period is paid here, before any start */
  char dir[PATH_MAX], procs[PATH_MAX + 16], num[32];
  int num_len = snprintf(num, sizeof num, "%d", (int)child);
  for (int i = 0; i < n_warm_parents; i++) {
    warm_dir(dir, sizeof dir, i, getpid());
    snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
    int fd = -1;
    if (mkdir(dir, 0755) < 0 || (fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0 || write(fd, num, (size_t)num_len) != num_len) {
      if (fd >= 0) close(fd);
      warm_discard(child);
      return 125;
    }
    close(fd);
  }
  report("ready\n");

  static char spec_path[PATH_MAX];
  if (!read_path(WARM_CTL_FD, spec_path, sizeof spec_path)) {
    warm_discard(child);
    return 0;
  }
  close(WARM_CTL_FD);
  static struct spec s;
  parse_spec(spec_path, &s);
  if (!s.rootfs_path || !s.log_path || !s.exit_path || !(s.new_ns & CLONE_NEWPID)) {
    report("error\tusage\t\t0\tskiff-helper: a warm shim needs a container spec with a new pid namespace\n");
    warm_discard(child);
    return 125;
  }
  unstarted = &s;
  /* the warm cgroups become the container's: each join dir must sit under one warm parent */
  int adopted[MAX_PARENTS] = {0};
  int ok = s.n_cgroups == n_warm_parents;
  for (int i = 0; ok && i < s.n_cgroups; i++) {
    const char *slash = strrchr(s.cgroups[i], '/');
    int k = 0;
    for (; k < n_warm_parents; k++) {
      size_t plen = strlen(warm_parents[k]);
      if (!adopted[k] && slash && (size_t)(slash - s.cgroups[i]) == plen && !strncmp(s.cgroups[i], warm_parents[k], plen)) break;
    }
    if (k == n_warm_parents) {
      ok = 0;
      break;
    }
    warm_dir(dir, sizeof dir, k, getpid());
    if (rename(dir, s.cgroups[i]) < 0) {
      char line[PATH_MAX + 256];
      snprintf(line, sizeof line, "error\tadopt warm cgroup\t%s\t%d\t%s\n", s.cgroups[i], errno, strerror(errno));
      report(line);
      warm_discard(child);
      return 125;
    }
    adopted[k] = 1;
  }
  if (!ok) {
    report("error\tadopt warm cgroup\t\t0\tthe spec's cgroups are not under the launcher's cgroup parents\n");
    warm_discard(child);
    return 125;
  }
  /* limits before the child does anything: it is inside already, so device rules written while
   * it made /dev would race with its mknods */
  if (create_cgroups(&s) < 0 || restrict_devices(&s) < 0) {
    close(cp[1]);
    close(ep[0]);
    warm_discard(child);
    return 125;
  }
  write_all(gp[1], spec_path, strlen(spec_path) + 1);
  close(gp[1]);
  /* made by the shim while the child reads the spec and unshares: the child sits in its cgroups */
  int handed = hand_over_rootfs(&s, rp[0]);
  if (handed == 0) handed = hand_over_stdin(&s, rp[0]);
  if (handed == -1) { /* reported; a lost child (HANDOVER_LOST) reports its own error below */
    close(rp[0]);
    warm_discard(child);
    return 125;
  }
  hold_mount_ns(child, mp[0]);
  if (handed == 0) receive_terminal(&s, rp[0]);
  close(rp[0]);
  if (write(cp[1], "j", 1) != 1) { /* the child died: its error is on the error pipe */
  }
  close(cp[1]);
  if (await_exec(child, ep[0]) < 0) return 125;
  unstarted = NULL;
  return shim_monitor(&s, child, out[0], errp[0], sfd);
}

/* ---------- launcher: shims forked from a small process instead of from Node ---------- */

/* Node forking itself for every container costs 1-3 ms, more as the agent grows (fork copies the
 * page tables of the whole process); forking this static helper costs ~0.1 ms. */

#define LAUNCH_MAX 64

struct launch {
  char id[24];
  int fd; /* the read end of this shim's report pipe */
  char buf[PATH_MAX + 1200];
  size_t len;
};

static void launcher_answer(const char *id, const char *line, size_t len) {
  char out[PATH_MAX + 1300];
  int n = snprintf(out, sizeof out, "%s\t%.*s", id, (int)len, line);
  if (n > (int)sizeof out - 2) n = (int)sizeof out - 2;
  if (out[n - 1] != '\n') out[n++] = '\n';
  write_all(1, out, (size_t)n);
}

struct warm {
  int ctl; /* write end of the shim's control pipe: the spec path goes here */
  int rep; /* read end of its report pipe: "ready", then the start's report */
  int ready;
};

/* Forks a warm shim (see run_warm_shim); 0 on success. */
static int launcher_park(struct warm *w) {
  int rp[2], ctl[2];
  if (pipe2(rp, O_CLOEXEC) < 0) return -1;
  if (pipe2(ctl, O_CLOEXEC) < 0) {
    close(rp[0]);
    close(rp[1]);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(rp[0]);
    close(rp[1]);
    close(ctl[0]);
    close(ctl[1]);
    return -1;
  }
  if (pid == 0) {
    setsid();
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0 || dup2(rp[1], REPORT_FD) < 0 ||
        dup2(ctl[0], WARM_CTL_FD) < 0)
      _exit(125);
    close_range(WARM_CTL_FD + 1, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    _exit(run_warm_shim());
  }
  close(rp[1]);
  close(ctl[0]);
  w->ctl = ctl[1];
  w->rep = rp[0];
  w->ready = 0;
  return 0;
}

/* Forks the process that becomes the shim's parent for a moment; returns the report pipe, or -1
 * after answering with the error. */
static int launcher_start(const char *id, const char *spec_path) {
  int rp[2];
  if (pipe2(rp, O_CLOEXEC) < 0) {
    char line[256];
    int n = snprintf(line, sizeof line, "error\tpipe\t\t%d\t%s\n", errno, strerror(errno));
    launcher_answer(id, line, (size_t)n);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    char line[256];
    int n = snprintf(line, sizeof line, "error\tfork\t\t%d\t%s\n", errno, strerror(errno));
    launcher_answer(id, line, (size_t)n);
    close(rp[0]);
    close(rp[1]);
    return -1;
  }
  if (pid == 0) {
    /* as Node's detached spawn did: own session, stdio on /dev/null, only the report pipe open */
    setsid();
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0 || dup2(rp[1], REPORT_FD) < 0)
      _exit(125);
    close_range(REPORT_FD + 1, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    struct spec s;
    parse_spec(spec_path, &s);
    if (!s.rootfs_path || !s.log_path || !s.exit_path) die_usage("spec: shim needs rootfs.path, log.path and exit_path");
    _exit(run_shim(&s));
  }
  close(rp[1]);
  return rp[0];
}

/* `warm_target` shims are kept ready once the first start was asked for (a one-off CLI start
 * then parks none it does not use); `parents` are the cgroup directories they park under. */
#define PARK_QUIET_MS 20

static long long monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run_launcher(int warm_target) {
  long long last_activity_ms = 0;
  signal(SIGPIPE, SIG_IGN); /* a caller that went away is seen as EPIPE / EOF */
  if (chdir("/") < 0) { /* not fatal: only keeps the launcher from pinning the caller's directory */
  }
  static struct launch launches[LAUNCH_MAX];
  int n_launches = 0, input_open = 1, started = 0;
  static struct warm warms[8];
  int n_warms = 0;
  if (warm_target > 8) warm_target = 8;
  static char in[PATH_MAX + 64];
  size_t in_len = 0;
  for (;;) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    /* parking moves a process into cgroups, which briefly holds up every fork and exit on the
     * machine: not while a start is in flight, and not right after one (its container may be
     * exiting), so it lands between starts */
    int quiet = n_launches == 0 && monotonic_ms() - last_activity_ms >= PARK_QUIET_MS;
    while (input_open && started && quiet && n_warms < warm_target && launcher_park(&warms[n_warms]) == 0) n_warms++;
    /* requests already read, as far as there is room for them */
    char *end;
    while (n_launches < LAUNCH_MAX && (end = memchr(in, '\0', in_len)) != NULL) {
      char *tab = memchr(in, '\t', (size_t)(end - in));
      size_t id_len = tab ? (size_t)(tab - in) : sizeof launches[0].id;
      if (id_len < sizeof launches[0].id) {
        struct launch *l = &launches[n_launches];
        memcpy(l->id, in, id_len);
        l->id[id_len] = '\0';
        l->len = 0;
        l->fd = -1;
        started = 1;
        last_activity_ms = monotonic_ms();
        for (int w = 0; w < n_warms; w++) {
          if (!warms[w].ready) continue;
          /* a warm shim takes the spec path; its report comes on the same pipe */
          write_all(warms[w].ctl, tab + 1, strlen(tab + 1) + 1);
          close(warms[w].ctl);
          l->fd = warms[w].rep;
          warms[w] = warms[--n_warms];
          break;
        }
        if (l->fd < 0) l->fd = launcher_start(l->id, tab + 1);
        if (l->fd >= 0) n_launches++;
      }
      size_t used = (size_t)(end - in) + 1;
      memmove(in, end + 1, in_len - used);
      in_len -= used;
    }
    if (in_len == sizeof in) return 125; /* a request longer than any path: not from the runtime */
    if (!input_open && n_launches == 0) return 0;
    struct pollfd pfds[LAUNCH_MAX + 1];
    int n = 0;
    for (int i = 0; i < n_launches; i++) pfds[n++] = (struct pollfd){.fd = launches[i].fd, .events = POLLIN};
    int input_at = -1;
    if (input_open && n_launches < LAUNCH_MAX) {
      input_at = n;
      pfds[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    }
    int warm_at = n;
    for (int w = 0; w < n_warms; w++) pfds[n++] = (struct pollfd){.fd = warms[w].rep, .events = POLLIN};
    /* the timeout only reaps the forked intermediates of quiet periods */
    int wait_ms = started && n_warms < warm_target && n_launches == 0 ? PARK_QUIET_MS : 1000;
    if (poll(pfds, (nfds_t)n, wait_ms) < 0) {
      if (errno == EINTR) continue;
      return 125;
    }
    for (int i = n_launches - 1; i >= 0; i--) {
      if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      struct launch *l = &launches[i];
      ssize_t r = read(l->fd, l->buf + l->len, sizeof l->buf - 1 - l->len);
      if (r > 0) l->len += (size_t)r;
      char *nl = memchr(l->buf, '\n', l->len);
      if (r > 0 && !nl && l->len < sizeof l->buf - 1) continue;
      last_activity_ms = monotonic_ms();
      if (nl) launcher_answer(l->id, l->buf, (size_t)(nl - l->buf + 1));
      else if (l->len > 0) launcher_answer(l->id, l->buf, l->len);
      else {
        const char *none = "error\tshim\t\t0\tthe shim exited without a report\n";
        launcher_answer(l->id, none, strlen(none));
      }
      close(l->fd);
      launches[i] = launches[--n_launches];
    }
    for (int w = n_warms - 1; w >= 0; w--) {
      if (!(pfds[warm_at + w].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[16];
      ssize_t r = read(warms[w].rep, buf, sizeof buf);
      if (r == 6 && !memcmp(buf, "ready\n", 6)) {
        warms[w].ready = 1;
        continue;
      }
      /* a shim that died is replaced on the next turn; one that could not park at all means
       * parking does not work here (no such cgroups): cold starts only from now on */
      if (!warms[w].ready) warm_target = 0;
      close(warms[w].ctl);
      close(warms[w].rep);
      warms[w] = warms[--n_warms];
    }
    if (input_at < 0 || !(pfds[input_at].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t r = read(0, in + in_len, sizeof in - in_len);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      input_open = 0;
      /* warm shims see EOF on their control pipes and clean up after themselves */
      for (int w = 0; w < n_warms; w++) {
        close(warms[w].ctl);
        close(warms[w].rep);
      }
      n_warms = 0;
      continue;
    }
    in_len += (size_t)r;
  }
}

/* ---------- start-up: the modes that meet containers run from a sealed copy of this binary ---------- */

/* The launcher (and every shim and container process it forks) and the exec mode share a pid
 * namespace or an exec with the container's processes: an image file "#!/proc/self/exe" run by
 * the container re-runs this binary inside it, and /proc/<pid>/exe of such a process then names
 * the executable to any process of the container. Were that the host's file, only ETXTBSY would
 * stand between the container and overwriting it (CVE-2019-5736; the check was briefly gone in
 * Linux 6.11). So these modes first re-execute themselves from an anonymous memfd copy, sealed
 * against every change, as runc does: /proc/<pid>/exe then names "/memfd:skiff-helper", which no
 * one can write. The copy is made once: the re-executed process finds itself sealed. */
#define SELF_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable even where vm.memfd_noexec makes memfds noexec */
#endif

/* A failure is reported the way the mode reports (the exec mode on fd 3, the launcher on stderr);
 * the helper never falls back to running from the host's file. */
__attribute__((noreturn)) static void sealed_copy_failed(const char *step, int err) {
  char line[512];
  int n = snprintf(line, sizeof line, "error\trun from a sealed copy\t/proc/self/exe\t%d\t%s: %s%s\n", err, step, strerror(err),
                   err == EACCES || err == EPERM ? " (is vm.memfd_noexec 2? skiff-helper needs an executable memfd)" : "");
  if (fcntl(REPORT_FD, F_GETFD) < 0 || write(REPORT_FD, line, (size_t)n) < 0) write_all(2, line, (size_t)n);
  exit(125);
}

static void run_from_sealed_copy(char **argv) {
  int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (exe < 0) sealed_copy_failed("open /proc/self/exe", errno);
  int seals = fcntl(exe, F_GET_SEALS);
  if (seals >= 0 && (seals & SELF_SEALS) == SELF_SEALS) { /* this is the copy */
    close(exe);
    return;
  }
  struct stat st;
  if (fstat(exe, &st) < 0) sealed_copy_failed("stat /proc/self/exe", errno);
  int copy = memfd_create("skiff-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (copy < 0 && errno == EINVAL) copy = memfd_create("skiff-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (copy < 0) sealed_copy_failed("memfd_create", errno);
  for (off_t left = st.st_size; left > 0;) {
    ssize_t n = sendfile(copy, exe, NULL, (size_t)left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) sealed_copy_failed("copy /proc/self/exe", n < 0 ? errno : EIO);
    left -= n;
  }
  close(exe);
  if (fcntl(copy, F_ADD_SEALS, SELF_SEALS) < 0) sealed_copy_failed("seal the copy", errno);
  fexecve(copy, argv, environ);
  sealed_copy_failed("execute the copy", errno);
}

/* ---------- exec-server: commands run in containers, their output and status answered ---------- */

/* Probes and hooks run a command in a container and want only its status and (some of) its output.
 * Spawning `skiff-helper exec` for each costs the caller a fork of itself (a Node process of a
 * hundred MB) and the helper its sealed copy; this long-lived process, itself run from a sealed
 * copy, forks a worker per request instead: the worker is an `exec` helper as run_exec is, its
 * stdout and stderr one pipe read here, its fd 3 the report. Requests on stdin, one line each:
 *   ID\tSPEC\tMS        run the exec spec at SPEC (the runtime's, as for `exec`); kill the process
 *                       after MS (0: never)
 * Answers on stdout, one line each, as requests finish (in any order):
 *   ID\tok\tCODE\tTIMEDOUT\tHEX     the exit code (128+signal when killed), 1 if MS passed, and the
 *                                   first 10 KiB of what it wrote (stdout and stderr as they came)
 *   ID\terror\tSTEP\tPATH\tERRNO\tMESSAGE   the step that failed before the process ran (its report)
 * Output is read until the process exited and the pipe closed, or 500 ms after the exit (a process
 * it left in the background may hold the pipe). At EOF on stdin it kills what still runs and exits. */

#define EXEC_MAX 256
#define EXEC_OUTPUT_MAX 10240
#define EXEC_DRAIN_MS 500

struct exec_job {
  long long id;
  pid_t worker;
  int out_fd, report_fd;
  long long deadline_ms; /* 0: none */
  long long exited_ms;   /* when the worker was reaped; 0: still running */
  int code, timed_out;
  char report[512];
  size_t report_len;
  unsigned char *output;
  size_t output_len;
};

static void exec_answer(struct exec_job *j) {
  static const char hex[] = "0123456789abcdef";
  size_t cap = 96 + sizeof j->report + 2 * (size_t)j->output_len;
  char *line = malloc(cap);
  if (!line) _exit(1);
  int n;
  if (!strncmp(j->report, "ok\t", 3) || j->report_len == 0) {
    if (j->report_len == 0 && j->code == 125) /* no report: the worker failed before its process started */
      n = snprintf(line, cap, "%lld\terror\tworker\t\t%d\tthe exec worker exited (%d) without a report\n", j->id, EIO, j->code);
    else {
      n = snprintf(line, cap, "%lld\tok\t%d\t%d\t", j->id, j->code, j->timed_out);
      for (size_t i = 0; i < j->output_len; i++) {
        line[n++] = hex[j->output[i] >> 4];
        line[n++] = hex[j->output[i] & 15];
      }
      line[n++] = '\n';
    }
  } else {
    /* the report is "error\tSTEP\tPATH\tERRNO\tMESSAGE\n" */
    size_t len = j->report_len;
    while (len > 0 && j->report[len - 1] == '\n') len--;
    n = snprintf(line, cap, "%lld\t%.*s\n", j->id, (int)len, j->report);
  }
  write_all(1, line, (size_t)n);
  free(line);
  if (j->out_fd >= 0) close(j->out_fd);
  if (j->report_fd >= 0) close(j->report_fd);
  free(j->output);
}

static int exec_start(char *line, struct exec_job *j) {
  memset(j, 0, sizeof *j);
  j->out_fd = j->report_fd = -1;
  char *tab1 = strchr(line, '\t');
  char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
  if (!tab2) return -1;
  *tab1 = *tab2 = '\0';
  j->id = atoll(line);
  const char *spec_path = tab1 + 1;
  long long ms = atoll(tab2 + 1);
  j->output = malloc(EXEC_OUTPUT_MAX);
  int out[2], rep[2];
  if (!j->output || pipe2(out, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
    j->report_len = (size_t)snprintf(j->report, sizeof j->report, "error\tpipe\t\t%d\t%s\n", errno, strerror(errno));
    exec_answer(j);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    j->report_len = (size_t)snprintf(j->report, sizeof j->report, "error\tfork\t\t%d\t%s\n", errno, strerror(errno));
    close(out[0]), close(out[1]), close(rep[0]), close(rep[1]);
    exec_answer(j);
    return -1;
  }
  if (pid == 0) {
    /* the worker: an `exec` helper whose stdio and report are these pipes */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0 || dup2(rep[1], REPORT_FD) < 0) _exit(125);
    close_range(REPORT_FD + 1, ~0U, 0);
    setsid();
    static struct spec s;
    parse_spec(spec_path, &s);
    err_fd = REPORT_FD;
    fail_prefix = "error\t";
    _exit(run_exec(&s));
  }
  close(out[1]);
  close(rep[1]);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(rep[0], F_SETFL, O_NONBLOCK);
  j->worker = pid;
  j->out_fd = out[0];
  j->report_fd = rep[0];
  j->deadline_ms = ms > 0 ? monotonic_ms() + ms : 0;
  return 0;
}

static int run_exec_server(void) {
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 1;
  static struct exec_job jobs[EXEC_MAX];
  static struct pollfd fds[2 + 2 * EXEC_MAX];
  int n_jobs = 0, open_input = 1;
  static char in[65536];
  size_t in_len = 0;
  for (;;) {
    if (!open_input && n_jobs == 0) return 0;
    long long now = monotonic_ms();
    int timeout = -1;
    for (int i = 0; i < n_jobs; i++) {
      long long at = jobs[i].exited_ms ? jobs[i].exited_ms + EXEC_DRAIN_MS : jobs[i].deadline_ms;
      if (!at || (jobs[i].timed_out && !jobs[i].exited_ms)) continue;
      long long left = at - now;
      if (left < 0) left = 0;
      if (left > 3600000) left = 3600000;
      if (timeout < 0 || left < timeout) timeout = (int)left;
    }
    int nf = 0;
    fds[nf++] = (struct pollfd){.fd = open_input && n_jobs < EXEC_MAX ? 0 : -1, .events = POLLIN};
    fds[nf++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    for (int i = 0; i < n_jobs; i++) {
      fds[nf++] = (struct pollfd){.fd = jobs[i].out_fd, .events = POLLIN};
      fds[nf++] = (struct pollfd){.fd = jobs[i].report_fd, .events = POLLIN};
    }
    if (poll(fds, (nfds_t)nf, timeout) < 0 && errno != EINTR) return 1;
    /* output and reports */
    for (int i = 0; i < n_jobs; i++) {
      struct exec_job *j = &jobs[i];
      if (j->out_fd >= 0 && fds[2 + 2 * i].revents) {
        for (;;) {
          unsigned char buf[8192];
          ssize_t r = read(j->out_fd, buf, sizeof buf);
          if (r > 0) {
            size_t keep = EXEC_OUTPUT_MAX - j->output_len;
            if ((size_t)r < keep) keep = (size_t)r;
            memcpy(j->output + j->output_len, buf, keep);
            j->output_len += keep;
            continue;
          }
          if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
          close(j->out_fd); /* EOF or an error: the output ended */
          j->out_fd = -1;
          break;
        }
      }
      if (j->report_fd >= 0 && fds[3 + 2 * i].revents) {
        ssize_t r = read(j->report_fd, j->report + j->report_len, sizeof j->report - 1 - j->report_len);
        if (r > 0) j->report_len += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          close(j->report_fd);
          j->report_fd = -1;
        }
      }
    }
    /* workers that exited */
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
    }
    for (;;) {
      int status;
      pid_t w = waitpid(-1, &status, WNOHANG);
      if (w <= 0) break;
      for (int i = 0; i < n_jobs; i++)
        if (jobs[i].worker == w) {
          int signo;
          jobs[i].code = WIFEXITED(status) ? WEXITSTATUS(status) : exit_code_of(status, &signo);
          jobs[i].exited_ms = monotonic_ms();
          if (jobs[i].report_fd >= 0) { /* what it reported is all in the pipe now */
            ssize_t r;
            while ((r = read(jobs[i].report_fd, jobs[i].report + jobs[i].report_len, sizeof jobs[i].report - 1 - jobs[i].report_len)) > 0)
              jobs[i].report_len += (size_t)r;
            close(jobs[i].report_fd);
            jobs[i].report_fd = -1;
          }
        }
    }
    /* deadlines, and what is finished */
    now = monotonic_ms();
    for (int i = 0; i < n_jobs;) {
      struct exec_job *j = &jobs[i];
      if (!j->exited_ms && j->deadline_ms && now >= j->deadline_ms && !j->timed_out) {
        j->timed_out = 1;
        kill(j->worker, SIGUSR2); /* the worker kills its process (run_exec) */
      }
      if (j->exited_ms && (j->out_fd < 0 || now >= j->exited_ms + EXEC_DRAIN_MS)) {
        exec_answer(j);
        jobs[i] = jobs[--n_jobs];
        continue;
      }
      i++;
    }
    if (open_input && fds[0].revents) {
      ssize_t got = read(0, in + in_len, sizeof in - in_len);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
        open_input = 0;
        for (int i = 0; i < n_jobs; i++)
          if (!jobs[i].exited_ms) kill(jobs[i].worker, SIGUSR2);
        continue;
      }
      if (got < 0) continue;
      in_len += (size_t)got;
      char *start = in, *nl;
      while ((nl = memchr(start, '\n', in_len - (size_t)(start - in))) != NULL && n_jobs < EXEC_MAX) {
        *nl = '\0';
        if (exec_start(start, &jobs[n_jobs]) == 0) n_jobs++;
        start = nl + 1;
      }
      in_len -= (size_t)(start - in);
      memmove(in, start, in_len);
      if (in_len == sizeof in) return 1;
    }
  }
}

/* ---------- dialer: TCP connections opened in another network namespace ---------- */

/* The caller (the node agent) probes pods whose network may live in a namespace other than its
 * own (a node that is itself a namespace). A socket belongs to the namespace it was created in,
 * whoever uses it afterwards: this process enters NETNS once ("-": stays in its own) and makes the
 * connections there. Requests, one line each on stdin, fields separated by tabs:
 *   ID C IP PORT MS        connect; the socket goes to the caller over its IPC channel the way
 *                          Node passes a net.Socket between its own processes (lib/internal/
 *                          child_process.js: the JSON line {"cmd":"NODE_HANDLE","type":"net.Socket",
 *                          "msg":{"id":ID}} sent with the descriptor as SCM_RIGHTS; Node answers
 *                          {"cmd":"NODE_HANDLE_ACK"}, read and dropped here)
 *   ID T IP PORT MS        connect, close, answer {"id":ID,"ok":1} (a TCP probe)
 *   ID H IP PORT MS HEX    connect, send the bytes HEX encodes (an HTTP/1.1 request), read the
 *                          answer's head (up to the blank line, at most 4 KiB) and at most 10 KiB of
 *                          what follows (until the peer closes), answer {"id":ID,"head":"HEX"}
 *                          (an HTTP probe: no socket crosses to Node, nothing but a line each way)
 * MS bounds the whole request. A failure answers {"id":ID,"errno":N,"phase":"connect"|"write"|
 * "read"} (ETIMEDOUT when MS passed). Once in NETNS it says {"ready":1} (or {"error":...} and
 * exits); it exits at EOF on stdin or when the channel closes. */

#define DIAL_MAX 1024
#define DIAL_HEAD_MAX 4096
#define DIAL_BODY_MAX 10240

enum dial_kind { DIAL_PASS, DIAL_CHECK, DIAL_HTTP };
enum dial_phase { PHASE_CONNECT, PHASE_WRITE, PHASE_READ };

struct dial {
  long long id;
  int fd;
  long long deadline_ms;
  enum dial_kind kind;
  enum dial_phase phase;
  unsigned char *req;
  size_t req_len, req_off;
  size_t head_len;
  int head_done;
  size_t body_read;
  unsigned char head[DIAL_HEAD_MAX]; /* last: a new request clears what comes before it */
};

static int dial_channel = -1;

static void dial_send(const char *json, size_t len, int fd) {
  struct iovec iov = {(void *)json, len};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    memset(&control, 0, sizeof control);
    mh.msg_control = control.buf;
    mh.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  size_t off = 0;
  while (off < len) {
    ssize_t n = sendmsg(dial_channel, &mh, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0); /* the caller is gone */
    off += (size_t)n;
    iov.iov_base = (char *)json + off;
    iov.iov_len = len - off;
    mh.msg_control = NULL; /* the descriptor went with the first part */
    mh.msg_controllen = 0;
  }
}

static void dial_fail(long long id, int err, enum dial_phase phase) {
  static const char *names[] = {"connect", "write", "read"};
  char line[128];
  int n = snprintf(line, sizeof line, "{\"id\":%lld,\"errno\":%d,\"phase\":\"%s\"}\n", id, err, names[phase]);
  dial_send(line, (size_t)n, -1);
}

/* The request is answered: the socket passed or closed, the entry's memory freed. */
static void dial_finish(struct dial *d, int err) {
  if (err) dial_fail(d->id, err, d->phase);
  else if (d->kind == DIAL_PASS) {
    char line[128];
    int n = snprintf(line, sizeof line, "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{\"id\":%lld}}\n", d->id);
    dial_send(line, (size_t)n, d->fd);
  } else if (d->kind == DIAL_CHECK) {
    char line[64];
    int n = snprintf(line, sizeof line, "{\"id\":%lld,\"ok\":1}\n", d->id);
    dial_send(line, (size_t)n, -1);
  } else {
    static char line[64 + 2 * DIAL_HEAD_MAX];
    static const char hex[] = "0123456789abcdef";
    int n = snprintf(line, 64, "{\"id\":%lld,\"head\":\"", d->id);
    for (size_t i = 0; i < d->head_len; i++) {
      line[n++] = hex[d->head[i] >> 4];
      line[n++] = hex[d->head[i] & 15];
    }
    n += snprintf(line + n, 8, "\"}\n");
    dial_send(line, (size_t)n, -1);
  }
  if (d->fd >= 0) close(d->fd);
  d->fd = -1;
  free(d->req);
  d->req = NULL;
}

static int unhex(const char *text, unsigned char **out, size_t *len) {
  size_t n = strlen(text);
  if (n % 2) return -1;
  unsigned char *buf = malloc(n / 2 + 1);
  if (!buf) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(buf);
      return -1;
    }
    buf[i] = (unsigned char)(hi << 4 | lo);
  }
  *out = buf;
  *len = n / 2;
  return 0;
}

/* A request line: starts the connect; 0 when the request is pending (*d filled), else answered. */
static int dial_start(char *line, struct dial *d) {
  char *fields[6];
  int n = 0;
  for (char *p = line; n < 6;) {
    fields[n++] = p;
    char *tab = strchr(p, '\t');
    if (!tab) break;
    *tab = '\0';
    p = tab + 1;
  }
  memset(d, 0, offsetof(struct dial, head));
  d->fd = -1;
  if (n < 5) return -1;
  d->id = atoll(fields[0]);
  char kind = fields[1][0];
  d->kind = kind == 'C' ? DIAL_PASS : kind == 'T' ? DIAL_CHECK : DIAL_HTTP;
  long port = atol(fields[3]);
  long long ms = atoll(fields[4]);
  if ((kind != 'C' && kind != 'T' && kind != 'H') || (kind == 'H') != (n == 6) || port < 1 || port > 65535 || ms < 0 ||
      (kind == 'H' && unhex(fields[5], &d->req, &d->req_len) < 0)) {
    dial_fail(d->id, EINVAL, PHASE_CONNECT);
    return -1;
  }
  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, fields[2], &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    sslen = sizeof *in4;
  } else if (inet_pton(AF_INET6, fields[2], &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    sslen = sizeof *in6;
  } else {
    dial_finish(d, EINVAL);
    return -1;
  }
  d->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (d->fd < 0) {
    dial_finish(d, errno);
    return -1;
  }
  d->deadline_ms = monotonic_ms() + ms;
  d->phase = PHASE_CONNECT;
  if (connect(d->fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS) {
    dial_finish(d, errno);
    return -1;
  }
  return 0;
}

/* The socket is ready for what the request waits for: moves it on; 1 when it was answered. */
static int dial_step(struct dial *d) {
  if (d->phase == PHASE_CONNECT) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err || d->kind != DIAL_HTTP) {
      dial_finish(d, err);
      return 1;
    }
    d->phase = PHASE_WRITE;
  }
  if (d->phase == PHASE_WRITE) {
    ssize_t n = send(d->fd, d->req + d->req_off, d->req_len - d->req_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return 0;
      dial_finish(d, errno);
      return 1;
    }
    d->req_off += (size_t)n;
    if (d->req_off < d->req_len) return 0;
    d->phase = PHASE_READ;
    return 0;
  }
  /* PHASE_READ: the head, then what follows until the peer closes or enough was read */
  for (;;) {
    unsigned char sink[4096];
    unsigned char *into = d->head_done ? sink : d->head + d->head_len;
    size_t room = d->head_done ? sizeof sink : DIAL_HEAD_MAX - d->head_len;
    ssize_t n = recv(d->fd, into, room, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      if (d->head_len > 0) break; /* reset after an answer: it stands */
      dial_finish(d, errno);
      return 1;
    }
    if (n == 0) break;
    if (d->head_done) d->body_read += (size_t)n;
    else {
      size_t before = d->head_len;
      d->head_len += (size_t)n;
      size_t from = before >= 3 ? before - 3 : 0;
      for (size_t i = from; i + 3 < d->head_len && !d->head_done; i++)
        if (!memcmp(d->head + i, "\r\n\r\n", 4)) {
          d->body_read = d->head_len - (i + 4);
          d->head_len = i + 4;
          d->head_done = 1;
        }
      if (!d->head_done && d->head_len == DIAL_HEAD_MAX) d->head_done = 1; /* a head too long: what there is */
    }
    if (d->body_read >= DIAL_BODY_MAX) break;
  }
  dial_finish(d, 0);
  return 1;
}

static int run_dialer(const char *netns) {
  const char *channel = getenv("NODE_CHANNEL_FD");
  if (!channel || atoi(channel) < 3) {
    fprintf(stderr, "skiff-helper dialer: no NODE_CHANNEL_FD (spawn it with an 'ipc' stdio entry)\n");
    return 125;
  }
  dial_channel = atoi(channel);
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(netns, "-") != 0) {
    int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
      char line[256];
      int err = errno;
      int n = snprintf(line, sizeof line, "{\"error\":\"%s\",\"errno\":%d}\n", strerror(err), err);
      dial_send(line, (size_t)n, -1);
      return 1;
    }
    close(nsfd);
  }
  dial_send("{\"ready\":1}\n", 12, -1);
  static struct dial pending[DIAL_MAX];
  static struct pollfd fds[DIAL_MAX + 2];
  int n_pending = 0;
  static char in[65536];
  size_t in_len = 0;
  char sink[4096];
  for (;;) {
    long long now = monotonic_ms();
    int timeout = -1;
    for (int i = 0; i < n_pending; i++) {
      long long left = pending[i].deadline_ms - now;
      if (left < 0) left = 0;
      if (left > 3600000) left = 3600000; /* poll's int: a long deadline is looked at again in an hour */
      if (timeout < 0 || left < timeout) timeout = (int)left;
    }
    fds[0] = (struct pollfd){.fd = n_pending < DIAL_MAX ? 0 : -1, .events = POLLIN};
    fds[1] = (struct pollfd){.fd = dial_channel, .events = POLLIN};
    for (int i = 0; i < n_pending; i++)
      fds[i + 2] = (struct pollfd){.fd = pending[i].fd, .events = pending[i].phase == PHASE_READ ? POLLIN : POLLOUT};
    int r = poll(fds, (nfds_t)n_pending + 2, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    now = monotonic_ms();
    /* requests that can move on, or ran out of time: answered ones leave the table */
    for (int i = 0; i < n_pending;) {
      struct dial *d = &pending[i];
      int answered = 0;
      if (fds[i + 2].revents) answered = dial_step(d);
      if (!answered && d->deadline_ms <= now) {
        if (d->phase == PHASE_READ && d->head_done) dial_finish(d, 0); /* the answer came, its rest did not */
        else dial_finish(d, ETIMEDOUT);
        answered = 1;
      }
      if (!answered) {
        i++;
        continue;
      }
      pending[i] = pending[--n_pending];
      fds[i + 2] = fds[n_pending + 2];
    }
    if (fds[1].revents) { /* Node's acknowledgements; EOF: the caller is gone */
      ssize_t got = read(dial_channel, sink, sizeof sink);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) return 0;
    }
    if (fds[0].revents) {
      ssize_t got = read(0, in + in_len, sizeof in - in_len);
      if (got == 0) return 0;
      if (got < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return 1;
      }
      in_len += (size_t)got;
      char *start = in, *nl;
      while ((nl = memchr(start, '\n', in_len - (size_t)(start - in))) != NULL && n_pending < DIAL_MAX) {
        *nl = '\0';
        if (dial_start(start, &pending[n_pending]) == 0) n_pending++;
        start = nl + 1;
      }
      in_len -= (size_t)(start - in);
      memmove(in, start, in_len);
      if (in_len == sizeof in) return 1; /* a line longer than any request */
    }
  }
}

int main(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "launcher") || !strcmp(argv[1], "exec") || !strcmp(argv[1], "exec-server")))
    run_from_sealed_copy(argv);
  if (argc == 2 && !strcmp(argv[1], "exec-server")) return run_exec_server();
  if (argc >= 2 && !strcmp(argv[1], "launcher")) {
    /* launcher [WARM CGROUP_PARENT...] */
    int warm = argc >= 3 ? atoi(argv[2]) : 0;
    for (int i = 3; i < argc && n_warm_parents < MAX_PARENTS; i++) warm_parents[n_warm_parents++] = argv[i];
    return run_launcher(n_warm_parents > 0 ? warm : 0);
  }
  if (argc == 3 && !strcmp(argv[1], "dialer")) return run_dialer(argv[2]);
  if (argc >= 2 && !strcmp(argv[1], "init-layer")) {
    if (fcntl(REPORT_FD, F_GETFD) < 0) return 125;
    return run_init_layer(argc, argv);
  }
  if (argc == 5 && !strcmp(argv[1], "port-forward")) {
    if (fcntl(REPORT_FD, F_GETFD) < 0) return 125;
    return run_port_forward(argv[2], argv[3], argv[4]);
  }
  if (argc != 3)
    die_usage("usage: skiff-helper launcher [WARM CGROUP_PARENT...] | exec SPEC | dialer NETNS | probe-overlay DIR | init-layer TYPE SOURCE [OPTION...] -- [FILE...] | port-forward PID START_TIME PORT");
  if (!strcmp(argv[1], "probe-overlay")) {
    if (fcntl(REPORT_FD, F_GETFD) < 0) return 125;
    return run_probe_overlay(argv[2]);
  }
  if (fcntl(REPORT_FD, F_GETFD) < 0) {
    fprintf(stderr, "skiff-helper: fd 3 must be the report pipe\n");
    return 125;
  }
  struct spec s;
  parse_spec(argv[2], &s);
  if (!strcmp(argv[1], "exec")) {
    /* a step that fails before the process is forked (joining its cgroups and namespaces) is
     * reported like the process's own setup errors, not only on a stderr nobody reads */
    err_fd = REPORT_FD;
    fail_prefix = "error\t";
    return run_exec(&s);
  }
  die_usage("unknown mode");
}
