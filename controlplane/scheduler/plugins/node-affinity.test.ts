import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeSelectorRequirement } from '../../../proto/gen/types.js';
import { filterAll, makeNode, makePod, scoreAll, snapshotOf } from '../testing.js';
import { NodeAffinity, REASON_NODE_AFFINITY } from './node-affinity.js';

const snapshot = snapshotOf([
  makeNode('small', { labels: { disk: 'ssd', cores: '4', tier: 'web' } }),
  makeNode('large', { labels: { disk: 'hdd', cores: '64' } }),
  makeNode('odd', { labels: { cores: 'many' } }),
]);

function fitting(...expressions: NodeSelectorRequirement[]): string[] {
  const pod = makePod('p', {
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: expressions }],
        },
      },
    },
  });
  const result = filterAll(new NodeAffinity(), pod, snapshot);
  return [...result]
    .filter(([, status]) => status === undefined)
    .map(([name]) => name)
    .sort();
}

describe('NodeAffinity', () => {
  test('nodeSelector: every label equal; refusal in Kubernetes words, not resolvable by preemption', () => {
    const result = filterAll(new NodeAffinity(), makePod('p', { nodeSelector: { disk: 'ssd' } }), snapshot);
    assert.equal(result.get('small'), undefined);
    assert.deepEqual(result.get('large')?.reasons, [REASON_NODE_AFFINITY]);
    assert.equal(result.get('large')?.code, 'UnschedulableAndUnresolvable');
  });

  test('operators In, NotIn, Exists, DoesNotExist, Gt, Lt', () => {
    assert.deepEqual(fitting({ key: 'disk', operator: 'In', values: ['ssd', 'nvme'] }), ['small']);
    // NotIn and DoesNotExist hold on nodes without the label.
    assert.deepEqual(fitting({ key: 'disk', operator: 'NotIn', values: ['ssd'] }), ['large', 'odd']);
    assert.deepEqual(fitting({ key: 'tier', operator: 'Exists' }), ['small']);
    assert.deepEqual(fitting({ key: 'tier', operator: 'DoesNotExist' }), ['large', 'odd']);
    // Gt / Lt compare integers; a label that is not an integer never matches.
    assert.deepEqual(fitting({ key: 'cores', operator: 'Gt', values: ['8'] }), ['large']);
    assert.deepEqual(fitting({ key: 'cores', operator: 'Lt', values: ['8'] }), ['small']);
  });

  test('expressions of a term all hold; any term may', () => {
    assert.deepEqual(
      fitting({ key: 'disk', operator: 'Exists' }, { key: 'cores', operator: 'Gt', values: ['8'] }),
      ['large'],
    );
    const either = makePod('p', {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] },
              { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['odd'] }] },
            ],
          },
        },
      },
    });
    const result = filterAll(new NodeAffinity(), either, snapshot);
    assert.deepEqual(
      [...result]
        .filter(([, s]) => s === undefined)
        .map(([n]) => n)
        .sort(),
      ['odd', 'small'],
    );
  });

  test('nodeSelector and required affinity must both hold', () => {
    const pod = makePod('p', {
      nodeSelector: { disk: 'hdd' },
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'cores', operator: 'Lt', values: ['8'] }] }],
          },
        },
      },
    });
    assert.ok([...filterAll(new NodeAffinity(), pod, snapshot).values()].every((s) => s !== undefined));
  });

  test('a pod without a selector or required affinity is not checked', () => {
    const result = filterAll(new NodeAffinity(), makePod('p'), snapshot);
    assert.ok([...result.values()].every((s) => s === undefined));
  });

  test('score: the weights of matched preferred terms, the best node at 100', () => {
    const pod = makePod('p', {
      affinity: {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 20,
              preference: { matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] },
            },
            {
              weight: 80,
              preference: { matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['8'] }] },
            },
          ],
        },
      },
    });
    const scores = scoreAll(new NodeAffinity(), pod, snapshot)!;
    assert.deepEqual(Object.fromEntries(scores), { small: 25, large: 100, odd: 0 });
    assert.equal(scoreAll(new NodeAffinity(), makePod('q'), snapshot), undefined);
  });
});
