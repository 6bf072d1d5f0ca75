/**
 * The grammar of what a client names in a registry URL — repository names, tags, digests, upload
 * ids — checked before anything is looked up. Lengths are checked before the patterns, so no
 * pattern ever sees more than a few hundred characters.
 *
 *   name    [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*   < 256 chars
 *   tag     [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 *   digest  sha256:[a-f0-9]{64}   (the only algorithm skiff stores; others are DIGEST_INVALID)
 *
 * A name component always begins and ends with a letter or digit, so `.`, `..` and names starting
 * with `_` (the storage's own directories) can never be a name.
 */
import { parseDigest, type Digest } from '../../proto/oci/digest.js';
import { errorMessage } from '../../proto/errors.js';
import { RegistryError } from './errors.js';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Names are shorter than this (the spec: "less than 256 characters"). */
export const MAX_NAME_LENGTH = 255;

function shown(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

export function isName(value: string): boolean {
  return value.length > 0 && value.length <= MAX_NAME_LENGTH && NAME.test(value);
}

export function isTag(value: string): boolean {
  return value.length > 0 && value.length <= 128 && TAG.test(value);
}

export function isUploadId(value: string): boolean {
  return value.length === 36 && UPLOAD_ID.test(value);
}

/** The repository name, or NAME_INVALID. */
export function checkName(value: string): string {
  if (isName(value)) return value;
  throw new RegistryError(
    'NAME_INVALID',
    `repository name ${shown(value)} is invalid: lowercase letters and digits in /-separated components, joined by . _ __ or -, under 256 characters`,
    { detail: { name: value.slice(0, 300) } },
  );
}

/** The tag, or TAG_INVALID. */
export function checkTag(value: string): string {
  if (isTag(value)) return value;
  throw new RegistryError(
    'TAG_INVALID',
    `tag ${shown(value)} is invalid: letters, digits, _ . -, not starting with . or -, at most 128`,
    { detail: { tag: value.slice(0, 300) } },
  );
}

/** The digest, or DIGEST_INVALID naming what is wrong with it. */
export function checkDigest(value: string): Digest {
  try {
    return parseDigest(value, 'digest');
  } catch (err) {
    const why =
      /(algorithm not supported.*|want sha256.*)$/.exec(errorMessage(err))?.[1] ?? errorMessage(err);
    throw new RegistryError('DIGEST_INVALID', `digest ${shown(value)} is invalid: ${why}`, {
      detail: { digest: value.slice(0, 300) },
    });
  }
}

export type ManifestReference = { tag: string; digest?: undefined } | { digest: Digest; tag?: undefined };

/** A manifest reference is a digest when it holds a ':' (as Docker's registry decides), else a tag. */
export function parseManifestReference(value: string): ManifestReference {
  return value.includes(':') ? { digest: checkDigest(value) } : { tag: checkTag(value) };
}
