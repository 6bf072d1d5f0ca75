/**
 * Conversion of API objects between their three representations:
 *
 * 1. The Kubernetes JSON shape (`KubeObject`, proto/gen/types.ts): what YAML manifests contain and
 *    what `-o json` prints. apiVersion and kind at the top, camelCase field names (or the .proto's
 *    json_name, e.g. podIP), int64 as number, IntOrString as a bare number or string, bytes as
 *    base64 strings. Everything in skiff's TypeScript handles objects in this shape.
 * 2. The codecs' shape of the kind's message (proto/wire/message-type.ts): camelCase .proto field
 *    names (podIp), IntOrString as `{intVal}` / `{strVal}`, no apiVersion/kind (the message type
 *    says the kind). It is what the generated codecs (proto/gen/messages.ts) write and read; the
 *    gRPC layer carries objects as api.proto's `Object` envelope in this shape (`toEnvelope` /
 *    `fromEnvelope`).
 * 3. Protobuf binary of the kind's message (`encodeObject` / `decodeObject`): what etcd stores.
 *
 * One walker, driven by the generated message types' fields, converts between 1 and 2 for every kind.
 * Going from 1 to 2 it is strict, because manifests and requests are untrusted: an unknown field, a
 * wrong type or a missing required field is an InvalidArgumentError whose `field` is the path
 * ("spec.template.spec.containers[0].image"). Every conversion returns the *normalised* object:
 * proto3 fields without presence drop their zero values, empty lists and maps are dropped, and a kind's
 * metadata (and spec, where it has one) is always present. So parseObject(x) equals
 * decodeObject(encodeObject(parseObject(x))), and normalised objects compare structurally.
 */
import { InternalError, InvalidArgumentError, errorMessage } from './errors.js';
import { messages } from './gen/messages.js';
import type { KubeObject, KubeObjectByKind } from './gen/types.js';
import {
  type KindInfo,
  type KindName,
  kindForApiVersion,
  kindForEnvelopeField,
  kindInfoOf,
} from './kinds.js';
import { QUANTITY_FIELDS, REQUIRED_FIELDS } from './schema.js';
import type { FieldInfo, MessageType, ScalarType, WireMessage } from './wire/message-type.js';
import { Reader as WireReader } from './wire/reader.js';

type PlainObject = Record<string, unknown>;

const INT_OR_STRING = 'IntOrString';

// ---------------------------------------------------------------------------------------------
// Field lookups

/** What the walkers ask of a message's fields on every object, worked out once. */
interface FieldIndex {
  byJsonName: Map<string, FieldInfo>;
  jsonNames: string[];
  /** The REQUIRED_FIELDS of this message, in declaration order. */
  required: FieldInfo[];
  /** json names of the fields in QUANTITY_FIELDS. */
  quantities: Set<string>;
}

const fieldIndexes = new WeakMap<MessageType, FieldIndex>();

function fieldIndex(type: MessageType): FieldIndex {
  let index = fieldIndexes.get(type);
  if (index === undefined) {
    const byJsonName = new Map(type.fields.map((field) => [field.jsonName, field]));
    index = {
      byJsonName,
      jsonNames: [...byJsonName.keys()],
      required: type.fields.filter((field) => REQUIRED_FIELDS.has(`${type.name}.${field.jsonName}`)),
      quantities: new Set(
        type.fields
          .map((field) => field.jsonName)
          .filter((name) => QUANTITY_FIELDS.has(`${type.name}.${name}`)),
      ),
    };
    fieldIndexes.set(type, index);
  }
  return index;
}

/** The name of a field's type (of a list's items, of a map's values): "string", "Container". */
function typeName(field: FieldInfo): string {
  return typeof field.type === 'string' ? field.type : field.type.name;
}

/** The message type of a message field (of a list's items, of a map's values); undefined for scalars. */
function messageOf(field: FieldInfo): MessageType | undefined {
  return typeof field.type === 'string' ? undefined : field.type;
}

function isPlainObject(value: unknown): value is PlainObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string')
    return `string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'number') return `number ${value}`;
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

function joinPath(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

function closestName(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 4)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes JSON shape → the codecs' shape (strict)

/** Throws InvalidArgumentError for the field at `path`; `subject` says which object is being read. */
class Reader {
  constructor(readonly subject: string) {}

  fail(path: string, reason: string): never {
    throw new InvalidArgumentError(`${this.subject}: field "${path}": ${reason}`, path);
  }

  message(type: MessageType, value: unknown, path: string): PlainObject {
    if (!isPlainObject(value))
      this.fail(path, `expected an object (${type.name}), got ${describeValue(value)}`);
    const index = fieldIndex(type);
    const out: PlainObject = {};
    for (const key of Object.keys(value)) {
      const fieldValue = value[key];
      const field = index.byJsonName.get(key);
      const fieldPath = joinPath(path, key);
      if (field === undefined) {
        const suggestion = closestName(key, index.jsonNames);
        this.fail(
          fieldPath,
          `unknown field: "${key}" is not a field of ${type.name}` +
            (suggestion === undefined ? '' : `; did you mean "${suggestion}"?`),
        );
      }
      // null is "unset" in Kubernetes JSON (e.g. `creationTimestamp: null` in generated manifests).
      if (fieldValue === null || fieldValue === undefined) continue;
      const text = index.quantities.has(key) ? quantityText(fieldValue) : fieldValue;
      const converted = this.field(field, text, fieldPath);
      if (converted !== undefined) out[field.name] = converted;
    }
    this.checkRequired(type, index, out, path);
    return out;
  }

  private checkRequired(type: MessageType, index: FieldIndex, out: PlainObject, path: string): void {
    for (const field of index.required) {
      if (out[field.name] === undefined) {
        this.fail(joinPath(path, field.jsonName), `required field is missing (or empty) in ${type.name}`);
      }
    }
  }

  private field(field: FieldInfo, value: unknown, path: string): unknown {
    if (field.map) {
      if (!isPlainObject(value))
        this.fail(path, `expected a map of string to ${typeName(field)}, got ${describeValue(value)}`);
      const entries = Object.entries(value).map(([key, entry]): [string, unknown] => {
        if (entry === null || entry === undefined)
          this.fail(`${path}[${key}]`, `expected ${typeName(field)}, got null`);
        return [wellFormed(key), this.single(field, entry, `${path}[${key}]`, true)];
      });
      // fromEntries defines own properties, so a "__proto__" key stays a plain key.
      return entries.length === 0 ? undefined : Object.fromEntries(entries);
    }
    if (field.repeated) {
      if (!Array.isArray(value)) this.fail(path, `expected a list, got ${describeValue(value)}`);
      const items = value.map((item, i) => {
        if (item === null || item === undefined) this.fail(`${path}[${i}]`, 'list items must not be null');
        return this.single(field, item, `${path}[${i}]`, true);
      });
      return items.length === 0 ? undefined : items;
    }
    return this.single(field, value, path, field.explicitPresence);
  }

  /** One value of the field's element type; `keepZero` keeps zero values that proto3 would drop. */
  private single(field: FieldInfo, value: unknown, path: string, keepZero: boolean): unknown {
    const type = field.type;
    if (typeof type !== 'string') {
      if (type.name === INT_OR_STRING) return this.intOrString(value, path);
      return this.message(type, value, path);
    }
    const scalar = this.scalar(type, value, path);
    return keepZero || !isZero(scalar) ? scalar : undefined;
  }

  private intOrString(value: unknown, path: string): PlainObject {
    if (typeof value === 'string') return { strVal: wellFormed(value) };
    if (typeof value === 'number' && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) {
      return { intVal: value };
    }
    this.fail(path, `expected an integer or a string, got ${describeValue(value)}`);
  }

  private scalar(type: ScalarType, value: unknown, path: string): unknown {
    switch (type) {
      case 'string':
        if (typeof value !== 'string') this.fail(path, `expected a string, got ${describeValue(value)}`);
        return wellFormed(value);
      case 'bool':
        if (typeof value !== 'boolean')
          this.fail(path, `expected a boolean (true or false), got ${describeValue(value)}`);
        return value;
      case 'bytes':
        if (typeof value !== 'string' || !isBase64(value)) {
          this.fail(path, `expected base64-encoded data, got ${describeValue(value)}`);
        }
        return value;
      case 'int32':
      case 'int64': {
        const [min, max] = INTEGER_RANGES[type];
        if (typeof value !== 'number' || !Number.isInteger(value)) {
          this.fail(path, `expected an integer (${type}), got ${describeValue(value)}`);
        }
        if (value < min || value > max)
          this.fail(path, `${value} is out of range for ${type} (${min} to ${max})`);
        return value;
      }
    }
  }
}

/**
 * The string with each lone UTF-16 surrogate (which UTF-8, and so protobuf, cannot carry) replaced
 * by U+FFFD, as Kubernetes' JSON decoder does with an unpaired `\ud800` escape.
 */
function wellFormed(text: string): string {
  return text.isWellFormed() ? text : text.toWellFormed();
}

/** A quantity written as a bare number (`cpu: 0.5`) becomes its text, as Kubernetes reads it. */
function quantityText(value: unknown): unknown {
  const asText = (item: unknown): unknown =>
    typeof item === 'number' && Number.isFinite(item) ? String(item) : item;
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asText(v)]));
  return asText(value);
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** int64 values are JavaScript numbers, so they are limited to the safe-integer range. */
const INTEGER_RANGES: Record<'int32' | 'int64', [number, number]> = {
  int32: [INT32_MIN, INT32_MAX],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

function isZero(value: unknown): boolean {
  return value === '' || value === 0 || value === false;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isBase64(value: string): boolean {
  return BASE64.test(value);
}

function subjectOf(kind: string, value: PlainObject): string {
  const metadata = value['metadata'];
  const name = isPlainObject(metadata) && typeof metadata['name'] === 'string' ? metadata['name'] : '';
  return name === '' ? `read ${kind}` : `read ${kind} "${name}"`;
}

function readKindHeader(json: unknown): { info: KindInfo; body: PlainObject } {
  if (!isPlainObject(json)) {
    throw new InvalidArgumentError(
      `read object: expected a mapping with apiVersion, kind and metadata, got ${describeValue(json)}`,
    );
  }
  const { apiVersion = '', kind = '', ...body } = json;
  if (typeof kind !== 'string') {
    throw new InvalidArgumentError(
      `read object: field "kind": expected a string, got ${describeValue(kind)}`,
      'kind',
    );
  }
  if (typeof apiVersion !== 'string') {
    throw new InvalidArgumentError(
      `read ${kind}: field "apiVersion": expected a string, got ${describeValue(apiVersion)}`,
      'apiVersion',
    );
  }
  return { info: kindForApiVersion(apiVersion, kind), body };
}

/** Representation 1 → 2 for a kind's body (everything but apiVersion and kind). */
function kubeBodyToProto(info: KindInfo, body: PlainObject): PlainObject {
  return new Reader(subjectOf(info.kind, body)).message(info.message, body, '');
}

// ---------------------------------------------------------------------------------------------
// the codecs' shape → Kubernetes JSON shape

function protoMessageToKube(type: MessageType, value: PlainObject): PlainObject {
  const out: PlainObject = {};
  for (const field of type.fields) {
    const fieldValue = value[field.name];
    if (fieldValue === undefined || fieldValue === null) continue;
    out[field.jsonName] = protoFieldToKube(field, fieldValue);
  }
  return out;
}

function protoFieldToKube(field: FieldInfo, value: unknown): unknown {
  if (field.map) {
    return Object.fromEntries(
      Object.entries(value as PlainObject).map(([key, entry]) => [key, protoSingleToKube(field, entry)]),
    );
  }
  if (field.repeated) return (value as unknown[]).map((item) => protoSingleToKube(field, item));
  return protoSingleToKube(field, value);
}

function protoSingleToKube(field: FieldInfo, value: unknown): unknown {
  const type = messageOf(field);
  if (type !== undefined) {
    const message = value as PlainObject;
    if (type.name === INT_OR_STRING) return message['strVal'] ?? message['intVal'] ?? 0;
    return protoMessageToKube(type, message);
  }
  return value;
}

/** Representation 2 (as the codecs decode it) → 1, with apiVersion, kind and the normalised parts. */
function protoBodyToKube(info: KindInfo, body: PlainObject): PlainObject {
  const converted = protoMessageToKube(info.message, body);
  return normaliseKindParts(info, { apiVersion: info.apiVersion, kind: info.kind, ...converted });
}

function normaliseKindParts(info: KindInfo, obj: PlainObject): PlainObject {
  if (obj['metadata'] === undefined) obj['metadata'] = {};
  if (info.message.field('spec') !== undefined && obj['spec'] === undefined) obj['spec'] = {};
  // Keep the conventional order: apiVersion, kind, metadata, then the rest as the message declares.
  const { apiVersion, kind, metadata, ...rest } = obj;
  return { apiVersion, kind, metadata, ...rest };
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Reads an object in the Kubernetes JSON shape (a parsed YAML or JSON document) strictly and returns
 * it normalised. Throws InvalidArgumentError naming the field path for a missing or unknown
 * apiVersion/kind, an unknown field, a value of the wrong type or range, or a missing required field.
 */
export function parseObject(json: unknown): KubeObject {
  const { info, body } = readKindHeader(json);
  const proto = kubeBodyToProto(info, body);
  return protoBodyToKube(info, proto) as unknown as KubeObject;
}

/** The protobuf binary of the object's kind message: what etcd stores. Throws like parseObject. */
export function encodeObject(obj: KubeObject): Uint8Array {
  const { info, body } = readKindHeader(obj);
  // The Reader's output is in the codecs' shape (numbers for int64, base64 text for bytes).
  return info.message.encode(kubeBodyToProto(info, body));
}

/**
 * The largest encoded object the API stores: etcd's default --max-request-bytes (1.5 MiB) less
 * room for the rest of the transaction. The server enforces it and the CLI checks it before an
 * apply writes anything; both go through encodeObjectWithin.
 */
export const MAX_OBJECT_BYTES = 1_572_864 - 8 * 1024;

/**
 * encodeObject, refusing an object over `limit` bytes with InvalidArgumentError whose field is
 * the path of the largest field (`data[big.bin]`) of `blame` (default the object itself; the CLI
 * passes the manifest, since the copy of it in the last-applied annotation is no one's field).
 */
export function encodeObjectWithin(
  obj: KubeObject,
  action: string,
  limit = MAX_OBJECT_BYTES,
  blame: KubeObject = obj,
  /** What else the encoded object holds that `blame` does not (apply's annotation), said in the error. */
  besides?: string,
): Uint8Array {
  const bytes = encodeObject(obj);
  if (bytes.length <= limit) return bytes;
  const { path, size, entries } = bulkiestField(blame as unknown as Record<string, unknown>);
  const what = entries > 1 ? `${entries} entries, about ${size} bytes` : `about ${size} bytes`;
  throw new InvalidArgumentError(
    `${action}: the encoded object is ${bytes.length} bytes, over the limit of ${limit} (etcd's request size); ` +
      `most of it is ${path} (${what})${besides ? `, ${besides}` : ''}: keep large data out of the object`,
    path,
  );
}

/**
 * The field that holds the bulk of the object: descends into the largest child (by JSON size) while
 * that child holds at least half of its parent, so 100,000 small labels blame `metadata.labels`, not
 * one 3-byte label. apiVersion and kind are never it.
 */
function bulkiestField(obj: Record<string, unknown>): { path: string; size: number; entries: number } {
  let path = '';
  let node: unknown = obj;
  let size = JSON.stringify(obj).length;
  for (;;) {
    const children: [string | number, unknown][] = Array.isArray(node)
      ? node.map((value, i) => [i, value])
      : node !== null && typeof node === 'object'
        ? Object.entries(node).filter(([key]) => path !== '' || (key !== 'apiVersion' && key !== 'kind'))
        : [];
    let best: [string | number, unknown] | undefined;
    let bestSize = -1;
    for (const child of children) {
      const childSize = JSON.stringify(child[1])?.length ?? 0;
      if (childSize > bestSize) [best, bestSize] = [child, childSize];
    }
    if (best === undefined || (path !== '' && bestSize * 2 < size)) {
      return { path: path || 'metadata', size, entries: children.length };
    }
    const [key, value] = best;
    path =
      typeof key === 'number'
        ? `${path}[${key}]`
        : /^[A-Za-z][A-Za-z0-9]*$/.test(key)
          ? path === ''
            ? key
            : `${path}.${key}`
          : `${path}[${key}]`;
    node = value;
    size = bestSize;
  }
}

/** Decodes what encodeObject wrote for `kind`. Bytes that are not that message are an InternalError. */
export function decodeObject<K extends KindName>(kind: K, bytes: Uint8Array): KubeObjectByKind[K] {
  const info = kindInfoOf(kind);
  let body: PlainObject;
  try {
    body = info.message.decode(bytes);
  } catch (err) {
    throw new InternalError(`decode stored ${kind}: ${errorMessage(err)}`, { cause: err });
  }
  return protoBodyToKube(info, body) as unknown as KubeObjectByKind[K];
}

/** api.proto's `Object` envelope in the codecs' shape: `{ [envelopeField]: message }`. */
export type EnvelopeObject = Record<string, PlainObject>;

/**
 * The object as api.proto's `Object` envelope (representation 2 under the kind's oneof field,
 * e.g. `{ replicaSet: {...} }`), for messages.Object's encoder. Throws like parseObject.
 */
export function toEnvelope(obj: KubeObject): EnvelopeObject {
  const { info, body } = readKindHeader(obj);
  return { [info.envelopeField]: kubeBodyToProto(info, body) };
}

/**
 * The object carried by an `Object` envelope as messages.Object decodes it. Envelopes come from
 * clients, so the result is checked like parseObject's: exactly one kind must be set, and required
 * fields must be present.
 */
export function fromEnvelope(envelope: unknown): KubeObject {
  if (typeof envelope !== 'object' || envelope === null) {
    throw new InvalidArgumentError(
      `read object envelope: expected an object, got ${describeValue(envelope)}`,
      'object',
    );
  }
  const setFields = Object.entries(envelope).filter(
    ([key, value]) => value !== undefined && value !== null && kindForEnvelopeField(key) !== undefined,
  );
  if (setFields.length !== 1) {
    throw new InvalidArgumentError(
      `read object envelope: exactly one kind must be set, found ${setFields.length === 0 ? 'none' : setFields.map(([key]) => key).join(', ')}`,
      'object',
    );
  }
  const [field, value] = setFields[0]!;
  const info = kindForEnvelopeField(field)!;
  if (!isPlainObject(value)) {
    throw new InvalidArgumentError(
      `read ${info.kind} from envelope: expected a message, got ${describeValue(value)}`,
      field,
    );
  }
  return messageToKube(info, value);
}

// ---------------------------------------------------------------------------------------------
// a decoded message → Kubernetes JSON shape, strict (for envelopes, which come from clients)

/**
 * A message of the kind's type as the normalised KubeObject, in one walk. It gives exactly what
 * parseObject gives for the message's Kubernetes form (protoBodyToKube, then parseObject, which
 * walked the object twice): proto3 zero values without presence and empty lists and maps dropped,
 * and the same InvalidArgumentErrors naming the field path for a missing required field or an
 * int64 beyond the safe integers.
 */
function messageToKube(info: KindInfo, message: WireMessage): KubeObject {
  const metadata = message['metadata'] as { name?: unknown } | undefined;
  const name = typeof metadata?.name === 'string' ? metadata.name : '';
  const reader = new Reader(name === '' ? `read ${info.kind}` : `read ${info.kind} "${name}"`);
  const type = info.message;
  const body = messageBodyToKube(reader, type, message, '');
  // parseObject read the empty metadata and spec that normalising adds, so their required fields
  // are checked here too.
  for (const part of ['metadata', 'spec']) {
    const partField = type.field(part);
    const partType = partField === undefined ? undefined : messageOf(partField);
    if (body[part] === undefined && partType !== undefined) messageBodyToKube(reader, partType, {}, part);
  }
  return normaliseKindParts(info, {
    apiVersion: info.apiVersion,
    kind: info.kind,
    ...body,
  }) as unknown as KubeObject;
}

function messageBodyToKube(
  reader: Reader,
  type: MessageType,
  message: PlainObject,
  path: string,
): PlainObject {
  const out: PlainObject = {};
  for (const field of type.fields) {
    const value = message[field.name];
    if (value === undefined || value === null) continue;
    const name = field.jsonName;
    const fieldPath = joinPath(path, name);
    let converted: unknown;
    if (field.map) {
      const keys = Object.keys(value as PlainObject);
      if (keys.length === 0) continue;
      const entries: Array<[string, unknown]> = [];
      for (const key of keys) {
        const entryPath = `${fieldPath}[${key}]`;
        entries.push([key, messageSingleToKube(reader, field, (value as PlainObject)[key], entryPath, true)]);
      }
      // fromEntries defines own properties, so a "__proto__" key stays a plain key.
      converted = Object.fromEntries(entries);
    } else if (field.repeated) {
      const items = value as unknown[];
      if (items.length === 0) continue;
      converted = items.map((item, i) =>
        messageSingleToKube(reader, field, item, `${fieldPath}[${i}]`, true),
      );
    } else {
      converted = messageSingleToKube(reader, field, value, fieldPath, field.explicitPresence);
    }
    if (converted !== undefined) out[name] = converted;
  }
  for (const { jsonName } of fieldIndex(type).required) {
    if (out[jsonName] === undefined) {
      reader.fail(joinPath(path, jsonName), `required field is missing (or empty) in ${type.name}`);
    }
  }
  return out;
}

function messageSingleToKube(
  reader: Reader,
  field: FieldInfo,
  value: unknown,
  path: string,
  keepZero: boolean,
): unknown {
  const type = field.type;
  if (typeof type !== 'string') {
    const message = value as PlainObject;
    if (type.name === INT_OR_STRING) return message['strVal'] ?? message['intVal'] ?? 0;
    return messageBodyToKube(reader, type, message, path);
  }
  // The decoder gave each value its field's type; what is checked here is what the type allows
  // and the Kubernetes shape does not: int64 beyond the safe integers.
  if (type === 'int32' || type === 'int64') {
    const [min, max] = INTEGER_RANGES[type];
    const number = value as number;
    if (number < min || number > max)
      reader.fail(path, `${number} is out of range for ${type} (${min} to ${max})`);
  }
  return keepZero || !isZero(value) ? value : undefined;
}

// ---------------------------------------------------------------------------------------------
// Stored bytes → the `Object` envelope on the wire, without decoding

interface EnvelopeSplice {
  /** Tag of the envelope's oneof field for the kind (length-delimited). */
  envelopeTag: number;
  /** Tag of `metadata` in the kind's message. */
  metadataTag: number;
  resourceVersionTag: number;
}

const envelopeSplices = new WeakMap<KindInfo, EnvelopeSplice>();

function lengthDelimitedTag(fieldId: number): number {
  return ((fieldId << 3) | 2) >>> 0;
}

function envelopeSplice(info: KindInfo): EnvelopeSplice {
  let splice = envelopeSplices.get(info);
  if (splice === undefined) {
    const envelopeField = messages.Object.field(info.envelopeField);
    const metadataField = info.message.field('metadata');
    const resourceVersionField = messages.ObjectMeta.field('resourceVersion');
    if (!envelopeField || !metadataField || !resourceVersionField) {
      throw new InternalError(
        `build ${info.kind} envelopes: the schema lacks its envelope, metadata or resourceVersion field`,
      );
    }
    splice = {
      envelopeTag: lengthDelimitedTag(envelopeField.id),
      metadataTag: lengthDelimitedTag(metadataField.id),
      resourceVersionTag: lengthDelimitedTag(resourceVersionField.id),
    };
    envelopeSplices.set(info, splice);
  }
  return splice;
}

function varintLength(value: number): number {
  let length = 1;
  for (let rest = value >>> 7; rest !== 0; rest >>>= 7) length++;
  return length;
}

function writeVarint(out: Uint8Array, at: number, value: number): number {
  let rest = value >>> 0;
  while (rest >= 0x80) {
    out[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[at++] = rest;
  return at;
}

/**
 * The wire bytes of an `Object` envelope holding the object stored as `bytes` (what encodeObject
 * wrote for `kind`) with metadata.resourceVersion set: what encoding the envelope of
 * decodeObject's message with that resourceVersion gives a decoder, without the decode and
 * re-encode. The resourceVersion field is appended to the object's (last) metadata field, whose
 * length prefix and the envelope's are rewritten; a later occurrence of a string field wins, so
 * it replaces any stored one. Bytes that are not a message are an InternalError.
 */
export function envelopeBytesWithResourceVersion(
  kind: KindName,
  bytes: Uint8Array,
  resourceVersion: string,
): Uint8Array {
  const info = kindInfoOf(kind);
  const splice = envelopeSplice(info);
  let metadataStart = bytes.length;
  let metadataBodyStart = bytes.length;
  let metadataEnd = bytes.length;
  try {
    const reader = new WireReader(bytes);
    while (reader.pos < reader.limit) {
      const fieldStart = reader.pos;
      const tag = reader.uint32();
      if (tag === splice.metadataTag) {
        const length = reader.uint32();
        metadataStart = fieldStart;
        metadataBodyStart = reader.pos;
        metadataEnd = metadataBodyStart + length;
        if (metadataEnd > reader.limit)
          throw new RangeError(`metadata runs past the end (${metadataEnd} > ${reader.limit})`);
        reader.pos = metadataEnd;
      } else {
        reader.skip(tag);
      }
    }
  } catch (err) {
    throw new InternalError(`read stored ${kind}: ${errorMessage(err)}`, { cause: err });
  }
  const versionLength = Buffer.byteLength(resourceVersion, 'utf8');
  const versionFieldLength =
    varintLength(splice.resourceVersionTag) + varintLength(versionLength) + versionLength;
  const metadataLength = metadataEnd - metadataBodyStart + versionFieldLength;
  const bodyLength =
    metadataStart +
    varintLength(splice.metadataTag) +
    varintLength(metadataLength) +
    metadataLength +
    (bytes.length - metadataEnd);
  const out = Buffer.allocUnsafe(varintLength(splice.envelopeTag) + varintLength(bodyLength) + bodyLength);
  let at = writeVarint(out, 0, splice.envelopeTag);
  at = writeVarint(out, at, bodyLength);
  out.set(bytes.subarray(0, metadataStart), at);
  at += metadataStart;
  at = writeVarint(out, at, splice.metadataTag);
  at = writeVarint(out, at, metadataLength);
  out.set(bytes.subarray(metadataBodyStart, metadataEnd), at);
  at += metadataEnd - metadataBodyStart;
  at = writeVarint(out, at, splice.resourceVersionTag);
  at = writeVarint(out, at, versionLength);
  at += out.write(resourceVersion, at, 'utf8');
  out.set(bytes.subarray(metadataEnd), at);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Stored bytes with another status, without decoding the rest

/**
 * The object stored as `bytes` (what encodeObject wrote for `kind`) with its status replaced by
 * `status` (the Kubernetes shape, read as strictly as encodeObject reads it; undefined: none), and
 * that status normalised as decodeObject would give it. The bytes are what encodeObject gives for
 * the decoded object with that status (status is the message's last field, and a later occurrence
 * of a message field would merge, so every stored one is dropped): a status write encodes only the
 * status, never the metadata and spec it leaves as they are. InvalidArgumentError names the status
 * field that is wrong; bytes that are not a message are an InternalError.
 */
export function withStatusBytes(
  kind: KindName,
  bytes: Uint8Array,
  status: unknown,
  /** Says what is being done in errors ("update status of pod default/web"). */
  action = `write the status of a ${kind}`,
): { bytes: Uint8Array; status: PlainObject | undefined } {
  const info = kindInfoOf(kind);
  const field = info.message.field('status');
  const type = field === undefined ? undefined : messageOf(field);
  if (field === undefined || type === undefined)
    throw new InternalError(`${action}: the schema gives a ${kind} no status message`);
  const proto =
    status === undefined || status === null ? undefined : new Reader(action).message(type, status, 'status');
  const tag = lengthDelimitedTag(field.id);
  // the fields other than status, as runs of the stored bytes
  const kept: [number, number][] = [];
  try {
    const reader = new WireReader(bytes);
    let runStart = 0;
    while (reader.pos < reader.limit) {
      const fieldStart = reader.pos;
      const fieldTag = reader.uint32();
      reader.skip(fieldTag);
      if (fieldTag !== tag) continue;
      if (fieldStart > runStart) kept.push([runStart, fieldStart]);
      runStart = reader.pos;
    }
    if (reader.limit > runStart) kept.push([runStart, reader.limit]);
  } catch (err) {
    throw new InternalError(`${action}: read the stored ${kind}: ${errorMessage(err)}`, { cause: err });
  }
  const encoded = proto === undefined ? undefined : type.encode(proto);
  let length = 0;
  for (const [start, end] of kept) length += end - start;
  if (encoded !== undefined) length += varintLength(tag) + varintLength(encoded.length) + encoded.length;
  const out = Buffer.allocUnsafe(length);
  let at = 0;
  for (const [start, end] of kept) {
    out.set(bytes.subarray(start, end), at);
    at += end - start;
  }
  if (encoded !== undefined) {
    at = writeVarint(out, at, tag);
    at = writeVarint(out, at, encoded.length);
    out.set(encoded, at);
  }
  return { bytes: out, status: proto === undefined ? undefined : protoMessageToKube(type, proto) };
}

// ---------------------------------------------------------------------------------------------
// One string field of stored bytes, without decoding the object

/**
 * The string at `path` (message fields down to a string field, `['spec', 'nodeName']`) of the
 * object stored as `bytes` (what encodeObject wrote for `kind`), read from the wire without
 * decoding the rest: what decodeObject(kind, bytes) holds there, undefined when unset or empty. As
 * a decoder does, a later occurrence of the string wins and repeated occurrences of a message merge.
 * Bytes that are not a message are an InternalError.
 */
export function storedStringField(
  kind: KindName,
  bytes: Uint8Array,
  path: readonly string[],
): string | undefined {
  const tags = stringFieldTags(kind, path);
  let found: string | undefined;
  try {
    const reader = new WireReader(bytes);
    const scan = (depth: number): void => {
      const wanted = tags[depth]!;
      while (reader.pos < reader.limit) {
        const tag = reader.uint32();
        if (tag !== wanted) {
          reader.skip(tag);
        } else if (depth === tags.length - 1) {
          found = reader.string();
        } else {
          // a message field: read its fields, then carry on after it
          const length = reader.uint32();
          const outer = reader.limit;
          const end = reader.pos + length;
          if (end > outer) throw new RangeError(`a field runs past the end (${end} > ${outer})`);
          reader.limit = end;
          scan(depth + 1);
          reader.limit = outer;
        }
      }
    };
    scan(0);
  } catch (err) {
    throw new InternalError(`read stored ${kind}: ${errorMessage(err)}`, { cause: err });
  }
  return found === '' ? undefined : found;
}

const stringFieldTagsByKind = new Map<string, number[]>();

/** The wire tags of the fields along `path` in a kind's message; the last must be a string. */
function stringFieldTags(kind: KindName, path: readonly string[]): number[] {
  const cacheKey = `${kind}:${path.join('.')}`;
  let tags = stringFieldTagsByKind.get(cacheKey);
  if (tags === undefined) {
    tags = [];
    let type: MessageType | undefined = kindInfoOf(kind).message;
    for (const [i, name] of path.entries()) {
      const field: FieldInfo | undefined = type?.field(name);
      const last = i === path.length - 1;
      if (
        field === undefined ||
        field.repeated ||
        field.map ||
        (last ? field.type !== 'string' : messageOf(field) === undefined)
      )
        throw new InternalError(
          `read ${path.join('.')} of a stored ${kind}: not a ${last ? 'string' : 'message'} field`,
        );
      tags.push(lengthDelimitedTag(field.id));
      type = last ? undefined : messageOf(field);
    }
    stringFieldTagsByKind.set(cacheKey, tags);
  }
  return tags;
}
