import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MemoryStore } from '../store/memory-store.js';
import { EtcdTunnelRegistry } from './tunnel-registry.js';

const log = pino({ level: 'silent' });

test('the registry follows an agent from one control plane to another, and a late close erases nothing', async () => {
  const store = new MemoryStore();
  const a = new EtcdTunnelRegistry({ store, name: 'cp-a', log });
  const b = new EtcdTunnelRegistry({ store, name: 'cp-b', log });
  await a.start('10.0.0.1:7440');
  await b.start('10.0.0.2:7440');
  try {
    a.held('n1');
    await a.settled();
    assert.deepEqual(await b.holderOf('n1'), { controlPlane: 'cp-a', address: '10.0.0.1:7440' });
    // the agent reconnects to b before a notices its tunnel is gone
    b.held('n1');
    await b.settled();
    a.released('n1');
    await a.settled();
    assert.deepEqual(await a.holderOf('n1'), { controlPlane: 'cp-b', address: '10.0.0.2:7440' });
    b.released('n1');
    await b.settled();
    assert.equal(await a.holderOf('n1'), undefined);
  } finally {
    await a.close();
    await b.close();
  }
});

test("a control plane's entries go with its lease; a lost lease is replaced and the entries written again", async () => {
  const store = new MemoryStore();
  const a = new EtcdTunnelRegistry({ store, name: 'cp-a', log, keepAliveMs: 20 });
  await a.start('10.0.0.1:7440');
  a.held('n1');
  await a.settled();
  assert.ok(await a.holderOf('n1'));
  const lease = (a as unknown as { lease: bigint }).lease;
  // etcd forgot the lease (it expired while etcd was away): the entry went with it
  await store.revokeLease(lease);
  assert.equal(await a.holderOf('n1'), undefined);
  const until = Date.now() + 5000;
  while ((await a.holderOf('n1')) === undefined) {
    assert.ok(Date.now() < until, 'the entry was written again under a new lease');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await a.close();
  // closing revokes the lease: nothing of a stays
  assert.equal(await a.holderOf('n1'), undefined);
  assert.equal((await store.list('controlplanes')).items.length, 0);
});
