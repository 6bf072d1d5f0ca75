import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { InvalidArgumentError, ResourceExhaustedError } from '../errors.js';
import { parseDigest, sha256Digest } from './digest.js';
import { LocalContentStore } from './local-content-store.js';

function chunks(...parts: string[]): AsyncIterable<Buffer> {
  return Readable.from(parts.map((p) => Buffer.from(p)));
}

describe('LocalContentStore', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-content-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('stores a blob under its digest, verified, read-only, once', async () => {
    const store = await LocalContentStore.open(join(dir, 'a'));
    const digest = sha256Digest('hello world');
    const first = await store.ingest(chunks('hello ', 'world'), { digest, size: 11 });
    assert.deepEqual(first, { digest, size: 11, written: true, bytesWritten: 11 });
    const second = await store.ingest(chunks('hello world'), { digest, size: 11 });
    assert.equal(second.written, false);
    assert.equal(second.bytesWritten, 0);
    assert.equal((await store.readAll(digest, 100)).toString(), 'hello world');
    assert.equal((await store.list()).length, 1);
    assert.equal((await store.info(digest)).size, 11);
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  test('refuses bytes that do not match the digest, naming both, and leaves nothing', async () => {
    const store = await LocalContentStore.open(join(dir, 'b'));
    const digest = sha256Digest('expected');
    await assert.rejects(store.ingest(chunks('tampered'), { digest }), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.match(err.message, new RegExp(`expected ${digest}, actual ${sha256Digest('tampered')}`));
      return true;
    });
    assert.equal(await store.has(digest), false);
    assert.deepEqual(await readdir(store.ingestDir), []);
    assert.deepEqual(await readdir(store.blobsDir), []);
  });

  test('refuses a size mismatch and a source that fails midway, leaving nothing', async () => {
    const store = await LocalContentStore.open(join(dir, 'c'));
    await assert.rejects(store.ingest(chunks('12345'), { size: 4 }), /more bytes than the declared size 4/);
    await assert.rejects(store.ingest(chunks('123'), { size: 4 }), /got 3 bytes, declared size is 4/);
    async function* failing(): AsyncIterable<Buffer> {
      yield Buffer.from('partial');
      throw new Error('connection reset');
    }
    await assert.rejects(store.ingest(failing()), /connection reset/);
    assert.deepEqual(await readdir(store.ingestDir), []);
    assert.deepEqual(await readdir(store.blobsDir), []);
  });

  test('validates digest syntax', () => {
    assert.throws(
      () => parseDigest('sha256:ABC', 'layers[0].digest'),
      /want sha256:<64 lowercase hex digits>/,
    );
    assert.throws(() => parseDigest(`sha512:${'a'.repeat(128)}`, 'x'), /algorithm not supported/);
    assert.throws(() => parseDigest(`sha256:${'A'.repeat(64)}`, 'x'), InvalidArgumentError);
    assert.equal(parseDigest(`sha256:${'a'.repeat(64)}`, 'x'), `sha256:${'a'.repeat(64)}`);
  });

  test('a declared size over the per-blob limit or the free disk is refused before writing', async () => {
    const store = await LocalContentStore.open(join(dir, 'd'), {
      maxBlobBytes: 1000,
      reserveBytes: 100,
      freeBytes: async () => 600,
    });
    await assert.rejects(store.ingest(chunks('x'), { size: 5000 }), (err: unknown) => {
      assert.ok(err instanceof ResourceExhaustedError);
      assert.match(err.message, /declared size 5000 bytes is over the limit of 1000 bytes/);
      return true;
    });
    await assert.rejects(store.ingest(chunks('x'), { size: 900 }), (err: unknown) => {
      assert.ok(err instanceof ResourceExhaustedError);
      assert.match(err.message, /declared size 900 bytes would fill the disk \(500 bytes usable/);
      return true;
    });
    await assert.rejects(
      store.ingest(Readable.from([Buffer.alloc(1001)])),
      /more than the limit of 1000 bytes/,
    );
    assert.deepEqual(await readdir(store.ingestDir), []);
    assert.deepEqual(await readdir(store.blobsDir), []);
  });

  test('labels, delete, and cleaning dead ingests', async () => {
    const store = await LocalContentStore.open(join(dir, 'e'));
    const { digest } = await store.ingest(chunks('layer'), { labels: { 'containerd.io/uncompressed': 'x' } });
    assert.deepEqual((await store.info(digest)).labels, { 'containerd.io/uncompressed': 'x' });
    await store.delete(digest);
    assert.equal(await store.has(digest), false);
    await writeFile(join(store.ingestDir, 'crashed'), 'half');
    assert.equal(await store.cleanIngests(0), 1);
  });

  test('commitFile adopts a file hashed elsewhere (size checked, fsynced, renamed); openBlob reads by handle', async () => {
    const store = await LocalContentStore.open(join(dir, 'f'));
    const file = join(dir, 'f', 'upload');
    await writeFile(file, 'resumable');
    const digest = sha256Digest('resumable');
    await assert.rejects(store.commitFile(file, { digest, size: 3 }), /holds 9 bytes, expected 3/);
    assert.deepEqual(await store.commitFile(file, { digest, size: 9 }), { written: true });
    assert.equal((await store.readAll(digest, 100)).toString(), 'resumable');
    await writeFile(file, 'resumable');
    assert.deepEqual(await store.commitFile(file, { digest, size: 9 }), { written: false });
    assert.deepEqual(
      await readdir(join(dir, 'f')),
      ['blobs', 'content', 'ingest', 'labels'].filter((n) => n !== 'content'),
    );
    const { handle, size } = await store.openBlob(digest);
    assert.equal(size, 9);
    await store.delete(digest); // deleted while open: the handle still reads what it opened
    assert.equal((await handle.readFile()).toString(), 'resumable');
    await handle.close();
    await assert.rejects(store.openBlob(digest), /not in the content store/);
    assert.equal(await store.touch(digest), false);
  });
});
