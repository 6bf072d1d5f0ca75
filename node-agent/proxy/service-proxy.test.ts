import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../controlplane/store/memory-store.js';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { encodeObject } from '../../proto/objects.js';
import { componentLogger } from '../../proto/support/logger.js';
import { storeServiceInformers } from '../../test/harness/store-service-informers.js';
import { ServiceProxy } from './service-proxy.js';
import { until } from '../../test/harness/until.js';

const log = componentLogger('service-proxy-test');
log.level = 'silent';

function service(i: number): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'shop', name: `web-${i}` },
    spec: { clusterIP: `10.96.0.${i + 10}`, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

function slice(i: number, ips: string[]): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'shop', name: `web-${i}-1`, labels: { 'kubernetes.io/service-name': `web-${i}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  };
}

/** A store, informers over it, and a proxy whose nft writes are recorded (and fail while `failing`). */
async function setUp(services: number) {
  const store = new MemoryStore();
  for (let i = 0; i < services; i++) {
    await store.create(
      { resource: 'services', namespace: 'shop', name: `web-${i}` },
      encodeObject(service(i)),
    );
    await store.create(
      { resource: 'endpointslices', namespace: 'shop', name: `web-${i}-1` },
      encodeObject(slice(i, [`10.244.1.${i + 2}`])),
    );
  }
  const informers = storeServiceInformers(store, log);
  const scripts: string[] = [];
  const state = { failing: false };
  const proxy = new ServiceProxy({
    informers,
    nodeName: 'n1',
    clusterCIDR: '10.244.0.0/16',
    batchMs: 20,
    retryMs: 30,
    log,
    exec: {
      async nft(_netns, script) {
        scripts.push(script);
        if (state.failing) throw new Error('nft: table inet skiff: No such file or directory');
      },
    },
  });
  informers.services.start();
  informers.endpointSlices.start();
  const setSlice = async (i: number, ips: string[]) => {
    const key = { resource: 'endpointslices', namespace: 'shop', name: `web-${i}-1` };
    await store.update(key, encodeObject(slice(i, ips)), (await store.get(key)).modRevision);
  };
  const stop = async () => {
    await proxy.stop();
    await informers.services.stop();
    await informers.endpointSlices.stop();
  };
  return { proxy, scripts, state, setSlice, stop };
}

/** Waits until `check` holds. */
const waitFor = (what: string, check: () => boolean) =>
  until(what, () => (check() ? true : undefined), 3000, 5);

describe('service proxy', () => {
  test('starts with one full write of every Service; a burst of changes is one small write', async () => {
    const { proxy, scripts, setSlice, stop } = await setUp(20);
    try {
      await proxy.start();
      assert.equal(scripts.length, 1);
      assert.match(scripts[0]!, /^flush map inet skiff service-ips$/m);
      assert.equal(proxy.services, 20);
      await Promise.all([
        setSlice(3, ['10.244.1.5', '10.244.1.99']),
        setSlice(4, ['10.244.1.6', '10.244.1.98']),
      ]);
      await waitFor('the burst written', () => scripts.length === 2);
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(scripts.length, 2, 'one write for the burst');
      const lines = scripts[1]!.trim().split('\n');
      assert.deepEqual(
        lines.filter((l) => l.startsWith('flush chain')).map((l) => l.split('/')[1]),
        ['web-3', 'web-4'],
      );
      assert.ok(lines.some((l) => l.endsWith('dnat ip to 10.244.1.99:8080')));
      assert.equal(proxy.lastWrite?.full, false);
      assert.equal(proxy.lastWrite?.planned, 2);
    } finally {
      await stop();
    }
  });

  test('a failed write is retried, as a full write', async () => {
    const { proxy, scripts, state, setSlice, stop } = await setUp(3);
    try {
      await proxy.start();
      state.failing = true;
      await setSlice(1, ['10.244.1.50']);
      await waitFor('a failed write', () => scripts.length === 2);
      state.failing = false;
      await waitFor('the retry', () => scripts.length === 3);
      assert.match(scripts[2]!, /^flush map inet skiff service-ips$/m, 'the retry is full');
      assert.ok(scripts[2]!.includes('dnat ip to 10.244.1.50:8080'));
      assert.equal(proxy.lastWrite?.full, true);
    } finally {
      await stop();
    }
  });
});
