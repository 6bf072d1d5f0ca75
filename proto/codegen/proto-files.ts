/**
 * The API schema as written: the .proto files under proto/skiff/v1, parsed with their comments and
 * file names. Only the generators read them; everything that runs uses the descriptor they write
 * (proto/gen/schema.json, loaded by proto/schema.ts), which loads about four times faster.
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
