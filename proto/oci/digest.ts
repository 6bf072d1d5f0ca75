/**
 * Content digests. skiff stores and verifies sha256 only (the OCI-mandated algorithm); any other
 * algorithm is refused with an error naming it, never silently accepted.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

/** `sha256:<64 lowercase hex>`, checked by parseDigest. */
export type Digest = `sha256:${string}`;

const SHA256 = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && SHA256.test(value);
}

/** Validates digest syntax; `field` names where the value came from for the error message. */
export function parseDigest(value: unknown, field: string): Digest {
  if (isDigest(value)) return value;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : String(value);
  if (
    typeof value === 'string' &&
    /^[a-z0-9]+([+._-][a-z0-9]+)*:/.test(value) &&
    !value.startsWith('sha256:')
  ) {
    throw new InvalidArgumentError(`parse digest ${shown}: algorithm not supported (only sha256)`, field);
  }
  throw new InvalidArgumentError(`parse digest ${shown}: want sha256:<64 lowercase hex digits>`, field);
}

export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function sha256Digest(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Short form for messages and tables: `sha256:ab12cd34ef56`. */
export function shortDigest(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(0, 7 + 12) : digest.slice(0, 12);
}
