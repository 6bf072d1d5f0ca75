import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pod } from '../../../proto/gen/types.js';
import { filterAll, makeNode, makePod, snapshotOf } from '../testing.js';
import { NodePorts, REASON_NODE_PORTS } from './node-ports.js';

function withPort(pod: Pod, port: { hostPort: number; hostIP?: string; protocol?: string }): Pod {
  pod.spec.containers![0]!.ports = [{ containerPort: 80, ...port }];
  return pod;
}

describe('NodePorts', () => {
  test('a host port in use on the node refuses the node; preemption may help', () => {
    const snapshot = snapshotOf(
      [makeNode('a'), makeNode('b')],
      [makePod('web', { nodeName: 'a', hostPorts: [8080] })],
    );
    const result = filterAll(new NodePorts(), makePod('p', { hostPorts: [8080] }), snapshot);
    assert.deepEqual(result.get('a')?.reasons, [REASON_NODE_PORTS]);
    assert.equal(result.get('a')?.code, 'Unschedulable');
    assert.equal(result.get('b'), undefined);
  });

  test('another protocol or another port does not conflict', () => {
    const snapshot = snapshotOf([makeNode('a')], [makePod('web', { nodeName: 'a', hostPorts: [8080] })]);
    const udp = withPort(makePod('udp'), { hostPort: 8080, protocol: 'UDP' });
    assert.equal(filterAll(new NodePorts(), udp, snapshot).get('a'), undefined);
    assert.equal(
      filterAll(new NodePorts(), makePod('p', { hostPorts: [8081] }), snapshot).get('a'),
      undefined,
    );
  });

  test('addresses: the same IP conflicts, two different IPs do not, 0.0.0.0 conflicts with any', () => {
    const used = withPort(makePod('used', { nodeName: 'a' }), { hostPort: 53, hostIP: '10.0.0.1' });
    const snapshot = snapshotOf([makeNode('a')], [used]);
    const same = withPort(makePod('same'), { hostPort: 53, hostIP: '10.0.0.1' });
    const other = withPort(makePod('other'), { hostPort: 53, hostIP: '10.0.0.2' });
    const any = withPort(makePod('any'), { hostPort: 53 });
    assert.ok(filterAll(new NodePorts(), same, snapshot).get('a'));
    assert.equal(filterAll(new NodePorts(), other, snapshot).get('a'), undefined);
    assert.ok(filterAll(new NodePorts(), any, snapshot).get('a'));
    const wildcard = snapshotOf(
      [makeNode('a')],
      [withPort(makePod('w', { nodeName: 'a' }), { hostPort: 53 })],
    );
    assert.ok(filterAll(new NodePorts(), other, wildcard).get('a'));
  });

  test('hostNetwork makes container ports host ports', () => {
    const snapshot = snapshotOf([makeNode('a')], [makePod('web', { nodeName: 'a', hostPorts: [80] })]);
    const host = makePod('host');
    host.spec.hostNetwork = true;
    host.spec.containers![0]!.ports = [{ containerPort: 80 }];
    assert.ok(filterAll(new NodePorts(), host, snapshot).get('a'));
  });

  test('a pod without host ports is not checked', () => {
    assert.equal(new NodePorts().preFilter(undefined, { hostPorts: [] } as never), 'skip');
  });
});
