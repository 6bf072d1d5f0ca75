import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { filterAll, makeNode, makePod, scoreAll, snapshotOf } from '../testing.js';
import { TaintToleration } from './taint-toleration.js';

describe('TaintToleration', () => {
  const snapshot = snapshotOf([
    makeNode('plain'),
    makeNode('gpu', { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] }),
    makeNode('draining', { taints: [{ key: 'maintenance', effect: 'NoExecute' }] }),
    makeNode('soft', { taints: [{ key: 'spot', value: 'true', effect: 'PreferNoSchedule' }] }),
  ]);

  test('an untolerated NoSchedule or NoExecute taint refuses the node, in Kubernetes words', () => {
    const result = filterAll(new TaintToleration(), makePod('p'), snapshot);
    assert.equal(result.get('plain'), undefined);
    assert.deepEqual(result.get('gpu')?.reasons, ['node(s) had untolerated taint {dedicated: gpu}']);
    assert.equal(result.get('gpu')?.code, 'UnschedulableAndUnresolvable');
    assert.deepEqual(result.get('draining')?.reasons, ['node(s) had untolerated taint {maintenance: }']);
    // PreferNoSchedule only scores.
    assert.equal(result.get('soft'), undefined);
  });

  test('Equal needs the value, Exists any value; an empty effect tolerates every effect', () => {
    const equal = makePod('p', {
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }],
    });
    const wrongValue = makePod('p', { tolerations: [{ key: 'dedicated', value: 'cpu' }] });
    const exists = makePod('p', { tolerations: [{ key: 'dedicated', operator: 'Exists' }] });
    const wrongEffect = makePod('p', {
      tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoExecute' }],
    });
    assert.equal(filterAll(new TaintToleration(), equal, snapshot).get('gpu'), undefined);
    assert.ok(filterAll(new TaintToleration(), wrongValue, snapshot).get('gpu'));
    assert.equal(filterAll(new TaintToleration(), exists, snapshot).get('gpu'), undefined);
    assert.ok(filterAll(new TaintToleration(), wrongEffect, snapshot).get('gpu'));
  });

  test('the first untolerated taint in the node order is the reason', () => {
    const two = snapshotOf([
      makeNode('n', {
        taints: [
          { key: 'a', value: '1', effect: 'NoSchedule' },
          { key: 'b', value: '2', effect: 'NoSchedule' },
        ],
      }),
    ]);
    const tolerateA = makePod('p', { tolerations: [{ key: 'a', operator: 'Exists' }] });
    assert.deepEqual(filterAll(new TaintToleration(), tolerateA, two).get('n')?.reasons, [
      'node(s) had untolerated taint {b: 2}',
    ]);
  });

  test('score: fewer untolerated PreferNoSchedule taints is better', () => {
    const scores = scoreAll(new TaintToleration(), makePod('p'), snapshot)!;
    assert.equal(scores.get('plain'), 100);
    assert.equal(scores.get('soft'), 0);
    const tolerant = makePod('p', {
      tolerations: [{ key: 'spot', operator: 'Exists', effect: 'PreferNoSchedule' }],
    });
    assert.equal(scoreAll(new TaintToleration(), tolerant, snapshot)!.get('soft'), 100);
  });

  test('nothing to filter or score on a cluster without taints', () => {
    const clean = snapshotOf([makeNode('a')]);
    const plugin = new TaintToleration();
    assert.equal(plugin.preFilter(undefined, undefined as never, clean), 'skip');
    assert.equal(scoreAll(plugin, makePod('p'), clean), undefined);
  });
});
