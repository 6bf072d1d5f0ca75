/**
 * Hashing a layer twice in one read: the bytes as stored (the blob digest, checked by the
 * content store) and the uncompressed tar (the DiffID, checked against the image config).
 */
import { createHash } from 'node:crypto';
import { createGunzip, type Gunzip } from 'node:zlib';
import { InvalidArgumentError } from '../../../proto/errors.js';
import type { Digest } from '../content/digest.js';
import { ZSTD_UNSUPPORTED, sniffCompression, type LayerCompression } from './media-types.js';

export interface DiffIdProbe {
  /** The uncompressed digest, once the source has been read to its end; throws for corrupt gzip. */
  diffId(): Digest;
  /** The compression found (or declared). */
  compression(): LayerCompression;
}

/**
 * Passes `source` through unchanged while hashing its decompressed form. `compression` 'auto'
 * decides from the first bytes (legacy docker save layers carry no media type).
 */
export function withDiffId(
  source: AsyncIterable<Buffer | Uint8Array>,
  compression: LayerCompression | 'auto',
  what: string,
): { stream: AsyncIterable<Buffer>; probe: DiffIdProbe } {
  const hash = createHash('sha256');
  let result: Digest | undefined;
  let decided: LayerCompression | undefined;
  let failure: InvalidArgumentError | undefined;
  async function* run(): AsyncIterable<Buffer> {
    let gunzip: Gunzip | undefined;
    let gzipError: Error | undefined;
    decided = compression === 'auto' ? undefined : compression;
    for await (const raw of source) {
      const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      if (decided === undefined) decided = sniffCompression(chunk);
      if (decided === 'zstd') throw new InvalidArgumentError(`${what}: ${ZSTD_UNSUPPORTED}`, 'mediaType');
      if (decided === 'gzip' && !gunzip) {
        gunzip = createGunzip();
        gunzip.on('data', (d: Buffer) => hash.update(d));
        gunzip.on('error', (err) => (gzipError ??= err));
      }
      yield chunk;
      if (gunzip) {
        if (gzipError) break;
        if (!gunzip.write(chunk)) await settled(gunzip, 'drain');
      } else {
        hash.update(chunk);
      }
    }
    if (gunzip && !gzipError) {
      const ended = settled(gunzip, 'end');
      gunzip.end();
      await ended;
    }
    if (gzipError) {
      // reported by diffId(), after the consumer has checked the blob digest: a blob that is not
      // the one the manifest names is the more basic fault and is reported first
      failure = new InvalidArgumentError(
        `${what}: corrupt or truncated gzip stream: ${gzipError.message}`,
        'layer',
        {
          cause: gzipError,
        },
      );
      return;
    }
    result = `sha256:${hash.digest('hex')}`;
  }
  return {
    stream: run(),
    probe: {
      diffId() {
        if (failure) throw failure;
        if (!result) throw new Error('diffId read before the layer stream ended');
        return result;
      },
      compression() {
        return decided ?? 'none';
      },
    },
  };
}

/** Resolves on `event` or on an error (which the caller has already captured). */
function settled(gunzip: Gunzip, event: 'drain' | 'end'): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      gunzip.off(event, done);
      gunzip.off('error', done);
      resolve();
    };
    gunzip.on(event, done);
    gunzip.on('error', done);
  });
}
