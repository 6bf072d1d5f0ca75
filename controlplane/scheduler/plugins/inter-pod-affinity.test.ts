import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Namespace, PodAffinityTerm } from '../../../proto/gen/types.js';
import { SchedulerCache } from '../cache.js';
import { filterAll, makeNode, makePod, scoreAll, snapshotOf } from '../testing.js';
import {
  InterPodAffinity,
  REASON_AFFINITY,
  REASON_ANTI_AFFINITY,
  REASON_EXISTING_ANTI_AFFINITY,
} from './inter-pod-affinity.js';

const ZONE = 'topology.kubernetes.io/zone';

function term(
  labels: Record<string, string>,
  topologyKey = ZONE,
  extra: Partial<PodAffinityTerm> = {},
): PodAffinityTerm {
  return { labelSelector: { matchLabels: labels }, topologyKey, ...extra };
}

const nodes = [
  makeNode('a1', { zone: 'a' }),
  makeNode('a2', { zone: 'a' }),
  makeNode('b1', { zone: 'b' }),
  makeNode('nozone'),
];

function fitting(result: Map<string, unknown>): string[] {
  return [...result]
    .filter(([, status]) => status === undefined)
    .map(([name]) => name)
    .sort();
}

describe('InterPodAffinity', () => {
  test('required affinity: a node in a domain holding a matching pod; nodes without the key never', () => {
    const snapshot = snapshotOf(nodes, [makePod('cache', { nodeName: 'a1', labels: { app: 'cache' } })]);
    const pod = makePod('web', {
      affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'cache' })] } },
    });
    const result = filterAll(new InterPodAffinity(), pod, snapshot);
    assert.deepEqual(fitting(result), ['a1', 'a2']);
    assert.deepEqual(result.get('b1'), {
      code: 'UnschedulableAndUnresolvable',
      reasons: [REASON_AFFINITY],
      plugin: 'InterPodAffinity',
    });
    assert.deepEqual(result.get('nozone')?.reasons, [REASON_AFFINITY]);
  });

  test('the first pod of a group with affinity to itself may go anywhere the keys are', () => {
    const pod = makePod('first', {
      labels: { app: 'db' },
      affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'db' })] } },
    });
    assert.deepEqual(fitting(filterAll(new InterPodAffinity(), pod, snapshotOf(nodes))), ['a1', 'a2', 'b1']);
    // Not when it does not match its own terms.
    const other = makePod('other', {
      affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'db' })] } },
    });
    assert.deepEqual(fitting(filterAll(new InterPodAffinity(), other, snapshotOf(nodes))), []);
  });

  test('required anti-affinity: no matching pod in the node domain; preemption may help', () => {
    const snapshot = snapshotOf(nodes, [makePod('web-0', { nodeName: 'a1', labels: { app: 'web' } })]);
    const pod = makePod('web-1', {
      labels: { app: 'web' },
      affinity: {
        podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'web' })] },
      },
    });
    const result = filterAll(new InterPodAffinity(), pod, snapshot);
    assert.deepEqual(fitting(result), ['b1', 'nozone']);
    assert.deepEqual(result.get('a2')?.reasons, [REASON_ANTI_AFFINITY]);
    assert.equal(result.get('a2')?.code, 'Unschedulable');
  });

  test("existing pods' anti-affinity keeps matching pods out of their domain", () => {
    const loner = makePod('loner', {
      nodeName: 'b1',
      affinity: {
        podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ noisy: 'yes' })] },
      },
    });
    const snapshot = snapshotOf(nodes, [loner]);
    const result = filterAll(new InterPodAffinity(), makePod('p', { labels: { noisy: 'yes' } }), snapshot);
    assert.deepEqual(result.get('b1')?.reasons, [REASON_EXISTING_ANTI_AFFINITY]);
    assert.deepEqual(fitting(result), ['a1', 'a2', 'nozone']);
    assert.deepEqual(fitting(filterAll(new InterPodAffinity(), makePod('quiet'), snapshot)), [
      'a1',
      'a2',
      'b1',
      'nozone',
    ]);
  });

  test('terms match pods of the pod namespace by default, of named namespaces, or by namespaceSelector', () => {
    const elsewhere = makePod('cache', { namespace: 'infra', nodeName: 'b1', labels: { app: 'cache' } });
    const cache = new SchedulerCache();
    for (const node of nodes) cache.addNode(node);
    cache.addPod(elsewhere);
    const namespace: Namespace = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'infra', labels: { team: 'infra' } },
      spec: {},
    };
    cache.addNamespace(namespace);
    const snapshot = cache.snapshot();
    const affinity = (t: PodAffinityTerm) =>
      makePod('web', { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [t] } } });
    assert.deepEqual(
      fitting(filterAll(new InterPodAffinity(), affinity(term({ app: 'cache' })), snapshot)),
      [],
    );
    assert.deepEqual(
      fitting(
        filterAll(
          new InterPodAffinity(),
          affinity(term({ app: 'cache' }, ZONE, { namespaces: ['infra'] })),
          snapshot,
        ),
      ),
      ['b1'],
    );
    assert.deepEqual(
      fitting(
        filterAll(
          new InterPodAffinity(),
          affinity(term({ app: 'cache' }, ZONE, { namespaceSelector: { matchLabels: { team: 'infra' } } })),
          snapshot,
        ),
      ),
      ['b1'],
    );
    assert.deepEqual(
      fitting(
        filterAll(
          new InterPodAffinity(),
          affinity(term({ app: 'cache' }, ZONE, { namespaceSelector: {} })),
          snapshot,
        ),
      ),
      ['b1'],
    );
  });

  test('matchLabelKeys takes the value from the pod', () => {
    const snapshot = snapshotOf(nodes, [
      makePod('v1', { nodeName: 'a1', labels: { app: 'web', version: '1' } }),
      makePod('v2', { nodeName: 'b1', labels: { app: 'web', version: '2' } }),
    ]);
    const pod = makePod('new', {
      labels: { app: 'web', version: '2' },
      affinity: {
        podAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: [
            term({ app: 'web' }, ZONE, { matchLabelKeys: ['version'] }),
          ],
        },
      },
    });
    assert.deepEqual(fitting(filterAll(new InterPodAffinity(), pod, snapshot)), ['b1']);
  });

  test('a pod placed after the snapshot was taken counts in the next one (indexes kept up to date)', () => {
    const cache = new SchedulerCache();
    for (const node of nodes) cache.addNode(node);
    const snapshot = cache.snapshot();
    const pod = makePod('web-1', {
      labels: { app: 'web' },
      affinity: {
        podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'web' })] },
      },
    });
    assert.equal(fitting(filterAll(new InterPodAffinity(), pod, snapshot)).length, 4);
    cache.addPod(makePod('web-0', { nodeName: 'b1', labels: { app: 'web' } }));
    cache.updateSnapshot(snapshot);
    assert.deepEqual(fitting(filterAll(new InterPodAffinity(), pod, snapshot)), ['a1', 'a2', 'nozone']);
    cache.removePod(makePod('web-0', { nodeName: 'b1' }));
    cache.updateSnapshot(snapshot);
    assert.equal(fitting(filterAll(new InterPodAffinity(), pod, snapshot)).length, 4);
  });

  test('score: preferred affinity pulls, preferred anti-affinity pushes, scaled min–max', () => {
    const snapshot = snapshotOf(nodes, [
      makePod('cache', { nodeName: 'a1', labels: { app: 'cache' } }),
      makePod('noise', { nodeName: 'b1', labels: { app: 'noise' } }),
    ]);
    const pod = makePod('web', {
      affinity: {
        podAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 10, podAffinityTerm: term({ app: 'cache' }) },
          ],
        },
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 10, podAffinityTerm: term({ app: 'noise' }) },
          ],
        },
      },
    });
    const scores = scoreAll(new InterPodAffinity(), pod, snapshot)!;
    assert.deepEqual(Object.fromEntries(scores), { a1: 100, a2: 100, b1: 0, nozone: 50 });
  });

  test("score: existing pods' preferred and required affinity to this pod count too", () => {
    const fan = makePod('fan', {
      nodeName: 'b1',
      affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'star' })] } },
    });
    const scores = scoreAll(
      new InterPodAffinity(),
      makePod('star', { labels: { app: 'star' } }),
      snapshotOf(nodes, [fan]),
    )!;
    assert.equal(scores.get('b1'), 100);
    assert.equal(scores.get('a1'), 0);
  });

  test('nothing to do for a pod without terms in a cluster without affinity', () => {
    const plugin = new InterPodAffinity();
    const snapshot = snapshotOf(nodes, [makePod('x', { nodeName: 'a1' })]);
    assert.ok([...filterAll(plugin, makePod('p'), snapshot).values()].every((s) => s === undefined));
    assert.equal(scoreAll(plugin, makePod('p'), snapshot), undefined);
  });
});
