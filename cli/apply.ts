/**
 * `skiff apply`'s decision logic, as kubectl does it: a three-way merge of
 *
 *   last-applied  the manifest applied the previous time, kept in the annotation
 *                 `kubectl.kubernetes.io/last-applied-configuration` (JSON)
 *   desired       the manifest applied now
 *   live          the object as the server holds it (with status, defaults, and fields that
 *                 others set, e.g. replicas after a `skiff scale`)
 *
 * Rules, field by field (strategic merge):
 * - a field in `desired` takes its value there (maps merge recursively);
 * - a field in `last-applied` but no longer in `desired` is removed from live: the user deleted it;
 * - a field only in `live` stays: someone else owns it;
 * - `null` in `desired` removes the field;
 * - lists of named things merge element by element on their merge key (containers by name,
 *   container ports by containerPort, service ports by port, env by name, volumes by name,
 *   volumeMounts by mountPath as Kubernetes keys them); an element that was applied before and is
 *   gone from `desired` is removed, one that only live has stays. Other lists are replaced whole.
 *
 * Everything here is pure: the command does the reads, writes and retries.
 */

export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export type ApplyAction = 'created' | 'configured' | 'unchanged';

/** The merge key of a list field, by field name (and, for `ports`, by what its elements carry). */
function mergeKeyOf(field: string, elements: Json[]): string | undefined {
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'ports':
      return elements.every((e) => isObject(e) && 'containerPort' in e) ? 'containerPort' : 'port';
    case 'hostAliases':
      return 'ip';
    default:
      return undefined;
  }
}

/**
 * The object to create: the desired manifest with the last-applied annotation holding the
 * manifest itself.
 */
export function withLastApplied(desired: Record<string, unknown>): Record<string, unknown> {
  const manifest = stripLastApplied(desired as JsonObject);
  const copy = cloneJson(desired as JsonObject) as JsonObject;
  const metadata = (isObject(copy.metadata) ? copy.metadata : {}) as JsonObject;
  const annotations = (isObject(metadata.annotations) ? metadata.annotations : {}) as JsonObject;
  annotations[LAST_APPLIED_ANNOTATION] = canonicalJson(manifest);
  metadata.annotations = annotations;
  copy.metadata = metadata;
  return copy;
}

/**
 * The object to write over `live`, and whether it differs. `live` is not modified.
 * metadata.resourceVersion of the result is live's, so a concurrent write is a Conflict.
 * `target` is withLastApplied(desired), when the caller has it already; it is only read.
 */
export function threeWayMerge(
  live: Record<string, unknown>,
  desired: Record<string, unknown>,
  target: Record<string, unknown> = withLastApplied(desired),
): { merged: Record<string, unknown>; changed: boolean } {
  const liveJson = live as JsonObject;
  const lastApplied = readLastApplied(liveJson);
  const merged = mergeObject(lastApplied, target as JsonObject, cloneJson(liveJson)) as JsonObject;
  return { merged, changed: !deepEqual(merged, liveJson) };
}

function readLastApplied(live: JsonObject): JsonObject {
  const metadata = isObject(live.metadata) ? live.metadata : {};
  const annotations = isObject(metadata.annotations) ? metadata.annotations : {};
  const text = annotations[LAST_APPLIED_ANNOTATION];
  if (typeof text !== 'string') return {};
  try {
    const parsed = JSON.parse(text) as Json;
    return isObject(parsed) ? parsed : {};
  } catch {
    // A hand-edited, broken annotation: behave as kubectl does for objects never applied before.
    return {};
  }
}

function stripLastApplied(obj: JsonObject): JsonObject {
  const copy = cloneJson(obj) as JsonObject;
  const metadata = copy.metadata;
  if (isObject(metadata) && isObject(metadata.annotations)) {
    delete metadata.annotations[LAST_APPLIED_ANNOTATION];
    if (Object.keys(metadata.annotations).length === 0) delete metadata.annotations;
  }
  return copy;
}

function mergeObject(last: Json | undefined, desired: JsonObject, live: Json | undefined): JsonObject {
  const lastObj = isObject(last) ? last : {};
  const out: JsonObject = isObject(live) ? live : {};
  for (const key of Object.keys(lastObj)) {
    if (!(key in desired)) delete out[key];
  }
  for (const [key, value] of Object.entries(desired)) {
    if (value === null) {
      delete out[key];
      continue;
    }
    out[key] = mergeValue(key, lastObj[key], value, out[key]);
  }
  return out;
}

function mergeValue(field: string, last: Json | undefined, desired: Json, live: Json | undefined): Json {
  if (isObject(desired)) return mergeObject(last, desired, isObject(live) ? live : undefined);
  if (Array.isArray(desired)) return mergeList(field, last, desired, live);
  return desired;
}

function mergeList(field: string, last: Json | undefined, desired: Json[], live: Json | undefined): Json {
  const key = mergeKeyOf(field, desired);
  const liveList = Array.isArray(live) ? live : [];
  const lastList = Array.isArray(last) ? last : [];
  if (!key || !hasKeys(desired, key) || !hasKeys(liveList, key) || !hasKeys(lastList, key)) {
    return desired.map((item) => (isObject(item) ? mergeObject(undefined, item, undefined) : item));
  }
  const keyOf = (item: Json) => JSON.stringify((item as JsonObject)[key]);
  const liveByKey = new Map(liveList.map((item) => [keyOf(item), item]));
  const lastByKey = new Map(lastList.map((item) => [keyOf(item), item]));
  const desiredKeys = new Set(desired.map(keyOf));
  const merged: Json[] = desired.map((item) =>
    mergeObject(lastByKey.get(keyOf(item)), item as JsonObject, liveByKey.get(keyOf(item))),
  );
  // Elements someone else added stay; the ones this manifest applied before and dropped go.
  for (const item of liveList) {
    const k = keyOf(item);
    if (!desiredKeys.has(k) && !lastByKey.has(k)) merged.push(item);
  }
  return merged;
}

/**
 * A deep copy of JSON-shaped data; anything else (a typed array, a Date) is left to
 * structuredClone. structuredClone serialises and deserialises each value, several times slower
 * for the small objects apply copies three times each (~50 ms for 2,000 ConfigMaps).
 */
function cloneJson(value: Json): Json {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(cloneJson);
  if (Object.getPrototypeOf(value) !== Object.prototype) return structuredClone(value);
  const out: JsonObject = {};
  for (const key of Object.keys(value)) {
    const item = value[key] as Json;
    // As structuredClone and JSON would, without the `__proto__` setter changing out's prototype.
    if (key === '__proto__')
      Object.defineProperty(out, key, {
        value: cloneJson(item),
        writable: true,
        enumerable: true,
        configurable: true,
      });
    else out[key] = cloneJson(item);
  }
  return out;
}

function hasKeys(list: Json[], key: string): boolean {
  return list.every((item) => isObject(item) && item[key] !== undefined && item[key] !== null);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON with object keys sorted, so equal manifests give byte-equal annotations. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value as Json));
}

function sortKeys(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key] as Json);
    return out;
  }
  return value;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

/** How kubectl names an object in apply/delete output: `deployment.apps/web`, `configmap/cfg`. */
export function resourceName(kind: string, group: string, name: string): string {
  return `${kind.toLowerCase()}${group ? `.${group}` : ''}/${name}`;
}
