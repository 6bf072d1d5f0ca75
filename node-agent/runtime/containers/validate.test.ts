import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../../proto/errors.js';
import {
  parseBytes,
  parseLabels,
  parseNetwork,
  parseSecurityOpts,
  parseUser,
  parseVolume,
  validateGroupAdd,
  validateEnv,
  validateHostIps,
  validatePortMappings,
  validateHostname,
  validateLabels,
  validateLimits,
  validateNetwork,
  validateSeccompMode,
  validateVolumes,
} from './validate.js';

function field(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError);
    return err.field;
  }
  assert.fail('expected an InvalidArgumentError');
}

test('sizes', () => {
  assert.equal(parseBytes('64Mi', 'memory'), 64 * 1024 * 1024);
  assert.equal(parseBytes('512m', 'memory'), 512 * 1024 * 1024);
  assert.equal(parseBytes('1G', 'memory'), 1e9);
  assert.equal(parseBytes('4096', 'memory'), 4096);
  assert.equal(
    field(() => parseBytes('lots', 'memory')),
    'memory',
  );
});

test('users, volumes, networks', () => {
  assert.deepEqual(parseVolume('/a:/b:ro', 0), { source: '/a', target: '/b', readonly: true });
  assert.equal(
    field(() => parseVolume('/a:/b:rx', 2)),
    'volume[2]',
  );
  assert.deepEqual(parseNetwork('container:web'), { mode: 'container', container: 'web' });
  assert.equal(
    field(() => parseNetwork('bridge')),
    'network',
  );
});

test('fields at fault are named', () => {
  assert.equal(
    field(() => validateEnv(['A=1', 'novalue'])),
    'env[1]',
  );
  assert.equal(
    field(() => validateHostname('bad_host!')),
    'hostname',
  );
  assert.equal(
    field(() => validateVolumes([{ source: 'rel', target: '/x', readonly: false }])),
    'volumes[0].source',
  );
  assert.equal(
    field(() => validateVolumes([{ source: '/x', target: '/', readonly: false }])),
    'volumes[0].target',
  );
  assert.equal(
    field(() => validateLimits({ memoryBytes: 1024 }, 2)),
    'memory',
  );
  assert.equal(
    field(() => validateLimits({ cpus: 3 }, 2)),
    'cpus',
  );
  // a quota under the kernel's 1 ms per 100 ms period (0.001: 100 µs, which a start could not
  // write) is refused at validation, naming the field; what rounds to 1 ms passes
  for (const cpus of [0.001, 0.0099, 0.009994]) {
    assert.equal(
      field(() => validateLimits({ cpus }, 2)),
      'cpus',
      String(cpus),
    );
    assert.throws(() => validateLimits({ cpus }, 2), /cpus: .* is below the minimum of 0\.01/);
  }
  for (const cpus of [0.01, 0.009995, 0.5]) validateLimits({ cpus }, 2);
  assert.equal(
    field(() => validateLimits({ pidsLimit: 0 }, 2)),
    'pids-limit',
  );
  assert.equal(
    field(() => validateNetwork({ mode: 'container', container: 'x' }, 'h')),
    'hostname',
  );
});

test('volume targets under /proc or /sys, /dev itself, /dev/null (or the root) are refused: they would undo masking', () => {
  for (const target of [
    '/proc',
    '/proc/kcore',
    '/sys/firmware',
    '/dev/',
    '/dev',
    '/dev/null',
    '//dev/./null',
    '//proc/../proc/acpi',
    '/',
  ]) {
    assert.throws(
      () => validateVolumes([{ source: '/x', target, readonly: true }]),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        e.field === 'volumes[0].target' &&
        e.message.includes('volumes[0]'),
      target,
    );
  }
  // a file or directory in the container's own /dev: Kubernetes' termination log, shared memory
  for (const target of ['/procfs', '/devices', '/data/proc', '/system', '/dev/termination-log', '/dev/shm'])
    validateVolumes([{ source: '/x', target, readonly: true }]);
});

test('users: names or numbers, each side; syntax only', () => {
  assert.deepEqual(parseUser('1000:1001'), { uid: 1000, gid: 1001 });
  assert.deepEqual(parseUser('0'), { uid: 0 });
  assert.deepEqual(parseUser(''), { uid: 0 }, 'the default user');
  assert.deepEqual(parseUser('nginx'), { userName: 'nginx' });
  assert.deepEqual(parseUser('nobody:nogroup'), { userName: 'nobody', groupName: 'nogroup' });
  assert.deepEqual(parseUser('1000:staff'), { uid: 1000, groupName: 'staff' });
  assert.deepEqual(parseUser('www-data:1'), { userName: 'www-data', gid: 1 });
  assert.deepEqual(parseUser('_apt.x-1'), { userName: '_apt.x-1' });
  assert.deepEqual(parseUser('4294967294'), { uid: 4294967294 });
  assert.deepEqual(parseUser('a'.repeat(32)), { userName: 'a'.repeat(32) });
});

test('bad users are refused with the field named and the part at fault said', () => {
  for (const bad of [':0', '0:', 'a:b:c', 'a b', 'root$', 'ü', '-1', 'a'.repeat(33), 'x\ny', '../etc']) {
    assert.equal(
      field(() => parseUser(bad)),
      'user',
      bad,
    );
  }
  assert.throws(() => parseUser('4294967295'), /user id 4294967295 .* out of range/);
  assert.throws(() => parseUser('0:4294967295'), /group id 4294967295 .* out of range/);
  assert.throws(() => parseUser('nginx:st aff'), /the group "st aff" is not a number or a name/);
  assert.equal(
    field(() => parseUser('bad name', 'config.User')),
    'config.User',
  );
  assert.equal(
    field(() => parseUser('a\0b')),
    'user',
  );
});

test('added groups: names or numbers, at most 64', () => {
  validateGroupAdd(['audio', '27', 'video']);
  assert.equal(
    field(() => validateGroupAdd(['audio', 'no way'])),
    'group-add[1]',
  );
  assert.equal(
    field(() => validateGroupAdd(['4294967295'])),
    'group-add[0]',
  );
  assert.equal(
    field(() => validateGroupAdd(Array.from({ length: 65 }, (_, i) => String(i)))),
    'group-add',
  );
});

test('security options: seccomp=unconfined|default, no-new-privileges; anything else names its place', () => {
  assert.deepEqual(parseSecurityOpts([]), { seccomp: 'default' });
  assert.deepEqual(parseSecurityOpts(['seccomp=unconfined']), { seccomp: 'unconfined' });
  assert.deepEqual(parseSecurityOpts(['seccomp=unconfined', 'seccomp=default']), { seccomp: 'default' });
  assert.deepEqual(parseSecurityOpts(['no-new-privileges', 'no-new-privileges=true']), {
    seccomp: 'default',
  });
  assert.equal(
    field(() => parseSecurityOpts(['seccomp=/etc/profile.json'])),
    'security-opt[0]',
  );
  assert.equal(
    field(() => parseSecurityOpts(['seccomp=default', 'apparmor=unconfined'])),
    'security-opt[1]',
  );
  assert.equal(
    field(() => parseSecurityOpts(['no-new-privileges=false'])),
    'security-opt[0]',
  );
  assert.equal(
    field(() => validateSeccompMode('none')),
    'seccomp',
  );
});

test('labels: --label KEY=VALUE (KEY alone is empty), a later key wins; keys are own properties', () => {
  assert.deepEqual(parseLabels(['app=web', 'tier', 'app=api', 'expr=a=b']), {
    app: 'api',
    tier: '',
    expr: 'a=b',
  });
  const odd = parseLabels(['__proto__=x']);
  assert.ok(Object.hasOwn(odd, '__proto__'), 'a label, not the prototype');
  assert.equal(Object.getPrototypeOf(odd), Object.prototype);
  assert.equal(
    field(() => parseLabels(['a=1', '=b'])),
    'label[1]',
  );
  assert.equal(
    field(() => validateLabels({ a: 'x\0y' })),
    'labels["a"]',
  );
  assert.equal(
    field(() => validateLabels({ '': 'x' })),
    'labels',
  );
  assert.equal(
    field(() => validateLabels({ a: 1 as unknown as string })),
    'labels["a"]',
  );
});

test('host ports: ranges, protocol, an IPv4 hostIP, none taken twice; 0.0.0.0 means all addresses', () => {
  assert.deepEqual(
    validatePortMappings([
      { hostPort: 8080, containerPort: 80, protocol: 'TCP', hostIP: '0.0.0.0' },
      { hostPort: 8080, containerPort: 80, protocol: 'UDP', hostIP: '' },
      { hostPort: 9000, containerPort: 9000, protocol: 'TCP', hostIP: '10.0.0.1' },
      { hostPort: 9000, containerPort: 9000, protocol: 'TCP', hostIP: '10.0.0.2' },
    ]),
    [
      { hostPort: 8080, containerPort: 80, protocol: 'TCP' },
      { hostPort: 8080, containerPort: 80, protocol: 'UDP' },
      { hostPort: 9000, containerPort: 9000, protocol: 'TCP', hostIP: '10.0.0.1' },
      { hostPort: 9000, containerPort: 9000, protocol: 'TCP', hostIP: '10.0.0.2' },
    ],
  );
  const fieldOf = (mappings: unknown[], opts = {}) =>
    field(() => validatePortMappings(mappings as Parameters<typeof validatePortMappings>[0], opts));
  assert.equal(fieldOf([{ hostPort: 0, containerPort: 80, protocol: 'TCP' }]), 'portMappings[0].hostPort');
  assert.equal(
    fieldOf([{ hostPort: 80, containerPort: 65536, protocol: 'TCP' }]),
    'portMappings[0].containerPort',
  );
  assert.equal(fieldOf([{ hostPort: 80, containerPort: 80, protocol: 'SCTP' }]), 'portMappings[0].protocol');
  assert.equal(
    fieldOf([{ hostPort: 80, containerPort: 80, protocol: 'TCP', hostIP: '::1' }]),
    'portMappings[0].hostIP',
  );
  assert.equal(
    fieldOf([
      { hostPort: 80, containerPort: 80, protocol: 'TCP', hostIP: '10.0.0.1' },
      { hostPort: 80, containerPort: 81, protocol: 'TCP' },
    ]),
    'portMappings[1]',
  );
  assert.throws(
    () =>
      validatePortMappings([
        { hostPort: 80, containerPort: 80, protocol: 'TCP' },
        { hostPort: 80, containerPort: 81, protocol: 'TCP' },
      ]),
    /portMappings\[1\]: host port 80\/TCP is already taken by portMappings\[0\]/,
  );
  assert.equal(
    fieldOf([{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }], { samePort: true }),
    'portMappings[0].hostPort',
  );
});

test('a host-network sandbox names at least one address of the host', () => {
  validateHostIps(['10.0.0.1', 'fd00::1']);
  assert.equal(
    field(() => validateHostIps([])),
    'hostNetwork.ips',
  );
  assert.equal(
    field(() => validateHostIps(['10.0.0.1', 'node-a'])),
    'hostNetwork.ips[1]',
  );
});
