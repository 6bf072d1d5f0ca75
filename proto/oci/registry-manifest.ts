/**
 * Manifests from a registry, treated as hostile input (RUNTIME-NOTES §2):
 * - `Accept` lists exactly the four types skiff reads (OCI index and manifest, Docker list and
 *   manifest v2), so no registry falls back to schema 1; a schema 1 answer is refused anyway;
 * - at most MAX_MANIFEST_BYTES (announced or sent);
 * - the body's digest must be the one asked for (by digest, or by the descriptor that pointed at
 *   it) and the one the registry claims in Docker-Content-Digest;
 * - `Content-Type` must be one of the four and agree with the body's `mediaType` and with the
 *   referring descriptor; documents that are both index and manifest are refused (manifests.ts);
 * - from an index, the entry for the wanted platform (linux/amd64 here); none is an error that
 *   names the platforms the index has.
 */
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { isDigest, sha256Digest, type Digest } from './digest.js';
import {
  MAX_MANIFEST_BYTES,
  parseIndex,
  parseJsonObject,
  parseManifest,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from './manifests.js';
import { INDEX_TYPES, MANIFEST_TYPES, MediaType } from './media-types.js';
import type { RegistrySession } from './registry-session.js';

export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
].join(', ');

const SCHEMA1_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

/** Content types that say nothing about the document: the body's mediaType decides. */
const GENERIC_TYPES = new Set(['', 'application/json', 'application/octet-stream', 'text/plain']);

export interface FetchedManifest {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
  /** Exactly one of the two. */
  index?: ImageIndex;
  manifest?: ImageManifest;
}

export function descriptorOf(fetched: FetchedManifest): Descriptor {
  return { mediaType: fetched.mediaType, digest: fetched.digest, size: fetched.bytes.length };
}

/**
 * GETs manifest `reference` (a tag or a digest) of the session's repository and checks it.
 * `expected` is the descriptor that pointed at it (an index entry), if any.
 */
export async function fetchManifest(
  session: RegistrySession,
  reference: string,
  action: string,
  options: { expected?: Descriptor; signal?: AbortSignal } = {},
): Promise<FetchedManifest> {
  const { expected, signal } = options;
  const what = `manifest ${reference} of ${session.location.repository} on ${session.location.displayName}`;
  const res = await session.expect(
    {
      method: 'GET',
      path: `v2/${session.location.repository}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      action,
      ...(signal ? { signal } : {}),
    },
    [200],
  );
  const contentType = (String(res.headers['content-type'] ?? '').split(';')[0] ?? '').trim().toLowerCase();
  if (SCHEMA1_TYPES.has(contentType)) {
    res.discard();
    throw schema1(action, what);
  }
  if (!GENERIC_TYPES.has(contentType) && !INDEX_TYPES.has(contentType) && !MANIFEST_TYPES.has(contentType)) {
    res.discard();
    throw new InvalidArgumentError(
      `${action}: ${what} is of type ${JSON.stringify(contentType)}, not an image index or manifest skiff reads`,
      'mediaType',
    );
  }
  const bytes = await res.read(MAX_MANIFEST_BYTES, what);
  const digest = sha256Digest(bytes);
  const wanted = expected?.digest ?? (isDigest(reference) ? reference : undefined);
  if (wanted !== undefined && digest !== wanted) {
    throw new InvalidArgumentError(
      `${action}: ${what} does not match its digest (expected ${wanted}, actual ${digest})`,
      'digest',
    );
  }
  if (expected !== undefined && bytes.length !== expected.size) {
    throw new InvalidArgumentError(
      `${action}: ${what} is ${bytes.length} bytes, its descriptor says ${expected.size}`,
      'size',
    );
  }
  const claimed = res.headers['docker-content-digest'];
  if (typeof claimed === 'string' && claimed.startsWith('sha256:') && claimed !== digest) {
    throw new InvalidArgumentError(
      `${action}: ${what} does not match the digest the registry gives for it (Docker-Content-Digest ${claimed}, actual ${digest})`,
      'digest',
    );
  }
  const doc = parseJsonObject(bytes, what);
  if (doc.schemaVersion === 1) throw schema1(action, what);
  let mediaType = contentType;
  if (GENERIC_TYPES.has(contentType)) {
    const declared = doc.mediaType;
    if (typeof declared === 'string' && (INDEX_TYPES.has(declared) || MANIFEST_TYPES.has(declared))) {
      mediaType = declared;
    } else if (Array.isArray(doc.manifests)) {
      mediaType = MediaType.ociIndex;
    } else if (doc.config !== undefined) {
      mediaType = MediaType.ociManifest;
    } else {
      throw new InvalidArgumentError(
        `${action}: ${what} is neither an image index nor a manifest`,
        'mediaType',
      );
    }
  }
  if (expected !== undefined && expected.mediaType !== mediaType) {
    throw new InvalidArgumentError(
      `${action}: ${what} is served as ${mediaType}, its descriptor says ${expected.mediaType}`,
      'mediaType',
    );
  }
  const fetched: FetchedManifest = { bytes, digest, mediaType };
  if (INDEX_TYPES.has(mediaType)) fetched.index = parseIndex(bytes, what, mediaType);
  else fetched.manifest = parseManifest(bytes, what, mediaType);
  return fetched;
}

function schema1(action: string, what: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `${action}: ${what} is a Docker schema 1 manifest, which skiff refuses (obsolete and unverifiable); push the image again with a current client`,
  );
}

export function platformText(p: Platform | undefined): string {
  if (!p) return 'no platform';
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/**
 * The index entry for `platform`: same os and architecture, and the variant if one is wanted
 * (else an entry without a variant first). NotFoundError naming what the index has.
 */
export function selectPlatform(index: ImageIndex, platform: Platform, action: string): Descriptor {
  const images = index.manifests.filter((m) => MANIFEST_TYPES.has(m.mediaType));
  const fits = images.filter(
    (m) =>
      m.platform?.os === platform.os &&
      m.platform.architecture === platform.architecture &&
      (platform.variant === undefined || m.platform.variant === platform.variant),
  );
  const best = fits.find((m) => m.platform?.variant === undefined) ?? fits[0];
  if (best) return best;
  const has = [...new Set(index.manifests.map((m) => platformText(m.platform)))];
  throw new NotFoundError(
    `${action}: the image index has no ${platformText(platform)} image (it has ${has.length ? has.join(', ') : 'no entries'})`,
  );
}
