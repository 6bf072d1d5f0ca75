/**
 * Writes proto/gen/types.ts from the .proto files. Run after changing a .proto file:
 *   node --import tsx proto/codegen/gen-types.ts
 * (render-types.test.ts fails while the committed file is stale).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { protoIncludeDir } from '../schema.js';
import { GENERATED_TYPES_FILE, renderTypes } from './render-types.js';

const target = path.join(protoIncludeDir(), GENERATED_TYPES_FILE);
writeFileSync(target, await renderTypes());
process.stdout.write(`wrote ${target}\n`);
