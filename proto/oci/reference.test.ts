import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { familiarRepository, normalizeReference, parseReference } from './reference.js';

const D = `sha256:${'ab'.repeat(32)}`;

test('normalises references the way docker does', () => {
  assert.equal(normalizeReference('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(normalizeReference('busybox:1'), 'docker.io/library/busybox:1');
  assert.equal(normalizeReference('docker.io/library/busybox:1'), 'docker.io/library/busybox:1');
  assert.equal(normalizeReference('index.docker.io/library/busybox:1'), 'docker.io/library/busybox:1');
  assert.equal(normalizeReference('user/app'), 'docker.io/user/app:latest');
  assert.equal(normalizeReference('localhost:5000/app:1'), 'localhost:5000/app:1');
  assert.equal(normalizeReference('localhost/app'), 'localhost/app:latest');
  assert.equal(normalizeReference('ghcr.io/o/r/x:v1.2'), 'ghcr.io/o/r/x:v1.2');
  assert.equal(normalizeReference(`busybox@${D}`), `docker.io/library/busybox@${D}`);
  assert.equal(normalizeReference(`busybox:1@${D}`), `docker.io/library/busybox:1@${D}`);
  assert.deepEqual(parseReference('busybox:1'), { domain: 'docker.io', path: 'library/busybox', tag: '1' });
});

test('refuses malformed references with the reason', () => {
  for (const [input, why] of [
    ['', /empty/],
    ['Busybox', /must be lowercase/],
    ['busybox:', /tag "" is invalid/],
    ['busybox:-x', /tag "-x" is invalid/],
    ['busybox@sha256:xyz', /digest part/],
    [`busybox@md5:${'a'.repeat(32)}`, /algorithm not supported/],
    ['a//b', /path component "" is invalid/],
    ['a_-b', /path component/],
  ] as const) {
    assert.throws(
      () => parseReference(input),
      (err: unknown) => err instanceof InvalidArgumentError && why.test(err.message),
      input,
    );
  }
});

test('familiar names', () => {
  assert.equal(familiarRepository('docker.io/library/busybox'), 'busybox');
  assert.equal(familiarRepository('docker.io/user/app'), 'user/app');
  assert.equal(familiarRepository('localhost:5000/app'), 'localhost:5000/app');
});
