/**
 * A build step's changes as an OCI layer: entries sorted by path (a directory before what it
 * holds), every mtime the build's epoch (SOURCE_DATE_EPOCH, else 0), owner and mode kept, no
 * user/group names, atimes, ctimes or PAX records beyond long names; deletions as `.wh.NAME`
 * and opaque directories as `.wh..wh..opq` (image-spec layer.md). Compressed with gzip, whose
 * header Node writes without a name and with mtime 0, at a fixed level: the same changes always
 * give the same blob, so rebuilding with --no-cache gives the same digests.
 *
 * `layerHeaders` is pure; `writeLayer` streams the tar into the content store, hashing the
 * uncompressed bytes (the DiffID) on the way.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { InvalidArgumentError } from '../../../proto/errors.js';
import type { ContentIngester } from '../../../proto/oci/content-store.js';
import type { Digest } from '../../../proto/oci/digest.js';
import { MediaType } from '../../../proto/oci/media-types.js';

/** A file's content, opened when its entry is written. */
export type OpenContent = () => Readable | Buffer;

/** One change of a layer, named by its path relative to the root ('a/b', no leading '/'). */
export type LayerEntry =
  | { path: string; type: 'directory'; mode: number; uid: number; gid: number }
  | {
      path: string;
      type: 'file';
      mode: number;
      uid: number;
      gid: number;
      size: number;
      open: OpenContent;
    }
  | { path: string; type: 'symlink'; mode: number; uid: number; gid: number; target: string }
  /** A hard link to `target`, an earlier file of the same layer. */
  | { path: string; type: 'link'; mode: number; uid: number; gid: number; target: string }
  | { path: string; type: 'fifo'; mode: number; uid: number; gid: number }
  /** `path` deleted (a lower layer's entry hidden). */
  | { path: string; type: 'whiteout' }
  /** The directory at `path` hides everything lower layers hold in it. */
  | { path: string; type: 'opaque' };

/** What tar-stream's pack takes for an entry. */
type TarHeader = Parameters<ReturnType<typeof pack>['entry']>[0];

export interface LayerHeader {
  header: TarHeader;
  entry: LayerEntry;
}

/** Orders paths as a tree walk: by component, so `a/b` comes right after `a`, before `a-c`. */
export function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** The tar headers of `entries`, sorted, with OCI whiteouts, every time `epoch` (seconds). Pure. */
export function layerHeaders(entries: readonly LayerEntry[], epoch: number): LayerHeader[] {
  const mtime = new Date(epoch * 1000);
  const named = entries.map((entry) => {
    if (entry.type === 'whiteout') {
      const slash = entry.path.lastIndexOf('/');
      return { name: `${entry.path.slice(0, slash + 1)}.wh.${entry.path.slice(slash + 1)}`, entry };
    }
    if (entry.type === 'opaque') return { name: `${entry.path}/.wh..wh..opq`, entry };
    // image-spec layer.md: no real file may be named .wh.*; written as is, every reader of the
    // layer would take it for a whiteout and delete what it names
    if (entry.path.slice(entry.path.lastIndexOf('/') + 1).startsWith('.wh.'))
      throw new InvalidArgumentError(
        `${entry.path}: a name beginning .wh. is reserved for deletions in an image layer; refused`,
        'path',
      );
    return { name: entry.path, entry };
  });
  named.sort((x, y) => comparePaths(x.name, y.name));
  return named.map(({ name, entry }) => {
    const base = { name, mtime, uid: 0, gid: 0, mode: 0, size: 0, uname: '', gname: '' };
    switch (entry.type) {
      case 'whiteout':
      case 'opaque':
        return { header: { ...base, type: 'file' }, entry };
      case 'directory':
        return {
          header: { ...base, type: 'directory', mode: entry.mode, uid: entry.uid, gid: entry.gid },
          entry,
        };
      case 'file':
        return {
          header: {
            ...base,
            type: 'file',
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            size: entry.size,
          },
          entry,
        };
      case 'symlink':
      case 'link':
        return {
          header: {
            ...base,
            type: entry.type,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            linkname: entry.target,
          },
          entry,
        };
      case 'fifo':
        return { header: { ...base, type: 'fifo', mode: entry.mode, uid: entry.uid, gid: entry.gid }, entry };
    }
  });
}

export interface WrittenLayer {
  /** The gzip blob's digest, as the manifest names it. */
  digest: Digest;
  /** The uncompressed tar's digest, as the config's rootfs.diff_ids names it. */
  diffId: Digest;
  size: number;
  mediaType: string;
  entries: number;
}

/** Writes `entries` as a gzip layer blob into `content`. */
export async function writeLayer(
  entries: readonly LayerEntry[],
  content: ContentIngester,
  epoch: number,
): Promise<WrittenLayer> {
  const headers = layerHeaders(entries, epoch);
  const tarball = pack();
  const diffHash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, done) {
      diffHash.update(chunk);
      done(null, chunk);
    },
  });
  const compressed = new PassThrough();
  const piped = pipeline(tarball, hashing, createGzip({ level: 6 }), compressed);
  piped.catch(() => undefined);
  const ingested = content.ingest(compressed, {});
  ingested.catch(() => undefined);
  try {
    for (const { header, entry } of headers) {
      if (entry.type === 'file') {
        const body = entry.open();
        if (Buffer.isBuffer(body)) {
          await new Promise<void>((resolve, reject) =>
            tarball.entry(header, body, (err) => (err ? reject(err) : resolve())),
          );
        } else {
          await pipeline(body, tarball.entry(header));
        }
      } else {
        // a whiteout is an empty file: its sink must be given its (empty) body to finish
        const empty = header.type === 'file' ? Buffer.alloc(0) : undefined;
        await new Promise<void>((resolve, reject) => {
          const done = (err?: Error | null) => (err ? reject(err) : resolve());
          if (empty) tarball.entry(header, empty, done);
          else tarball.entry(header, done);
        });
      }
    }
    tarball.finalize();
    await piped;
    const result = await ingested;
    return {
      digest: result.digest,
      diffId: `sha256:${diffHash.digest('hex')}`,
      size: result.size,
      mediaType: MediaType.ociLayerGzip,
      entries: headers.length,
    };
  } catch (err) {
    tarball.destroy();
    compressed.destroy();
    await Promise.allSettled([piped, ingested]);
    throw err;
  }
}
