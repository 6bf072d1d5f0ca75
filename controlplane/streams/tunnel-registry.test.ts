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

/** Waits until `check` holds (renewals every 20 ms in these tests), failing after 5 s. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + 5000;
  while (!(await check())) {
    assert.ok(Date.now() < until, what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const leaseOf = (registry: EtcdTunnelRegistry): bigint => (registry as unknown as { lease: bigint }).lease;

test("a lost lease's renewal does not take back a node whose agent moved on, and its late close erases nothing", async () => {
  const store = new MemoryStore();
  const a = new EtcdTunnelRegistry({ store, name: 'cp-a', log, keepAliveMs: 20 });
  const b = new EtcdTunnelRegistry({ store, name: 'cp-b', log, keepAliveMs: 20 });
  await a.start('10.0.0.1:7440');
  await b.start('10.0.0.2:7440');
  try {
    a.held('n1');
    await a.settled();
    b.held('n1'); // the agent moved to b; a's tunnel is half-dead and not noticed yet
    await b.settled();
    const lapsed = leaseOf(a);
    await store.revokeLease(lapsed); // a's lease lapsed (etcd away past the TTL)
    await eventually('a registered again under a new lease', async () => leaseOf(a) !== lapsed);
    await a.settled();
    assert.deepEqual(await a.holderOf('n1'), { controlPlane: 'cp-b', address: '10.0.0.2:7440' });
    a.released('n1'); // a finally notices its tunnel is gone
    await a.settled();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(await a.holderOf('n1'), { controlPlane: 'cp-b', address: '10.0.0.2:7440' });
  } finally {
    await a.close();
    await b.close();
  }
});

test('when both leases lapsed and the stale holder claimed the node first, the live one takes it once the stale one closes', async () => {
  const store = new MemoryStore();
  // a renews first: it claims the entry before b does
  const a = new EtcdTunnelRegistry({ store, name: 'cp-a', log, keepAliveMs: 20 });
  const b = new EtcdTunnelRegistry({ store, name: 'cp-b', log, keepAliveMs: 150 });
  await a.start('10.0.0.1:7440');
  await b.start('10.0.0.2:7440');
  try {
    a.held('n1');
    await a.settled();
    b.held('n1'); // the agent moved to b
    await b.settled();
    // etcd away for both past the TTL: both leases lapse, and every entry with them
    const lapsed = leaseOf(b);
    await store.revokeLease(lapsed);
    await store.revokeLease(leaseOf(a));
    await eventually('a claimed n1 again', async () => (await a.holderOf('n1'))?.controlPlane === 'cp-a');
    await eventually('b renewed', async () => leaseOf(b) !== lapsed);
    await b.settled();
    // b's claim found a's entry and left it (b cannot tell which tunnel is dead) ...
    assert.equal((await a.holderOf('n1'))?.controlPlane, 'cp-a');
    a.released('n1'); // ... until a notices its tunnel is gone and its entry goes
    await a.settled();
    await eventually(
      "b's next renewal claims the entry",
      async () => (await a.holderOf('n1'))?.controlPlane === 'cp-b',
    );
  } finally {
    await a.close();
    await b.close();
  }
});
