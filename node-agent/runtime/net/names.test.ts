import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_IFNAME, VXLAN_DEVICE, bridgeMac, validIfname, vethName, vtepMac } from './names.js';

describe('names', () => {
  test('a veth is named from its sandbox id, within IFNAMSIZ', () => {
    const id = '3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708';
    assert.equal(vethName(id), 'skv3f2a1b4c5d6e');
    assert.equal(vethName(id).length, MAX_IFNAME);
    assert.ok(validIfname(vethName(id)));
    assert.throws(() => vethName('not-an-id'), /not a sandbox id/);
  });

  test('the bridge has a fixed link address made from its IPv4 address', () => {
    assert.equal(bridgeMac('10.244.3.1'), '0a:58:0a:f4:03:01');
    assert.throws(() => bridgeMac('10.244.3'), /not an IPv4 address/);
  });

  test("a VTEP's link address is made from its address (the pod CIDR's .0), never a bridge's", () => {
    assert.equal(vtepMac('10.244.3.0'), '0a:58:0a:f4:03:00');
    assert.notEqual(vtepMac('10.244.3.0'), bridgeMac('10.244.3.1'));
    assert.ok(validIfname(VXLAN_DEVICE));
  });

  test('interface names as Linux takes them', () => {
    for (const ok of ['eth0', 'skiff0', 'a', 'x'.repeat(15)]) assert.ok(validIfname(ok), ok);
    for (const bad of ['', 'x'.repeat(16), 'a b', 'a/b', 'a:b', '.', '..']) assert.ok(!validIfname(bad), bad);
  });
});
