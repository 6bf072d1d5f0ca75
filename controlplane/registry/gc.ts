/**
 * Registry garbage collection (`skiff registry gc [--dry-run]`, the Admin RPC
 * CollectRegistryGarbage): mark and sweep.
 *
 *   mark    every manifest any repository holds, and what each names: an image manifest's config
 *           and layers, an index's manifests (a manifest's subject is not kept alive by it)
 *   sweep   every blob of the content store nothing marked, older than the grace period, is
 *           deleted; then repository blob links to blobs no longer stored are removed
 *
 * Untagged manifests are kept, as Distribution's `garbage-collect` does without
 * `--delete-untagged`: deleting a tag leaves the manifest pullable by digest (spec: DELETE of a
 * tag is not DELETE of the manifest), so its blobs are referenced. To free an image's blobs, DELETE
 * its manifest by digest; the next collection takes what only it named.
 *
 * The rule that keeps a push in progress safe: blobs are uploaded before the manifest that names
 * them, so an unreferenced blob younger than `graceMs` (an hour, as long as an idle upload lives)
 * is kept. A blob's age is its file's mtime, which the registry resets whenever a push shows it
 * needs the blob: uploaded again (monolithic or chunked), mounted, HEAD-checked (a client that
 * finds the blob there skips the upload), or named by a manifest PUT. Time on the shared file
 * system is the only coordination, so it holds across several control planes on one directory
 * (an in-process lock would not), and the age is read again just before each delete, so a blob a
 * push touched while this collection ran is kept. What remains is the instant between that second
 * look and the unlink; Distribution asks for read-only mode during GC instead, which skiff does not
 * need for pushes that touch their blobs. Blobs still being uploaded are not in the content store
 * yet (uploads/), so they are never candidates. A manifest that cannot be read or parsed stops the
 * collection before anything is deleted: its blobs are unknown, so nothing can be proved
 * unreferenced.
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

/** How long an unreferenced blob is kept after a push last needed it. */
export const DEFAULT_GC_GRACE_MS = 60 * 60 * 1000;

export interface GarbageCollectionOptions {
  /** Report what would go; delete nothing. */
  dryRun?: boolean;
  /** Unreferenced blobs younger than this are kept; default DEFAULT_GC_GRACE_MS (an hour). */
  graceMs?: number;
  now?: () => number;
  log?: Logger;
}

export interface GarbageCollectionResult {
  dryRun: boolean;
  /** The grace period applied. */
  graceMs: number;
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
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
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
    if (!dryRun) {
      // a push may have needed it since the listing (uploaded, mounted, HEAD-checked): look again
      const current = await storage.content.info(blob.digest).catch(() => undefined);
      if (!current) continue; // another collection took it
      if (now() - Date.parse(current.committedAt) < graceMs) {
        young++;
        continue;
      }
      await storage.content.delete(blob.digest);
    }
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
    graceMs,
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
