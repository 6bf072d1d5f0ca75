import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../proto/errors.js';
import { gzip, sha256, tar, zstd } from '../../../test/fixtures/images.js';
import { layerDecompressor } from './layer-decompress.js';
import { withDiffId } from './layer-digests.js';
import type { LayerCompression } from '../../../proto/oci/media-types.js';

/** A tar that compresses in many blocks: a few words in random order. */
function wordyTar(bytes: number): Buffer {
  const words = ['layer', 'zstd', 'gzip', 'tar', 'skiff', 'image', 'digest', 'frame'];
  const pick = randomBytes(bytes / 4);
  const text = Array.from(pick, (b) => words[b & 7]).join(' ');
  return tar([
    { name: 'etc/', type: 'dir' },
    { name: 'etc/words', data: text },
  ]);
}

function chunked(data: Buffer, size = 16 * 1024): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

/** Drains the probe's stream, as the content store does, and returns what passed through. */
async function drain(
  blob: Buffer,
  compression: LayerCompression | 'auto',
): Promise<{ passed: Buffer; probe: ReturnType<typeof withDiffId>['probe'] }> {
  const { stream, probe } = withDiffId(Readable.from(chunked(blob)), compression, 'import x.tar: layer L');
  const passed: Buffer[] = [];
  for await (const chunk of stream) passed.push(chunk);
  return { passed: Buffer.concat(passed), probe };
}

describe('layer DiffIDs at import (withDiffId)', () => {
  const t = wordyTar(1024 * 1024);

  for (const compression of ['zstd', 'gzip', 'none'] as const) {
    test(`${compression}: the DiffID is the uncompressed tar's, declared or sniffed; the blob passes unchanged`, async () => {
      const blob = compression === 'zstd' ? zstd(t) : compression === 'gzip' ? gzip(t) : t;
      for (const declared of [compression, 'auto'] as const) {
        const { passed, probe } = await drain(blob, declared);
        assert.ok(passed.equals(blob), declared);
        assert.equal(probe.diffId(), sha256(t), declared);
        assert.equal(probe.compression(), compression, declared);
      }
    });
  }

  test('a corrupt, truncated or trailing-garbage zstd blob still passes whole; its DiffID is refused', async () => {
    const good = zstd(t);
    assert.ok(good.length > 8 * 16 * 1024, 'many chunks');
    const cases: [string, Buffer, RegExp][] = [
      // a garbage block header two chunks in: zstd fails there, with most of the blob still to come
      [
        'corrupt early',
        Buffer.concat([good.subarray(0, 40_000), Buffer.alloc(good.length - 40_000, 0x55)]),
        /corrupt or truncated zstd stream: /,
      ],
      [
        'truncated',
        good.subarray(0, good.length - 100),
        /corrupt or truncated zstd stream: unexpected end of file/,
      ],
      [
        'garbage after the frame',
        Buffer.concat([good, Buffer.alloc(5000, 0x55)]),
        /corrupt or truncated zstd stream: 5000 bytes after the last frame are not a zstd frame/,
      ],
    ];
    for (const [label, blob, why] of cases) {
      for (const declared of ['zstd', 'auto'] as const) {
        const { passed, probe } = await drain(blob, declared);
        assert.ok(passed.equals(blob), `${label} (${declared}): the content store sees the whole blob`);
        assert.throws(
          () => probe.diffId(),
          (err: unknown) =>
            err instanceof InvalidArgumentError &&
            err.field === 'layer' &&
            err.message.startsWith('import x.tar: layer L: ') &&
            why.test(err.message),
          `${label} (${declared})`,
        );
      }
    }
  });
});

describe('layer decompressors', () => {
  for (const compression of ['zstd', 'gzip'] as const) {
    test(`${compression}: a teardown midway is not the data's fault; a truncated stream is`, async () => {
      const blob = compression === 'zstd' ? zstd(wordyTar(512 * 1024)) : gzip(wordyTar(512 * 1024));
      const half = blob.subarray(0, Math.floor(blob.length / 2));

      const torn = layerDecompressor(compression, 'unpack layer L');
      torn.stream.resume();
      torn.stream.write(half);
      await new Promise((resolve) => torn.stream.once('data', resolve));
      const closed = new Promise((resolve) => torn.stream.once('close', resolve));
      torn.stream.destroy(
        Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }),
      );
      await closed;
      assert.equal(torn.refusal(half.length), undefined);

      const cut = layerDecompressor(compression, 'unpack layer L');
      cut.stream.resume();
      const failed = new Promise((resolve) => cut.stream.once('error', resolve));
      cut.stream.end(half);
      await failed;
      const refusal = cut.refusal(half.length);
      assert.ok(refusal instanceof InvalidArgumentError);
      assert.equal(
        refusal.message,
        `unpack layer L: corrupt or truncated ${compression} stream: unexpected end of file`,
      );
    });
  }
});
