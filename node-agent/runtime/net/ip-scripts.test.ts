import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FailedPreconditionError } from '../../../proto/errors.js';
import {
  bridgeScript,
  checkBridge,
  checkNetnsPath,
  podAddressScript,
  repairPlan,
  staleAddresses,
  unreachableRoutesScript,
  localServiceRouteScript,
  removeLocalServiceRuleScript,
  vethAttachScript,
  vethCreateScript,
} from './ip-scripts.js';

describe('ip scripts', () => {
  test("the host's own connections to the service CIDR go onto the bridge through one policy rule, added once", () => {
    const opts = { serviceCIDR: '10.96.0.0/12', bridge: 'skiff0', gateway: '10.244.3.1' };
    assert.equal(
      localServiceRouteScript({ ...opts, rules: [] }),
      'rule add priority 31000 to 10.96.0.0/12 iif lo lookup 31000\n' +
        'route replace 10.96.0.0/12 dev skiff0 src 10.244.3.1 table 31000\n',
    );
    const present = [{ priority: 31000, dst: '10.96.0.0', dstlen: 12, iif: 'lo', table: '31000' }];
    assert.equal(
      localServiceRouteScript({ ...opts, rules: present }),
      'route replace 10.96.0.0/12 dev skiff0 src 10.244.3.1 table 31000\n',
    );
    assert.equal(
      removeLocalServiceRuleScript('10.96.0.0/12', present),
      'rule del priority 31000 to 10.96.0.0/12 iif lo lookup 31000\n',
    );
    // another rule at that priority (the operator's) is not ours to remove
    assert.equal(removeLocalServiceRuleScript('10.96.0.0/12', [{ ...present[0]!, iif: 'eth0' }]), '');
  });

  test('unreachable routes are added once, and a block the host routes elsewhere is refused', () => {
    const cidrs = ['10.244.0.0/16', '10.96.0.0/12'];
    assert.equal(
      unreachableRoutesScript(cidrs, []),
      'route add unreachable 10.244.0.0/16\nroute add unreachable 10.96.0.0/12\n',
    );
    assert.equal(
      unreachableRoutesScript(cidrs, [
        { dst: '10.244.0.0/16', type: 'unreachable' },
        { dst: '10.96.0.0/12', type: 'unreachable' },
      ]),
      '',
    );
    assert.throws(
      () => unreachableRoutesScript(cidrs, [{ dst: '10.96.0.0/12', gateway: '192.168.1.1', dev: 'eth0' }]),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /the host already routes 10\.96\.0\.0\/12 via 192\.168\.1\.1; .* choose another cluster or service CIDR/.test(
          err.message,
        ),
    );
  });

  test('the bridge is made unless there, with a fixed address and MTU, its gateway address only, up', () => {
    const opts = {
      bridge: 'skiff0',
      mac: '0a:58:0a:f4:03:01',
      mtu: 1450,
      gateway: '10.244.3.1',
      prefix: 24,
      staleAddresses: [],
    };
    assert.equal(
      bridgeScript({ ...opts, exists: false }),
      'link add skiff0 type bridge\nlink set dev skiff0 address 0a:58:0a:f4:03:01 mtu 1450\naddr replace 10.244.3.1/24 dev skiff0\nlink set dev skiff0 up\n',
    );
    assert.equal(
      bridgeScript({ ...opts, exists: true, staleAddresses: ['10.244.9.1/24'] }),
      'link set dev skiff0 address 0a:58:0a:f4:03:01 mtu 1450\naddr del 10.244.9.1/24 dev skiff0\naddr replace 10.244.3.1/24 dev skiff0\nlink set dev skiff0 up\n',
    );
    assert.deepEqual(
      staleAddresses(
        {
          ifindex: 3,
          ifname: 'skiff0',
          addr_info: [
            { family: 'inet', local: '10.244.3.1', prefixlen: 24 },
            { family: 'inet', local: '10.244.9.1', prefixlen: 24 },
            { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
          ],
        },
        '10.244.3.1',
      ),
      ['10.244.9.1/24'],
    );
  });

  test('a link of the bridge’s name that is not a bridge is refused', () => {
    assert.equal(checkBridge('skiff0', undefined), false);
    assert.equal(
      checkBridge('skiff0', { ifindex: 3, ifname: 'skiff0', linkinfo: { info_kind: 'bridge' } }),
      true,
    );
    assert.throws(
      () => checkBridge('skiff0', { ifindex: 3, ifname: 'skiff0', linkinfo: { info_kind: 'veth' } }),
      /a link named skiff0 that is not a bridge \(veth\)/,
    );
  });

  test('a sandbox: the pair made with eth0 in its namespace, ours on the bridge with hairpin, eth0 addressed and routed', () => {
    assert.equal(
      vethCreateScript({ veth: 'skv3f2a1b4c5d6e', netnsPath: '/proc/42/ns/net', mtu: 1500 }),
      'link add skv3f2a1b4c5d6e mtu 1500 type veth peer name eth0 mtu 1500 netns /proc/42/ns/net\n',
    );
    assert.equal(
      vethAttachScript({ veth: 'skv3f2a1b4c5d6e', bridge: 'skiff0' }),
      'link set dev skv3f2a1b4c5d6e master skiff0\nlink set dev skv3f2a1b4c5d6e type bridge_slave hairpin on\nlink set dev skv3f2a1b4c5d6e up\n',
    );
    assert.equal(
      podAddressScript({ ip: '10.244.3.7', prefix: 24, gateway: '10.244.3.1' }),
      'addr replace 10.244.3.7/24 dev eth0\nlink set dev eth0 up\nroute replace default via 10.244.3.1 dev eth0\n',
    );
  });

  test('a pair found after a failed create is kept only when its two ends are each other’s peers', () => {
    const host = { ifindex: 7, ifname: 'skv1', link_index: 2 };
    const pod = { ifindex: 2, ifname: 'eth0', link_index: 7 };
    assert.equal(repairPlan(host, pod), 'keep');
    assert.equal(repairPlan(host, { ...pod, link_index: 9 }), 'recreate');
    assert.equal(repairPlan(host, undefined), 'recreate');
    assert.equal(repairPlan(undefined, pod), 'recreate');
  });

  test('a namespace path cannot smuggle a command into a batch', () => {
    checkNetnsPath('/proc/42/ns/net');
    for (const bad of ['proc/42/ns/net', '/proc/42/ns/net\nlink del skiff0', '/a b']) {
      assert.throws(() => checkNetnsPath(bad), FailedPreconditionError, bad);
    }
  });
});
