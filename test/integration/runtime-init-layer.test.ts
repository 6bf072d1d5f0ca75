/**
 * Images' init layers (node-agent/runtime/images/init-layer.ts) on real overlay mounts and real
 * containers: made once per image by the helper, shared by its containers, whose writable layers
 * then stay empty of the mount points; kept and pruned with the image; refused for hostile
 * images without creating anything outside the snapshot; absent with the copy snapshotter.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../proto/errors.js';
import { Runtime, type ImageRuntime } from '../../node-agent/runtime/runtime.js';
import { ImageStore } from '../../node-agent/runtime/images/image-store.js';
import { initLayerKey } from '../../node-agent/runtime/images/init-layer.js';
import type { ContainerInfo } from '../../node-agent/runtime/containers/container-runtime.js';
import {
  buildImage,
  busyboxImage,
  busyboxLayerEntries,
  multiLayerImage,
  type FixtureImage,
} from '../fixtures/images.js';
import {
  openImageRuntimeWith,
  removeAllContainers,
  removeScratch,
  requireRootAndBusybox,
  scratchDir,
} from './runtime-containers-fixture.js';

let work: string;
const runtimes: ImageRuntime[] = [];
let n = 0;

before(async () => {
  requireRootAndBusybox();
  work = await scratchDir('skiff-init-layer-');
});

after(async () => {
  for (const rt of runtimes) await removeAllContainers(rt.runtime.containers);
  if (work) await removeScratch(work);
});

async function runtimeWith(images: FixtureImage[], snapshotter: 'overlay' | 'copy' = 'overlay') {
  const root = join(work, `root${n++}`);
  const rt = await openImageRuntimeWith(root, join(work, `images${n++}.tar`), images, snapshotter);
  runtimes.push(rt);
  return { rt, root };
}

/** Snapshot keys of a runtime, as "kind:key". */
async function snapshots(rt: ImageRuntime): Promise<string[]> {
  const keys: string[] = [];
  await rt.images.snapshotter.walk((i) => {
    keys.push(`${i.kind}:${i.key}`);
  });
  return keys.sort();
}

/** What a container's run left in its own writable layer (the overlay upper dir). */
async function upperEntries(c: ContainerInfo): Promise<string[]> {
  const upper = c.config.rootfs.options.find((o) => o.startsWith('upperdir='));
  assert.ok(upper, `container ${c.id} has an overlay root: ${JSON.stringify(c.config.rootfs)}`);
  return (await readdir(upper.slice('upperdir='.length))).sort();
}

async function runTrue(runtime: Runtime, image: string): Promise<ContainerInfo> {
  const c = await runtime.run({ image, command: ['/bin/true'] });
  assert.equal((await runtime.containers.wait(c.id)).exitCode, 0);
  return c;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('init layers', () => {
  test('a container on the init layer leaves its writable layer empty after /bin/true; on the top layer it would not', async () => {
    const { rt } = await runtimeWith([busyboxImage('busybox:1')]);
    const onInit = await runTrue(rt.runtime, 'busybox:1');
    assert.deepEqual(await upperEntries(onInit), [], 'no copy of /, /proc, /sys, /dev or /etc');

    // the same start prepared on the top layer (as before init layers) copies them up: the
    // check above would see it
    const images = rt.images;
    const direct = new Runtime(
      rt.runtime.containers,
      {
        ensure: (ref) => images.resolve(ref),
        unpack: async (image) => {
          const { chainId } = await images.unpack(await images.resolve(image.manifestDigest));
          return { chainId, containerParent: chainId };
        },
      },
      images.snapshotter,
    );
    const onTop = await runTrue(direct, 'busybox:1');
    assert.deepEqual(await upperEntries(onTop), ['dev', 'etc', 'proc', 'sys']);
    for (const c of [onInit, onTop]) await rt.runtime.containers.remove(c.id);
  });

  test('the init layer is made once on first unpack, holds exactly the mount points, and is shared', async () => {
    const { rt, root } = await runtimeWith([multiLayerImage('multi:1')]);
    const image = await rt.images.resolve('multi:1');
    const top = image.layers[image.layers.length - 1]!.chainId;
    const key = initLayerKey(top);
    // two starts at once in this process, and another process's store on the same root
    const other = await ImageStore.open(join(root, 'images'), {
      content: rt.content,
      snapshotter: rt.images.snapshotter,
    });
    const results = await Promise.all([
      rt.images.unpack('multi:1', { initLayer: true }),
      rt.images.unpack('multi:1', { initLayer: true }),
      other.unpack('multi:1', { initLayer: true }),
    ]);
    for (const r of results) {
      assert.equal(r.chainId, top);
      assert.equal(r.containerParent, key);
    }
    assert.equal(results.filter((r) => r.initLayerCreated).length, 1, 'made by exactly one');
    const info = await rt.images.snapshotter.stat(key);
    assert.equal(info.kind, 'committed');
    assert.equal(info.parent, top);
    // no temporary snapshot is left over, whoever won
    assert.deepEqual(
      (await snapshots(rt)).filter((k) => k.includes('-init')),
      [`committed:${key}`],
    );
    // the layer holds what the helper creates in a container, nothing else
    const mounts = await rt.images.snapshotter.view('peek', key);
    try {
      const lowers = mounts[0]!.options
        .find((o) => o.startsWith('lowerdir='))!
        .slice(9)
        .split(':');
      const initFs = lowers[0]!;
      assert.deepEqual((await readdir(initFs)).sort(), ['dev', 'etc', 'proc', 'sys']);
      assert.deepEqual((await readdir(join(initFs, 'etc'))).sort(), ['hostname', 'hosts']);
      assert.equal((await stat(join(initFs, 'etc/hosts'))).size, 0);
      // the image's own layers are untouched
      assert.equal(await exists(join(lowers[1]!, 'proc')), false);
    } finally {
      await rt.images.snapshotter.remove('peek');
    }

    const again = await rt.images.unpack('multi:1', { initLayer: true });
    assert.equal(again.initLayerCreated, false);
    assert.equal(again.layersUnpacked, 0);
    assert.equal((await rt.images.snapshotter.stat(key)).created, info.created, 'made once');

    const a = await runTrue(rt.runtime, 'multi:1');
    const b = await runTrue(rt.runtime, 'multi:1');
    for (const c of [a, b]) {
      assert.equal((await rt.images.snapshotter.stat(c.config.snapshotKey!)).parent, key);
      assert.deepEqual(await upperEntries(c), []);
    }
    assert.equal((await rt.images.snapshotter.stat(key)).created, info.created, 'reused by both');
    for (const c of [a, b]) await rt.runtime.containers.remove(c.id);

    // without initLayer (a build step's parent) unpack names the top layer
    const plain = await rt.images.unpack('multi:1');
    assert.equal(plain.containerParent, top);
    assert.equal(plain.initLayerCreated, false);
  });

  test('prune keeps the init layer while the image exists, and removes it with the image', async () => {
    const { rt } = await runtimeWith([busyboxImage('busybox:1')]);
    const c = await runTrue(rt.runtime, 'busybox:1');
    const image = await rt.images.resolve('busybox:1');
    const top = image.layers[0]!.chainId;
    const key = initLayerKey(top);
    const containerKey = c.config.snapshotKey!;

    let pruned = await rt.images.prune({ snapshotKeysInUse: [containerKey] });
    assert.equal(pruned.snapshotsRemoved, 0);
    const df = await rt.images.df();
    assert.equal(df.snapshots.count, 3, 'layer, init layer and the container');
    assert.equal(
      (await rt.images.list())[0]!.size,
      (await rt.content.list()).reduce((sum, blob) => sum + blob.size, 0),
      'image sizes count its blobs only',
    );

    await rt.runtime.containers.remove(c.id);
    pruned = await rt.images.prune();
    assert.equal(pruned.snapshotsRemoved, 0, 'the image still exists');
    assert.equal((await rt.images.snapshotter.stat(key)).kind, 'committed');

    // a container keeps its image's init layer after rmi, until it is gone
    const d = await runTrue(rt.runtime, 'busybox:1');
    await rt.images.remove('busybox:1');
    pruned = await rt.images.prune({ snapshotKeysInUse: [d.config.snapshotKey!] });
    assert.equal(pruned.snapshotsRemoved, 0);
    await rt.runtime.containers.remove(d.id);
    pruned = await rt.images.prune();
    assert.equal(pruned.snapshotsRemoved, 2, 'the init layer, then the layer under it');
    assert.deepEqual(await snapshots(rt), []);
  });

  test('a hostile image: /proc or /dev not a directory, /etc a file, are refused naming the path; nothing is made outside', async () => {
    const outside = `/tmp/skiff-init-escape-${randomBytes(6).toString('hex')}`;
    const withoutEtc = busyboxLayerEntries().filter((e) => !e.name.startsWith('etc'));
    const images = [
      buildImage({
        name: 'proc-link:1',
        layers: [[...withoutEtc, { name: 'proc', type: 'symlink', linkname: outside }]],
      }),
      buildImage({ name: 'dev-file:1', layers: [[...withoutEtc, { name: 'dev', data: 'no' }]] }),
      buildImage({ name: 'etc-file:1', layers: [[...withoutEtc, { name: 'etc', data: 'no' }]] }),
      buildImage({
        name: 'etc-link:1',
        layers: [[...withoutEtc, { name: 'etc', type: 'symlink', linkname: `${outside}-etc` }]],
      }),
    ];
    const { rt } = await runtimeWith(images);
    const refused: [string, RegExp][] = [
      [
        'proc-link:1',
        /make the init layer of image .*proc-link:1: mount \/proc: \/proc in the image is not a directory/,
      ],
      [
        'dev-file:1',
        /make the init layer of image .*dev-file:1: mount \/dev: \/dev in the image is not a directory/,
      ],
      [
        'etc-file:1',
        /make the init layer of image .*etc-file:1: create mount point \/etc\/hosts: Not a directory/,
      ],
    ];
    for (const [ref, message] of refused) {
      await assert.rejects(
        rt.runtime.run({ image: ref, command: ['/bin/true'] }),
        (e: unknown) => e instanceof FailedPreconditionError && message.test(e.message),
        ref,
      );
    }
    assert.equal(await exists(outside), false);
    // no init layer, no leftover temporary snapshot, no container snapshot: only image layers
    assert.ok((await snapshots(rt)).every((k) => k.startsWith('committed:') && !k.includes('-init')));
    assert.deepEqual(await rt.runtime.containers.list({ all: true }), []);

    // a link resolves inside the image, as it does in a container: the files land in the layer
    const c = await runTrue(rt.runtime, 'etc-link:1');
    assert.equal(await exists(`${outside}-etc`), false);
    assert.deepEqual(await upperEntries(c), []);
    await rt.runtime.containers.remove(c.id);
  });

  test('the copy snapshotter makes no init layer: containers prepare on the top layer as before', async () => {
    const { rt } = await runtimeWith([busyboxImage('busybox:1')], 'copy');
    const image = await rt.images.resolve('busybox:1');
    const top = image.layers[0]!.chainId;
    const r = await rt.images.unpack('busybox:1', { initLayer: true });
    assert.equal(r.containerParent, top);
    assert.equal(r.initLayerCreated, false);
    const c = await runTrue(rt.runtime, 'busybox:1');
    assert.equal((await rt.images.snapshotter.stat(c.config.snapshotKey!)).parent, top);
    assert.deepEqual(await snapshots(rt), [`active:${c.config.snapshotKey!}`, `committed:${top}`]);
    await rt.runtime.containers.remove(c.id);
  });
});
