/**
 * Hashing a layer twice in one read: the bytes as stored (the blob digest, checked by the
 * content store) and the uncompressed tar (the DiffID, checked against the image config).
 */
import { createHash } from 'node:crypto';
import type { Transform } from 'node:stream';
import { InternalError, InvalidArgumentError, errorMessage } from '../../../proto/errors.js';
import type { Digest } from '../../../proto/oci/digest.js';
import { layerDecompressor, type LayerDecompressor } from './layer-decompress.js';
import { sniffCompression, type LayerCompression } from '../../../proto/oci/media-types.js';

export interface DiffIdProbe {
  /** The uncompressed digest, once the source has been read to its end; throws for a corrupt stream. */
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
  let failure: InvalidArgumentError | InternalError | undefined;
  async function* run(): AsyncIterable<Buffer> {
    let decompressor: LayerDecompressor | undefined;
    let streamError: Error | undefined;
    let fed = 0;
    decided = compression === 'auto' ? undefined : compression;
    for await (const raw of source) {
      const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      if (decided === undefined) decided = sniffCompression(chunk);
      if (decided !== 'none' && !decompressor) {
        decompressor = layerDecompressor(decided, what);
        decompressor.stream.on('data', (d: Buffer) => hash.update(d));
        decompressor.stream.on('error', (err) => (streamError ??= err));
      }
      yield chunk;
      if (decompressor) {
        // after a failure the blob still passes through whole: its digest is checked first
        if (streamError) continue;
        fed += chunk.length;
        if (!decompressor.stream.write(chunk)) await settled(decompressor.stream, 'drain');
      } else {
        hash.update(chunk);
      }
    }
    if (decompressor && !streamError) {
      const ended = settled(decompressor.stream, 'end');
      decompressor.stream.end();
      await ended;
    }
    // reported by diffId(), after the consumer has checked the blob digest: a blob that is not
    // the one the manifest names is the more basic fault and is reported first
    failure = decompressor?.refusal(fed);
    if (!failure && streamError) {
      failure = new InternalError(`${what}: decompress layer: ${errorMessage(streamError)}`, {
        cause: streamError,
      });
    }
    if (failure) return;
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
function settled(stream: Transform, event: 'drain' | 'end'): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off(event, done);
      stream.off('error', done);
      resolve();
    };
    stream.on(event, done);
    stream.on('error', done);
  });
}
