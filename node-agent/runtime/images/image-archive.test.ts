import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { InvalidArgumentError, NotFoundError } from '../../../proto/errors.js';
import { gzip, tar } from '../../../test/fixtures/images.js';
import { cleanMemberName, openImageArchive } from './image-archive.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-archive-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tarFile(name: string, data: Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, data);
  return path;
}

test('tar archives: members by name, long names, symlinks inside, never outside', async () => {
  const long = `blobs/${'x'.repeat(150)}`;
  const path = await tarFile(
    'a.tar',
    tar([
      { name: './index.json', data: '{}' },
      { name: long, data: 'long' },
      { name: 'a/layer.tar', data: 'layer' },
      { name: 'b/layer.tar', type: 'symlink', linkname: '../a/layer.tar' },
      { name: 'c/layer.tar', type: 'symlink', linkname: '../../etc/passwd' },
      { name: '../escape', data: 'never a path' },
    ]),
  );
  const archive = await openImageArchive(path);
  try {
    assert.equal((await archive.readSmall('index.json', 100)).toString(), '{}');
    assert.equal((await archive.readSmall(long, 100)).toString(), 'long');
    assert.equal((await archive.readSmall('b/layer.tar', 100)).toString(), 'layer');
    assert.equal(await archive.size('a/layer.tar'), 5);
    await assert.rejects(archive.readSmall('c/layer.tar', 100), /symlink that leads outside the archive/);
    assert.equal(await archive.has('../escape'), false);
    await assert.rejects(archive.open('missing'), NotFoundError);
    await assert.rejects(archive.readSmall('a/layer.tar', 2), /over the limit of 2/);
  } finally {
    await archive.close();
  }
});

test('broken archives are refused with the reason', async () => {
  const good = tar([{ name: 'index.json', data: 'x'.repeat(2000) }]);
  await assert.rejects(
    openImageArchive(await tarFile('gz.tar', gzip(good))),
    /gzip-compressed; gunzip it first/,
  );
  await assert.rejects(
    openImageArchive(await tarFile('short.tar', good.subarray(0, 1024))),
    /runs past the end of the file/,
  );
  const bad = Buffer.from(good);
  bad[0] = 0x41;
  await assert.rejects(
    openImageArchive(await tarFile('sum.tar', bad)),
    (e: unknown) => e instanceof InvalidArgumentError && /checksum mismatch/.test(e.message),
  );
  await assert.rejects(openImageArchive(join(dir, 'nope.tar')), NotFoundError);
});

test('member names are cleaned and never climb out', () => {
  assert.equal(cleanMemberName('./a//b/'), 'a/b');
  assert.equal(cleanMemberName('/etc/passwd'), undefined);
  assert.equal(cleanMemberName('a/../../b'), undefined);
});
