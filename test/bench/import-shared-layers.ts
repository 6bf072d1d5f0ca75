/**
 * Importing a second image that shares its base layers with a first: only the new layers are
 * written. Reports the import accounting (bytes written/skipped) and, independently, the growth
 * of the content store on disk and the bytes the process wrote (/proc/self/io write_bytes).
 *
 *   node --import tsx test/bench/import-shared-layers.ts      (env: BASE_MB=64)
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { ImageStore } from '../../node-agent/runtime/images/image-store.js';
import { OverlaySnapshotter } from '../../node-agent/runtime/snapshots/overlay-snapshotter.js';
import { archiveTar, buildImage, busyboxLayerEntries, ociLayout, type TarEntry } from '../fixtures/images.js';

const BASE_MB = Number(process.env.BASE_MB ?? 64);

async function writeBytes(): Promise<number> {
  const io = await readFile('/proc/self/io', 'utf8');
  return Number(/write_bytes: (\d+)/.exec(io)![1]);
}

function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

const dir = await mkdtemp(join(tmpdir(), 'skiff-bench-import-'));
try {
  // a base of BASE_MB of incompressible data in 1 MiB files, plus busybox
  const data: TarEntry[] = [{ name: 'data/', type: 'dir' }];
  for (let i = 0; i < BASE_MB; i++)
    data.push({ name: `data/${String(i).padStart(4, '0')}`, data: randomBytes(1 << 20) });
  const baseLayers = [busyboxLayerEntries(), data];
  const first = buildImage({ name: 'bench/base:1', layers: baseLayers });
  const second = buildImage({
    name: 'bench/app:1',
    layers: [
      ...baseLayers,
      [
        { name: 'app/', type: 'dir' },
        { name: 'app/bin', data: randomBytes(256 << 10) },
      ],
    ],
  });
  const a = join(dir, 'first.tar');
  const b = join(dir, 'second.tar');
  await writeFile(a, archiveTar(ociLayout([first])));
  await writeFile(b, archiveTar(ociLayout([second])));

  const root = join(dir, 'root');
  const content = await LocalContentStore.open(join(root, 'content'));
  const images = await ImageStore.open(join(root, 'images'), {
    content,
    snapshotter: await OverlaySnapshotter.open(join(root, 'snapshots', 'overlay')),
  });
  const secondTotal =
    second.manifest.length + second.config.length + second.layers.reduce((s, l) => s + l.blob.length, 0);
  const newBytes = second.manifest.length + second.config.length + second.layers.at(-1)!.blob.length;

  const r1 = await images.import(a);
  const du1 = du(join(root, 'content'));
  const w1 = await writeBytes();
  const r2 = await images.import(b);
  const w2 = await writeBytes();
  const du2 = du(join(root, 'content'));
  console.log(
    `| import | blobs written | bytes written | blobs skipped | bytes skipped | content store growth (du -sb) |`,
  );
  console.log(`|---|---|---|---|---|---|`);
  console.log(
    `| first image (${(r1.bytesWritten / 2 ** 20).toFixed(1)} MiB) | ${r1.blobsWritten} | ${r1.bytesWritten} | ${r1.blobsSkipped} | ${r1.bytesSkipped} | ${du1} |`,
  );
  console.log(
    `| second image, sharing ${first.layers.length} base layers | ${r2.blobsWritten} | ${r2.bytesWritten} | ${r2.blobsSkipped} | ${r2.bytesSkipped} | ${du2 - du1} |`,
  );
  console.log(
    `second image: ${secondTotal} bytes in total, ${newBytes} bytes new (last layer + config + manifest)`,
  );
  console.log(
    `second import wrote only the new blobs: ${r2.bytesWritten === newBytes ? 'yes' : 'NO'}; ` +
      `process write_bytes during it: ${w2 - w1} (page cache writeback may lag)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
