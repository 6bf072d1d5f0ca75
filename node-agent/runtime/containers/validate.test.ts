import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../../proto/errors.js';
import {
  parseBytes,
  parseNetwork,
  parseUser,
  parseVolume,
  validateEnv,
  validateHostname,
  validateLimits,
  validateNetwork,
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
  assert.deepEqual(parseUser('1000:1001'), { uid: 1000, gid: 1001 });
  assert.deepEqual(parseUser('0'), { uid: 0, gid: undefined });
  assert.equal(
    field(() => parseUser('root')),
    'user',
  );
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
  assert.equal(
    field(() => validateLimits({ pidsLimit: 0 }, 2)),
    'pids-limit',
  );
  assert.equal(
    field(() => validateNetwork({ mode: 'container', container: 'x' }, 'h')),
    'hostname',
  );
});

test('volume targets under /proc, /sys or /dev (or the root) are refused: they would undo masking', () => {
  for (const target of [
    '/proc',
    '/proc/kcore',
    '/sys/firmware',
    '/dev/',
    '/dev/shm',
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
  for (const target of ['/procfs', '/devices', '/data/proc', '/system'])
    validateVolumes([{ source: '/x', target, readonly: true }]);
});
