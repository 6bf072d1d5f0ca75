import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { protoIncludeDir } from './proto-files.js';
import { GENERATED_TYPES_FILE, REGENERATE_COMMAND, renderTypes } from './render-types.js';

test('the committed proto/gen/types.ts matches the .proto files', async () => {
  const committed = readFileSync(path.join(protoIncludeDir(), GENERATED_TYPES_FILE), 'utf8');
  const fresh = await renderTypes();
  assert.ok(committed === fresh, `proto/gen/types.ts is stale: regenerate it with \`${REGENERATE_COMMAND}\``);
});

test('kinds carry literal apiVersion and kind; IntOrString, bytes and acronyms follow the Kubernetes shape', async () => {
  const text = await renderTypes();
  assert.match(
    text,
    /export interface Deployment \{\n  apiVersion: 'apps\/v1';\n  kind: 'Deployment';\n  metadata: ObjectMeta;\n  spec: DeploymentSpec;\n  status\?: DeploymentStatus;/,
  );
  assert.match(text, /export type IntOrString = number \| string;/);
  assert.match(text, /maxSurge\?: IntOrString;/);
  assert.match(text, /podIP\?: string;/);
  assert.match(text, /binaryData\?: Record<string, string>;/);
  assert.match(text, /export type KubeObject =\s+\| Namespace/);
  assert.doesNotMatch(text, /interface (ListRequest|WatchEvent|Object) /);
});
