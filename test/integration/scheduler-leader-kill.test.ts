/**
 * One scheduler at a time, and no pod bound twice (issue 12, item 7): two `skiff controlplane`
 * processes on one etcd and NATS, 20 nodes registered through the API and no agents, 500 pods
 * created while the leader schedules; the leader is SIGKILLed mid-run (its etcd lease expires
 * after --leader-elect-lease-duration 2s) and the other takes over. Every version of every pod is
 * followed through a watch on the survivor's API from before the first pod: each pod must end
 * bound, and its nodeName, once set, must never change. A canary rebind written straight to etcd
 * at the end proves the watch would have shown a double bind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeNode, makePod } from '../../controlplane/scheduler/testing.js';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import type { Pod } from '../../proto/gen/types.js';
import { decodeObject, encodeObject } from '../../proto/objects.js';
import { startControlPlanePair, type ControlPlanePair } from '../harness/control-plane-pair.js';
import { launchTestEtcd, launchTestNats, type TestEtcd, type TestNats } from '../harness/servers.js';
import { registerNode, userPod } from '../harness/registered-nodes.js';
import { until } from '../harness/until.js';

const PODS = 500;
const NODES = 20;
const LEASE_SECONDS = 2;

describe('leader killed mid-run: another schedules, no pod bound twice', { timeout: 180_000 }, () => {
  let etcd: TestEtcd;
  let nats: TestNats;
  let pair: ControlPlanePair | undefined;
  before(async () => {
    etcd = await launchTestEtcd();
    nats = await launchTestNats();
  });
  after(async () => {
    await pair?.dispose();
    await nats?.dispose();
    await etcd?.dispose();
  });

  test(`${PODS} pods, the leader SIGKILLed while they are created and bound: every pod bound exactly once`, async () => {
    pair = await startControlPlanePair(etcd, nats, { leaseSeconds: LEASE_SECONDS });
    const { leader, standby: survivor, api } = await pair.roles();

    for (let i = 0; i < NODES; i++)
      await registerNode(api, makeNode(`node-${i}`, { cpu: '8', memory: '32Gi' }));
    // every version of every pod, from before the first was created
    const start = await api.list('Pod', { namespace: 'default' });
    const versions = new Map<string, { nodeName: string; revision: bigint }[]>();
    const watching = new AbortController();
    const watched = (async () => {
      for await (const event of api.watch('Pod', {
        namespace: 'default',
        resourceVersion: start.resourceVersion,
        signal: watching.signal,
      })) {
        if (event.type !== 'ADDED' && event.type !== 'MODIFIED') continue;
        const pod = event.object as Pod;
        const list = versions.get(pod.metadata.name!) ?? [];
        list.push({ nodeName: pod.spec.nodeName ?? '', revision: BigInt(pod.metadata.resourceVersion!) });
        versions.set(pod.metadata.name!, list);
      }
    })().catch((err: unknown) => {
      if (!watching.signal.aborted) throw err;
    });
    const boundCount = (): number =>
      [...versions.values()].filter((list) => list.some((v) => v.nodeName !== '')).length;

    const create = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i += 25) {
        await Promise.all(
          Array.from({ length: Math.min(25, to - i) }, (_, j) =>
            api.create(userPod(makePod(`pod-${i + j}`, { cpu: '10m', memory: '16Mi' }))),
          ),
        );
      }
    };
    // mid-run: pods still being created, some bound by the leader, others queued or being bound
    const creating = create(0, PODS);
    await until('the leader binding', () => (boundCount() >= 100 ? true : undefined), 30_000);
    const killedAt = Date.now();
    const boundBeforeKill = boundCount();
    const createdBeforeKill = versions.size;
    leader.child.kill('SIGKILL');
    await leader.exited;
    await creating;
    const ledAt = await until('the survivor leads', () => survivor.ledAt(), 20_000);
    await until(`all ${PODS} pods bound`, () => (boundCount() === PODS ? true : undefined), 60_000);
    const allBoundAt = Date.now();
    const takeoverSeconds = (ledAt - killedAt) / 1000;
    console.log(
      `# ${createdBeforeKill} pods created and ${boundBeforeKill} bound before the kill; the survivor led ${takeoverSeconds.toFixed(1)} s after it (lease ${LEASE_SECONDS} s); all ${PODS} bound ${((allBoundAt - killedAt) / 1000).toFixed(1)} s after it`,
    );
    assert.ok(takeoverSeconds < LEASE_SECONDS + 5, `took over ${takeoverSeconds} s after the kill`);

    // a rebind written behind the API's back must show in the same check
    const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: '/skiff' });
    try {
      const key = { resource: 'pods', namespace: 'default', name: 'pod-0' };
      const stored = await store.get(key);
      const pod = decodeObject('Pod', stored.value);
      const other = pod.spec.nodeName === 'node-0' ? 'node-1' : 'node-0';
      await store.update(
        key,
        encodeObject({ ...pod, spec: { ...pod.spec, nodeName: other } }),
        stored.modRevision,
      );
      await until(
        'the canary rebind seen',
        () => (versions.get('pod-0')!.some((v) => v.nodeName === other) ? true : undefined),
        10_000,
      );
    } finally {
      await store.close();
    }
    watching.abort();
    await watched;

    const rebound: string[] = [];
    for (const [name, list] of versions) {
      const nodes = new Set(list.map((v) => v.nodeName).filter((n) => n !== ''));
      if (nodes.size > 1) rebound.push(`${name}: ${[...nodes].join(' → ')}`);
    }
    assert.deepEqual(rebound.length, 1, `only the canary changed node: ${rebound.join('; ')}`);
    assert.match(rebound[0]!, /^pod-0: /);
    assert.equal(versions.size, PODS);
  });
});
