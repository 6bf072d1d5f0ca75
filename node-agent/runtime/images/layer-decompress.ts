/**
 * The one place that knows how a compressed layer is read: the zlib decompressor for its
 * compression (gzip, or zstd since Node 22.15), and which of its failures mean the blob is bad.
 * Used for the DiffID at import (layer-digests.ts) and at unpack (layer-unpack.ts).
 *
 * Neither decompressor buffers beyond its chunk: it produces output only as its reader takes it,
 * so a bomb (zstd reaches ~32,000:1 on zeros, gzip ~1,000:1) costs time, never memory: at unpack
 * the extractor's limits (--max-bytes, --max-entries) stop what it would write, and what it need
 * not write (bytes after the tar's end) is only hashed, as at import.
 */
import type { Transform } from 'node:stream';
import { constants, createGunzip, createZstdDecompress } from 'node:zlib';
import { InvalidArgumentError } from '../../../proto/errors.js';
import type { LayerCompression } from '../../../proto/oci/media-types.js';

/**
 * A zstd frame names the window its decoder must keep, and the decoder allocates it: 2^27 bytes
 * (128 MiB) at most, zstd's own default limit (`zstd -d` refuses more without --memory), which
 * every level up to --ultra -22 and --long (27) stays within. A frame asking for more is refused,
 * so a hostile header of a few bytes cannot make the node agent allocate gigabytes.
 */
export const ZSTD_WINDOW_LOG_MAX = 27;

export interface LayerDecompressor {
  /** Compressed bytes in, the uncompressed tar out. */
  readonly stream: Transform;
  /**
   * Once the stream has been fed `fed` bytes and has ended or failed: the refusal if those bytes
   * are not one whole, well-formed stream; undefined otherwise, also for a failure that is not the
   * data's fault (a teardown after the reader stopped, "Premature close" or EPIPE).
   */
  refusal(fed: number): InvalidArgumentError | undefined;
}

export function layerDecompressor(
  compression: Exclude<LayerCompression, 'none'>,
  what: string,
  options: { chunkSize?: number } = {},
): LayerDecompressor {
  const stream =
    compression === 'gzip'
      ? createGunzip(options)
      : createZstdDecompress({
          ...options,
          params: { [constants.ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG_MAX },
        });
  let dataError: NodeJS.ErrnoException | undefined;
  let ended = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (isDataError(err)) dataError ??= err;
  });
  stream.once('end', () => (ended = true));
  return {
    stream,
    refusal(fed) {
      if (dataError?.code === 'ZSTD_error_frameParameter_windowTooLarge') {
        return new InvalidArgumentError(
          `${what}: zstd stream asks for a window larger than ${2 ** (ZSTD_WINDOW_LOG_MAX - 20)} MiB, the most skiff decodes (zstd's own default limit): recompress it with a smaller window (zstd --long=${ZSTD_WINDOW_LOG_MAX} or less)`,
          'layer',
          { cause: dataError },
        );
      }
      if (dataError) {
        return new InvalidArgumentError(
          `${what}: corrupt or truncated ${compression} stream: ${dataError.message}`,
          'layer',
          { cause: dataError },
        );
      }
      // zstd stops, silently, at the first bytes after a frame that are not another frame; gzip
      // reports them itself (all but zero padding)
      if (compression === 'zstd' && ended && stream.bytesWritten < fed) {
        return new InvalidArgumentError(
          `${what}: corrupt or truncated zstd stream: ${fed - stream.bytesWritten} bytes after the last frame are not a zstd frame`,
          'layer',
        );
      }
      return undefined;
    },
  };
}

/**
 * zlib's own errors mean bad data: Z_DATA_ERROR, Z_BUF_ERROR ("unexpected end of file", a
 * truncated stream, gzip or zstd) and zstd's ZSTD_error_* (corruption_detected, checksum_wrong,
 * prefix_unknown, frameParameter_windowTooLarge, ...). Anything else (ERR_STREAM_PREMATURE_CLOSE,
 * EPIPE) comes from the stream being torn down and is not the cause.
 */
function isDataError(err: NodeJS.ErrnoException): boolean {
  return typeof err.code === 'string' && (err.code.startsWith('Z_') || err.code.startsWith('ZSTD_error_'));
}
