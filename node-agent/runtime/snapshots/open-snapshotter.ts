/**
 * Picks the snapshotter for a runtime root: overlay by default, copy when forced
 * (`--snapshotter copy`) or when the overlay probe fails — with a warning, because every
 * container then costs a full copy of its image.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../../proto/errors.js';
import type { Logger } from '../../../proto/support/logger.js';
import { CopySnapshotter } from './copy-snapshotter.js';
import { OverlaySnapshotter } from './overlay-snapshotter.js';
import type { ProbeResult } from '../sys/overlay-probe.js';
import type { Snapshotter } from './snapshotter.js';

export type SnapshotterChoice = 'auto' | 'overlay' | 'copy';

export interface OpenSnapshotterOptions {
  choice?: SnapshotterChoice;
  /** The mount probe (sys/overlay-probe.ts in production); only called for 'auto'. */
  probe: (dir: string) => Promise<ProbeResult>;
  logger?: Logger;
}

/** `runtimeRoot` is the runtime's --root; snapshots live under DIR/snapshots/<name>. */
export async function openSnapshotter(
  runtimeRoot: string,
  options: OpenSnapshotterOptions,
): Promise<Snapshotter> {
  const choice = options.choice ?? 'auto';
  const dir = join(runtimeRoot, 'snapshots');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  switch (choice) {
    case 'overlay':
      return OverlaySnapshotter.open(join(dir, 'overlay'));
    case 'copy':
      return CopySnapshotter.open(join(dir, 'copy'));
    case 'auto': {
      const result = await options.probe(dir);
      if (result.ok) return OverlaySnapshotter.open(join(dir, 'overlay'));
      options.logger?.warn(
        { reason: result.reason, snapshotter: 'copy' },
        'overlay mounts refused; using the copy snapshotter (every container copies its image)',
      );
      return CopySnapshotter.open(join(dir, 'copy'));
    }
    default:
      throw new InvalidArgumentError(
        `open snapshotter ${JSON.stringify(choice)}: want auto, overlay or copy`,
        'snapshotter',
      );
  }
}
