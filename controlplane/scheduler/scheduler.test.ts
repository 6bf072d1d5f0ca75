import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConflictError } from '../../proto/errors.js';
import type { Node, Pod } from '../../proto/gen/types.js';
import { RequiredNodeAffinity } from './framework/node-affinity.js';
import { newPodInfo } from './framework/pod-info.js';
import { parseResourceList } from './framework/resources.js';
import { firstUntoleratedHardTaint } from '../../proto/taints.js';
import { parseProfile } from './profile.js';
import { InMemoryCluster, makeNode, makePod } from './testing.js';

describe('Scheduler', () => {
  test('places a pod on a node where it fits and reports it', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('small', { cpu: '1' }));
    cluster.addNode(makeNode('large', { cpu: '8' }));
    cluster.addPod(makePod('p', { cpu: '2' }));
    const [outcome] = await cluster.cycle();
    assert.deepEqual(
      outcome && { kind: outcome.kind, node: 'nodeName' in outcome ? outcome.nodeName : undefined },
      {
        kind: 'assumed',
        node: 'large',
      },
    );
    assert.equal(cluster.bound.get('default/p'), 'large');
    assert.equal(cluster.scheduler.cache.isAssumed('default/p'), false, 'the informer confirmed the bind');
  });

  test("the FailedScheduling message of the issue, in Kubernetes' words", async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('gpu', { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] }));
    cluster.addNode(makeNode('small-1', { memory: '1Gi' }));
    cluster.addNode(makeNode('small-2', { memory: '1Gi' }));
    cluster.addPod(makePod('big', { memory: '4Gi', preemptionPolicy: 'Never' }));
    const [outcome] = await cluster.cycle();
    assert.equal(outcome?.kind, 'unschedulable');
    assert.equal(
      cluster.messages.get('default/big'),
      '0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient memory. ' +
        'preemption: not eligible due to preemptionPolicy=Never.',
    );
  });

  test('no nodes at all', async () => {
    const cluster = new InMemoryCluster();
    cluster.addPod(makePod('p'));
    await cluster.cycle();
    assert.equal(cluster.messages.get('default/p'), 'no nodes available to schedule pods');
    cluster.addNode(makeNode('a'));
    cluster.clock.advance(1000);
    await cluster.cycle();
    assert.equal(cluster.bound.get('default/p'), 'a');
  });

  test('a pod that can never fit costs nothing until the cluster changes', async () => {
    const cluster = new InMemoryCluster();
    const node = makeNode('a', { cpu: '1' });
    cluster.addNode(node);
    cluster.addPod(makePod('huge', { cpu: '64' }));
    await cluster.cycle();
    assert.equal(cluster.outcomes.length, 1);
    for (let minute = 0; minute < 4; minute++) {
      // Heartbeats (a timestamp changes), other pods coming and going elsewhere in the spec.
      const beat: Node = {
        ...node,
        status: {
          ...node.status,
          conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: `${minute}` }],
        },
      };
      cluster.scheduler.nodeUpdated(node, beat);
      cluster.scheduler.nodeUpdated(node, {
        ...node,
        metadata: { ...node.metadata, labels: { x: `${minute}` } },
      });
      cluster.clock.advance(60_000);
      await cluster.cycle();
    }
    assert.equal(cluster.outcomes.length, 1, 'no attempt while nothing that could help changed');
    cluster.addNode(makeNode('big', { cpu: '128' }));
    await cluster.cycle();
    assert.equal(cluster.bound.get('default/huge'), 'big');
  });

  test('a conflicting bind forgets the assumption and retries after the back-off', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a', { cpu: '1' }));
    cluster.addPod(makePod('p', { cpu: '1' }));
    cluster.bindError = new ConflictError('pod default/p: the object has been modified');
    await cluster.cycle();
    assert.equal(cluster.scheduler.cache.isAssumed('default/p'), false);
    assert.equal(cluster.scheduler.cache.snapshot().get('a')?.requested.milliCpu, 0, 'no longer counted');
    assert.match(cluster.messages.get('default/p')!, /^binding rejected: bind pod default\/p to node a: /);
    cluster.bindError = undefined;
    await cluster.cycle();
    assert.equal(cluster.bound.size, 0, 'backing off');
    cluster.clock.advance(1000);
    await cluster.cycle();
    assert.equal(cluster.bound.get('default/p'), 'a');
    assert.equal(cluster.binds, 2);
  });

  test('a pod deleted while its bind is written is not retried', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a'));
    cluster.addPod(makePod('p'));
    const queued = cluster.scheduler.queue.tryPop()!;
    cluster.pods.delete('default/p');
    cluster.scheduler.scheduleQueued(queued);
    await cluster.scheduler.drainBinds();
    assert.equal(cluster.scheduler.queue.has('default/p'), false);
    assert.equal(cluster.scheduler.cache.nodeOf('default/p'), undefined);
  });

  test('skips pods of another scheduler, bound pods, terminating pods; holds gated pods', async () => {
    const cluster = new InMemoryCluster({ profile: parseProfile('schedulerName: mine') });
    cluster.addNode(makeNode('a'));
    cluster.addPod(makePod('theirs', { schedulerName: 'default-scheduler' }));
    cluster.addPod(makePod('leaving', { schedulerName: 'mine', deletionTimestamp: '2026-01-01T00:00:00Z' }));
    cluster.addPod(makePod('gated', { schedulerName: 'mine', schedulingGates: ['example.com/wait'] }));
    cluster.addPod(makePod('ours', { schedulerName: 'mine' }));
    await cluster.cycle();
    assert.deepEqual([...cluster.bound.keys()], ['default/ours']);
    const gated = cluster.pods.get('default/gated')!;
    const open: Pod = { ...gated, spec: { ...gated.spec, schedulingGates: [] } };
    cluster.pods.set('default/gated', open);
    cluster.scheduler.podUpdated(gated, open);
    await cluster.cycle();
    assert.equal(cluster.bound.get('default/gated'), 'a');
  });

  test('a freed node brings an unschedulable pod back (PodDelete)', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a', { cpu: '1' }));
    cluster.addPod(makePod('first', { cpu: '1', priority: 10 }));
    await cluster.cycle();
    cluster.addPod(makePod('second', { cpu: '1', priority: 10 }));
    await cluster.cycle();
    assert.equal(cluster.bound.has('default/second'), false);
    cluster.deletePod('default/first');
    cluster.clock.advance(1000);
    await cluster.cycle();
    assert.equal(cluster.bound.get('default/second'), 'a');
  });

  test('stops filtering once enough feasible nodes are found, from a rotating start', async () => {
    const cluster = new InMemoryCluster({ profile: parseProfile('percentageOfNodesToScore: 10') });
    for (let i = 0; i < 1000; i++) cluster.addNode(makeNode(`n${String(i).padStart(4, '0')}`));
    let filtered = 0;
    const fit = cluster.scheduler.framework.filters.find((f) => f.name === 'NodeResourcesFit')!;
    const original = fit.filter.bind(fit);
    fit.filter = (state, pod, node) => {
      filtered++;
      return original(state, pod, node);
    };
    for (let i = 0; i < 10; i++) cluster.addPod(makePod(`p${i}`, { cpu: '100m' }));
    await cluster.cycle();
    assert.equal(filtered, 10 * 100, 'each pod looked at 100 nodes (10 %), not 1000');
    assert.equal(new Set(cluster.bound.values()).size, 10, 'every pod on another node');
  });

  test('ties are broken at random, reproducibly with an injected random', async () => {
    const place = async (seed: number) => {
      const cluster = new InMemoryCluster({ random: () => seed });
      for (let i = 0; i < 5; i++) cluster.addNode(makeNode(`n${i}`));
      cluster.addPod(makePod('p'));
      await cluster.cycle();
      return cluster.bound.get('default/p');
    };
    assert.equal(await place(0.99), await place(0.99));
    assert.notEqual(await place(0), await place(0.99));
  });

  test('a plugin that throws fails the attempt, not the scheduler: the pod is retried', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a'));
    const fit = cluster.scheduler.framework.filters.find((f) => f.name === 'NodeResourcesFit')!;
    const original = fit.filter.bind(fit);
    let broken = true;
    fit.filter = (state, pod, node) => {
      if (broken) throw new Error('bug');
      return original(state, pod, node);
    };
    cluster.addPod(makePod('p'));
    const [outcome] = await cluster.cycle();
    assert.equal(outcome?.kind, 'error');
    assert.match(cluster.messages.get('default/p')!, /scheduling cycle of pod default\/p failed: bug/);
    broken = false;
    cluster.clock.advance(1000);
    await cluster.cycle();
    assert.equal(cluster.bound.get('default/p'), 'a');
  });

  test('run() schedules as pods come and stop() ends it', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a'));
    const running = cluster.scheduler.run();
    cluster.addPod(makePod('p1'));
    cluster.addPod(makePod('p2'));
    while (cluster.bound.size < 2) await new Promise((resolve) => setImmediate(resolve));
    await cluster.scheduler.stop();
    await running;
    assert.equal(cluster.bound.size, 2);
  });

  test('5,000 nodes, 10,000 pods of every kind: every pod placed where it fits', async () => {
    const cluster = new InMemoryCluster();
    const nodes = new Map<string, Node>();
    for (let i = 0; i < 5000; i++) {
      const size = [2, 4, 8][i % 3]!;
      const gpu = i % 20 === 0;
      const node = makeNode(`node-${i}`, {
        cpu: String(size),
        memory: `${size * 2}Gi`,
        pods: i % 7 === 0 ? 8 : 110,
        zone: `zone-${i % 10}`,
        labels: { disk: i % 3 === 0 ? 'ssd' : 'hdd' },
        ...(gpu
          ? {
              extended: { 'example.com/gpu': '8' },
              taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
            }
          : {}),
        ...(i % 100 === 1 ? { unschedulable: true } : {}),
        ...(i % 100 === 2 ? { ready: 'False' as const } : {}),
      });
      nodes.set(node.metadata.name!, node);
      cluster.addNode(node);
    }
    const pods: Pod[] = [];
    // Of every 50 pods: 30 plain (of 100 ReplicaSets: spread by default), 5 on ssd nodes, 1 with a
    // gpu (tolerating the gpu nodes' taint), 5 in anti-affinity groups, 5 spread over zones,
    // 4 with a host port.
    const kindOf = (i: number) => {
      const slot = i % 50;
      if (slot < 30) return 0;
      if (slot < 35) return 5;
      if (slot < 36) return 6;
      if (slot < 41) return 7;
      if (slot < 46) return 8;
      return 9;
    };
    for (let i = 0; i < 10_000; i++) {
      const kind = kindOf(i);
      const base = { cpu: `${100 * (1 + (i % 5))}m`, memory: `${128 * (1 + (i % 7))}Mi` };
      let pod: Pod;
      switch (kind) {
        case 5:
          pod = makePod(`ssd-${i}`, { ...base, nodeSelector: { disk: 'ssd' } });
          break;
        case 6:
          pod = makePod(`gpu-${i}`, {
            ...base,
            requests: { 'example.com/gpu': '1' },
            tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }],
          });
          break;
        case 7: {
          const group = `unique-${i % 50}`;
          pod = makePod(`anti-${i}`, {
            ...base,
            labels: { group },
            affinity: {
              podAntiAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: [
                  { labelSelector: { matchLabels: { group } }, topologyKey: 'kubernetes.io/hostname' },
                ],
              },
            },
          });
          break;
        }
        case 8:
          pod = makePod(`spread-${i}`, {
            ...base,
            labels: { app: 'spread' },
            topologySpreadConstraints: [
              {
                maxSkew: 2,
                topologyKey: 'topology.kubernetes.io/zone',
                whenUnsatisfiable: 'DoNotSchedule',
                labelSelector: { matchLabels: { app: 'spread' } },
              },
            ],
          });
          break;
        case 9:
          pod = makePod(`port-${i}`, { ...base, hostPorts: [8080] });
          break;
        default:
          pod = makePod(`plain-${i}`, { ...base, owner: `rs-${i % 100}` });
      }
      pods.push(pod);
      cluster.addPod(pod);
    }
    await cluster.cycle();
    const unplaced = pods.filter((pod) => !cluster.bound.has(`default/${pod.metadata.name}`));
    assert.deepEqual(
      unplaced.map((pod) => `${pod.metadata.name}: ${cluster.messages.get(`default/${pod.metadata.name}`)}`),
      [],
    );

    // Check every placement against the nodes, independently of the plugins.
    const byNode = new Map<string, Pod[]>();
    for (const pod of pods) {
      const nodeName = cluster.bound.get(`default/${pod.metadata.name}`)!;
      byNode.set(nodeName, [...(byNode.get(nodeName) ?? []), pod]);
    }
    for (const [nodeName, placed] of byNode) {
      const node = nodes.get(nodeName)!;
      const allocatable = parseResourceList(node.status!.allocatable);
      const requests = placed.map((pod) => newPodInfo(pod).requests);
      const sum = (pick: (r: (typeof requests)[number]) => number) =>
        requests.reduce((total, r) => total + pick(r), 0);
      assert.ok(sum((r) => r.milliCpu) <= allocatable.milliCpu, `${nodeName}: cpu over allocatable`);
      assert.ok(sum((r) => r.memory) <= allocatable.memory, `${nodeName}: memory over allocatable`);
      assert.ok(placed.length <= allocatable.pods, `${nodeName}: more pods than it takes`);
      assert.ok(
        sum((r) => r.scalar?.get('example.com/gpu') ?? 0) <=
          (allocatable.scalar?.get('example.com/gpu') ?? 0),
        `${nodeName}: gpus`,
      );
      assert.ok(!node.spec.unschedulable, `${nodeName} is cordoned`);
      assert.equal(node.status!.conditions![0]!.status, 'True', `${nodeName} is not Ready`);
      const ports = placed.filter((pod) => pod.metadata.name!.startsWith('port-'));
      assert.ok(ports.length <= 1, `${nodeName}: host port 8080 twice`);
      const groups = placed.map((pod) => pod.metadata.labels?.group).filter((g) => g !== undefined);
      assert.equal(new Set(groups).size, groups.length, `${nodeName}: two pods of one anti-affinity group`);
      for (const pod of placed) {
        assert.equal(
          firstUntoleratedHardTaint(node.spec.taints, pod.spec.tolerations),
          undefined,
          `${pod.metadata.name} on a tainted node`,
        );
        assert.ok(new RequiredNodeAffinity(pod).matches(node), `${pod.metadata.name}: selector`);
      }
    }
    const perZone = new Map<string, number>();
    for (const pod of pods.filter((p) => p.metadata.name!.startsWith('spread-'))) {
      const zone = nodes.get(cluster.bound.get(`default/${pod.metadata.name}`)!)!.metadata.labels![
        'topology.kubernetes.io/zone'
      ]!;
      perZone.set(zone, (perZone.get(zone) ?? 0) + 1);
    }
    assert.equal(perZone.size, 10);
    assert.ok(
      Math.max(...perZone.values()) - Math.min(...perZone.values()) <= 2,
      'zone skew within maxSkew 2',
    );
  });
});
