/**
 * Leader election among processes sharing one etcd (controlplane/leader/leader-election.ts): each
 * candidate here has its own etcd client, as separate control planes have; one is cut off from
 * etcd through a proxy to play a leader that dies or is partitioned.
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import { startProxy } from '../../controlplane/store/tcp-proxy.js';
import { LeaderElection } from '../../controlplane/leader/leader-election.js';
import { decodeObject } from '../../proto/objects.js';
import { componentLogger } from '../../proto/support/logger.js';
import { withEtcd } from '../harness/servers.js';

async function until(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not true after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

/** A candidate whose lead() records the terms it ran and ends when its signal aborts. */
function candidate(store: EtcdStore, identity: string, terms: string[], ttlSeconds = 3) {
  let leading = false;
  const election = new LeaderElection({
    store,
    name: 'skiff-control-plane',
    identity,
    ttlSeconds,
    log: componentLogger('leader-test', { identity }),
    lead: async (signal) => {
      leading = true;
      terms.push(`${identity} starts`);
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
      terms.push(`${identity} ends`);
      leading = false;
    },
  });
  return { election, isLeading: () => leading };
}

describe('leader election against a real etcd', () => {
  const etcd = withEtcd();
  let prefixes = 0;
  const open: { stop(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const item of open.reverse()) await item.stop();
    open.length = 0;
  });
  const store = (endpoint = etcd().endpoint, prefix: string) => {
    const s = new EtcdStore({ endpoints: [endpoint], prefix, timeoutMs: 1000 });
    open.push({ stop: () => s.close() });
    return s;
  };

  test('one of three leads, the Lease names it; stop() hands over at once, never to two', async () => {
    const prefix = `/leader-${++prefixes}`;
    const terms: string[] = [];
    const candidates = ['a', 'b', 'c'].map((id) => candidate(store(undefined, prefix), id, terms));
    for (const c of candidates) {
      c.election.start();
      open.push({ stop: () => c.election.stop() });
    }
    await until('a leader', () => candidates.some((c) => c.isLeading()));
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(candidates.filter((c) => c.isLeading()).length, 1, 'exactly one leads');
    const leader = candidates.find((c) => c.isLeading())!;
    const lease = decodeObject(
      'Lease',
      (
        await store(undefined, prefix).get({
          resource: 'leases',
          namespace: 'kube-system',
          name: 'skiff-control-plane',
        })
      ).value,
    );
    assert.equal(lease.spec.holderIdentity, leader.election.identity);
    assert.equal(lease.spec.leaseDurationSeconds, 3);

    await leader.election.stop();
    const handover = await until('a new leader', () => candidates.some((c) => c !== leader && c.isLeading()));
    assert.ok(handover < 1500, `a stopped leader lets the next in at once (took ${handover} ms)`);
    assert.equal(candidates.filter((c) => c.isLeading()).length, 1);
    // every term ended before the next began
    for (let i = 0; i + 1 < terms.length; i += 2) assert.match(terms[i + 1]!, /ends$/, terms.join(', '));
  });

  test('stop() right after start() returns at once, whichever step the campaign was in', async () => {
    const prefix = `/leader-${++prefixes}`;
    const s = store(undefined, prefix);
    for (let i = 0; i < 8; i++) {
      const terms: string[] = [];
      const c = candidate(s, `quick-${i}`, terms);
      c.election.start();
      // let the campaign get a little way: nowhere, to the lease grant, to the create
      await new Promise((resolve) => setTimeout(resolve, i * 3));
      const started = Date.now();
      await c.election.stop();
      assert.ok(Date.now() - started < 1500, `stop took ${Date.now() - started} ms (round ${i})`);
      assert.ok(!c.isLeading());
    }
  });

  test('a leader whose Lease is deleted or rewritten behind the election steps down; a standby leads', async () => {
    const prefix = `/leader-${++prefixes}`;
    const terms: string[] = [];
    const direct = store(undefined, prefix);
    const key = { resource: 'leases', namespace: 'kube-system', name: 'skiff-control-plane' };
    const first = candidate(store(undefined, prefix), 'first', terms);
    first.election.start();
    open.push({ stop: () => first.election.stop() });
    await until('first leads', () => first.isLeading());
    const second = candidate(store(undefined, prefix), 'second', terms);
    second.election.start();
    open.push({ stop: () => second.election.stop() });
    await direct.delete(key);
    const deletedAt = Date.now();
    // a candidate that steps down may win the next campaign within milliseconds, so the end of
    // its term is what shows it stepped down, not a look at who leads
    await until('first steps down', () => terms.includes('first ends'), 3000);
    const steppedDown = Date.now() - deletedAt;
    assert.ok(steppedDown < 500, `the leader saw its key go at once (${steppedDown} ms)`);
    await until('someone leads', () => first.isLeading() || second.isLeading(), 3000);
    // rewritten in place (without its etcd lease): the holder steps down all the same
    const holder = first.isLeading() ? 'first' : 'second';
    const held = await direct.get(key);
    assert.equal(decodeObject('Lease', held.value).spec.holderIdentity, holder);
    const endsBefore = terms.filter((t) => t === `${holder} ends`).length;
    await direct.update(key, held.value, held.modRevision);
    await until(
      `${holder} steps down`,
      () => terms.filter((t) => t === `${holder} ends`).length > endsBefore,
      3000,
    );
    await until('someone leads again', () => first.isLeading() || second.isLeading(), 10_000);
    // every term so far ended, and no two overlapped but for the moment after a deletion seen by
    // both at once (a new term may begin a few milliseconds before the old one has ended)
    assert.equal(
      terms.filter((t) => t.endsWith('starts')).length,
      terms.filter((t) => t.endsWith('ends')).length + 1,
      terms.join(', '),
    );
  });

  test('a leader cut off from etcd steps down before its lease expires; a standby takes over within the ttl', async () => {
    const prefix = `/leader-${++prefixes}`;
    const proxy = await startProxy(etcd().endpoint);
    open.push({ stop: () => proxy.close() });
    const terms: string[] = [];
    const cut = candidate(store(proxy.endpoint, prefix), 'cut', terms);
    cut.election.start();
    open.push({ stop: () => cut.election.stop() });
    await until('the first leads', () => cut.isLeading());
    const standby = candidate(store(undefined, prefix), 'standby', terms);
    standby.election.start();
    open.push({ stop: () => standby.election.stop() });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(!standby.isLeading(), 'the standby waits while the leader renews');

    const cutAt = Date.now();
    await proxy.block();
    await until('the cut-off leader steps down', () => !cut.isLeading());
    const steppedDown = Date.now() - cutAt;
    await until('the standby leads', () => standby.isLeading());
    const tookOver = Date.now() - cutAt;
    assert.ok(steppedDown < 3000, `stepped down after ${steppedDown} ms, before its 3 s lease can expire`);
    assert.ok(tookOver >= steppedDown, 'never two leaders');
    assert.ok(tookOver < 3000 + 3000, `taken over ${tookOver} ms after the cut (ttl 3 s)`);
    assert.deepEqual(terms, ['cut starts', 'cut ends', 'standby starts']);
  });
});
