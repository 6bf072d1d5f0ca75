/**
 * The image half of the runtime's façade (runtime.ts): a root's content store, snapshotter and
 * image store, opened without the container side. For callers that never touch a container —
 * `skiff image pull`, `push`, `ls`, `tag`, `save`, `load` —: importing this module loads no
 * container, cgroup or logging code, and opening it starts no container runtime, so such a
 * command starts in less time. runtime.ts opens the same objects and a Runtime on them.
 *
 *   <root>/content     blobs (proto/oci/local-content-store.ts)
 *   <root>/images      names, leases (images/image-store.ts)
 *   <root>/snapshots   unpacked layers (snapshots/, overlay unless the probe refuses it)
 */
import { join } from 'node:path';
import type { Logger } from '../../proto/support/logger.js';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { ImageStore } from './images/image-store.js';
import { DeferredSnapshotter } from './snapshots/deferred-snapshotter.js';
import { openSnapshotter, type SnapshotterChoice } from './snapshots/open-snapshotter.js';
import type { Snapshotter } from './snapshots/snapshotter.js';
import { probeOverlay } from './sys/overlay-probe.js';

export const DEFAULT_ROOT = '/var/lib/skiff/runtime';

export interface ImageSide {
  images: ImageStore;
  content: LocalContentStore;
  snapshotter: Snapshotter;
  /** The runtime's root directory. */
  root: string;
}

/** Opens the image side of the runtime root `root` (created if missing). */
export async function openImageSide(
  root: string,
  opts: {
    snapshotter?: SnapshotterChoice;
    logger?: Logger;
    /** Open the snapshotter on its first call (for callers that never unpack: deferred-snapshotter.ts). */
    deferSnapshotter?: boolean;
  } = {},
): Promise<ImageSide> {
  const content = await LocalContentStore.open(join(root, 'content'));
  const open = (): Promise<Snapshotter> =>
    openSnapshotter(root, { choice: opts.snapshotter ?? 'auto', probe: probeOverlay, logger: opts.logger });
  const snapshotter = opts.deferSnapshotter === true ? new DeferredSnapshotter(open) : await open();
  const images = await ImageStore.open(join(root, 'images'), { content, snapshotter, logger: opts.logger });
  return { images, content, snapshotter, root };
}
