import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr } from '../../proto/cidr.js';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { planService, type ServicePlan } from './service-plan.js';
import { EMPTY_TABLE, changeScript, fullScript, gatherTable, type ServiceTable } from './service-table.js';

const node = { nodeName: 'n1', clusterCIDR: parseCidr('10.244.0.0/16') };

function service(name: string, clusterIP: string, nodePort?: number): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'shop', name },
    spec: {
      type: nodePort ? 'NodePort' : 'ClusterIP',
      clusterIP,
      ports: [{ name: 'http', port: 80, protocol: 'TCP', ...(nodePort ? { nodePort } : {}) }],
    },
  };
}

function slice(name: string, readiness: Record<string, boolean>): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'shop', name: `${name}-1`, labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Object.entries(readiness).map(([ip, ready]) => ({
      addresses: [ip],
      nodeName: 'n1',
      conditions: { ready },
    })),
  };
}

/** 100 Services of 5 endpoints; `web-7`'s endpoints as given. */
function cluster(web7: Record<string, boolean>): Map<string, ServicePlan> {
  const plans = new Map<string, ServicePlan>();
  for (let i = 0; i < 100; i++) {
    const name = `web-${i}`;
    const endpoints =
      i === 7 ? web7 : Object.fromEntries([1, 2, 3, 4, 5].map((e) => [`10.244.${i}.${e}`, true]));
    plans.set(`shop/${name}`, planService(service(name, `10.96.1.${i}`), [slice(name, endpoints)], node));
  }
  return plans;
}

function table(plans: Map<string, ServicePlan>): ServiceTable {
  return gatherTable(plans).table;
}

const allReady = { '10.244.7.1': true, '10.244.7.2': true, '10.244.7.3': true };

describe('service table', () => {
  test('one endpoint turning not ready rewrites its Service’s chain, nothing else', () => {
    const before = table(cluster(allReady));
    const after = table(cluster({ ...allReady, '10.244.7.2': false }));
    const script = changeScript(before, after);
    const lines = script.trim().split('\n');
    const svc = [...after.chains.keys()].find((n) => n.endsWith('shop/web-7/tcp/80'))!;
    assert.deepEqual(lines, [
      `flush chain inet skiff ${svc}`,
      ...after.chains.get(svc)!.map((r) => `add rule inet skiff ${svc} ${r}`),
    ]);
    assert.deepEqual(lines.slice(-2), [
      `add rule inet skiff ${svc} numgen random mod 2 == 0 meta l4proto tcp dnat ip to 10.244.7.1:8080`,
      `add rule inet skiff ${svc} meta l4proto tcp dnat ip to 10.244.7.3:8080`,
    ]);
    assert.ok(script.length < 1000, `a small script (${script.length} bytes)`);
    assert.equal(changeScript(before, table(cluster(allReady))), '', 'nothing changed, nothing written');
  });

  test('a Service losing its last endpoint swaps its map element for a reject', () => {
    const before = table(cluster(allReady));
    const after = table(cluster({}));
    const lines = changeScript(before, after).trim().split('\n');
    const svc = [...before.chains.keys()].find((n) => n.endsWith('shop/web-7/tcp/80'))!;
    assert.equal(lines[0], 'delete element inet skiff service-ips { 10.96.1.7 . tcp . 80 }');
    assert.ok(
      lines.includes(
        'add element inet skiff no-endpoint-services { 10.96.1.7 . tcp . 80 : goto service-reject }',
      ),
    );
    // elements go before their chains: no element ever names a deleted chain
    const deleted = lines.indexOf(`delete chain inet skiff ${svc}`);
    assert.ok(deleted > lines.indexOf(`flush chain inet skiff ${svc}`));
    assert.equal(lines.filter((l) => l.startsWith('delete chain')).length, 1);
  });

  test('a full script declares, flushes and fills everything, and deletes what only the old table had', () => {
    const before = table(cluster(allReady));
    const after = table(cluster({}));
    const script = fullScript(before, after);
    const lines = script.trim().split('\n');
    assert.deepEqual(lines.slice(0, 4), [
      'flush map inet skiff service-ips',
      'flush map inet skiff service-nodeports',
      'flush map inet skiff no-endpoint-services',
      'flush map inet skiff no-endpoint-nodeports',
    ]);
    for (const name of after.chains.keys()) {
      assert.ok(lines.includes(`add chain inet skiff ${name}`));
      assert.ok(lines.includes(`flush chain inet skiff ${name}`));
    }
    const gone = [...before.chains.keys()].filter((n) => n.endsWith('/web-7/tcp/80'));
    assert.equal(gone.length, 1);
    for (const name of gone) {
      // declared first, so deleting it works whether the kernel had it or not
      assert.ok(
        lines.indexOf(`add chain inet skiff ${name}`) < lines.indexOf(`delete chain inet skiff ${name}`),
      );
    }
    const elements = lines.filter((l) => l.startsWith('add element inet skiff service-ips'));
    assert.equal(elements.length, 1, 'one statement for the map');
    assert.equal(elements[0]!.split(' : ').length - 1, 99, 'web-7 has no endpoint: rejected instead');
    assert.ok(fullScript(EMPTY_TABLE, EMPTY_TABLE).startsWith('flush map'));
  });

  test('affinity sets come and go with their endpoints; a new timeout is a new set', () => {
    const withAffinity = (timeoutSeconds: number, ips: Record<string, boolean>) => {
      const svc = service('sticky', '10.96.2.1');
      svc.spec.sessionAffinity = 'ClientIP';
      svc.spec.sessionAffinityConfig = { clientIP: { timeoutSeconds } };
      return table(new Map([['shop/sticky', planService(svc, [slice('sticky', ips)], node)]]));
    };
    const a = withAffinity(60, { '10.244.1.2': true });
    const b = withAffinity(60, { '10.244.1.2': true, '10.244.1.3': true });
    const c = withAffinity(90, { '10.244.1.2': true, '10.244.1.3': true });
    const ab = changeScript(a, b).trim().split('\n');
    assert.match(
      ab[0]!,
      /^add set inet skiff aff-\S+-10\.244\.1\.3-8080-60 \{ type ipv4_addr; flags dynamic,timeout; timeout 60s; \}$/,
    );
    const bc = changeScript(b, c).trim().split('\n');
    assert.equal(bc.filter((l) => l.startsWith('add set')).length, 2);
    assert.deepEqual(
      bc.filter((l) => l.startsWith('delete set')).map((l) => l.replace(/aff-\S+?-(10\S+)/, '$1')),
      ['delete set inet skiff 10.244.1.2-8080-60', 'delete set inet skiff 10.244.1.3-8080-60'],
    );
    // the sets are deleted after every chain naming them was rewritten or deleted
    assert.ok(
      bc.indexOf(bc.find((l) => l.startsWith('delete set'))!) >
        bc.findLastIndex((l) => l.startsWith('add rule')),
    );
  });

  test('two Services claiming one address: the first keeps it, the conflict is told', () => {
    const plans = new Map([
      ['shop/a', planService(service('a', '10.96.3.1', 30080), [slice('a', { '10.244.1.2': true })], node)],
      ['shop/b', planService(service('b', '10.96.3.1', 30080), [slice('b', { '10.244.1.3': true })], node)],
    ]);
    const { table: t, conflicts } = gatherTable(plans);
    assert.match(t.elements.get('service-ips')!.get('10.96.3.1 . tcp . 80')!, /shop\/a\//);
    assert.equal(conflicts.length, 2);
    assert.match(conflicts[0]!, /held by Service shop\/a, not given to shop\/b/);
  });

  test('an externalIP naming another Service’s ClusterIP neither takes it nor rejects it', () => {
    const victim = planService(service('web', '10.96.3.1'), [slice('web', { '10.244.1.2': true })], node);
    const key = '10.96.3.1 . tcp . 80';
    const attacker = (endpoints: Record<string, boolean>) =>
      planService(
        {
          ...service('aaa', '10.96.3.9'),
          spec: { ...service('aaa', '10.96.3.9').spec, externalIPs: ['10.96.3.1'] },
        },
        [slice('aaa', endpoints)],
        node,
      );
    // 'shop/aaa' sorts before 'shop/web': first in Service order must not be enough
    for (const [what, plan] of [
      ['with endpoints of its own (hijack)', attacker({ '10.244.9.9': true })],
      ['without endpoints (its no-endpoint reject)', attacker({})],
    ] as const) {
      const { table: t, conflicts } = gatherTable(
        new Map([
          ['shop/aaa', plan],
          ['shop/web', victim],
        ]),
      );
      assert.match(t.elements.get('service-ips')!.get(key)!, /shop\/web\//, what);
      assert.equal(t.elements.get('no-endpoint-services')!.get(key), undefined, what);
      assert.match(conflicts.join('\n'), /held by Service shop\/web, not given to shop\/aaa/, what);
    }
  });
});
