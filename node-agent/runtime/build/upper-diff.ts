/**
 * A RUN step's layer: the changes its container left in its overlay upper dir, in OCI form.
 * overlayfs records a deletion as a char 0/0 device (→ `.wh.NAME`) and a directory recreated over
 * a lower one (`rm -rf d && mkdir d`) as trusted.overlay.opaque=y (→ `d/.wh..wh..opq`); anything
 * else in the upper dir is the new content. A redirect or metacopy xattr would mean the upper dir
 * is not a plain changeset (the kernel's redirect_dir/metacopy features, off by default): refused
 * rather than turned into a wrong layer.
 *
 * `upperChange` (one entry's translation) is pure; `diffUpper` reads the directory, never
 * following a symlink, after the container has exited (nothing writes it meanwhile).
 */
import { createReadStream, lstatSync, openSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../../proto/errors.js';
import type { LayerEntry, OpenContent } from './layer-tar.js';
import { readOverlayMarkers } from './layer-stack.js';

/** The part of a stat an upper entry's translation needs. */
export type UpperStat = Pick<
  Stats,
  | 'mode'
  | 'uid'
  | 'gid'
  | 'size'
  | 'rdev'
  | 'ino'
  | 'nlink'
  | 'isDirectory'
  | 'isFile'
  | 'isSymbolicLink'
  | 'isFIFO'
  | 'isCharacterDevice'
>;

/**
 * The layer entries for one upper-dir entry at `path`: a whiteout, a directory (and its opaque
 * marker), a file (or a hard link to `linkedTo`, an earlier path of the same inode), a symlink,
 * a fifo; nothing for sockets and device nodes (a container's /dev is the runtime's). Pure.
 */
export function upperChange(
  path: string,
  st: UpperStat,
  opts: { opaque: boolean; linkedTo?: string; symlinkTarget?: string; open?: OpenContent },
): LayerEntry[] {
  const owner = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (st.isCharacterDevice() && st.rdev === 0) return [{ path, type: 'whiteout' }];
  if (st.isDirectory()) {
    const dir: LayerEntry = { path, type: 'directory', ...owner };
    return opts.opaque ? [dir, { path, type: 'opaque' }] : [dir];
  }
  if (st.isSymbolicLink()) return [{ path, type: 'symlink', ...owner, target: opts.symlinkTarget ?? '' }];
  if (st.isFile()) {
    if (opts.linkedTo !== undefined) return [{ path, type: 'link', ...owner, target: opts.linkedTo }];
    return [{ path, type: 'file', ...owner, size: st.size, open: opts.open ?? (() => Buffer.alloc(0)) }];
  }
  if (st.isFIFO()) return [{ path, type: 'fifo', ...owner }];
  return [];
}

/** The OCI layer entries of the upper dir `dir`. */
export async function diffUpper(dir: string): Promise<LayerEntry[]> {
  const markers = await readOverlayMarkers(dir);
  if (markers.redirected.length > 0) {
    throw new FailedPreconditionError(
      `diff build layer: ${markers.redirected[0]} carries an overlay redirect/metacopy xattr; the kernel's overlay redirect_dir or metacopy feature is on (turn it off: options redirect_dir=off,metacopy=off)`,
    );
  }
  const entries: LayerEntry[] = [];
  const firstPathOfInode = new Map<number, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(rel === '' ? dir : join(dir, rel)).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const host = join(dir, path);
      const st = lstatSync(host);
      let linkedTo: string | undefined;
      if (st.isFile() && st.nlink > 1) {
        linkedTo = firstPathOfInode.get(st.ino);
        if (linkedTo === undefined) firstPathOfInode.set(st.ino, path);
      }
      entries.push(
        ...upperChange(path, st, {
          opaque: markers.opaque.has(path),
          linkedTo,
          symlinkTarget: st.isSymbolicLink() ? readlinkSync(host, 'utf8') : undefined,
          open: () => createReadStream('', { fd: openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW) }),
        }),
      );
      if (st.isDirectory()) walk(path);
    }
  };
  walk('');
  return entries;
}
