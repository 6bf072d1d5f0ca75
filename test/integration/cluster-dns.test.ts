/**
 * Cluster DNS against a real control plane (etcd, NATS, the API): Services and EndpointSlices
 * created, changed and deleted through the API reach the node's DNS answers through the node's
 * informers within a second, as `dig` (bind9-dnsutils) sees them. The server listens on loopback
 * (the agent puts it on its bridge gateway), here and in a network namespace the test makes (as
 * under `skiff up`); its upstream is a resolver this test runs on loopback, so nothing is ever
 * sent to a real one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { serviceInformers, type ServiceInformers } from '../../node-agent/agent/service-informers.js';
import { LoopbackUpstream, dig as digAt } from '../../node-agent/dns/loopback-peers.js';
import { startNodeDns, type NodeDns } from '../../node-agent/dns/node-dns.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';
import { until } from '../harness/until.js';

const log = pino({ level: 'silent' });
const run = promisify(execFile);

describe('cluster DNS fed by a real control plane', { timeout: 120_000 }, () => {
  let cluster: TestControlPlane | undefined;
  let api: ApiClient | undefined;
  let informers: ServiceInformers | undefined;
  let dns: NodeDns | undefined;
  let upstream: LoopbackUpstream | undefined;

  before(async () => {
    cluster = await launchTestControlPlane('cluster-dns');
    api = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
    upstream = await LoopbackUpstream.start({ 'example.test': { A: [{ data: '192.0.2.10', ttl: 60 }] } });
    informers = serviceInformers(api, log);
    informers.services.start();
    informers.endpointSlices.start();
    dns = await startNodeDns({
      informers,
      address: '127.0.0.1',
      port: 0,
      zone: { domain: 'cluster.local', dnsAddress: '10.96.0.10' },
      upstreams: [upstream.address],
      log,
    });
  });

  after(async () => {
    await dns?.stop();
    await informers?.services.stop();
    await informers?.endpointSlices.stop();
    await upstream?.close();
    api?.close();
    await cluster?.dispose();
  });

  const dig = (...args: string[]) => digAt(dns!.server.port, ...args);
  const short = async (name: string, type = 'A') =>
    (await dig('+short', name, type)).trim().split('\n').filter(Boolean).sort();

  /** Milliseconds until dig's short answer is `want` (fails after 5 s). */
  async function within(name: string, want: string[], type = 'A'): Promise<number> {
    const start = Date.now();
    for (;;) {
      const got = await short(name, type);
      if (JSON.stringify(got) === JSON.stringify([...want].sort())) return Date.now() - start;
      if (Date.now() - start > 5000)
        assert.fail(`${name} ${type}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  test('the control plane made kube-system/kube-dns at the cluster DNS address, and it resolves', async () => {
    const kubeDns = await api!.get('Service', 'kube-system', 'kube-dns');
    assert.equal(kubeDns.spec.clusterIP, '10.96.0.10');
    await within('kube-dns.kube-system.svc.cluster.local', ['10.96.0.10']);
  });

  test('a Service created through the API answers within a second: A, SRV, PTR', async (t) => {
    const created = await api!.create<Service>({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    } as Service);
    const ip = created.spec.clusterIP!;
    const ms = await within('web.default.svc.cluster.local', [ip]);
    t.diagnostic(`created → answered: ${ms} ms`);
    assert.ok(ms < 1000, `answered after ${ms} ms`);
    assert.deepEqual(await short('_http._tcp.web.default.svc.cluster.local', 'SRV'), [
      '0 100 80 web.default.svc.cluster.local.',
    ]);
    assert.equal((await dig('+short', '-x', ip)).trim(), 'web.default.svc.cluster.local.');
    // deleted: NXDOMAIN within a second
    await api!.delete('Service', 'default', 'web');
    const start = Date.now();
    for (;;) {
      if (/status: NXDOMAIN/.test(await dig('web.default.svc.cluster.local', 'A'))) {
        t.diagnostic(`deleted → NXDOMAIN: ${Date.now() - start} ms`);
        break;
      }
      assert.ok(Date.now() - start < 1000, 'still answered a second after the delete');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  test('a headless Service follows its EndpointSlice: ready endpoints only, changes within a second', async (t) => {
    await api!.create<Service>({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'db', namespace: 'default' },
      spec: { clusterIP: 'None', ports: [{ name: 'pg', port: 5432 }] },
    } as Service);
    const slice = await api!.create<EndpointSlice>({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'db-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'db' } },
      addressType: 'IPv4',
      endpoints: [
        { addresses: ['10.244.1.5'], hostname: 'db-0', conditions: { ready: true } },
        { addresses: ['10.244.2.6'], hostname: 'db-1', conditions: { ready: true } },
      ],
      ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }],
    });
    assert.ok((await within('db.default.svc.cluster.local', ['10.244.1.5', '10.244.2.6'])) < 1000);
    assert.deepEqual(await short('db-1.db.default.svc.cluster.local'), ['10.244.2.6']);
    assert.deepEqual(await short('_pg._tcp.db.default.svc.cluster.local', 'SRV'), [
      '0 50 5432 db-0.db.default.svc.cluster.local.',
      '0 50 5432 db-1.db.default.svc.cluster.local.',
    ]);
    // one endpoint stops being ready: gone from the answers within a second
    await api!.update<EndpointSlice>({
      ...slice,
      endpoints: [slice.endpoints![0]!, { ...slice.endpoints![1]!, conditions: { ready: false } }],
    });
    const ms = await within('db.default.svc.cluster.local', ['10.244.1.5']);
    t.diagnostic(`endpoint not ready → out of the answer: ${ms} ms`);
    assert.ok(ms < 1000, `changed after ${ms} ms`);
    assert.match(await dig('db-1.db.default.svc.cluster.local', 'A'), /status: NXDOMAIN/);
  });

  test("in a node's network namespace (--host-netns): bound there, served from this process", async () => {
    const name = `skiff-dnstest-${process.pid}`;
    await run('ip', ['netns', 'add', name]);
    let inNetns: NodeDns | undefined;
    try {
      await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
      inNetns = await startNodeDns({
        informers: informers!,
        address: '127.0.0.1',
        port: 0,
        netnsPath: `/run/netns/${name}`,
        zone: { domain: 'cluster.local', dnsAddress: '10.96.0.10' },
        upstreams: [upstream!.address],
        log,
      });
      const port = String(inNetns.server.port);
      const inside = async (...args: string[]) =>
        (
          await run('ip', [
            'netns',
            'exec',
            name,
            'dig',
            '@127.0.0.1',
            '-p',
            port,
            '+time=1',
            '+tries=1',
            '+short',
            ...args,
          ])
        ).stdout.trim();
      await until('kube-dns answered inside the namespace', async () =>
        (await inside('kube-dns.kube-system.svc.cluster.local')) === '10.96.0.10' ? true : undefined,
      );
      assert.equal(await inside('+tcp', 'kube-dns.kube-system.svc.cluster.local'), '10.96.0.10');
      // not in this process's namespace: the sockets are the namespace's
      const outside = await digAt(
        inNetns.server.port,
        '+short',
        'kube-dns.kube-system.svc.cluster.local',
      ).catch((err: { stdout?: string }) => err.stdout ?? '');
      assert.doesNotMatch(outside, /10\.96\.0\.10/);
    } finally {
      await inNetns?.stop();
      await run('ip', ['netns', 'del', name]);
    }
  });

  test('other names are forwarded to the upstream', async () => {
    assert.deepEqual(await short('example.test'), ['192.0.2.10']);
  });
});
