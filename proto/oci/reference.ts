/**
 * Image references as Docker spells them, normalised the way `docker` and containerd do:
 *   busybox                      -> docker.io/library/busybox:latest
 *   busybox:1                    -> docker.io/library/busybox:1
 *   user/app                     -> docker.io/user/app:latest
 *   localhost:5000/app:1         -> localhost:5000/app:1
 *   busybox@sha256:<hex>         -> docker.io/library/busybox@sha256:<hex>
 * Grammar from the distribution spec: path components [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*, tags
 * [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}, sha256 digests only.
 */
import { InvalidArgumentError } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';

export const DEFAULT_DOMAIN = 'docker.io';
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export interface ImageReference {
  /** e.g. docker.io */
  domain: string;
  /** e.g. library/busybox */
  path: string;
  tag?: string;
  digest?: Digest;
}

export function parseReference(input: string, field = 'image'): ImageReference {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`parse image reference ${JSON.stringify(input)}: ${why}`, field);
  };
  if (typeof input !== 'string' || input.length === 0) bad('empty');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1), field);
    } catch (err) {
      bad(`digest part: ${(err as Error).message.replace(/^parse digest /, '')}`);
    }
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      bad(`tag ${JSON.stringify(tag)} is invalid (letters, digits, '_', '.', '-', at most 128)`);
  }
  if (rest.length === 0) bad('no repository name');
  const parts = rest.split('/');
  let domain = DEFAULT_DOMAIN;
  if (parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost')) {
    domain = parts.shift()!;
    if (!DOMAIN.test(domain))
      bad(`registry ${JSON.stringify(domain)} is not a host name with an optional port`);
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  for (const p of parts) {
    if (!COMPONENT.test(p)) {
      bad(
        p.toLowerCase() !== p
          ? `repository name must be lowercase (${JSON.stringify(p)})`
          : `path component ${JSON.stringify(p)} is invalid (lowercase letters, digits, separators . _ __ -)`,
      );
    }
  }
  if (domain === DEFAULT_DOMAIN && parts.length === 1) parts.unshift('library');
  const path = parts.join('/');
  if (domain.length + 1 + path.length > 255) bad('name is longer than 255 characters');
  if (tag === undefined && digest === undefined) tag = 'latest';
  const ref: ImageReference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** docker.io/library/busybox */
export function repositoryOf(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The canonical string: repository[:tag][@digest]. */
export function formatReference(ref: ImageReference): string {
  return `${repositoryOf(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

export function normalizeReference(input: string, field = 'image'): string {
  return formatReference(parseReference(input, field));
}

/** The short form people type: docker.io/library/busybox -> busybox, docker.io/u/app -> u/app. */
export function familiarRepository(repository: string): string {
  if (repository.startsWith(`${DEFAULT_DOMAIN}/library/`) && repository.split('/').length === 3) {
    return repository.slice(`${DEFAULT_DOMAIN}/library/`.length);
  }
  if (repository.startsWith(`${DEFAULT_DOMAIN}/`)) return repository.slice(DEFAULT_DOMAIN.length + 1);
  return repository;
}
