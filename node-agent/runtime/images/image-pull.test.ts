/**
 * ensureImage's pull path on a real image store (content store and copy snapshotter in a scratch
 * directory). The puller here writes a fixture image's blobs into the store as a registry client
 * will, through the PullTarget it is given; there is no registry.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { FailedPreconditionError, NotFoundError, UnavailableError } from '../../../proto/errors.js';
import { LocalContentStore } from '../../../proto/oci/local-content-store.js';
import { archiveTar, buildImage, ociLayout, type FixtureImage } from '../../../test/fixtures/images.js';
import type { ImagePuller, PullTarget } from '../pod-runtime.js';
import { CopySnapshotter } from '../snapshots/copy-snapshotter.js';
import { ImagePulls } from './image-pull.js';
import { ImageStore } from './image-store.js';

const tiny = (name: string) => buildImage({ name, layers: [[{ name: 'hello', data: `${name}\n` }]] });

/** Writes a fixture image into the target: each blob held, then ingested, then the name. */
class FixturePuller implements ImagePuller {
  readonly pulled: string[] = [];
  constructor(
    private readonly images: Map<string, FixtureImage>,
    private readonly options: {
      /** Runs once the blobs are written, before the name is (a prune meanwhile, say). */
      beforeTag?: () => Promise<void>;
      tag?: boolean;
    } = {},
  ) {}

  async pull(ref: string, into: PullTarget): Promise<void> {
    this.pulled.push(ref);
    // let concurrent callers pile up on this pull
    await new Promise((r) => setTimeout(r, 20));
    const image = this.images.get(ref);
    if (!image) throw new UnavailableError(`pull ${ref}: the fixture has no such image`, 'fixture');
    const blobs = [image.manifest, image.config, ...image.layers.map((l) => l.blob)];
    const digests = [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)];
    for (const [i, blob] of blobs.entries()) {
      await into.hold(digests[i]!);
      await into.content.ingest([blob], { digest: digests[i]!, size: blob.length });
    }
    await this.options.beforeTag?.();
    if (this.options.tag === false) return;
    await into.tag(ref, {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.manifestDigest,
      size: image.manifest.length,
    });
  }
}

describe('ensure image', () => {
  let base: string;
  let store: ImageStore;
  let content: LocalContentStore;
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'skiff-image-pull-'));
    content = await LocalContentStore.open(join(base, 'content'));
    store = await ImageStore.open(join(base, 'images'), {
      content,
      snapshotter: await CopySnapshotter.open(join(base, 'snapshots')),
    });
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  test('without a puller: a local image is found, a missing one is NotFound naming it, not in the local store', async () => {
    const archive = join(base, 'local.tar');
    await writeFile(archive, archiveTar(ociLayout([tiny('local:1')])));
    await store.import(archive);
    const pulls = new ImagePulls(store);
    assert.equal((await pulls.ensure('local:1')).names[0], 'docker.io/library/local:1');
    await assert.rejects(pulls.ensure('registry.example/app:2'), (err: unknown) => {
      assert.ok(err instanceof NotFoundError, String(err));
      assert.match(err.message, /"registry\.example\/app:2": it is not in the local store/);
      assert.match(err.message, /no image puller/);
      return true;
    });
  });

  test('a missing image is pulled once however many ask at once; a present one is not pulled', async () => {
    const image = tiny('app:1');
    const puller = new FixturePuller(new Map([['app:1', image]]));
    const pulls = new ImagePulls(store, puller);
    const results = await Promise.all([pulls.ensure('app:1'), pulls.ensure('app:1'), pulls.ensure('app:1')]);
    assert.deepEqual(puller.pulled, ['app:1']);
    for (const r of results) assert.equal(r.manifestDigest, image.manifestDigest);
    assert.equal((await pulls.ensure('app:1')).id, image.configDigest);
    assert.deepEqual(puller.pulled, ['app:1'], 'in the local store now: not pulled again');
  });

  test('a prune during a pull keeps what the pull holds; once it ends, only what an image names stays', async () => {
    const image = tiny('held:1');
    let prunedDuringPull: number | undefined;
    const puller = new FixturePuller(new Map([['held:1', image]]), {
      beforeTag: async () => {
        prunedDuringPull = (await store.prune()).blobsRemoved;
      },
    });
    await new ImagePulls(store, puller).ensure('held:1');
    assert.equal(prunedDuringPull, 0, 'no blob of the pull in progress was collected');
    assert.equal((await store.prune()).blobsRemoved, 0, 'the image names them all');
    assert.equal((await content.list()).length, 3);
  });

  test('a puller that names nothing fails the ensure, naming the reference; its blobs are collectable after', async () => {
    const puller = new FixturePuller(new Map([['untagged:1', tiny('untagged:1')]]), { tag: false });
    await assert.rejects(
      new ImagePulls(store, puller).ensure('untagged:1'),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /pull image "untagged:1": the puller returned, but no image by that reference/.test(err.message),
    );
    assert.equal((await store.prune()).blobsRemoved, 3, 'the lease ended with the pull');
  });

  test("a puller's failure is the ensure's, and the next ensure pulls again", async () => {
    const images = new Map<string, FixtureImage>();
    const puller = new FixturePuller(images);
    const pulls = new ImagePulls(store, puller);
    await assert.rejects(pulls.ensure('later:1'), UnavailableError);
    images.set('later:1', tiny('later:1'));
    assert.equal((await pulls.ensure('later:1')).names[0], 'docker.io/library/later:1');
    assert.deepEqual(puller.pulled, ['later:1', 'later:1']);
  });
});
