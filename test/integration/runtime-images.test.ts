/**
 * The image half of the runtime end to end, on real files and real overlay mounts: import of
 * every archive format, references, shared layers, unpack into both snapshotters (merged view
 * with whiteouts and opaque directories, 130 layers), hostile archives, save/re-import, prune, df.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from '../../proto/errors.js';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { processStartTime } from '../../proto/support/pid-lock.js';
import { ImageStore } from '../../node-agent/runtime/images/image-store.js';
import { CopySnapshotter } from '../../node-agent/runtime/snapshots/copy-snapshotter.js';
import { OverlaySnapshotter } from '../../node-agent/runtime/snapshots/overlay-snapshotter.js';
import type { Snapshotter } from '../../node-agent/runtime/snapshots/snapshotter.js';
import {
  archiveTar,
  buildImage,
  busyboxBinary,
  busyboxImage,
  busyboxLayerEntries,
  dockerSaveDual,
  dockerSaveLegacy,
  manyLayerImage,
  multiLayerImage,
  ociLayout,
  sha256,
  writeArchiveDir,
  FIXTURE_MTIME,
  type ArchiveFiles,
  type FixtureImage,
} from '../fixtures/images.js';
import { mountAll, unmount } from '../fixtures/images-mount.js';

interface Runtime {
  root: string;
  content: LocalContentStore;
  snapshotter: Snapshotter;
  images: ImageStore;
}

describe('runtime images', () => {
  let base: string;
  let n = 0;
  const mounted: string[] = [];

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'runtime image tests mount overlays and must run as root');
    base = await mkdtemp(join(tmpdir(), 'skiff-images-'));
  });
  after(async () => {
    for (const m of mounted.reverse()) await unmount(m);
    await rm(base, { recursive: true, force: true });
  });

  async function runtime(
    kind: 'overlay' | 'copy' = 'overlay',
    contentOptions: Parameters<typeof LocalContentStore.open>[1] = {},
  ): Promise<Runtime> {
    const root = join(base, `rt${n++}`);
    const content = await LocalContentStore.open(join(root, 'content'), contentOptions);
    const snapshotter =
      kind === 'overlay'
        ? await OverlaySnapshotter.open(join(root, 'snapshots', 'overlay'))
        : await CopySnapshotter.open(join(root, 'snapshots', 'copy'));
    const images = await ImageStore.open(join(root, 'images'), { content, snapshotter });
    return { root, content, snapshotter, images };
  }

  async function archive(files: ArchiveFiles, as: 'dir' | 'tar'): Promise<string> {
    const path = join(base, `archive${n++}${as === 'tar' ? '.tar' : ''}`);
    if (as === 'dir') await writeArchiveDir(path, files);
    else await writeFile(path, archiveTar(files));
    return path;
  }

  /** Mounts a fresh container snapshot of the image and returns its root. */
  async function containerRoot(rt: Runtime, ref: string, key: string): Promise<string> {
    const { chainId } = await rt.images.unpack(ref);
    const target = join(base, `mnt${n++}`);
    await mkdir(target);
    await mountAll(await rt.snapshotter.prepare(key, chainId), target);
    mounted.push(target);
    return target;
  }
  async function release(target: string): Promise<void> {
    await unmount(target);
    mounted.splice(mounted.indexOf(target), 1);
  }

  const formats: [string, (images: FixtureImage[]) => ArchiveFiles, 'dir' | 'tar'][] = [
    ['OCI layout directory', ociLayout, 'dir'],
    ['OCI layout tar', ociLayout, 'tar'],
    ['docker save (legacy)', dockerSaveLegacy, 'tar'],
    ['docker save (OCI dual, Docker >= 25)', dockerSaveDual, 'tar'],
  ];
  for (const [label, make, as] of formats) {
    test(`imports ${label}`, async () => {
      const rt = await runtime();
      const image = busyboxImage('busybox:1');
      const result = await rt.images.import(await archive(make([image]), as));
      assert.equal(result.images.length, 1);
      assert.deepEqual(result.images[0]!.names, ['docker.io/library/busybox:1']);
      const [summary] = await rt.images.list();
      assert.equal(summary!.repository, 'busybox');
      assert.equal(summary!.tag, '1');
      assert.equal(summary!.id, image.configDigest);
      for (const ref of [
        'busybox:1',
        'docker.io/library/busybox:1',
        image.configDigest.slice(7, 19),
        image.configDigest,
      ]) {
        assert.equal((await rt.images.resolve(ref)).id, image.configDigest, ref);
      }
      const resolved = await rt.images.resolve('busybox:1');
      assert.equal((await rt.images.resolve(`busybox@${resolved.manifestDigest}`)).id, image.configDigest);
      await assert.rejects(rt.images.resolve('busybox:2'), NotFoundError);
      // the layers arrive verified, with their DiffID recorded
      assert.equal(resolved.layers[0]!.diffId, image.layers[0]!.diffId);
      const root = await containerRoot(rt, 'busybox:1', 'c1');
      assert.ok(
        (await readFile(join(root, 'bin/busybox')))
          .subarray(0, 4)
          .equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])),
      );
      await release(root);
    });
  }

  /** Legacy `docker save` whose layer.tar members are the compressed blobs (found by sniffing). */
  function dockerSaveLegacyCompressed(images: FixtureImage[]): ArchiveFiles {
    const files = dockerSaveLegacy(images);
    const layers = images.flatMap((i) => i.layers);
    for (const [path, data] of files) {
      const layer = layers.find((l) => l.tar.equals(data));
      if (path.endsWith('/layer.tar') && layer) files.set(path, layer.blob);
    }
    return files;
  }

  const zstdFormats: [string, (images: FixtureImage[]) => ArchiveFiles, 'dir' | 'tar'][] = [
    ['OCI layout directory', ociLayout, 'dir'],
    ['OCI layout tar', ociLayout, 'tar'],
    ['docker save (OCI dual, Docker >= 25)', dockerSaveDual, 'tar'],
    ['docker save (legacy, zstd found by its magic)', dockerSaveLegacyCompressed, 'tar'],
  ];
  for (const [label, make, as] of zstdFormats) {
    test(`zstd layers: imports ${label}; verified, unpacked, mounted and run as gzip ones are`, async () => {
      const rt = await runtime();
      const image = buildImage({
        name: 'zbox:1',
        compression: 'zstd',
        layers: [
          busyboxLayerEntries(),
          [
            { name: 'etc/', type: 'dir' },
            { name: 'etc/.wh.group' },
            { name: 'etc/zstd', data: 'from a zstd layer\n' },
          ],
        ],
      });
      for (const l of image.layers) assert.equal(l.blob.readUInt32LE(0), 0xfd2fb528, 'zstd blobs');
      const result = await rt.images.import(await archive(make([image]), as));
      assert.deepEqual(result.images[0]!.names, ['docker.io/library/zbox:1']);
      const resolved = await rt.images.resolve('zbox:1');
      assert.equal(resolved.id, image.configDigest);
      assert.deepEqual(
        resolved.layers.map((l) => [l.mediaType, l.digest, l.diffId]),
        image.layers.map((l) => ['application/vnd.oci.image.layer.v1.tar+zstd', l.digest, l.diffId]),
      );
      const { layersUnpacked } = await rt.images.unpack('zbox:1');
      assert.equal(layersUnpacked, 2);
      const root = await containerRoot(rt, 'zbox:1', 'c1');
      assert.ok((await readFile(join(root, 'bin/busybox'))).equals(busyboxBinary()));
      assert.equal(await readFile(join(root, 'etc/zstd'), 'utf8'), 'from a zstd layer\n');
      assert.deepEqual((await readdir(join(root, 'etc'))).sort(), ['passwd', 'zstd'], 'the whiteout applied');
      // and the unpacked busybox runs from the mounted container root
      assert.equal(
        execFileSync('chroot', [root, '/bin/sh', '-c', 'cat /etc/zstd; id -u'], { encoding: 'utf8' }),
        'from a zstd layer\n0\n',
      );
      await release(root);
    });
  }

  test('a second image sharing the base layer writes only its new layers; unpack reuses shared layers', async () => {
    const rt = await runtime();
    const first = busyboxImage('base:1');
    const second = buildImage({
      name: 'app:1',
      layers: [
        busyboxLayerEntries(),
        [
          { name: 'app/', type: 'dir' },
          { name: 'app/run', data: 'app' },
        ],
      ],
    });
    const a = await rt.images.import(await archive(ociLayout([first]), 'tar'));
    const b = await rt.images.import(await archive(ociLayout([second]), 'tar'));
    assert.equal(a.bytesWritten, first.layers[0]!.blob.length + first.config.length + first.manifest.length);
    assert.equal(
      b.bytesWritten,
      second.layers[1]!.blob.length + second.config.length + second.manifest.length,
    );
    assert.equal(b.bytesSkipped, first.layers[0]!.blob.length);
    assert.equal((await rt.content.list()).filter((x) => x.digest === first.layers[0]!.digest).length, 1);
    // unpacked at the same time, as an agent starting two pods does: the shared layer once
    const [u1, u2] = await Promise.all([rt.images.unpack('base:1'), rt.images.unpack('app:1')]);
    assert.equal(u1.layersUnpacked + u2.layersUnpacked, 2);
    assert.equal(u1.layersReused + u2.layersReused, 1);
    const df = await rt.images.df();
    assert.equal(
      df.content.bytes,
      (await rt.content.list()).reduce((s, x) => s + x.size, 0),
    );
    assert.equal(df.images.find((i) => i.name.endsWith('app:1'))!.sharedSize, first.layers[0]!.blob.length);
    assert.ok(df.totalBytes > df.content.bytes);
  });

  for (const kind of ['overlay', 'copy'] as const) {
    test(`merged view of the multi-layer image (${kind}): whiteout deletes, opaque directory replaces, containers isolated`, async () => {
      const rt = await runtime(kind);
      await rt.images.import(await archive(ociLayout([multiLayerImage('multi:1')]), 'dir'));
      const c1 = await containerRoot(rt, 'multi:1', 'ctr-1');
      const c2 = await containerRoot(rt, 'multi:1', 'ctr-2');
      assert.deepEqual((await readdir(join(c1, 'etc'))).sort(), ['group', 'kept', 'passwd']);
      assert.deepEqual(await readdir(join(c1, 'data')), ['c']);
      assert.equal(await readFile(join(c1, 'data/c'), 'utf8'), 'c\n');
      await writeFile(join(c1, 'etc/kept'), 'changed');
      await writeFile(join(c1, 'new'), 'x');
      assert.equal(await readFile(join(c2, 'etc/kept'), 'utf8'), 'kept\n');
      await assert.rejects(readFile(join(c2, 'new')), /ENOENT/);
      await release(c1);
      await release(c2);
      const c3 = await containerRoot(rt, 'multi:1', 'ctr-3');
      assert.equal(
        await readFile(join(c3, 'etc/kept'), 'utf8'),
        'kept\n',
        'lower layers unchanged by a container write',
      );
      await release(c3);
    });
  }

  for (const kind of ['overlay', 'copy'] as const) {
    test(`a layer that omits a parent directory entry leaves that directory as the lower layer has it (${kind})`, async () => {
      const rt = await runtime(kind);
      const image = buildImage({
        name: 'parents:1',
        layers: [busyboxLayerEntries(), [{ name: 'tmp/deep/x', data: 'x' }]],
      });
      await rt.images.import(await archive(ociLayout([image]), 'tar'));
      const root = await containerRoot(rt, 'parents:1', 'p');
      const st = await stat(join(root, 'tmp'));
      assert.equal(st.mode & 0o7777, 0o1777, '/tmp keeps its sticky, world-writable mode');
      // in a full copy the directory really gained an entry; in overlay form it is the lower's, untouched
      if (kind === 'overlay') assert.equal(Math.floor(st.mtimeMs / 1000), FIXTURE_MTIME);
      assert.equal(await readFile(join(root, 'tmp/deep/x'), 'utf8'), 'x');
      await release(root);
    });
  }

  for (const kind of ['overlay', 'copy'] as const) {
    test(`a whiteout of a directory the same layer recreates hides only the lower contents (${kind})`, async () => {
      const rt = await runtime(kind);
      const image = buildImage({
        name: 'rewhite:1',
        layers: [
          busyboxLayerEntries(),
          [
            { name: 'd/', type: 'dir' },
            { name: 'd/old', data: 'o' },
          ],
          [{ name: 'd/', type: 'dir' }, { name: 'd/new', data: 'n' }, { name: '.wh.d' }],
        ],
      });
      await rt.images.import(await archive(ociLayout([image]), 'tar'));
      const root = await containerRoot(rt, 'rewhite:1', 'rw');
      assert.deepEqual(await readdir(join(root, 'd')), ['new']);
      await release(root);
    });
  }

  test('a 130-layer image imports, unpacks and mounts', async () => {
    const rt = await runtime();
    await rt.images.import(await archive(ociLayout([manyLayerImage(130)]), 'tar'));
    const root = await containerRoot(rt, 'many:130', 'deep');
    assert.equal((await readdir(join(root, 'layers'))).length, 129);
    assert.equal(await readFile(join(root, 'layers/129'), 'utf8'), 'layer 129\n');
    await release(root);
  });

  /** Import must fail with `err` and leave the store exactly as it was. */
  async function refused(rt: Runtime, path: string, check: (err: unknown) => boolean): Promise<void> {
    const blobsBefore = (await rt.content.list()).map((b) => b.digest);
    const imagesBefore = await rt.images.list();
    await assert.rejects(rt.images.import(path), (err: unknown) => {
      assert.ok(check(err), String(err));
      return true;
    });
    assert.deepEqual(
      (await rt.content.list()).map((b) => b.digest),
      blobsBefore,
      'no blob left behind',
    );
    assert.deepEqual(await rt.images.list(), imagesBefore, 'no image recorded');
    assert.deepEqual(await readdir(rt.content.ingestDir), [], 'no ingest left behind');
  }

  test('hostile archives are refused and leave nothing behind', async () => {
    const rt = await runtime();
    await rt.images.import(await archive(ociLayout([busyboxImage('keep:1')]), 'tar'));
    const good = buildImage({
      name: 'x:1',
      layers: [[{ name: 'f', data: 'f' }], [{ name: 'g', data: 'g' }]],
    });

    // a blob whose bytes do not match its digest
    const tampered = ociLayout([good]);
    const layerPath = `blobs/sha256/${good.layers[1]!.digest.slice(7)}`;
    const swapped = Buffer.from(tampered.get(layerPath)!);
    swapped[swapped.length - 1]! ^= 1;
    tampered.set(layerPath, swapped);
    await refused(
      rt,
      await archive(tampered, 'tar'),
      (e) =>
        e instanceof InvalidArgumentError && /does not match its digest \(expected sha256:/.test(e.message),
    );

    // a config whose diff_ids do not match the layers
    const wrongDiff = buildImage({
      name: 'x:1',
      layers: [[{ name: 'f', data: 'f' }]],
      editConfig: (c) => ((c.rootfs as { diff_ids: string[] }).diff_ids = [sha256('nope')]),
    });
    await refused(
      rt,
      await archive(ociLayout([wrongDiff]), 'tar'),
      (e) =>
        e instanceof InvalidArgumentError &&
        /does not match the config's diff_id \(expected sha256:/.test(e.message),
    );
    await refused(
      rt,
      await archive(dockerSaveLegacy([wrongDiff]), 'tar'),
      (e) => e instanceof InvalidArgumentError && /diff_id/.test(e.message),
    );

    // diff_ids count differs from the layers
    const short = buildImage({
      name: 'x:1',
      layers: [[{ name: 'f', data: 'f' }], [{ name: 'g', data: 'g' }]],
      editConfig: (c) => (c.rootfs as { diff_ids: string[] }).diff_ids.pop(),
    });
    await refused(
      rt,
      await archive(ociLayout([short]), 'tar'),
      (e) =>
        e instanceof InvalidArgumentError && /has 1 entries but the manifest has 2 layers/.test(e.message),
    );
    await refused(
      rt,
      await archive(dockerSaveLegacy([short]), 'tar'),
      (e) =>
        e instanceof InvalidArgumentError &&
        /has 1 entries but manifest.json\[0\].Layers has 2 layers/.test(e.message),
    );
    // a legacy archive deeper than overlayfs can stack, its config agreeing: refused before any copy
    const deep = dockerSaveLegacy([short]);
    const [legacyEntry] = JSON.parse(deep.get('manifest.json')!.toString()) as Array<{
      Config: string;
      Layers: string[];
    }>;
    legacyEntry!.Layers = Array.from({ length: 501 }, () => legacyEntry!.Layers[0]!);
    deep.set('manifest.json', Buffer.from(JSON.stringify([{ ...legacyEntry, RepoTags: ['x:1'] }])));
    const deepConfig = JSON.parse(deep.get(legacyEntry!.Config)!.toString()) as {
      rootfs: { diff_ids: string[] };
    };
    deepConfig.rootfs.diff_ids = Array.from({ length: 501 }, () => short.layers[0]!.diffId);
    deep.set(legacyEntry!.Config, Buffer.from(JSON.stringify(deepConfig)));
    await refused(
      rt,
      await archive(deep, 'tar'),
      (e) =>
        e instanceof InvalidArgumentError &&
        /has 501 layers, more than the 500 overlayfs can stack/.test(e.message),
    );

    // truncated and corrupt gzip and zstd layers whose digests match their (broken) bytes
    for (const [compression, label, blob] of (['gzip', 'zstd'] as const).flatMap((compression) => {
      const full = buildImage({ name: 'x:1', compression, layers: [[{ name: 'f', data: 'f' }]] }).layers[0]!
        .blob;
      return [
        [compression, 'truncated', full.subarray(0, full.length - 12)],
        [compression, 'corrupt', Buffer.concat([full.subarray(0, 12), Buffer.alloc(full.length - 12, 0x5a)])],
      ] as const;
    })) {
      const img = buildImage({
        name: 'x:1',
        compression,
        layers: [[{ name: 'f', data: 'f' }]],
        editManifest: (m) =>
          ((m.layers as { digest: string; size: number }[])[0] = {
            ...(m.layers as object[])[0],
            digest: sha256(blob),
            size: blob.length,
          } as never),
      });
      img.layers[0] = { ...img.layers[0]!, blob, digest: sha256(blob) };
      await refused(
        rt,
        await archive(ociLayout([img]), 'tar'),
        (e) =>
          e instanceof InvalidArgumentError &&
          new RegExp(`corrupt or truncated ${compression} stream`).test(e.message),
      );
      void label;
    }

    // a manifest that is also an index (CVE-2021-41190)
    const ambiguous = buildImage({
      name: 'x:1',
      layers: [[{ name: 'f', data: 'f' }]],
      editManifest: (m) => (m.manifests = []),
    });
    await refused(
      rt,
      await archive(ociLayout([ambiguous]), 'tar'),
      (e) => e instanceof InvalidArgumentError && /CVE-2021-41190/.test(e.message),
    );
    const ambiguousIndex = ociLayout([good], { editIndex: (i) => (i.layers = []) });
    await refused(
      rt,
      await archive(ambiguousIndex, 'dir'),
      (e) => e instanceof InvalidArgumentError && /CVE-2021-41190/.test(e.message),
    );

    // a descriptor whose declared size does not match the blob
    const lying = ociLayout([good], {
      editIndex: (i) => ((i.manifests as { size: number }[])[0]!.size += 1),
    });
    await refused(
      rt,
      await archive(lying, 'tar'),
      (e) => e instanceof InvalidArgumentError && /descriptor says/.test(e.message),
    );

    // a directory layout whose blob is a symlink to a host file
    const linkDir = await archive(ociLayout([good]), 'dir');
    const victim = join(linkDir, 'blobs/sha256', good.layers[0]!.digest.slice(7));
    await rm(victim);
    await symlink('/etc/passwd', victim);
    await refused(
      rt,
      linkDir,
      (e) =>
        e instanceof InvalidArgumentError && /is a symlink that leads outside the archive/.test(e.message),
    );

    // not an archive at all
    await refused(
      rt,
      await archive(new Map([['README', Buffer.from('hi')]]), 'tar'),
      (e) => e instanceof InvalidArgumentError && /neither index.json/.test(e.message),
    );
    assert.deepEqual(
      (await rt.images.list()).map((i) => i.name),
      ['docker.io/library/keep:1'],
    );
  });

  test('a layer whose declared size would fill the disk is refused before anything is written', async () => {
    const rt = await runtime('overlay', {
      freeBytes: async () => 300 * 1024 * 1024,
      reserveBytes: 256 * 1024 * 1024,
    });
    // a real 64 MiB blob whose descriptor is honest, against 44 MiB usable: only the budget can refuse it
    const bigBlob = Buffer.alloc(64 * 1024 * 1024);
    const bigDigest = sha256(bigBlob);
    const huge = buildImage({
      name: 'huge:1',
      layers: [[{ name: 'f', data: 'f' }]],
      editManifest: (m) =>
        Object.assign((m.layers as { size: number; digest: string }[])[0]!, {
          size: bigBlob.length,
          digest: bigDigest,
        }),
    });
    const files = ociLayout([huge]);
    files.set(`blobs/sha256/${bigDigest.slice('sha256:'.length)}`, bigBlob);
    await refused(
      rt,
      await archive(files, 'dir'),
      (e) =>
        e instanceof ResourceExhaustedError &&
        /declared size 6710\d{4} bytes would fill the disk \(46137344 bytes usable/.test(e.message),
    );
    const big = busyboxImage('big:1');
    const rt2 = await runtime('overlay', { freeBytes: async () => 1024, reserveBytes: 0 });
    await refused(
      rt2,
      await archive(ociLayout([big]), 'tar'),
      (e) => e instanceof ResourceExhaustedError && /would fill the disk \(1024 bytes usable/.test(e.message),
    );
  });

  test('on a real small file system, an image larger than the free space is refused with sizes and limit', async () => {
    const small = join(base, `tmpfs${n++}`);
    await mkdir(small);
    const { execFileSync } = await import('node:child_process');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
    mounted.push(small);
    const root = join(small, 'rt');
    const content = await LocalContentStore.open(join(root, 'content'), { reserveBytes: 1024 * 1024 });
    const snapshotter = await OverlaySnapshotter.open(join(root, 'snapshots', 'overlay'));
    const images = await ImageStore.open(join(root, 'images'), { content, snapshotter });
    const big = buildImage({
      name: 'big:1',
      layers: [[{ name: 'f', data: Buffer.alloc(4 * 1024 * 1024, 1) }]],
      compression: 'none',
    });
    await assert.rejects(images.import(await archive(ociLayout([big]), 'tar')), (e: unknown) => {
      assert.ok(e instanceof ResourceExhaustedError, String(e));
      assert.match(
        e.message,
        /declared size \d+ bytes would fill the disk \(\d+ bytes usable: \d+ free minus a reserve of 1048576\)/,
      );
      return true;
    });
    assert.deepEqual(await content.list(), []);
    assert.deepEqual(await readdir(content.ingestDir), []);
    await release(small);
  });

  for (const compression of ['gzip', 'zstd'] as const) {
    test(`a ${compression} bomb (tiny blob, files larger than the free space) is refused at unpack, leaving no snapshot`, async () => {
      const small = join(base, `tmpfs${n++}`);
      await mkdir(small);
      const { execFileSync } = await import('node:child_process');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', small]);
      mounted.push(small);
      const root = join(base, `rt${n++}`);
      const content = await LocalContentStore.open(join(root, 'content'));
      const snapshotter = await OverlaySnapshotter.open(join(small, 'overlay'));
      const images = await ImageStore.open(join(root, 'images'), {
        content,
        snapshotter,
        reserveBytes: 1024 * 1024,
      });
      const bomb = buildImage({
        name: 'bomb:1',
        compression,
        layers: [[{ name: 'zeros', data: Buffer.alloc(64 * 1024 * 1024) }]],
      });
      assert.ok(bomb.layers[0]!.blob.length < 100 * 1024, 'the compressed layer is tiny');
      await images.import(await archive(ociLayout([bomb]), 'tar'));
      await assert.rejects(images.unpack('bomb:1'), (e: unknown) => {
        assert.ok(e instanceof ResourceExhaustedError, String(e));
        assert.match(
          e.message,
          /file data of the layer exceeds the limit of \d+ bytes \(declared size 67108864 bytes/,
        );
        return true;
      });
      const keys: string[] = [];
      await snapshotter.walk((i) => {
        keys.push(i.key);
      });
      assert.deepEqual(keys, []);
      assert.deepEqual(await readdir(join(small, 'overlay', 'snapshots')), []);
      await release(small);
    });
  }

  test('save writes the dual format, which imports again to the same image', async () => {
    const rt = await runtime();
    const image = multiLayerImage('multi:2');
    await rt.images.import(await archive(ociLayout([image]), 'tar'));
    const out = join(base, `saved${n++}.tar`);
    await rt.images.save(['multi:2'], out);
    const rt2 = await runtime();
    const result = await rt2.images.import(out);
    assert.deepEqual(result.images[0]!.names, ['docker.io/library/multi:2']);
    assert.equal((await rt2.images.resolve('multi:2')).manifestDigest, image.manifestDigest);
    // the legacy half alone (manifest.json, as `docker load` of Docker <= 24 reads it) also imports
    const { execFileSync } = await import('node:child_process');
    const listing = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).split('\n');
    for (const f of ['oci-layout', 'index.json', 'manifest.json', 'repositories'])
      assert.ok(listing.includes(f), f);
    const manifestJson = JSON.parse(
      execFileSync('tar', ['-xOf', out, 'manifest.json'], { encoding: 'utf8' }),
    ) as { RepoTags: string[] }[];
    assert.deepEqual(manifestJson[0]!.RepoTags, ['multi:2']);
    await assert.rejects(
      rt.images.save(['multi:2'], join(base, 'no-such-dir', 'x.tar')),
      (e: unknown) => e instanceof InvalidArgumentError && /save images to/.test(e.message),
    );
    await assert.rejects(rt.images.save(['nope:1'], join(base, 'x.tar')), NotFoundError);
    // deterministic bytes
    const again = join(base, `saved${n++}.tar`);
    await rt.images.save(['multi:2'], again);
    assert.equal(sha256(await readFile(out)), sha256(await readFile(again)));
  });

  test('two runtime processes importing at once both keep their images (images.json lock)', async () => {
    const rt = await runtime();
    const other = await ImageStore.open(join(rt.root, 'images'), {
      content: rt.content,
      snapshotter: rt.snapshotter,
    });
    const paths = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        archive(
          ociLayout([buildImage({ name: `p${i}:1`, layers: [[{ name: 'f', data: String(i) }]] })]),
          'tar',
        ),
      ),
    );
    await Promise.all(paths.map((p, i) => (i % 2 ? other : rt.images).import(p)));
    assert.deepEqual((await rt.images.list()).map((i) => i.repository).sort(), [
      'p0',
      'p1',
      'p2',
      'p3',
      'p4',
      'p5',
    ]);
  });

  test('remove and prune never collect what an image or a container uses', async () => {
    const rt = await runtime();
    const a = busyboxImage('a:1');
    const b = buildImage({ name: 'b:1', layers: [busyboxLayerEntries(), [{ name: 'b', data: 'b' }]] });
    const c = buildImage({ name: 'c:1', layers: [[{ name: 'c', data: 'c' }]] });
    await rt.images.import(await archive(ociLayout([a, b, c]), 'tar'));
    await rt.images.unpack('a:1');
    await rt.images.unpack('b:1');
    const { chainId: cChain } = await rt.images.unpack('c:1');
    await rt.snapshotter.prepare('container-on-c', cChain);

    assert.deepEqual(await rt.images.remove('a:1'), ['docker.io/library/a:1']);
    assert.deepEqual(await rt.images.remove('c:1'), ['docker.io/library/c:1']);
    await assert.rejects(rt.images.resolve('a:1'), NotFoundError);

    const r1 = await rt.images.prune({ snapshotKeysInUse: ['container-on-c'] });
    // a's only layer is b's base: kept; c's snapshots are under a container: kept; a's and c's
    // manifests and configs go, and c's layer blob (its unpacked snapshot is what the container uses)
    assert.equal(r1.snapshotsRemoved, 0);
    assert.equal(r1.blobsRemoved, 5);
    assert.ok(await rt.content.has(b.layers[0]!.digest));
    assert.equal((await rt.snapshotter.stat(cChain)).kind, 'committed');
    await rt.snapshotter.remove('container-on-c');
    const r2 = await rt.images.prune();
    assert.equal(r2.snapshotsRemoved, 1);
    assert.equal(r2.blobsRemoved, 0);
    // b is whole and still runs
    const root = await containerRoot(rt, 'b:1', 'b-ctr');
    assert.equal(await readFile(join(root, 'b'), 'utf8'), 'b');
    await release(root);
    await assert.rejects(
      rt.snapshotter.remove(b.layers.length ? (await rt.images.resolve('b:1')).layers[0]!.chainId : ''),
      FailedPreconditionError,
    );
  });

  for (const compression of ['gzip', 'zstd'] as const) {
    test(`a ${compression} layer blob corrupted on disk after import fails unpack, and the partial layer is removed`, async () => {
      const rt = await runtime();
      const image = buildImage({
        name: 'rot:1',
        compression,
        layers: [[{ name: 'big', data: 'x'.repeat(1 << 20) }]],
      });
      await rt.images.import(await archive(ociLayout([image]), 'tar'));
      const blob = rt.content.blobPath(image.layers[0]!.digest);
      const bytes = await readFile(blob);
      await writeFile(blob, bytes.subarray(0, Math.floor(bytes.length / 2)));
      await assert.rejects(
        rt.images.unpack('rot:1'),
        (e: unknown) =>
          e instanceof InvalidArgumentError &&
          new RegExp(`corrupt or truncated ${compression} stream`).test(e.message),
      );
      const keys: string[] = [];
      await rt.snapshotter.walk((i) => {
        keys.push(i.key);
      });
      assert.deepEqual(keys, []);
      assert.deepEqual(
        await readdir(join(rt.root, 'snapshots', 'overlay', 'snapshots')),
        [],
        'no partial layer directory left',
      );
    });
  }

  /** Runs `fn` with a lease on `digests` held by another live process (a `sleep`, killed after). */
  async function withForeignLease(
    rt: Runtime,
    digests: string[],
    fn: (leases: string, name: string) => Promise<void>,
  ): Promise<void> {
    const leases = join(rt.root, 'images', 'leases');
    await mkdir(leases, { recursive: true });
    const other = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      const startTime = await waitFor(() => processStartTime(other.pid!));
      // `since` in the future: only the digests listed can protect anything
      const lease = { pid: other.pid, startTime, since: Date.now() + 3600_000, digests };
      const name = `${other.pid}-other.json`;
      await writeFile(join(leases, name), JSON.stringify(lease));
      await fn(leases, name);
    } finally {
      other.kill('SIGKILL');
    }
  }

  async function waitFor<T>(get: () => T | undefined): Promise<T> {
    for (let i = 0; i < 500; i++) {
      const v = get();
      if (v !== undefined) return v;
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error('timed out');
  }

  test('prune spares the blobs another running import holds, and drops leases of dead processes', async () => {
    const rt = await runtime();
    const image = busyboxImage('leased:1');
    const held = [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)];
    await withForeignLease(rt, held, async (leases, name) => {
      // a lease whose pid is alive but is another process (start time differs) is dead
      const ownStart = processStartTime(process.pid);
      const recycled = { pid: process.pid, startTime: `${ownStart}9`, since: 0, digests: [] };
      await writeFile(join(leases, `${process.pid}-recycled.json`), JSON.stringify(recycled));
      await rt.images.import(await archive(ociLayout([image]), 'tar'));
      await rt.images.remove('leased:1'); // as if the other import had not recorded its names yet
      assert.equal((await rt.images.prune()).blobsRemoved, 0);
      assert.deepEqual(await readdir(leases), [name], "the dead importer's lease is dropped");
      await rm(join(leases, name));
      assert.equal((await rt.images.prune()).blobsRemoved, 3);
    });
  });

  test('a failed import leaves the blobs another running import holds (it skipped them as present)', async () => {
    const rt = await runtime();
    const shared = buildImage({ name: 'b:1', layers: [[{ name: 'shared', data: 'shared' }]] });
    const x = shared.layers[0]!;
    // A writes the shared layer, then fails on a layer whose bytes do not match its digest
    const failing = buildImage({
      name: 'a:1',
      layers: [[{ name: 'shared', data: 'shared' }], [{ name: 'g', data: 'g' }]],
    });
    const files = ociLayout([failing]);
    files.set(`blobs/sha256/${failing.layers[1]!.digest.slice(7)}`, Buffer.from('not the layer'));
    await withForeignLease(rt, [x.digest], async () => {
      await assert.rejects(rt.images.import(await archive(files, 'dir')), InvalidArgumentError);
      assert.ok(await rt.content.has(x.digest), "the blob B holds survived A's clean-up");
      assert.ok(!(await rt.content.has(failing.manifestDigest)));
      // B goes on and records its image, whose layer it never wrote
      const r = await rt.images.import(await archive(ociLayout([shared]), 'tar'));
      assert.equal(r.blobsSkipped, 1);
    });
    const root = await containerRoot(rt, 'b:1', 'b-ctr');
    assert.equal(await readFile(join(root, 'shared'), 'utf8'), 'shared');
    await release(root);
  });

  test('a hostile layer that passes import fails unpack and leaves no snapshot', async () => {
    const rt = await runtime();
    const evil = buildImage({
      name: 'evil:1',
      layers: [
        busyboxLayerEntries(),
        [
          { name: 'x', type: 'symlink', linkname: '/etc' },
          { name: 'x/skiff-pwned', data: 'x' },
        ],
      ],
    });
    await rt.images.import(await archive(ociLayout([evil]), 'tar'));
    await assert.rejects(
      rt.images.unpack('evil:1'),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        /entry "x\/skiff-pwned": a parent directory \("x"\) is or goes through a symlink/.test(e.message),
    );
    const keys: string[] = [];
    await rt.snapshotter.walk((i) => {
      keys.push(`${i.kind}:${i.key}`);
    });
    assert.deepEqual(keys, [`committed:${(await rt.images.resolve('evil:1')).layers[0]!.chainId}`]);
    await assert.rejects(readFile('/etc/skiff-pwned'), /ENOENT/);
  });
});
