import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, truncate, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OverlaySnapshotter } from '../../node-agent/runtime/snapshots/overlay-snapshotter.js';
import { snapshotterConformance } from './snapshotter-conformance.js';

snapshotterConformance('overlay', (root) => OverlaySnapshotter.open(root));

test('overlay mounts: bind for a base layer, lowerdir top first, read-only views', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-ovl-'));
  try {
    const s = await OverlaySnapshotter.open(join(dir, 'o'));
    const [base] = await s.prepare('a');
    assert.equal(base!.type, 'bind');
    assert.deepEqual(base!.options, ['rbind', 'rw']);
    await s.commit('A', 'a');
    await s.prepare('b', 'A');
    await s.commit('B', 'b');
    const [top] = await s.prepare('c', 'B');
    assert.equal(top!.type, 'overlay');
    const lower = top!.options
      .find((o) => o.startsWith('lowerdir='))!
      .slice(9)
      .split(':');
    assert.equal(lower.length, 2);
    assert.match(lower[0]!, /\/fs$/);
    assert.ok(top!.options.some((o) => o.startsWith('upperdir=')));
    assert.ok(top!.options.some((o) => o.startsWith('workdir=')));
    const [oneLayerView] = await s.view('v1', 'A');
    assert.deepEqual(oneLayerView!.options, ['rbind', 'ro']);
    const [twoLayerView] = await s.view('v2', 'B');
    assert.equal(twoLayerView!.type, 'overlay');
    assert.equal(twoLayerView!.options.length, 1);
    assert.equal((await s.writableLayer('c')).whiteouts, 'overlay');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a container record a power loss left empty counts as absent; cleanup drops it and its storage', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-ovl-'));
  try {
    const root = join(dir, 'o');
    const s = await OverlaySnapshotter.open(root);
    await s.prepare('base');
    await s.commit('L', 'base');
    await s.prepare('container-1', 'L');
    // what an unsynced record can look like after a crash: the name, no content
    const records = join(root, 'records');
    let truncated = 0;
    for (const n of await readdir(records)) {
      if ((await readFile(join(records, n), 'utf8')).includes('"container-1"')) {
        await truncate(join(records, n));
        truncated++;
      }
    }
    assert.equal(truncated, 1);
    await assert.rejects(s.stat('container-1'), /no such snapshot/);
    const keys: string[] = [];
    await s.walk((info) => void keys.push(info.key));
    assert.deepEqual(keys, ['L']);
    const old = new Date(Date.now() - 120_000);
    for (const id of await readdir(join(root, 'snapshots')))
      await utimes(join(root, 'snapshots', id), old, old);
    assert.equal(await s.cleanup(), 1);
    assert.equal((await readdir(records)).length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
