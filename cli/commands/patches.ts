/**
 * The three patch formats of `skiff patch`, applied to an object's JSON on the client (pure):
 *
 * - JSON merge patch (RFC 7386, `--type merge`): mappings merge, `null` removes, anything else
 *   (lists included) replaces.
 * - JSON patch (RFC 6902, `--type json`): a list of add, remove, replace, move, copy and test
 *   operations on JSON pointers (RFC 6901); all or nothing.
 * - Strategic merge patch (`--type strategic`, kubectl's default): a merge patch in which lists of
 *   named things merge element by element on Kubernetes' merge keys (containers and volumes by
 *   name, container ports by containerPort, service ports by port, volumeMounts by mountPath…),
 *   `$patch: delete` removes an element or mapping, `$patch: replace` replaces it whole, and
 *   `finalizers` merge as a set. The other directives (`$retainKeys`, `$setElementOrder/…`,
 *   `$deleteFromPrimitiveList/…`) are refused with a message saying to use a merge or JSON patch.
 */
import { InvalidArgumentError } from '../../proto/errors.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export type PatchType = 'strategic' | 'merge' | 'json';

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clone<T extends Json>(value: T): T {
  return structuredClone(value);
}

/** RFC 7386. `target` is not modified. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// RFC 6902

export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: Json;
}

/** Validates the shape of a JSON patch document; errors name the operation (`[2].path`). */
export function parseJsonPatch(value: unknown): JsonPatchOperation[] {
  if (!Array.isArray(value))
    throw new InvalidArgumentError(
      '--type json: the patch must be a list of operations ([{"op": …}])',
      'patch',
    );
  return value.map((op, i) => {
    if (!isObject(op))
      throw new InvalidArgumentError(`--type json: operation [${i}] is not a mapping`, `patch[${i}]`);
    const name = op.op;
    if (!['add', 'remove', 'replace', 'move', 'copy', 'test'].includes(String(name)))
      throw new InvalidArgumentError(
        `--type json: operation [${i}]: op ${JSON.stringify(name)} is not one of add, remove, replace, move, copy, test`,
        `patch[${i}].op`,
      );
    if (typeof op.path !== 'string')
      throw new InvalidArgumentError(
        `--type json: operation [${i}] (${String(name)}): path is required`,
        `patch[${i}].path`,
      );
    if ((name === 'move' || name === 'copy') && typeof op.from !== 'string')
      throw new InvalidArgumentError(
        `--type json: operation [${i}] (${String(name)}): from is required`,
        `patch[${i}].from`,
      );
    if ((name === 'add' || name === 'replace' || name === 'test') && !('value' in op))
      throw new InvalidArgumentError(
        `--type json: operation [${i}] (${String(name)}): value is required`,
        `patch[${i}].value`,
      );
    return op as unknown as JsonPatchOperation;
  });
}

/** `/a/b~1c/0` → ['a', 'b/c', '0']. */
function pointer(path: string, where: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/'))
    throw new InvalidArgumentError(`${where}: path "${path}" must start with /`, 'patch');
  return path
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(container: Json[], token: string, where: string, forAdd: boolean): number {
  if (forAdd && token === '-') return container.length;
  if (!/^(0|[1-9]\d*)$/.test(token))
    throw new InvalidArgumentError(`${where}: "${token}" is not an array index`, 'patch');
  const index = Number(token);
  if (index > container.length || (!forAdd && index === container.length))
    throw new InvalidArgumentError(
      `${where}: index ${index} is out of range (length ${container.length})`,
      'patch',
    );
  return index;
}

/** The parent of the pointed-to value and the last token; the whole path must exist up to the parent. */
function parentOf(doc: Json, tokens: string[], where: string): { parent: Json; last: string } {
  let node: Json = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[arrayIndex(node, token, where, false)]!;
    else if (isObject(node) && Object.hasOwn(node, token)) node = node[token]!;
    else throw new InvalidArgumentError(`${where}: path does not exist (at "${token}")`, 'patch');
  }
  return { parent: node, last: tokens[tokens.length - 1]! };
}

function getAt(doc: Json, path: string, where: string): Json {
  let node: Json = doc;
  for (const token of pointer(path, where)) {
    if (Array.isArray(node)) node = node[arrayIndex(node, token, where, false)]!;
    else if (isObject(node) && Object.hasOwn(node, token)) node = node[token]!;
    else throw new InvalidArgumentError(`${where}: path "${path}" does not exist`, 'patch');
  }
  return node;
}

function addAt(doc: Json, path: string, value: Json, where: string): Json {
  const tokens = pointer(path, where);
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, where);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, where, true), 0, value);
  else if (isObject(parent)) parent[last] = value;
  else
    throw new InvalidArgumentError(`${where}: the parent of "${path}" is not an object or a list`, 'patch');
  return doc;
}

function removeAt(doc: Json, path: string, where: string): Json {
  const tokens = pointer(path, where);
  if (tokens.length === 0)
    throw new InvalidArgumentError(`${where}: cannot remove the whole object`, 'patch');
  const { parent, last } = parentOf(doc, tokens, where);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, where, false), 1);
  else if (isObject(parent) && Object.hasOwn(parent, last)) delete parent[last];
  else throw new InvalidArgumentError(`${where}: path "${path}" does not exist`, 'patch');
  return doc;
}

/** RFC 6902: every operation in turn; any failure leaves `target` as it was (it is never modified). */
export function applyJsonPatch(target: Json, operations: JsonPatchOperation[]): Json {
  let doc = clone(target);
  operations.forEach((op, i) => {
    const where = `--type json: operation [${i}] (${op.op} ${op.path})`;
    switch (op.op) {
      case 'add':
        doc = addAt(doc, op.path, clone(op.value as Json), where);
        break;
      case 'remove':
        doc = removeAt(doc, op.path, where);
        break;
      case 'replace':
        getAt(doc, op.path, where);
        doc =
          op.path === ''
            ? clone(op.value as Json)
            : addAt(removeAt(doc, op.path, where), op.path, clone(op.value as Json), where);
        break;
      case 'move': {
        if (op.path.startsWith(`${op.from}/`))
          throw new InvalidArgumentError(`${where}: cannot move "${op.from}" into itself`, 'patch');
        const value = getAt(doc, op.from!, where);
        doc = addAt(removeAt(doc, op.from!, where), op.path, value, where);
        break;
      }
      case 'copy':
        doc = addAt(doc, op.path, clone(getAt(doc, op.from!, where)), where);
        break;
      case 'test':
        if (
          JSON.stringify(canonical(getAt(doc, op.path, where))) !==
          JSON.stringify(canonical(op.value as Json))
        )
          throw new InvalidArgumentError(
            `${where}: test failed: the value is ${JSON.stringify(getAt(doc, op.path, where))}, not ${JSON.stringify(op.value)}`,
            'patch',
          );
        break;
    }
  });
  return doc;
}

function canonical(value: Json): Json {
  if (Array.isArray(value)) return value.map(canonical);
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const key of Object.keys(value).sort()) out[key] = canonical(value[key]!);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch

/** Kubernetes' merge keys for lists of named things, by field name (and element shape for ports). */
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
    case 'volumeDevices':
      return field === 'volumeMounts' ? 'mountPath' : 'devicePath';
    case 'ports':
      return elements.some((e) => isObject(e) && 'containerPort' in e) ? 'containerPort' : 'port';
    case 'hostAliases':
      return 'ip';
    case 'ownerReferences':
      return 'uid';
    case 'conditions':
      return 'type';
    case 'topologySpreadConstraints':
      return 'topologyKey';
    default:
      return undefined;
  }
}

/** Lists of scalars Kubernetes merges as sets. */
const SET_LISTS = new Set(['finalizers']);

const DIRECTIVE = '$patch';

function refuseDirectives(patch: JsonObject, path: string): void {
  for (const key of Object.keys(patch)) {
    if (key.startsWith('$') && key !== DIRECTIVE) {
      throw new InvalidArgumentError(
        `--type strategic: ${path ? `${path}: ` : ''}the directive "${key}" is not supported; use --type merge or --type json`,
        'patch',
      );
    }
  }
}

/** kubectl's default patch: a merge patch that knows Kubernetes' keyed lists. `target` is not modified. */
export function strategicMergePatch(target: Json | undefined, patch: Json, path = ''): Json {
  if (!isObject(patch)) return clone(patch);
  refuseDirectives(patch, path);
  const directive = patch[DIRECTIVE];
  if (directive !== undefined) {
    if (directive === 'replace') {
      const { [DIRECTIVE]: _, ...rest } = patch;
      return clone(rest);
    }
    if (directive === 'delete') return null;
    if (directive !== 'merge')
      throw new InvalidArgumentError(
        `--type strategic: ${path || 'the patch'}: unknown $patch "${String(directive)}"`,
        'patch',
      );
  }
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key === DIRECTIVE) continue;
    const at = path ? `${path}.${key}` : key;
    if (value === null) {
      delete out[key];
    } else if (Array.isArray(value)) {
      out[key] = mergeList(key, out[key], value, at);
    } else if (isObject(value)) {
      const merged = strategicMergePatch(out[key], value, at);
      if (merged === null) delete out[key];
      else out[key] = merged;
    } else {
      out[key] = value;
    }
  }
  return out;
}

function mergeList(field: string, target: Json | undefined, patch: Json[], path: string): Json {
  const live = Array.isArray(target) ? target : [];
  const replaceWhole = patch.find(
    (e) => isObject(e) && e[DIRECTIVE] === 'replace' && Object.keys(e).length === 1,
  );
  if (replaceWhole !== undefined) return clone(patch.filter((e) => e !== replaceWhole));
  if (SET_LISTS.has(field) && patch.every((e) => typeof e !== 'object')) {
    const merged = [...live];
    for (const item of patch) if (!merged.includes(item)) merged.push(item);
    return merged;
  }
  const key = mergeKeyOf(field, [...patch, ...live]);
  if (key === undefined || !patch.every((e) => isObject(e))) {
    for (const e of patch) if (isObject(e)) refuseDirectives(e, path);
    return clone(patch);
  }
  const keyText = (e: Json): string => JSON.stringify((e as JsonObject)[key]);
  const merged: Json[] = clone(live);
  patch.forEach((element, i) => {
    const item = element as JsonObject;
    if (item[key] === undefined || item[key] === null)
      throw new InvalidArgumentError(
        `--type strategic: ${path}[${i}]: an element of ${field} needs its merge key "${key}"`,
        'patch',
      );
    const at = merged.findIndex((e) => isObject(e) && keyText(e) === keyText(item));
    if (item[DIRECTIVE] === 'delete') {
      if (at >= 0) merged.splice(at, 1);
      return;
    }
    if (at >= 0) merged[at] = strategicMergePatch(merged[at], item, `${path}[${i}]`);
    else merged.push(strategicMergePatch(undefined, item, `${path}[${i}]`));
  });
  return merged;
}

/** Applies `patch` (already parsed) of `type` to `target`. */
export function applyPatch(type: PatchType, target: Json, patch: unknown): Json {
  switch (type) {
    case 'merge':
      if (!isObject(patch))
        throw new InvalidArgumentError('--type merge: the patch must be a mapping ({"spec": …})', 'patch');
      return mergePatch(target, patch);
    case 'json':
      return applyJsonPatch(target, parseJsonPatch(patch));
    case 'strategic':
      if (!isObject(patch))
        throw new InvalidArgumentError(
          '--type strategic: the patch must be a mapping ({"spec": …})',
          'patch',
        );
      return strategicMergePatch(target, patch);
  }
}
