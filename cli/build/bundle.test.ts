import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../proto/package-info.js';

interface Metafile {
  outputs: Record<
    string,
    { imports: { path: string; kind: string }[]; inputs: Record<string, unknown>; entryPoint?: string }
  >;
}

const metafile = JSON.parse(readFileSync(join(packageRoot(), 'dist/bin/metafile.json'), 'utf8')) as Metafile;

/** The sources a process loads for `entry` and the chunks it imports statically. */
function sourcesLoadedBy(...entries: string[]): string[] {
  const seen = new Set<string>();
  const visit = (output: string): void => {
    if (seen.has(output)) return;
    seen.add(output);
    for (const imported of metafile.outputs[output]?.imports ?? [])
      if (imported.kind === 'import-statement' && imported.path in metafile.outputs) visit(imported.path);
  };
  entries.forEach(visit);
  return [...seen].flatMap((output) => Object.keys(metafile.outputs[output]!.inputs));
}

/** The output holding the source `file` as a lazily loaded chunk of its own. */
function chunkOf(file: string): string {
  const found = Object.entries(metafile.outputs).find(
    ([name, out]) => name.endsWith('.mjs') && file in out.inputs,
  );
  assert.ok(found, `no output holds ${file}`);
  return found[0];
}

const main = 'dist/bin/skiff.mjs';

test('skiff version --client loads neither gRPC, protobufjs, YAML, logging nor the servers', () => {
  const loaded = sourcesLoadedBy(main, chunkOf('cli/commands/version.ts'));
  for (const heavy of [
    '@grpc/grpc-js',
    'protobufjs',
    'node_modules/yaml',
    'pino',
    'controlplane/',
    'node-agent/',
  ])
    assert.deepEqual(
      loaded.filter((source) => source.includes(heavy)),
      [],
      `version --client loads ${heavy}`,
    );
});

test('skiff get loads neither the control plane, the runtime, grpc-js (the server side of gRPC), protobufjs nor YAML', () => {
  const loaded = sourcesLoadedBy(
    main,
    chunkOf('cli/commands/get.ts'),
    chunkOf('proto/client.ts'),
    chunkOf('cli/config.ts'),
  );
  assert.ok(
    loaded.some((source) => source.includes('proto/grpc-wire-client.ts')),
    'the gRPC client is part of get',
  );
  assert.ok(
    loaded.some((source) => source.includes('proto/gen/messages.ts')),
    'the generated codecs are part of get',
  );
  for (const heavy of [
    '@grpc/grpc-js',
    // the codecs are generated at build time (proto/README.md): no schema to parse, no codecs to build
    'protobufjs',
    'proto/codegen/',
    'node_modules/yaml',
    'controlplane/',
    'node-agent/',
    'etcd3',
    'nats',
    'pino',
    'prom-client',
  ])
    assert.deepEqual(
      loaded.filter((source) => source.includes(heavy)),
      [],
      `get loads ${heavy}`,
    );
});

test('skiff registry gc loads neither the control plane nor the runtime', () => {
  const loaded = sourcesLoadedBy(main, chunkOf('cli/commands/registry.ts'), chunkOf('proto/client.ts'));
  for (const heavy of ['controlplane/', 'node-agent/', 'etcd3', 'nats', 'pino', 'prom-client'])
    assert.deepEqual(
      loaded.filter((source) => source.includes(heavy)),
      [],
      `registry gc loads ${heavy}`,
    );
});

test('skiff image pull loads neither the container runtime, logging, protobufjs nor the gRPC client', () => {
  const loaded = sourcesLoadedBy(
    main,
    chunkOf('cli/commands/image.ts'),
    chunkOf('cli/config.ts'),
    chunkOf('proto/oci/registry-client.ts'),
  );
  assert.ok(
    loaded.some((source) => source.includes('node-agent/runtime/images/image-store.ts')),
    'the image store is part of pull',
  );
  for (const heavy of [
    'node-agent/runtime/runtime.ts',
    'node-agent/runtime/containers/container-runtime.ts',
    'node-agent/runtime/sys/cgroups.ts',
    'pino',
    'protobufjs',
    'proto/grpc-wire-client.ts',
    'controlplane/',
  ])
    assert.deepEqual(
      loaded.filter((source) => source.includes(heavy)),
      [],
      `image pull loads ${heavy}`,
    );
});

test('nothing in the bundle loads protobufjs: its codecs are generated at build time, for every process', () => {
  const sources = Object.values(metafile.outputs).flatMap((output) => Object.keys(output.inputs));
  // grpc-js brings its own copy (under @grpc/proto-loader, for channelz), which only servers load
  const ours = sources.filter(
    (source) =>
      (/node_modules\/protobufjs\//.test(source) && !source.includes('@grpc/proto-loader/')) ||
      source.includes('proto/codegen/'),
  );
  assert.deepEqual(ours, []);
});

test('the launcher runs on the Node.js it was built with', () => {
  const firstLine = readFileSync(join(packageRoot(), 'dist/bin/skiff.cjs'), 'utf8').split('\n')[0];
  assert.equal(firstLine, `#!${process.execPath}`);
});
