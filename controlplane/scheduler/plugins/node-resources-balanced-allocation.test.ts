import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeNode, makePod, scoreAll, snapshotOf } from '../testing.js';
import { NodeResourcesBalancedAllocation } from './node-resources-balanced-allocation.js';

describe('NodeResourcesBalancedAllocation', () => {
  test('the node whose cpu and memory shares would be closest scores highest', () => {
    const snapshot = snapshotOf(
      [makeNode('cpu-heavy', { cpu: '4', memory: '8Gi' }), makeNode('balanced', { cpu: '4', memory: '8Gi' })],
      [
        makePod('a', { nodeName: 'cpu-heavy', cpu: '3', memory: '1Gi' }),
        makePod('b', { nodeName: 'balanced', cpu: '1', memory: '2Gi' }),
      ],
    );
    const scores = scoreAll(
      new NodeResourcesBalancedAllocation(),
      makePod('p', { cpu: '1', memory: '2Gi' }),
      snapshot,
    )!;
    // cpu-heavy: cpu 4/4 = 1, memory 3/8: (1 − 0.625/2)·100 = 68; balanced: 2/4 and 4/8: 100.
    assert.equal(scores.get('cpu-heavy'), 68);
    assert.equal(scores.get('balanced'), 100);
  });

  test('fractions are capped at 1', () => {
    const snapshot = snapshotOf([makeNode('a', { cpu: '1', memory: '1Gi' })]);
    const scores = scoreAll(
      new NodeResourcesBalancedAllocation(),
      makePod('p', { cpu: '4', memory: '512Mi' }),
      snapshot,
    )!;
    assert.equal(scores.get('a'), 75);
  });
});
