import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr } from '../../../proto/cidr.js';
import { FailedPreconditionError } from '../../../proto/errors.js';
import type { ShownRoute } from './ip-scripts.js';
import {
  checkPeers,
  onLink,
  peerPlan,
  uplinkOf,
  vtepOf,
  vxlanDevicePlan,
  vxlanDeviceScript,
  type Peer,
  type PeerScope,
  type ShownPeerState,
} from './peer-routes.js';

const scope: PeerScope = {
  clusterCIDR: parseCidr('10.244.0.0/16'),
  podCIDR: parseCidr('10.244.1.0/24'),
  bridge: 'skiff0',
};

/** What `ip -j -4 route show table main` prints on a node of 172.31.7.0/24 with one of 172.31.8.0/24 behind a router. */
const baseRoutes: ShownRoute[] = [
  { dst: '10.244.0.0/16', type: 'unreachable', flags: [] },
  { dst: '10.96.0.0/12', type: 'unreachable', flags: [] },
  { dst: '10.244.1.0/24', dev: 'skiff0', scope: 'link', flags: [] },
  { dst: '172.31.7.0/24', dev: 'eth0', scope: 'link', flags: [] },
  { dst: '172.31.8.0/24', gateway: '172.31.7.253', dev: 'eth0', flags: [] },
];
const n2: Peer = { node: 'n2', podCIDR: '10.244.2.0/24', address: '172.31.7.3' };
const n3: Peer = { node: 'n3', podCIDR: '10.244.3.0/24', address: '172.31.8.4' };
const shown = (extra: Partial<ShownPeerState> = {}): ShownPeerState => ({
  routes: baseRoutes,
  neighbours: [],
  fdb: [],
  ...extra,
});

describe('peer routes', () => {
  test('peers with a malformed or clashing address or pod CIDR are refused, naming why; the first by name keeps a block', () => {
    const { peers, refused } = checkPeers(
      [
        { node: 'z-late', podCIDR: '10.244.2.0/24', address: '172.31.7.9' },
        n2,
        { node: 'bad-ip', podCIDR: '10.244.4.0/24', address: 'n4.example' },
        { node: 'in-cluster', podCIDR: '10.244.5.0/24', address: '10.244.9.9' },
        { node: 'outside', podCIDR: '10.245.0.0/24', address: '172.31.7.5' },
        { node: 'mine', podCIDR: '10.244.1.0/25', address: '172.31.7.6' },
        { node: 'host-bits', podCIDR: '10.244.6.1/24', address: '172.31.7.7' },
      ],
      scope,
    );
    assert.deepEqual(peers, [n2]);
    assert.deepEqual(Object.fromEntries(refused.map((r) => [r.node, r.reason])), {
      'bad-ip': 'its address "n4.example" is not an IPv4 address',
      'in-cluster': 'its address 10.244.9.9 is inside the cluster CIDR 10.244.0.0/16',
      outside: 'its pod CIDR 10.245.0.0/24 is outside the cluster CIDR 10.244.0.0/16',
      mine: "its pod CIDR 10.244.1.0/25 overlaps this node's 10.244.1.0/24",
      'host-bits': 'podCIDR: "10.244.6.1/24" has host bits set; the block is 10.244.6.0/24',
      'z-late': "its pod CIDR 10.244.2.0/24 overlaps n2's 10.244.2.0/24",
    });
  });

  test('a Node claiming this node’s own address, loopback, link-local or multicast is not routed', () => {
    const { peers, refused } = checkPeers(
      [
        { node: 'me-too', podCIDR: '10.244.4.0/24', address: '172.31.7.2' },
        { node: 'loop', podCIDR: '10.244.5.0/24', address: '127.0.0.1' },
        { node: 'meta', podCIDR: '10.244.6.0/24', address: '169.254.169.254' },
        { node: 'zero', podCIDR: '10.244.7.0/24', address: '0.0.0.0' },
        { node: 'multi', podCIDR: '10.244.8.0/24', address: '239.1.1.1' },
        n2,
      ],
      { ...scope, nodeIP: '172.31.7.2' },
    );
    assert.deepEqual(peers, [n2]);
    assert.deepEqual(Object.fromEntries(refused.map((r) => [r.node, r.reason])), {
      'me-too': "its address 172.31.7.2 is this node's own",
      loop: 'its address 127.0.0.1 may not be in the loopback range (127.0.0.0/8)',
      meta: 'its address 169.254.169.254 may not be in the link-local range (169.254.0.0/16)',
      zero: 'its address 0.0.0.0 may not be unspecified (0.0.0.0)',
      multi: 'its address 239.1.1.1 may not be multicast or reserved',
    });
  });

  test('on link: an address of a connected subnet, not one behind a gateway, nor the pods’ own', () => {
    assert.ok(onLink('172.31.7.3', baseRoutes, scope));
    assert.ok(!onLink('172.31.8.4', baseRoutes, scope), 'behind the router');
    assert.ok(!onLink('10.244.1.5', baseRoutes, scope), 'the bridge is not a way to a node');
    assert.ok(!onLink('192.0.2.1', baseRoutes, scope));
  });

  test('host-gw: a route per peer via its address; a peer off link is reported, not routed', () => {
    const plan = peerPlan('host-gw', [n2, n3], shown(), scope);
    assert.equal(plan.ip, 'route replace 10.244.2.0/24 via 172.31.7.3\n');
    assert.equal(plan.fdbAdd + plan.fdbDel, '');
    assert.deepEqual(plan.offLink, [
      {
        node: 'n3',
        reason:
          'host-gw cannot route its pod CIDR 10.244.3.0/24: its address 172.31.8.4 is on no subnet this node is connected to (nodes on different subnets need the vxlan backend)',
      },
    ]);
    assert.equal(plan.changes, 1);
  });

  test('host-gw: only what differs is written; a changed address is replaced, a gone peer’s route deleted', () => {
    const routes = [
      ...baseRoutes,
      { dst: '10.244.2.0/24', gateway: '172.31.7.3', dev: 'eth0', flags: [] },
      { dst: '10.244.4.0/24', gateway: '172.31.7.4', dev: 'eth0', flags: [] },
    ];
    const same = peerPlan(
      'host-gw',
      [n2, { ...n3, address: '172.31.7.4', podCIDR: '10.244.4.0/24' }],
      shown({ routes }),
      scope,
    );
    assert.equal(same.changes, 0);
    assert.equal(same.ip, '');
    const moved = peerPlan('host-gw', [{ ...n2, address: '172.31.7.30' }], shown({ routes }), scope);
    assert.equal(
      moved.ip,
      'route del 10.244.4.0/24 via 172.31.7.4 dev eth0\nroute replace 10.244.2.0/24 via 172.31.7.30\n',
    );
    // none left: every peer route goes (removeNode), never the bridge's nor the unreachable one
    assert.equal(
      peerPlan('host-gw', [], shown({ routes }), scope).ip,
      'route del 10.244.2.0/24 via 172.31.7.3 dev eth0\nroute del 10.244.4.0/24 via 172.31.7.4 dev eth0\n',
    );
  });

  test('vxlan: fdb, neighbour and onlink route per peer, on or off link alike', () => {
    const plan = peerPlan('vxlan', [n2, n3], shown(), scope);
    assert.deepEqual(plan.offLink, []);
    assert.equal(
      plan.fdbAdd,
      'fdb replace 0a:58:0a:f4:02:00 dev skiff.vxlan dst 172.31.7.3 self permanent\n' +
        'fdb replace 0a:58:0a:f4:03:00 dev skiff.vxlan dst 172.31.8.4 self permanent\n',
    );
    assert.equal(
      plan.ip,
      'neigh replace 10.244.2.0 lladdr 0a:58:0a:f4:02:00 dev skiff.vxlan nud permanent\n' +
        'neigh replace 10.244.3.0 lladdr 0a:58:0a:f4:03:00 dev skiff.vxlan nud permanent\n' +
        'route replace 10.244.2.0/24 via 10.244.2.0 dev skiff.vxlan onlink\n' +
        'route replace 10.244.3.0/24 via 10.244.3.0 dev skiff.vxlan onlink\n',
    );
    assert.equal(plan.fdbDel, '');
    assert.equal(plan.changes, 6);
  });

  test('vxlan: a peer gone loses its route, neighbour and fdb entry, and the others are not touched', () => {
    const state = shown({
      routes: [
        ...baseRoutes,
        { dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: 'skiff.vxlan', flags: ['onlink'] },
        { dst: '10.244.3.0/24', gateway: '10.244.3.0', dev: 'skiff.vxlan', flags: ['onlink'] },
        // a host-gw route of before a backend change
        { dst: '10.244.9.0/24', gateway: '172.31.7.9', dev: 'eth0', flags: [] },
      ],
      neighbours: [
        { dst: '10.244.2.0', lladdr: '0a:58:0a:f4:02:00', state: ['PERMANENT'] },
        { dst: '10.244.3.0', lladdr: '0a:58:0a:f4:03:00', state: ['PERMANENT'] },
      ],
      fdb: [
        { mac: '0a:58:0a:f4:02:00', dst: '172.31.7.3', state: 'permanent' },
        { mac: '0a:58:0a:f4:03:00', dst: '172.31.8.4', state: 'permanent' },
        // the device's own multicast address: no dst, not a peer's
        { mac: '33:33:00:00:00:01', state: 'permanent' },
      ],
    });
    const plan = peerPlan('vxlan', [n2], state, scope);
    assert.equal(plan.fdbAdd, '');
    assert.equal(
      plan.ip,
      'route del 10.244.3.0/24 via 10.244.3.0 dev skiff.vxlan\nroute del 10.244.9.0/24 via 172.31.7.9 dev eth0\nneigh del 10.244.3.0 dev skiff.vxlan\n',
    );
    assert.equal(plan.fdbDel, 'fdb del 0a:58:0a:f4:03:00 dev skiff.vxlan dst 172.31.8.4 self\n');
    // a peer whose address changed: its fdb entry only
    const moved = peerPlan('vxlan', [n2, { ...n3, address: '172.31.8.40' }], state, scope);
    assert.equal(
      moved.fdbAdd,
      'fdb replace 0a:58:0a:f4:03:00 dev skiff.vxlan dst 172.31.8.40 self permanent\n',
    );
    assert.equal(moved.ip, 'route del 10.244.9.0/24 via 172.31.7.9 dev eth0\n');
    assert.equal(moved.fdbDel, '');
  });

  test('the VXLAN device: made, kept, or made again when its settings differ; another kind of link refused', () => {
    const vxlan = (data: object) => ({
      ifindex: 5,
      ifname: 'skiff.vxlan',
      linkinfo: {
        info_kind: 'vxlan',
        info_data: { id: 1, port: 8472, local: '172.31.7.2', learning: false, ...data },
      },
    });
    assert.equal(vxlanDevicePlan(undefined, '172.31.7.2'), 'create');
    assert.equal(vxlanDevicePlan(vxlan({}), '172.31.7.2'), 'keep');
    assert.equal(vxlanDevicePlan(vxlan({ local: '172.31.7.9' }), '172.31.7.2'), 'recreate');
    assert.equal(vxlanDevicePlan(vxlan({ learning: true }), '172.31.7.2'), 'recreate');
    assert.throws(
      () =>
        vxlanDevicePlan(
          { ifindex: 5, ifname: 'skiff.vxlan', linkinfo: { info_kind: 'dummy' } },
          '172.31.7.2',
        ),
      (err: unknown) =>
        err instanceof FailedPreconditionError && /not a VXLAN device \(dummy\)/.test(err.message),
    );
    assert.equal(
      vxlanDeviceScript({
        plan: 'recreate',
        nodeIP: '172.31.7.2',
        mtu: 1450,
        vtep: vtepOf('10.244.1.0/24'),
        staleAddresses: ['10.244.7.0/32'],
      }),
      'link del skiff.vxlan\n' +
        'link add skiff.vxlan type vxlan id 1 local 172.31.7.2 dstport 8472 nolearning\n' +
        'link set dev skiff.vxlan address 0a:58:0a:f4:01:00 mtu 1450\n' +
        'addr del 10.244.7.0/32 dev skiff.vxlan\n' +
        'addr replace 10.244.1.0/32 dev skiff.vxlan\n' +
        'link set dev skiff.vxlan up\n',
    );
  });

  test('the uplink is the interface holding the node address', () => {
    const links = [
      {
        ifindex: 1,
        ifname: 'lo',
        mtu: 65536,
        addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }],
      },
      {
        ifindex: 2,
        ifname: 'eth0',
        mtu: 9000,
        addr_info: [{ family: 'inet', local: '172.31.7.2', prefixlen: 24 }],
      },
    ];
    assert.deepEqual(uplinkOf(links, '172.31.7.2'), { ifname: 'eth0', mtu: 9000 });
    assert.throws(
      () => uplinkOf(links, '172.31.7.99'),
      /no interface of the host holds the node's address 172\.31\.7\.99/,
    );
  });
});
