import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Node, Pod, Taint } from '../../../proto/gen/types.js';
import {
  DEFAULT_EVICTION_RATES,
  TaintLimiter,
  evictionTime,
  noScheduleTaints,
  wantedNoExecuteKey,
  withManagedTaints,
  zoneOf,
  zoneRate,
  zoneState,
} from './node-health.js';

const node = (ready: string | undefined, extra: Partial<Node> = {}): Node => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'n1' },
  spec: {},
  status: { conditions: ready === undefined ? [] : [{ type: 'Ready', status: ready }] },
  ...extra,
});

const pod = (tolerations: Pod['spec']['tolerations']): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', namespace: 'default' },
  spec: { containers: [{ name: 'c', image: 'i' }], ...(tolerations ? { tolerations } : {}) },
});

const keys = (taints: readonly Taint[]) => taints.map((t) => `${t.key}:${t.effect}`);

describe('node taints from conditions', () => {
  test('Ready False, Unknown, missing, pressure and cordon each stand for their NoSchedule taint', () => {
    assert.deepEqual(keys(noScheduleTaints(node('True'))), []);
    assert.deepEqual(keys(noScheduleTaints(node('False'))), ['node.kubernetes.io/not-ready:NoSchedule']);
    assert.deepEqual(keys(noScheduleTaints(node(undefined))), ['node.kubernetes.io/not-ready:NoSchedule']);
    assert.deepEqual(keys(noScheduleTaints(node('Unknown'))), ['node.kubernetes.io/unreachable:NoSchedule']);
    const pressed = node('True', {
      spec: { unschedulable: true },
      status: {
        conditions: [
          { type: 'Ready', status: 'True' },
          { type: 'MemoryPressure', status: 'True' },
          { type: 'DiskPressure', status: 'False' },
        ],
      },
    });
    assert.deepEqual(keys(noScheduleTaints(pressed)), [
      'node.kubernetes.io/memory-pressure:NoSchedule',
      'node.kubernetes.io/unschedulable:NoSchedule',
    ]);
    assert.equal(wantedNoExecuteKey(node('True')), undefined);
    assert.equal(wantedNoExecuteKey(node('False')), 'node.kubernetes.io/not-ready');
    assert.equal(wantedNoExecuteKey(node('Unknown')), 'node.kubernetes.io/unreachable');
  });

  test("the operator's taints stay in their order, managed ones are replaced and keep timeAdded", () => {
    const old: Taint = {
      key: 'node.kubernetes.io/unreachable',
      effect: 'NoExecute',
      timeAdded: '2026-01-01T00:00:00Z',
    };
    const current = node('Unknown', {
      spec: {
        taints: [
          { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' },
          { key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' },
          old,
          { key: 'node.kubernetes.io/memory-pressure', effect: 'NoExecute' },
        ],
      },
    });
    const next = withManagedTaints(current, [
      { key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: '2026-06-01T00:00:00Z' },
    ]);
    assert.deepEqual(keys(next), [
      'dedicated:NoSchedule',
      // not a taint this controller gives (memory pressure is NoSchedule): the operator's
      'node.kubernetes.io/memory-pressure:NoExecute',
      'node.kubernetes.io/unreachable:NoSchedule',
      'node.kubernetes.io/unreachable:NoExecute',
    ]);
    assert.equal(next[3], old, 'the taint already there is kept as it was');
  });
});

describe('zones', () => {
  test('zone states and rates as Kubernetes computes them', () => {
    assert.equal(zoneState(3, 0, 0.55), 'Normal');
    assert.equal(zoneState(0, 1, 0.55), 'FullDisruption');
    assert.equal(zoneState(1, 2, 0.55), 'Normal', 'two nodes down are never a disruption');
    assert.equal(zoneState(2, 3, 0.55), 'PartialDisruption');
    assert.equal(zoneState(3, 3, 0.55), 'Normal');
    assert.equal(zoneRate('Normal', 10, DEFAULT_EVICTION_RATES), 0.1);
    assert.equal(zoneRate('FullDisruption', 10, DEFAULT_EVICTION_RATES), 0.1);
    assert.equal(zoneRate('PartialDisruption', 10, DEFAULT_EVICTION_RATES), 0);
    assert.equal(zoneRate('PartialDisruption', 51, DEFAULT_EVICTION_RATES), 0.01);
    const labelled = node('True', {
      metadata: {
        name: 'n',
        labels: { 'topology.kubernetes.io/zone': 'a', 'topology.kubernetes.io/region': 'r' },
      },
    });
    assert.notEqual(zoneOf(labelled), zoneOf(node('True')));
  });

  test('the limiter lets one taint through at once, then one per 1/rate seconds; rate 0 none', () => {
    const limiter = new TaintLimiter(0.1);
    assert.equal(limiter.tryTake(1000), true);
    assert.equal(limiter.tryTake(1001), false);
    assert.equal(limiter.waitMs(1001), 9999);
    assert.equal(limiter.tryTake(11_000), true);
    limiter.setRate(0.01);
    assert.equal(limiter.tryTake(21_000), false, 'a slower rate counts from the last taint');
    assert.equal(limiter.waitMs(21_000), 90_000);
    limiter.setRate(0);
    assert.equal(limiter.tryTake(1_000_000), false);
    assert.equal(limiter.waitMs(1_000_000), undefined);
  });
});

describe('eviction time', () => {
  const unreachable: Taint = {
    key: 'node.kubernetes.io/unreachable',
    effect: 'NoExecute',
    timeAdded: '2026-01-01T00:00:00Z',
  };
  const added = Date.parse(unreachable.timeAdded!);
  const addedAt = (seen: number) => (taint: Taint) => (taint.timeAdded ? Date.parse(taint.timeAdded) : seen);

  test('not tolerated: at once; tolerated without a limit: never; else the shortest limit after the taint', () => {
    assert.equal(evictionTime(pod(undefined), [unreachable], addedAt(5)), 0);
    assert.equal(evictionTime(pod([{ operator: 'Exists' }]), [unreachable], addedAt(5)), undefined);
    assert.equal(
      evictionTime(
        pod([
          {
            key: 'node.kubernetes.io/unreachable',
            operator: 'Exists',
            effect: 'NoExecute',
            tolerationSeconds: 300,
          },
          { key: 'node.kubernetes.io/unreachable', operator: 'Exists', tolerationSeconds: 60 },
        ]),
        [unreachable],
        addedAt(5),
      ),
      added + 60_000,
    );
    assert.equal(
      evictionTime(
        pod([{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoSchedule' }]),
        [unreachable],
        addedAt(5),
      ),
      0,
      'a NoSchedule toleration does not tolerate NoExecute',
    );
    assert.equal(evictionTime(pod(undefined), [], addedAt(5)), undefined, 'no NoExecute taint: never');
    const untimed: Taint = { key: 'k', effect: 'NoExecute' };
    assert.equal(
      evictionTime(pod([{ key: 'k', operator: 'Exists', tolerationSeconds: 10 }]), [untimed], addedAt(7_000)),
      17_000,
      'a taint without timeAdded counts from when it was first seen',
    );
    const forever: Taint = { key: 'a', effect: 'NoExecute', timeAdded: '2026-06-01T00:00:00Z' };
    assert.equal(
      evictionTime(
        pod([
          { key: 'a', operator: 'Exists' },
          { key: 'node.kubernetes.io/unreachable', operator: 'Exists', tolerationSeconds: 60 },
        ]),
        [unreachable, forever],
        addedAt(5),
      ),
      added + 60_000,
      'a later taint tolerated for ever does not move the clock',
    );
  });
});
