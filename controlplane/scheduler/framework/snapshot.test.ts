import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SchedulerCache } from '../cache.js';
import { makeNode, makePod } from '../testing.js';
import { DomainCounts, type PodMatcher } from './snapshot.js';

const web: PodMatcher = { key: 'app=web', namespace: 'default', matches: (pod) => pod.labels.app === 'web' };

describe('pod count indexes', () => {
  test('count matching pods per node and per domain, kept up to date as pods and labels change', () => {
    const cache = new SchedulerCache();
    cache.addNode(makeNode('a1', { zone: 'a' }));
    cache.addNode(makeNode('b1', { zone: 'b' }));
    cache.addPod(makePod('w0', { nodeName: 'a1', labels: { app: 'web' } }));
    cache.addPod(makePod('other', { nodeName: 'a1', labels: { app: 'db' } }));
    cache.addPod(makePod('w-elsewhere', { nodeName: 'b1', namespace: 'x', labels: { app: 'web' } }));
    const snapshot = cache.snapshot();
    const index = snapshot.podCountIndex(web);
    assert.equal(index.countOn('a1'), 1);
    assert.equal(index.total, 1);
    const zones = index.domainCounts('topology.kubernetes.io/zone');
    assert.deepEqual([...zones.counts], [['a', 1]]);

    cache.addPod(makePod('w1', { nodeName: 'b1', labels: { app: 'web' } }));
    cache.addPod(makePod('w2', { nodeName: 'b1', labels: { app: 'web' } }));
    cache.updateSnapshot(snapshot);
    assert.equal(snapshot.podCountIndex(web), index, 'the same index, kept');
    assert.deepEqual(Object.fromEntries(zones.counts), { a: 1, b: 2 });

    // A node moving zone moves its pods' counts.
    cache.updateNode(makeNode('b1', { zone: 'a' }));
    cache.updateSnapshot(snapshot);
    assert.deepEqual(Object.fromEntries(zones.counts), { a: 3 });
    cache.removePod(makePod('w0', { nodeName: 'a1' }));
    cache.updateSnapshot(snapshot);
    assert.deepEqual(Object.fromEntries(zones.counts), { a: 2 });
    assert.equal(index.total, 2);
  });

  test('DomainCounts.minimum counts domains without pods as 0', () => {
    const counts = new DomainCounts();
    assert.equal(counts.minimum(3), 0);
    counts.add('a', 2);
    counts.add('b', 3);
    assert.equal(counts.minimum(3), 0);
    assert.equal(counts.minimum(2), 2);
    counts.add('a', -2);
    counts.add('c', 5);
    assert.equal(counts.minimum(2), 3);
  });
});
