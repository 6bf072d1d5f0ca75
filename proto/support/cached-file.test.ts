import assert from 'node:assert/strict';
import { link, mkdtemp, open, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeFileAtomic } from './atomic-file.js';
import { CachedFiles } from './cached-file.js';

test('cached reads follow every change: atomic replace, link of a new file, truncation, removal', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-cached-'));
  try {
    const files = new CachedFiles();
    const path = join(dir, 'r.json');
    await writeFileAtomic(path, 'one');
    assert.equal(files.read(path), 'one');
    assert.equal(files.read(path), 'one');
    // same size, replaced by rename: a new inode
    await writeFileAtomic(path, 'two');
    assert.equal(files.read(path), 'two');
    await unlink(path);
    assert.throws(() => files.read(path), { code: 'ENOENT' });
    await writeFile(join(dir, 'new'), 'six');
    await link(join(dir, 'new'), path);
    assert.equal(files.read(path), 'six');
    await truncate(path);
    assert.equal(files.read(path), '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a bounded number of files is kept, the oldest dropped first', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-cached-'));
  try {
    const files = new CachedFiles(2);
    for (const n of ['a', 'b', 'c']) await writeFile(join(dir, n), n);
    for (const n of ['a', 'b', 'c']) assert.equal(files.read(join(dir, n)), n);
    await writeFile(join(dir, 'a'), 'A'); // in place: only safe because 'a' is no longer kept
    assert.equal(files.read(join(dir, 'a')), 'A');
    assert.equal(files.read(join(dir, 'c')), 'c');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a file linked into place keeps the identity its handle had after the write: remembered text is served, a replacement is read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-cached-'));
  try {
    const files = new CachedFiles();
    const tmp = join(dir, '.tmp');
    const path = join(dir, 'r.json');
    const handle = await open(tmp, 'wx');
    await handle.writeFile('linked');
    const identity = await handle.stat({ bigint: true });
    await handle.close();
    await link(tmp, path);
    await unlink(tmp);
    const after = await stat(path, { bigint: true });
    assert.deepEqual(
      [after.ino, after.size, after.mtimeNs],
      [identity.ino, identity.size, identity.mtimeNs],
      'link and unlink of the temp name leave inode, size and mtime alone',
    );
    files.remember(path, identity, 'linked');
    assert.equal(files.read(path), 'linked');
    await writeFileAtomic(path, 'newer');
    assert.equal(files.read(path), 'newer');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
