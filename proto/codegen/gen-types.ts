/**
 * Writes proto/gen/types.ts (the TypeScript shapes) and proto/gen/messages.ts (every message's
 * fields and codec, every service) from the .proto files. Run after changing a .proto file:
 *   node --import tsx proto/codegen/gen-types.ts
 * (render-types.test.ts and render-messages.test.ts fail while a committed file is stale).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { protoIncludeDir } from './proto-files.js';
import { GENERATED_MESSAGES_FILE, renderMessages } from './render-messages.js';
import { GENERATED_TYPES_FILE, renderTypes } from './render-types.js';

for (const [file, text] of [
  [GENERATED_TYPES_FILE, await renderTypes()],
  [GENERATED_MESSAGES_FILE, await renderMessages()],
] as const) {
  const target = path.join(protoIncludeDir(), file);
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target}\n`);
}
