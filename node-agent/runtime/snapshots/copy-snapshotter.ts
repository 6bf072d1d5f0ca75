/**
 * CopySnapshotter: every active snapshot is a full copy of its parent (reflinked where the file
 * system can, e.g. btrfs/xfs), shown through a bind mount. No copy-on-write at mount level, so it
 * works wherever a directory does: the fallback when an overlay mount is refused. Costs disk and
 * time proportional to the image for every container; the runtime says so with a warning.
 *
 *   active   bind rw of fs/ (a copy of the parent's fs/)
 *   view     bind ro of the parent's fs/ (committed snapshots never change, so no copy is needed)
 *
 * Unpacking applies whiteouts for real (deletes), since the layer is written over a full copy.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { InternalError } from '../../../proto/errors.js';
import { FileSnapshotter } from './file-snapshotter.js';
import type { SnapshotRecord } from './snapshot-records.js';
import type { Mount, WritableLayer } from './snapshotter.js';

const run = promisify(execFile);

export class CopySnapshotter extends FileSnapshotter {
  readonly name = 'copy';
  readonly layersStack = false;

  private constructor(root: string) {
    super(root);
  }

  /** `root` is DIR/snapshots/copy. */
  static async open(root: string): Promise<CopySnapshotter> {
    const s = new CopySnapshotter(root);
    await s.records.init();
    await s.sweepLeftovers();
    return s;
  }

  protected async populate(
    dir: string,
    parent: SnapshotRecord | undefined,
    kind: 'active' | 'view',
  ): Promise<void> {
    this.makeDirs(dir, 'fs');
    if (kind !== 'active' || !parent) return;
    try {
      // cp -a keeps owners, modes, times, xattrs, hard links, devices; --reflink=auto shares extents where possible
      await run('cp', ['-a', '--reflink=auto', '--', `${this.fsDir(parent)}/.`, join(dir, 'fs')], {
        maxBuffer: 1 << 20,
      });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new InternalError(
        `prepare snapshot: copy parent ${JSON.stringify(parent.key)}: ${stderr || String(err)}`,
        { cause: err },
      );
    }
  }

  protected async mountsOf(record: SnapshotRecord): Promise<Mount[]> {
    if (record.kind === 'active')
      return [{ type: 'bind', source: this.fsDir(record), options: ['rbind', 'rw'] }];
    const parent =
      record.parent === undefined ? undefined : await this.records.get(record.parent, 'resolve parent of');
    return [{ type: 'bind', source: this.fsDir(parent ?? record), options: ['rbind', 'ro'] }];
  }

  protected async writableLayerOf(record: SnapshotRecord): Promise<WritableLayer> {
    // the parent's content is already in the copy
    return { dir: this.fsDir(record), whiteouts: 'apply', lowers: [] };
  }
}
