import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostPortsScript, nodeTableScript, removeTableScript } from './nft-ruleset.js';

describe('nft ruleset', () => {
  test('host ports are the maps’ elements, rewritten whole; with a hostIP in the map keyed by it', () => {
    assert.equal(
      hostPortsScript([
        { hostPort: 8080, containerPort: 80, protocol: 'TCP', podIP: '10.244.3.2' },
        { hostPort: 53, containerPort: 5353, protocol: 'UDP', podIP: '10.244.3.3' },
        { hostPort: 8081, containerPort: 81, protocol: 'TCP', hostIP: '10.0.0.1', podIP: '10.244.3.2' },
      ]),
      [
        'flush map inet skiff hostports',
        'flush map inet skiff hostports_ip',
        'add element inet skiff hostports { udp . 53 : 10.244.3.3 . 5353, tcp . 8080 : 10.244.3.2 . 80 }',
        'add element inet skiff hostports_ip { 10.0.0.1 . tcp . 8081 : 10.244.3.2 . 81 }',
        '',
      ].join('\n'),
    );
    assert.equal(hostPortsScript([]), 'flush map inet skiff hostports\nflush map inet skiff hostports_ip\n');
  });

  test('the table replaces any of its name in one script, and names the bridge, pod CIDR and cluster CIDR', () => {
    const script = nodeTableScript(
      { bridge: 'skiff0', podCIDR: '10.244.3.0/24', clusterCIDR: '10.244.0.0/16' },
      [{ hostPort: 8080, containerPort: 80, protocol: 'TCP', podIP: '10.244.3.2' }],
    );
    const lines = script.split('\n').map((l) => l.trim());
    assert.deepEqual(lines.slice(0, 3), [
      'add table inet skiff',
      'delete table inet skiff',
      'table inet skiff {',
    ]);
    for (const rule of [
      'type nat hook prerouting priority dstnat; policy accept;',
      'type nat hook output priority -100; policy accept;',
      'meta nfproto ipv4 fib daddr type local jump hostports',
      'dnat ip to ip daddr . meta l4proto . th dport map @hostports_ip',
      'dnat ip to meta l4proto . th dport map @hostports',
      'oifname "skiff0" ct status dnat ip saddr { 127.0.0.0/8, 10.244.3.0/24 } masquerade',
      'iifname "skiff0" ip daddr 127.0.0.0/8 ct state != { established, related } drop',
      'iifname "skiff0" oifname != "skiff0" ct status dnat accept',
      // routing between nodes: a pod's own packets out, as they are to the cluster CIDR, masqueraded elsewhere
      'oifname != "skiff0" ip saddr 10.244.3.0/24 ip daddr != 10.244.0.0/16 masquerade',
      'iifname "skiff0" oifname != "skiff0" ct state invalid drop',
      'iifname "skiff0" oifname != "skiff0" ip saddr 10.244.3.0/24 accept',
      'iifname "skiff0" oifname != "skiff0" drop',
      'add element inet skiff hostports { tcp . 8080 : 10.244.3.2 . 80 }',
    ])
      assert.ok(lines.includes(rule), rule);
    // in the forward chain, in this order: what is let out before what is dropped
    const order = [
      'iifname "skiff0" oifname != "skiff0" ct status dnat accept',
      'iifname "skiff0" oifname != "skiff0" ct state invalid drop',
      'iifname "skiff0" oifname != "skiff0" ip saddr 10.244.3.0/24 accept',
      'iifname "skiff0" oifname != "skiff0" drop',
    ].map((rule) => lines.indexOf(rule));
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
    );
  });

  test('the Service maps are declared empty, and the nat chains try Services first, then host ports', () => {
    const lines = nodeTableScript(
      { bridge: 'skiff0', podCIDR: '10.244.3.0/24', clusterCIDR: '10.244.0.0/16' },
      [],
    )
      .split('\n')
      .map((l) => l.trim());
    for (const map of ['service-ips', 'service-nodeports', 'no-endpoint-services', 'no-endpoint-nodeports'])
      assert.ok(lines.includes(`map ${map} {`), map);
    for (const hook of [
      'type nat hook prerouting priority dstnat; policy accept;',
      'type nat hook output priority -100; policy accept;',
    ]) {
      const at = lines.indexOf(hook);
      assert.deepEqual(lines.slice(at + 1, at + 3), [
        'jump services',
        'meta nfproto ipv4 fib daddr type local jump hostports',
      ]);
    }
    const post = lines.indexOf('type nat hook postrouting priority srcnat; policy accept;');
    assert.equal(lines[post + 1], 'jump masquerading');
    assert.ok(lines.includes('ct state new jump service-endpoints-check'));
  });

  test('removal is idempotent: the table is made first, so the delete always finds it', () => {
    assert.equal(removeTableScript(), 'add table inet skiff\ndelete table inet skiff\n');
  });
});
