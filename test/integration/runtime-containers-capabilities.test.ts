/**
 * Capabilities, no_new_privs and privileged containers, in real containers: Docker's default set
 * (CapEff 0xa80425fb), --cap-drop NET_RAW making ping fail, --cap-add NET_ADMIN letting `ip link
 * add` work, --cap-add SYS_ADMIN widening the seccomp filter (mount works), exec'd processes with
 * their container's set, no_new_privs off with the filter still installed (so the helper installs
 * it before it drops CAP_SYS_ADMIN), privileged containers (every capability, no filter, /proc
 * unmasked, /sys writable), and names refused with the field.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  LinuxContainerRuntime,
  type CreateContainerOptions,
} from '../../node-agent/runtime/containers/container-runtime.js';
import { heldCapabilities } from '../../node-agent/runtime/containers/capabilities.js';
import { InvalidArgumentError } from '../../proto/errors.js';
import {
  makeBusyboxRootfs,
  onRootfs,
  requireRootAndBusybox,
  runToEnd,
  withScratchRuntime,
} from './runtime-containers-fixture.js';

let work: string;
let rootfs: string;
let rt: LinuxContainerRuntime;

withScratchRuntime('skiff-ctr-caps-', async (dir) => {
  requireRootAndBusybox();
  work = dir;
  rootfs = await makeBusyboxRootfs(join(work, 'rootfs'));
  rt = await LinuxContainerRuntime.open({ root: join(work, 'root') });
  return rt;
});

const sh = (script: string) => ['sh', '-c', script];
const run = (script: string, extra: Partial<CreateContainerOptions> = {}) =>
  runToEnd(rt, onRootfs(rootfs, sh(script), extra));

/** "CapEff: …", "NoNewPrivs: …" and "Seccomp: …" of the process, as a record. */
const STATUS = 'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status';
function status(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .filter((l) => l.includes(':\t'))
      .map((l) => l.split(':\t') as [string, string]),
  );
}
const mask = (caps: number[]) => caps.reduce((m, c) => m | (1n << BigInt(c)), 0n);
const hex = (m: bigint) => m.toString(16).padStart(16, '0');
const DEFAULT_MASK = 0xa80425fbn;

describe('capabilities', () => {
  test("Docker's default set, no_new_privs and the filter by default; the record keeps the set", async () => {
    const r = await run(STATUS);
    assert.deepEqual(status(r.stdout), {
      CapEff: hex(DEFAULT_MASK),
      CapBnd: hex(DEFAULT_MASK),
      NoNewPrivs: '1',
      Seccomp: '2',
    });
    const c = await rt.create(onRootfs(rootfs, ['true'], { capDrop: ['net_raw'] }));
    try {
      assert.equal(mask(c.config.capabilities!), DEFAULT_MASK & ~(1n << 13n));
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('dropping NET_RAW makes ping fail; with it, ping works', async () => {
    const ping = 'ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo ping-ok || echo ping-failed';
    assert.equal((await run(ping)).stdout, 'ping-ok\n');
    const dropped = await run(`${STATUS}; ${ping}`, { capDrop: ['NET_RAW'] });
    assert.match(dropped.stdout, /ping-failed/);
    assert.equal(status(dropped.stdout).CapEff, hex(DEFAULT_MASK & ~(1n << 13n)));
  });

  test('adding NET_ADMIN lets `ip link add` work, which fails without it', async () => {
    const add = 'ip link add skiff-d0 type bridge && echo added || echo refused';
    assert.match((await run(add)).stdout, /refused/);
    const r = await run(`${add}; ip -o link show skiff-d0 | cut -d: -f2`, { capAdd: ['CAP_NET_ADMIN'] });
    assert.equal(r.stdout, 'added\n skiff-d0\n', r.stderr);
  });

  test('adding SYS_ADMIN resolves the seccomp filter for it: mount works, as with Docker', async () => {
    const script = 'mount -t tmpfs t /tmp 2>/dev/null && echo mounted || echo refused';
    assert.equal((await run(script)).stdout, 'refused\n');
    const r = await run(`${STATUS}; ${script}`, { capAdd: ['SYS_ADMIN'] });
    assert.match(r.stdout, /mounted/);
    assert.equal(status(r.stdout).Seccomp, '2', 'still filtered');
  });

  test('drop ALL, then add one: only that one', async () => {
    const r = await run(STATUS, { capDrop: ['ALL'], capAdd: ['NET_BIND_SERVICE'] });
    assert.equal(status(r.stdout).CapEff, hex(1n << 10n));
  });

  test("an exec'd process gets its container's capabilities and no_new_privs", async () => {
    const c = await rt.create(
      onRootfs(rootfs, ['sleep', '1000'], {
        capAdd: ['NET_ADMIN'],
        capDrop: ['CHOWN'],
        noNewPrivileges: false,
      }),
    );
    try {
      await rt.start(c.id);
      const out = join(work, 'exec-caps.txt');
      const fd = openSync(out, 'w');
      const h = await rt.exec(c.id, { argv: sh(STATUS), stdio: ['ignore', fd, 'inherit'] });
      closeSync(fd);
      assert.equal(await h.exited, 0);
      const s = status(await readFile(out, 'utf8'));
      assert.equal(s.CapEff, hex((DEFAULT_MASK | (1n << 12n)) & ~1n));
      assert.equal(s.NoNewPrivs, '0');
      assert.equal(s.Seccomp, '2');
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('no_new_privs off: the filter is still installed (before the capabilities are dropped), as root and as a user', async () => {
    const root = await run(STATUS, { noNewPrivileges: false });
    assert.equal(status(root.stdout).NoNewPrivs, '0');
    assert.equal(status(root.stdout).Seccomp, '2');
    assert.equal(root.exit.exitCode, 0, root.stderr);
    const user = await run(STATUS, { noNewPrivileges: false, user: '1000:1000' });
    assert.equal(user.exit.exitCode, 0, user.stderr);
    assert.deepEqual(
      {
        NoNewPrivs: status(user.stdout).NoNewPrivs,
        Seccomp: status(user.stdout).Seccomp,
        CapEff: status(user.stdout).CapEff,
      },
      { NoNewPrivs: '0', Seccomp: '2', CapEff: hex(0n) },
    );
  });

  test('privileged: every capability, no filter, no no_new_privs, /proc unmasked and /sys writable', async () => {
    const r = await run(
      `${STATUS}; grep -c " /proc/sys " /proc/mounts; grep " /sys " /proc/mounts | cut -d" " -f4 | cut -d, -f1`,
      {
        privileged: true,
      },
    );
    assert.equal(r.exit.exitCode, 0, r.stderr);
    const all = mask(heldCapabilities()); // every one this process holds
    assert.deepEqual(status(r.stdout), { CapEff: hex(all), CapBnd: hex(all), NoNewPrivs: '0', Seccomp: '0' });
    const [, , , , procSys, sys] = r.stdout.trim().split('\n');
    assert.equal(procSys, '0', '/proc/sys is not remounted read-only');
    assert.equal(sys, 'rw');
    await assert.rejects(
      rt.create(onRootfs(rootfs, ['true'], { privileged: true, capDrop: ['NET_RAW'] })),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'capDrop',
    );
  });

  test('an unknown capability is refused, naming the field', async () => {
    await assert.rejects(
      rt.create(onRootfs(rootfs, ['true'], { capAdd: ['NET_ADMIN', 'NET_WIZARD'] })),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        e.field === 'capabilities.add[1]' &&
        /"NET_WIZARD" is not a Linux capability/.test(e.message),
    );
  });
});
