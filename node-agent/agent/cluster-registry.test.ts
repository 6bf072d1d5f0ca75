import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterRegistryAddress } from './cluster-registry.js';

test('the advertised HTTP URL; a wildcard bind is the API server host', () => {
  assert.equal(clusterRegistryAddress('', '10.0.0.5:7440', true), undefined);
  assert.deepEqual(clusterRegistryAddress('http://10.0.0.5:7441', '10.0.0.5:7440', true), {
    url: 'http://10.0.0.5:7441',
    allowPlainHttp: true,
  });
  assert.deepEqual(clusterRegistryAddress('http://0.0.0.0:7441', 'cp.example:7440', true), {
    url: 'http://cp.example:7441',
    allowPlainHttp: true,
  });
  assert.deepEqual(clusterRegistryAddress('http://[::]:7441', '[fd00::5]:7440', true), {
    url: 'http://[fd00::5]:7441',
    allowPlainHttp: true,
  });
});

test('plain HTTP is allowed only for a URL learned over verified TLS, on the API server host', () => {
  const allowed = (httpUrl: string, server: string, verified: boolean) =>
    clusterRegistryAddress(httpUrl, server, verified)!.allowPlainHttp;
  assert.equal(allowed('http://10.0.0.5:7441', '10.0.0.5:7440', false), false, 'Version over plaintext');
  assert.equal(allowed('http://10.0.0.9:7441', '10.0.0.5:7440', true), false, 'another host');
  assert.equal(
    allowed('http://CP.example:7441', 'cp.example:7440', true),
    true,
    'names compare without case',
  );
  assert.equal(allowed('https://10.0.0.5:7441', '10.0.0.5:7440', true), false, 'https needs no leave');
});
