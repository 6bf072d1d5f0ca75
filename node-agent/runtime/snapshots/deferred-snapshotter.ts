/**
 * A snapshotter opened on its first call. The image verbs that only move blobs and names (`skiff
 * image pull`, `push`, `ls`, `tag`, `save`, `load`, `inspect`) never use snapshots, and opening
 * the snapshotter probes overlay mounts with a helper process (~13 ms of a pull). Its `name` and
 * `layersStack` exist once it is open: read them only after a call (ImageStore.unpack, which reads
 * them first, runs on runtimes opened whole, never on this).
 */
import { InternalError } from '../../../proto/errors.js';
import type {
  Mount,
  SnapshotInfo,
  SnapshotOptions,
  Snapshotter,
  SnapshotUsage,
  WritableLayer,
} from './snapshotter.js';

export class DeferredSnapshotter implements Snapshotter {
  private opened: Snapshotter | undefined;
  private opening: Promise<Snapshotter> | undefined;

  constructor(private readonly open: () => Promise<Snapshotter>) {}

  get name(): string {
    return this.current().name;
  }

  get layersStack(): boolean {
    return this.current().layersStack;
  }

  prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.then((s) => s.prepare(key, parent, options));
  }

  view(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.then((s) => s.view(key, parent, options));
  }

  mounts(key: string): Promise<Mount[]> {
    return this.then((s) => s.mounts(key));
  }

  commit(name: string, key: string, options?: SnapshotOptions): Promise<void> {
    return this.then((s) => s.commit(name, key, options));
  }

  remove(key: string): Promise<void> {
    return this.then((s) => s.remove(key));
  }

  stat(key: string): Promise<SnapshotInfo> {
    return this.then((s) => s.stat(key));
  }

  walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void> {
    return this.then((s) => s.walk(fn));
  }

  usage(key: string): Promise<SnapshotUsage> {
    return this.then((s) => s.usage(key));
  }

  writableLayer(key: string): Promise<WritableLayer> {
    return this.then((s) => s.writableLayer(key));
  }

  cleanup(): Promise<number> {
    return this.then((s) => s.cleanup());
  }

  reclaimable(): Promise<SnapshotUsage> {
    return this.then((s) => s.reclaimable());
  }

  private async then<T>(call: (snapshotter: Snapshotter) => Promise<T>): Promise<T> {
    this.opening ??= this.open().then((opened) => (this.opened = opened));
    return call(await this.opening);
  }

  private current(): Snapshotter {
    if (this.opened === undefined) {
      throw new InternalError(
        'the snapshotter is opened on its first call, and was read before one: open the runtime whole (openImageRuntime) to unpack images',
      );
    }
    return this.opened;
  }
}
