import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, createZstdCompress } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { InvalidArgumentError, ResourceExhaustedError } from '../../proto/errors.js';
import {
  gzip,
  nestedTree,
  sha256,
  sorted,
  tar,
  zstd,
  type FixtureCompression,
  type TarEntry,
} from '../fixtures/images.js';
import { tarHeader } from '../fixtures/images-tar.js';
import { hostileLayers } from '../fixtures/images-hostile.js';
import { treeFingerprint } from './snapshotter-conformance.js';
import {
  applyLayer,
  unpackerPath,
  type ApplyLayerOptions,
} from '../../node-agent/runtime/images/layer-unpack.js';

/**
 * A gzip (or zstd) layer of `count` entries made by `entryAt(i)`, generated as a stream (the tar
 * of a hostile layer can be hundreds of MiB that compress to a few).
 */
async function generatedLayer(
  count: number,
  entryAt: (i: number) => TarEntry,
  compression: 'gzip' | 'zstd' = 'gzip',
) {
  const diff = createHash('sha256');
  function* blocks(): Generator<Buffer> {
    for (let i = 0; i < count; i++) {
      const t = tar([entryAt(i)]);
      const one = t.subarray(0, t.length - 1024); // without the end-of-archive blocks
      diff.update(one);
      yield one;
    }
    const end = Buffer.alloc(1024);
    diff.update(end);
    yield end;
  }
  const chunks: Buffer[] = [];
  await pipeline(
    Readable.from(blocks()),
    compression === 'gzip' ? createGzip({ level: 1 }) : createZstdCompress(),
    new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk);
        done();
      },
    }),
  );
  const blob = Buffer.concat(chunks);
  return {
    blob,
    digest: sha256(blob),
    diffId: `sha256:${diff.digest('hex')}` as const,
    compression,
  } as const;
}

function layerOf(entries: TarEntry[], compression: FixtureCompression = 'none') {
  const t = tar(entries);
  const blob = compression === 'gzip' ? gzip(t) : compression === 'zstd' ? zstd(t) : t;
  return { blob, digest: sha256(blob), diffId: sha256(t), compression } as const;
}

async function apply(
  dir: string,
  entries: TarEntry[] | Buffer,
  whiteouts: ApplyLayerOptions['whiteouts'],
  extra: Partial<ApplyLayerOptions> = {},
) {
  const t = Buffer.isBuffer(entries) ? entries : tar(entries);
  return applyLayer(Readable.from([t]), {
    dir,
    whiteouts,
    digest: sha256(t),
    diffId: sha256(t),
    compression: 'none',
    ...extra,
  });
}

describe('layer unpack (skiff-unpack)', () => {
  let base: string;
  let n = 0;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'skiff-unpack-'));
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  /** A fresh sandbox: sandbox/layer (the target), sandbox/canary (must never change). */
  async function sandbox() {
    const root = join(base, `s${n++}`);
    const layer = join(root, 'layer');
    const canary = join(root, 'canary');
    await mkdir(join(canary, 'dir'), { recursive: true });
    await mkdir(layer);
    await writeFile(join(canary, 'file'), 'canary');
    await writeFile(join(canary, 'dir', 'inner'), 'inner');
    return { root, layer, canary };
  }

  test('keeps modes, owners, mtimes, hard links, symlinks, fifos and allowed xattrs', async () => {
    const { layer } = await sandbox();
    const stats = await apply(
      layer,
      sorted([
        { name: 'd/', type: 'dir', mode: 0o750, uid: 1000, gid: 1000, mtime: 1_000_000 },
        {
          name: 'd/f',
          data: 'hello',
          mode: 0o640,
          uid: 1234,
          gid: 4321,
          mtime: 1_500_000,
          xattrs: { 'user.k': 'v', 'security.selinux': 'x' },
        },
        { name: 'd/h', type: 'hardlink', linkname: 'd/f' },
        { name: 'd/l', type: 'symlink', linkname: 'f', uid: 7, gid: 7 },
        { name: 'p', type: 'fifo', mode: 0o600 },
        { name: 'x'.repeat(150) + '/y'.repeat(30), data: 'long' },
      ]),
      'apply',
    );
    const f = await lstat(join(layer, 'd/f'));
    assert.equal(f.mode & 0o7777, 0o640);
    assert.equal(f.uid, 1234);
    assert.equal(f.gid, 4321);
    assert.equal(Math.floor(f.mtimeMs / 1000), 1_500_000);
    assert.equal(f.nlink, 2);
    assert.equal((await lstat(join(layer, 'd/h'))).ino, f.ino);
    assert.equal(await readlink(join(layer, 'd/l')), 'f');
    assert.equal((await lstat(join(layer, 'd/l'))).uid, 7);
    assert.ok((await lstat(join(layer, 'p'))).isFIFO());
    const d = await lstat(join(layer, 'd'));
    assert.equal(d.mode & 0o7777, 0o750);
    assert.equal(
      Math.floor(d.mtimeMs / 1000),
      1_000_000,
      'directory mtimes are restored after their children are written',
    );
    assert.equal(await readFile(join(layer, 'x'.repeat(150) + '/y'.repeat(30)), 'utf8'), 'long');
    assert.equal(stats.xattrsSkipped, 1);
    assert.equal(stats.files, 2);
  });

  for (const whiteouts of ['overlay', 'apply'] as const) {
    for (const c of hostileLayers('/CANARY')) {
      test(`hostile (${whiteouts}): ${c.name}`, async () => {
        const { root, layer, canary } = await sandbox();
        const entries = hostileLayers(canary).find((h) => h.name === c.name)!.entries;
        const before = await treeFingerprint(canary);
        const run = apply(layer, entries, whiteouts);
        if (c.refused) {
          await assert.rejects(run, (err: unknown) => {
            assert.ok(err instanceof InvalidArgumentError, String(err));
            assert.match(err.message, /^unpack layer sha256:[a-f0-9]{64}: /);
            assert.match(err.message, c.refused!);
            return true;
          });
        } else {
          await run;
        }
        assert.deepEqual(
          await treeFingerprint(canary),
          before,
          'nothing outside the layer directory changed',
        );
        assert.deepEqual(
          (await readdir(root)).sort(),
          ['canary', 'layer'],
          'nothing was created beside the layer',
        );
        if (c.name.startsWith('file over')) {
          assert.ok((await lstat(join(layer, 'f'))).isFile());
          assert.equal(await readFile(join(layer, 'f'), 'utf8'), 'new');
        }
        if (c.name.startsWith('directory over')) assert.ok((await lstat(join(layer, 'd'))).isDirectory());
        if (c.name === 'hard link to a symlink that points out') {
          // one rule for symlinks: targets kept verbatim, through a hard link as well
          assert.equal(await readlink(join(layer, 's')), '../canary/file');
          assert.equal(await readlink(join(layer, 'h')), '../canary/file');
          assert.equal((await lstat(join(layer, 'h'))).ino, (await lstat(join(layer, 's'))).ino);
        }
        if (c.name.startsWith('device nodes')) assert.deepEqual(await readdir(join(layer, 'dev')), []);
        if (c.name.startsWith('setuid')) {
          assert.equal((await lstat(join(layer, 'bin/su'))).mode & 0o7777, 0o4755);
          assert.equal((await lstat(join(layer, 'bin/wall'))).mode & 0o7777, 0o2755);
        }
        if (c.name.startsWith('symlink targets')) {
          assert.equal(await readlink(join(layer, 'abs')), '/etc/shadow');
          assert.equal(await readlink(join(layer, 'climb')), '../../../../etc');
        }
      });
    }
  }

  test('whiteouts in overlay form: char 0/0 devices and an opaque xattr, the marker processed first', async () => {
    const { layer } = await sandbox();
    const stats = await apply(
      layer,
      [
        { name: 'etc/', type: 'dir' },
        { name: 'etc/.wh.doomed' },
        { name: 'data/', type: 'dir' },
        { name: 'data/c', data: 'c' },
        { name: 'data/.wh..wh..opq' },
      ],
      'overlay',
    );
    const wh = await lstat(join(layer, 'etc/doomed'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.equal(await readFile(join(layer, 'data/c'), 'utf8'), 'c');
    assert.deepEqual({ whiteouts: stats.whiteouts, opaques: stats.opaques }, { whiteouts: 1, opaques: 1 });
    // the opaque xattr itself is checked through a real overlay mount in image-store.test.ts (merged view)
  });

  test("whiteouts applied: deletes what they name, the opaque marker keeps only this layer's entries", async () => {
    const { layer } = await sandbox();
    await apply(
      layer,
      sorted([
        { name: 'etc/', type: 'dir' },
        { name: 'etc/doomed', data: 'x' },
        { name: 'etc/kept', data: 'k' },
        { name: 'data/', type: 'dir' },
        { name: 'data/a', data: 'a' },
        { name: 'data/sub/', type: 'dir' },
        { name: 'data/sub/x', data: 'x' },
      ]),
      'apply',
    );
    await apply(
      layer,
      [
        { name: 'etc/.wh.doomed' },
        { name: 'data/c', data: 'c' },
        { name: 'data/new/y', data: 'y' },
        { name: 'data/.wh..wh..opq' },
      ],
      'apply',
    );
    assert.deepEqual(await readdir(join(layer, 'etc')), ['kept']);
    assert.deepEqual((await readdir(join(layer, 'data'))).sort(), ['c', 'new']);
  });

  test('gzip layers: both digests verified; corrupt and truncated gzip refused', async () => {
    const { layer } = await sandbox();
    const good = layerOf([{ name: 'f', data: 'x'.repeat(100_000) }], 'gzip');
    const stats = await applyLayer(Readable.from([good.blob]), { dir: layer, whiteouts: 'apply', ...good });
    assert.equal(stats.uncompressedBytes, tar([{ name: 'f', data: 'x'.repeat(100_000) }]).length);

    const truncated = good.blob.subarray(0, Math.floor(good.blob.length / 2));
    await assert.rejects(
      applyLayer(Readable.from([truncated]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        ...good,
        digest: sha256(truncated),
      }),
      /corrupt or truncated gzip stream/,
    );
    const corrupt = Buffer.from(good.blob);
    corrupt[corrupt.length - 6]! ^= 0xff; // inside the CRC32/ISIZE trailer
    await assert.rejects(
      applyLayer(Readable.from([corrupt]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        ...good,
        digest: sha256(corrupt),
      }),
      /corrupt or truncated gzip stream/,
    );
    const garbage = Buffer.concat([good.blob.subarray(0, 20), Buffer.alloc(200, 0x55)]);
    await assert.rejects(
      applyLayer(Readable.from([garbage]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        ...good,
        digest: sha256(garbage),
      }),
      /corrupt or truncated gzip stream/,
    );
  });

  test('zstd layers unpack as gzip ones do: same tree, both digests verified, several frames', async () => {
    const entries: TarEntry[] = sorted([
      { name: 'bin/', type: 'dir' },
      {
        name: 'bin/tool',
        data: Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff)),
        mode: 0o755,
      },
      { name: 'bin/link', type: 'symlink', linkname: 'tool' },
      { name: 'etc/', type: 'dir' },
      { name: 'etc/conf', data: 'x'.repeat(100_000) },
      { name: 'etc/hard', type: 'hardlink', linkname: 'etc/conf' },
    ]);
    const gz = layerOf(entries, 'gzip');
    const zs = layerOf(entries, 'zstd');
    assert.equal(zs.blob.readUInt32LE(0), 0xfd2fb528, 'a zstd frame');
    assert.equal(zs.diffId, gz.diffId, 'one tar, one DiffID');
    const fromGzip = (await sandbox()).layer;
    const fromZstd = (await sandbox()).layer;
    await applyLayer(Readable.from([gz.blob]), { dir: fromGzip, whiteouts: 'apply', ...gz });
    const stats = await applyLayer(Readable.from([zs.blob]), { dir: fromZstd, whiteouts: 'apply', ...zs });
    assert.equal(stats.compressedBytes, zs.blob.length);
    assert.equal(stats.uncompressedBytes, tar(entries).length);
    assert.equal(stats.files, 2);
    assert.deepEqual(await treeFingerprint(fromZstd), await treeFingerprint(fromGzip));
    assert.equal(await readFile(join(fromZstd, 'etc/conf'), 'utf8'), 'x'.repeat(100_000));
    assert.equal(await readlink(join(fromZstd, 'bin/link')), 'tool');

    // several frames and a skippable one (as zstd:chunked writes its table of contents): one stream
    const t = tar(entries);
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]), Buffer.from('toc!')]);
    const framed = Buffer.concat([zstd(t.subarray(0, 70_000)), zstd(t.subarray(70_000)), skippable]);
    const dir = (await sandbox()).layer;
    // in small chunks, so frames and headers straddle writes
    const chunks: Buffer[] = [];
    for (let i = 0; i < framed.length; i += 1000) chunks.push(framed.subarray(i, i + 1000));
    await applyLayer(Readable.from(chunks), {
      dir,
      whiteouts: 'apply',
      compression: 'zstd',
      digest: sha256(framed),
      diffId: sha256(t),
    });
    assert.deepEqual(await treeFingerprint(dir), await treeFingerprint(fromGzip));

    const other = sha256('other');
    await assert.rejects(
      applyLayer(Readable.from([zs.blob]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        ...zs,
        diffId: other,
      }),
      new RegExp(`does not match the config's diff_id \\(expected ${other}, actual ${zs.diffId}\\)`),
    );
    await assert.rejects(
      applyLayer(Readable.from([zs.blob]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        ...zs,
        digest: other,
      }),
      new RegExp(`blob does not match its digest \\(expected ${other}, actual ${zs.digest}\\)`),
    );
  });

  test('corrupt, truncated and trailing-garbage zstd refused naming the stream; nothing outside touched', async () => {
    const good = layerOf(
      [
        { name: 'f', data: 'x'.repeat(100_000) },
        { name: 'g', data: 'g' },
      ],
      'zstd',
    );
    const corrupt = Buffer.from(good.blob);
    corrupt[Math.floor(corrupt.length / 2)]! ^= 0xff;
    const checksum = Buffer.from(good.blob);
    checksum[checksum.length - 2]! ^= 0xff; // inside the content checksum
    const cases: [string, Buffer, RegExp][] = [
      [
        'truncated in half',
        good.blob.subarray(0, Math.floor(good.blob.length / 2)),
        /unexpected end of file/,
      ],
      [
        'truncated before its checksum',
        good.blob.subarray(0, good.blob.length - 3),
        /unexpected end of file/,
      ],
      ['only the magic', good.blob.subarray(0, 4), /unexpected end of file/],
      ['corrupt in the middle', corrupt, /./],
      ['a wrong checksum', checksum, /checksum/i],
      ['garbage after the magic', Buffer.concat([good.blob.subarray(0, 4), Buffer.alloc(200, 0x55)]), /./],
      [
        'garbage after the frame',
        Buffer.concat([good.blob, Buffer.from('not a frame')]),
        /11 bytes after the last frame are not a zstd frame/,
      ],
    ];
    for (const [label, blob, detail] of cases) {
      const { root, layer, canary } = await sandbox();
      const before = await treeFingerprint(canary);
      await assert.rejects(
        applyLayer(Readable.from([blob]), { dir: layer, whiteouts: 'apply', ...good, digest: sha256(blob) }),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError, `${label}: ${String(err)}`);
          assert.equal(err.field, 'layer', label);
          assert.match(
            err.message,
            new RegExp(`^unpack layer ${sha256(blob)}: corrupt or truncated zstd stream: `),
            label,
          );
          assert.match(err.message, detail, label);
          return true;
        },
      );
      assert.deepEqual(await treeFingerprint(canary), before, label);
      assert.deepEqual((await readdir(root)).sort(), ['canary', 'layer'], label);
    }
  });

  test('a zstd frame asking for a window over 128 MiB is refused before anything is allocated', async () => {
    // frame header only: no checksum, window descriptor 2^28, then one empty last raw block
    const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (28 - 10) << 3, 0x01, 0x00, 0x00]);
    await assert.rejects(
      applyLayer(Readable.from([frame]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        compression: 'zstd',
        digest: sha256(frame),
        diffId: sha256(''),
      }),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        /zstd stream asks for a window larger than 128 MiB, the most skiff decodes/.test(err.message),
    );
    // the same frame with a 2^27 window, the limit, decodes (to nothing)
    const ok = Buffer.from(frame);
    ok[5] = (27 - 10) << 3;
    const stats = await applyLayer(Readable.from([ok]), {
      dir: (await sandbox()).layer,
      whiteouts: 'apply',
      compression: 'zstd',
      digest: sha256(ok),
      diffId: sha256(''),
    });
    assert.equal(stats.uncompressedBytes, 0);
  });

  test('a zstd bomb stops at the size limit; a refused entry mid-stream is not called a corrupt stream', async () => {
    // 256 MiB of zeros in a blob of a few KiB
    const bomb = await generatedLayer(
      1,
      () => ({ name: 'zeros', data: Buffer.alloc(256 * 1024 * 1024) }),
      'zstd',
    );
    assert.ok(bomb.blob.length < 64 * 1024, `the blob is tiny (${bomb.blob.length} bytes)`);
    const rssBefore = process.memoryUsage().rss;
    await assert.rejects(
      applyLayer(Readable.from([bomb.blob]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        ...bomb,
        maxBytes: 1024 * 1024,
      }),
      (err: unknown) =>
        err instanceof ResourceExhaustedError &&
        /exceeds the limit of 1048576 bytes \(declared size 268435456 bytes/.test(err.message),
    );
    assert.ok(
      process.memoryUsage().rss - rssBefore < 200 * 1024 * 1024,
      'nothing buffered the decompressed stream',
    );
    // the extractor refuses the first entry and exits: the decompressor, torn down with 8 MiB
    // still to produce, reports the teardown (EPIPE), which is not the cause
    const { layer, canary } = await sandbox();
    const hostile = layerOf(
      [
        { name: '../canary/pwned', data: 'x' },
        { name: 'big', data: Buffer.alloc(8 * 1024 * 1024, 0x61) },
      ],
      'zstd',
    );
    await assert.rejects(
      applyLayer(Readable.from([hostile.blob]), { dir: layer, whiteouts: 'apply', ...hostile }),
      (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, String(err));
        assert.match(err.message, /"\.\." and would escape the layer root/);
        assert.doesNotMatch(err.message, /zstd/);
        return true;
      },
    );
    assert.deepEqual(await readdir(canary), ['dir', 'file']);
  });

  test('digest and DiffID mismatches are refused naming expected and actual', async () => {
    const good = layerOf([{ name: 'f', data: 'x' }], 'gzip');
    const other = sha256('other');
    await assert.rejects(
      applyLayer(Readable.from([good.blob]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        ...good,
        diffId: other,
      }),
      new RegExp(`does not match the config's diff_id \\(expected ${other}, actual ${good.diffId}\\)`),
    );
    await assert.rejects(
      applyLayer(Readable.from([good.blob]), {
        dir: (await sandbox()).layer,
        whiteouts: 'apply',
        ...good,
        digest: other,
      }),
      new RegExp(`blob does not match its digest \\(expected ${other}, actual ${good.digest}\\)`),
    );
  });

  test('a whiteout hides lower layers only: what the same layer wrote at that path stays', async () => {
    for (const mode of ['overlay', 'apply'] as const) {
      const { layer } = await sandbox();
      if (mode === 'apply') {
        await apply(
          layer,
          sorted([
            { name: 'x', data: 'lower' },
            { name: 'd/', type: 'dir' },
            { name: 'd/old', data: 'o' },
          ]),
          'apply',
        );
      }
      await apply(
        layer,
        [
          { name: 'x', data: 'upper' },
          { name: '.wh.x' },
          { name: 'd/', type: 'dir' },
          { name: 'd/new', data: 'n' },
          { name: '.wh.d' },
        ],
        mode,
      );
      assert.ok((await lstat(join(layer, 'x'))).isFile(), mode);
      assert.equal(await readFile(join(layer, 'x'), 'utf8'), 'upper');
      assert.deepEqual(await readdir(join(layer, 'd')), ['new'], mode);
    }
  });

  test('fuzz: mutated hostile tars never crash the extractor nor touch anything outside', async () => {
    const { root, canary } = await sandbox();
    const seedEntries: TarEntry[] = [
      { name: 'evil', type: 'symlink', linkname: canary },
      { name: 'rel', type: 'symlink', linkname: '../canary' },
      { name: 'd/', type: 'dir' },
      { name: 'd/f', data: 'data'.repeat(300), xattrs: { 'user.a': 'b' } },
      { name: 'd/h', type: 'hardlink', linkname: 'd/f' },
      { name: 'd/.wh.f' },
      { name: 'e/.wh..wh..opq' },
      { name: 'x'.repeat(120) + '/y', data: 'long' },
    ];
    const pristine = tar(seedEntries);
    const before = await treeFingerprint(canary);
    let state = 0x5eed;
    const rand = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const t = Buffer.from(pristine);
      for (let k = 0, flips = 1 + rand(8); k < flips; k++) {
        const block = rand(t.length / 512);
        const at =
          block * 512 + (rand(3) === 0 ? rand(512) : [0, 1, 2, 99, 124, 135, 156, 157, 158, 345][rand(10)]!);
        t[at] = rand(4) === 0 ? '/'.charCodeAt(0) : rand(4) === 0 ? '.'.charCodeAt(0) : rand(256);
        if (rand(2) === 0) {
          // keep most headers valid so the mutation reaches the extraction logic
          const h = t.subarray(block * 512, block * 512 + 512);
          h.fill(0x20, 148, 156);
          let sum = 0;
          for (const b of h) sum += b;
          h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
        }
      }
      const layer = join(root, 'layer');
      await rm(layer, { recursive: true, force: true });
      await mkdir(layer);
      const r = spawnSync(unpackerPath(), ['--root', layer, '--whiteouts', i % 2 ? 'overlay' : 'apply'], {
        input: t,
      });
      assert.equal(r.signal, null, `iteration ${i}: killed by ${r.signal}: ${r.stderr}`);
      assert.ok([0, 1, 2, 3].includes(r.status!), `iteration ${i}: exit ${r.status}`);
      const key = String(r.status);
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    assert.deepEqual(await treeFingerprint(canary), before);
    assert.deepEqual((await readdir(root)).sort(), ['canary', 'layer']);
    assert.ok((outcomes.get('2') ?? 0) > 0 && (outcomes.get('0') ?? 0) > 0, JSON.stringify([...outcomes]));
  });

  test('malformed PAX records and GNU long names are refused cleanly, never by a signal', async () => {
    const { root, canary } = await sandbox();
    const before = await treeFingerprint(canary);
    const paxBodies = [
      '\n1 abc\n', // strtoull skipped the newline: len 1 put the key past the record
      ' 9 path=a\n',
      '+9 path=a\n',
      '-9 path=a\n',
      '0 path=a\n',
      '1 \n',
      '5 =a\n\n',
      '9 pathab\n',
      '9 path=ab',
      '99 path=a\n',
      '99999999999999999999 path=a\n',
      '9path=ab\n',
      '11 path=a\n', // one past the end
      '8 path=a\n', // newline not where the length says
      '12 size=-1\n',
      '12 size=1x\n',
      '20 uid=4294967296\n',
      '11 path=a\0b\n',
      '6 a=b\n7 ',
    ];
    const longNames: Buffer[] = [];
    const gnu = (type: string, data: Buffer, declared = data.length): Buffer => {
      const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
      return Buffer.concat([tarHeader('././@LongLink', type, declared, { name: '' }, ''), data, pad]);
    };
    const file = tar([{ name: 'f', data: 'x' }]);
    longNames.push(Buffer.concat([gnu('L', Buffer.from('a'.repeat(200))), file])); // no NUL: still a name
    longNames.push(Buffer.concat([gnu('L', Buffer.alloc(0)), file]));
    longNames.push(Buffer.concat([gnu('L', Buffer.from('../../node-agent/escape\0')), file]));
    longNames.push(
      Buffer.concat([gnu('K', Buffer.from('/abs\0')), tar([{ name: 'h', type: 'hardlink', linkname: 'x' }])]),
    );
    longNames.push(gnu('L', Buffer.from('abc'), 4096)); // truncated
    longNames.push(Buffer.concat([gnu('L', Buffer.from('abc'), 1 << 30), file])); // over the limit
    const cases: Array<[string, Buffer, number[]]> = [
      ...paxBodies.map((paxBody): [string, Buffer, number[]] => [
        `PAX ${JSON.stringify(paxBody)}`,
        tar([{ name: 'f', data: 'x', paxBody }]),
        [2],
      ]),
      ...longNames.map((t, i): [string, Buffer, number[]] => [
        `GNU long name ${i}`,
        t,
        i === 0 || i === 1 ? [0, 2] : [2],
      ]),
    ];
    for (const [what, input, statuses] of cases) {
      const layer = join(root, 'layer');
      await rm(layer, { recursive: true, force: true });
      await mkdir(layer);
      const r = spawnSync(unpackerPath(), ['--root', layer, '--whiteouts', 'overlay'], { input });
      assert.equal(r.signal, null, `${what}: killed by ${r.signal}: ${r.stderr}`);
      assert.ok(statuses.includes(r.status!), `${what}: exit ${r.status}: ${r.stderr}`);
      if (r.status === 2) assert.match(String(r.stderr), /\S/, `${what}: refused without a reason`);
    }
    assert.deepEqual(await treeFingerprint(canary), before);
    assert.deepEqual((await readdir(root)).sort(), ['canary', 'layer']);
  });

  test('a directory replaced by a file is not written into afterwards', async () => {
    const entries: TarEntry[] = [
      { name: 'a/', type: 'dir' },
      { name: 'a/b/', type: 'dir' },
      { name: 'a/b/f1', data: '1' },
      { name: 'a', data: 'now a file' },
      { name: 'a/b/f2', data: '2' },
    ];
    for (const mode of ['overlay', 'apply'] as const) {
      const { layer } = await sandbox();
      await assert.rejects(apply(layer, entries, mode), (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, String(err));
        assert.match(err.message, /entry "a\/b\/f2": a parent \("a\/b"\) is not a directory/);
        return true;
      });
    }
  });

  // Removing a directory with two or more subdirectories (or two levels of them, as nestedTree
  // makes) must not close the directory fd the entry being applied still uses (which would fail the
  // entry with "Bad file descriptor").

  test('whiteouts and replacements of nested directories (two levels, two siblings), apply mode', async () => {
    const { layer } = await sandbox();
    await apply(
      layer,
      [
        { name: 'usr/', type: 'dir' },
        { name: 'usr/share/', type: 'dir' },
        ...nestedTree('usr/share/doc'),
        { name: 'usr/share/man', data: 'm' },
        ...nestedTree('opt/app'),
        ...nestedTree('srv/data'),
        ...nestedTree('var/link'),
      ],
      'apply',
    );
    const stats = await apply(
      layer,
      [
        { name: 'usr/share/.wh.doc' },
        { name: 'usr/share/after', data: 'same directory, after the removal' },
        { name: 'opt/app', data: 'a file now' },
        { name: 'opt/next', data: 'n' },
        { name: 'srv/data/.wh..wh..opq' },
        { name: 'srv/data/new', data: 'only me' },
        { name: 'var/link', type: 'symlink', linkname: '/elsewhere' },
        // within this same layer too: written, then replaced by a file
        ...nestedTree('tmp/t'),
        { name: 'tmp/t', data: 'replaced' },
        { name: 'tmp/u', data: 'u' },
      ],
      'apply',
    );
    assert.deepEqual((await readdir(join(layer, 'usr/share'))).sort(), ['after', 'man']);
    assert.equal(await readFile(join(layer, 'opt/app'), 'utf8'), 'a file now');
    assert.deepEqual((await readdir(join(layer, 'opt'))).sort(), ['app', 'next']);
    assert.deepEqual(await readdir(join(layer, 'srv/data')), ['new']);
    assert.equal(await readlink(join(layer, 'var/link')), '/elsewhere');
    assert.equal(await readFile(join(layer, 'tmp/t'), 'utf8'), 'replaced');
    assert.deepEqual((await readdir(join(layer, 'tmp'))).sort(), ['t', 'u']);
    assert.deepEqual({ whiteouts: stats.whiteouts, opaques: stats.opaques }, { whiteouts: 1, opaques: 1 });
  });

  test('replacements of nested directories written by the same layer, overlay mode', async () => {
    const { layer } = await sandbox();
    await apply(
      layer,
      [
        ...nestedTree('opt/app'),
        { name: 'opt/app', data: 'a file now' },
        { name: 'opt/next', data: 'n' },
        ...nestedTree('var/link'),
        { name: 'var/link', type: 'symlink', linkname: '/elsewhere' },
        ...nestedTree('usr/share/doc'),
        { name: 'usr/share/.wh.doc' }, // this layer's own directory: kept, made opaque
        { name: 'usr/share/.wh.gone' },
        { name: 'usr/share/after', data: 'a' },
      ],
      'overlay',
    );
    assert.equal(await readFile(join(layer, 'opt/app'), 'utf8'), 'a file now');
    assert.deepEqual((await readdir(join(layer, 'opt'))).sort(), ['app', 'next']);
    assert.equal(await readlink(join(layer, 'var/link')), '/elsewhere');
    assert.deepEqual((await readdir(join(layer, 'usr/share/doc'))).sort(), ['a', 'b']);
    assert.ok((await lstat(join(layer, 'usr/share/gone'))).isCharacterDevice());
    assert.equal(await readFile(join(layer, 'usr/share/after'), 'utf8'), 'a');
  });

  test('skiff-unpack run directly: --whiteouts apply of usr/share/.wh.doc over doc/{a,b}', async () => {
    const { layer } = await sandbox();
    await mkdir(join(layer, 'usr/share/doc/a'), { recursive: true });
    await mkdir(join(layer, 'usr/share/doc/b'), { recursive: true });
    const r = spawnSync(unpackerPath(), ['--root', layer, '--whiteouts', 'apply'], {
      input: tar([{ name: 'usr/share/.wh.doc' }]),
    });
    assert.equal(r.status, 0, String(r.stderr));
    assert.deepEqual(await readdir(join(layer, 'usr/share')), []);
  });

  test('memory: 50,000 files at ~3.8 KB paths unpack in a few MiB (paths are kept as 128-bit hashes)', async () => {
    // ~190 MB of path names: kept whole rather than hashed, they would take that much memory
    const deep = Array.from({ length: 15 }, () => 'a'.repeat(250)).join('/');
    const count = 50_000;
    const big = await generatedLayer(count, (i) => ({ name: `${deep}/f${String(i).padStart(7, '0')}` }));
    const { layer } = await sandbox();
    const stats = await applyLayer(Readable.from([big.blob]), { dir: layer, whiteouts: 'overlay', ...big });
    assert.equal(stats.files, count);
    assert.ok(
      stats.peakRssBytes < 64 * 1024 * 1024,
      `peak RSS ${(stats.peakRssBytes / 2 ** 20).toFixed(1)} MiB, expected < 64 MiB`,
    );
    const names = await readdir(join(layer, deep));
    assert.equal(names.length, count);
    assert.equal(names.sort()[count - 1], `f${String(count - 1).padStart(7, '0')}`);
  });

  test('memory: a layer needing more than the ceiling is refused naming it, and unpacks under a larger one', async () => {
    // 300,000 entries the unpacker only has to remember (device nodes are skipped): 16 bytes each
    // in a hash table that doubles, beyond a 16 MiB ceiling, well within the default 1 GiB
    const count = 300_000;
    const hungry = await generatedLayer(count, (i) => ({
      name: `dev/n${i}`,
      type: 'char',
      devmajor: 1,
      devminor: 3,
    }));
    const { layer } = await sandbox();
    await assert.rejects(
      applyLayer(Readable.from([hungry.blob]), {
        dir: layer,
        whiteouts: 'overlay',
        ...hungry,
        maxMemoryBytes: 16 * 1024 * 1024,
      }),
      (err: unknown) => {
        assert.ok(err instanceof ResourceExhaustedError, String(err));
        assert.match(
          err.message,
          new RegExp(
            `^unpack layer ${hungry.digest}: the layer needs more than 16 MiB of memory to unpack \\(set of paths written by the layer\\); refused`,
          ),
        );
        return true;
      },
    );
    const stats = await applyLayer(Readable.from([hungry.blob]), {
      dir: (await sandbox()).layer,
      whiteouts: 'overlay',
      ...hungry,
    });
    assert.equal(stats.devicesSkipped, count);

    // directories' paths must be kept (their mtimes are restored last): held to a quarter of it
    const deep = Array.from({ length: 15 }, () => 'd'.repeat(250)).join('/');
    const dirs = await generatedLayer(2_000, (i) => ({ name: `${deep}/${i}/`, type: 'dir' }));
    await assert.rejects(
      applyLayer(Readable.from([dirs.blob]), {
        dir: (await sandbox()).layer,
        whiteouts: 'overlay',
        ...dirs,
        maxMemoryBytes: 16 * 1024 * 1024,
      }),
      (err: unknown) =>
        err instanceof ResourceExhaustedError &&
        /needs more than 16 MiB of memory to unpack \(paths of directories whose mtimes are restored last, held to a quarter of it\); refused/.test(
          err.message,
        ),
    );
    await assert.rejects(
      apply((await sandbox()).layer, [{ name: 'f' }], 'apply', { maxMemoryBytes: 1024 }),
      (err: unknown) => err instanceof InvalidArgumentError && err.field === 'maxMemoryBytes',
    );
  });

  test('a truncated or corrupt tar, and a layer over the size limit, are refused', async () => {
    const t = tar([{ name: 'f', data: 'x'.repeat(5000) }]);
    await assert.rejects(
      apply((await sandbox()).layer, t.subarray(0, 1536), 'apply'),
      /truncated tar archive/,
    );
    const bad = Buffer.from(t);
    bad[10] = 0x41;
    await assert.rejects(apply((await sandbox()).layer, bad, 'apply'), /checksum mismatch/);
    await assert.rejects(
      apply((await sandbox()).layer, tar([{ name: 'a' }, { name: 'b' }, { name: 'c' }]), 'apply', {
        maxEntries: 2,
      }),
      (err: unknown) =>
        err instanceof ResourceExhaustedError &&
        /more than 2 entries, the limit \(free inodes\)/.test(err.message),
    );
    await assert.rejects(apply((await sandbox()).layer, t, 'apply', { maxBytes: 4096 }), (err: unknown) => {
      assert.ok(err instanceof ResourceExhaustedError);
      assert.match(err.message, /exceeds the limit of 4096 bytes \(declared size 5000 bytes/);
      return true;
    });
  });
});
