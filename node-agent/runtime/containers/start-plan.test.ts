import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InternalError } from '../../../proto/errors.js';
import { Cgroups, parseCgroupLayout } from '../sys/cgroups.js';
import { encodeContainerSpec } from '../sys/helper-spec.js';
import { DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS } from './defaults.js';
import { defaultSeccompFilter } from './seccomp.js';
import { helperSpecOf, hostsFileText, planStart, type StartContext } from './start-plan.js';
import type { ContainerConfig } from './state.js';

const ID = 'a'.repeat(64);
const PEER = 'b'.repeat(64);

const V1 = parseCgroupLayout(`35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices`);
const V2 = parseCgroupLayout(`30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate`);

const FILTER = Buffer.alloc(16, 1);

function config(extra: Partial<ContainerConfig> = {}): ContainerConfig {
  return {
    id: ID,
    kind: 'container',
    name: 'web',
    created: '2026-01-01T00:00:00.000Z',
    cgroupParent: 'skiff',
    rootfs: { type: 'bind', source: '/images/web', options: ['rbind', 'rw'] },
    argv: ['/bin/server', '--port', '80'],
    env: ['PATH=/bin', 'HOSTNAME=web-1'],
    cwd: '/srv',
    user: '',
    groupAdd: [],
    hostname: 'web-1',
    network: { mode: 'none' },
    readOnly: false,
    seccomp: 'default',
    volumes: [],
    autoRemove: false,
    logMaxBytes: 1000,
    logMaxFiles: 2,
    labels: {},
    ...extra,
  };
}

function context(extra: Partial<StartContext> = {}): StartContext {
  return {
    recordPath: (id, file) => `/run/skiff/containers/${id}/${file}`,
    cgroups: new Cgroups(V1),
    seccompFilter: () => FILTER,
    ...extra,
  };
}

describe('start plan: namespaces and network', () => {
  test('network none: every namespace is new, loopback comes up, the hostname is set', () => {
    const plan = planStart(config(), context());
    assert.deepEqual(plan.namespaces, {
      create: ['pid', 'mnt', 'ipc', 'uts', 'cgroup', 'net'],
      join: undefined,
    });
    assert.equal(plan.loopbackUp, true);
    assert.equal(plan.hostname, 'web-1');
  });

  test("network host: no network namespace of its own, and the host's resolv.conf when it has one", () => {
    const plan = planStart(
      config({ network: { mode: 'host' } }),
      context({ hostResolvConf: 'nameserver 10.0.0.2\n' }),
    );
    assert.deepEqual(plan.namespaces.create, ['pid', 'mnt', 'ipc', 'uts', 'cgroup']);
    assert.equal(plan.loopbackUp, false);
    assert.deepEqual(
      plan.files.map((f) => f.path.split('/').pop()),
      ['hosts', 'hostname', 'resolv.conf'],
    );
    assert.equal(plan.files[2]!.text, 'nameserver 10.0.0.2\n');
    assert.deepEqual(
      planStart(config({ network: { mode: 'host' } }), context()).files.map((f) => f.path.split('/').pop()),
      ['hosts', 'hostname'],
      'a host without resolv.conf gives none',
    );
    assert.equal(plan.namespaces.netnsPath, undefined, "the runtime's own network");
    const inHost = planStart(
      config({ network: { mode: 'host', netnsPath: '/run/netns/host-a' } }),
      context(),
    );
    assert.equal(
      inHost.namespaces.netnsPath,
      '/run/netns/host-a',
      'a host that is a namespace: entered by its path',
    );
    assert.deepEqual(inHost.namespaces.create, ['pid', 'mnt', 'ipc', 'uts', 'cgroup']);
    assert.equal(helperSpecOf(inHost).netnsPath, '/run/netns/host-a');
  });

  test("a record's own resolv.conf (a pod sandbox's) is written and mounted, on any network", () => {
    for (const network of [{ mode: 'none' as const }, { mode: 'host' as const }]) {
      const plan = planStart(
        config({ network, resolvConf: 'search shop.svc.cluster.local\nnameserver 10.96.0.10\n' }),
        context({ hostResolvConf: 'nameserver 10.0.0.2\n' }),
      );
      const file = plan.files.find((f) => f.path.endsWith('/resolv.conf'));
      assert.equal(file?.text, 'search shop.svc.cluster.local\nnameserver 10.96.0.10\n', network.mode);
      assert.ok(plan.mounts.volumes.some((v) => v.target === '/etc/resolv.conf'));
    }
  });

  test("network container:C joins C's net, ipc and uts by its pid and start time, shares its /etc files, sets no hostname", () => {
    const plan = planStart(
      config({ network: { mode: 'container', container: PEER } }),
      context({ peer: { pid: 4242, startTime: '98765', etcFiles: ['hosts', 'hostname'] } }),
    );
    assert.deepEqual(plan.namespaces, {
      create: ['pid', 'mnt', 'cgroup'],
      join: { pid: 4242, startTime: '98765', types: ['net', 'ipc', 'uts'] },
    });
    assert.equal(plan.hostname, undefined);
    assert.equal(plan.loopbackUp, false);
    assert.deepEqual(plan.files, [], 'nothing is generated: the files are the peer’s');
    assert.deepEqual(plan.mounts.volumes, [
      { source: `/run/skiff/containers/${PEER}/hosts`, target: '/etc/hosts', readonly: false },
      { source: `/run/skiff/containers/${PEER}/hostname`, target: '/etc/hostname', readonly: false },
    ]);
  });

  test('network container:C without the peer’s process is a caller bug, named', () => {
    assert.throws(
      () => planStart(config({ network: { mode: 'container', container: PEER } }), context()),
      (err: unknown) => err instanceof InternalError && /joins container b{64}/.test(err.message),
    );
  });
});

describe('start plan: mounts and files', () => {
  test('the generated /etc files come before the user’s volumes, so a volume at /etc/hosts wins', () => {
    const plan = planStart(
      config({ volumes: [{ source: '/data/hosts', target: '/etc/hosts', readonly: true }] }),
      context(),
    );
    assert.deepEqual(
      plan.mounts.volumes.map((v) => `${v.source}>${v.target}`),
      [
        `/run/skiff/containers/${ID}/hosts>/etc/hosts`,
        `/run/skiff/containers/${ID}/hostname>/etc/hostname`,
        '/data/hosts>/etc/hosts',
      ],
    );
    assert.deepEqual(plan.files, [
      {
        path: `/run/skiff/containers/${ID}/hosts`,
        text: '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tweb-1\n',
      },
      { path: `/run/skiff/containers/${ID}/hostname`, text: 'web-1\n' },
    ]);
  });

  test('/etc/hosts names the hostname at each of its addresses once it has some, at 127.0.1.1 before', () => {
    const local = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n';
    assert.equal(hostsFileText('web-1'), `${local}127.0.1.1\tweb-1\n`);
    assert.equal(hostsFileText('web-1', ['10.244.3.2']), `${local}10.244.3.2\tweb-1\n`);
    assert.equal(
      hostsFileText('web-1', ['10.244.3.2', 'fd00::2']),
      `${local}10.244.3.2\tweb-1\nfd00::2\tweb-1\n`,
    );
  });

  test("the root mount is the record's, attached in its directory; masked and read-only paths are docker's", () => {
    const plan = planStart(config({ readOnly: true }), context());
    assert.deepEqual(plan.mounts.rootfs, { type: 'bind', source: '/images/web', options: ['rbind', 'rw'] });
    assert.equal(plan.mounts.rootfsPath, `/run/skiff/containers/${ID}/rootfs`);
    assert.equal(plan.mounts.readonlyRoot, true);
    assert.deepEqual(plan.mounts.maskedPaths, MASKED_PATHS);
    assert.deepEqual(plan.mounts.readonlyPaths, READONLY_PATHS);
    assert.deepEqual(plan.log, {
      path: `/run/skiff/containers/${ID}/container.log`,
      maxBytes: 1000,
      maxFiles: 2,
    });
    assert.equal(plan.exitPath, `/run/skiff/containers/${ID}/exit.json`);
  });
});

describe('start plan: cgroups', () => {
  test('v1: limits go to their controllers (cpus as a quota of the 100 ms period), devices restricted', () => {
    const plan = planStart(config({ memoryBytes: 64 << 20, cpus: 0.5, pidsLimit: 20 }), context());
    const writes = plan.cgroups.writes.map((w) => `${w.path.replace(`/skiff/${ID}`, '/C')}=${w.value}`);
    assert.deepEqual(writes.slice(0, 6), [
      `/sys/fs/cgroup/memory/C/memory.limit_in_bytes=${64 << 20}`,
      `/sys/fs/cgroup/memory/C/memory.memsw.limit_in_bytes=${64 << 20}`,
      '/sys/fs/cgroup/cpu/C/cpu.cfs_period_us=100000',
      '/sys/fs/cgroup/cpu/C/cpu.cfs_quota_us=50000',
      '/sys/fs/cgroup/pids/C/pids.max=20',
      '/sys/fs/cgroup/devices/C/devices.deny=a',
    ]);
    assert.deepEqual(plan.cgroups.join, [
      `/sys/fs/cgroup/memory/skiff/${ID}`,
      `/sys/fs/cgroup/cpu/skiff/${ID}`,
      `/sys/fs/cgroup/pids/skiff/${ID}`,
      `/sys/fs/cgroup/devices/skiff/${ID}`,
    ]);
    assert.deepEqual(plan.cgroups.deviceFilterDirs, [], 'v1 restricts devices with its controller');
  });

  test('no limits asked: no limit files but the device rules', () => {
    const plan = planStart(config(), context());
    assert.ok(
      plan.cgroups.writes.every((w) => w.path.endsWith('/devices.deny') || w.path.endsWith('/devices.allow')),
    );
  });

  test('v2: one directory, limits in its files, devices filtered by a program attached there', () => {
    const plan = planStart(
      config({ memoryBytes: 64 << 20, cpus: 1.5 }),
      context({ cgroups: new Cgroups(V2) }),
    );
    assert.deepEqual(plan.cgroups.join, [`/sys/fs/cgroup/skiff/${ID}`]);
    assert.deepEqual(
      plan.cgroups.writes.map((w) => `${w.path.split('/').pop()}=${w.value}`),
      [`memory.max=${64 << 20}`, 'memory.swap.max=0', 'cpu.max=150000 100000'],
    );
    assert.deepEqual(plan.cgroups.deviceFilterDirs, [`/sys/fs/cgroup/skiff/${ID}`]);
  });
});

describe('start plan: process and seccomp', () => {
  test("the process is the record's, with docker's capabilities and no_new_privs; HOME from passwd when unset", () => {
    const plan = planStart(config({ user: 'nobody:nogroup', groupAdd: ['audio'] }), context());
    assert.deepEqual(plan.process, {
      argv: ['/bin/server', '--port', '80'],
      env: ['PATH=/bin', 'HOSTNAME=web-1'],
      cwd: '/srv',
      user: 'nobody:nogroup',
      groupAdd: ['audio'],
      homeFromPasswd: true,
      capabilities: DEFAULT_CAPABILITIES,
      noNewPrivs: true,
      rlimits: [],
    });
    assert.equal(planStart(config({ env: ['HOME=/srv'] }), context()).process.homeFromPasswd, false);
  });

  test("seccomp: docker's filter by default, none when unconfined or where there is no profile", () => {
    assert.deepEqual(planStart(config(), context()).seccomp, { mode: 'default', filter: FILTER });
    assert.deepEqual(planStart(config({ seccomp: 'unconfined' }), context()).seccomp, { mode: 'unconfined' });
    assert.deepEqual(
      planStart(config(), context({ seccompFilter: (caps) => defaultSeccompFilter('arm64', caps) })).seccomp,
      { mode: 'default' },
    );
  });
});

describe('start plan: capabilities, no_new_privs, privileged', () => {
  test("the record's capabilities and no_new_privs reach the process, and the filter is resolved for them", () => {
    const asked: (readonly number[])[] = [];
    const plan = planStart(
      config({ capabilities: [10, 12], noNewPrivileges: false }),
      context({
        seccompFilter: (caps) => {
          asked.push(caps);
          return FILTER;
        },
      }),
    );
    assert.deepEqual(plan.process.capabilities, [10, 12]);
    assert.equal(plan.process.noNewPrivs, false);
    assert.deepEqual(asked, [[10, 12]]);
    assert.equal(plan.mounts.sysWritable, false);
    assert.deepEqual(plan.mounts.maskedPaths, MASKED_PATHS);
  });

  test('a record from before the fields: the default set with no_new_privs', () => {
    const plan = planStart(config(), context());
    assert.deepEqual(plan.process.capabilities, DEFAULT_CAPABILITIES);
    assert.equal(plan.process.noNewPrivs, true);
  });

  test('privileged: nothing masked or read-only, /sys writable, no device rules or device filter', () => {
    const v1 = planStart(config({ privileged: true }), context());
    assert.deepEqual(v1.mounts.maskedPaths, []);
    assert.deepEqual(v1.mounts.readonlyPaths, []);
    assert.equal(v1.mounts.sysWritable, true);
    assert.ok(!v1.cgroups.writes.some((w) => w.path.includes('/devices.')));
    const v2 = planStart(config({ privileged: true }), context({ cgroups: new Cgroups(V2) }));
    assert.deepEqual(v2.cgroups.deviceFilterDirs, []);
    const fields = encodeContainerSpec(helperSpecOf(v1)).toString('utf8').split('\0');
    assert.equal(fields[fields.indexOf('sys_rw') + 1], '1');
  });
});

test('the plan as the helper reads it: every section reaches the spec', () => {
  const plan = planStart(
    config({ network: { mode: 'container', container: PEER }, memoryBytes: 64 << 20, readOnly: true }),
    context({ peer: { pid: 4242, startTime: '98765', etcFiles: ['hosts'] } }),
  );
  const spec = helperSpecOf(plan);
  assert.equal(spec.seccompFilter, FILTER);
  assert.deepEqual(spec.newNamespaces, plan.namespaces.create);
  assert.deepEqual(spec.joinNamespaces, plan.namespaces.join);
  assert.deepEqual(spec.cgroupLimits, plan.cgroups.writes);
  assert.deepEqual(spec.volumes, plan.mounts.volumes);
  const fields = encodeContainerSpec(spec).toString('utf8').split('\0');
  const values = (key: string) => fields.flatMap((f, i) => (f === key ? [fields[i + 1]] : []));
  assert.deepEqual(values('ns.new'), ['pid', 'mnt', 'cgroup']);
  assert.deepEqual(values('ns.join'), ['net', 'ipc', 'uts']);
  assert.deepEqual(values('ns.owner'), ['4242']);
  assert.deepEqual(values('readonly_root'), ['1']);
  assert.deepEqual(values('seccomp'), [FILTER.toString('hex')]);
  assert.deepEqual(values('hostname'), [], 'a joined UTS namespace keeps its hostname');
  assert.deepEqual(values('arg'), ['/bin/server', '--port', '80']);
});
