import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pod } from '../../../proto/gen/types.js';
import { POD_DELETION_COST, podAvailable, podsToDelete } from './pod-ranking.js';

interface Shape {
  node?: string;
  phase?: string;
  readySince?: string;
  restarts?: number;
  created?: string;
  cost?: number;
}

const pod = (name: string, shape: Shape = {}): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name,
    namespace: 'default',
    creationTimestamp: shape.created ?? '2026-01-01T00:00:00Z',
    ...(shape.cost !== undefined ? { annotations: { [POD_DELETION_COST]: String(shape.cost) } } : {}),
  },
  spec: { ...(shape.node ? { nodeName: shape.node } : {}), containers: [{ name: 'c', image: 'i' }] },
  status: {
    phase: shape.phase ?? 'Running',
    conditions: [
      shape.readySince
        ? { type: 'Ready', status: 'True', lastTransitionTime: shape.readySince }
        : { type: 'Ready', status: 'False' },
    ],
    containerStatuses: [{ name: 'c', restartCount: shape.restarts ?? 0 } as never],
  },
});

const order = (pods: Pod[]) => podsToDelete(pods, pods.length).map((p) => p.metadata.name);
const READY = '2026-01-01T00:01:00Z';

describe('podsToDelete', () => {
  test('unbound before bound, Pending before Unknown before Running, not ready before ready', () => {
    assert.deepEqual(
      order([
        pod('running-ready', { node: 'a', readySince: READY }),
        pod('running', { node: 'a' }),
        pod('unknown', { node: 'a', phase: 'Unknown' }),
        pod('pending', { node: 'a', phase: 'Pending' }),
        pod('unbound', { phase: 'Pending' }),
      ]),
      ['unbound', 'pending', 'unknown', 'running', 'running-ready'],
    );
  });

  test('lower deletion cost, then the crowded node, then the shorter ready, more restarts, the newest', () => {
    assert.deepEqual(
      order([
        pod('cheap', { node: 'a', readySince: READY, cost: -5 }),
        pod('dear', { node: 'b', readySince: READY, cost: 10 }),
        pod('alone', { node: 'c', readySince: READY }),
        pod('crowded-1', { node: 'd', readySince: READY, created: '2026-01-01T00:00:01Z' }),
        pod('crowded-2', { node: 'd', readySince: READY, created: '2026-01-01T00:00:02Z' }),
      ]),
      ['cheap', 'crowded-2', 'crowded-1', 'alone', 'dear'],
    );
    assert.deepEqual(
      order([
        pod('ready-long', { node: 'a', readySince: '2026-01-01T00:00:10Z' }),
        pod('ready-short', { node: 'b', readySince: '2026-01-01T00:09:00Z' }),
      ]),
      ['ready-short', 'ready-long'],
    );
    assert.deepEqual(order([pod('calm', { node: 'a' }), pod('crashy', { node: 'b', restarts: 7 })]), [
      'crashy',
      'calm',
    ]);
    assert.deepEqual(podsToDelete([pod('x'), pod('y')], 0), []);
  });

  test('available once ready for minReadySeconds', () => {
    const p = pod('p', { node: 'a', readySince: '2026-01-01T00:00:00Z' });
    const at = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(podAvailable(p, 0, at), true);
    assert.equal(podAvailable(p, 5, at + 4000), false);
    assert.equal(podAvailable(p, 5, at + 5000), true);
    assert.equal(podAvailable(pod('q', { node: 'a' }), 0, at), false);
  });
});
