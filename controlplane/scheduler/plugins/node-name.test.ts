import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { filterAll, makeNode, makePod, snapshotOf } from '../testing.js';
import { NodeName, REASON_NODE_NAME } from './node-name.js';

describe('NodeName', () => {
  const snapshot = snapshotOf([makeNode('a'), makeNode('b')]);

  test('a pod naming a node fits only there', () => {
    const result = filterAll(new NodeName(), makePod('p', { nodeName: 'b' }), snapshot);
    assert.equal(result.get('b'), undefined);
    assert.deepEqual(result.get('a')?.reasons, [REASON_NODE_NAME]);
    assert.equal(result.get('a')?.code, 'UnschedulableAndUnresolvable');
  });

  test('a pod naming none fits every node (and needs no check)', () => {
    const result = filterAll(new NodeName(), makePod('p'), snapshot);
    assert.deepEqual([...result.values()], [undefined, undefined]);
  });
});
