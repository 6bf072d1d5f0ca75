import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import type { Service } from '../../proto/gen/types.js';
import { componentLogger } from '../../proto/support/logger.js';
import { encodeObject } from '../../proto/objects.js';
import { MemoryStore } from '../store/memory-store.js';
import type { Write } from '../store/store.js';
import { ApiHandlers } from './handlers.js';

const log = componentLogger('service-allocation-test');

/** A /29: six addresses (10.96.0.1-6); three node ports (unless told otherwise). */
async function setUp(
  store: MemoryStore = new MemoryStore(),
  ranges: { serviceCIDR: string; nodePortRange: { min: number; max: number } } = {
    serviceCIDR: '10.96.0.0/29',
    nodePortRange: { min: 30000, max: 30002 },
  },
) {
  const handlers = new ApiHandlers({ store, log, ...ranges });
  await handlers.ensureSystemObjects();
  const create = async (name: string, spec: Partial<Service['spec']> = {}) =>
    (
      await handlers.create({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: 'default' },
        spec: { selector: { app: name }, ports: [{ port: 80 }], ...spec },
      } as Service)
    ).object as Service;
  const get = async (name: string) => (await handlers.get('Service', 'default', name)).object as Service;
  return { store, handlers, create, get };
}

const refusedOn = (field: string, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof InvalidArgumentError, String(err));
  assert.equal(err.field, field);
  assert.match(err.message, message);
  return true;
};

describe('Service ClusterIPs and node ports', () => {
  test('a Service gets a free ClusterIP of the range, a NodePort Service a node port; given ones are checked', async () => {
    const { create, get, handlers } = await setUp();
    const web = await create('web', { type: 'NodePort' });
    assert.match(web.spec.clusterIP ?? '', /^10\.96\.0\.[1-6]$/);
    assert.deepEqual(web.spec.clusterIPs, [web.spec.clusterIP]);
    const nodePort = web.spec.ports![0]!.nodePort!;
    assert.ok(nodePort >= 30000 && nodePort <= 30002, String(nodePort));

    await assert.rejects(
      create('copy', { clusterIP: web.spec.clusterIP! }),
      refusedOn('spec.clusterIP', /provided IP is already allocated \(to Service default\/web\)/),
    );
    await assert.rejects(
      create('outside', { clusterIP: '10.97.0.1' }),
      refusedOn('spec.clusterIP', /not in the valid range\. The range of valid IPs is 10\.96\.0\.0\/29/),
    );
    await assert.rejects(
      create('broadcast', { clusterIP: '10.96.0.7' }),
      refusedOn('spec.clusterIP', /not in the valid range/),
    );
    await assert.rejects(
      create('port-taken', { type: 'NodePort', ports: [{ port: 80, nodePort }] }),
      refusedOn('spec.ports[0].nodePort', /provided port is already allocated \(to Service default\/web\)/),
    );
    await assert.rejects(
      create('port-outside', { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] }),
      refusedOn('spec.ports[0].nodePort', /The range of valid ports is 30000-30002/),
    );
    for (const name of ['copy', 'outside', 'broadcast', 'port-taken', 'port-outside'])
      await assert.rejects(handlers.get('Service', 'default', name), NotFoundError, `${name} was not stored`);

    const free = ['10.96.0.5', '10.96.0.6'].find((ip) => ip !== web.spec.clusterIP)!;
    const chosen = await create('chosen', { clusterIP: free, ports: [{ port: 53, protocol: 'UDP' }] });
    assert.equal(chosen.spec.clusterIP, free);
    const headless = await create('headless', { clusterIP: 'None' });
    assert.equal(headless.spec.clusterIP, 'None');
    const alias = await create('alias', { type: 'ExternalName', externalName: 'db.example.com', ports: [] });
    assert.equal(alias.spec.clusterIP, undefined);
    assert.equal((await get('web')).spec.clusterIP, web.spec.clusterIP);
  });

  test('when every address or port is held the create says so; a deleted Service frees what it held', async () => {
    const { create, handlers } = await setUp();
    const made: Service[] = [];
    for (let i = 0; i < 6; i++) made.push(await create(`s${i}`));
    assert.equal(new Set(made.map((s) => s.spec.clusterIP)).size, 6, 'six different addresses');
    await assert.rejects(create('seventh'), (err: unknown) => {
      assert.ok(err instanceof FailedPreconditionError, String(err));
      assert.match(err.message, /every address of the service CIDR 10\.96\.0\.0\/29 is allocated/);
      return true;
    });
    await handlers.delete('Service', 'default', 's3');
    const again = await create('again', { clusterIP: made[3]!.spec.clusterIP! });
    assert.equal(again.spec.clusterIP, made[3]!.spec.clusterIP);
  });

  test('an update that leaves them out keeps them; a type change takes or releases node ports', async () => {
    const { create, get, handlers } = await setUp();
    const web = await create('web', { type: 'NodePort' });
    const port = web.spec.ports![0]!.nodePort!;
    const { clusterIP: _ip, clusterIPs: _ips, ...rest } = web.spec;
    await handlers.update({
      ...web,
      spec: { ...rest, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] },
    } as Service);
    let now = await get('web');
    assert.equal(now.spec.clusterIP, web.spec.clusterIP, 'the ClusterIP stays');
    assert.equal(now.spec.ports![0]!.nodePort, port, 'the node port stays');
    assert.equal(now.spec.ports![0]!.targetPort, 8080);

    await handlers.update({ ...now, spec: { ...now.spec, type: 'ClusterIP' } } as Service);
    now = await get('web');
    assert.equal(now.spec.ports![0]!.nodePort, undefined, 'a ClusterIP Service holds no node port');
    const other = await create('other', { type: 'NodePort', ports: [{ port: 80, nodePort: port }] });
    assert.equal(other.spec.ports![0]!.nodePort, port, 'the released port is free again');

    await handlers.update({ ...now, spec: { ...now.spec, type: 'NodePort' } } as Service);
    now = await get('web');
    const moved = ['10.96.0.5', '10.96.0.6'].find((ip) => ip !== now.spec.clusterIP)!;
    assert.ok(now.spec.ports![0]!.nodePort, 'back to NodePort: a port allocated again');
    assert.notEqual(now.spec.ports![0]!.nodePort, port);
    await assert.rejects(
      handlers.update({
        ...now,
        spec: { ...now.spec, clusterIP: moved, clusterIPs: [moved] },
      } as Service),
      refusedOn('spec.clusterIP', /field is immutable/),
    );
  });

  test('two creates racing for one address: one gets it, the other is refused and nothing is half-written', async () => {
    const { create, store } = await setUp();
    const results = await Promise.allSettled([
      create('a', { clusterIP: '10.96.0.2' }),
      create('b', { clusterIP: '10.96.0.2' }),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.ok(refused.reason instanceof InvalidArgumentError, String(refused.reason));
    const services = (await store.list('services')).items.map((i) => i.key.name);
    assert.equal(services.length, 1 + 0, `one Service stored: ${services.join()}`);
  });

  test('Services stored before reservations existed get theirs at start-up, so nobody is handed their values', async () => {
    const { store, handlers, create } = await setUp();
    await store.create(
      { resource: 'services', namespace: 'default', name: 'legacy' },
      encodeObject({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: {
          name: 'legacy',
          namespace: 'default',
          uid: 'legacy-uid',
          creationTimestamp: '2026-01-01T00:00:00Z',
        },
        spec: {
          type: 'NodePort',
          clusterIP: '10.96.0.3',
          clusterIPs: ['10.96.0.3'],
          ports: [{ port: 80, nodePort: 30001 }],
        },
      } as Service),
    );
    await handlers.ensureSystemObjects(); // what a control plane does when it starts
    await assert.rejects(
      create('newcomer', { clusterIP: '10.96.0.3' }),
      refusedOn('spec.clusterIP', /already allocated \(to Service default\/legacy\)/),
    );
    await assert.rejects(
      create('porter', { type: 'NodePort', ports: [{ port: 80, nodePort: 30001 }] }),
      refusedOn('spec.ports[0].nodePort', /already allocated/),
    );
    await handlers.delete('Service', 'default', 'legacy');
    assert.equal((await create('newcomer', { clusterIP: '10.96.0.3' })).spec.clusterIP, '10.96.0.3');
  });

  test('a create that loses its allocated address to a racing writer allocates again; an update is not refused over what it holds itself', async () => {
    /** Takes the address or port the next transaction is about to reserve, as another control plane would. */
    class RacingStore extends MemoryStore {
      armed: string | undefined;
      override async transact(writes: Write[]) {
        const resource = this.armed;
        this.armed = undefined;
        for (const w of writes)
          if (w.type === 'create' && w.key.resource === resource)
            await super.create(
              w.key,
              new TextEncoder().encode(
                JSON.stringify({ namespace: 'default', name: 'racer', uid: 'u-racer' }),
              ),
            );
        return super.transact(writes);
      }
    }
    const store = new RacingStore();
    const { create, handlers } = await setUp(store, {
      serviceCIDR: '10.96.0.0/24',
      nodePortRange: { min: 30000, max: 32767 },
    });
    store.armed = 'serviceipallocations';
    const web = await create('web');
    assert.match(web.spec.clusterIP ?? '', /^10\.96\.0\.\d+$/, 'allocated again after losing the first');
    store.armed = 'servicenodeportallocations';
    // unpinned (no resourceVersion), as apply and scale write: a lost race is retried inside
    const { resourceVersion: _rv, ...metadata } = web.metadata;
    await handlers.update({ ...web, metadata, spec: { ...web.spec, type: 'NodePort' } } as Service);
    const now = (await handlers.get('Service', 'default', 'web')).object as Service;
    assert.ok(now.spec.ports![0]!.nodePort, 'a node port allocated again after losing the first');
    assert.equal(now.spec.clusterIP, web.spec.clusterIP);
  });

  test('Services keep what they hold when the ranges change; a renumbered named port keeps its node port', async () => {
    const store = new MemoryStore();
    const { create } = await setUp(store);
    const web = await create('web', { type: 'NodePort', ports: [{ name: 'http', port: 80 }] });
    const moved = new ApiHandlers({
      store,
      log,
      serviceCIDR: '10.100.0.0/24',
      nodePortRange: { min: 31000, max: 31999 },
    });
    await moved.update({ ...web, metadata: { ...web.metadata, labels: { team: 'a' } } } as Service);
    const renumbered = (
      await moved.update({
        ...web,
        metadata: { ...web.metadata, resourceVersion: undefined, labels: { team: 'a' } },
        spec: { ...web.spec, ports: [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'TCP' }] },
      } as Service)
    ).object as Service;
    assert.equal(renumbered.spec.clusterIP, web.spec.clusterIP);
    assert.equal(renumbered.spec.ports![0]!.nodePort, web.spec.ports![0]!.nodePort);
  });

  test('port lists: one node port for TCP and UDP is held once; duplicates, too many ports, clusterIPs alone and ExternalName addresses', async () => {
    const { create } = await setUp(new MemoryStore(), {
      serviceCIDR: '10.96.0.0/24',
      nodePortRange: { min: 30000, max: 32767 },
    });
    const dns = await create('dns', {
      type: 'NodePort',
      ports: [
        { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30053 },
        { name: 'dns-udp', port: 53, protocol: 'UDP', nodePort: 30053 },
      ],
    });
    assert.deepEqual(
      dns.spec.ports!.map((p) => p.nodePort),
      [30053, 30053],
    );
    await assert.rejects(
      create('twice', {
        type: 'NodePort',
        ports: [
          { name: 'a', port: 80, nodePort: 30080 },
          { name: 'b', port: 81, nodePort: 30080 },
        ],
      }),
      refusedOn('spec.ports[1].nodePort', /Duplicate value: 30080/),
    );
    await assert.rejects(
      create('many', {
        type: 'NodePort',
        ports: Array.from({ length: 127 }, (_, i) => ({ name: `p${i}`, port: 1000 + i })),
      }),
      refusedOn('spec.ports', /at most 100 ports/),
    );
    assert.equal((await create('listed', { clusterIPs: ['10.96.0.77'] })).spec.clusterIP, '10.96.0.77');
    await assert.rejects(
      create('alias', {
        type: 'ExternalName',
        externalName: 'db.example.com',
        clusterIP: '10.96.0.9',
        ports: [],
      }),
      refusedOn('spec.clusterIP', /may not be set for type ExternalName/),
    );
  });

  test('the repair pass releases keys no Service holds any more and gives Services the keys they lack', async () => {
    const { store, handlers, create } = await setUp();
    const web = await create('web', { clusterIP: '10.96.0.2' });
    // left behind by a control plane of an older version: a key whose Service is gone
    await store.create(
      { resource: 'serviceipallocations', name: '10.96.0.4' },
      new TextEncoder().encode(JSON.stringify({ namespace: 'default', name: 'gone', uid: 'gone-uid' })),
    );
    // and a Service stored without its key
    await store.delete({ resource: 'serviceipallocations', name: '10.96.0.2' });
    const released = await handlers.repairReservations();
    assert.deepEqual(released, ['serviceIPs 10.96.0.4 (held for default/gone)']);
    assert.equal((await create('heir', { clusterIP: '10.96.0.4' })).spec.clusterIP, '10.96.0.4');
    await assert.rejects(
      create('thief', { clusterIP: web.spec.clusterIP! }),
      refusedOn('spec.clusterIP', /already allocated \(to Service default\/web\)/),
    );
    assert.deepEqual(await handlers.repairReservations(), [], 'nothing more to repair');
  });

  test('a LoadBalancer with externalTrafficPolicy Local holds a health check node port, released when the policy changes', async () => {
    const { create, handlers } = await setUp(new MemoryStore(), {
      serviceCIDR: '10.96.0.0/24',
      nodePortRange: { min: 30000, max: 30009 },
    });
    const lb = await create('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local' });
    const health = lb.spec.healthCheckNodePort!;
    assert.ok(health >= 30000 && health <= 30009, String(health));
    assert.notEqual(health, lb.spec.ports![0]!.nodePort);
    await assert.rejects(
      create('copy', { type: 'NodePort', ports: [{ port: 80, nodePort: health }] }),
      refusedOn('spec.ports[0].nodePort', /already allocated \(to Service default\/lb\)/),
    );
    const unused = [30000, 30001, 30002, 30003].find(
      (p) => p !== health && p !== lb.spec.ports![0]!.nodePort,
    )!;
    await assert.rejects(
      create('same', {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        ports: [{ port: 80, nodePort: unused }],
        healthCheckNodePort: unused,
      }),
      refusedOn('spec.healthCheckNodePort', new RegExp(`Duplicate value: ${unused}`)),
    );
    const { resourceVersion: _rv, ...metadata } = lb.metadata;
    const cluster = (
      await handlers.update({
        ...lb,
        metadata,
        spec: { ...lb.spec, externalTrafficPolicy: 'Cluster' },
      } as Service)
    ).object as Service;
    assert.equal(cluster.spec.healthCheckNodePort, undefined);
    assert.equal(
      (await create('heir', { type: 'NodePort', ports: [{ port: 80, nodePort: health }] })).spec.ports![0]!
        .nodePort,
      health,
      'released with the policy',
    );
  });
});

describe('the cluster DNS Service', () => {
  test('ensureSystemObjects makes kube-system/kube-dns at the cluster DNS address, once', async () => {
    const store = new MemoryStore();
    const handlers = new ApiHandlers({ store, log, clusterDNS: '10.96.0.10' });
    await handlers.ensureSystemObjects();
    await handlers.ensureSystemObjects(); // a second control plane, or a restart
    const dns = (await handlers.get('Service', 'kube-system', 'kube-dns')).object as Service;
    assert.equal(dns.spec.clusterIP, '10.96.0.10');
    assert.deepEqual(
      dns.spec.ports?.map((p) => `${p.name} ${p.port}/${p.protocol}`),
      ['dns 53/UDP', 'dns-tcp 53/TCP'],
    );
    assert.equal(dns.spec.selector, undefined, 'no pods back it: every node answers at it');
    // the address is reserved: no other Service gets it
    await assert.rejects(
      handlers.create({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'other', namespace: 'default' },
        spec: { clusterIP: '10.96.0.10', ports: [{ port: 53 }] },
      } as Service),
      refusedOn('spec.clusterIP', /already allocated/),
    );
  });

  test('an address another Service holds already is left to it, with a warning, and start-up goes on', async () => {
    const store = new MemoryStore();
    const first = new ApiHandlers({ store, log });
    await first.ensureSystemObjects();
    await first.create({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'squatter', namespace: 'default' },
      spec: { clusterIP: '10.96.0.10', ports: [{ port: 53 }] },
    } as Service);
    const handlers = new ApiHandlers({ store, log, clusterDNS: '10.96.0.10' });
    await handlers.ensureSystemObjects();
    await assert.rejects(handlers.get('Service', 'kube-system', 'kube-dns'), NotFoundError);
  });
});
