/**
 * Content negotiation for manifest GET and HEAD (pure). A manifest is served exactly as pushed,
 * so negotiation only decides whether the stored document may be sent, and for an index or
 * manifest list fetched by tag by a client that takes no index, which of its manifests to send
 * instead (linux/amd64, or the only one: what Docker's registry does for old clients). Nothing is
 * ever converted: an OCI manifest is never rewritten as a Docker one or back, since that would
 * change its digest. Without an Accept header, or with `*\/*` or `application/*`, anything goes.
 */
import { INDEX_TYPES, MANIFEST_TYPES } from '../../proto/oci/media-types.js';

/** The media types an Accept header allows; undefined means any. */
export function acceptedTypes(header: string | string[] | undefined): Set<string> | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(',') : header;
  const out = new Set<string>();
  // at most 64 entries are read: a client names a handful
  for (const entry of text.split(',').slice(0, 64)) {
    const [type, ...params] = entry.split(';').map((s) => s.trim().toLowerCase());
    if (!type) continue;
    const q = params.find((p) => p.startsWith('q='));
    if (q !== undefined && Number(q.slice(2)) === 0) continue;
    if (type === '*/*' || type === 'application/*') return undefined;
    out.add(type);
  }
  return out.size === 0 ? undefined : out;
}

export function isAccepted(accepted: Set<string> | undefined, mediaType: string): boolean {
  return accepted === undefined || accepted.has(mediaType);
}

/** True when the client takes some image manifest type but no index type. */
export function wantsManifestOnly(accepted: Set<string> | undefined): boolean {
  if (accepted === undefined) return false;
  return [...MANIFEST_TYPES].some((t) => accepted.has(t)) && ![...INDEX_TYPES].some((t) => accepted.has(t));
}

export interface PlatformDescriptor {
  mediaType: string;
  digest: string;
  platform?: { os: string; architecture: string };
}

/**
 * The manifest of an index to send to a client that takes no index: the linux/amd64 one of an
 * accepted type, else the only one of an accepted type; undefined when there is none.
 */
export function pickFromIndex<T extends PlatformDescriptor>(
  manifests: T[],
  accepted: Set<string> | undefined,
): T | undefined {
  const candidates = manifests.filter((m) => isAccepted(accepted, m.mediaType));
  const amd64 = candidates.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
  if (amd64) return amd64;
  return candidates.length === 1 ? candidates[0] : undefined;
}
