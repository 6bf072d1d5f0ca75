import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Answer } from 'dns-packet';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { ClusterRecords, reverseName, serviceRecords, CLUSTER_TTL } from './cluster-records.js';

const zone = { domain: 'cluster.local', dnsAddress: '10.96.0.10' };

function service(name: string, spec: Service['spec'], namespace = 'shop'): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec } as Service;
}

function slice(
  name: string,
  endpoints: EndpointSlice['endpoints'],
  ports: EndpointSlice['ports'] = [],
): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': name.split('-')[0]! } },
    addressType: 'IPv4',
    endpoints,
    ports,
  };
}

function indexOf(...entries: [Service, EndpointSlice[]][]): ClusterRecords {
  const records = new ClusterRecords(zone);
  for (const [svc, slices] of entries)
    records.setService(
      `${svc.metadata.namespace}/${svc.metadata.name}`,
      serviceRecords(svc, slices, zone.domain),
    );
  return records;
}

const data = (answers: Answer[]): unknown[] => answers.map((a) => ('data' in a ? a.data : undefined));

const web = service('web', {
  clusterIP: '10.96.0.20',
  clusterIPs: ['10.96.0.20'],
  ports: [
    { name: 'http', port: 80, protocol: 'TCP' },
    { port: 9090, protocol: 'TCP' },
  ],
});
const db = service('db', { clusterIP: 'None', ports: [{ name: 'pg', port: 5432 }] });
const dbSlice = slice(
  'db-abc',
  [
    { addresses: ['10.244.1.5'], hostname: 'db-0', conditions: { ready: true } },
    { addresses: ['10.244.2.7'], conditions: { ready: true } },
    { addresses: ['10.244.3.9'], hostname: 'db-2', conditions: { ready: false } },
  ],
  [{ name: 'pg', port: 5432, protocol: 'TCP' }],
);

test('a ClusterIP service: A of its address, case-insensitive, with the name as asked and TTL 5', () => {
  const records = indexOf([web, []]);
  const found = records.lookup('Web.Shop.svc.Cluster.Local.', 'A')!;
  assert.equal(found.rcode, 'NOERROR');
  assert.deepEqual(found.answers, [
    { type: 'A', name: 'Web.Shop.svc.Cluster.Local', ttl: CLUSTER_TTL, class: 'IN', data: '10.96.0.20' },
  ]);
});

test('SRV for named ports only, pointing at the service name with its address as additional', () => {
  const records = indexOf([web, []]);
  const srv = records.lookup('_http._tcp.web.shop.svc.cluster.local', 'SRV')!;
  assert.deepEqual(data(srv.answers), [
    { priority: 0, weight: 100, port: 80, target: 'web.shop.svc.cluster.local' },
  ]);
  assert.deepEqual(data(srv.additionals), ['10.96.0.20']);
  // the unnamed port has none; _tcp above the SRV name exists (NODATA)
  assert.equal(records.lookup('_9090._tcp.web.shop.svc.cluster.local', 'SRV')!.rcode, 'NXDOMAIN');
  const ent = records.lookup('_tcp.web.shop.svc.cluster.local', 'A')!;
  assert.equal(ent.rcode, 'NOERROR');
  assert.deepEqual(ent.answers, []);
  assert.equal(ent.authorities[0]!.type, 'SOA');
});

test('NODATA for a type a name lacks, NXDOMAIN for a name that does not exist, both with the SOA', () => {
  const records = indexOf([web, []]);
  const aaaa = records.lookup('web.shop.svc.cluster.local', 'AAAA')!;
  assert.equal(aaaa.rcode, 'NOERROR');
  assert.deepEqual(aaaa.answers, []);
  assert.equal(aaaa.authorities[0]!.type, 'SOA');
  const missing = records.lookup('nope.shop.svc.cluster.local', 'A')!;
  assert.equal(missing.rcode, 'NXDOMAIN');
  assert.equal(missing.authorities[0]!.type, 'SOA');
  // names above a service exist
  for (const name of ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'])
    assert.equal(records.lookup(name, 'A')!.rcode, 'NOERROR', name);
  assert.equal(records.lookup('other.svc.cluster.local', 'A')!.rcode, 'NXDOMAIN');
});

test('headless: the ready endpoints, each by hostname (or dashed address), SRV per endpoint, PTR', () => {
  const records = indexOf([db, [dbSlice]]);
  assert.deepEqual(data(records.lookup('db.shop.svc.cluster.local', 'A')!.answers).sort(), [
    '10.244.1.5',
    '10.244.2.7',
  ]);
  assert.deepEqual(data(records.lookup('db-0.db.shop.svc.cluster.local', 'A')!.answers), ['10.244.1.5']);
  assert.deepEqual(data(records.lookup('10-244-2-7.db.shop.svc.cluster.local', 'A')!.answers), [
    '10.244.2.7',
  ]);
  // not ready: no record at all
  assert.equal(records.lookup('db-2.db.shop.svc.cluster.local', 'A')!.rcode, 'NXDOMAIN');
  const srv = records.lookup('_pg._tcp.db.shop.svc.cluster.local', 'SRV')!;
  assert.deepEqual(
    data(srv.answers)
      .map((d) => (d as { target: string }).target)
      .sort(),
    ['10-244-2-7.db.shop.svc.cluster.local', 'db-0.db.shop.svc.cluster.local'],
  );
  assert.deepEqual(
    data(srv.answers).map(
      (d) => (d as { weight: number; port: number }).weight + '/' + (d as { port: number }).port,
    ),
    ['50/5432', '50/5432'],
  );
  assert.equal(srv.additionals.length, 2);
  assert.deepEqual(data(records.lookup(reverseName('10.244.1.5'), 'PTR')!.answers), [
    'db-0.db.shop.svc.cluster.local',
  ]);
});

test('publishNotReadyAddresses publishes every endpoint', () => {
  const all = service('db', { clusterIP: 'None', publishNotReadyAddresses: true });
  const records = indexOf([all, [dbSlice]]);
  assert.equal(records.lookup('db.shop.svc.cluster.local', 'A')!.answers.length, 3);
  assert.deepEqual(data(records.lookup('db-2.db.shop.svc.cluster.local', 'A')!.answers), ['10.244.3.9']);
});

test('ExternalName: a CNAME, and the target handed back to be resolved', () => {
  const ext = service('search', { type: 'ExternalName', externalName: 'Example.COM.' });
  const records = indexOf([ext, []]);
  const found = records.lookup('search.shop.svc.cluster.local', 'A')!;
  assert.deepEqual(data(found.answers), ['example.com']);
  assert.equal(found.answers[0]!.type, 'CNAME');
  assert.equal(found.cname, 'example.com');
  assert.equal(records.lookup('search.shop.svc.cluster.local', 'CNAME')!.cname, undefined);
});

test('PTR for a ClusterIP; a reverse name with no record here is forwarded (undefined)', () => {
  const records = indexOf([web, []]);
  const ptr = records.lookup('20.0.96.10.in-addr.arpa.', 'PTR')!;
  assert.deepEqual(data(ptr.answers), ['web.shop.svc.cluster.local']);
  assert.equal(records.lookup('1.0.0.127.in-addr.arpa', 'PTR'), undefined);
  assert.equal(reverseName('fd00::1'), `1.${'0.'.repeat(28)}0.d.f.ip6.arpa`);
});

test('pod names spell their address in any namespace; other names forwarded', () => {
  const records = indexOf();
  assert.deepEqual(data(records.lookup('10-244-1-5.default.pod.cluster.local', 'A')!.answers), [
    '10.244.1.5',
  ]);
  assert.equal(records.lookup('10-244-1-500.default.pod.cluster.local', 'A')!.rcode, 'NXDOMAIN');
  assert.equal(records.lookup('10-244-1-5.default.pod.cluster.local', 'AAAA')!.answers.length, 0);
  assert.equal(records.lookup('example.com', 'A'), undefined);
  assert.equal(records.lookup('notcluster.local', 'A'), undefined);
});

test('the zone: SOA and NS at the apex, the schema version, ns.dns', () => {
  const records = indexOf();
  const soa = records.lookup('cluster.local', 'SOA')!;
  assert.equal(soa.answers[0]!.type, 'SOA');
  assert.deepEqual(data(records.lookup('cluster.local', 'NS')!.answers), ['ns.dns.cluster.local']);
  assert.deepEqual(data(records.lookup('ns.dns.cluster.local', 'A')!.answers), ['10.96.0.10']);
  assert.deepEqual(data(records.lookup('dns-version.cluster.local', 'TXT')!.answers), ['1.1.0']);
});

test('replacing and removing a service leaves no trace of its old records', () => {
  const records = indexOf([web, []]);
  const before = records.generation;
  const moved = service('web', { clusterIP: '10.96.0.21', ports: [{ name: 'https', port: 443 }] });
  records.setService('shop/web', serviceRecords(moved, [], zone.domain));
  assert.ok(records.generation > before);
  assert.deepEqual(data(records.lookup('web.shop.svc.cluster.local', 'A')!.answers), ['10.96.0.21']);
  assert.equal(records.lookup('_http._tcp.web.shop.svc.cluster.local', 'SRV')!.rcode, 'NXDOMAIN');
  assert.equal(records.lookup('20.0.96.10.in-addr.arpa', 'PTR'), undefined);
  records.setService('shop/web', undefined);
  assert.equal(records.lookup('web.shop.svc.cluster.local', 'A')!.rcode, 'NXDOMAIN');
  assert.equal(records.lookup('shop.svc.cluster.local', 'A')!.rcode, 'NXDOMAIN');
  assert.equal(records.lookup('svc.cluster.local', 'A')!.rcode, 'NXDOMAIN');
});

test('a service without an allocated ClusterIP has no records yet', () => {
  assert.equal(serviceRecords(service('new', { ports: [{ port: 80 }] }), [], zone.domain).size, 0);
});
