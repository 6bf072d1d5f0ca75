/**
 * The container runtime on the real machine: namespaces, mounts, cgroups, the shim, logs, exec,
 * stop/kill/rm. Runs as root; every container is removed (processes killed, cgroups removed)
 * even when a test fails.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  chmod,
  mkdir,
  open,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import {
  LinuxContainerRuntime,
  type CreateContainerOptions,
  type ExitInfo,
} from '../../node-agent/runtime/containers/container-runtime.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import { MASKED_PATHS } from '../../node-agent/runtime/containers/defaults.js';
import { Cgroups, parseCgroupLayout } from '../../node-agent/runtime/sys/cgroups.js';
import { encodeExecSpec } from '../../node-agent/runtime/sys/helper-spec.js';
import { startExec } from '../../node-agent/runtime/sys/helper.js';
import {
  makeBusyboxRootfs,
  mountsUnder,
  onRootfs,
  requireRootAndBusybox,
  runToEnd,
  withScratchRuntime,
} from './runtime-containers-fixture.js';

let work: string;
let rootfs: string;
let root: string;
let rt: LinuxContainerRuntime;

withScratchRuntime('skiff-ctr-test-', async (dir) => {
  requireRootAndBusybox();
  work = dir;
  rootfs = await makeBusyboxRootfs(join(work, 'rootfs'));
  root = join(work, 'root');
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

/**
 * A script that makes two device nodes in /tmp and opens each for reading and writing: `<name>-fuse`
 * (/dev/fuse, 10:229, which opens without any capability, so only the device rules can refuse it)
 * and `<name>-null` (/dev/null, 1:3, on the allowed list). Making them must work (CAP_MKNOD, and
 * the device rules allow mknod of any device): the script prints `made` only then, so a mknod
 * that is missing or fails shows as such instead of passing for a refused device. Each open
 * prints `<node> opens` or the shell's error, which names the errno: the device rules refuse
 * with EPERM ("Operation not permitted").
 */
function makeAndOpenDevices(name: string): string {
  const [fuse, nul] = [`/tmp/${name}-fuse`, `/tmp/${name}-null`];
  return [
    `rm -f ${fuse} ${nul}`,
    `if mknod ${fuse} c 10 229 && mknod ${nul} c 1 3; then echo made; else echo mknod failed; fi`,
    `if (exec 3<>${nul}) 2>&1; then echo ${nul} opens; fi`,
    `if (exec 3<>${fuse}) 2>&1; then echo ${fuse} opens; fi`,
  ].join('; ');
}

/** The lines makeAndOpenDevices prints when the fuse node is refused by the device rules. */
function assertFuseRefused(lines: string[], name: string): void {
  assert.equal(lines[0], 'made', 'mknod works inside the container');
  assert.equal(lines[1], `/tmp/${name}-null opens`, 'an allowed device made the same way opens');
  assert.match(
    lines[2] ?? '',
    new RegExp(`^sh: can't (open|create) /tmp/${name}-fuse: Operation not permitted$`),
    "the fuse node is refused with EPERM, the device rules' answer",
  );
}

/** The very node the container could not open opens on the host: only the container is refused. */
async function assertOpensOnHost(name: string): Promise<void> {
  const node = join(rootfs, 'tmp', `${name}-fuse`);
  try {
    await (await open(node, 'r+')).close();
  } finally {
    await rm(node, { force: true });
    await rm(join(rootfs, 'tmp', `${name}-null`), { force: true });
  }
}

describe('container isolation', () => {
  test("exit codes are the process's", async () => {
    assert.equal((await run(['true'])).exit.exitCode, 0);
    const r = await run(sh('exit 42'));
    assert.equal(r.exit.exitCode, 42);
    assert.equal(r.exit.reason, 'Error');
  });

  test('the process is pid 1 and host processes are invisible', async () => {
    const r = await run(sh('echo $$; ls /proc | grep -c "^[0-9]"'));
    const [pid, count] = r.stdout.trim().split('\n');
    assert.equal(pid, '1');
    assert.ok(Number(count) <= 3, `only the container's processes are visible, saw ${count}`);
  });

  test('hostname is its own, with /etc/hostname and /etc/hosts to match', async () => {
    const r = await run(
      sh(
        'hostname; cat /etc/hostname; grep -c "box-one" /etc/hosts; ping -c1 -W1 box-one >/dev/null && echo resolves',
      ),
      {
        hostname: 'box-one',
      },
    );
    assert.deepEqual(r.stdout.trim().split('\n'), ['box-one', 'box-one', '1', 'resolves']);
  });

  test("capabilities are docker's 14, ambient and inheritable empty, no_new_privs set", async () => {
    const r = await run(sh('grep -E "^(Cap|NoNewPrivs)" /proc/self/status'));
    const status = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/:\s+/)),
    );
    assert.equal(status.CapEff, '00000000a80425fb');
    assert.equal(status.CapBnd, '00000000a80425fb');
    assert.equal(status.CapPrm, '00000000a80425fb');
    assert.equal(status.CapInh, '0000000000000000');
    assert.equal(status.CapAmb, '0000000000000000');
    assert.equal(status.NoNewPrivs, '1');
  });

  test('a non-root user has no effective capabilities', async () => {
    const r = await run(sh('id -u; id -g; grep CapEff /proc/self/status'), {
      user: { uid: 1000, gid: 1001 },
    });
    assert.deepEqual(r.stdout.trim().split('\n'), ['1000', '1001', 'CapEff:\t0000000000000000']);
  });

  test('/proc is masked and read-only where docker masks it; /sys is read-only', async () => {
    const r = await run(
      sh(
        [
          'wc -c < /proc/keys',
          'wc -c < /proc/timer_list',
          'ls -A /proc/acpi | wc -l',
          'test -e /proc/kcore && wc -c < /proc/kcore || echo absent',
          'echo x > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo ro',
          'touch /sys/x 2>/dev/null && echo writable || echo ro',
          'grep " /proc " /proc/self/mounts',
          'cut -d" " -f5 /proc/self/mountinfo | tr "\\n" " "',
        ].join('; '),
      ),
    );
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], '0', '/proc/keys reads as /dev/null');
    assert.equal(lines[1], '0', '/proc/timer_list reads as /dev/null');
    assert.equal(lines[2], '0', '/proc/acpi is an empty tmpfs');
    assert.equal(lines[4], 'ro');
    assert.equal(lines[5], 'ro');
    assert.match(lines[6]!, /nosuid,nodev,noexec/);
    const mountPoints = new Set(lines[7]!.trim().split(' '));
    // Every masked path the host's kernel has is covered by a mount of its own in the container.
    const present = MASKED_PATHS.filter((p) => existsSync(p));
    assert.ok(present.includes('/proc/keys') && present.includes('/proc/timer_list'), present.join(' '));
    for (const p of present)
      assert.ok(mountPoints.has(p), `${p} has no mount over it: ${[...mountPoints].join(' ')}`);
    // This machine's kernel has no /proc/kcore (CONFIG_PROC_KCORE off), so the container's must
    // be absent too; where the host has it, it must read empty through its mask.
    if (existsSync('/proc/kcore')) {
      assert.equal(lines[3], '0', '/proc/kcore reads as /dev/null');
      assert.ok(mountPoints.has('/proc/kcore'));
    } else assert.equal(lines[3], 'absent', '/proc/kcore appears in the container but not on the host');
  });

  test('a volume under /proc, /sys or /dev is refused: it would cover the masked paths', async () => {
    for (const target of ['/proc/keys', '/sys/firmware', '/dev']) {
      await assert.rejects(
        rt.create(opts(['/bin/true'], { volumes: [{ source: work, target, readonly: true }] })),
        (e: unknown) => e instanceof InvalidArgumentError && e.field === 'volumes[0].target',
        target,
      );
    }
    assert.deepEqual(await rt.list({ all: true }), [], 'nothing half-created');
  });

  test('a setuid-root binary run as uid 1000 stays uid 1000 (no_new_privs)', async () => {
    // A program of our own: busybox may drop a setuid gain itself, which would hide a missing
    // no_new_privs.
    const src = join(work, 'euid.c');
    const bin = join(rootfs, 'bin/suid-euid');
    await writeFile(
      src,
      '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("%d %d\\n", (int)getuid(), (int)geteuid()); return 0; }\n',
    );
    const cc = spawnSync('gcc', ['-static', '-O1', '-o', bin, src], { encoding: 'utf8' });
    assert.equal(cc.status, 0, `gcc (apt-get install -y gcc libc6-dev) failed: ${cc.error ?? cc.stderr}`);
    await chmod(bin, 0o4755);
    try {
      const r = await run(
        sh('stat -c %a /bin/suid-euid; /bin/suid-euid; grep NoNewPrivs /proc/self/status'),
        {
          user: { uid: 1000, gid: 1000 },
        },
      );
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[0], '4755', 'the setuid bit is kept');
      assert.equal(lines[1], '1000 1000', 'the setuid-root binary did not gain root');
      assert.match(lines[2]!, /^NoNewPrivs:\s+1$/);
    } finally {
      await rm(bin, { force: true });
    }
  });

  test('/dev holds only the standard devices', async () => {
    const r = await run(
      sh('ls /dev | sort | tr "\\n" " "; echo; echo hi > /dev/null && head -c 4 /dev/zero | wc -c'),
    );
    const [devs, zero] = r.stdout.trim().split('\n');
    for (const d of ['full', 'null', 'pts', 'random', 'shm', 'tty', 'urandom', 'zero'])
      assert.ok(devs!.includes(d), d);
    assert.ok(!/sda|vda|mem /.test(devs!), `no host devices: ${devs}`);
    assert.equal(zero, '4');
  });

  test('a device node made inside is made, but opening it is refused by the device cgroup', async () => {
    const r = await run(sh(makeAndOpenDevices('v1')));
    assert.equal(r.exit.exitCode, 0, r.stderr);
    assertFuseRefused(r.stdout.trim().split('\n'), 'v1');
    await assertOpensOnHost('v1');
  });

  test('inherited descriptors are closed', async () => {
    // read from the host: a shell inside would list its own pipeline's pipes
    const c = await rt.create(opts(['sleep', '100']));
    try {
      const started = await rt.start(c.id);
      const fds = (await readdir(`/proc/${started.state.pid}/fd`)).sort();
      assert.deepEqual(fds, ['0', '1', '2']);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('a working directory through a magic link is refused (CVE-2024-21626)', async () => {
    const c = await rt.create(opts(['pwd'], { cwd: '/proc/self/cwd' }));
    try {
      await assert.rejects(rt.start(c.id), (err: Error) => {
        assert.match(err.message, /chdir \/proc\/self\/cwd/);
        return true;
      });
      assert.equal((await rt.inspect(c.id)).state.reason, 'StartError');
    } finally {
      await rt.remove(c.id, { force: true });
    }
    const r = await run(['pwd'], { cwd: '/../../../tmp' });
    assert.equal(r.stdout.trim(), '/tmp', '.. stops at the container root');
  });

  test('hostile roots: /proc as a link is refused; a volume target through a link stays inside', async () => {
    const evil = await makeBusyboxRootfs(join(work, 'evil-rootfs'));
    await rm(join(evil, 'proc'), { recursive: true });
    await symlink('/etc', join(evil, 'proc'));
    const c = await rt.create({ rootfs: { type: 'bind', source: evil, options: [] }, argv: ['true'] });
    try {
      await assert.rejects(rt.start(c.id), /mount \/proc: \/proc in the image is not a directory/);
    } finally {
      await rt.remove(c.id, { force: true });
    }
    const outside = join(work, 'outside');
    await mkdir(outside, { recursive: true });
    const linked = await makeBusyboxRootfs(join(work, 'linked-rootfs'));
    await symlink(`../../../../../../..${outside}`, join(linked, 'escape'));
    const vol = join(work, 'vol-link');
    await mkdir(vol, { recursive: true });
    const r = await run(['ls', '/escape/data'], {
      rootfs: { type: 'bind', source: linked, options: [] },
      volumes: [{ source: vol, target: '/escape/data', readonly: false }],
    });
    assert.equal(r.exit.exitCode, 0, r.stderr);
    assert.deepEqual(await readdir(outside), [], 'nothing was created or mounted outside the root');
    assert.ok(
      (await readdir(join(linked, work, 'outside'))).includes('data'),
      'the link resolved inside the root',
    );
  });

  test('a missing command fails start with NotFound naming it', async () => {
    const c = await rt.create(opts(['/no/such/binary']));
    try {
      await assert.rejects(rt.start(c.id), (err: Error) => {
        assert.ok(err instanceof NotFoundError);
        assert.match(err.message, /exec \/no\/such\/binary/);
        return true;
      });
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('network none has only loopback, and it is up', async () => {
    const r = await run(
      sh(
        'ls /sys/class/net | tr "\\n" " "; echo; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping-ok',
      ),
    );
    const [ifs, , ping] = r.stdout.trim().split('\n');
    assert.equal(ifs!.trim(), 'lo');
    assert.equal(ping, 'ping-ok');
  });

  test('volumes: read-write and read-only binds; read-only root', async () => {
    const vol = join(work, 'vol');
    await mkdir(vol, { recursive: true });
    await writeFile(join(vol, 'in.txt'), 'from host\n');
    const r = await run(
      sh(
        'cat /data/in.txt; echo out > /data/out.txt; echo x > /ro/x 2>/dev/null || echo ro-refused; touch /newfile 2>/dev/null || echo root-ro',
      ),
      {
        volumes: [
          { source: vol, target: '/data', readonly: false },
          { source: vol, target: '/ro', readonly: true },
        ],
        readOnly: true,
      },
    );
    assert.deepEqual(r.stdout.trim().split('\n'), ['from host', 'ro-refused', 'root-ro']);
    assert.equal(await readFile(join(vol, 'out.txt'), 'utf8'), 'out\n');
  });

  test('a root bind mount with the "ro" option (a snapshot view) stays read-only', async () => {
    // the mount points the runtime binds onto must exist in a read-only root
    await writeFile(join(rootfs, 'etc', 'hosts'), '');
    await writeFile(join(rootfs, 'etc', 'hostname'), '');
    const r = await run(
      sh('cat /etc/hostname >/dev/null && echo readable; touch /newfile 2>/dev/null || echo root-ro'),
      {
        rootfs: { type: 'bind', source: rootfs, options: ['rbind', 'ro'] },
      },
    );
    assert.deepEqual(r.stdout.trim().split('\n'), ['readable', 'root-ro']);
    await assert.rejects(stat(join(rootfs, 'newfile')));
  });
});

describe('cgroup limits', () => {
  test('memory limit: the process is OOM-killed, exit 137, reason OOMKilled', async () => {
    const r = await run(['tail', '/dev/zero'], { memoryBytes: 16 * 1024 * 1024 });
    assert.equal(r.exit.exitCode, 137);
    assert.equal(r.exit.reason, 'OOMKilled');
    assert.equal(r.exit.oomKilled, true);
  });

  test('pids limit: a fork bomb stops at the limit', async () => {
    // the loop runs in a subshell: a shell whose fork fails exits, and pid 1 must stay
    const c = await rt.create(
      opts(sh('(for i in $(seq 60); do sleep 30 & done) 2>/dev/null; exec sleep 30'), { pidsLimit: 16 }),
    );
    try {
      await rt.start(c.id);
      let pids = 0;
      for (let i = 0; i < 250; i++) {
        pids = (await rt.inspect(c.id)).stats?.pids ?? 0;
        if (pids >= 16) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 200));
      pids = (await rt.inspect(c.id)).stats?.pids ?? 0;
      assert.ok(pids >= 14 && pids <= 16, `the container filled up to the limit and no more (${pids})`);
      const layout = rt.cgroups.layout;
      const events = join(
        layout.kind === 'v2' ? layout.unified : layout.controllers.pids!,
        'skiff',
        c.id,
        'pids.events',
      );
      assert.match(await readFile(events, 'utf8'), /^max [1-9]/m, 'forks were refused by the pids limit');
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('cpu, memory and pids limits are in force from the first instruction: pid 1 finds itself in its cgroup with them set', async () => {
    // A container has no cgroup file system of its own: the parents of the containers' cgroups
    // are bound read-only at /cgroup/<controller>. The process's own cgroup is the one named by
    // its id, which its default hostname begins. The container's process (pid 1, the shell the
    // runtime exec'd) reads every file first thing, with builtins (cd, read), so nothing else runs
    // in the container: had it been moved into its cgroup after exec, that cgroup's cgroup.procs
    // would not hold pid 1; had the limits been written after exec, it would read the defaults.
    const layout = rt.cgroups.layout;
    const memoryBytes = 64 * 1024 * 1024;
    const expected: [controller: string, file: string, value: string][] =
      layout.kind === 'v2'
        ? [
            ['unified', 'cpu.max', '50000 100000'],
            ['unified', 'memory.max', String(memoryBytes)],
            ['unified', 'pids.max', '20'],
          ]
        : [
            ['cpu', 'cpu.cfs_period_us', '100000'],
            ['cpu', 'cpu.cfs_quota_us', '50000'],
            ['memory', 'memory.limit_in_bytes', String(memoryBytes)],
            ['pids', 'pids.max', '20'],
          ];
    const volumes = [];
    for (const controller of new Set(expected.map(([controller]) => controller))) {
      const hierarchy =
        layout.kind === 'v2' ? layout.unified : layout.controllers[controller as 'cpu' | 'memory' | 'pids'];
      assert.ok(hierarchy, `no ${controller} hierarchy in ${JSON.stringify(layout)}`);
      const source = join(hierarchy, rt.cgroups.parent);
      await mkdir(source, { recursive: true });
      volumes.push({ source, target: `/cgroup/${controller}`, readonly: true });
    }
    const script = [
      'read -r host </etc/hostname',
      ...expected.map(
        ([controller, file]) =>
          `cd /cgroup/${controller}/$host* && read -r value <${file} && read -r procs <cgroup.procs && echo "${controller}/${file} $value procs $procs"`,
      ),
    ].join('; ');
    const r = await run(sh(script), { cpus: 0.5, memoryBytes, pidsLimit: 20, volumes });
    assert.equal(r.exit.exitCode, 0, r.stderr);
    assert.deepEqual(
      r.stdout.trim().split('\n'),
      expected.map(([controller, file, value]) => `${controller}/${file} ${value} procs 1`),
    );
    assert.equal(await rt.cgroups.exists(r.id), false, 'rm removes every cgroup dir');
  });

  test('stats read back the memory limit, the memory used and the process count', async () => {
    const c = await rt.create(
      opts(['sleep', '30'], { cpus: 0.5, memoryBytes: 64 * 1024 * 1024, pidsLimit: 20 }),
    );
    try {
      await rt.start(c.id);
      const info = await rt.inspect(c.id);
      assert.equal(info.stats?.pids, 1);
      assert.equal(info.stats?.memoryLimitBytes, 64 * 1024 * 1024);
      assert.ok((info.stats?.memoryBytes ?? 0) > 0);
    } finally {
      await rt.remove(c.id, { force: true });
    }
    assert.equal(await rt.cgroups.exists(c.id), false, 'rm removes every cgroup dir');
  });
});

describe('cgroup parent', () => {
  test("a runtime's own parent holds its containers' cgroups; a runtime with another parent still finds and removes them", async () => {
    const parent = `skiff-test-${process.pid}-${Date.now().toString(36)}/node-a`;
    const own = await LinuxContainerRuntime.open({ root, cgroupParent: parent });
    assert.equal(own.cgroups.parent, parent);
    const c = await own.create(opts(sh('cat /proc/self/cgroup; sleep 30')));
    const top = own.cgroups.parentDirs().map((dir) => join(dir, '..'));
    try {
      assert.equal(c.config.cgroupParent, parent, 'the record names its parent');
      await own.start(c.id);
      const dirs = own.cgroups.dirs(c.id);
      assert.ok(dirs.length > 0 && dirs.every((dir) => dir.includes(`/${parent}/${c.id}`)), dirs.join(' '));
      assert.equal(await own.cgroups.exists(c.id), true);
      // rt has the default parent: it inspects and removes the container where its record says
      assert.equal(rt.cgroups.parent, 'skiff');
      const seen = await rt.inspect(c.id);
      assert.ok((seen.stats?.pids ?? 0) >= 1, 'stats are read from the container’s own cgroups');
      await rt.remove(c.id, { force: true });
      assert.equal(await own.cgroups.exists(c.id), false, 'its cgroups went with it');
    } finally {
      await own.remove(c.id, { force: true }).catch(() => {});
      // the levels made for the parent
      for (const dir of top)
        spawnSync('sh', ['-c', `find "${dir}" -depth -type d -exec rmdir {} + 2>/dev/null`]);
    }
  });
});

describe("cgroup v2 path (forced onto this machine's cgroup2 mount)", () => {
  test('device access is filtered by a BPF program: a node made inside is made but refused on open, standard ones work', async () => {
    const layout = parseCgroupLayout(await readFile('/proc/self/mountinfo', 'utf8'));
    const unified = layout.kind === 'v2' ? layout.unified : layout.unified;
    if (!unified)
      throw new Error('this test needs a cgroup2 mount (mount -t cgroup2 none /sys/fs/cgroup/unified)');
    const v2 = await LinuxContainerRuntime.open({
      root: join(work, 'root-v2'),
      cgroups: new Cgroups({ kind: 'v2', unified }),
    });
    const c = await v2.create(
      opts(sh(`${makeAndOpenDevices('v2')}; head -c 3 /dev/zero | wc -c; cat /proc/self/cgroup`)),
    );
    try {
      await v2.start(c.id);
      const exit = await v2.wait(c.id);
      let out = '';
      for await (const e of v2.logs(c.id)) out += e.text + '\n';
      assert.equal(exit.exitCode, 0, out);
      const lines = out.trim().split('\n');
      assertFuseRefused(lines, 'v2');
      assert.equal(lines[3], '3');
      assert.ok(lines.includes('0::/'), "the cgroup namespace is rooted at the container's v2 cgroup");
    } finally {
      await v2.remove(c.id, { force: true });
    }
    assert.equal(await v2.cgroups.exists(c.id), false);
    await assertOpensOnHost('v2');
  });
});

describe('logs, lifecycle, exec', () => {
  test('stdout and stderr are logged with RFC3339Nano timestamps; tail; rotation at a size limit', async () => {
    const r = await run(sh('echo one; echo two >&2; echo three'));
    assert.equal(r.stdout, 'one\nthree\n');
    assert.equal(r.stderr, 'two\n');
    const c = await rt.create(
      opts(sh('for i in $(seq 200); do echo line-$i; done'), { logMaxBytes: 4096, logMaxFiles: 2 }),
    );
    try {
      await rt.start(c.id);
      await rt.wait(c.id);
      const tail: string[] = [];
      for await (const e of rt.logs(c.id, { tail: 3 })) {
        assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
        tail.push(e.text);
      }
      assert.deepEqual(tail, ['line-198', 'line-199', 'line-200']);
      const size = (await stat(rt.store.path(c.id, 'container.log'))).size;
      assert.ok(size <= 4096, `the current file stays under the limit (${size})`);
      await stat(rt.store.path(c.id, 'container.log.1'));
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('logs --follow streams until the container exits', async () => {
    const c = await rt.create(opts(sh('echo a; sleep 0.3; echo b; sleep 0.3; echo c')));
    try {
      await rt.start(c.id);
      const seen: string[] = [];
      for await (const e of rt.logs(c.id, { follow: true })) seen.push(e.text);
      assert.deepEqual(seen, ['a', 'b', 'c']);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('a container outlives the process that started it and is stopped from another', async () => {
    const script = join(work, 'start-detached.mjs');
    const moduleUrl = new URL('../../node-agent/runtime/containers/container-runtime.js', import.meta.url)
      .href;
    await writeFile(
      script,
      `import { LinuxContainerRuntime } from ${JSON.stringify(moduleUrl)};
       const rt = await LinuxContainerRuntime.open({ root: ${JSON.stringify(root)} });
       const c = await rt.create({ name: 'detached', rootfs: { type: 'bind', source: ${JSON.stringify(rootfs)}, options: [] }, argv: ['sleep', '1000'] });
       await rt.start(c.id);
       process.stdout.write(c.id);`,
    );
    const id = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [...process.execArgv, script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`starter exited ${code}`))));
    });
    try {
      const running = await rt.list();
      assert.ok(
        running.some((c) => c.id === id && c.state.status === 'running'),
        'still running after its starter exited',
      );
      assert.equal((await rt.inspect('detached')).id, id, 'names resolve');
      assert.equal((await rt.inspect(id.slice(0, 8))).id, id, 'short ids resolve');
      const t0 = Date.now();
      const exit = (await rt.stop('detached', 1)) as ExitInfo;
      assert.equal(exit.exitCode, 137, 'sleep as pid 1 ignores SIGTERM, so the grace ends in SIGKILL');
      assert.ok(Date.now() - t0 >= 900, 'the grace period was given');
      await assert.rejects(rt.remove('nonexistent-name'), NotFoundError);
    } finally {
      await rt.remove(id, { force: true });
    }
  });

  test('kill delivers a signal; a process that handles TERM stops at once', async () => {
    const c = await rt.create(opts(sh('trap "exit 7" TERM; while true; do sleep 0.05; done')));
    try {
      await rt.start(c.id);
      await new Promise((r) => setTimeout(r, 200));
      const exit = await rt.stop(c.id, 10);
      assert.equal(exit?.exitCode, 7);
      await assert.rejects(rt.kill(c.id, 'SIGTERM'), FailedPreconditionError);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('a killed shim is noticed: the container is marked exited (ShimDied) and its process killed', async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      const started = await rt.start(c.id);
      const pid = started.state.pid!;
      process.kill(started.state.shimPid!, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 100));
      const info = await rt.inspect(c.id);
      assert.equal(info.state.status, 'exited');
      assert.equal(info.state.reason, 'ShimDied');
      assert.match(info.state.error ?? '', /shim died/);
      for (
        let i = 0;
        i < 100 && (await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')).length > 0;
        i++
      ) {
        const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        if (/\) [ZX] /.test(st)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      assert.ok(st === '' || /\) [ZX] /.test(st), 'the container process is gone');
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test("exec runs inside: sees the container's processes and hostname; exit code comes back", async () => {
    const c = await rt.create(opts(['sleep', '1000'], { hostname: 'exec-box', user: { uid: 0 } }));
    try {
      await rt.start(c.id);
      const out = join(work, 'exec-out.txt');
      const { openSync, closeSync } = await import('node:fs');
      const fd = openSync(out, 'w');
      const h = await rt.exec(c.id, {
        argv: sh('hostname; cat /proc/1/cmdline | tr "\\0" " "; echo; grep CapEff /proc/self/status; exit 5'),
        stdio: ['ignore', fd, 'inherit'],
      });
      closeSync(fd);
      assert.equal(await h.exited, 5);
      const lines = (await readFile(out, 'utf8')).trim().split('\n');
      assert.equal(lines[0], 'exec-box');
      assert.equal(lines[1]!.trim(), 'sleep 1000');
      assert.equal(lines[2], 'CapEff:\t00000000a80425fb');
      await assert.rejects(rt.exec(c.id, { argv: ['/nope'], stdio: 'ignore' }), NotFoundError);
      // as runc exec: the working directory must exist; none is made for the process as root
      await assert.rejects(
        rt.exec(c.id, { argv: ['true'], cwd: '/not/there', stdio: 'ignore' }),
        /chdir \/not\/there: .*No such file or directory/,
      );
      const probe = await rt.exec(c.id, {
        argv: sh('test -e /not && echo made || echo absent'),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const [code, made] = await Promise.all([probe.exited, text(probe.stdout!)]);
      assert.equal(code, 0);
      assert.equal(made, 'absent\n');
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('a container recorded by an earlier skiff (numeric uid/gid, no user text) starts and execs as that user', async () => {
    const c = await rt.create(opts(['sleep', '1000'], { user: '1000:1000' }));
    const path = join(root, 'containers', c.id, 'config.json');
    const {
      user: _user,
      groupAdd: _groupAdd,
      seccomp: _seccomp,
      ...rest
    } = JSON.parse(await readFile(path, 'utf8'));
    await writeFile(path, JSON.stringify({ ...rest, uid: 1000, gid: 1000, additionalGids: [4] }));
    // a new process, as after an upgrade: nothing cached
    const upgraded = await LinuxContainerRuntime.open({ root });
    try {
      await upgraded.start(c.id);
      const probe = await upgraded.exec(c.id, { argv: ['id', '-u'], stdio: ['ignore', 'pipe', 'pipe'] });
      const [code, uid] = await Promise.all([probe.exited, text(probe.stdout!)]);
      assert.equal(code, 0);
      assert.equal(uid, '1000\n');
      assert.equal((await upgraded.inspect(c.id)).config.user, '1000:1000');
    } finally {
      await upgraded.remove(c.id, { force: true });
    }
  });

  test('the helper joins no process but the one named: a pid whose start time differs (reused) is refused', async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      const started = await rt.start(c.id);
      const specPath = join(work, 'stale-owner.spec');
      await writeFile(
        specPath,
        encodeExecSpec({
          argv: ['true'],
          env: [],
          cwd: '/',
          user: '0:0',
          groupAdd: [],
          homeFromPasswd: false,
          capabilities: [],
          noNewPrivs: true,
          rlimits: [],
          cgroups: [],
          joinNamespaces: { pid: started.state.pid!, startTime: '1', types: ['net', 'mnt'] },
        }),
      );
      await assert.rejects(
        startExec(specPath, 'ignore', 'exec with a stale pid'),
        /join namespaces \/proc\/\d+: pid \d+ is no longer the process whose namespaces were to be joined/,
      );
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('--network container:C shares the network namespace', async () => {
    const a = await rt.create(opts(['sleep', '1000'], { name: 'net-owner' }));
    try {
      const started = await rt.start(a.id);
      const ownerNs = await readlink(`/proc/${started.state.pid}/ns/net`);
      const r = await run(['readlink', '/proc/self/ns/net'], {
        network: { mode: 'container', container: 'net-owner' },
      });
      assert.equal(r.stdout.trim(), ownerNs);
    } finally {
      await rt.remove(a.id, { force: true });
    }
  });

  test('rm leaves no mount, no cgroup and no state; names are unique until then', async () => {
    const c = await rt.create(
      opts(['sleep', '1000'], { name: 'unique-name', memoryBytes: 32 * 1024 * 1024 }),
    );
    await assert.rejects(rt.create(opts(['true'], { name: 'unique-name' })), /in use/);
    await rt.start(c.id);
    await assert.rejects(rt.remove(c.id), FailedPreconditionError);
    await rt.remove(c.id, { force: true });
    assert.deepEqual(mountsUnder(root), []);
    assert.equal(await rt.cgroups.exists(c.id), false);
    await assert.rejects(stat(rt.store.path(c.id)));
    const again = await rt.create(opts(['true'], { name: 'unique-name' }));
    await rt.remove(again.id);
  });
});

describe('overlay root', () => {
  test('an overlay with 150 lower layers (options far beyond one page) mounts and merges', async () => {
    const layers = join(work, 'layers-with-a-long-directory-name-to-overflow-the-page-limit');
    const lowers: string[] = [];
    for (let i = 0; i < 150; i++) {
      const dir = join(layers, `layer-${String(i).padStart(4, '0')}-${'x'.repeat(20)}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `file-${i}`), `${i}\n`);
      lowers.unshift(dir); // leftmost is uppermost
    }
    await writeFile(join(lowers[0]!, 'shadowed'), 'top\n');
    await writeFile(join(lowers[149]!, 'shadowed'), 'bottom\n');
    // the bottom layer carries the busybox root
    await rm(lowers[149]!, { recursive: true });
    await makeBusyboxRootfs(lowers[149]!);
    await writeFile(join(lowers[149]!, 'shadowed'), 'bottom\n');
    const upper = join(work, 'upper');
    const workdir = join(work, 'work');
    await mkdir(upper, { recursive: true });
    await mkdir(workdir, { recursive: true });
    const options = [`lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${workdir}`];
    assert.ok(options[0]!.length > 4096);
    const r = await run(sh('cat /shadowed /file-1 /file-149; echo new > /written'), {
      rootfs: { type: 'overlay', source: 'overlay', options },
    });
    assert.equal(r.exit.exitCode, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['top', '1', '149']);
    assert.equal(await readFile(join(upper, 'written'), 'utf8'), 'new\n', 'writes land in the upper layer');
    await assert.rejects(stat(join(lowers[0]!, 'written')), 'lower layers stay untouched');
    assert.deepEqual(mountsUnder(work), []);
  });
});
