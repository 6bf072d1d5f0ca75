import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointSlice, Endpoints, KubeObjectByKind, Pod, Service } from '../../../proto/gen/types.js';
import type { KindName } from '../../../proto/kinds.js';
import { Informer } from '../../../proto/informer/informer.js';
import { decodeObject } from '../../../proto/objects.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { ApiHandlers } from '../../api/handlers.js';
import { MemoryStore } from '../../store/memory-store.js';
import { storeSource } from '../../store/store-source.js';
import { EndpointSliceController } from './endpointslice-controller.js';

const log = componentLogger('endpointslice-test');

async function setUp() {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  await handlers.ensureSystemObjects();
  const informer = <K extends KindName>(kind: K, resource: string) => {
    const made = new Informer<KubeObjectByKind[K]>({
      source: storeSource({ store, resource, decode: (bytes) => decodeObject(kind, bytes) }),
      logger: log,
    });
    made.start();
    return made;
  };
  const services = informer('Service', 'services');
  const pods = informer('Pod', 'pods');
  const slices = informer('EndpointSlice', 'endpointslices');
  const endpoints = informer('Endpoints', 'endpoints');
  await Promise.all([services, pods, slices, endpoints].map((i) => i.waitForSync()));
  const controller = new EndpointSliceController({
    handlers,
    services,
    pods,
    slices,
    endpoints,
    log,
  });
  controller.start();
  let ip = 10;
  const pod = async (
    name: string,
    options: {
      labels?: Record<string, string>;
      ready?: boolean;
      node?: string;
      ports?: { name: string; containerPort: number }[];
    } = {},
  ) => {
    await handlers.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default', labels: options.labels ?? { app: 'web' } },
      spec: {
        nodeName: options.node ?? 'n1',
        containers: [{ name: 'c', image: 'i', ...(options.ports ? { ports: options.ports } : {}) }],
      },
    } as Pod);
    const n = ip++;
    await setPod(name, options.ready ?? true, `10.244.${Math.floor(n / 250)}.${(n % 250) + 1}`);
  };
  const setPod = async (name: string, ready: boolean, podIP?: string) => {
    const current = (await handlers.get('Pod', 'default', name)).object as Pod;
    await handlers.updateStatus({
      ...current,
      status: {
        phase: 'Running',
        podIP: podIP ?? current.status?.podIP,
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      },
    } as Pod);
  };
  const slicesOf = async (service: string) =>
    (
      await handlers.list('EndpointSlice', {
        namespace: 'default',
        labelSelector: `kubernetes.io/service-name=${service}`,
      })
    ).items.map((i) => i.object as EndpointSlice);
  const endpointsOf = async (service: string) =>
    (await handlers.get('Endpoints', 'default', service)).object as Endpoints;
  const eventually = async (what: string, check: () => Promise<boolean>) => {
    const until = Date.now() + 5000;
    while (!(await check())) {
      if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return {
    handlers,
    store,
    pod,
    setPod,
    slicesOf,
    endpointsOf,
    eventually,
    async stop() {
      await controller.stop();
      await Promise.all([services, pods, slices, endpoints].map((i) => i.stop()));
    },
  };
}

const service = (name: string, spec: Partial<Service['spec']> = {}): Service =>
  ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...spec },
  }) as Service;

const addresses = (slices: EndpointSlice[], condition: 'ready' | 'serving' | 'terminating' = 'ready') =>
  slices
    .flatMap((s) => s.endpoints ?? [])
    .filter((e) => e.conditions?.[condition] === true)
    .map((e) => e.targetRef?.name)
    .sort();

describe('EndpointSliceController', () => {
  test("a Service's slices and Endpoints follow its pods: ready, not ready, terminating, gone", async () => {
    const c = await setUp();
    try {
      await c.pod('web-a');
      await c.pod('web-b', { ready: false });
      await c.pod('other', { labels: { app: 'db' } });
      await c.handlers.create(service('web'));
      await c.eventually('one slice with both pods', async () => {
        const slices = await c.slicesOf('web');
        return slices.length === 1 && (slices[0]!.endpoints ?? []).length === 2;
      });
      let [slice] = await c.slicesOf('web');
      assert.equal(slice!.addressType, 'IPv4');
      assert.deepEqual(
        slice!.ports?.map((p) => `${p.name}:${p.port}/${p.protocol}`),
        ['http:8080/TCP'],
      );
      assert.equal(slice!.metadata.ownerReferences?.[0]?.kind, 'Service');
      assert.deepEqual(addresses([slice!]), ['web-a']);
      assert.equal(slice!.endpoints?.find((e) => e.targetRef?.name === 'web-a')?.nodeName, 'n1');
      const legacy = await c.endpointsOf('web');
      assert.deepEqual(
        legacy.subsets?.[0]?.addresses?.map((a) => a.targetRef?.name),
        ['web-a'],
      );
      assert.deepEqual(
        legacy.subsets?.[0]?.notReadyAddresses?.map((a) => a.targetRef?.name),
        ['web-b'],
      );
      assert.deepEqual(legacy.subsets?.[0]?.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);

      const name = slice!.metadata.name;
      await c.setPod('web-b', true);
      await c.eventually('web-b ready', async () => addresses(await c.slicesOf('web')).length === 2);
      [slice] = await c.slicesOf('web');
      assert.equal(slice!.metadata.name, name, 'the same slice rewritten, not a new one');

      await c.handlers.delete('Pod', 'default', 'web-a', { gracePeriodSeconds: 30 });
      await c.eventually('web-a terminating', async () =>
        addresses(await c.slicesOf('web'), 'terminating').includes('web-a'),
      );
      const slices = await c.slicesOf('web');
      assert.deepEqual(addresses(slices), ['web-b'], 'a terminating pod is not ready');
      assert.deepEqual(addresses(slices, 'serving'), ['web-a', 'web-b'], 'but still serving');
      await c.eventually(
        'legacy Endpoints drop it',
        async () =>
          JSON.stringify(
            (await c.endpointsOf('web')).subsets?.[0]?.addresses?.map((a) => a.targetRef?.name),
          ) === '["web-b"]',
      );

      await c.handlers.delete('Service', 'default', 'web');
      await c.eventually('the Endpoints removed with the Service', async () => {
        try {
          await c.endpointsOf('web');
          return false;
        } catch {
          return true;
        }
      });
    } finally {
      await c.stop();
    }
  });

  test('named target ports resolve per pod into slices per port set; more than 100 endpoints take several slices', async () => {
    const c = await setUp();
    try {
      await c.pod('new-0', { labels: { app: 'api' }, ports: [{ name: 'web', containerPort: 8080 }] });
      await c.pod('old-0', { labels: { app: 'api' }, ports: [{ name: 'web', containerPort: 9090 }] });
      await c.pod('bare-0', { labels: { app: 'api' } });
      await c.handlers.create(service('api', { ports: [{ name: 'http', port: 80, targetPort: 'web' }] }));
      await c.eventually('three port sets', async () => (await c.slicesOf('api')).length === 3);
      const byPorts = Object.fromEntries(
        (await c.slicesOf('api')).map((s) => [
          JSON.stringify((s.ports ?? []).map((p) => p.port)),
          (s.endpoints ?? []).map((e) => e.targetRef?.name),
        ]),
      );
      assert.deepEqual(byPorts, { '[8080]': ['new-0'], '[9090]': ['old-0'], '[]': ['bare-0'] });
      const events = (await c.handlers.list('Event', { namespace: 'default' })).items.map(
        (i) => i.object as { reason?: string; message?: string },
      );
      assert.ok(
        events.some((e) => e.reason === 'FailedToResolvePort' && /bare-0 \(web\)/.test(e.message ?? '')),
        'the Service says which pod lacks the port',
      );

      for (let i = 0; i < 120; i++)
        await c.pod(`many-${String(i).padStart(3, '0')}`, { labels: { app: 'many' } });
      await c.handlers.create(service('many'));
      await c.eventually('120 endpoints in two slices', async () => {
        const slices = await c.slicesOf('many');
        return (
          slices.length === 2 &&
          slices.every((s) => (s.endpoints ?? []).length <= 100) &&
          addresses(slices).length === 120
        );
      });
    } finally {
      await c.stop();
    }
  });

  test('a Service without a selector is left to its user; a slice deleted by hand comes back', async () => {
    const c = await setUp();
    try {
      await c.handlers.create(service('manual', { selector: {} }));
      await c.handlers.create(service('web'));
      await c.pod('web-a');
      await c.eventually('web has a slice', async () => addresses(await c.slicesOf('web')).length === 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(await c.slicesOf('manual'), []);
      const [slice] = await c.slicesOf('web');
      await c.handlers.delete('EndpointSlice', 'default', slice!.metadata.name!);
      await c.eventually('put back', async () => addresses(await c.slicesOf('web')).length === 1);
    } finally {
      await c.stop();
    }
  });

  test('one pod more in a Service of 250 rewrites one slice; publishNotReadyAddresses serves only Ready pods', async () => {
    const c = await setUp();
    try {
      for (let i = 0; i < 250; i++) await c.pod(`web-m${String(i).padStart(3, '0')}`);
      await c.handlers.create(service('web'));
      await c.eventually('250 endpoints', async () => addresses(await c.slicesOf('web')).length === 250);
      const before = new Map(
        (await c.slicesOf('web')).map((s) => [s.metadata.name, s.metadata.resourceVersion]),
      );
      assert.equal(before.size, 3);
      await c.pod('web-a000'); // sorts first
      await c.eventually('251 endpoints', async () => addresses(await c.slicesOf('web')).length === 251);
      const rewritten = (await c.slicesOf('web')).filter(
        (s) => before.get(s.metadata.name) !== s.metadata.resourceVersion,
      );
      assert.equal(rewritten.length, 1, `slices rewritten for one new pod: ${rewritten.length}`);

      await c.pod('lazy-0', { labels: { app: 'lazy' }, ready: false });
      await c.handlers.create(service('lazy', { publishNotReadyAddresses: true }));
      await c.eventually('published', async () => addresses(await c.slicesOf('lazy')).length === 1);
      assert.deepEqual(addresses(await c.slicesOf('lazy'), 'serving'), [], 'ready for DNS, not serving');
    } finally {
      await c.stop();
    }
  });

  test('an Endpoints made before its Service stays; a Service deleted and made again gets slices of its own', async () => {
    const c = await setUp();
    try {
      await c.handlers.create({
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'ext', namespace: 'default' },
        subsets: [{ addresses: [{ ip: '192.0.2.10' }], ports: [{ port: 5432, protocol: 'TCP' }] }],
      } as Endpoints);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await c.handlers.create(service('ext', { selector: {}, ports: [{ port: 5432 }] }));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal((await c.endpointsOf('ext')).subsets?.[0]?.addresses?.[0]?.ip, '192.0.2.10');

      await c.pod('web-1');
      await c.handlers.create(service('web'));
      await c.eventually('a slice', async () => addresses(await c.slicesOf('web')).length === 1);
      await c.handlers.delete('Service', 'default', 'web');
      const again = (await c.handlers.create(service('web'))).object as Service;
      await c.eventually('the slices are the new Service’s', async () => {
        const slices = await c.slicesOf('web');
        return (
          slices.length === 1 &&
          slices[0]!.metadata.ownerReferences?.[0]?.uid === again.metadata.uid &&
          addresses(slices).length === 1
        );
      });
    } finally {
      await c.stop();
    }
  });
});
