/**
 * Registry garbage collection (`skiff registry gc [--dry-run]`): mark and sweep.
 *
 *   mark    every manifest any repository holds, and what each names: an image manifest's config
 *           and layers, an index's manifests (a manifest's subject is not kept alive by it)
 *   sweep   every blob of the content store nothing marked, older than the grace period, is
 *           deleted; then repository blob links to blobs no longer stored are removed
 *
 * Blobs are uploaded before the manifest that names them, so a blob nothing references yet may be
 * part of a push in progress: blobs younger than `graceMs` (an hour, as long as an idle upload
 * lives) are kept. An old unreferenced blob a push reuses (by mount, or uploaded again) has its
 * time reset by the registry, so it is young again. What remains racy, as in Docker's registry
 * (which asks for read-only mode during GC): a client that only HEADs an old unreferenced blob and
 * then pushes a manifest naming it while a collection is sweeping may get MANIFEST_BLOB_UNKNOWN
 * and push the blob again. A manifest that cannot be read or parsed stops the collection before
 * anything is deleted: its blobs are unknown, so nothing can be proved unreferenced.
 *
 * Collections need no lock between control planes: deletes are idempotent and each run decides
 * from what is on disk.
 */
import { FailedPreconditionError, errorMessage } from '../../proto/errors.js';
import type { Digest } from '../../proto/oci/digest.js';
import { parsePushedManifest } from '../../proto/oci/manifests.js';
import { MAX_MANIFEST_BYTES } from '../../proto/oci/manifests.js';
import type { Logger } from '../../proto/support/logger.js';
import type { RegistryStorage } from './storage.js';

export interface GarbageCollectionOptions {
  /** Report what would go; delete nothing. */
  dryRun?: boolean;
  /** Unreferenced blobs younger than this are kept; default one hour. */
  graceMs?: number;
  now?: () => number;
  log?: Logger;
}

export interface GarbageCollectionResult {
  dryRun: boolean;
  /** Manifests found (one per digest, however many repositories hold it). */
  manifests: number;
  /** Blobs and manifests kept because something references them. */
  referenced: number;
  /** Unreferenced blobs deleted (or, with dryRun, that would be). */
  deleted: Array<{ digest: Digest; size: number }>;
  deletedBytes: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  young: number;
  /** Repository links to deleted blobs removed (or that would be). */
  unlinked: number;
}

export async function collectGarbage(
  storage: RegistryStorage,
  options: GarbageCollectionOptions = {},
): Promise<GarbageCollectionResult> {
  const dryRun = options.dryRun ?? false;
  const graceMs = options.graceMs ?? 60 * 60 * 1000;
  const now = options.now ?? Date.now;

  // mark
  const marked = new Set<Digest>();
  const parsed = new Set<Digest>();
  for await (const { name, digest } of storage.manifestRevisions()) {
    marked.add(digest);
    if (parsed.has(digest)) continue;
    const record = await storage.manifest(name, digest);
    if (!record) continue; // deleted meanwhile
    let references: Digest[];
    try {
      const bytes = await storage.content.readAll(digest, MAX_MANIFEST_BYTES);
      const manifest = parsePushedManifest(bytes, record.mediaType, `manifest ${digest}`);
      references = [...manifest.blobs, ...manifest.manifests].map((d) => d.digest);
    } catch (err) {
      throw new FailedPreconditionError(
        `collect registry garbage: read manifest ${digest} of repository ${name}: ${errorMessage(err)}; nothing was deleted`,
        { cause: err },
      );
    }
    parsed.add(digest);
    for (const d of references) marked.add(d);
  }

  // sweep
  const deleted: Array<{ digest: Digest; size: number }> = [];
  let young = 0;
  let referenced = 0;
  for (const blob of await storage.content.list()) {
    if (marked.has(blob.digest)) {
      referenced++;
      continue;
    }
    if (now() - Date.parse(blob.committedAt) < graceMs) {
      young++;
      continue;
    }
    if (!dryRun) await storage.content.delete(blob.digest);
    deleted.push({ digest: blob.digest, size: blob.size });
  }
  const gone = new Set(deleted.map((d) => d.digest));
  let unlinked = 0;
  for await (const { name, digest } of storage.blobLinks()) {
    if (marked.has(digest)) continue;
    // a link to a blob deleted now, or by an earlier run (checked again: it may be back)
    const missing = dryRun
      ? gone.has(digest) || !(await storage.content.has(digest))
      : !(await storage.content.has(digest));
    if (!missing) continue;
    if (!dryRun) await storage.unlinkBlob(name, digest);
    unlinked++;
  }
  const result: GarbageCollectionResult = {
    dryRun,
    manifests: parsed.size,
    referenced,
    deleted,
    deletedBytes: deleted.reduce((sum, d) => sum + d.size, 0),
    young,
    unlinked,
  };
  options.log?.info(
    {
      dryRun,
      manifests: result.manifests,
      deleted: deleted.length,
      deletedBytes: result.deletedBytes,
      young,
      unlinked,
    },
    'registry garbage collected',
  );
  return result;
}
