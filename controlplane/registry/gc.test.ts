import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256Digest, type Digest } from '../../proto/oci/digest.js';
import { parsePushedManifest } from '../../proto/oci/manifests.js';
import { MediaType } from '../../proto/oci/media-types.js';
import { collectGarbage } from './gc.js';
import { RegistryStorage } from './storage.js';

async function* bytes(data: string | Buffer): AsyncIterable<Buffer> {
  yield Buffer.from(data);
}

describe('collectGarbage', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-registry-gc-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function age(storage: RegistryStorage, digest: Digest, ms: number): Promise<void> {
    const when = new Date(Date.now() - ms);
    await utimes(storage.content.blobPath(digest), when, when);
  }

  async function pushImage(storage: RegistryStorage, name: string, tag: string, layers: string[]) {
    const config = Buffer.from(JSON.stringify({ layers }));
    const blobs = [config, ...layers.map((l) => Buffer.from(l))];
    for (const b of blobs) await storage.ingestBlob(name, bytes(b), { digest: sha256Digest(b) });
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length },
        layers: layers.map((l) => ({
          mediaType: MediaType.ociLayer,
          digest: sha256Digest(l),
          size: l.length,
        })),
      }),
    );
    const digest = await storage.putManifest(name, body, parsePushedManifest(body, undefined, 'm'), [tag]);
    return { digest, body, config: sha256Digest(config), layers: layers.map((l) => sha256Digest(l)) };
  }

  test('deletes only old blobs no manifest references; dry run deletes nothing', async () => {
    const storage = await RegistryStorage.open(join(dir, 'a'));
    const kept = await pushImage(storage, 'app', 'v1', ['shared', 'only-v1']);
    const gone = await pushImage(storage, 'other', 'v2', ['shared', 'only-v2']);
    // an index naming app:v1's manifest keeps it, in another repository too
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [{ mediaType: MediaType.ociManifest, digest: kept.digest, size: kept.body.length }],
      }),
    );
    await storage.putManifest('app', index, parsePushedManifest(index, undefined, 'i'), ['multi']);
    await storage.deleteManifest('other', gone.digest);
    const orphan = (
      await storage.ingestBlob('app', bytes('uploaded, never referenced'), {
        digest: sha256Digest('uploaded, never referenced'),
      })
    ).digest;
    const young = (
      await storage.ingestBlob('app', bytes('a push in progress'), {
        digest: sha256Digest('a push in progress'),
      })
    ).digest;
    for (const d of [
      orphan,
      gone.digest,
      gone.config,
      gone.layers[1]!,
      ...kept.layers,
      kept.config,
      kept.digest,
    ]) {
      await age(storage, d, 2 * 60 * 60 * 1000);
    }
    const expected = [orphan, gone.digest, gone.config, gone.layers[1]!].sort();

    const dry = await collectGarbage(storage, { dryRun: true });
    assert.deepEqual(dry.deleted.map((d) => d.digest).sort(), expected);
    assert.equal(dry.young, 1);
    for (const d of expected) assert.equal(await storage.content.has(d), true, 'a dry run deletes nothing');

    const real = await collectGarbage(storage);
    assert.deepEqual(real.deleted.map((d) => d.digest).sort(), expected);
    assert.equal(
      real.deletedBytes,
      real.deleted.reduce((s, d) => s + d.size, 0),
    );
    assert.equal(real.manifests, 2);
    for (const d of expected) assert.equal(await storage.content.has(d), false);
    for (const d of [young, kept.digest, kept.config, ...kept.layers, sha256Digest(index)]) {
      assert.equal(await storage.content.has(d), true);
    }
    // links to deleted blobs are gone: HEAD says unknown, a push uploads again
    assert.equal(await storage.blobSize('other', gone.layers[1]!), undefined);
    assert.equal(await storage.blobSize('app', orphan), undefined);
    assert.equal(await storage.blobSize('other', kept.layers[0]!), 'shared'.length);
    assert.ok(real.unlinked >= 2);
    const again = await collectGarbage(storage);
    assert.deepEqual(again.deleted, []);
  });

  test('a manifest it cannot read stops the collection before anything is deleted', async () => {
    const storage = await RegistryStorage.open(join(dir, 'b'));
    const image = await pushImage(storage, 'app', 'v1', ['layer']);
    const orphan = (await storage.ingestBlob('app', bytes('orphan'), { digest: sha256Digest('orphan') }))
      .digest;
    await age(storage, orphan, 2 * 60 * 60 * 1000);
    const path = storage.content.blobPath(image.digest);
    await chmod(path, 0o644);
    await writeFile(path, 'not json');
    await assert.rejects(
      collectGarbage(storage),
      /read manifest sha256:[a-f0-9]{64} of repository app: .*nothing was deleted/,
    );
    assert.equal(await storage.content.has(orphan), true);
  });

  test('a blob a push needed after the listing (its time reset) is kept: the age is read again before deleting', async () => {
    const storage = await RegistryStorage.open(join(dir, 'c'));
    const orphan = (
      await storage.ingestBlob('app', bytes('old, then HEAD-checked by a push'), {
        digest: sha256Digest('old, then HEAD-checked by a push'),
      })
    ).digest;
    // the listing saw it old; by the time of the delete a push has touched it
    const list = storage.content.list.bind(storage.content);
    storage.content.list = async () =>
      (await list()).map((b) => ({
        ...b,
        committedAt: new Date(Date.now() - 2 * 60 * 60 * 1000).toISOString(),
      }));
    const result = await collectGarbage(storage);
    assert.deepEqual(result.deleted, []);
    assert.equal(result.young, 1);
    assert.equal(await storage.content.has(orphan), true);
  });
});
