/**
 * OverlaySnapshotter: each snapshot stores only its own changes (`fs/`, the overlay upper dir,
 * plus an empty `work/`); a snapshot's view is an overlay of its own layer over its parents'.
 * Creating a container costs the same whatever the size of the image below it.
 *
 *   active, no parent   bind rw of fs/            (base layers are unpacked here, whiteouts applied)
 *   active on a parent  overlay lowerdir=<parent fs>:…:<base fs>,upperdir=fs,workdir=work
 *   view, no parent     bind ro of an empty fs/
 *   view on one layer   bind ro of that layer's fs/
 *   view on more        overlay lowerdir=… (read-only: no upper)
 *
 * Unpacking into an active snapshot writes whiteouts in overlay form (char 0/0 devices and
 * trusted.overlay.opaque), which is what overlayfs reads in its lower layers.
 */
import { join } from 'node:path';
import { FileSnapshotter } from './file-snapshotter.js';
import type { SnapshotRecord } from './snapshot-records.js';
import type { Mount, WritableLayer } from './snapshotter.js';

export class OverlaySnapshotter extends FileSnapshotter {
  readonly name = 'overlay';
  readonly layersStack = true;

  private constructor(root: string) {
    super(root);
  }

  /** `root` is DIR/snapshots/overlay. */
  static async open(root: string): Promise<OverlaySnapshotter> {
    const s = new OverlaySnapshotter(root);
    await s.records.init();
    await s.sweepLeftovers();
    return s;
  }

  protected async populate(
    dir: string,
    _parent: SnapshotRecord | undefined,
    kind: 'active' | 'view',
  ): Promise<void> {
    if (kind === 'active') this.makeDirs(dir, 'fs', 'work');
    else this.makeDirs(dir, 'fs');
  }

  protected async mountsOf(record: SnapshotRecord, parent?: SnapshotRecord): Promise<Mount[]> {
    const lowers = (await this.ancestors(record, parent)).map((a) => this.fsDir(a));
    const own = this.fsDir(record);
    if (record.kind === 'active') {
      if (lowers.length === 0) return [{ type: 'bind', source: own, options: ['rbind', 'rw'] }];
      return [
        {
          type: 'overlay',
          source: 'overlay',
          options: [
            `lowerdir=${lowers.join(':')}`,
            `upperdir=${own}`,
            `workdir=${join(this.records.dir(record.id), 'work')}`,
          ],
        },
      ];
    }
    if (lowers.length === 0) return [{ type: 'bind', source: own, options: ['rbind', 'ro'] }];
    if (lowers.length === 1) return [{ type: 'bind', source: lowers[0]!, options: ['rbind', 'ro'] }];
    return [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers.join(':')}`] }];
  }

  protected async writableLayerOf(record: SnapshotRecord): Promise<WritableLayer> {
    if (record.parent === undefined) return { dir: this.fsDir(record), whiteouts: 'apply', lowers: [] };
    const lowers = (await this.ancestors(record)).map((a) => this.fsDir(a));
    return { dir: this.fsDir(record), whiteouts: 'overlay', lowers };
  }
}
