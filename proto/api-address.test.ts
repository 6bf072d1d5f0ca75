import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from './errors.js';
import { apiAddressProblem, isUnixAddress, parseApiAddress, unixAddress } from './api-address.js';

test('host:port and unix:///path parse; gRPC’s unix:/path reads the same', () => {
  assert.deepEqual(parseApiAddress('127.0.0.1:7440'), { transport: 'tcp', host: '127.0.0.1', port: 7440 });
  assert.deepEqual(parseApiAddress('[::1]:7440'), { transport: 'tcp', host: '::1', port: 7440 });
  assert.deepEqual(parseApiAddress('api.example:443'), { transport: 'tcp', host: 'api.example', port: 443 });
  assert.deepEqual(parseApiAddress('unix:///var/lib/skiff/api.sock'), {
    transport: 'unix',
    path: '/var/lib/skiff/api.sock',
  });
  assert.deepEqual(parseApiAddress('unix:/run/skiff.sock'), { transport: 'unix', path: '/run/skiff.sock' });
  assert.equal(unixAddress('/var/lib/skiff/api.sock'), 'unix:///var/lib/skiff/api.sock');
  assert.ok(isUnixAddress('unix:///x') && !isUnixAddress('127.0.0.1:1'));
});

test('what is neither is refused saying what is taken', () => {
  const refused: [string, RegExp][] = [
    ['http://h:1', /is not host:port \(e\.g\. 127\.0\.0\.1:7440\) or unix:\/\/\/path\/to\/socket/],
    ['h', /is not host:port/],
    ['h:99999', /is not host:port/],
    ['unix://relative/api.sock', /not a Unix socket address: want unix:\/\/\/absolute\/path/],
    ['unix:relative.sock', /not a Unix socket address/],
    ['unix:////double', /not a Unix socket address/],
    [`unix:///${'d/'.repeat(60)}api.sock`, /is 129 bytes, longer than a Unix socket's 107/],
  ];
  for (const [address, reason] of refused) {
    assert.match(apiAddressProblem(address) ?? '', reason, address);
    assert.throws(
      () => parseApiAddress(address, '--server'),
      (e: unknown) =>
        e instanceof InvalidArgumentError && e.message.startsWith('--server: ') && reason.test(e.message),
      address,
    );
  }
  assert.equal(apiAddressProblem('unix:///var/lib/skiff/api.sock'), undefined);
});
