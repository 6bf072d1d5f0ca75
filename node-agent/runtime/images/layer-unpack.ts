/**
 * Applies one layer blob to a snapshot's writable directory: the TypeScript half of unpacking.
 * Here: decompression (gzip or zstd: layer-decompress.ts) and both digests (the blob's, checked
 * against the manifest descriptor, and the uncompressed tar's, checked against the config's
 * DiffID). In skiff-unpack (C, beside this file): every file-system change, confined to the
 * directory by the kernel (openat2). See unpack/README.md for the policy on hostile entries.
 *
 * On any failure the caller discards the directory (the snapshot): a layer is all or nothing.
 */
import { spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  errorMessage,
} from '../../../proto/errors.js';
import type { Digest } from '../../../proto/oci/digest.js';
import { layerDecompressor } from './layer-decompress.js';
import type { LayerCompression } from '../../../proto/oci/media-types.js';
import { nativeBinary } from '../sys/native-binary.js';

export interface ApplyLayerOptions {
  /** The snapshot's writable layer directory. */
  dir: string;
  /** 'overlay': record whiteouts in overlayfs form; 'apply': delete what they name. */
  whiteouts: 'overlay' | 'apply';
  /** The layer blob's digest (manifest descriptor), verified over the bytes read. */
  digest: Digest;
  /** The DiffID from the image config, verified over the uncompressed tar. */
  diffId: Digest;
  compression: LayerCompression;
  /** Refuse a layer whose files add up to more than this many bytes. */
  maxBytes?: number;
  /** Refuse a layer with more entries than this (free inodes). */
  maxEntries?: number;
  /** Parent layer directories, top first (overlay form): attributes of parents the layer omits. */
  lowers?: string[];
  /**
   * The unpacker's memory ceiling (its address space, RLIMIT_AS), default
   * DEFAULT_UNPACK_MAX_MEMORY_BYTES, at least 16 MiB: a layer needing more is refused with
   * ResourceExhaustedError instead of exhausting the host.
   */
  maxMemoryBytes?: number;
}

/**
 * 1 GiB: what the unpacker keeps grows by 16 bytes per path a layer writes plus the paths of its
 * directory entries, so real layers stay within a few tens of MiB (a million entries ~ 32 MiB).
 */
export const DEFAULT_UNPACK_MAX_MEMORY_BYTES = 1024 * 1024 * 1024;

const MIN_UNPACK_MAX_MEMORY_BYTES = 16 * 1024 * 1024;

export interface ApplyLayerStats {
  entries: number;
  files: number;
  /** Bytes of file data written. */
  bytes: number;
  devicesSkipped: number;
  whiteouts: number;
  opaques: number;
  xattrsSkipped: number;
  /** The unpacker's peak resident memory (getrusage ru_maxrss). */
  peakRssBytes: number;
  compressedBytes: number;
  uncompressedBytes: number;
}

/** skiff-unpack: $SKIFF_UNPACK, else dist/native/skiff-unpack of this package. */
export function unpackerPath(): string {
  return nativeBinary('skiff-unpack', 'SKIFF_UNPACK');
}

function hashing(hash: Hash, count: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      count.bytes += chunk.length;
      done(null, chunk);
    },
  });
}

export async function applyLayer(source: Readable, options: ApplyLayerOptions): Promise<ApplyLayerStats> {
  const what = `unpack layer ${options.digest}`;
  const args = ['--root', options.dir, '--whiteouts', options.whiteouts];
  if (options.maxBytes !== undefined) args.push('--max-bytes', String(Math.floor(options.maxBytes)));
  if (options.maxEntries !== undefined) args.push('--max-entries', String(Math.floor(options.maxEntries)));
  const maxMemory = options.maxMemoryBytes ?? DEFAULT_UNPACK_MAX_MEMORY_BYTES;
  if (!Number.isSafeInteger(maxMemory) || maxMemory < MIN_UNPACK_MAX_MEMORY_BYTES) {
    throw new InvalidArgumentError(
      `${what}: the unpacker's memory ceiling must be a whole number of bytes of at least 16 MiB (got ${maxMemory})`,
      'maxMemoryBytes',
    );
  }
  args.push('--max-memory', String(maxMemory));
  for (const lower of options.lowers ?? []) args.push('--lower', lower);
  const child = spawn(unpackerPath(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });

  const compressedHash = createHash('sha256');
  const diffHash = createHash('sha256');
  const compressed = { bytes: 0 };
  const uncompressed = { bytes: 0 };
  const stages: NodeJS.ReadWriteStream[] = [hashing(compressedHash, compressed)];
  // the decompressor produces only what the extractor reads: a bomb stops at its limits
  const decompressor =
    options.compression === 'none'
      ? undefined
      : layerDecompressor(options.compression, what, { chunkSize: 1 << 18 });
  if (decompressor) stages.push(decompressor.stream);
  stages.push(hashing(diffHash, uncompressed));
  const fed = pipeline(source, ...(stages as [Transform]), child.stdin);
  const [feedResult, exitResult] = await Promise.allSettled([fed, exited]);

  // bad compressed data explains whatever the extractor made of its output (a truncated tar)
  const corrupt = decompressor?.refusal(compressed.bytes);
  if (corrupt) throw corrupt;
  if (exitResult.status === 'rejected') {
    throw new InternalError(`${what}: cannot run skiff-unpack: ${errorMessage(exitResult.reason)}`, {
      cause: exitResult.reason,
    });
  }
  const { code, signal } = exitResult.value;
  const reason = stderr.trim().split('\n')[0] ?? '';
  if (code === 2) throw new InvalidArgumentError(`${what}: ${reason}`, 'layer');
  if (code === 3) {
    throw new ResourceExhaustedError(
      `${what}: ${reason}; the limit is the free space under ${options.dir} minus a reserve (or the configured maximum layer size)`,
    );
  }
  if (code === 4) {
    throw new ResourceExhaustedError(
      `${what}: ${reason}; a well-formed layer needs far less (300,000 entries take about 16 MiB), so this one is treated as hostile: get the image from a source you trust`,
    );
  }
  if (code !== 0 && /No space left on device|Disk quota exceeded/.test(reason)) {
    throw new ResourceExhaustedError(`${what}: ${reason}; free space under ${options.dir} or prune images`);
  }
  if (code !== 0) throw new InternalError(`${what}: skiff-unpack failed (${signal ?? code}): ${reason}`);
  if (feedResult.status === 'rejected') {
    throw new InternalError(`${what}: read layer: ${errorMessage(feedResult.reason)}`, {
      cause: feedResult.reason,
    });
  }
  const actualDigest: Digest = `sha256:${compressedHash.digest('hex')}`;
  if (actualDigest !== options.digest) {
    throw new InvalidArgumentError(
      `${what}: blob does not match its digest (expected ${options.digest}, actual ${actualDigest})`,
      'digest',
    );
  }
  const actualDiffId: Digest = `sha256:${diffHash.digest('hex')}`;
  if (actualDiffId !== options.diffId) {
    throw new InvalidArgumentError(
      `${what}: uncompressed content does not match the config's diff_id (expected ${options.diffId}, actual ${actualDiffId})`,
      'rootfs.diff_ids',
    );
  }
  const counts = JSON.parse(stdout) as Omit<ApplyLayerStats, 'compressedBytes' | 'uncompressedBytes'>;
  return { ...counts, compressedBytes: compressed.bytes, uncompressedBytes: uncompressed.bytes };
}
