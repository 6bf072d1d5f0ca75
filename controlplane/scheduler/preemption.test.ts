import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { newPodInfo } from './framework/pod-info.js';
import { pickCandidate, type Candidate } from './preemption.js';
import { InMemoryCluster, makeNode, makePod } from './testing.js';

function victimsOf(...priorities: [number, string?][]): Candidate['victims'] {
  return priorities.map(([priority, startTime], i) =>
    newPodInfo(makePod(`v${i}-${priority}`, { priority, ...(startTime ? { startTime } : {}) })),
  );
}

describe('DefaultPreemption', () => {
  test('evicts the fewest, least important pods: all lower ones out, then the most important put back', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a', { cpu: '3' }));
    for (const [name, priority] of [
      ['p1', 1],
      ['p2', 2],
      ['p3', 3],
    ] as const) {
      cluster.addPod(makePod(name, { cpu: '1', priority }));
    }
    await cluster.cycle();
    assert.equal(cluster.bound.size, 3);
    cluster.addPod(makePod('vip', { cpu: '1', priority: 10 }));
    const [outcome] = await cluster.cycle();
    assert.equal(outcome?.kind, 'unschedulable');
    assert.deepEqual(cluster.evicted, ['default/p1']);
    assert.equal(cluster.nominated.get('default/vip'), 'a');
    // The message is the fit error; preemption found a way, so it adds nothing.
    assert.equal(cluster.messages.get('default/vip'), '0/1 nodes are available: 1 Insufficient cpu.');
  });

  test('the nominated room is kept from pods of lower priority, and the preemptor gets it when the victim goes', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a', { cpu: '2' }));
    cluster.addPod(makePod('low', { cpu: '2', priority: 1 }));
    await cluster.cycle();
    cluster.addPod(makePod('vip', { cpu: '2', priority: 100 }));
    await cluster.cycle();
    assert.deepEqual(cluster.evicted, ['default/low']);
    cluster.terminate('default/low');
    cluster.deletePod('default/low');
    // A pod of lower priority comes while the vip backs off: the room is the vip's.
    cluster.addPod(makePod('sneaky', { cpu: '1', priority: 50 }));
    await cluster.cycle();
    assert.equal(cluster.bound.has('default/sneaky'), false);
    assert.match(cluster.messages.get('default/sneaky')!, /^0\/1 nodes are available: 1 Insufficient cpu\./);
    cluster.clock.advance(10_000);
    await cluster.cycle();
    assert.equal(cluster.bound.get('default/vip'), 'a');
    assert.equal(cluster.bound.has('default/sneaky'), false);
  });

  test('while its victims terminate, a nominated pod does not preempt again', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a', { cpu: '1' }));
    cluster.addPod(makePod('low', { cpu: '1', priority: 1 }));
    await cluster.cycle();
    cluster.addPod(makePod('vip', { cpu: '1', priority: 100 }));
    await cluster.cycle();
    cluster.terminate('default/low');
    cluster.scheduler.queue.activate('default/vip');
    cluster.clock.advance(10_000);
    await cluster.cycle();
    assert.deepEqual(cluster.evicted, ['default/low']);
    assert.equal(
      cluster.messages.get('default/vip'),
      '0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to a terminating pod on the nominated node.',
    );
    assert.equal(cluster.nominated.get('default/vip'), 'a');
  });

  test('says why preemption cannot help, per node', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('gpu', { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] }));
    cluster.addNode(makeNode('small-1', { memory: '1Gi' }));
    cluster.addNode(makeNode('small-2', { memory: '1Gi' }));
    cluster.addPod(makePod('resident', { memory: '512Mi', priority: 1000 }));
    await cluster.cycle();
    cluster.addPod(makePod('big', { memory: '2Gi' }));
    await cluster.cycle();
    assert.equal(
      cluster.messages.get('default/big'),
      '0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient memory. ' +
        'preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, ' +
        '2 No preemption victims found for incoming pod.',
    );
    const onlyTaints = new InMemoryCluster();
    for (const name of ['t1', 't2', 't3']) {
      onlyTaints.addNode(
        makeNode(name, { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] }),
      );
    }
    onlyTaints.addPod(makePod('p'));
    await onlyTaints.cycle();
    assert.equal(
      onlyTaints.messages.get('default/p'),
      '0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: gpu}. ' +
        'preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.',
    );
  });

  test('removing a victim updates what other plugins counted: anti-affinity resolved by preemption', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a'));
    cluster.addPod(makePod('web-old', { nodeName: 'a', priority: 1, labels: { app: 'web' } }));
    cluster.addPod(makePod('keeper', { nodeName: 'a', priority: 1, labels: { app: 'db' } }));
    cluster.addPod(
      makePod('web-new', {
        priority: 100,
        affinity: {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { labelSelector: { matchLabels: { app: 'web' } }, topologyKey: 'kubernetes.io/hostname' },
            ],
          },
        },
      }),
    );
    await cluster.cycle();
    assert.equal(
      cluster.messages.get('default/web-new'),
      "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules.",
    );
    // Only the pod in the way goes; the other low-priority pod is reprieved.
    assert.deepEqual(cluster.evicted, ['default/web-old']);
    assert.equal(cluster.nominated.get('default/web-new'), 'a');
  });

  test('a pod with preemptionPolicy Never preempts nobody', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a', { cpu: '1' }));
    cluster.addPod(makePod('low', { cpu: '1', priority: 1 }));
    await cluster.cycle();
    cluster.addPod(makePod('polite', { cpu: '1', priority: 100, preemptionPolicy: 'Never' }));
    await cluster.cycle();
    assert.deepEqual(cluster.evicted, []);
    assert.equal(
      cluster.messages.get('default/polite'),
      '0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.',
    );
  });

  test('the node whose victims matter least is chosen', async () => {
    const cluster = new InMemoryCluster();
    cluster.addNode(makeNode('a', { cpu: '1' }));
    cluster.addNode(makeNode('b', { cpu: '1' }));
    cluster.addPod(makePod('on-a', { cpu: '1', priority: 5, nodeName: 'a' }));
    cluster.addPod(makePod('on-b', { cpu: '1', priority: 1, nodeName: 'b' }));
    cluster.addPod(makePod('vip', { cpu: '1', priority: 10 }));
    await cluster.cycle();
    assert.deepEqual(cluster.evicted, ['default/on-b']);
    assert.equal(cluster.nominated.get('default/vip'), 'b');
  });

  test("Kubernetes' order: highest victim priority, priority sum, count, latest start", () => {
    const pick = (...candidates: [string, Candidate['victims']][]) =>
      pickCandidate(candidates.map(([nodeName, victims]) => ({ nodeName, victims }))).nodeName;
    assert.equal(pick(['a', victimsOf([5])], ['b', victimsOf([3], [3])]), 'b');
    assert.equal(pick(['a', victimsOf([3], [2])], ['b', victimsOf([3], [1])]), 'b');
    // Negative priorities sum as Kubernetes does (offset by 2^31): fewer of them is better.
    assert.equal(pick(['a', victimsOf([-5], [-5])], ['b', victimsOf([-5])]), 'b');
    assert.equal(pick(['a', victimsOf([3], [1], [1])], ['b', victimsOf([3], [2])]), 'b');
    assert.equal(
      pick(['a', victimsOf([3, '2026-01-01T00:00:00Z'])], ['b', victimsOf([3, '2026-02-01T00:00:00Z'])]),
      'b',
    );
    assert.equal(pick(['a', victimsOf([3])], ['b', victimsOf([3])]), 'a');
  });
});
