import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from './errors.js';
import {
  cidrContains,
  cidrWithin,
  cidrsOverlap,
  formatIPv4,
  ipv4Number,
  parseCidr,
  parseIPv4,
  subnet,
  subnetCount,
} from './cidr.js';

test('addresses round-trip as numbers; anything but a dotted quad is not one', () => {
  for (const ip of ['0.0.0.0', '10.244.3.2', '255.255.255.255', '192.168.0.1'])
    assert.equal(formatIPv4(parseIPv4(ip)), ip);
  assert.equal(ipv4Number('10.244.3.2'), 0x0af40302);
  for (const bad of ['10.244.3', '10.244.3.256', '010.1.1.1', ' 10.0.0.1', '10.0.0.1/24', '::1', ''])
    assert.equal(ipv4Number(bad), undefined, bad);
  assert.throws(
    () => parseIPv4('10.0.0.256', 'nodeIP'),
    (err: unknown) =>
      err instanceof InvalidArgumentError &&
      err.field === 'nodeIP' &&
      /nodeIP: "10.0.0.256" is not an IPv4 address/.test(err.message),
  );
});

test('a block is parsed with its size; host bits or a bad prefix are refused, naming the field', () => {
  assert.deepEqual(parseCidr('10.244.3.0/24', 'podCIDR'), {
    text: '10.244.3.0/24',
    base: 0x0af40300,
    prefix: 24,
    size: 256,
  });
  assert.equal(parseCidr('0.0.0.0/0', 'x').size, 2 ** 32);
  assert.throws(
    () => parseCidr('10.244.3.1/24', 'podCIDR'),
    (err: unknown) =>
      err instanceof InvalidArgumentError &&
      err.field === 'podCIDR' &&
      /podCIDR: "10.244.3.1\/24" has host bits set; the block is 10\.244\.3\.0\/24/.test(err.message),
  );
  for (const bad of ['10.244.3.0', '10.244.3.0/33', '10.244.3.0/', '10.244.3.0/2a', 'x/8'])
    assert.throws(
      () => parseCidr(bad, '--cluster-cidr'),
      /--cluster-cidr: .* is not an IPv4 CIDR block/,
      bad,
    );
});

test('containment and overlap', () => {
  const cluster = parseCidr('10.244.0.0/16', 'c');
  const node = parseCidr('10.244.3.0/24', 'n');
  const services = parseCidr('10.96.0.0/12', 's');
  assert.ok(cidrWithin(node, cluster));
  assert.ok(!cidrWithin(cluster, node));
  assert.ok(cidrContains(node, parseIPv4('10.244.3.255')));
  assert.ok(!cidrContains(node, parseIPv4('10.244.4.0')));
  assert.ok(cidrsOverlap(cluster, node) && cidrsOverlap(node, cluster));
  assert.ok(!cidrsOverlap(cluster, services));
});

test('subnets of a block: count, n-th, membership', () => {
  const block = parseCidr('10.244.0.0/16');
  assert.equal(subnetCount(block, 24), 256);
  assert.equal(subnetCount(block, 8), 0);
  assert.equal(subnet(block, 24, 0).text, '10.244.0.0/24');
  assert.deepEqual(subnet(block, 24, 255), parseCidr('10.244.255.0/24'));
  assert.ok(cidrContains(block, parseIPv4('10.244.255.255')));
  assert.ok(!cidrContains(block, parseIPv4('10.245.0.0')));
});
