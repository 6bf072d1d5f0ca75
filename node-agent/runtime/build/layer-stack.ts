/**
 * A read-only view of a root file system held as layer directories (overlay snapshots, top
 * first), read the way overlayfs would show it (a char 0/0 device hides what lower layers hold at
 * its path; a directory marked opaque hides what they hold in it) without mounting anything. The
 * build context is the same view over one directory.
 *
 * Reading is confined: every component of a host path is checked to be a real directory of the
 * layer before anything beneath it is read, so a symlink is never followed on the host. Symlinks
 * are resolved by `resolve` inside the view: with 'clamp' as the kernel would inside a container
 * root (absolute targets from the root, `..` stopping at the root: `COPY --from`), with 'refuse'
 * any target leaving the root is an error (the build context).
 *
 * The layers are committed snapshots or a context no step writes, so what is checked stays true
 * while it is read.
 */
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { InternalError, errorMessage } from '../../../proto/errors.js';
import { unpackerPath } from '../images/layer-unpack.js';

export interface OverlayMarkers {
  /** Directories marked trusted.overlay.opaque=y, relative paths. */
  opaque: Set<string>;
  /** Entries with a redirect or metacopy xattr: not a plain changeset. */
  redirected: string[];
}

/** The xattrs Node cannot read: skiff-unpack --overlay-markers (images/unpack). */
export async function readOverlayMarkers(dir: string): Promise<OverlayMarkers> {
  const child = spawn(unpackerPath(), ['--overlay-markers', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  }).catch((err: unknown) => {
    throw new InternalError(`read overlay markers of ${dir}: ${errorMessage(err)}`, { cause: err });
  });
  if (code !== 0)
    throw new InternalError(`read overlay markers of ${dir}: ${stderr.trim() || `exit ${code}`}`);
  const markers: OverlayMarkers = { opaque: new Set(), redirected: [] };
  for (const record of Buffer.concat(out).toString('utf8').split('\0')) {
    if (record.startsWith('O')) markers.opaque.add(record.slice(1));
    else if (record.startsWith('R')) markers.redirected.push(record.slice(1));
  }
  return markers;
}

export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

export class PathEscapeError extends Error {}

export interface Found {
  /** The host path of the entry (in the layer that shows it). */
  hostPath: string;
  stat: Stats;
}

export class LayerStack {
  private constructor(
    /** Layer directories, top first. */
    private readonly dirs: string[],
    private readonly opaque: Set<string>[],
  ) {}

  /**
   * A view of `dirs` (top first), layer directories whose opaque markers are read (or taken from
   * `known`: committed layers never change, so a build reads each once).
   */
  static async open(dirs: string[], known?: Map<string, Promise<Set<string>>>): Promise<LayerStack> {
    const opaque = await Promise.all(
      dirs.map((dir) => {
        let markers = known?.get(dir);
        if (!markers) {
          markers = readOverlayMarkers(dir).then((m) => m.opaque);
          known?.set(dir, markers);
        }
        return markers;
      }),
    );
    return new LayerStack(dirs, opaque);
  }

  /** A view of a plain directory tree (the build context): no overlay markers. */
  static plain(dir: string): LayerStack {
    return new LayerStack([dir], [new Set()]);
  }

  /** The layers that show something at `rel` ('' is the root), top first, as overlayfs merges them. */
  private *contributions(rel: string): Generator<Found> {
    const parts = rel === '' ? [] : rel.split('/');
    for (let i = 0; i < this.dirs.length; i++) {
      const dir = this.dirs[i]!;
      let blocksBelow = false;
      let present = true;
      // every ancestor must be a directory of this layer; a whiteout or a non-directory there
      // hides the path in this and every lower layer
      for (let k = 0; k < parts.length; k++) {
        const prefix = parts.slice(0, k).join('/');
        if (k > 0 || parts.length > 0) {
          if (this.opaque[i]!.has(prefix) && prefix !== '') blocksBelow = true;
        }
        const st = lstatOrUndefined(join(dir, ...parts.slice(0, k + 1)));
        if (!st) {
          present = false;
          break;
        }
        if (isWhiteout(st)) return;
        if (k < parts.length - 1 && !st.isDirectory()) return;
      }
      if (present) {
        const hostPath = join(dir, ...parts);
        const stat = lstatSync(hostPath);
        yield { hostPath, stat };
        if (!stat.isDirectory() || this.opaque[i]!.has(rel)) return;
      }
      if (blocksBelow) return;
    }
  }

  /** What the view shows at `rel`, not following a final symlink; undefined when nothing. */
  lookup(rel: string): Found | undefined {
    for (const found of this.contributions(rel)) return found;
    return undefined;
  }

  /** The names in the directory at `rel`, merged over the layers, sorted. */
  readdir(rel: string): string[] {
    const names = new Map<string, boolean>();
    for (const found of this.contributions(rel)) {
      if (!found.stat.isDirectory()) break;
      for (const name of readdirSync(found.hostPath)) {
        if (names.has(name)) continue;
        names.set(name, !isWhiteout(lstatSync(join(found.hostPath, name))));
      }
    }
    return [...names]
      .filter(([, shown]) => shown)
      .map(([n]) => n)
      .sort();
  }

  /**
   * `path` with its symlinks resolved inside the view (relative result, '' for the root).
   * `followLast`: whether a symlink as the last component is followed too.
   */
  resolve(path: string, followLast: boolean, escape: 'clamp' | 'refuse'): string {
    let pending = path.split('/').filter((p) => p !== '' && p !== '.');
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '..') {
        if (done.length === 0 && escape === 'refuse') throw new PathEscapeError(`${path} leaves the root`);
        done.pop();
        continue;
      }
      const rel = [...done, part].join('/');
      const found = this.lookup(rel);
      if (found?.stat.isSymbolicLink() && (pending.length > 0 || followLast)) {
        if (++hops > 40) throw new PathEscapeError(`${path}: too many levels of symbolic links`);
        const target = readlinkSync(found.hostPath, 'utf8');
        if (target.startsWith('/')) {
          if (escape === 'refuse')
            throw new PathEscapeError(`${rel} is a symlink to ${target}, outside the root`);
          done.length = 0;
        }
        pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
        continue;
      }
      done.push(part);
    }
    return done.join('/');
  }
}
