import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SchedulerCache } from './cache.js';
import { Snapshot } from './framework/snapshot.js';
import { makeNode, makePod } from './testing.js';

describe('SchedulerCache', () => {
  test('bound pods count on their node: requested resources, pods, ports', () => {
    const cache = new SchedulerCache();
    cache.addNode(makeNode('a'));
    cache.addPod(makePod('p1', { nodeName: 'a', cpu: '500m', memory: '1Gi', hostPorts: [80] }));
    cache.addPod(makePod('p2', { nodeName: 'a', cpu: '250m' }));
    const node = cache.snapshot().get('a')!;
    assert.equal(node.pods.length, 2);
    assert.equal(node.requested.milliCpu, 750);
    assert.equal(node.requested.memory, 1024 ** 3);
    assert.equal(node.usedPorts.conflicts({ ip: '0.0.0.0', protocol: 'TCP', port: 80 }), true);
    cache.removePod(makePod('p1', { nodeName: 'a' }));
    const after = cache.snapshot().get('a')!;
    assert.equal(after.requested.milliCpu, 250);
    assert.equal(after.usedPorts.size, 0);
  });

  test('pods of a node not known yet are kept and counted once it appears', () => {
    const cache = new SchedulerCache();
    cache.addPod(makePod('early', { nodeName: 'late', cpu: '1' }));
    const snapshot = cache.snapshot();
    assert.equal(snapshot.get('late'), undefined, 'no node, no NodeInfo in the snapshot');
    cache.addNode(makeNode('late'));
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.get('late')?.requested.milliCpu, 1000);
    // The node going away keeps its pods counted should it come back.
    cache.removeNode('late');
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.get('late'), undefined);
    assert.equal(snapshot.nodeCount, 0);
    cache.addNode(makeNode('late'));
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.get('late')?.pods.length, 1);
  });

  test('assume counts at once; forget undoes it; the informer confirms it', () => {
    const cache = new SchedulerCache();
    cache.addNode(makeNode('a'));
    const pod = makePod('p', { cpu: '1' });
    cache.assume(pod, 'a');
    assert.equal(cache.isAssumed('default/p'), true);
    assert.equal(cache.snapshot().get('a')?.requested.milliCpu, 1000);
    cache.forget(pod);
    assert.equal(cache.snapshot().get('a')?.requested.milliCpu, 0);
    cache.assume(pod, 'a');
    cache.finishBinding(pod, 0);
    cache.addPod({ ...pod, spec: { ...pod.spec, nodeName: 'a' } });
    assert.equal(cache.isAssumed('default/p'), false, 'confirmed');
    assert.deepEqual(cache.expireAssumedPods(10 ** 9), [], 'a confirmed pod never expires');
    assert.equal(cache.snapshot().get('a')?.pods.length, 1);
  });

  test('an assumed pod expires a TTL after its bind was written, unless confirmed; never before', () => {
    const cache = new SchedulerCache({ assumedTtlMs: 30_000 });
    cache.addNode(makeNode('a'));
    const pod = makePod('p', { cpu: '1' });
    cache.assume(pod, 'a');
    assert.deepEqual(cache.expireAssumedPods(10 ** 9), [], 'the bind is still being written');
    cache.finishBinding(pod, 1000);
    assert.deepEqual(cache.expireAssumedPods(30_999), []);
    assert.deepEqual(
      cache.expireAssumedPods(31_000).map((info) => info.key),
      ['default/p'],
    );
    assert.equal(cache.snapshot().get('a')?.pods.length, 0);
  });

  test('a status report of a bound pod changes nothing; its labels or termination do', () => {
    const cache = new SchedulerCache();
    cache.addNode(makeNode('a'));
    const pod = makePod('p', { nodeName: 'a', labels: { app: 'x' } });
    cache.addPod(pod);
    const snapshot = cache.snapshot();
    const before = snapshot.get('a');
    cache.updatePod({ ...pod, status: { ...pod.status, phase: 'Running', podIP: '10.244.0.5' } });
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.get('a'), before);
    cache.updatePod({ ...pod, metadata: { ...pod.metadata, labels: { app: 'y' } } });
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.get('a')?.pods[0]?.labels.app, 'y');
  });

  test('the informer placing the pod elsewhere than assumed moves it', () => {
    const cache = new SchedulerCache();
    cache.addNode(makeNode('a'));
    cache.addNode(makeNode('b'));
    const pod = makePod('p', { cpu: '1' });
    cache.assume(pod, 'a');
    cache.addPod({ ...pod, spec: { ...pod.spec, nodeName: 'b' } });
    const snapshot = cache.snapshot();
    assert.equal(snapshot.get('a')?.pods.length, 0);
    assert.equal(snapshot.get('b')?.pods.length, 1);
  });

  test('a snapshot copies only the NodeInfos that changed since its last update', () => {
    const cache = new SchedulerCache();
    for (let i = 0; i < 100; i++) cache.addNode(makeNode(`n${i}`));
    const snapshot = new Snapshot();
    cache.updateSnapshot(snapshot);
    const before = new Map(snapshot.nodes.map((node) => [node.name, node]));
    cache.addPod(makePod('p', { nodeName: 'n7', cpu: '1' }));
    cache.updateSnapshot(snapshot);
    for (const node of snapshot.nodes) {
      if (node.name === 'n7') assert.notEqual(node, before.get('n7'), 'the changed node is a new copy');
      else assert.equal(node, before.get(node.name), `${node.name} is the same object`);
    }
    assert.ok(snapshot.get('n7')!.generation > before.get('n7')!.generation);
    // The copy is the snapshot's own: the cache changing later does not touch it.
    const copy = snapshot.get('n7')!;
    cache.addPod(makePod('q', { nodeName: 'n7', cpu: '1' }));
    assert.equal(copy.pods.length, 1);
    // Nothing changed: nothing copied.
    cache.updateSnapshot(snapshot);
    const again = snapshot.get('n7');
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.get('n7'), again);
  });

  test('a heartbeat copies no NodeInfo; a change the scheduler reads does', () => {
    const cache = new SchedulerCache();
    const node = makeNode('a');
    cache.addNode(node);
    const snapshot = cache.snapshot();
    const before = snapshot.get('a');
    const beat = {
      ...node,
      status: {
        ...node.status,
        conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2026-01-01T00:00:10Z' }],
      },
    };
    cache.updateNode(beat);
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.get('a'), before);
    cache.updateNode({
      ...beat,
      status: { ...beat.status, conditions: [{ type: 'Ready', status: 'False' }] },
    });
    cache.updateSnapshot(snapshot);
    assert.notEqual(snapshot.get('a'), before);
    assert.equal(snapshot.notReadyNodeCount, 1);
  });

  test('snapshot lists interleave zones, and keep label, image and taint counts', () => {
    const cache = new SchedulerCache();
    for (const [name, zone] of [
      ['a1', 'a'],
      ['a2', 'a'],
      ['a3', 'a'],
      ['b1', 'b'],
      ['c1', 'c'],
    ] as const) {
      cache.addNode(makeNode(name, { zone, images: [{ names: ['app:1'], sizeBytes: 1 }] }));
    }
    cache.addNode(makeNode('t', { zone: 'c', taints: [{ key: 'k', effect: 'NoSchedule' }] }));
    const snapshot = cache.snapshot();
    assert.deepEqual(
      snapshot.nodes.map((n) => n.name),
      ['a1', 'b1', 'c1', 'a2', 't', 'a3'],
    );
    assert.equal(snapshot.labelValueCount('topology.kubernetes.io/zone'), 3);
    assert.equal(snapshot.nodesWithLabel('topology.kubernetes.io/zone'), 6);
    assert.equal(snapshot.nodesWithLabel('kubernetes.io/hostname'), 6);
    assert.equal(snapshot.nodesWithLabel('disk'), 0);
    assert.equal(snapshot.imageNodeCount('app:1'), 5);
    assert.equal(snapshot.nodesWithHardTaints, 1);
    cache.updateNode(makeNode('t', { zone: 'd' }));
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.labelValueCount('topology.kubernetes.io/zone'), 4);
    assert.equal(snapshot.nodesWithHardTaints, 0);
  });
});
