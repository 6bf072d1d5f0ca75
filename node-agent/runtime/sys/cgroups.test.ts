import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cgroups,
  limitWrites,
  parseCgroupLayout,
  parseFlatKeyed,
  parseOomKills,
  validateCgroupParent,
  type CgroupLayout,
} from './cgroups.js';

type V1Layout = Extract<CgroupLayout, { kind: 'v1' | 'hybrid' }>;

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;

const COMOUNTED_V1 = `25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory`;

const V2 = `30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate`;

test('hybrid layout: v1 controllers and the unified mount', () => {
  const l = parseCgroupLayout(HYBRID) as V1Layout;
  assert.equal(l.kind, 'hybrid');
  assert.equal(l.controllers.memory, '/sys/fs/cgroup/memory');
  assert.equal(l.controllers.cpuacct, '/sys/fs/cgroup/cpuacct');
  assert.equal(l.unified, '/sys/fs/cgroup/unified');
});

test('co-mounted v1 controllers share a directory', () => {
  const l = parseCgroupLayout(COMOUNTED_V1) as V1Layout;
  assert.equal(l.kind, 'v1');
  assert.equal(l.controllers.cpu, l.controllers.cpuacct);
});

test('pure v2', () => {
  assert.deepEqual(parseCgroupLayout(V2), { kind: 'v2', unified: '/sys/fs/cgroup' });
});

test('no cgroup mount is a clear error', () => {
  assert.throws(() => parseCgroupLayout('1 0 8:1 / / rw - ext4 /dev/vda rw'), /no cgroup file system/);
});

test('limit writes on v1: memsw optional, cpu period before quota, device rules', () => {
  const w = limitWrites(parseCgroupLayout(HYBRID), { memoryBytes: 1 << 26, cpuQuotaUs: 50_000, pidsMax: 64 });
  const files = w.map((x) => `${x.controller}/${x.file}=${x.value}`);
  assert.ok(files.includes('memory/memory.limit_in_bytes=67108864'));
  assert.ok(w.find((x) => x.file === 'memory.memsw.limit_in_bytes')?.optional);
  assert.ok(files.indexOf('cpu/cpu.cfs_period_us=100000') < files.indexOf('cpu/cpu.cfs_quota_us=50000'));
  assert.ok(files.includes('pids/pids.max=64'));
  assert.equal(files[files.indexOf('devices/devices.deny=a') + 1], 'devices/devices.allow=c *:* m');
});

test('plan: parents before children, limits as paths, the join list', () => {
  const plan = new Cgroups(parseCgroupLayout(COMOUNTED_V1)).plan('c1', { memoryBytes: 1000, pidsMax: 5 });
  assert.deepEqual(plan.mkdirs, [
    '/sys/fs/cgroup/cpu,cpuacct/skiff',
    '/sys/fs/cgroup/cpu,cpuacct/skiff/c1',
    '/sys/fs/cgroup/memory/skiff',
    '/sys/fs/cgroup/memory/skiff/c1',
  ]);
  assert.deepEqual(plan.join, ['/sys/fs/cgroup/cpu,cpuacct/skiff/c1', '/sys/fs/cgroup/memory/skiff/c1']);
  assert.deepEqual(plan.writes, [
    { path: '/sys/fs/cgroup/memory/skiff/c1/memory.limit_in_bytes', value: '1000', optional: false },
    { path: '/sys/fs/cgroup/memory/skiff/c1/memory.memsw.limit_in_bytes', value: '1000', optional: true },
  ]);
});

test('limit writes on v2', () => {
  const w = limitWrites(parseCgroupLayout(V2), { memoryBytes: 1000, cpuQuotaUs: 150_000, pidsMax: 5 });
  assert.deepEqual(
    w.map((x) => `${x.file}=${x.value}`),
    ['memory.max=1000', 'memory.swap.max=0', 'cpu.max=150000 100000', 'pids.max=5'],
  );
});

test('oom kill counters and flat keyed files', () => {
  assert.equal(parseOomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n'), 3);
  assert.equal(parseOomKills('low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n'), 1);
  assert.equal(parseOomKills(''), 0);
  assert.deepEqual(parseFlatKeyed('usage_usec 10\nuser_usec 4\nbad\n'), { usage_usec: 10, user_usec: 4 });
});

test('plan under a nested parent: every level made, parents first, in each hierarchy', () => {
  const cgroups = new Cgroups(parseCgroupLayout(COMOUNTED_V1), 'skiff-lab/n1');
  const plan = cgroups.plan('c1', {});
  assert.deepEqual(plan.mkdirs, [
    '/sys/fs/cgroup/cpu,cpuacct/skiff-lab',
    '/sys/fs/cgroup/cpu,cpuacct/skiff-lab/n1',
    '/sys/fs/cgroup/cpu,cpuacct/skiff-lab/n1/c1',
    '/sys/fs/cgroup/memory/skiff-lab',
    '/sys/fs/cgroup/memory/skiff-lab/n1',
    '/sys/fs/cgroup/memory/skiff-lab/n1/c1',
  ]);
  assert.deepEqual(plan.join, [
    '/sys/fs/cgroup/cpu,cpuacct/skiff-lab/n1/c1',
    '/sys/fs/cgroup/memory/skiff-lab/n1/c1',
  ]);
  assert.deepEqual(cgroups.parentDirs(), [
    '/sys/fs/cgroup/cpu,cpuacct/skiff-lab/n1',
    '/sys/fs/cgroup/memory/skiff-lab/n1',
  ]);
  assert.deepEqual(new Cgroups(parseCgroupLayout(V2), 'a/b').dirs('c1'), ['/sys/fs/cgroup/a/b/c1']);
});

test('withParent: the same layout under the record’s parent; the same object for the same parent', () => {
  const cgroups = new Cgroups(parseCgroupLayout(V2));
  assert.equal(cgroups.parent, 'skiff');
  assert.equal(cgroups.withParent('skiff'), cgroups);
  assert.deepEqual(cgroups.withParent('lab/n2').dirs('c1'), ['/sys/fs/cgroup/lab/n2/c1']);
});

test('a cgroup parent is a relative path of 1-4 plain names: nothing above the hierarchy root', () => {
  for (const good of ['skiff', 'skiff-lab_1/n1', 'a.b/c-d', 'a/b/c/d'])
    assert.equal(validateCgroupParent(good), good);
  for (const bad of ['', '/skiff', 'skiff/', '..', 'a/../b', './a', 'a//b', 'a b', 'a/b/c/d/e', 'ä']) {
    assert.throws(
      () => validateCgroupParent(bad),
      (err: Error) => err.name === 'InvalidArgumentError' && /cgroup parent/.test(err.message),
      bad,
    );
    assert.throws(() => new Cgroups(parseCgroupLayout(V2), bad), /cgroup parent/);
  }
});
