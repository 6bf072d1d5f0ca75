import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Node } from '../../proto/gen/types.js';
import { changesRoutes, peersOf, unroutedNotices } from './peer-routing.js';

const node = (name: string, podCIDR?: string, internalIP?: string): Node =>
  ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec: podCIDR ? { podCIDR } : {},
    status: {
      addresses: [
        { type: 'Hostname', address: name },
        ...(internalIP ? [{ type: 'InternalIP', address: internalIP }] : []),
      ],
    },
  }) as Node;

describe('peer routing', () => {
  test('every other node with a pod CIDR and an InternalIP is a peer, by name', () => {
    assert.deepEqual(
      peersOf(
        [
          node('n3', '10.244.3.0/24', '172.31.7.4'),
          node('n1', '10.244.1.0/24', '172.31.7.2'),
          node('n2', '10.244.2.0/24', '172.31.7.3'),
          node('no-cidr-yet', undefined, '172.31.7.5'),
          node('no-address-yet', '10.244.6.0/24'),
        ],
        'n1',
      ),
      [
        { node: 'n2', podCIDR: '10.244.2.0/24', address: '172.31.7.3' },
        { node: 'n3', podCIDR: '10.244.3.0/24', address: '172.31.7.4' },
      ],
    );
  });

  test('only a change of pod CIDR or InternalIP can change a route', () => {
    const n2 = node('n2', '10.244.2.0/24', '172.31.7.3');
    const notReady = {
      ...n2,
      status: { ...n2.status, conditions: [{ type: 'Ready', status: 'False' }] },
    } as Node;
    assert.equal(changesRoutes(n2, notReady), false);
    assert.equal(changesRoutes(n2, node('n2', '10.244.2.0/24', '172.31.7.30')), true);
    assert.equal(changesRoutes(node('n2', undefined, '172.31.7.3'), n2), true);
  });

  test('unrouted peers are named one Event each, or past five in one Event that counts them', () => {
    const peer = (i: number) => ({ node: `n${i}`, reason: 'why' });
    assert.deepEqual(unroutedNotices([peer(2)]), [
      { type: 'Warning', reason: 'NodeNotRouted', message: 'Pods of node n2 are unreachable from here: why' },
    ]);
    assert.equal(unroutedNotices([1, 2, 3, 4, 5].map(peer)).length, 5);
    assert.deepEqual(unroutedNotices([1, 2, 3, 4, 5, 6, 7].map(peer)), [
      {
        type: 'Warning',
        reason: 'NodeNotRouted',
        message: 'Pods of 7 nodes are unreachable from here: n1 (why); n2 (why); n3 (why); and 4 more',
      },
    ]);
    assert.deepEqual(unroutedNotices([]), []);
  });
});
