import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeContainerSpec,
  encodeExecSpec,
  parseHelperReport,
  type HelperContainerSpec,
} from './helper-spec.js';

const base: HelperContainerSpec = {
  argv: ['sh', '-c', 'echo "a\nb"'],
  env: ['A=1'],
  cwd: '/',
  user: 'nginx:staff',
  groupAdd: ['audio', '27'],
  homeFromPasswd: true,
  capabilities: [0, 1],
  noNewPrivs: true,
  rlimits: [{ resource: 7, soft: 1024n, hard: 4096n }],
  cgroups: ['/sys/fs/cgroup/memory/skiff/x'],
  cgroupMkdirs: ['/sys/fs/cgroup/memory/skiff', '/sys/fs/cgroup/memory/skiff/x'],
  cgroupLimits: [
    { path: '/sys/fs/cgroup/memory/skiff/x/memory.memsw.limit_in_bytes', value: '64', optional: true },
  ],
  newNamespaces: ['pid', 'mnt'],
  rootfsPath: '/r',
  rootfs: { type: 'overlay', source: 'overlay', options: ['lowerdir=/a:/b', 'upperdir=/u', 'workdir=/w'] },
  readonlyRoot: false,
  hostname: 'h',
  deviceFilterCgroups: ['/sys/fs/cgroup/skiff/x'],
  maskedPaths: ['/proc/kcore'],
  readonlyPaths: ['/proc/sys'],
  volumes: [{ source: '/s', target: '/t', readonly: true }],
  loopbackUp: true,
  logPath: '/l',
  logMaxBytes: 100,
  logMaxFiles: 2,
  exitPath: '/e',
};

function pairs(buf: Buffer): string[] {
  const s = buf.toString('utf8');
  assert.ok(s.endsWith('\0'));
  return s.slice(0, -1).split('\0');
}

test('container spec: keys followed by their values, newlines kept verbatim', () => {
  const p = pairs(encodeContainerSpec(base));
  assert.deepEqual(p.slice(0, 6), ['arg', 'sh', 'arg', '-c', 'arg', 'echo "a\nb"']);
  const at = (k: string) => p.indexOf(k);
  assert.deepEqual(p.slice(at('rlimit'), at('rlimit') + 4), ['rlimit', '7', '1024', '4096']);
  assert.deepEqual(p.slice(at('volume'), at('volume') + 4), ['volume', '/s', '/t', '1']);
  assert.deepEqual(p.slice(at('cgroup.mkdir'), at('cgroup.mkdir') + 4), [
    'cgroup.mkdir',
    '/sys/fs/cgroup/memory/skiff',
    'cgroup.mkdir',
    '/sys/fs/cgroup/memory/skiff/x',
  ]);
  assert.deepEqual(p.slice(at('cgroup.limit'), at('cgroup.limit') + 4), [
    'cgroup.limit',
    '/sys/fs/cgroup/memory/skiff/x/memory.memsw.limit_in_bytes',
    '64',
    '1',
  ]);
  assert.equal(p[at('rootfs.option') + 1], 'lowerdir=/a:/b');
  assert.equal(p[at('no_new_privs') + 1], '1');
  assert.equal(p[at('device_filter') + 1], '/sys/fs/cgroup/skiff/x');
  assert.equal(at('ns.net_path'), -1, 'no network namespace to enter by path unless given');
  const entering = pairs(encodeContainerSpec({ ...base, netnsPath: '/run/netns/host-a' }));
  assert.equal(entering[entering.indexOf('ns.net_path') + 1], '/run/netns/host-a');
});

test('the user goes to the helper as text, with the added groups and the HOME flag', () => {
  const p = pairs(encodeExecSpec(base));
  const at = p.indexOf('user');
  assert.deepEqual(p.slice(at, at + 8), [
    'user',
    'nginx:staff',
    'group_add',
    'audio',
    'group_add',
    '27',
    'home_from_passwd',
    '1',
  ]);
  const numeric = pairs(encodeExecSpec({ ...base, user: '', groupAdd: [], homeFromPasswd: false }));
  assert.deepEqual(numeric.slice(numeric.indexOf('user'), numeric.indexOf('user') + 4), [
    'user',
    '',
    'home_from_passwd',
    '0',
  ]);
});

test('a NUL byte anywhere is refused with the field named', () => {
  assert.throws(() => encodeContainerSpec({ ...base, env: ['A=1\0B=2'] }), /env contains a NUL/);
  assert.throws(() => encodeExecSpec({ ...base, argv: [] }), /no command/);
});

test('helper reports', () => {
  assert.deepEqual(parseHelperReport('ok\t12\t10\n'), { ok: true, pid: 12, helperPid: 10 });
  assert.deepEqual(parseHelperReport('error\tchdir\t/x\t40\ttoo many links\n'), {
    ok: false,
    step: 'chdir',
    path: '/x',
    errno: 40,
    message: 'too many links',
  });
  assert.equal(parseHelperReport(''), undefined);
  assert.equal(parseHelperReport('ok\tx'), undefined);
});

test('a seccomp filter goes to run and exec specs as hex; none without one', () => {
  const filter = Buffer.from('0600000000007fff', 'hex'); // ret ALLOW
  for (const encode of [encodeContainerSpec, encodeExecSpec]) {
    const p = pairs(encode({ ...base, seccompFilter: filter }));
    assert.equal(p[p.indexOf('seccomp') + 1], '0600000000007fff');
    assert.equal(pairs(encode(base)).indexOf('seccomp'), -1);
  }
  for (const bad of [Buffer.alloc(0), Buffer.alloc(12), Buffer.alloc(8 * 4097)])
    assert.throws(
      () => encodeExecSpec({ ...base, seccompFilter: bad }),
      (err: Error & { field?: string }) => err.field === 'seccompFilter',
    );
});
