import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr } from '../../proto/cidr.js';
import type { Endpoint, EndpointSlice, Service, ServiceSpec } from '../../proto/gen/types.js';
import { planService, usableEndpoints, type ServicePlan } from './service-plan.js';

const node = { nodeName: 'n1', clusterCIDR: parseCidr('10.244.0.0/16') };

function service(spec: Partial<ServiceSpec> = {}, name = 'web'): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'shop', name },
    spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
  };
}

function endpoint(
  ip: string,
  nodeName: string,
  conditions: Endpoint['conditions'] = { ready: true },
): Endpoint {
  return { addresses: [ip], nodeName, conditions };
}

function slice(endpoints: Endpoint[], name = 'web-a', port = 8080): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'shop', name, labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints,
  };
}

function element(plan: ServicePlan, map: string, key: string): string | undefined {
  return plan.elements.get(map)?.get(key);
}

/** The endpoints the balancing rules of `chain` DNAT to, as `ip-port` (affinity lookups aside). */
function balancedOver(plan: ServicePlan, chain: string): string[] {
  const rules = plan.chains.get(chain);
  assert.ok(rules, `chain ${chain} in the plan`);
  return rules
    .filter((r) => !r.startsWith('ip saddr @'))
    .flatMap((r) => [...r.matchAll(/dnat ip to ([0-9.]+):(\d+)$/g)].map((m) => `${m[1]}-${m[2]}`));
}

function chainNamed(plan: ServicePlan, prefix: string): string {
  const names = [...plan.chains.keys()].filter((n) => n.startsWith(prefix));
  assert.equal(names.length, 1, `one ${prefix} chain in ${[...plan.chains.keys()].join(', ')}`);
  return names[0]!;
}

describe('service plan', () => {
  test('a ClusterIP balances over every ready endpoint, each DNATed to the slice’s port', () => {
    const plan = planService(
      service(),
      [slice([endpoint('10.244.1.2', 'n1'), endpoint('10.244.2.3', 'n2')])],
      node,
    );
    const svc = chainNamed(plan, 'svc-');
    assert.match(svc, /^svc-[0-9a-f]{8}-shop\/web\/tcp\/80$/);
    assert.equal(element(plan, 'service-ips', '10.96.0.20 . tcp . 80'), `goto ${svc}`);
    assert.deepEqual(balancedOver(plan, svc), ['10.244.1.2-8080', '10.244.2.3-8080']);
    assert.deepEqual(plan.chains.get(svc), [
      'ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade',
      'numgen random mod 2 == 0 meta l4proto tcp dnat ip to 10.244.1.2:8080',
      'meta l4proto tcp dnat ip to 10.244.2.3:8080',
    ]);
    assert.equal(plan.chains.size, 1, 'no chain per endpoint');
    assert.equal(plan.sets.size, 0);
    assert.deepEqual(plan.problems, []);
  });

  test('no endpoints: the ClusterIP and nodePort are rejected, nothing is balanced', () => {
    const plan = planService(
      service({ type: 'NodePort', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] }),
      [slice([endpoint('10.244.1.2', 'n1', { ready: false, serving: false })])],
      node,
    );
    assert.equal(plan.chains.size, 0);
    assert.equal(element(plan, 'no-endpoint-services', '10.96.0.20 . tcp . 80'), 'goto service-reject');
    assert.equal(element(plan, 'no-endpoint-nodeports', 'tcp . 30080'), 'goto service-reject');
    assert.equal(plan.elements.get('service-ips'), undefined);
  });

  test('NodePort of policy Cluster: masqueraded, then the ClusterIP’s balancing', () => {
    const plan = planService(
      service({ type: 'NodePort', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] }),
      [slice([endpoint('10.244.1.2', 'n1')])],
      node,
    );
    const ext = chainNamed(plan, 'ext-');
    assert.equal(element(plan, 'service-nodeports', 'tcp . 30080'), `goto ${ext}`);
    assert.deepEqual(plan.chains.get(ext), ['jump mark-for-masquerade', `goto ${chainNamed(plan, 'svc-')}`]);
  });

  test('externalTrafficPolicy Local: this node’s endpoints only, client kept; none here → drop', () => {
    const spec = {
      type: 'NodePort',
      externalTrafficPolicy: 'Local',
      ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
    };
    const plan = planService(
      service(spec),
      [slice([endpoint('10.244.1.2', 'n1'), endpoint('10.244.2.3', 'n2')])],
      node,
    );
    const ext = plan.chains.get(chainNamed(plan, 'ext-'))!;
    const loc = chainNamed(plan, 'loc-');
    assert.equal(ext.at(-1), `goto ${loc}`);
    assert.ok(!ext.includes('jump mark-for-masquerade'), 'outside clients are not masqueraded');
    assert.ok(ext[0]!.startsWith('ip saddr 10.244.0.0/16 goto svc-'), 'pods get the whole Service');
    assert.deepEqual(balancedOver(plan, loc), ['10.244.1.2-8080']);
    // the ClusterIP still balances over all
    assert.deepEqual(balancedOver(plan, chainNamed(plan, 'svc-')), ['10.244.1.2-8080', '10.244.2.3-8080']);

    const elsewhere = planService(service(spec), [slice([endpoint('10.244.2.3', 'n2')])], node);
    assert.equal(elsewhere.chains.get(chainNamed(elsewhere, 'ext-'))!.at(-1), 'drop');
    assert.equal([...elsewhere.chains.keys()].filter((n) => n.startsWith('loc-')).length, 0);
  });

  test('internalTrafficPolicy Local: the ClusterIP goes to this node’s endpoints; none here → drop', () => {
    const plan = planService(
      service({ internalTrafficPolicy: 'Local' }),
      [slice([endpoint('10.244.1.2', 'n1'), endpoint('10.244.2.3', 'n2')])],
      node,
    );
    const loc = chainNamed(plan, 'loc-');
    assert.equal(element(plan, 'service-ips', '10.96.0.20 . tcp . 80'), `goto ${loc}`);
    assert.deepEqual(balancedOver(plan, loc), ['10.244.1.2-8080']);
    const none = planService(
      service({ internalTrafficPolicy: 'Local' }),
      [slice([endpoint('10.244.2.3', 'n2')])],
      node,
    );
    assert.equal(element(none, 'no-endpoint-services', '10.96.0.20 . tcp . 80'), 'drop');
  });

  test('only ready endpoints get new connections; with none ready, the serving terminating ones', () => {
    const plan = planService(
      service(),
      [
        slice([
          endpoint('10.244.1.2', 'n1'),
          endpoint('10.244.1.3', 'n1', { ready: false, serving: false, terminating: false }),
          endpoint('10.244.1.4', 'n1', { ready: false, serving: true, terminating: true }),
        ]),
      ],
      node,
    );
    assert.deepEqual(balancedOver(plan, chainNamed(plan, 'svc-')), ['10.244.1.2-8080']);
    assert.equal(plan.chains.size, 1);

    const terminating = planService(
      service(),
      [
        slice([
          endpoint('10.244.1.3', 'n1', { ready: false, serving: false, terminating: true }),
          endpoint('10.244.1.4', 'n1', { ready: false, serving: true, terminating: true }),
        ]),
      ],
      node,
    );
    assert.deepEqual(balancedOver(terminating, chainNamed(terminating, 'svc-')), ['10.244.1.4-8080']);
    assert.deepEqual(
      usableEndpoints([{ ready: false, serving: true, terminating: false }]),
      [],
      'serving but not terminating and not ready is not a fallback',
    );
  });

  test('ClientIP affinity: a timed set per endpoint, looked up before balancing, updated on use', () => {
    const plan = planService(
      service({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }),
      [slice([endpoint('10.244.1.2', 'n1'), endpoint('10.244.1.3', 'n1')])],
      node,
    );
    assert.deepEqual(
      [...plan.sets.values()].map((s) => s.timeoutSeconds),
      [60, 60],
    );
    const svc = plan.chains.get(chainNamed(plan, 'svc-'))!;
    assert.match(
      svc[1]!,
      /^ip saddr @(aff-[0-9a-f]{8}-10\.244\.1\.2-8080-60) update @\1 \{ ip saddr \} meta l4proto tcp dnat ip to 10\.244\.1\.2:8080$/,
    );
    assert.match(
      svc.at(-1)!,
      /^update @aff-[0-9a-f]{8}-10\.244\.1\.3-8080-60 \{ ip saddr \} meta l4proto tcp dnat ip to 10\.244\.1\.3:8080$/,
    );
    const bad = planService(
      service({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }),
      [],
      node,
    );
    assert.equal(bad.chains.size, 0);
    assert.match(bad.problems[0]!, /timeoutSeconds 0/);
  });

  test('headless and ExternalName Services have no rules; SCTP is left out with a reason', () => {
    assert.equal(planService(service({ clusterIP: 'None' }), [], node).chains.size, 0);
    assert.equal(
      planService(service({ type: 'ExternalName', externalName: 'example.com' }), [], node).elements.size,
      0,
    );
    const sctp = planService(service({ ports: [{ port: 80, protocol: 'SCTP' }] }), [], node);
    assert.equal(sctp.elements.size, 0);
    assert.match(sctp.problems[0]!, /ports\[0\]: protocol SCTP is not served/);
  });

  test('hostile values never reach the rules: addresses and ports are checked', () => {
    const plan = planService(
      service(),
      [slice([endpoint('10.244.1.2; flush ruleset', 'n1'), endpoint('10.244.1.5', 'n1')])],
      node,
    );
    assert.deepEqual(balancedOver(plan, chainNamed(plan, 'svc-')), ['10.244.1.5-8080']);
    assert.match(plan.problems[0]!, /is not IPv4/);
    const badIP = planService(service({ clusterIP: '10.96.0.1 } ; flush ruleset' }), [], node);
    assert.equal(badIP.elements.size, 0);
    const weird = planService(
      { ...service(), metadata: { namespace: 'a b', name: 'x}' } },
      [slice([endpoint('10.244.1.2', 'n1')])],
      node,
    );
    assert.match(chainNamed(weird, 'svc-'), /^svc-[0-9a-f]{8}$/, 'unsafe names leave only the hash');
    const badPort = planService(service(), [slice([endpoint('10.244.1.2', 'n1')], 'web-a', 70000)], node);
    assert.equal(badPort.chains.size, 0);
    assert.equal(element(badPort, 'no-endpoint-services', '10.96.0.20 . tcp . 80'), 'goto service-reject');
  });

  test('a named port matches the slice port of that name; endpoints in two slices count once', () => {
    const plan = planService(
      service({
        ports: [
          { name: 'http', port: 80, protocol: 'TCP' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      }),
      [
        slice([endpoint('10.244.1.2', 'n1')], 'web-a'),
        slice([endpoint('10.244.1.2', 'n1'), endpoint('10.244.1.3', 'n1')], 'web-b'),
        {
          ...slice([endpoint('10.244.1.9', 'n1')], 'web-c'),
          ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }],
        },
      ],
      node,
    );
    const tcp = [...plan.chains.keys()].find((n) => n.startsWith('svc-') && n.endsWith('/tcp/80'))!;
    const udp = [...plan.chains.keys()].find((n) => n.startsWith('svc-') && n.endsWith('/udp/53'))!;
    assert.deepEqual(balancedOver(plan, tcp), ['10.244.1.2-8080', '10.244.1.3-8080']);
    assert.deepEqual(balancedOver(plan, udp), ['10.244.1.9-5353']);
  });

  test('a node-local address takes every port of its Service (the DNS hook)', () => {
    const plan = planService(service(), [slice([endpoint('10.244.2.3', 'n2')])], node, '10.244.1.1');
    assert.deepEqual(balancedOver(plan, chainNamed(plan, 'svc-')), ['10.244.1.1-80']);
  });

  test('externalIPs and load-balancer addresses go through the external chain', () => {
    const plan = planService(
      {
        ...service({
          type: 'LoadBalancer',
          externalIPs: ['192.0.2.10'],
          ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30081 }],
        }),
        status: { loadBalancer: { ingress: [{ ip: '192.0.2.20' }, { hostname: 'lb.example' }] } },
      },
      [slice([endpoint('10.244.1.2', 'n1')])],
      node,
    );
    const ext = `goto ${chainNamed(plan, 'ext-')}`;
    assert.equal(element(plan, 'service-ips', '192.0.2.10 . tcp . 80'), ext);
    assert.equal(element(plan, 'service-ips', '192.0.2.20 . tcp . 80'), ext);
    assert.equal(element(plan, 'service-nodeports', 'tcp . 30081'), ext);
  });

  test('no endpoint or external address sends traffic to the node itself or link-local', () => {
    // a tenant's selector-less Service: its own EndpointSlice and externalIPs, stored before the API checked them
    const plan = planService(
      {
        ...service({
          type: 'LoadBalancer',
          externalIPs: ['127.0.0.1', '192.0.2.10'],
          ports: [{ name: 'http', port: 2379, protocol: 'TCP', nodePort: 30081 }],
        }),
        status: { loadBalancer: { ingress: [{ ip: '169.254.169.254' }] } },
      },
      [slice([endpoint('127.0.0.1', 'n1'), endpoint('169.254.169.254', 'n1'), endpoint('10.244.1.2', 'n1')])],
      node,
    );
    assert.deepEqual(balancedOver(plan, chainNamed(plan, 'svc-')), ['10.244.1.2-8080']);
    assert.deepEqual(
      [...(plan.elements.get('service-ips')?.keys() ?? [])].sort(),
      ['10.96.0.20 . tcp . 2379', '192.0.2.10 . tcp . 2379'],
      'the node’s own 127.0.0.1:2379 is not captured',
    );
    assert.equal(
      plan.problems.filter((p) => /loopback|link-local/.test(p)).length,
      4,
      plan.problems.join('; '),
    );
  });
});
