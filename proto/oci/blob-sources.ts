/**
 * Where a blob is known to be on a registry: the repositories it was pulled from or pushed to,
 * kept as containerd keeps them, in a label of the blob in the local content store:
 *
 *   containerd.io/distribution.source.<host[:port]> = <repository>,<repository>,…   (newest last)
 *
 * A push to a repository of the same registry that lacks the blob asks the registry to mount it
 * from one of them (POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repository>) instead of
 * sending its bytes. Only a hint: a registry that no longer has it there answers 202 and the blob
 * is uploaded as usual.
 */
import type { ContentManager, ContentReader } from './content-store.js';
import type { Digest } from './digest.js';

const PREFIX = 'containerd.io/distribution.source.';
/** Repositories remembered per registry and blob (the newest). */
const MAX_SOURCES = 8;

/** The repositories of registry `host` known to hold the blob, newest last. */
export function blobSources(labels: Record<string, string>, host: string): string[] {
  const value = labels[PREFIX + host];
  return value ? value.split(',').filter((r) => r !== '') : [];
}

/**
 * Records that registry `host` holds these blobs in `repository`, where the store keeps labels.
 * A blob it cannot label (gone meanwhile) is passed over: the record is a hint, never a reason to
 * fail the pull or push that makes it.
 */
export async function recordBlobSources(
  content: ContentReader | (ContentReader & Pick<ContentManager, 'setLabels'>),
  digests: Iterable<Digest>,
  host: string,
  repository: string,
): Promise<void> {
  if (!('setLabels' in content)) return;
  const key = PREFIX + host;
  await Promise.all(
    [...new Set(digests)].map(async (digest) => {
      try {
        const { labels } = await content.info(digest);
        const known = blobSources(labels, host);
        if (known.at(-1) === repository) return;
        const sources = [...known.filter((r) => r !== repository), repository].slice(-MAX_SOURCES);
        await content.setLabels(digest, { ...labels, [key]: sources.join(',') });
      } catch {
        // a hint only (see above)
      }
    }),
  );
}
