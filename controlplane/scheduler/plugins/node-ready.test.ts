import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { filterAll, makeNode, makePod, snapshotOf } from '../testing.js';
import { NodeReady } from './node-ready.js';

describe('NodeReady', () => {
  const snapshot = snapshotOf([
    makeNode('ready'),
    makeNode('not-ready', { ready: 'False' }),
    makeNode('unknown', { ready: 'Unknown' }),
    makeNode('silent', { ready: null }),
  ]);

  test('a node not Ready is refused in the words of the taint Kubernetes would give it', () => {
    const result = filterAll(new NodeReady(), makePod('p'), snapshot);
    assert.equal(result.get('ready'), undefined);
    assert.deepEqual(result.get('not-ready')?.reasons, [
      'node(s) had untolerated taint {node.kubernetes.io/not-ready: }',
    ]);
    assert.deepEqual(result.get('unknown')?.reasons, [
      'node(s) had untolerated taint {node.kubernetes.io/unreachable: }',
    ]);
    // A node that never reported Ready is not ready.
    assert.deepEqual(result.get('silent')?.reasons, [
      'node(s) had untolerated taint {node.kubernetes.io/not-ready: }',
    ]);
    assert.equal(result.get('not-ready')?.code, 'UnschedulableAndUnresolvable');
  });

  test('pods tolerating the taint fit', () => {
    const tolerant = makePod('p', {
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoSchedule' },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists' },
      ],
    });
    const result = filterAll(new NodeReady(), tolerant, snapshot);
    assert.equal(result.get('not-ready'), undefined);
    assert.equal(result.get('unknown'), undefined);
  });

  test('a node already carrying the taint is left to TaintToleration (one reason, not two)', () => {
    const tainted = makeNode('tainted', {
      ready: 'False',
      taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }],
    });
    assert.equal(filterAll(new NodeReady(), makePod('p'), snapshotOf([tainted])).get('tainted'), undefined);
  });

  test('nothing to check while every node is Ready', () => {
    assert.equal(
      new NodeReady().preFilter(undefined, undefined as never, snapshotOf([makeNode('a')])),
      'skip',
    );
  });
});
