import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InvalidArgumentError, NotFoundError } from '../../../proto/errors.js';
import { archiveTar, busyboxImage, ociLayout } from '../../../test/fixtures/images.js';
import { LocalContentStore } from '../../../proto/oci/local-content-store.js';
import { CopySnapshotter } from '../snapshots/copy-snapshotter.js';
import { ImageStore } from './image-store.js';

/** An image store (and its content store) under `base`. */
async function openImages(base: string): Promise<ImageStore> {
  return ImageStore.open(join(base, 'images'), {
    content: await LocalContentStore.open(join(base, 'content')),
    snapshotter: await CopySnapshotter.open(join(base, 'snapshots')),
  });
}

describe('image store names', () => {
  let base: string;
  let images: ImageStore;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'skiff-image-store-'));
    images = await openImages(base);
    const archive = join(base, 'busybox.tar');
    await writeFile(archive, archiveTar(ociLayout([busyboxImage('busybox:1')])));
    await images.import(archive);
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  // the records are a plain object: these names must find no image, never Object.prototype's
  // members (which would fail with a TypeError)
  test("names of Object.prototype's members find no image", async () => {
    for (const op of ['resolve', 'remove'] as const) {
      await assert.rejects(images[op]('constructor'), (err: unknown) => {
        assert.ok(err instanceof NotFoundError, `${op}: ${String(err)}`);
        assert.match(err.message, /"constructor": no such image/);
        return true;
      });
      // not a valid reference at all (a leading underscore), refused as any other bad name is
      await assert.rejects(images[op]('__proto__'), (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, `${op}: ${String(err)}`);
        assert.match(err.message, /parse image reference "__proto__"/);
        return true;
      });
    }
    assert.equal((await images.resolve('busybox:1')).names[0], 'docker.io/library/busybox:1');
    assert.equal((await images.list()).length, 1, 'nothing was removed');
  });
});

describe('image store leases', () => {
  let base: string;
  let images: ImageStore;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'skiff-image-store-leases-'));
    images = await openImages(base);
  });
  after(() => rm(base, { recursive: true, force: true }));

  const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as const;
  const leaseFiles = async () => {
    const dir = join(base, 'images', 'leases');
    const names = await readdir(dir);
    return Promise.all(
      names.map(async (name) => JSON.parse(await readFile(join(dir, name), 'utf8')) as { digests: string[] }),
    );
  };

  test('holds asked for at once (written together) and one by one are each in the lease once they resolve', async () => {
    const lease = await images.lease();
    // at once, a digest twice among them
    await Promise.all([1, 2, 3, 2].map((n) => lease.hold(digest(n))));
    assert.deepEqual((await leaseFiles())[0]!.digests.sort(), [1, 2, 3].map(digest));
    // while a write is under way, and after
    const during = [lease.hold(digest(4)), lease.hold(digest(5))];
    await lease.hold(digest(6));
    await Promise.all(during);
    await lease.hold(digest(1));
    assert.deepEqual((await leaseFiles())[0]!.digests.sort(), [1, 2, 3, 4, 5, 6].map(digest));
    await lease.release();
    assert.deepEqual(await leaseFiles(), []);
  });
});
