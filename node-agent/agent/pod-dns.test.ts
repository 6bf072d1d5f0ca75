import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pod, PodSpec } from '../../proto/gen/types.js';
import { parseResolvConf, podResolverConfig, resolvConfText } from './pod-dns.js';

const cluster = { address: '10.96.0.10', domain: 'cluster.local' };
const node = parseResolvConf(
  '# from DHCP\nnameserver 192.0.2.53\nnameserver 192.0.2.54 ; second\ndomain old.example\nsearch corp.example lab.example\noptions edns0 timeout:2\n',
);

function pod(spec: Partial<PodSpec>): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'client', namespace: 'shop' },
    spec: { containers: [{ name: 'c', image: 'busybox' }], ...spec },
  } as Pod;
}

test("the node's resolv.conf: nameservers, the last search line, options", () => {
  assert.deepEqual(node, {
    nameservers: ['192.0.2.53', '192.0.2.54'],
    searches: ['corp.example', 'lab.example'],
    options: ['edns0', 'timeout:2'],
  });
});

test('ClusterFirst (the default): the cluster DNS, the namespace search path then the node, ndots:5', () => {
  const text = resolvConfText(podResolverConfig(pod({}), cluster, node));
  assert.equal(
    text,
    'search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n' +
      'nameserver 10.96.0.10\noptions ndots:5\n',
  );
});

test("hostNetwork with ClusterFirst gets the node's resolver; ClusterFirstWithHostNet the cluster's", () => {
  assert.deepEqual(
    podResolverConfig(pod({ hostNetwork: true, dnsPolicy: 'ClusterFirst' }), cluster, node),
    node,
  );
  assert.deepEqual(
    podResolverConfig(pod({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }), cluster, node)
      .nameservers,
    ['10.96.0.10'],
  );
});

test("Default: the node's resolver, for any pod", () => {
  assert.deepEqual(podResolverConfig(pod({ dnsPolicy: 'Default' }), cluster, node), node);
});

test('None: only dnsConfig', () => {
  const config = podResolverConfig(
    pod({
      dnsPolicy: 'None',
      dnsConfig: {
        nameservers: ['192.0.2.1'],
        searches: ['ns1.svc.cluster-domain.example'],
        options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }],
      },
    }),
    cluster,
    node,
  );
  assert.equal(
    resolvConfText(config),
    'search ns1.svc.cluster-domain.example\nnameserver 192.0.2.1\noptions ndots:2 edns0\n',
  );
});

test('dnsConfig merges: nameservers and searches appended without duplicates, options replaced by name', () => {
  const config = podResolverConfig(
    pod({
      dnsConfig: {
        nameservers: ['10.96.0.10', '192.0.2.1'],
        searches: ['svc.cluster.local', 'extra.example'],
        options: [{ name: 'ndots', value: '2' }, { name: 'single-request' }],
      },
    }),
    cluster,
    node,
  );
  assert.deepEqual(config.nameservers, ['10.96.0.10', '192.0.2.1']);
  assert.deepEqual(config.searches, [
    'shop.svc.cluster.local',
    'svc.cluster.local',
    'cluster.local',
    'corp.example',
    'lab.example',
    'extra.example',
  ]);
  assert.deepEqual(config.options, ['ndots:2', 'single-request']);
});

test('limits: 3 nameservers, 32 search domains, 2048 characters of search line', () => {
  const many = podResolverConfig(
    pod({
      dnsPolicy: 'Default',
      dnsConfig: {
        nameservers: ['192.0.2.1', '192.0.2.2'],
        searches: Array.from({ length: 40 }, (_, i) => `d${i}.example`),
      },
    }),
    cluster,
    node,
  );
  assert.deepEqual(many.nameservers, ['192.0.2.53', '192.0.2.54', '192.0.2.1']);
  assert.equal(many.searches.length, 32);
  const long = podResolverConfig(
    pod({
      dnsPolicy: 'None',
      dnsConfig: {
        nameservers: ['192.0.2.1'],
        searches: Array.from({ length: 10 }, (_, i) => `${'a'.repeat(250)}${i}`),
      },
    }),
    cluster,
    node,
  );
  assert.equal(long.searches.length, 8); // 8 × 252 - 1 = 2015 characters; a ninth would pass 2048
  assert.ok(long.searches.join(' ').length <= 2048);
});

test('a dnsConfig value with a newline never adds a line to resolv.conf', () => {
  const text = resolvConfText(
    podResolverConfig(
      pod({
        dnsConfig: {
          options: [{ name: 'ndots', value: '1\nnameserver 203.0.113.66' }, { name: 'edns0' }],
          searches: ['ok.example', 'bad.example\nnameserver 203.0.113.67'],
        },
      }),
      cluster,
      node,
    ),
  );
  assert.doesNotMatch(text, /203\.0\.113/);
  assert.match(text, /^options edns0$/m, 'the bad ndots left out, the rest kept');
  assert.match(text, /^search .* ok\.example$/m);
});
