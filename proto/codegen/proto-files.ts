/**
 * The API schema as written: the .proto files under proto/skiff/v1, parsed with their comments and
 * file names by protobufjs. Only the generators (and the tests holding the generated codecs to
 * protobufjs's) read them; what runs uses what they write (proto/gen/).
 */
import path from 'node:path';
import protobuf from 'protobufjs';
import { InternalError, errorMessage } from '../errors.js';
import { packageRoot } from '../package-info.js';

const ENTRY_FILE = 'skiff/v1/api.proto';

/** The directory that import paths in the .proto files are relative to (it holds skiff/v1/). */
export function protoIncludeDir(): string {
  return path.join(packageRoot(), 'proto');
}

/** A fresh, fully resolved Root parsed from the .proto files, comments kept. */
export function loadProtoFiles(): protobuf.Root {
  const includeDir = protoIncludeDir();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.resolve(includeDir, target);
  try {
    root.loadSync(ENTRY_FILE, { alternateCommentMode: true });
    root.resolveAll();
  } catch (err) {
    throw new InternalError(`load API schema from ${includeDir}: ${errorMessage(err)}`, { cause: err });
  }
  return root;
}

/**
 * The name a field has in the Kubernetes JSON shape: its `json_name` where the .proto gives one
 * (acronyms such as podIP), else protobufjs's camelCase of the snake_case name.
 */
export function jsonFieldName(field: protobuf.Field): string {
  const explicit = field.options?.['json_name'];
  return typeof explicit === 'string' ? explicit : field.name;
}

/** True for proto3 `optional` fields, whose zero value is kept (unset and zero differ). */
export function hasExplicitPresence(field: protobuf.Field): boolean {
  return field.options?.['proto3_optional'] === true;
}
