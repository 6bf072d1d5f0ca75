import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Node, Pod, TopologySpreadConstraint } from '../../../proto/gen/types.js';
import { filterAll, makeNode, makePod, scoreAll, snapshotOf } from '../testing.js';
import {
  PodTopologySpread,
  REASON_CONSTRAINTS_NOT_MATCH,
  REASON_NODE_LABEL_NOT_MATCH,
} from './pod-topology-spread.js';

const ZONE = 'topology.kubernetes.io/zone';

function constraint(extra: Partial<TopologySpreadConstraint> = {}): TopologySpreadConstraint {
  return {
    maxSkew: 1,
    topologyKey: ZONE,
    whenUnsatisfiable: 'DoNotSchedule',
    labelSelector: { matchLabels: { app: 'web' } },
    ...extra,
  };
}

function web(name: string, nodeName?: string, extra: Parameters<typeof makePod>[1] = {}): Pod {
  return makePod(name, { labels: { app: 'web' }, ...(nodeName === undefined ? {} : { nodeName }), ...extra });
}

function fitting(result: Map<string, unknown>): string[] {
  return [...result]
    .filter(([, status]) => status === undefined)
    .map(([name]) => name)
    .sort();
}

const threeZones: Node[] = [
  makeNode('a1', { zone: 'a' }),
  makeNode('a2', { zone: 'a' }),
  makeNode('b1', { zone: 'b' }),
  makeNode('c1', { zone: 'c' }),
];

describe('PodTopologySpread filter', () => {
  test('matching pods + 1 − the fewest in a domain must stay within maxSkew', () => {
    const snapshot = snapshotOf(threeZones, [web('w0', 'a1'), web('w1', 'b1')]);
    const result = filterAll(
      new PodTopologySpread(),
      web('new', undefined, { topologySpreadConstraints: [constraint()] }),
      snapshot,
    );
    // a: 1, b: 1, c: 0 → only zone c keeps the skew at 1.
    assert.deepEqual(fitting(result), ['c1']);
    assert.deepEqual(result.get('a1'), {
      code: 'Unschedulable',
      reasons: [REASON_CONSTRAINTS_NOT_MATCH],
      plugin: 'PodTopologySpread',
    });
    const loose = filterAll(
      new PodTopologySpread(),
      web('new', undefined, { topologySpreadConstraints: [constraint({ maxSkew: 2 })] }),
      snapshot,
    );
    assert.deepEqual(fitting(loose), ['a1', 'a2', 'b1', 'c1']);
  });

  test('a node without the topology key is refused for good', () => {
    const snapshot = snapshotOf([...threeZones, makeNode('bare')]);
    const result = filterAll(
      new PodTopologySpread(),
      web('new', undefined, { topologySpreadConstraints: [constraint()] }),
      snapshot,
    );
    assert.deepEqual(result.get('bare'), {
      code: 'UnschedulableAndUnresolvable',
      reasons: [REASON_NODE_LABEL_NOT_MATCH],
      plugin: 'PodTopologySpread',
    });
    assert.equal(result.get('c1'), undefined);
  });

  test('a pod that does not match its own selector adds nothing to the domain', () => {
    const snapshot = snapshotOf(threeZones, [web('w0', 'a1')]);
    const other = makePod('other', { topologySpreadConstraints: [constraint({ maxSkew: 1 })] });
    // a: 1, b: 0 → skew on a would be 1 + 0 − 0 = 1: fits everywhere.
    assert.equal(fitting(filterAll(new PodTopologySpread(), other, snapshot)).length, 4);
  });

  test('pods of other namespaces and terminating pods do not count', () => {
    const snapshot = snapshotOf(threeZones, [
      web('elsewhere', 'a1', { namespace: 'other' }),
      web('leaving', 'b1', { deletionTimestamp: '2026-01-01T00:00:00Z' }),
    ]);
    const result = filterAll(
      new PodTopologySpread(),
      web('new', undefined, { topologySpreadConstraints: [constraint()] }),
      snapshot,
    );
    assert.equal(fitting(result).length, 4);
  });

  test('minDomains: with fewer domains than asked, the fewest counts as 0', () => {
    const snapshot = snapshotOf(threeZones, [web('w0', 'a1'), web('w1', 'b1'), web('w2', 'c1')]);
    const pod = web('new', undefined, { topologySpreadConstraints: [constraint({ minDomains: 5 })] });
    // every zone holds 1: 1 + 1 − 0 = 2 > 1 everywhere.
    assert.deepEqual(fitting(filterAll(new PodTopologySpread(), pod, snapshot)), []);
    const enough = web('new', undefined, { topologySpreadConstraints: [constraint({ minDomains: 3 })] });
    assert.equal(fitting(filterAll(new PodTopologySpread(), enough, snapshot)).length, 4);
  });

  test('nodeAffinityPolicy Honor (default): only domains of nodes the pod may use count', () => {
    const snapshot = snapshotOf(
      [
        makeNode('a1', { zone: 'a', labels: { pool: 'x' } }),
        makeNode('b1', { zone: 'b', labels: { pool: 'x' } }),
        makeNode('c1', { zone: 'c' }),
      ],
      [web('w0', 'a1')],
    );
    const honor = web('new', undefined, {
      nodeSelector: { pool: 'x' },
      topologySpreadConstraints: [constraint()],
    });
    // Domains a (1) and b (0); zone c is not the pod's: b1 fits, a1 does not.
    assert.deepEqual(fitting(filterAll(new PodTopologySpread(), honor, snapshot)), ['b1', 'c1']);
    const withB = snapshotOf(
      [
        makeNode('a1', { zone: 'a', labels: { pool: 'x' } }),
        makeNode('b1', { zone: 'b', labels: { pool: 'x' } }),
        makeNode('c1', { zone: 'c' }),
      ],
      [web('w0', 'a1'), web('w1', 'b1')],
    );
    // a 1, b 1 and c not counted: the fewest is 1, a1 and b1 fit (c1 is NodeAffinity's to refuse).
    assert.deepEqual(fitting(filterAll(new PodTopologySpread(), honor, withB)), ['a1', 'b1', 'c1']);
    const ignore = web('new', undefined, {
      nodeSelector: { pool: 'x' },
      topologySpreadConstraints: [constraint({ nodeAffinityPolicy: 'Ignore' })],
    });
    // Ignore: zone c (0) counts, so a1 and b1 (1 + 1 − 0) do not fit.
    assert.deepEqual(fitting(filterAll(new PodTopologySpread(), ignore, withB)), ['c1']);
  });

  test('nodeTaintsPolicy Honor: domains of nodes with untolerated taints do not count', () => {
    const nodes = [
      makeNode('a1', { zone: 'a' }),
      makeNode('b1', { zone: 'b' }),
      makeNode('c1', { zone: 'c', taints: [{ key: 'dedicated', value: 'x', effect: 'NoSchedule' }] }),
    ];
    const snapshot = snapshotOf(nodes, [web('w0', 'a1'), web('w1', 'b1')]);
    const ignore = web('new', undefined, { topologySpreadConstraints: [constraint()] });
    assert.deepEqual(fitting(filterAll(new PodTopologySpread(), ignore, snapshot)), ['c1']);
    const honor = web('new', undefined, {
      topologySpreadConstraints: [constraint({ nodeTaintsPolicy: 'Honor' })],
    });
    assert.deepEqual(fitting(filterAll(new PodTopologySpread(), honor, snapshot)), ['a1', 'b1', 'c1']);
  });

  test('matchLabelKeys narrows the selector to pods with the same value', () => {
    const snapshot = snapshotOf(threeZones, [
      web('old-0', 'a1', { labels: { app: 'web', rev: '1' } }),
      web('old-1', 'b1', { labels: { app: 'web', rev: '1' } }),
    ]);
    const pod = web('new', undefined, {
      labels: { app: 'web', rev: '2' },
      topologySpreadConstraints: [constraint({ matchLabelKeys: ['rev'] })],
    });
    assert.equal(fitting(filterAll(new PodTopologySpread(), pod, snapshot)).length, 4);
  });

  test('hostname spread over every node (the per-node index path)', () => {
    const nodes = [makeNode('n1'), makeNode('n2'), makeNode('n3')];
    const snapshot = snapshotOf(nodes, [web('w0', 'n1'), web('w1', 'n2')]);
    const pod = web('new', undefined, {
      topologySpreadConstraints: [constraint({ topologyKey: 'kubernetes.io/hostname' })],
    });
    assert.deepEqual(fitting(filterAll(new PodTopologySpread(), pod, snapshot)), ['n3']);
  });

  test('a pod without DoNotSchedule constraints is not checked', () => {
    assert.equal(
      fitting(filterAll(new PodTopologySpread(), web('p'), snapshotOf([makeNode('bare')]))).length,
      1,
    );
  });
});

describe('PodTopologySpread score', () => {
  test('ScheduleAnyway: fewer matching pods in the domain scores higher', () => {
    const snapshot = snapshotOf(threeZones, [web('w0', 'a1'), web('w1', 'a2'), web('w2', 'b1')]);
    const pod = web('new', undefined, {
      topologySpreadConstraints: [constraint({ whenUnsatisfiable: 'ScheduleAnyway' })],
    });
    const scores = scoreAll(new PodTopologySpread(), pod, snapshot)!;
    // weight log(3 + 2); raw a: 2·1.609 = 3, b: 1.609 → 2, c: 0 → 0; 100·(3 + 0 − s)/3.
    assert.deepEqual(Object.fromEntries(scores), { a1: 0, a2: 0, b1: 33, c1: 100 });
  });

  test('system defaults spread a controller pods by hostname and zone', () => {
    const snapshot = snapshotOf(threeZones, [
      makePod('r0', { nodeName: 'a1', owner: 'web' }),
      makePod('r1', { nodeName: 'a1', owner: 'web' }),
      makePod('stranger', { nodeName: 'c1' }),
    ]);
    const scores = scoreAll(new PodTopologySpread(), makePod('r2', { owner: 'web' }), snapshot)!;
    assert.ok(scores.get('a1')! < scores.get('a2')!, 'more of its siblings on the node, lower');
    assert.ok(scores.get('a2')! < scores.get('b1')!, 'more of its siblings in the zone, lower');
    assert.equal(scores.get('b1'), scores.get('c1'), 'pods of other owners do not count');
    // No controller: nothing to spread.
    assert.equal(scoreAll(new PodTopologySpread(), makePod('loose'), snapshot), undefined);
    assert.equal(
      scoreAll(new PodTopologySpread({ systemDefaults: false }), makePod('r2', { owner: 'web' }), snapshot),
      undefined,
    );
  });

  test('nodes missing a key of the pod own constraints score 0', () => {
    const snapshot = snapshotOf([...threeZones, makeNode('bare')], [web('w0', 'a1')]);
    const pod = web('new', undefined, {
      topologySpreadConstraints: [constraint({ whenUnsatisfiable: 'ScheduleAnyway' })],
    });
    assert.equal(scoreAll(new PodTopologySpread(), pod, snapshot)!.get('bare'), 0);
  });

  test('the counted path (node affinity honoured) agrees with Kubernetes counting', () => {
    const nodes = [
      makeNode('a1', { zone: 'a', labels: { pool: 'x' } }),
      makeNode('b1', { zone: 'b', labels: { pool: 'x' } }),
      makeNode('b2', { zone: 'b' }),
    ];
    const snapshot = snapshotOf(nodes, [web('w0', 'b2'), web('w1', 'b2'), web('w2', 'a1')]);
    const pod = web('new', undefined, {
      nodeSelector: { pool: 'x' },
      topologySpreadConstraints: [constraint({ whenUnsatisfiable: 'ScheduleAnyway' })],
    });
    const scores = scoreAll(new PodTopologySpread(), pod, snapshot)!;
    // Pods on b2 (not the pod's pool) do not count: a 1, b 0.
    assert.ok(scores.get('b1')! > scores.get('a1')!);
  });
});
