import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../proto/errors.js';
import {
  buildImage,
  busyboxLayerEntries,
  dockerSaveLegacy,
  ociLayout,
  sha256,
  writeArchiveDir,
  type ArchiveFiles,
  type FixtureImage,
} from '../../../test/fixtures/images.js';
import { LocalContentStore } from '../../../proto/oci/local-content-store.js';
import { CopySnapshotter } from '../snapshots/copy-snapshotter.js';
import { ImageStore } from './image-store.js';

/**
 * An archive may name one descriptor many times: the import must read, hash and parse each blob
 * once, not once per mention (repeated per mention, 200 copies of a 4 MB manifest with an 8 MB
 * config take ~8.9 s); the bound below is far under what the repeated work would take. It bounds
 * the CPU time of this process, the work done: wall time also counts the time other processes had
 * the CPU, seconds on a loaded machine (the suite runs test files concurrently).
 */
const COPIES = 400;
const BOUND_MS = 5_000;

/** Large documents: a 3.5 MB annotation in the manifest, 7.5 MB of padding in the config. */
function paddedImage(): FixtureImage {
  return buildImage({
    name: 'dup:1',
    layers: [busyboxLayerEntries()],
    editConfig: (c) => {
      c.pad = ' '.repeat(7.5 * 1024 * 1024);
    },
    editManifest: (m) => {
      m.annotations = { pad: 'x'.repeat(3.5 * 1024 * 1024) };
    },
  });
}

describe('image import of archives that repeat a document', () => {
  let base: string;
  let n = 0;
  let image: FixtureImage;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'skiff-image-import-'));
    image = paddedImage();
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  async function store(): Promise<ImageStore> {
    const root = join(base, `s${n++}`);
    return ImageStore.open(join(root, 'images'), {
      content: await LocalContentStore.open(join(root, 'content')),
      snapshotter: await CopySnapshotter.open(join(root, 'snapshots')),
    });
  }

  async function archiveDir(files: ArchiveFiles): Promise<string> {
    const dir = join(base, `archive${n++}`);
    await writeArchiveDir(dir, files);
    return dir;
  }

  /** The import's result, and the CPU time (user and system, every thread) this process spent on it. */
  async function timedImport(files: ArchiveFiles): Promise<{ names: string[][]; ms: number }> {
    const images = await store();
    const archive = await archiveDir(files);
    const before = process.cpuUsage();
    const result = await images.import(archive, { name: 'dup:1' });
    const spent = process.cpuUsage(before);
    return { names: result.images.map((i) => i.names), ms: (spent.user + spent.system) / 1000 };
  }

  test(`index.json naming one manifest ${COPIES} times: each blob read and parsed once`, async () => {
    const files = ociLayout([image], {
      editIndex: (index) => {
        const d = (index.manifests as Record<string, unknown>[])[0]!;
        delete d.annotations;
        index.manifests = Array.from({ length: COPIES }, () => d);
      },
    });
    const { names, ms } = await timedImport(files);
    assert.deepEqual(names, [['docker.io/library/dup:1']]);
    assert.ok(ms < BOUND_MS, `import took ${ms.toFixed(0)} ms of CPU`);
  });

  test(`a nested index named ${COPIES} times, and distinct manifests sharing one config`, async () => {
    const files = ociLayout([image]);
    const manifestDescriptor = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.manifestDigest,
      size: image.manifest.length,
    };
    const nested = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [manifestDescriptor],
      }),
    );
    files.set(`blobs/sha256/${sha256(nested).slice(7)}`, nested);
    // manifests that differ only in an annotation: distinct blobs, one 8 MB config
    const siblings = Array.from({ length: 50 }, (_, i) => {
      const m = JSON.parse(image.manifest.toString()) as Record<string, unknown>;
      m.annotations = { n: String(i) };
      const bytes = Buffer.from(JSON.stringify(m));
      files.set(`blobs/sha256/${sha256(bytes).slice(7)}`, bytes);
      return { mediaType: manifestDescriptor.mediaType, digest: sha256(bytes), size: bytes.length };
    });
    files.set(
      'index.json',
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            ...Array.from({ length: COPIES }, () => ({
              mediaType: 'application/vnd.oci.image.index.v1+json',
              digest: sha256(nested),
              size: nested.length,
            })),
            ...siblings,
          ],
        }),
      ),
    );
    const { names, ms } = await timedImport(files);
    assert.equal(names.length, 51, 'the nested index names one image, and each sibling is one');
    assert.ok(ms < BOUND_MS, `import took ${ms.toFixed(0)} ms of CPU`);
  });

  test(`docker save manifest.json repeating one entry ${COPIES} times: one image with every name`, async () => {
    const files = dockerSaveLegacy([image]);
    const [entry] = JSON.parse(files.get('manifest.json')!.toString()) as Record<string, unknown>[];
    files.set(
      'manifest.json',
      Buffer.from(
        JSON.stringify(Array.from({ length: COPIES }, (_, i) => ({ ...entry, RepoTags: [`dup:${i % 3}`] }))),
      ),
    );
    const { names, ms } = await timedImport(files);
    assert.deepEqual(names, [
      ['docker.io/library/dup:0', 'docker.io/library/dup:1', 'docker.io/library/dup:2'],
    ]);
    assert.ok(ms < BOUND_MS, `import took ${ms.toFixed(0)} ms of CPU`);
  });

  test('a repeat under other claims is still checked: a wrong size or media type is refused', async () => {
    const good = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.manifestDigest,
      size: image.manifest.length,
    };
    for (const [bad, pattern] of [
      [{ ...good, size: good.size + 1 }, /bytes in the archive but its descriptor says/],
      [{ ...good, mediaType: 'application/vnd.docker.distribution.manifest.v2+json' }, /mediaType/],
    ] as const) {
      const files = ociLayout([image], { editIndex: (index) => void (index.manifests = [good, good, bad]) });
      const images = await store();
      await assert.rejects(images.import(await archiveDir(files)), (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, String(err));
        assert.match(err.message, pattern);
        return true;
      });
      assert.deepEqual(await images.list(), [], 'nothing was imported');
    }
  });
});
