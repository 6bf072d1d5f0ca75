import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../../proto/errors.js';
import {
  CAPABILITY_NAMES,
  allCapabilities,
  capabilityName,
  capabilityNumber,
  resolveCapabilities,
} from './capabilities.js';
import { DEFAULT_CAPABILITIES } from './defaults.js';

const ALL = allCapabilities(40);
const names = (caps: number[]) => caps.map(capabilityName);

test('names with or without CAP_, in any case; the kernel numbers', () => {
  assert.equal(capabilityNumber('NET_ADMIN'), 12);
  assert.equal(capabilityNumber('cap_net_admin'), 12);
  assert.equal(capabilityNumber('CAP_CHECKPOINT_RESTORE'), 40);
  assert.equal(capabilityNumber('SYS_ADMIN'), 21);
  assert.equal(capabilityNumber('NET_WIZARD'), undefined);
  assert.equal(CAPABILITY_NAMES.length, 41);
  assert.deepEqual(
    names(DEFAULT_CAPABILITIES),
    'CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP'.split(
      ' ',
    ),
  );
});

test("add and drop in containerd's order: add ALL, drop ALL, then the names added, then the names dropped", () => {
  const resolve = (add: string[], drop: string[]) => names(resolveCapabilities({ add, drop }, { held: ALL }));
  assert.deepEqual(resolve([], []), names(DEFAULT_CAPABILITIES));
  assert.deepEqual(
    resolve(['NET_ADMIN'], ['NET_RAW']),
    names([...DEFAULT_CAPABILITIES.filter((c) => c !== 13), 12].sort((a, b) => a - b)),
  );
  assert.deepEqual(resolve(['NET_BIND_SERVICE'], ['ALL']), ['NET_BIND_SERVICE']);
  assert.deepEqual(resolve(['ALL'], ['NET_RAW']), names(ALL.filter((c) => c !== 13)));
  assert.deepEqual(resolve(['ALL'], ['ALL']), []);
  assert.deepEqual(
    resolve(['SYS_TIME'], ['sys_time']),
    names(DEFAULT_CAPABILITIES),
    'a name added and dropped is dropped',
  );
  assert.deepEqual(resolve(['all'], []), names(ALL));
});

test('ALL is what the runtime holds; an unknown name, or one the runtime lacks, is refused naming the field', () => {
  const held = ALL.filter((c) => c !== 16); // a runtime without SYS_MODULE
  assert.ok(!resolveCapabilities({ add: ['ALL'] }, { held }).includes(16));
  assert.throws(
    () => resolveCapabilities({ add: ['NET_ADMIN', 'NET_WIZARD'] }, { held, field: 'sc.capabilities' }),
    (e: unknown) => e instanceof InvalidArgumentError && e.field === 'sc.capabilities.add[1]',
  );
  assert.throws(
    () => resolveCapabilities({ add: ['SYS_MODULE'] }, { held }),
    (e: unknown) =>
      e instanceof InvalidArgumentError &&
      e.field === 'capabilities.add[0]' &&
      /SYS_MODULE cannot be given: this runtime does not hold it/.test(e.message),
  );
  // dropping what it lacks anyway is fine
  assert.deepEqual(resolveCapabilities({ drop: ['SYS_MODULE'] }, { held }), [...DEFAULT_CAPABILITIES]);
});
