/**
 * The request target (`req.url`, raw as it came off the wire) → which registry endpoint, with
 * every name already checked. Pure: no I/O.
 *
 *   /v2/                                    base (version check, auth probe)
 *   /v2/_catalog                            catalog
 *   /v2/<name>/tags/list                    tags
 *   /v2/<name>/manifests/<tag-or-digest>    manifest
 *   /v2/<name>/blobs/uploads/               uploads (start; also without the trailing /)
 *   /v2/<name>/blobs/uploads/<uuid>         upload
 *   /v2/<name>/blobs/<digest>               blob
 *   /v2/<name>/referrers/<digest>           referrers
 *
 * A name holds slashes, so the endpoint is read from the end of the path. The path is split on
 * `/` first and each segment percent-decoded on its own: an encoded slash (%2F, or a backslash)
 * is refused, and a segment that is `.` or `..` however it was spelled
 * (`..`, `%2e%2e`, `.%2E`) is refused before any routing, so none can reach a file path. Only the
 * origin form (`/v2/…`) is served; the absolute form a proxy would send is refused.
 */
import { RegistryError } from './errors.js';
import { checkName } from './names.js';

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'referrers'; name: string; digest: string };

export interface Target {
  route: Route;
  query: URLSearchParams;
  /** The decoded path, for messages and logs. */
  path: string;
}

/** Longer targets are refused before they are split (Node's header limit is 16 KiB anyway). */
export const MAX_TARGET_LENGTH = 8192;

function notFound(path: string): RegistryError {
  return new RegistryError('UNSUPPORTED', `no registry endpoint at ${JSON.stringify(path.slice(0, 300))}`, {
    status: 404,
  });
}

function decodeSegment(raw: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new RegistryError(
      'NAME_INVALID',
      `path segment ${JSON.stringify(raw.slice(0, 80))} is not valid percent-encoding`,
    );
  }
  if (decoded.includes('/') || decoded.includes('\\')) {
    throw new RegistryError(
      'NAME_INVALID',
      `path segment ${JSON.stringify(raw.slice(0, 80))} holds an encoded slash`,
    );
  }
  return decoded;
}

export function parseTarget(rawUrl: string): Target {
  if (rawUrl.length > MAX_TARGET_LENGTH) {
    throw new RegistryError('NAME_INVALID', `request target is longer than ${MAX_TARGET_LENGTH} characters`, {
      status: 414,
    });
  }
  if (!rawUrl.startsWith('/')) throw notFound(rawUrl);
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
  const segments = rawPath.split('/').slice(1).map(decodeSegment);
  const path = `/${segments.join('/')}`;
  if (segments.some((s) => s === '.' || s === '..')) {
    throw new RegistryError(
      'NAME_INVALID',
      `path ${JSON.stringify(path.slice(0, 300))} has a . or .. segment`,
    );
  }
  if (segments[0] !== 'v2') throw notFound(path);
  const rest = segments.slice(1);
  // `/v2` and `/v2/`
  if (rest.length === 0 || (rest.length === 1 && rest[0] === ''))
    return { route: { kind: 'base' }, query, path };
  if (rest.length === 1 && rest[0] === '_catalog') return { route: { kind: 'catalog' }, query, path };
  const n = rest.length;
  const at = (i: number): string | undefined => rest[n - i];
  const nameOf = (drop: number): string => {
    const parts = rest.slice(0, n - drop);
    if (parts.length === 0) throw notFound(path);
    return checkName(parts.join('/'));
  };
  // …/blobs/uploads/ and …/blobs/uploads (start an upload)
  if (at(2) === 'blobs' && at(1) === 'uploads')
    return { route: { kind: 'uploads', name: nameOf(2) }, query, path };
  if (at(3) === 'blobs' && at(2) === 'uploads') {
    if (at(1) === '') return { route: { kind: 'uploads', name: nameOf(3) }, query, path };
    return { route: { kind: 'upload', name: nameOf(3), id: at(1)! }, query, path };
  }
  if (at(2) === 'tags' && at(1) === 'list') return { route: { kind: 'tags', name: nameOf(2) }, query, path };
  if (n >= 3 && at(1) !== '') {
    const last = at(1)!;
    switch (at(2)) {
      case 'manifests':
        return { route: { kind: 'manifest', name: nameOf(2), reference: last }, query, path };
      case 'blobs':
        return { route: { kind: 'blob', name: nameOf(2), digest: last }, query, path };
      case 'referrers':
        return { route: { kind: 'referrers', name: nameOf(2), digest: last }, query, path };
      default:
        break;
    }
  }
  throw notFound(path);
}
