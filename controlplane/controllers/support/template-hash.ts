/**
 * Pod templates compared and named by content: what a Deployment's pod-template-hash and a
 * DaemonSet's controller-revision-hash are made of.
 */
import { createHash } from 'node:crypto';
import { normalized } from '../../api/object-lifecycle.js';

const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** A short name-safe hash of `content` (normalised first) and a collision count, 10 characters. */
export function templateHash(content: unknown, collisionCount = 0): string {
  const digest = createHash('sha256')
    .update(canonicalJson(normalized(content)))
    .update(collisionCount > 0 ? `/${collisionCount}` : '')
    .digest();
  let out = '';
  for (let i = 0; i < 10; i++) out += SAFE_ALPHABET[digest[i]! % SAFE_ALPHABET.length];
  return out;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}
