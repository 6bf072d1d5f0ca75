import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InternalError } from '../../../proto/errors.js';
import { DeferredSnapshotter } from './deferred-snapshotter.js';
import type { Snapshotter } from './snapshotter.js';

test('a deferred snapshotter opens on its first call, once, and its name is known only then', async () => {
  let opens = 0;
  const calls: string[] = [];
  const real = {
    name: 'overlay',
    layersStack: true,
    stat: async (key: string) => {
      calls.push(`stat ${key}`);
      return { key, kind: 'committed' };
    },
    walk: async () => {
      calls.push('walk');
    },
  } as unknown as Snapshotter;
  const deferred = new DeferredSnapshotter(async () => {
    opens++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return real;
  });
  assert.equal(opens, 0, 'nothing opened by making it');
  assert.throws(() => deferred.layersStack, InternalError);
  await Promise.all([deferred.stat('a'), deferred.walk(() => undefined), deferred.stat('b')]);
  assert.equal(opens, 1, 'concurrent first calls share one opening');
  assert.deepEqual(calls.sort(), ['stat a', 'stat b', 'walk']);
  assert.equal(deferred.name, 'overlay');
  assert.equal(deferred.layersStack, true);
});

test('a snapshotter that fails to open fails every call with that error', async () => {
  const deferred = new DeferredSnapshotter(async () => {
    throw new Error('overlay probe: no helper');
  });
  await assert.rejects(deferred.stat('a'), /overlay probe: no helper/);
  await assert.rejects(
    deferred.walk(() => undefined),
    /overlay probe: no helper/,
  );
});
