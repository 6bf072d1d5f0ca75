/**
 * Renders proto/gen/messages.ts from the .proto files: for every message of skiff.v1 an encoder
 * and a decoder written out as code (fields in number order, one `case` per tag), and a
 * MessageType (proto/wire/message-type.ts) holding its fields and its codec; for every service a
 * ServiceType. The codec's shape of a message, and why it is generated here rather than built at
 * run time, are in proto/wire/message-type.ts and proto/README.md.
 *
 * The generator takes only what the codecs implement (the scalars in SCALAR_WIRE_TYPES, string
 * map keys, no enums or groups, no nested declarations) and refuses the rest naming the field, so
 * a .proto that needs more fails here, not at run time.
 */
import protobuf from 'protobufjs';
import * as prettier from 'prettier';
import path from 'node:path';
import type { ScalarType } from '../wire/message-type.js';
import { hasExplicitPresence, jsonFieldName, loadProtoFiles, protoIncludeDir } from './proto-files.js';
import { REGENERATE_COMMAND } from './render-types.js';

export const GENERATED_MESSAGES_FILE = 'gen/messages.ts';

/** The wire type of each scalar the codecs read and write. */
const SCALAR_WIRE_TYPES: Record<ScalarType, number> = {
  string: 2,
  bytes: 2,
  bool: 0,
  int32: 0,
  uint32: 0,
  int64: 0,
};

/** Of each scalar, its zero value as the test an encoder skips it by (proto3 fields without presence). */
const NOT_ZERO: Record<ScalarType, string> = {
  string: "v !== ''",
  bytes: 'v.length !== 0',
  bool: 'v !== false',
  int32: 'v !== 0',
  uint32: 'v !== 0',
  int64: 'v !== 0',
};

/** Of each scalar that is not bytes, its zero value as written in code. */
const ZERO: Record<ScalarType, string> = {
  string: "''",
  bytes: "''",
  bool: 'false',
  int32: '0',
  uint32: '0',
  int64: '0',
};

const PACKABLE = new Set<string>(['bool', 'int32', 'uint32', 'int64']);

/** Names a field must not have: a plain object inherits them, so an unset field would read as set. */
const INHERITED = new Set(Object.getOwnPropertyNames(Object.prototype));

function capitalized(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

function refuse(field: protobuf.Field, reason: string): never {
  throw new Error(
    `render messages: field ${field.fullName}: ${reason} (proto/wire and proto/codegen/render-messages.ts would need to support it)`,
  );
}

/** What a field is, as the generated code needs it; checks the field is one the codecs support. */
interface FieldPlan {
  field: protobuf.Field;
  /** `m.podIp` */
  ref: string;
  scalar: ScalarType | undefined;
  /** The message type's name, for a message field. */
  message: string | undefined;
  label: 'single' | 'repeated' | 'map';
  presence: boolean;
  /** The other members of the oneof this field is in, when it has others. */
  otherMembers: string[];
  packed: boolean;
}

function planField(field: protobuf.Field): FieldPlan {
  field.resolve();
  if (INHERITED.has(field.name)) refuse(field, `its name "${field.name}" is a property of every object`);
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(field.name)) refuse(field, 'its name is not an identifier');
  if (field.delimited) refuse(field, 'groups are not supported');
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) refuse(field, 'enums are not supported');
  let scalar: ScalarType | undefined;
  let message: string | undefined;
  if (resolved instanceof protobuf.Type) {
    if (resolved.parent?.fullName !== '.skiff.v1')
      refuse(field, `its type ${resolved.fullName} is not in skiff.v1`);
    message = resolved.name;
  } else if (field.type in SCALAR_WIRE_TYPES) {
    scalar = field.type as ScalarType;
  } else {
    refuse(field, `scalar type ${field.type} is not supported`);
  }
  let label: FieldPlan['label'] = 'single';
  if (field instanceof protobuf.MapField) {
    if (field.keyType !== 'string') refuse(field, `map keys of type ${field.keyType} are not supported`);
    if (scalar !== undefined && scalar !== 'string' && scalar !== 'bytes')
      refuse(field, `map values of type ${scalar} are not supported`);
    label = 'map';
  } else if (field.repeated) {
    label = 'repeated';
  }
  const oneof = field.partOf;
  const realOneof = oneof !== null && !hasExplicitPresence(field);
  return {
    field,
    ref: `m.${field.name}`,
    scalar,
    message,
    label,
    presence: hasExplicitPresence(field) || realOneof,
    otherMembers: realOneof ? oneof.oneof.filter((name) => name !== field.name) : [],
    packed: label === 'repeated' && scalar !== undefined && PACKABLE.has(scalar) && field.packed,
  };
}

function tagOf(id: number, wireType: number): number {
  return ((id << 3) | wireType) >>> 0;
}

function renderEncoder(type: protobuf.Type, plans: FieldPlan[]): string {
  const lines: string[] = [];
  for (const plan of [...plans].sort((a, b) => a.field.id - b.field.id)) {
    const { field, ref, scalar, message } = plan;
    const lengthDelimited = tagOf(field.id, 2);
    const set = `(v = ${ref}) != null`;
    if (plan.label === 'map') {
      const write =
        message !== undefined
          ? `w.messageMap(${lengthDelimited}, v, encode${message})`
          : `w.${scalar}Map(${lengthDelimited}, v)`;
      lines.push(`if (${set}) ${write};`);
    } else if (plan.label === 'repeated') {
      let write: string;
      if (message !== undefined) write = `w.messages(${lengthDelimited}, v, encode${message})`;
      else if (plan.packed) write = `w.packed${capitalized(scalar!)}(${lengthDelimited}, v)`;
      else if (scalar === 'string') write = `w.strings(${lengthDelimited}, v)`;
      else if (scalar === 'bytes') write = `w.repeatedBytes(${lengthDelimited}, v)`;
      else refuse(field, `unpacked repeated ${scalar} is not supported`);
      lines.push(`if (${set}) ${write};`);
    } else if (message !== undefined) {
      lines.push(`if (${set}) w.message(${lengthDelimited}, v, encode${message});`);
    } else {
      const write = `w.${scalar}(${tagOf(field.id, SCALAR_WIRE_TYPES[scalar!])}, v)`;
      lines.push(plan.presence ? `if (${set}) ${write};` : `if (${set} && ${NOT_ZERO[scalar!]}) ${write};`);
    }
  }
  const body = lines.length === 0 ? '' : `let v;\n${lines.join('\n')}\n`;
  return `function encode${type.name}(m: Fields, w: Writer): void {\n${body}}\n`;
}

function renderDecoder(type: protobuf.Type, plans: FieldPlan[]): string {
  const cases: string[] = [];
  for (const plan of [...plans].sort((a, b) => a.field.id - b.field.id)) {
    const { field, ref, scalar, message } = plan;
    const lengthDelimited = tagOf(field.id, 2);
    const clearOthers =
      plan.otherMembers.length === 0 ? '' : `clearOneofMembers(m, ${JSON.stringify(plan.otherMembers)});\n`;
    if (plan.label === 'map') {
      const read =
        message !== undefined
          ? `r.messageEntry((${ref} ??= {}), decode${message})`
          : `r.${scalar}Entry((${ref} ??= {}))`;
      cases.push(`case ${lengthDelimited}:\n${read};\nbreak;`);
    } else if (plan.label === 'repeated') {
      if (message !== undefined) {
        cases.push(`case ${lengthDelimited}:\n(${ref} ??= []).push(r.message(decode${message}));\nbreak;`);
      } else {
        const wireType = SCALAR_WIRE_TYPES[scalar!];
        cases.push(`case ${tagOf(field.id, wireType)}:\n(${ref} ??= []).push(r.${scalar}());\nbreak;`);
        // packed or not, a reader takes both (protobuf's rule for packable fields)
        if (PACKABLE.has(scalar!)) {
          cases.push(`case ${lengthDelimited}:\nr.packed${capitalized(scalar!)}((${ref} ??= []));\nbreak;`);
        }
      }
    } else if (message !== undefined) {
      cases.push(
        `case ${lengthDelimited}:\n${clearOthers}${ref} = r.message(decode${message}, ${ref});\nbreak;`,
      );
    } else {
      const tag = tagOf(field.id, SCALAR_WIRE_TYPES[scalar!]);
      if (plan.presence) {
        cases.push(`case ${tag}:\n${clearOthers}${ref} = r.${scalar}();\nbreak;`);
      } else {
        // a zero on the wire unsets the field, as a later value replaces an earlier one
        cases.push(`case ${tag}:\nif ((${ref} = r.${scalar}()) === ${ZERO[scalar!]}) delete ${ref};\nbreak;`);
      }
    }
  }
  cases.push('default:\nr.skip(tag);');
  return (
    `function decode${type.name}(r: Reader, m: Fields = {}): Fields {\n` +
    `while (r.pos < r.limit) {\nconst tag = r.uint32();\nswitch (tag) {\n${cases.join('\n')}\n}\n}\nreturn m;\n}\n`
  );
}

function renderDescriptor(type: protobuf.Type, plans: FieldPlan[]): string {
  const fields = plans.map((plan) => {
    const flags = [
      plan.label === 'repeated' ? 'REPEATED' : '',
      plan.label === 'map' ? 'MAP' : '',
      plan.presence ? 'PRESENCE' : '',
    ].filter((flag) => flag !== '');
    const jsonName = jsonFieldName(plan.field);
    const args = [
      `'${plan.field.name}'`,
      String(plan.field.id),
      plan.message !== undefined ? `messages.${plan.message}` : `'${plan.scalar}'`,
    ];
    if (flags.length > 0 || jsonName !== plan.field.name)
      args.push(flags.length > 0 ? flags.join(' | ') : '0');
    if (jsonName !== plan.field.name) args.push(`'${jsonName}'`);
    return `field(${args.join(', ')}),`;
  });
  return `${type.name}: message('${type.name}', encode${type.name}, decode${type.name}, () => [\n${fields.join('\n')}\n]),`;
}

function renderService(service: protobuf.Service): string {
  const methods = service.methodsArray.map((method) => {
    method.resolve();
    const request = method.resolvedRequestType;
    const response = method.resolvedResponseType;
    if (request === null || response === null) {
      throw new Error(
        `render messages: method ${method.fullName}: its request or response type did not resolve`,
      );
    }
    const flags = [
      method.requestStream ? 'REQUEST_STREAM' : '',
      method.responseStream ? 'RESPONSE_STREAM' : '',
    ].filter((flag) => flag !== '');
    const args = [`'${method.name}'`, `messages.${request.name}`, `messages.${response.name}`];
    if (flags.length > 0) args.push(flags.join(' | '));
    return `[${args.join(', ')}],`;
  });
  return `${service.name}: service('${service.fullName.replace(/^\./, '')}', [\n${methods.join('\n')}\n]),`;
}

/** The full text of proto/gen/messages.ts, formatted with the project's prettier settings. */
export async function renderMessages(): Promise<string> {
  const root = loadProtoFiles();
  const pkg = root.lookup('skiff.v1');
  if (!(pkg instanceof protobuf.Namespace))
    throw new Error('render messages: the .proto files have no skiff.v1');
  const types: protobuf.Type[] = [];
  const services: protobuf.Service[] = [];
  for (const nested of pkg.nestedArray) {
    if (nested instanceof protobuf.Type) {
      if (nested.nestedArray.length > 0) {
        throw new Error(
          `render messages: ${nested.fullName} declares types inside it, which are not supported`,
        );
      }
      types.push(nested);
    } else if (nested instanceof protobuf.Service) {
      services.push(nested);
    } else {
      throw new Error(`render messages: ${nested.fullName} is not a message or a service (not supported)`);
    }
  }
  const plans = new Map(types.map((type) => [type, type.fieldsArray.map(planField)]));
  let out =
    '// Code generated by proto/codegen/render-messages.ts from proto/skiff/v1/*.proto. DO NOT EDIT.\n' +
    `// Regenerate with: ${REGENERATE_COMMAND}\n\n` +
    "import type { Reader } from '../wire/reader.js';\n" +
    "import type { Writer } from '../wire/writer.js';\n" +
    'import {\n  MAP,\n  PRESENCE,\n  REPEATED,\n  REQUEST_STREAM,\n  RESPONSE_STREAM,\n' +
    '  field,\n  clearOneofMembers,\n  message,\n  service,\n' +
    '  type MessageType,\n  type ServiceType,\n' +
    "} from '../wire/message-type.js';\n\n" +
    "/** A message in the codecs' shape, its fields read and written by name (the writer checks their types). */\n" +
    'type Fields = Record<string, any>;\n\n';
  out += `/** The name of every message of skiff.v1. */\nexport type MessageName =\n${types.map((type) => `| '${type.name}'`).join('\n')};\n\n`;
  out += '/** Every message of skiff.v1, by name. */\n';
  out += `export const messages: { readonly [name in MessageName]: MessageType } = {\n${types
    .map((type) => renderDescriptor(type, plans.get(type)!))
    .join('\n')}\n};\n\n`;
  out += '/** Every service of skiff.v1, by name. */\n';
  out += `export const services: { readonly ${services.map((s) => `${s.name}: ServiceType`).join('; readonly ')} } = {\n${services
    .map(renderService)
    .join('\n')}\n};\n\n`;
  for (const type of types) {
    out += renderEncoder(type, plans.get(type)!) + '\n';
    out += renderDecoder(type, plans.get(type)!) + '\n';
  }
  const config = (await prettier.resolveConfig(path.join(protoIncludeDir(), GENERATED_MESSAGES_FILE))) ?? {};
  return prettier.format(out, { ...config, parser: 'typescript' });
}
