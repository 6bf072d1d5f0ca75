import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256Digest, type Digest } from '../../proto/oci/digest.js';
import { parsePushedManifest } from '../../proto/oci/manifests.js';
import { MediaType } from '../../proto/oci/media-types.js';
import { RegistryError, type RegistryErrorCode } from './errors.js';
import { RegistryStorage } from './storage.js';

async function* bytes(...parts: (string | Buffer)[]): AsyncIterable<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: RegistryErrorCode,
  status?: number,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof RegistryError, String(err));
    assert.equal(err.code, code, err.message);
    if (status !== undefined) assert.equal(err.status, status);
    return true;
  });
}

function manifestOf(config: Buffer, layers: Buffer[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length },
      layers: layers.map((l) => ({
        mediaType: MediaType.ociLayerGzip,
        digest: sha256Digest(l),
        size: l.length,
      })),
      ...extra,
    }),
  );
}

describe('RegistryStorage', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-registry-storage-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a blob is stored once, linked per repository, and readable only where linked', async () => {
    const storage = await RegistryStorage.open(join(dir, 'a'));
    const blob = Buffer.from('layer bytes');
    const digest = sha256Digest(blob);
    assert.equal(
      (await storage.ingestBlob('one', bytes('layer ', 'bytes'), { digest, size: blob.length })).written,
      true,
    );
    assert.equal((await storage.ingestBlob('two', bytes(blob), { digest })).written, false);
    assert.equal(await storage.blobSize('one', digest), blob.length);
    assert.equal(await storage.blobSize('two', digest), blob.length);
    assert.equal(await storage.blobSize('three', digest), undefined);
    await rejectsWith(storage.openBlob('three', digest), 'BLOB_UNKNOWN', 404);
    const { handle, size } = await storage.openBlob('one', digest);
    assert.equal(size, blob.length);
    assert.equal((await handle.readFile()).toString(), 'layer bytes');
    await handle.close();
    assert.deepEqual(await readdir(storage.content.blobsDir), [digest.slice(7)]);
    assert.equal(await storage.mountBlob('three', 'one', digest), true);
    assert.equal(await storage.mountBlob('four', 'nowhere', digest), false);
    assert.equal(await storage.mountBlob('four', 'Bad Name', digest), false);
    assert.equal(await storage.unlinkBlob('one', digest), true);
    assert.equal(await storage.unlinkBlob('one', digest), false);
    assert.equal(await storage.blobSize('one', digest), undefined);
    assert.deepEqual(await storage.listRepositories(), ['one', 'three', 'two']);
  });

  test('a blob whose bytes do not match its digest is DIGEST_INVALID and nothing is stored', async () => {
    const storage = await RegistryStorage.open(join(dir, 'b'));
    const digest = sha256Digest('expected');
    await rejectsWith(storage.ingestBlob('r', bytes('tampered'), { digest }), 'DIGEST_INVALID');
    await rejectsWith(storage.ingestBlob('r', bytes('expected!'), { digest, size: 8 }), 'SIZE_INVALID');
    assert.deepEqual(await readdir(storage.content.blobsDir), []);
    assert.deepEqual(await readdir(storage.content.ingestDir), []);
    assert.equal(await storage.repositoryExists('r'), false);
  });

  test('a blob over the limit is refused (413), declared or not, and nothing is left', async () => {
    const storage = await RegistryStorage.open(join(dir, 'c'), { maxBlobBytes: 10 });
    const big = Buffer.alloc(11, 1);
    await rejectsWith(
      storage.ingestBlob('r', bytes(big), { digest: sha256Digest(big), size: 11 }),
      'SIZE_INVALID',
      413,
    );
    await rejectsWith(
      storage.ingestBlob('r', bytes(big.subarray(0, 6), big.subarray(6)), { digest: sha256Digest(big) }),
      'SIZE_INVALID',
      413,
    );
    assert.deepEqual(await readdir(storage.content.ingestDir), []);
    assert.deepEqual(await readdir(storage.content.blobsDir), []);
  });

  test('manifests: stored byte for byte, tags, referrers, delete by tag and by digest', async () => {
    const storage = await RegistryStorage.open(join(dir, 'd'));
    const config = Buffer.from('{}');
    const body = manifestOf(config, []);
    const parsed = parsePushedManifest(body, MediaType.ociManifest, 'm');
    const digest = await storage.putManifest('app', body, parsed, ['v1', 'latest']);
    assert.equal(digest, sha256Digest(body));
    const record = await storage.resolveManifest('app', { tag: 'v1' });
    assert.deepEqual(record, { digest, mediaType: MediaType.ociManifest, size: body.length });
    assert.ok((await storage.readManifest(record)).equals(body));
    assert.deepEqual(await storage.listTags('app'), ['latest', 'v1']);
    await rejectsWith(storage.listTags('nothing'), 'NAME_UNKNOWN', 404);
    await rejectsWith(storage.resolveManifest('app', { tag: 'v2' }), 'MANIFEST_UNKNOWN', 404);
    await rejectsWith(storage.resolveManifest('other', { digest }), 'MANIFEST_UNKNOWN', 404);

    // a referrer (an artifact whose subject is the image)
    const sbom = manifestOf(Buffer.from('{}'), [], {
      artifactType: 'application/vnd.example.sbom',
      subject: { mediaType: MediaType.ociManifest, digest, size: body.length },
      annotations: { 'org.example': 'yes' },
    });
    const sbomDigest = await storage.putManifest('app', sbom, parsePushedManifest(sbom, undefined, 's'), []);
    assert.deepEqual(await storage.referrers('app', digest), [
      {
        mediaType: MediaType.ociManifest,
        digest: sbomDigest,
        size: sbom.length,
        artifactType: 'application/vnd.example.sbom',
        annotations: { 'org.example': 'yes' },
      },
    ]);
    assert.deepEqual(await storage.referrers('other', digest), []);

    await storage.deleteTag('app', 'latest');
    await rejectsWith(storage.deleteTag('app', 'latest'), 'MANIFEST_UNKNOWN');
    assert.deepEqual(await storage.listTags('app'), ['v1']);
    await storage.deleteManifest('app', digest);
    assert.deepEqual(await storage.listTags('app'), [], 'tags naming a deleted manifest go with it');
    await rejectsWith(storage.resolveManifest('app', { digest }), 'MANIFEST_UNKNOWN');
    await storage.deleteManifest('app', sbomDigest);
    assert.deepEqual(await storage.referrers('app', digest), []);
    await rejectsWith(storage.deleteManifest('app', digest), 'MANIFEST_UNKNOWN');
  });

  test('names are checked again before they become paths', async () => {
    const storage = await RegistryStorage.open(join(dir, 'e'));
    const digest: Digest = sha256Digest('x');
    for (const name of ['../escape', 'a/../../b', '/abs', 'a/_layers', '..']) {
      await rejectsWith(storage.blobSize(name, digest), 'NAME_INVALID');
      await rejectsWith(storage.listTags(name), 'NAME_INVALID');
    }
    await rejectsWith(storage.resolveManifest('a', { tag: '../../etc/passwd' }), 'TAG_INVALID');
    assert.deepEqual(await readdir(storage.repositoriesDir), []);
  });

  test('the catalog lists nested repositories in ASCII order', async () => {
    const storage = await RegistryStorage.open(join(dir, 'f'));
    const digest = (await storage.ingestBlob('b/c', bytes('x'), { digest: sha256Digest('x') })).digest;
    for (const name of ['b', 'a/b/c', 'a', 'b/c/d', 'a-b']) await storage.linkBlob(name, digest);
    assert.deepEqual(await storage.listRepositories(), ['a', 'a-b', 'a/b/c', 'b', 'b/c', 'b/c/d']);
  });
});
