import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from './errors.js';
import { cidrContains, formatCidr, formatIPv4, parseCidr, parseIPv4, subnet, subnetCount } from './cidr.js';

test('addresses and CIDRs parse and print back', () => {
  assert.equal(formatIPv4(parseIPv4('10.244.3.1')), '10.244.3.1');
  assert.equal(formatIPv4(parseIPv4('255.255.255.255')), '255.255.255.255');
  assert.equal(formatCidr(parseCidr('10.244.0.0/16')), '10.244.0.0/16');
});

test('bad input names the field and what is wrong', () => {
  assert.throws(
    () => parseIPv4('10.0.0.256', 'nodeIP'),
    (err: unknown) =>
      err instanceof InvalidArgumentError && /nodeIP: "10.0.0.256" is not an IPv4 address/.test(err.message),
  );
  assert.throws(
    () => parseCidr('10.244.0.0/33', '--cluster-cidr'),
    /--cluster-cidr: "10.244.0.0\/33" is not an IPv4 CIDR/,
  );
  assert.throws(() => parseCidr('10.244.1.0/16'), /has host bits set \(the network is 10.244.0.0\/16\)/);
});

test('subnets of a block: count, n-th, membership', () => {
  const block = parseCidr('10.244.0.0/16');
  assert.equal(subnetCount(block, 24), 256);
  assert.equal(subnetCount(block, 8), 0);
  assert.equal(formatCidr(subnet(block, 24, 0)), '10.244.0.0/24');
  assert.equal(formatCidr(subnet(block, 24, 255)), '10.244.255.0/24');
  assert.ok(cidrContains(block, parseIPv4('10.244.255.255')));
  assert.ok(!cidrContains(block, parseIPv4('10.245.0.0')));
});
