import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeNode, makePod, scoreAll, snapshotOf } from '../testing.js';
import { ImageLocality, imageScoreToNodeScore } from './image-locality.js';

const MIB = 1024 * 1024;

describe('ImageLocality', () => {
  test('Kubernetes thresholds: under 23 MiB counts nothing, 1000 MiB per container is the top', () => {
    assert.equal(imageScoreToNodeScore(10 * MIB, 1), 0);
    assert.equal(imageScoreToNodeScore(1000 * MIB, 1), 100);
    assert.equal(imageScoreToNodeScore(2000 * MIB, 1), 100);
    assert.equal(imageScoreToNodeScore(Math.round(23 * MIB + (977 * MIB) / 2), 1), 50);
  });

  test('a node holding the image scores by its size scaled by how many nodes hold it', () => {
    const image = { names: ['registry.local/app:1'], sizeBytes: 800 * MIB };
    const snapshot = snapshotOf([
      makeNode('has', { images: [image] }),
      makeNode('also', { images: [image] }),
      makeNode('none'),
      makeNode('none2'),
    ]);
    const scores = scoreAll(new ImageLocality(), makePod('p', { image: 'registry.local/app:1' }), snapshot)!;
    // 800 MiB · 2/4 = 400 MiB → (400 − 23) / (1000 − 23) · 100 = 38.
    assert.equal(scores.get('has'), 38);
    assert.equal(scores.get('none'), 0);
  });

  test('an untagged image name is :latest, on the node and in the pod', () => {
    const snapshot = snapshotOf([makeNode('has', { images: [{ names: ['app'], sizeBytes: 1000 * MIB }] })]);
    assert.equal(
      scoreAll(new ImageLocality(), makePod('p', { image: 'app:latest' }), snapshot)!.get('has'),
      100,
    );
  });

  test('skiff: a node holding some of the image layers gets that share of the credit', () => {
    const snapshot = snapshotOf([
      makeNode('full', {
        images: [{ names: ['app:2'], sizeBytes: 1000 * MIB, layers: ['l1', 'l2', 'l3', 'l4'] }],
      }),
      makeNode('base', {
        images: [{ names: ['app:1'], sizeBytes: 900 * MIB, layers: ['l1', 'l2', 'l3', 'x'] }],
      }),
    ]);
    const scores = scoreAll(new ImageLocality(), makePod('p', { image: 'app:2' }), snapshot)!;
    // full: 1000 · 1/2 = 500 MiB → 48; base: 1000 · 3/4 · 1/2 = 375 MiB → 36.
    assert.equal(scores.get('full'), 48);
    assert.equal(scores.get('base'), 36);
  });

  test('no node holds any of the images: nothing to score', () => {
    assert.equal(scoreAll(new ImageLocality(), makePod('p'), snapshotOf([makeNode('a')])), undefined);
  });
});
