/* skiff-pause: the process of a pod sandbox (Kubernetes' pause container). It holds the
 * sandbox's namespaces (network, IPC, UTS) for the pod's containers to join, and does nothing
 * else. As pid 1 of its pid namespace it gets no default action for any signal, so it exits on
 * SIGTERM and SIGINT itself (a stop then ends it at once rather than after the grace period), and
 * it reaps whatever is reparented to it. Static: its root holds nothing but this binary. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa = {0};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = stop;
  if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) return 1;
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  if (sigaction(SIGCHLD, &sa, NULL) < 0) return 1;
  for (;;) pause();
}
