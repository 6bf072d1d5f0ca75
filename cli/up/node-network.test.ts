import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freeRouteMetric, unreachableRoutesToAdd } from './node-network.js';

const CIDRS = ['10.244.0.0/16', '10.96.0.0/12'];
const machine = [
  { dst: 'default', gateway: '192.0.2.1', dev: 'eth0' },
  { dst: '192.0.2.0/24', dev: 'eth0' },
];

describe("the machine's unreachable routes for a local cluster", () => {
  test('both are added with the cluster’s metric; those there already are kept', () => {
    assert.deepEqual(unreachableRoutesToAdd(machine, CIDRS, 3000), [
      'route add unreachable 10.244.0.0/16 metric 3000',
      'route add unreachable 10.96.0.0/12 metric 3000',
    ]);
    const ours = { dst: '10.244.0.0/16', type: 'unreachable', metric: 3000 };
    assert.deepEqual(unreachableRoutesToAdd([...machine, ours], CIDRS, 3000), [
      'route add unreachable 10.96.0.0/12 metric 3000',
    ]);
  });

  test("another cluster's unreachable routes stand beside ours: the next free metric is taken", () => {
    const other = [
      { dst: '10.244.0.0/16', type: 'unreachable', metric: 3000 },
      { dst: '10.96.0.0/12', type: 'unreachable', metric: 3000 },
      { dst: '10.244.0.0/16', type: 'unreachable', metric: 3001 },
    ];
    assert.equal(freeRouteMetric(machine, CIDRS), 3000);
    assert.equal(freeRouteMetric([...machine, ...other], CIDRS), 3002);
    assert.equal(unreachableRoutesToAdd([...machine, ...other], CIDRS, 3002).length, 2);
  });

  test('a machine that routes any part of them otherwise is refused, naming the route', () => {
    for (const route of [
      { dst: '10.0.0.0/8', gateway: '192.0.2.9', dev: 'tun0' },
      { dst: '10.244.7.0/24', dev: 'docker9' },
      { dst: '10.100.0.1', dev: 'wg0' },
    ])
      assert.throws(
        () => unreachableRoutesToAdd([...machine, route], CIDRS, 3000),
        new RegExp(
          `this machine routes ${route.dst.replaceAll('.', '\\.')}.* on ${route.dev}, which overlaps`,
        ),
      );
    // what lies beside them is no matter
    assert.equal(
      unreachableRoutesToAdd([...machine, { dst: '10.112.0.0/12', dev: 'x' }], CIDRS, 3000).length,
      2,
    );
  });
});
