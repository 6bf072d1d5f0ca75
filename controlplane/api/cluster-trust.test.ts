import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../proto/errors.js';
import { apiCertificateHosts } from './cluster-trust.js';

const hosts = (apiHost: string, sans: string[] = []) =>
  apiCertificateHosts(
    apiHost,
    sans,
    () => ['10.1.2.3', 'fe80::1', '::1'],
    () => 'Node-A',
  );

test('the API certificate names loopback, localhost, the host name and the listen host', () => {
  assert.deepEqual(hosts('192.0.2.7'), {
    dnsNames: ['localhost', 'node-a'],
    ipAddresses: ['127.0.0.1', '::1', '192.0.2.7'],
  });
  assert.deepEqual(hosts('api.example')?.dnsNames, ['localhost', 'node-a', 'api.example']);
});

test('listening on every address names every interface address but link-local ones', () => {
  assert.deepEqual(hosts('0.0.0.0').ipAddresses, ['127.0.0.1', '::1', '10.1.2.3']);
  assert.deepEqual(hosts('::').ipAddresses, ['127.0.0.1', '::1', '10.1.2.3']);
});

test('--tls-san adds names and addresses; anything else is refused naming it', () => {
  const withSans = hosts('127.0.0.1', ['cp.example', '[2001:db8::1]', '*.nodes.example']);
  assert.deepEqual(withSans.dnsNames, ['localhost', 'node-a', 'cp.example', '*.nodes.example']);
  assert.ok(withSans.ipAddresses.includes('2001:db8::1'));
  assert.throws(
    () => hosts('127.0.0.1', ['bad name']),
    (err) => err instanceof InvalidArgumentError && /--tls-san "bad name"/.test(err.message),
  );
});
