/**
 * Whiteouts and replacements of nested directories, unpacked by each snapshotter and seen from a
 * real container (removing a directory with two subdirectories, or two levels of them, must not
 * close a directory fd the unpacker still uses). With the copy snapshotter every layer is applied
 * onto a full copy (whiteouts delete); with the overlay snapshotter the base layer is applied and
 * the others keep overlayfs whiteouts, so a replacement inside one layer is what removes a tree
 * there. Also: the unpacker's memory ceiling set through ImageStoreOptions.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ResourceExhaustedError } from '../../proto/errors.js';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { ImageStore } from '../../node-agent/runtime/images/image-store.js';
import { type ImageRuntime } from '../../node-agent/runtime/runtime.js';
import { CopySnapshotter } from '../../node-agent/runtime/snapshots/copy-snapshotter.js';
import {
  archiveTar,
  buildImage,
  busyboxLayerEntries,
  nestedTree,
  ociLayout,
  sorted,
  type TarEntry,
} from '../fixtures/images.js';
import {
  openImageRuntimeWith,
  removeTree,
  requireRootAndBusybox,
  scratchDir,
  withScratchRuntime,
} from './runtime-containers-fixture.js';

const replaced = buildImage({
  name: 'replaced:1',
  layers: [
    busyboxLayerEntries(),
    sorted([
      { name: 'usr/', type: 'dir' },
      { name: 'usr/share/', type: 'dir' },
      ...nestedTree('usr/share/doc'),
      { name: 'usr/share/man', data: 'm\n' },
      { name: 'opt/', type: 'dir' },
      ...nestedTree('opt/app'),
      { name: 'srv/', type: 'dir' },
      ...nestedTree('srv/data'),
      { name: 'var/', type: 'dir' },
      ...nestedTree('var/link'),
    ]),
    [
      { name: 'usr/', type: 'dir' },
      { name: 'usr/share/', type: 'dir' },
      { name: 'usr/share/.wh.doc' }, // rm -rf /usr/share/doc
      { name: 'usr/share/after', data: 'after\n' },
      { name: 'opt/', type: 'dir' },
      { name: 'opt/app', data: 'a file now\n' }, // a directory replaced by a file
      { name: 'srv/', type: 'dir' },
      { name: 'srv/data/', type: 'dir' },
      { name: 'srv/data/.wh..wh..opq' }, // a directory replaced by an (opaque) directory
      { name: 'srv/data/new', data: 'new\n' },
      { name: 'var/', type: 'dir' },
      { name: 'var/link', type: 'symlink', linkname: '/elsewhere' },
      // written and replaced within this one layer: removed from the layer's own directory
      { name: 'work/', type: 'dir' },
      ...nestedTree('work/t'),
      { name: 'work/t', data: 'replaced in its layer\n' },
    ],
  ],
});

/** `rm -rf /usr/share/doc` as a layer: a whiteout of a directory holding two subdirectories. */
const rmdoc = buildImage({
  name: 'rmdoc:1',
  layers: [
    busyboxLayerEntries(),
    sorted([
      { name: 'usr/', type: 'dir' },
      { name: 'usr/share/', type: 'dir' },
      { name: 'usr/share/doc/', type: 'dir' },
      { name: 'usr/share/doc/a/', type: 'dir' },
      { name: 'usr/share/doc/a/x', data: 'x' },
      { name: 'usr/share/doc/b/', type: 'dir' },
      { name: 'usr/share/doc/b/y', data: 'y' },
    ]),
    [{ name: 'usr/', type: 'dir' }, { name: 'usr/share/', type: 'dir' }, { name: 'usr/share/.wh.doc' }],
  ],
});

const LOOK = [
  'ls -A /usr/share | tr "\\n" " "; echo',
  'ls -A /opt | tr "\\n" " "; echo',
  'cat /opt/app',
  'ls -A /srv/data | tr "\\n" " "; echo',
  'ls -l /var/link',
  'ls -A /work | tr "\\n" " "; echo',
  'cat /work/t',
].join('; ');

for (const snapshotter of ['copy', 'overlay'] as const) {
  describe(`nested directories whited out and replaced (${snapshotter} snapshotter, real containers)`, () => {
    let rt: ImageRuntime;

    withScratchRuntime(`skiff-whiteouts-${snapshotter}-`, async (work) => {
      requireRootAndBusybox();
      const images = [replaced, rmdoc];
      rt = await openImageRuntimeWith(join(work, 'root'), join(work, 'images.tar'), images, snapshotter);
      return rt.runtime.containers;
    });

    async function runAndRead(image: string, script: string): Promise<string> {
      const c = await rt.runtime.run({ image, command: ['sh', '-c', script] });
      try {
        const exit = await rt.runtime.containers.wait(c.id);
        let text = '';
        for await (const e of rt.runtime.containers.logs(c.id)) text += e.text + '\n';
        assert.equal(exit.exitCode, 0, text);
        return text;
      } finally {
        await rt.runtime.containers.remove(c.id, { force: true });
      }
    }

    test('the container sees the later layer: trees gone, a file and an opaque directory in their place', async () => {
      const lines = (await runAndRead('replaced:1', LOOK)).trim().split('\n');
      assert.equal(lines[0], 'after man ', '/usr/share/doc is gone with both its levels');
      assert.equal(lines[1], 'app ');
      assert.equal(lines[2], 'a file now');
      assert.equal(lines[3], 'new ', 'only the later layer shows in the opaque directory');
      assert.match(lines[4]!, /\/var\/link -> \/elsewhere$/);
      assert.equal(lines[5], 't ');
      assert.equal(lines[6], 'replaced in its layer');
    });

    test('rmdoc:1 (a whiteout of doc/{a,b}) runs: /usr/share/doc is removed', async () => {
      assert.equal(await runAndRead('rmdoc:1', 'ls -A /usr/share | wc -l'), '0\n');
    });
  });
}

describe('the unpacker memory ceiling, set through ImageStoreOptions', () => {
  let work: string;
  before(async () => {
    requireRootAndBusybox();
    work = await scratchDir('skiff-unpack-memory-');
  });
  after(async () => {
    if (work) await removeTree(work);
  });

  test('a layer needing more is refused naming the ceiling, and leaves no snapshot behind', async () => {
    // 2,000 directories at ~3.8 KB paths: their paths (kept to restore mtimes) exceed a quarter
    // of a 16 MiB ceiling
    const deep = Array.from({ length: 15 }, () => 'd'.repeat(250)).join('/');
    const dirs: TarEntry[] = Array.from({ length: 2_000 }, (_, i) => ({
      name: `${deep}/${i}/`,
      type: 'dir',
    }));
    const image = buildImage({ name: 'hungry:1', layers: [busyboxLayerEntries(), dirs] });
    const archive = join(work, 'hungry.tar');
    await writeFile(archive, archiveTar(ociLayout([image])));
    const content = await LocalContentStore.open(join(work, 'content'));
    const snapshots = await CopySnapshotter.open(join(work, 'snapshots'));
    const images = await ImageStore.open(join(work, 'images'), {
      content,
      snapshotter: snapshots,
      unpackMaxMemoryBytes: 16 * 1024 * 1024,
    });
    await images.import(archive);
    await assert.rejects(images.unpack('hungry:1'), (err: unknown) => {
      assert.ok(err instanceof ResourceExhaustedError, String(err));
      assert.match(
        err.message,
        new RegExp(
          `^unpack layer ${image.layers[1]!.digest}: the layer needs more than 16 MiB of memory to unpack .*; refused`,
        ),
      );
      return true;
    });
    const keys: string[] = [];
    await snapshots.walk((info) => void keys.push(info.key));
    assert.deepEqual(keys, [image.layers[0]!.diffId], 'only the base layer (its ChainID is its DiffID)');

    const roomy = await ImageStore.open(join(work, 'images'), { content, snapshotter: snapshots });
    const unpacked = await roomy.unpack('hungry:1');
    assert.ok(unpacked, 'the same layer unpacks under the default 1 GiB ceiling');
  });
});
