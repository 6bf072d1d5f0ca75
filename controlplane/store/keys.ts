/**
 * The etcd key layout, the continue token and the checks every Store makes of its input: pure
 * functions, no I/O.
 *
 *   <prefix>/<resource>/<namespace>/<name>   namespaced objects
 *   <prefix>/<resource>/<name>               cluster-scoped objects
 *
 * Every range ends in `/` so that `pods` never matches `podtemplates` and namespace `web` never
 * matches `web-2`. A key has no other slashes: segments may not contain one.
 */
import { GoneError, InvalidArgumentError } from '../../proto/errors.js';
import {
  MAX_WRITES_PER_TRANSACTION,
  describeKey,
  type ListOptions,
  type ObjectKey,
  type StoreEvent,
  type WatchOptions,
  type Write,
} from './store.js';

export const DEFAULT_PREFIX = '/skiff';

/** Throws InvalidArgumentError naming `field` unless `segment` is usable as one key segment. */
export function checkSegment(action: string, segment: string, field: string): void {
  let problem: string | undefined;
  if (typeof segment !== 'string' || segment === '') problem = 'must not be empty';
  else if (segment === '.' || segment === '..') problem = `must not be "${segment}"`;
  else if (segment.includes('/')) problem = 'must not contain "/"';
  else if (segment.includes('\0')) problem = 'must not contain a NUL byte';
  if (problem !== undefined) {
    throw new InvalidArgumentError(`${action}: ${field} ${JSON.stringify(segment)} ${problem}`, field);
  }
}

export function checkKey(action: string, key: ObjectKey): void {
  checkSegment(action, key.resource, 'resource');
  if (key.namespace !== undefined) checkSegment(action, key.namespace, 'metadata.namespace');
  checkSegment(action, key.name, 'metadata.name');
}

/** Throws InvalidArgumentError naming `field` unless `revision` is a revision (a bigint ≥ 1). */
export function checkRevision(action: string, revision: bigint, field = 'metadata.resourceVersion'): void {
  if (typeof revision !== 'bigint' || revision < 1n) {
    throw new InvalidArgumentError(
      `${action}: ${field} ${String(revision)} must be a positive revision`,
      field,
    );
  }
}

/** Checks a list's resource, namespace and limit; returns the action its errors are named by. */
export function checkList(resource: string, options: ListOptions): string {
  const action = `list ${resource}${inNamespace(options.namespace)}`;
  checkRange(action, resource, options.namespace);
  if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 1)) {
    throw new InvalidArgumentError(`${action}: limit ${options.limit} must be a positive integer`, 'limit');
  }
  if (options.revision !== undefined) checkRevision(action, options.revision, 'revision');
  if (options.minRevision !== undefined) {
    if (typeof options.minRevision !== 'bigint' || options.minRevision < 0n)
      throw new InvalidArgumentError(`${action}: minRevision must be a bigint >= 0`, 'minRevision');
    if (options.revision !== undefined || options.limit !== undefined || options.continue !== undefined)
      throw new InvalidArgumentError(
        `${action}: minRevision reads the latest state whole; it does not go with revision, limit or continue`,
        'minRevision',
      );
  }
  return action;
}

/** Checks a watch's resource, namespace and start; returns the action its errors are named by. */
export function checkWatch(resource: string, options: WatchOptions): string {
  const action = `watch ${resource}${inNamespace(options.namespace)}`;
  checkRange(action, resource, options.namespace);
  if (typeof options.afterRevision !== 'bigint' || options.afterRevision < 0n) {
    throw new InvalidArgumentError(`${action}: afterRevision must be a bigint >= 0`, 'afterRevision');
  }
  return action;
}

function inNamespace(namespace: string | undefined): string {
  return namespace === undefined ? '' : ` in namespace ${namespace}`;
}

function checkRange(action: string, resource: string, namespace: string | undefined): void {
  checkSegment(action, resource, 'resource');
  if (namespace !== undefined) checkSegment(action, namespace, 'metadata.namespace');
}

/** A transaction's shape: 1 to MAX_WRITES_PER_TRANSACTION writes, no key twice. */
export function checkTransaction(action: string, writes: readonly Write[]): void {
  if (writes.length === 0 || writes.length > MAX_WRITES_PER_TRANSACTION) {
    throw new InvalidArgumentError(
      `${action}: a transaction holds 1 to ${MAX_WRITES_PER_TRANSACTION} writes, not ${writes.length}`,
      'writes',
    );
  }
  const seen = new Set<string>();
  for (const write of writes) {
    const id = `${write.key.resource}/${describeKey(write.key)}`;
    if (seen.has(id)) {
      throw new InvalidArgumentError(
        `${action}: ${write.key.resource} ${describeKey(write.key)} is written twice`,
        'writes',
      );
    }
    seen.add(id);
  }
}

/** A lease's TTL: a whole number of seconds, 1 to a year. */
export function checkLeaseTtl(action: string, ttlSeconds: number): void {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 365 * 24 * 3600) {
    throw new InvalidArgumentError(
      `${action}: the TTL must be a whole number of seconds from 1 to a year`,
      'ttlSeconds',
    );
  }
}

export function checkPrefix(prefix: string): void {
  if (!prefix.startsWith('/') || prefix.endsWith('/')) {
    throw new InvalidArgumentError(
      `configure store: key prefix ${JSON.stringify(prefix)} must start with "/" and not end with one`,
      'prefix',
    );
  }
}

/** `namespace/name` or `name`: an object's key within its resource, what lists are sorted by. */
export function pathOf(key: ObjectKey): string {
  return key.namespace === undefined ? key.name : `${key.namespace}/${key.name}`;
}

/** The order of the bytes of the UTF-8 paths, as etcd sorts keys. */
export function comparePaths(a: string, b: string): number {
  const shorter = Math.min(a.length, b.length);
  for (let i = 0; i < shorter; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-16 units sort as UTF-8 bytes do, except a surrogate (a character past U+FFFF) against
    // a unit from U+E000 up: there only the bytes say (no allocation for the names of nearly all
    // keys, which are ASCII; a cache sorting 10,000 paths compares ~140,000 times)
    if (x >= 0xd800 || y >= 0xd800) return Buffer.compare(Buffer.from(a), Buffer.from(b));
    return x - y;
  }
  return a.length - b.length;
}

/** The revision an event belongs to: a delete's own, else the value's. */
export function eventRevision(event: StoreEvent): bigint {
  if (event.type === 'progress' || event.type === 'deleted') return event.revision;
  return event.item.modRevision;
}

export function objectPath(prefix: string, key: ObjectKey): string {
  return key.namespace === undefined
    ? `${prefix}/${key.resource}/${key.name}`
    : `${prefix}/${key.resource}/${key.namespace}/${key.name}`;
}

/** The range a list or watch covers: one resource, optionally one namespace; ends in `/`. */
export function rangePrefix(prefix: string, resource: string, namespace?: string): string {
  return namespace === undefined ? `${prefix}/${resource}/` : `${prefix}/${resource}/${namespace}/`;
}

/** The exclusive end of the range of keys starting with `start` (etcd's "prefix end"). */
export function prefixEnd(start: Buffer): Buffer {
  const end = Buffer.from(start);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * The ObjectKey of an etcd key under `<prefix>/<resource>/`, or undefined when the key does not
 * have the shape of an object key (one or two segments after the resource).
 */
export function parseObjectPath(prefix: string, resource: string, path: string): ObjectKey | undefined {
  const base = `${prefix}/${resource}/`;
  if (!path.startsWith(base)) return undefined;
  const segments = path.slice(base.length).split('/');
  if (segments.some((segment) => segment === '')) return undefined;
  if (segments.length === 1) return { resource, name: segments[0]! };
  if (segments.length === 2) return { resource, namespace: segments[0]!, name: segments[1]! };
  return undefined;
}

interface ContinueToken {
  /** The revision every page is read at. */
  revision: bigint;
  /** The key of the last item returned, relative to the resource range. */
  after: string;
}

export function encodeContinue(revision: bigint, after: string): string {
  return Buffer.from(JSON.stringify({ v: 1, rev: revision.toString(), after })).toString('base64url');
}

/**
 * Decodes a continue token for a list of `resource` (in `namespace`). The token is client input:
 * anything but a token this store issued for the same range is an InvalidArgumentError on
 * `continue`.
 */
export function decodeContinue(action: string, token: string, namespace: string | undefined): ContinueToken {
  const invalid = (reason: string): InvalidArgumentError =>
    new InvalidArgumentError(
      `${action}: continue token ${reason}; pass the token of the previous page unchanged, or start the list again without one`,
      'continue',
    );
  if (token.length > 4096 || !/^[A-Za-z0-9_-]+$/.test(token)) throw invalid('is not base64url');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalid('is not one this store issued');
  }
  if (typeof decoded !== 'object' || decoded === null) throw invalid('is not one this store issued');
  const { v, rev, after } = decoded as Record<string, unknown>;
  if (v !== 1 || typeof rev !== 'string' || !/^[1-9][0-9]{0,18}$/.test(rev)) {
    throw invalid('is not one this store issued');
  }
  if (typeof after !== 'string' || after === '' || after.includes('\0')) {
    throw invalid('is not one this store issued');
  }
  const segments = after.split('/');
  const scoped =
    namespace === undefined ? segments.length <= 2 : segments.length === 2 && segments[0] === namespace;
  if (!scoped || segments.some((segment) => segment === '')) {
    throw invalid(
      `belongs to another list (not ${namespace === undefined ? 'all namespaces' : `namespace ${namespace}`})`,
    );
  }
  return { revision: BigInt(rev), after };
}

/** The GoneError for a continue token whose revision has been compacted. */
export function expiredContinue(action: string, revision: bigint): GoneError {
  return new GoneError(
    `${action}: the continue token is for revision ${revision}, which has been compacted; start the list again without a continue token`,
  );
}
