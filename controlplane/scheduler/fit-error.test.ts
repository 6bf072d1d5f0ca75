import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fitErrorMessage, reasonHistogram } from './fit-error.js';
import { unresolvable, unschedulable, type Status } from './framework/types.js';

const taint = unresolvable('TaintToleration', 'node(s) had untolerated taint {dedicated: gpu}');
const memory = unschedulable('NodeResourcesFit', 'Insufficient memory');

describe('fitErrorMessage', () => {
  test("counts reasons per node, sorted and worded as Kubernetes' FailedScheduling", () => {
    const statuses = new Map<string, Status>([
      ['gpu-1', taint],
      ['small-1', memory],
      ['small-2', memory],
    ]);
    assert.equal(
      fitErrorMessage({
        numAllNodes: 3,
        nodeStatuses: statuses,
        postFilterMessage: 'preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.',
      }),
      '0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient memory. ' +
        'preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.',
    );
  });

  test('a node refused for several resources counts each', () => {
    const both = unschedulable('NodeResourcesFit', 'Insufficient cpu', 'Insufficient memory');
    assert.equal(
      fitErrorMessage({
        numAllNodes: 2,
        nodeStatuses: new Map([
          ['a', both],
          ['b', memory],
        ]),
      }),
      '0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory.',
    );
  });

  test('reasons sort as strings, as Go sort.Strings does ("10 …" before "2 …")', () => {
    const statuses: Status[] = [...Array(10).fill(memory), taint, taint];
    assert.deepEqual(reasonHistogram(statuses), [
      '10 Insufficient memory',
      '2 node(s) had untolerated taint {dedicated: gpu}',
    ]);
    // Upper case before lower case, byte order.
    assert.deepEqual(
      reasonHistogram([unschedulable('x', 'node(s) b'), unschedulable('x', 'Too many pods')]),
      ['1 Too many pods', '1 node(s) b'],
    );
  });

  test('a PreFilter refusal is told once, not per node', () => {
    assert.equal(
      fitErrorMessage({
        numAllNodes: 5,
        nodeStatuses: new Map([['a', memory]]),
        preFilterMessage: 'pod has unbound immediate PersistentVolumeClaims',
      }),
      '0/5 nodes are available: pod has unbound immediate PersistentVolumeClaims.',
    );
  });

  test('what preemption says follows with one period', () => {
    assert.equal(
      fitErrorMessage({
        numAllNodes: 1,
        nodeStatuses: new Map([['a', memory]]),
        postFilterMessage: 'preemption: not eligible due to preemptionPolicy=Never.',
      }),
      '0/1 nodes are available: 1 Insufficient memory. preemption: not eligible due to preemptionPolicy=Never.',
    );
  });
});
