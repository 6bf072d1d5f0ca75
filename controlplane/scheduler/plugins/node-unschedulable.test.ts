import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { filterAll, makeNode, makePod, snapshotOf } from '../testing.js';
import { NodeUnschedulable, REASON_UNSCHEDULABLE } from './node-unschedulable.js';

describe('NodeUnschedulable', () => {
  const snapshot = snapshotOf([makeNode('open'), makeNode('cordoned', { unschedulable: true })]);

  test('a cordoned node is refused, as Kubernetes words it, and preemption cannot help', () => {
    const result = filterAll(new NodeUnschedulable(), makePod('p'), snapshot);
    assert.equal(result.get('open'), undefined);
    assert.deepEqual(result.get('cordoned')?.reasons, [REASON_UNSCHEDULABLE]);
    assert.equal(result.get('cordoned')?.code, 'UnschedulableAndUnresolvable');
    assert.equal(result.get('cordoned')?.plugin, 'NodeUnschedulable');
  });

  test('a pod tolerating node.kubernetes.io/unschedulable:NoSchedule fits a cordoned node', () => {
    const tolerant = makePod('ds', {
      tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }],
    });
    assert.equal(filterAll(new NodeUnschedulable(), tolerant, snapshot).get('cordoned'), undefined);
    const everything = makePod('all', { tolerations: [{ operator: 'Exists' }] });
    assert.equal(filterAll(new NodeUnschedulable(), everything, snapshot).get('cordoned'), undefined);
  });

  test('a toleration of another effect does not help', () => {
    const wrong = makePod('p', {
      tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoExecute' }],
    });
    assert.ok(filterAll(new NodeUnschedulable(), wrong, snapshot).get('cordoned'));
  });

  test('nothing to check while no node is cordoned', () => {
    const plugin = new NodeUnschedulable();
    assert.equal(plugin.preFilter(undefined, undefined as never, snapshotOf([makeNode('a')])), 'skip');
  });
});
