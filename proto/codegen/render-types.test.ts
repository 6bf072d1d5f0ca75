import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { schemaRoot } from '../schema.js';
import descriptor from '../gen/schema.json' with { type: 'json' };
import { loadProtoFiles, protoIncludeDir } from './proto-files.js';
import {
  GENERATED_SCHEMA_FILE,
  GENERATED_TYPES_FILE,
  REGENERATE_COMMAND,
  renderSchema,
  renderTypes,
} from './render-types.js';

test('the committed proto/gen/types.ts matches the .proto files', async () => {
  const committed = readFileSync(path.join(protoIncludeDir(), GENERATED_TYPES_FILE), 'utf8');
  const fresh = await renderTypes();
  assert.ok(committed === fresh, `proto/gen/types.ts is stale: regenerate it with \`${REGENERATE_COMMAND}\``);
});

test('the committed proto/gen/schema.json matches the .proto files', () => {
  const committed = readFileSync(path.join(protoIncludeDir(), GENERATED_SCHEMA_FILE), 'utf8');
  assert.ok(
    committed === renderSchema(),
    `proto/gen/schema.json is stale: regenerate it with \`${REGENERATE_COMMAND}\``,
  );
});

test('the schema loaded at run time has every type, field, number, rule and option the .proto files have', () => {
  const strip = (json: unknown): string => JSON.stringify(json);
  // the descriptor schemaRoot takes its types from (schema.test.ts: the same types, as they are looked up)
  assert.equal(
    strip(protobuf.Root.fromJSON(descriptor as protobuf.INamespace).toJSON()),
    strip(loadProtoFiles().toJSON({ keepComments: false })),
  );
  const hostIP = schemaRoot().lookupType('skiff.v1.PodStatus').fields['hostIp'];
  assert.ok(hostIP instanceof protobuf.Field);
  assert.equal(hostIP.options?.['json_name'], 'hostIP');
  assert.ok(schemaRoot().lookupService('skiff.v1.Api').methods['Watch']?.responseStream);
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
