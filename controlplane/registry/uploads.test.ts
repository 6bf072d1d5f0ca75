import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256Digest } from '../../proto/oci/digest.js';
import { RegistryError, type RegistryErrorCode } from './errors.js';
import { RegistryStorage } from './storage.js';
import { UploadSessions } from './uploads.js';

async function* bytes(...parts: (string | Buffer)[]): AsyncIterable<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: RegistryErrorCode,
  status?: number,
): Promise<RegistryError> {
  let caught: RegistryError | undefined;
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof RegistryError, String(err));
    assert.equal(err.code, code, err.message);
    if (status !== undefined) assert.equal(err.status, status, err.message);
    caught = err;
    return true;
  });
  return caught!;
}

describe('UploadSessions', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-registry-uploads-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function open(name: string, options: { maxBlobBytes?: number; now?: () => number } = {}) {
    const storage = await RegistryStorage.open(join(dir, name));
    const sessions = () =>
      new UploadSessions({
        dir: storage.uploadsDir,
        content: storage.content,
        maxBlobBytes: options.maxBlobBytes ?? Infinity,
        ...(options.now ? { now: options.now } : {}),
      });
    return { storage, uploads: sessions(), another: sessions() };
  }

  test('chunks in order, from two instances (two processes), then a verified commit', async () => {
    const { storage, uploads, another } = await open('a');
    const id = await uploads.start('repo');
    assert.equal(await uploads.status('repo', id), 0);
    assert.equal(
      await uploads.append('repo', id, bytes('hello '), { range: { start: 0, end: 5 }, length: 6 }),
      6,
    );
    // the next chunk goes to another instance: it hashes what is on disk and carries on
    assert.equal(await another.append('repo', id, bytes('wor'), {}), 9);
    assert.equal(await uploads.append('repo', id, bytes('ld'), { range: { start: 9, end: 10 } }), 11);
    assert.equal(await another.status('repo', id), 11);
    const digest = sha256Digest('hello world');
    assert.deepEqual(await another.finish('repo', id, digest, bytes(), {}), { digest, size: 11 });
    assert.equal((await storage.content.readAll(digest, 100)).toString(), 'hello world');
    assert.deepEqual(await readdir(storage.uploadsDir), []);
    await rejectsWith(uploads.status('repo', id), 'BLOB_UPLOAD_UNKNOWN', 404);
  });

  test('a chunk out of order is 416 with the current Range, and changes nothing', async () => {
    const { uploads } = await open('b');
    const id = await uploads.start('repo');
    await uploads.append('repo', id, bytes('abc'), { range: { start: 0, end: 2 } });
    const err = await rejectsWith(
      uploads.append('repo', id, bytes('xyz'), { range: { start: 5, end: 7 } }),
      'BLOB_UPLOAD_INVALID',
      416,
    );
    assert.equal(err.headers.Range, '0-2');
    await rejectsWith(
      uploads.append('repo', id, bytes('xyz'), { range: { start: 0, end: 2 } }),
      'BLOB_UPLOAD_INVALID',
      416,
    );
    // a body that does not fill its range, or overruns it, is cut back
    await rejectsWith(
      uploads.append('repo', id, bytes('de'), { range: { start: 3, end: 5 } }),
      'SIZE_INVALID',
    );
    await rejectsWith(
      uploads.append('repo', id, bytes('defg'), { range: { start: 3, end: 5 } }),
      'SIZE_INVALID',
    );
    await rejectsWith(
      uploads.append('repo', id, bytes('def'), { range: { start: 3, end: 5 }, length: 4 }),
      'SIZE_INVALID',
    );
    assert.equal(await uploads.status('repo', id), 3);
    assert.equal(await uploads.append('repo', id, bytes('def'), { range: { start: 3, end: 5 } }), 6);
    const digest = sha256Digest('abcdef');
    assert.equal((await uploads.finish('repo', id, digest, bytes(), {})).size, 6);
  });

  test('a source that fails mid-chunk leaves the upload as it was, hash included', async () => {
    const { storage, uploads } = await open('c');
    const id = await uploads.start('repo');
    await uploads.append('repo', id, bytes('good'), {});
    async function* dying(): AsyncIterable<Buffer> {
      yield Buffer.alloc(3 << 20, 7); // past a write run: bytes reach the file before the failure
      throw new Error('connection reset');
    }
    await assert.rejects(uploads.append('repo', id, dying(), {}), /connection reset/);
    assert.equal(await uploads.status('repo', id), 4);
    const digest = sha256Digest('good bytes');
    await uploads.finish('repo', id, digest, bytes(' bytes'), {});
    assert.equal((await storage.content.readAll(digest, 100)).toString(), 'good bytes');
  });

  test('a wrong digest at the end is DIGEST_INVALID and deletes the upload; nothing is stored', async () => {
    const { storage, uploads } = await open('d');
    const id = await uploads.start('repo');
    await uploads.append('repo', id, bytes('actual'), {});
    const err = await rejectsWith(
      uploads.finish('repo', id, sha256Digest('claimed'), bytes(), {}),
      'DIGEST_INVALID',
      400,
    );
    assert.match(err.message, /expected sha256:[a-f0-9]{64}, actual sha256:[a-f0-9]{64}/);
    assert.deepEqual(await readdir(storage.content.blobsDir), []);
    assert.deepEqual(await readdir(storage.uploadsDir), []);
  });

  test('an upload that grows past the limit is 413 and deleted', async () => {
    const { storage, uploads } = await open('e', { maxBlobBytes: 8 });
    const id = await uploads.start('repo');
    await uploads.append('repo', id, bytes('12345'), {});
    await rejectsWith(uploads.append('repo', id, bytes('6789'), {}), 'SIZE_INVALID', 413);
    assert.deepEqual(await readdir(storage.uploadsDir), []);
    await rejectsWith(uploads.status('repo', id), 'BLOB_UPLOAD_UNKNOWN');
    const declared = await uploads.start('repo');
    await rejectsWith(
      uploads.append('repo', declared, bytes('123456789'), { length: 9 }),
      'SIZE_INVALID',
      413,
    );
    assert.deepEqual(await readdir(storage.uploadsDir), []);
  });

  test('an upload belongs to its repository; unknown and malformed ids are BLOB_UPLOAD_UNKNOWN', async () => {
    const { uploads } = await open('f');
    const id = await uploads.start('repo');
    await rejectsWith(uploads.append('other', id, bytes('x'), {}), 'BLOB_UPLOAD_UNKNOWN');
    await rejectsWith(uploads.status('repo', '../../content'), 'BLOB_UPLOAD_UNKNOWN');
    await rejectsWith(uploads.status('repo', '0f8fad5b-d9cb-469f-a165-70867728950e'), 'BLOB_UPLOAD_UNKNOWN');
    await uploads.cancel('repo', id);
    await rejectsWith(uploads.cancel('repo', id), 'BLOB_UPLOAD_UNKNOWN');
  });

  test('one chunk at a time: a held upload is busy (416) until its holder is silent too long', async () => {
    let clock = Date.now();
    const { storage, uploads } = await open('g', { now: () => clock });
    const id = await uploads.start('repo');
    await uploads.append('repo', id, bytes('abc'), {});
    // a holder that died mid-chunk, as a crashed process leaves it
    const upload = join(storage.uploadsDir, id);
    const { rename } = await import('node:fs/promises');
    await rename(join(upload, 'data'), join(upload, 'data.deadbeefdeadbeef'));
    await writeFile(join(upload, 'data.deadbeefdeadbeef'), 'abcde');
    const busy = await rejectsWith(uploads.append('repo', id, bytes('x'), {}), 'BLOB_UPLOAD_INVALID', 416);
    assert.equal(busy.headers.Range, '0-4');
    clock += 11 * 60 * 1000;
    // taken over: the bytes it left are the upload's (they came from the client in order)
    assert.equal(await uploads.append('repo', id, bytes('f'), {}), 6);
    await uploads.finish('repo', id, sha256Digest('abcdef'), bytes(), {});
  });

  test('sweep removes uploads untouched for an hour (and dead ingests), keeps live ones', async () => {
    let clock = Date.now();
    const { storage, uploads } = await open('h', { now: () => clock });
    const old = await uploads.start('repo');
    const live = await uploads.start('repo');
    await writeFile(join(storage.content.ingestDir, 'dead'), 'half');
    const hourAgo = new Date(clock - 61 * 60 * 1000);
    for (const entry of await readdir(join(storage.uploadsDir, old))) {
      await utimes(join(storage.uploadsDir, old, entry), hourAgo, hourAgo);
    }
    await utimes(join(storage.uploadsDir, old), hourAgo, hourAgo);
    await utimes(join(storage.content.ingestDir, 'dead'), hourAgo, hourAgo);
    assert.equal(await uploads.sweep(), 1);
    assert.deepEqual(await readdir(storage.uploadsDir), [live]);
    assert.deepEqual(await readdir(storage.content.ingestDir), []);
    clock += 2 * 60 * 60 * 1000;
    assert.ok((await stat(join(storage.uploadsDir, live))).isDirectory());
    assert.equal(await uploads.sweep(), 1);
  });
});
