import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { filterAll, makeNode, makePod, scoreAll, snapshotOf } from '../testing.js';
import { NodeResourcesFit } from './node-resources-fit.js';

describe('NodeResourcesFit', () => {
  test('requests must fit in allocatable minus what the node holds; each short resource is a reason', () => {
    const snapshot = snapshotOf(
      [makeNode('a', { cpu: '2', memory: '4Gi' })],
      [makePod('held', { nodeName: 'a', cpu: '1500m', memory: '3Gi' })],
    );
    const plugin = new NodeResourcesFit();
    assert.equal(
      filterAll(plugin, makePod('fits', { cpu: '500m', memory: '1Gi' }), snapshot).get('a'),
      undefined,
    );
    const memory = filterAll(plugin, makePod('big', { cpu: '100m', memory: '2Gi' }), snapshot).get('a');
    assert.deepEqual(memory?.reasons, ['Insufficient memory']);
    assert.equal(memory?.code, 'Unschedulable');
    const both = filterAll(plugin, makePod('bigger', { cpu: '1', memory: '2Gi' }), snapshot).get('a');
    assert.deepEqual(both?.reasons, ['Insufficient cpu', 'Insufficient memory']);
  });

  test('one pod more than the node takes is "Too many pods", even for a pod that requests nothing', () => {
    const snapshot = snapshotOf([makeNode('a', { pods: 1 })], [makePod('held', { nodeName: 'a' })]);
    assert.deepEqual(filterAll(new NodeResourcesFit(), makePod('p'), snapshot).get('a')?.reasons, [
      'Too many pods',
    ]);
  });

  test('extended resources and ephemeral storage are counted by name', () => {
    const snapshot = snapshotOf([
      makeNode('gpu', { extended: { 'example.com/gpu': '2' }, ephemeralStorage: '10Gi' }),
      makeNode('plain', { ephemeralStorage: '1Gi' }),
    ]);
    const pod = makePod('p', { requests: { 'example.com/gpu': '2', 'ephemeral-storage': '2Gi' } });
    const result = filterAll(new NodeResourcesFit(), pod, snapshot);
    assert.equal(result.get('gpu'), undefined);
    assert.deepEqual(result.get('plain')?.reasons, [
      'Insufficient ephemeral-storage',
      'Insufficient example.com/gpu',
    ]);
  });

  test('init containers count alone (the largest), sidecars alongside, plus the overhead', () => {
    const snapshot = snapshotOf([makeNode('a', { cpu: '3', memory: '8Gi' })]);
    const pod = makePod('p', {
      cpu: '1',
      overhead: { cpu: '250m' },
      initContainers: [
        { name: 'setup', resources: { requests: { cpu: '2500m' } } },
        { name: 'proxy', restartPolicy: 'Always', resources: { requests: { cpu: '500m' } } },
        { name: 'late', resources: { requests: { cpu: '2' } } },
      ],
    });
    // max(1 + 0.5 sidecar, 2.5 setup, 2 late + 0.5 sidecar) + 0.25 overhead = 2.75: fits 3.
    assert.equal(filterAll(new NodeResourcesFit(), pod, snapshot).get('a'), undefined);
    pod.spec.overhead = { cpu: '600m' };
    assert.deepEqual(filterAll(new NodeResourcesFit(), pod, snapshot).get('a')?.reasons, [
      'Insufficient cpu',
    ]);
  });

  test('a request of zero fits an overcommitted node', () => {
    const snapshot = snapshotOf(
      [makeNode('a', { cpu: '1' })],
      [makePod('held', { nodeName: 'a', cpu: '2' })],
    );
    assert.equal(
      filterAll(new NodeResourcesFit(), makePod('p', { memory: '1Mi' }), snapshot).get('a'),
      undefined,
    );
  });

  test('LeastAllocated: the emptier node scores higher; missing requests count 100m / 200Mi', () => {
    const snapshot = snapshotOf(
      [makeNode('empty', { cpu: '4', memory: '8Gi' }), makeNode('half', { cpu: '4', memory: '8Gi' })],
      [makePod('held', { nodeName: 'half', cpu: '2', memory: '4Gi' })],
    );
    const scores = scoreAll(new NodeResourcesFit(), makePod('p', { cpu: '1', memory: '2Gi' }), snapshot)!;
    // empty: cpu (4-1)/4 = 75, memory (8-2)/8 = 75 → 75; half: (4-3)/4 = 25, (8-6)/8 = 25 → 25.
    assert.equal(scores.get('empty'), 75);
    assert.equal(scores.get('half'), 25);
    const bestEffort = scoreAll(new NodeResourcesFit(), makePod('be'), snapshot)!;
    // empty: cpu (4000-100)/4000 → 97, memory (8192-200)/8192 Mi → 97.
    assert.equal(bestEffort.get('empty'), 97);
  });
});
