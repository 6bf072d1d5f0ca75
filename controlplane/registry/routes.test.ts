import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RegistryError, type RegistryErrorCode } from './errors.js';
import { checkDigest, checkName, checkTag, parseManifestReference } from './names.js';
import { parseTarget } from './routes.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';

function refused(fn: () => unknown, code: RegistryErrorCode, status?: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RegistryError, String(err));
    assert.equal(err.code, code, err.message);
    if (status !== undefined) assert.equal(err.status, status);
    return true;
  });
}

describe('parseTarget', () => {
  test('every endpoint, with names that hold slashes and endpoint words', () => {
    assert.deepEqual(parseTarget('/v2/').route, { kind: 'base' });
    assert.deepEqual(parseTarget('/v2').route, { kind: 'base' });
    assert.deepEqual(parseTarget('/v2/_catalog?n=2').route, { kind: 'catalog' });
    assert.deepEqual(parseTarget('/v2/library/busybox/manifests/latest').route, {
      kind: 'manifest',
      name: 'library/busybox',
      reference: 'latest',
    });
    assert.deepEqual(parseTarget(`/v2/a/manifests/${DIGEST}`).route, {
      kind: 'manifest',
      name: 'a',
      reference: DIGEST,
    });
    assert.deepEqual(parseTarget(`/v2/a/blobs/${DIGEST}`).route, { kind: 'blob', name: 'a', digest: DIGEST });
    assert.deepEqual(parseTarget('/v2/a/b/blobs/uploads/').route, { kind: 'uploads', name: 'a/b' });
    assert.deepEqual(parseTarget('/v2/a/blobs/uploads').route, { kind: 'uploads', name: 'a' });
    assert.deepEqual(parseTarget(`/v2/a/blobs/uploads/${UUID}?digest=x`).route, {
      kind: 'upload',
      name: 'a',
      id: UUID,
    });
    assert.deepEqual(parseTarget('/v2/foo/blobs/blobs/uploads/').route, {
      kind: 'uploads',
      name: 'foo/blobs',
    });
    assert.deepEqual(parseTarget('/v2/x/manifests/y/manifests/z').route, {
      kind: 'manifest',
      name: 'x/manifests/y',
      reference: 'z',
    });
    assert.deepEqual(parseTarget('/v2/a/tags/list').route, { kind: 'tags', name: 'a' });
    assert.deepEqual(parseTarget(`/v2/a/referrers/${DIGEST}`).route, {
      kind: 'referrers',
      name: 'a',
      digest: DIGEST,
    });
    // a digest's ':' may come percent-encoded
    assert.deepEqual(parseTarget(`/v2/a/blobs/sha256%3A${'a'.repeat(64)}`).route, {
      kind: 'blob',
      name: 'a',
      digest: DIGEST,
    });
    const { query } = parseTarget('/v2/a/tags/list?n=10&last=v1');
    assert.equal(query.get('n'), '10');
    assert.equal(query.get('last'), 'v1');
  });

  test('. and .. segments are refused however they are spelled, before any routing', () => {
    for (const path of [
      '/v2/a/../b/manifests/x',
      '/v2/a/%2e%2e/manifests/x',
      '/v2/a/%2E%2e/manifests/x',
      '/v2/a/.%2e/manifests/x',
      '/v2/a/manifests/..',
      '/v2/a/manifests/%2e%2e',
      '/v2/a/blobs/.',
      '/v2/../../etc/passwd',
      '/v2/a/blobs/uploads/..',
      '/v2/%2e%2e/%2e%2e/etc/manifests/x',
    ]) {
      refused(() => parseTarget(path), 'NAME_INVALID', 400);
    }
  });

  test('encoded slashes, bad escapes, empty components and long names are NAME_INVALID', () => {
    refused(() => parseTarget('/v2/..%2f..%2fetc/manifests/x'), 'NAME_INVALID');
    refused(() => parseTarget('/v2/a%2fb/manifests/x'), 'NAME_INVALID');
    refused(() => parseTarget('/v2/a/%zz/manifests/x'), 'NAME_INVALID');
    refused(() => parseTarget('/v2/a//b/manifests/x'), 'NAME_INVALID');
    refused(() => parseTarget('/v2/UPPER/manifests/x'), 'NAME_INVALID');
    refused(() => parseTarget('/v2/-a/manifests/x'), 'NAME_INVALID');
    refused(() => parseTarget('/v2/a_/manifests/x'), 'NAME_INVALID');
    refused(() => parseTarget(`/v2/${'a'.repeat(256)}/manifests/x`), 'NAME_INVALID');
    refused(() => parseTarget(`/v2/${'a/'.repeat(5000)}manifests/x`), 'NAME_INVALID', 414);
  });

  test('what is not an endpoint is 404', () => {
    for (const path of [
      '/v1/',
      '/v2/a',
      '/v2/a/b',
      '/v2/manifests/x',
      'http://evil/v2/',
      '/v2/a/blobs/',
      '/v2/a/tags/lst',
    ]) {
      refused(() => parseTarget(path), 'UNSUPPORTED', 404);
    }
  });
});

describe('names', () => {
  test('repository names follow the spec grammar', () => {
    for (const ok of ['a', 'library/busybox', 'a.b_c__d---e/f', 'x0/1/2']) assert.equal(checkName(ok), ok);
    for (const bad of ['', 'A', 'a/', '/a', 'a..b', 'a._b', '_a', 'a/_layers', 'a b', 'a\u0000b']) {
      refused(() => checkName(bad), 'NAME_INVALID');
    }
  });

  test('tags and digests', () => {
    assert.equal(checkTag('v1.2_3-x'), 'v1.2_3-x');
    assert.equal(checkTag('a'.repeat(128)), 'a'.repeat(128));
    for (const bad of ['', '.hidden', '-x', 'a'.repeat(129), 'a/b', '..', 'tag:x'])
      refused(() => checkTag(bad), 'TAG_INVALID');
    assert.equal(checkDigest(DIGEST), DIGEST);
    refused(() => checkDigest('sha256:baddigeststring'), 'DIGEST_INVALID');
    refused(() => checkDigest(`sha256:${'A'.repeat(64)}`), 'DIGEST_INVALID');
    assert.throws(() => checkDigest(`sha512:${'a'.repeat(128)}`), /algorithm not supported/);
  });

  test('a reference with a colon is a digest, otherwise a tag', () => {
    assert.deepEqual(parseManifestReference('latest'), { tag: 'latest' });
    assert.deepEqual(parseManifestReference(DIGEST), { digest: DIGEST });
    refused(() => parseManifestReference('sha256:baddigeststring'), 'DIGEST_INVALID');
    refused(() => parseManifestReference('../../etc'), 'TAG_INVALID');
  });
});
