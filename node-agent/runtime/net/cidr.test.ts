import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../../proto/errors.js';
import { cidrContains, cidrWithin, cidrsOverlap, formatIpv4, parseCidr, parseIpv4 } from './cidr.js';

describe('cidr', () => {
  test('addresses round-trip as numbers; anything but a dotted quad is not one', () => {
    for (const ip of ['0.0.0.0', '10.244.3.2', '255.255.255.255', '192.168.0.1']) {
      assert.equal(formatIpv4(parseIpv4(ip)!), ip);
    }
    assert.equal(parseIpv4('10.244.3.2'), 0x0af40302);
    for (const bad of ['10.244.3', '10.244.3.256', '010.1.1.1', ' 10.0.0.1', '10.0.0.1/24', '::1', ''])
      assert.equal(parseIpv4(bad), undefined, bad);
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
        /host bits set; the block is 10\.244\.3\.0\/24/.test(err.message),
    );
    for (const bad of ['10.244.3.0', '10.244.3.0/33', '10.244.3.0/', '10.244.3.0/2a', 'x/8'])
      assert.throws(() => parseCidr(bad, 'clusterCIDR'), /clusterCIDR: .* is not an IPv4 CIDR block/, bad);
  });

  test('containment and overlap', () => {
    const cluster = parseCidr('10.244.0.0/16', 'c');
    const node = parseCidr('10.244.3.0/24', 'n');
    const services = parseCidr('10.96.0.0/12', 's');
    assert.ok(cidrWithin(node, cluster));
    assert.ok(!cidrWithin(cluster, node));
    assert.ok(cidrContains(node, parseIpv4('10.244.3.255')!));
    assert.ok(!cidrContains(node, parseIpv4('10.244.4.0')!));
    assert.ok(cidrsOverlap(cluster, node) && cidrsOverlap(node, cluster));
    assert.ok(!cidrsOverlap(cluster, services));
  });
});
