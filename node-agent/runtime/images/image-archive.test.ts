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

test('a hostile PAX header is refused, never looped on', async () => {
  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['negative size', '14 size=-1536\n', /size "-1536" is not a byte count/],
    ['NaN size', '12 size=abc\n', /size "abc" is not a byte count/],
    ['huge size', '29 size=99999999999999999999\n', /is not a byte count/],
    ['length too short', '1 abc\n', /out of bounds/],
    ['length past the end', '99 path=a\n', /out of bounds/],
    ['leading whitespace', '\n1 abc\n', /does not start with its length/],
    ['signed length', '-9 path=a\n', /does not start with its length/],
    ['missing =', '9 pathab\n', /no KEY=VALUE/],
    ['no newline', '9 path=ab', /does not end with a newline/],
  ];
  for (const [what, paxBody, reason] of cases) {
    const path = await tarFile(`pax-${what}.tar`, tar([{ name: 'index.json', data: '{}', paxBody }]));
    await assert.rejects(
      openImageArchive(path),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        /PAX header "PaxHeaders\/entry"/.test(e.message) &&
        reason.test(e.message),
      what,
    );
  }
  const ok = await openImageArchive(
    await tarFile('pax-ok.tar', tar([{ name: 'x', data: 'abc', paxBody: '15 path=a\nb=c\n\n6 a=b\n' }])),
  );
  try {
    assert.equal((await ok.readSmall('a\nb=c\n', 10)).toString(), 'abc');
  } finally {
    await ok.close();
  }
});

test('a symlink to a member whose name starts with two dots is followed', async () => {
  const path = await tarFile(
    'dots.tar',
    tar([
      { name: '..foo', data: 'dots' },
      { name: 'link', type: 'symlink', linkname: '..foo' },
    ]),
  );
  const archive = await openImageArchive(path);
  try {
    assert.equal((await archive.readSmall('link', 10)).toString(), 'dots');
  } finally {
    await archive.close();
  }
});
