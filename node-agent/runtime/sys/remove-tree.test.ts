import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeTree } from './remove-tree.js';

test('removes a nested tree, links themselves and not their targets', async () => {
  const base = await mkdtemp(join(tmpdir(), 'skiff-remove-tree-'));
  try {
    const outside = join(base, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'keep'), 'kept');
    const tree = join(base, 'tree');
    await mkdir(join(tree, 'a/b/c'), { recursive: true });
    await mkdir(join(tree, 'empty'));
    for (let i = 0; i < 150; i++) await writeFile(join(tree, 'a', `f${i}`), String(i));
    await symlink(outside, join(tree, 'a/b/link-to-dir'));
    await symlink(join(outside, 'keep'), join(tree, 'link-to-file'));
    await removeTree(tree);
    assert.equal(existsSync(tree), false);
    assert.equal(await readFile(join(outside, 'keep'), 'utf8'), 'kept');
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test('a missing tree or a plain file is fine', async () => {
  const base = await mkdtemp(join(tmpdir(), 'skiff-remove-tree-'));
  try {
    await removeTree(join(base, 'missing'));
    await writeFile(join(base, 'file'), 'x');
    await removeTree(join(base, 'file'));
    assert.equal(existsSync(join(base, 'file')), false);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
