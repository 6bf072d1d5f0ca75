/** The handler's kept replies against a client that asks one large answer in many spellings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { ClusterRecords, serviceRecords } from './cluster-records.js';
import { QueryHandler } from './query-handler.js';

test('one large answer asked in 2,000 letter-case spellings keeps at most 16 MiB of replies', async () => {
  const zone = { domain: 'cluster.local', dnsAddress: '10.96.0.10' };
  const records = new ClusterRecords(zone);
  const service: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'many', namespace: 'shop' },
    spec: { clusterIP: 'None' },
  };
  const slice: EndpointSlice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'many-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'many' } },
    addressType: 'IPv4',
    endpoints: Array.from({ length: 1000 }, (_, i) => ({
      addresses: [`10.244.${Math.floor(i / 250)}.${(i % 250) + 1}`],
      conditions: { ready: true },
    })),
  };
  records.setService('shop/many', serviceRecords(service, [slice], zone.domain));
  const handler = new QueryHandler({ records, forward: () => Promise.reject(new Error('not asked')) });
  const name = 'many.shop.svc.cluster.local';
  let largest = 0;
  for (let variant = 0; variant < 2000; variant++) {
    const spelled = [...name].map((c, i) => (i < 11 && (variant >> i) & 1 ? c.toUpperCase() : c)).join('');
    const query = dnsPacket.encode({ type: 'query', id: variant, questions: [{ type: 'A', name: spelled }] });
    const reply = await handler.answer(query, 'tcp');
    assert.ok(reply !== undefined);
    largest = Math.max(largest, reply.length);
  }
  assert.ok(largest > 30_000, `a large answer: ${largest} bytes`);
  assert.ok(handler.repliesBytes <= 16 << 20, `${(handler.repliesBytes / 2 ** 20).toFixed(0)} MiB kept`);
});
