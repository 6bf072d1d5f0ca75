/**
 * Garbage collection of the image side: blobs and snapshots nothing uses.
 *
 * Reference graph (what is kept): an image record → its manifest → config and layer blobs →
 * committed snapshots named by the layers' ChainIDs, and the image's init layer (`<top
 * ChainID>-init`, see init-layer.ts) on the top one. Containers add the snapshot keys they use
 * (`prune({ snapshotKeysInUse })`); a snapshot's parents are kept with it. Live leases
 * (image-leases.ts) add the blobs of imports in progress. Nothing else is a root, so nothing an
 * image, a container or an import uses can be collected.
 */
import type { Logger } from '../../../proto/support/logger.js';
import type { ContentStore } from '../../../proto/oci/content-store.js';
import { isDigest, type Digest } from '../../../proto/oci/digest.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor } from '../../../proto/oci/manifests.js';
import { NotFoundError } from '../../../proto/errors.js';
import type { Snapshotter } from '../snapshots/snapshotter.js';
import { initLayerKey } from './init-layer.js';
import type { ImageLeases, Locked } from './image-leases.js';
import type { ImageRecord, LayerInfo } from './image-store.js';

export interface PruneOptions {
  /** Snapshot keys containers use (their active snapshots and any view). Kept with all parents. */
  snapshotKeysInUse?: string[];
  /** Also remove images no container uses (`prune -a`); by default only dangling content goes. */
  removeUnusedImages?: boolean;
}

export interface PruneResult {
  blobsRemoved: number;
  blobBytesRemoved: number;
  snapshotsRemoved: number;
  imagesRemoved: string[];
}

/** What collection needs of the image store (image-store.ts gives it): its records and their layers. */
export interface ImageRecords {
  /** images.json as it is now: name → record. */
  read(): Promise<Record<string, ImageRecord>>;
  /** The layers of the image a record points at. */
  layers(target: Descriptor): Promise<LayerInfo[]>;
  /** Deletes names from images.json, under the images lock. */
  removeNames(names: string[]): Promise<void>;
  /** Runs under the images lock, which leases take to hold a blob. */
  locked: Locked;
}

/** An unpack's snapshot or an ingest still in progress after this long was abandoned: collected. */
const ABANDONED_AFTER_MS = 3600_000;

export class ImageGarbageCollector {
  constructor(
    private readonly records: ImageRecords,
    private readonly content: ContentStore,
    private readonly snapshotter: Snapshotter,
    private readonly leases: ImageLeases,
    private readonly logger?: Logger,
  ) {}

  /** Every blob an image record reaches (manifests, configs, layers). */
  private async referencedBlobs(): Promise<Set<Digest>> {
    const images = await this.records.read();
    const out = new Set<Digest>();
    for (const record of Object.values(images)) {
      out.add(record.target.digest);
      try {
        const manifest = parseManifest(
          await this.content.readAll(record.target.digest, MAX_MANIFEST_BYTES),
          `manifest ${record.target.digest}`,
          record.target.mediaType,
        );
        out.add(manifest.config.digest);
        for (const l of manifest.layers) out.add(l.digest);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    return out;
  }

  /**
   * After a failed import: deletes those of `written` that no image and no other lease than
   * `own` holds. Called under the images lock.
   */
  async discard(written: Digest[], own: string): Promise<void> {
    const keep = await this.referencedBlobs();
    const others = await this.leases.live(own);
    for (const d of written) {
      if (keep.has(d) || others.digests.has(d)) continue;
      await this.content.delete(d);
    }
  }

  /** Removes blobs and snapshots nothing uses; see the reference graph at the top of this file. */
  async prune(options: PruneOptions = {}): Promise<PruneResult> {
    const inUse = new Set(options.snapshotKeysInUse ?? []);
    const parentOf = new Map<string, string | undefined>();
    const kindOf = new Map<string, string>();
    const labelsOf = new Map<string, Record<string, string>>();
    const createdOf = new Map<string, string>();
    await this.snapshotter.walk((info) => {
      parentOf.set(info.key, info.parent);
      kindOf.set(info.key, info.kind);
      labelsOf.set(info.key, info.labels);
      createdOf.set(info.key, info.created);
    });
    const keepWithParents = (key: string, keep: Set<string>): void => {
      for (let k: string | undefined = key; k !== undefined && !keep.has(k); k = parentOf.get(k)) keep.add(k);
    };
    const usedKeep = new Set<string>();
    for (const key of inUse) keepWithParents(key, usedKeep);

    const imagesRemoved: string[] = [];
    for (const [name, record] of Object.entries(await this.records.read())) {
      // by default only dangling images (recorded under their digest) go
      if (!options.removeUnusedImages && !isDigest(name)) continue;
      const layers = await this.records.layers(record.target);
      if (!layers.some((l) => usedKeep.has(l.chainId))) imagesRemoved.push(name);
    }
    await this.records.removeNames(imagesRemoved);

    const keep = new Set(usedKeep);
    for (const record of Object.values(await this.records.read())) {
      const layers = await this.records.layers(record.target);
      for (const l of layers) keepWithParents(l.chainId, keep);
      if (layers.length > 0) keep.add(initLayerKey(layers[layers.length - 1]!.chainId));
    }
    // active and view snapshots belong to containers (which name them in snapshotKeysInUse) or
    // to an unpack in progress; only unpacks abandoned for an hour are collected
    const staleBefore = Date.now() - ABANDONED_AFTER_MS;
    for (const [key, kind] of kindOf) {
      if (kind === 'committed') continue;
      const abandonedUnpack =
        labelsOf.get(key)?.['skiff.io/unpacking'] !== undefined &&
        Date.parse(createdOf.get(key)!) < staleBefore;
      if (!abandonedUnpack) keepWithParents(key, keep);
    }
    let snapshotsRemoved = 0;
    // remove leaves first: a snapshot is removable once nothing that stays is built on it
    let progress = true;
    const gone = new Set<string>();
    while (progress) {
      progress = false;
      for (const key of parentOf.keys()) {
        if (keep.has(key) || gone.has(key)) continue;
        const hasChild = [...parentOf].some(([child, p]) => p === key && !gone.has(child));
        if (hasChild) continue;
        await this.snapshotter.remove(key);
        gone.add(key);
        snapshotsRemoved++;
        progress = true;
      }
    }
    await this.snapshotter.cleanup();

    let blobsRemoved = 0;
    let blobBytesRemoved = 0;
    await this.records.locked(async () => {
      const referenced = await this.referencedBlobs();
      const leases = await this.leases.live();
      for (const blob of await this.content.list()) {
        if (referenced.has(blob.digest) || leases.digests.has(blob.digest)) continue;
        if (leases.oldestSince !== undefined && Date.parse(blob.committedAt) >= leases.oldestSince - 1000)
          continue;
        await this.content.delete(blob.digest);
        blobsRemoved++;
        blobBytesRemoved += blob.size;
      }
    });
    await this.content.cleanIngests(ABANDONED_AFTER_MS);
    this.logger?.info({ blobsRemoved, blobBytesRemoved, snapshotsRemoved, imagesRemoved }, 'pruned');
    return { blobsRemoved, blobBytesRemoved, snapshotsRemoved, imagesRemoved };
  }
}
