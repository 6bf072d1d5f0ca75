/**
 * What a pull or a push reports as it goes, for progress bars (cli/commands/image.ts draws them)
 * and logs. Events of one blob come in order: `waiting`, then `exists` (nothing to move) or
 * `started` … `progress`* (`retrying` `progress`*)* … `done`; a failed blob gets `failed`. A push
 * the registry answered by mounting the blob from another repository reports `exists` with
 * `mountedFrom`.
 */
import type { Digest } from './digest.js';

export type BlobRole = 'config' | 'layer';

export interface PlannedBlob {
  digest: Digest;
  size: number;
  mediaType: string;
  role: BlobRole;
}

export type BlobState = 'waiting' | 'exists' | 'started' | 'progress' | 'retrying' | 'done' | 'failed';

export type TransferEvent =
  | {
      type: 'resolved';
      direction: 'pull' | 'push';
      /** The reference as given. */
      ref: string;
      /** The image manifest moved (for a pull from an index: the platform's manifest). */
      manifest: Digest;
      /** The index it was picked from, when the reference named one. */
      index?: Digest;
      blobs: PlannedBlob[];
    }
  | {
      type: 'blob';
      direction: 'pull' | 'push';
      digest: Digest;
      size: number;
      role: BlobRole;
      state: BlobState;
      /** Bytes of the blob in place so far (a resumed pull starts above 0). */
      bytes: number;
      /** `started` of a resumed fetch: the bytes kept from an interrupted one. */
      resumedFrom?: number;
      /** `exists` of a push: the registry mounted it from this repository of its own. */
      mountedFrom?: string;
      /** `retrying`: which attempt comes next, and why the last one failed. */
      attempt?: number;
      error?: string;
    }
  | { type: 'manifest'; direction: 'pull' | 'push'; digest: Digest; size: number; tagged: string };

export type TransferListener = (event: TransferEvent) => void;

/** At most one `progress` event per blob per this many milliseconds. */
export const PROGRESS_INTERVAL_MS = 100;

/** Calls `emit` for progress at most every PROGRESS_INTERVAL_MS, and always for the last byte. */
export function throttledProgress(
  size: number,
  emit: (bytes: number) => void,
  now: () => number = Date.now,
): (bytes: number) => void {
  let last = 0;
  return (bytes) => {
    const t = now();
    if (bytes >= size || t - last >= PROGRESS_INTERVAL_MS) {
      last = t;
      emit(bytes);
    }
  };
}
