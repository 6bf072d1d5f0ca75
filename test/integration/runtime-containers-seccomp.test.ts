/**
 * The default seccomp profile and the per-container session keyring, in real containers:
 * Seccomp: 2 by default and 0 with seccomp 'unconfined' (run, exec, and the CLI's
 * --security-opt); the calls Docker blocks fail with EPERM (a static probe of our own makes them
 * directly, so no libc fallback hides a result), clone3 with ENOSYS while fork and threads work;
 * and each container's session keyring is its own, not the host's.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  LinuxContainerRuntime,
  type CreateContainerOptions,
} from '../../node-agent/runtime/containers/container-runtime.js';
import { InvalidArgumentError } from '../../proto/errors.js';
import {
  makeBusyboxRootfs,
  onRootfs,
  requireRootAndBusybox,
  runToEnd,
  withScratchRuntime,
} from './runtime-containers-fixture.js';
import { skiffEntryArgv } from '../../proto/package-info.js';

const execFileAsync = promisify(execFile);

/**
 * `probe NAME...` makes each named call with the raw syscall(2) and prints "NAME ok RESULT" or
 * "NAME errno N". A child a clone makes exits at once.
 */
const PROBE_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <linux/sched.h>
#include <linux/io_uring.h>
#include <linux/bpf.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long call(const char *name) {
  if (!strcmp(name, "session")) return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
  if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "skiff-probe", "v", 1, KEY_SPEC_PROCESS_KEYRING);
  if (!strcmp(name, "request_key")) return syscall(SYS_request_key, "user", "skiff-probe", NULL, 0);
  if (!strcmp(name, "clone3")) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    return syscall(SYS_clone3, &args, sizeof args);
  }
  if (!strcmp(name, "clone")) return syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (!strcmp(name, "clone-newuser")) return syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (!strcmp(name, "clone-newns")) return syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
  if (!strcmp(name, "unshare-user")) return syscall(SYS_unshare, CLONE_NEWUSER);
  if (!strcmp(name, "io_uring")) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    return syscall(SYS_io_uring_setup, 1, &p);
  }
  if (!strcmp(name, "bpf")) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    return syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a);
  }
  if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 0);
  if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
  if (!strcmp(name, "personality-query")) return syscall(SYS_personality, 0xffffffffUL);
  if (!strcmp(name, "personality-norandom")) return syscall(SYS_personality, ADDR_NO_RANDOMIZE);
  errno = EINVAL;
  return -2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    errno = 0;
    long r = call(argv[i]);
    if (r == 0 && !strncmp(argv[i], "clone", 5)) _exit(0); /* the child */
    if (r > 0 && !strncmp(argv[i], "clone", 5)) waitpid((pid_t)r, NULL, 0);
    if (r < 0) printf("%s errno %d\n", argv[i], errno);
    else printf("%s ok %ld\n", argv[i], r);
  }
  return 0;
}
`;

const EPERM = 1;
const ENOSYS = 38;

let work: string;
let rootfs: string;
let root: string;
let probe: string;
let rt: LinuxContainerRuntime;

withScratchRuntime('skiff-ctr-seccomp-', async (dir) => {
  requireRootAndBusybox();
  work = dir;
  rootfs = await makeBusyboxRootfs(join(work, 'rootfs'));
  root = join(work, 'root');
  const src = join(work, 'probe.c');
  probe = join(rootfs, 'bin/probe');
  await writeFile(src, PROBE_C);
  const cc = spawnSync('gcc', ['-static', '-O1', '-Wall', '-Werror', '-o', probe, src], { encoding: 'utf8' });
  assert.equal(cc.status, 0, `gcc (apt-get install -y gcc libc6-dev) failed: ${cc.error ?? cc.stderr}`);
  rt = await LinuxContainerRuntime.open({ root });
  return rt;
});

function opts(argv: string[], extra: Partial<CreateContainerOptions> = {}): CreateContainerOptions {
  return onRootfs(rootfs, argv, extra);
}

/** Runs a container to its end; returns its exit and its output, and removes it. */
function run(argv: string[], extra: Partial<CreateContainerOptions> = {}) {
  return runToEnd(rt, opts(argv, extra));
}

const sh = (script: string) => ['sh', '-c', script];

/** The probe's results by call: { name: 'ok' | errno }. */
function results(stdout: string): Record<string, 'ok' | number> {
  const out: Record<string, 'ok' | number> = {};
  for (const line of stdout.trim().split('\n')) {
    const [name, kind, value] = line.split(' ');
    out[name!] = kind === 'ok' ? 'ok' : Number(value);
  }
  return out;
}

describe('default seccomp profile', () => {
  test('a container runs filtered (Seccomp: 2); unconfined runs without (0), recorded in its config', async () => {
    const filtered = await run(sh('grep -E "^Seccomp:" /proc/self/status'));
    assert.equal(filtered.stdout, 'Seccomp:\t2\n');
    const open = await run(sh('grep -E "^Seccomp:" /proc/self/status'), { seccomp: 'unconfined' });
    assert.equal(open.stdout, 'Seccomp:\t0\n');
    const c = await rt.create(opts(['true'], { seccomp: 'unconfined' }));
    try {
      assert.equal((await rt.inspect(c.id)).config.seccomp, 'unconfined');
    } finally {
      await rt.remove(c.id, { force: true });
    }
    assert.equal((await rt.create(opts(['true']))).config.seccomp, 'default');
    await assert.rejects(
      rt.create(opts(['true'], { seccomp: 'none' as never })),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'seccomp',
    );
  });

  test('the calls Docker blocks fail with EPERM, clone3 with ENOSYS; clone without namespace flags works', async () => {
    const calls = [
      'session',
      'add_key',
      'request_key',
      'clone-newuser',
      'clone-newns',
      'unshare-user',
      'io_uring',
      'bpf',
      'userfaultfd',
      'perf_event_open',
      'personality-norandom',
      'clone3',
      'clone',
      'personality-query',
    ];
    const r = results((await run(['probe', ...calls])).stdout);
    for (const name of calls.slice(0, 11)) assert.equal(r[name], EPERM, name);
    assert.equal(r.clone3, ENOSYS);
    assert.equal(r.clone, 'ok');
    assert.equal(r['personality-query'], 'ok');
  });

  test('unshare fails by default and works unconfined (as root)', async () => {
    const script = 'unshare -U true && echo user-ok; unshare -U -m true && echo user-mount-ok';
    const filtered = await run(sh(script));
    assert.equal(filtered.stdout, '');
    assert.match(filtered.stderr, /Operation not permitted/);
    const open = await run(sh(script), { seccomp: 'unconfined' });
    assert.equal(open.stdout, 'user-ok\nuser-mount-ok\n', open.stderr);
  });

  test('ordinary workloads run: pipelines, subshells, background jobs, a script file', async () => {
    const r = await run(
      sh(
        'echo c a b | tr " " "\\n" | sort | head -2 | tr "\\n" ,; (echo sub) & wait; ' +
          'seq 3 | while read x; do echo -n $x; done; echo; ' +
          'printf "#!/bin/sh\\necho script \\$1\\n" > /tmp/s.sh && chmod +x /tmp/s.sh && /tmp/s.sh ran; ' +
          'date +%Y >/dev/null && mkdir -p /tmp/d && ln -s /tmp/d /tmp/l && ls /tmp/l && echo done',
      ),
    );
    assert.equal(r.exit.exitCode, 0, r.stderr);
    assert.equal(r.stdout, 'a,b,sub\n123\nscript ran\ndone\n');
  });

  test("an exec'd process gets its container's profile", async () => {
    for (const seccomp of ['default', 'unconfined'] as const) {
      const c = await rt.create(opts(['sleep', '1000'], { seccomp }));
      try {
        await rt.start(c.id);
        const out = join(work, `exec-${seccomp}.txt`);
        const fd = openSync(out, 'w');
        const h = await rt.exec(c.id, {
          argv: sh('grep -E "^Seccomp:" /proc/self/status; probe add_key clone3'),
          stdio: ['ignore', fd, 'inherit'],
        });
        closeSync(fd);
        assert.equal(await h.exited, 0);
        const [status, ...rest] = (await readFile(out, 'utf8')).trim().split('\n');
        const r = results(rest.join('\n'));
        if (seccomp === 'default') {
          assert.equal(status, 'Seccomp:\t2');
          assert.equal(r.add_key, EPERM);
          assert.equal(r.clone3, ENOSYS);
        } else {
          assert.equal(status, 'Seccomp:\t0');
          assert.equal(r.add_key, 'ok');
          assert.equal(r.clone3, 'ok');
        }
      } finally {
        await rt.remove(c.id, { force: true });
      }
    }
  });
});

describe('session keyring', () => {
  test("each container and exec joins a fresh session keyring, never the host's", async () => {
    const host = spawnSync(probe, ['session'], { encoding: 'utf8' });
    assert.equal(host.status, 0, host.stderr);
    const hostSession = results(host.stdout).session;
    assert.equal(typeof hostSession === 'string' ? hostSession : 'id', 'ok', host.stdout);
    const hostId = host.stdout.trim().split(' ')[2];
    const ids = new Set<string>([hostId!]);
    for (let i = 0; i < 2; i++) {
      const r = await run(['probe', 'session'], { seccomp: 'unconfined' });
      const line = r.stdout.trim().split(' ');
      assert.equal(line[1], 'ok', r.stdout);
      assert.ok(!ids.has(line[2]!), `session keyring ${line[2]} seen before (host: ${hostId})`);
      ids.add(line[2]!);
    }
    const c = await rt.create(opts(['sleep', '1000'], { seccomp: 'unconfined' }));
    try {
      await rt.start(c.id);
      const out = join(work, 'exec-keyring.txt');
      const fd = openSync(out, 'w');
      const h = await rt.exec(c.id, { argv: ['probe', 'session'], stdio: ['ignore', fd, 'inherit'] });
      closeSync(fd);
      assert.equal(await h.exited, 0);
      const line = (await readFile(out, 'utf8')).trim().split(' ');
      assert.equal(line[1], 'ok');
      assert.ok(!ids.has(line[2]!), `exec's session keyring ${line[2]} seen before`);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });
});

describe('skiff runtime CLI: --security-opt', () => {
  const cli = skiffEntryArgv();
  const skiff = (...args: string[]) =>
    execFileAsync(process.execPath, [...process.execArgv, ...cli, 'runtime', '--root', root, ...args], {
      encoding: 'utf8',
    });

  test('seccomp=unconfined turns the filter off; inspect shows it; a bad option is refused', async () => {
    const status = 'grep -E ^Seccomp: /proc/self/status';
    const { stdout: confined } = await skiff('run', '--rm', '--rootfs', rootfs, 'sh', '-c', status);
    assert.equal(confined, 'Seccomp:\t2\n');
    const { stdout: id } = await skiff(
      'run',
      '-d',
      '--security-opt',
      'seccomp=unconfined',
      '--rootfs',
      rootfs,
      'sleep',
      '100',
    );
    try {
      const { stdout: inspect } = await skiff('inspect', id.trim());
      assert.equal(JSON.parse(inspect)[0].config.seccomp, 'unconfined');
    } finally {
      await skiff('rm', '-f', id.trim());
    }
    const err = await skiff(
      'run',
      '--rm',
      '--security-opt',
      'seccomp=/x.json',
      '--rootfs',
      rootfs,
      'true',
    ).then(
      () => assert.fail('expected a failure'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.notEqual(err.code, 0);
    assert.match(err.stderr, /security-opt\[0\]: "seccomp=\/x\.json": skiff has the default seccomp profile/);
  });
});
