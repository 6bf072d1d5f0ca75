import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../proto/errors.js';
import { parseUpstreams, upstreamsOf } from './upstreams.js';

test('--dns-upstream: addresses with optional ports, IPv6 bracketed or bare', () => {
  assert.deepEqual(parseUpstreams('192.0.2.53, 192.0.2.54:5353,[2001:db8::53]:54,2001:db8::1'), [
    { address: '192.0.2.53', port: 53 },
    { address: '192.0.2.54', port: 5353 },
    { address: '2001:db8::53', port: 54 },
    { address: '2001:db8::1', port: 53 },
  ]);
  for (const bad of ['dns.example', '192.0.2.1:0', '192.0.2.1:70000', '[::1'])
    assert.throws(
      () => parseUpstreams(bad),
      (err: unknown) => err instanceof InvalidArgumentError && /--dns-upstream: ".*"/.test(err.message),
      bad,
    );
});

test("the node's resolv.conf nameservers, never the server's own address", () => {
  assert.deepEqual(
    upstreamsOf({ nameservers: ['10.244.0.1', '192.0.2.53'], searches: [], options: [] }, '10.244.0.1'),
    [{ address: '192.0.2.53', port: 53 }],
  );
});
