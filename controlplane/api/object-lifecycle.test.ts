import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConfigMap, Namespace, Pod } from '../../proto/gen/types.js';
import { strategyOf } from './kinds/index.js';
import {
  deletionComplete,
  generatedName,
  planDelete,
  prepareCreate,
  prepareStatusUpdate,
  prepareUpdate,
  randomNameSuffix,
} from './object-lifecycle.js';

const PODS = strategyOf('Pod');

const now = new Date('2026-01-02T03:04:05.678Z');

function pod(extra: Partial<Pod> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default', uid: 'u1', generation: 1, resourceVersion: '7' },
    spec: { containers: [{ name: 'c', image: 'busybox' }] },
    ...extra,
  };
}

describe('object lifecycle', () => {
  test('generated names use the suffix alphabet and stay within 63 characters', () => {
    const suffix = randomNameSuffix();
    assert.match(suffix, /^[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    assert.equal(generatedName('web-', 'abcde'), 'web-abcde');
    assert.equal(generatedName('x'.repeat(70), 'abcde').length, 63);
  });

  test('create copies the object and its metadata, keeping a hostile "__proto__" key a plain key', () => {
    const metadata = JSON.parse(
      '{"name": "web", "__proto__": {"polluted": "yes"}, "labels": {"a": "b"}}',
    ) as Pod['metadata'];
    const input = JSON.parse('{"__proto__": {"polluted": "yes"}}') as Record<string, unknown>;
    Object.assign(input, pod({ metadata }));
    const created = prepareCreate(input as unknown as Pod, strategyOf('Pod'), {
      now,
      uid: 'u2',
      name: 'web',
    });
    for (const object of [created, created.metadata]) {
      assert.equal(Object.getPrototypeOf(object), Object.prototype);
      assert.ok(Object.hasOwn(object, '__proto__'));
      assert.equal((object as Record<string, unknown>)['polluted'], undefined);
    }
    assert.notEqual(created.metadata, metadata);
    assert.deepEqual(Object.keys(metadata), ['name', '__proto__', 'labels'], 'the input is not changed');
    assert.equal(
      created.metadata.labels,
      metadata.labels,
      'nested fields are shared, as a spread shared them',
    );
  });

  test('create sets server fields, replaces status (a pod starts Pending) and drops client-set system fields', () => {
    const created = prepareCreate(
      pod({
        status: { phase: 'Running' },
        metadata: { name: '', namespace: '', resourceVersion: '9', generation: 5, deletionTimestamp: 'x' },
      }),
      strategyOf('Pod'),
      { now, uid: 'new-uid', name: 'web-abcde' },
    );
    assert.equal(created.metadata.name, 'web-abcde');
    assert.equal(created.metadata.namespace, 'default');
    assert.equal(created.metadata.uid, 'new-uid');
    assert.equal(created.metadata.generation, 1);
    assert.equal(created.metadata.creationTimestamp, '2026-01-02T03:04:05Z');
    assert.equal(created.metadata.resourceVersion, undefined);
    assert.equal(created.metadata.deletionTimestamp, undefined);
    assert.deepEqual((created as Pod).status, { phase: 'Pending' });
  });

  test('a namespace is created Active and cluster-scoped kinds lose any namespace', () => {
    const ns: Namespace = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'a', namespace: 'x' },
      spec: {},
    };
    const created = prepareCreate(ns, strategyOf('Namespace'), { now, uid: 'u', name: 'a' }) as Namespace;
    assert.equal(created.metadata.namespace, undefined);
    assert.deepEqual(created.status, { phase: 'Active' });
  });

  test('update bumps generation only when the spec changes, and keeps status and system fields', () => {
    const current = pod({ status: { phase: 'Running' } });
    const relabelled = prepareUpdate(
      pod({
        metadata: { ...current.metadata, labels: { a: 'b' }, uid: 'forged', generation: 99 },
        status: { phase: 'Failed' },
      }),
      current,
    ) as Pod;
    assert.equal(relabelled.metadata.generation, 1);
    assert.equal(relabelled.metadata.uid, 'u1');
    assert.deepEqual(relabelled.metadata.labels, { a: 'b' });
    assert.deepEqual(relabelled.status, { phase: 'Running' });
    const respecced = prepareUpdate(pod({ spec: { containers: [{ name: 'c', image: 'nginx' }] } }), current);
    assert.equal(respecced.metadata.generation, 2);
  });

  test('for kinds without spec, a data change bumps generation', () => {
    const cm = (data: Record<string, string>): ConfigMap => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'default', generation: 3 },
      data,
    });
    assert.equal(prepareUpdate(cm({ a: '1' }), cm({ a: '1' })).metadata.generation, 3);
    assert.equal(prepareUpdate(cm({ a: '2' }), cm({ a: '1' })).metadata.generation, 4);
  });

  test('status update takes only the status', () => {
    const current = pod();
    const next = prepareStatusUpdate(
      pod({ spec: { containers: [{ name: 'c', image: 'other' }] }, status: { phase: 'Running' } }),
      current,
    ) as Pod;
    assert.equal(next.spec.containers?.[0]?.image, 'busybox');
    assert.deepEqual(next.status, { phase: 'Running' });
  });

  test('delete removes plain objects and marks finalized ones, namespaces and bound pods', () => {
    assert.deepEqual(planDelete(pod(), PODS, undefined, now), { action: 'remove' });
    const finalized = planDelete(pod({ metadata: { name: 'w', finalizers: ['x/y'] } }), PODS, undefined, now);
    assert.equal(finalized.action, 'mark');
    const bound = planDelete(
      pod({ spec: { nodeName: 'n1', containers: [], terminationGracePeriodSeconds: 10 } }),
      PODS,
      undefined,
      now,
    );
    assert.ok(bound.action === 'mark');
    assert.equal(bound.object.metadata.deletionTimestamp, '2026-01-02T03:04:15Z');
    assert.equal(bound.object.metadata.deletionGracePeriodSeconds, 10);
    assert.deepEqual(planDelete(bound.object, PODS, undefined, now), { action: 'unchanged' });
    assert.deepEqual(planDelete(bound.object, PODS, 0, now), { action: 'remove' });
    const ns = planDelete(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' }, spec: {} },
      strategyOf('Namespace'),
      undefined,
      now,
    );
    assert.ok(ns.action === 'mark');
    assert.equal((ns.object as Namespace).status?.phase, 'Terminating');
  });

  test('Foreground and Orphan keep the object, marked with the finalizer the garbage collector reads', () => {
    const plain = pod();
    const foreground = planDelete(plain, PODS, undefined, now, 'Foreground');
    assert.ok(foreground.action === 'mark');
    assert.deepEqual(foreground.object.metadata.finalizers, ['foregroundDeletion']);
    assert.equal(foreground.object.metadata.deletionTimestamp, '2026-01-02T03:04:05Z');
    const orphan = planDelete(
      pod({ metadata: { name: 'w', finalizers: ['x/y'] } }),
      PODS,
      undefined,
      now,
      'Orphan',
    );
    assert.ok(orphan.action === 'mark');
    assert.deepEqual(orphan.object.metadata.finalizers, ['x/y', 'orphan']);
    assert.deepEqual(planDelete(plain, PODS, undefined, now, 'Background'), { action: 'remove' });
    // asked again with the finalizer there already: nothing changes
    assert.deepEqual(planDelete(foreground.object, PODS, undefined, now, 'Foreground'), {
      action: 'unchanged',
    });
    // a pod already marked keeps its deletion time when a propagation finalizer is added later
    const later = planDelete(foreground.object, PODS, undefined, new Date('2026-01-02T03:09:00Z'), 'Orphan');
    assert.ok(later.action === 'mark');
    assert.equal(later.object.metadata.deletionTimestamp, '2026-01-02T03:04:05Z');
  });

  test('removing the last finalizer of a marked object completes its deletion', () => {
    const marked = pod({
      metadata: { name: 'w', deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['a'] },
    });
    assert.equal(deletionComplete(marked, PODS), false);
    assert.equal(
      deletionComplete({ ...marked, metadata: { ...marked.metadata, finalizers: [] } }, PODS),
      true,
    );
  });
});
