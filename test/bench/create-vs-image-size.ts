/**
 * Container root creation cost against image size: snapshot prepare + mount + first read +
 * unmount + remove, for a 1 GiB image and a 5 MiB image (already imported and unpacked, as a
 * node that runs the image again would have them), interleaved. Goal (issue 3): ratio <= 1.2.
 *
 *   node --import tsx test/bench/create-vs-image-size.ts     (env: N=15, SNAPSHOTTER=overlay|copy)
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { ImageStore } from '../../node-agent/runtime/images/image-store.js';
import { CopySnapshotter } from '../../node-agent/runtime/snapshots/copy-snapshotter.js';
import { OverlaySnapshotter } from '../../node-agent/runtime/snapshots/overlay-snapshotter.js';
import { mountAll, unmount } from '../fixtures/images-mount.js';

const N = Number(process.env.N ?? 15);
const KIND = process.env.SNAPSHOTTER ?? 'overlay';

function sha256File(path: string): string {
  return `sha256:${execFileSync('sha256sum', [path], { encoding: 'utf8' }).slice(0, 64)}`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** An OCI layout with one uncompressed layer of `files` x `mib` MiB, built with GNU tar (no 1 GiB buffers in memory). */
async function layout(dir: string, name: string, files: number, mib: number): Promise<string> {
  const src = join(dir, `${name}-src`);
  await mkdir(join(src, 'data'), { recursive: true });
  for (let i = 0; i < files; i++) {
    execFileSync('dd', [
      'if=/dev/urandom',
      `of=${join(src, 'data', String(i))}`,
      'bs=1M',
      `count=${mib}`,
      'status=none',
    ]);
  }
  await writeFile(join(src, 'marker'), name);
  const out = join(dir, `${name}-layout`);
  await mkdir(join(out, 'blobs', 'sha256'), { recursive: true });
  const layer = join(out, 'layer.tar');
  execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-cf', layer, '-C', src, '.']);
  await rm(src, { recursive: true, force: true });
  const diffId = sha256File(layer);
  const size = Number(execFileSync('stat', ['-c', '%s', layer], { encoding: 'utf8' }));
  execFileSync('mv', [layer, join(out, 'blobs', 'sha256', diffId.slice(7))]);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [diffId] },
    }),
  );
  const configDigest = `sha256:${execFileSync('sha256sum', { input: config, encoding: 'utf8' }).slice(0, 64)}`;
  await writeFile(join(out, 'blobs', 'sha256', configDigest.slice(7)), config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: diffId, size }],
    }),
  );
  const manifestDigest = `sha256:${execFileSync('sha256sum', { input: manifest, encoding: 'utf8' }).slice(0, 64)}`;
  await writeFile(join(out, 'blobs', 'sha256', manifestDigest.slice(7)), manifest);
  await writeFile(join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(out, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'io.containerd.image.name': `bench/${name}:1` },
        },
      ],
    }),
  );
  return out;
}

const dir = await mkdtemp(join(tmpdir(), 'skiff-bench-create-'));
const target = join(dir, 'mnt');
try {
  await mkdir(target);
  const root = join(dir, 'root');
  const content = await LocalContentStore.open(join(root, 'content'));
  const snapshotter =
    KIND === 'copy'
      ? await CopySnapshotter.open(join(root, 'snapshots', 'copy'))
      : await OverlaySnapshotter.open(join(root, 'snapshots', 'overlay'));
  const images = await ImageStore.open(join(root, 'images'), { content, snapshotter });
  const sizes = { small: [5, 1], large: [16, 64] } as const;
  const chains: Record<string, string> = {};
  for (const [name, [files, mib]] of Object.entries(sizes)) {
    const t0 = performance.now();
    await images.import(await layout(dir, name, files, mib));
    const { chainId } = await images.unpack(`bench/${name}:1`);
    chains[name] = chainId;
    console.log(
      `# ${name}: ${files * mib} MiB image imported and unpacked in ${(performance.now() - t0).toFixed(0)} ms (untimed below)`,
    );
  }
  const times: Record<string, number[]> = { small: [], large: [] };
  for (let round = 0; round <= N; round++) {
    for (const name of ['small', 'large']) {
      const key = `bench-${name}-${round}`;
      const t0 = performance.now();
      await mountAll(await snapshotter.prepare(key, chains[name]), target);
      await readFile(join(target, 'marker'));
      await unmount(target);
      await snapshotter.remove(key);
      if (round > 0) times[name]!.push(performance.now() - t0);
    }
  }
  const small = median(times.small!);
  const large = median(times.large!);
  console.log(`| ${KIND} snapshotter | median ms (n=${N}) |`);
  console.log(`|---|---|`);
  console.log(`| 5 MiB image: prepare+mount+read+umount+remove | ${small.toFixed(1)} |`);
  console.log(`| 1 GiB image: prepare+mount+read+umount+remove | ${large.toFixed(1)} |`);
  console.log(`ratio 1 GiB / 5 MiB: ${(large / small).toFixed(2)} (goal <= 1.2)`);
} finally {
  await unmount(target).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
