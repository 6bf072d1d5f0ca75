import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { services } from '../../proto/gen/messages.js';
import { grpcServiceDefinition } from '../../proto/grpc-service.js';
import { toEnvelope } from '../../proto/objects.js';
import { packageRoot } from '../../proto/package-info.js';
import { CertificateAuthority } from '../../proto/support/pki.js';
import type { WireMessage } from '../../proto/wire/message-type.js';

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

test('skiff image pull loads neither the container runtime, the tar and gzip code of import and unpack, logging, protobufjs nor the gRPC client', () => {
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
    'node-agent/runtime/images/image-import.ts',
    'node-agent/runtime/images/layer-decompress.ts',
    'node-agent/runtime/images/layer-unpack.ts',
    'tar-stream',
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

/**
 * The built modules a `skiff ARGS…` process loaded (process.moduleLoadList at its exit: Node's own
 * modules and bindings), with its exit code and stderr.
 */
async function modulesLoadedBy(
  dir: string,
  args: string[],
): Promise<{ code: number; stderr: string; loaded: string[] }> {
  const list = join(dir, `modules-${Date.now()}`);
  const preload = join(dir, 'record-modules.cjs');
  writeFileSync(
    preload,
    `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')));\n`,
  );
  const result = await new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      ['--require', preload, join(packageRoot(), 'dist/bin/skiff.cjs'), ...args],
      { env: { ...process.env, SKIFF_CONFIG: join(dir, 'no-config'), NODE_DISABLE_COMPILE_CACHE: '1' } },
      (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
    ),
  );
  return { ...result, loaded: readFileSync(list, 'utf8').split('\n') };
}

const TLS_OR_CRYPTO = /^(?:NativeModule|Internal Binding) (?:tls|crypto|tls_wrap)$/;

test('skiff get over the control plane’s socket loads neither node:tls, node:crypto (OpenSSL) nor node:child_process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bundle-uds-'));
  const server = new grpc.Server();
  try {
    // an API that answers List with one namespace, on a Unix socket
    const namespace = toEnvelope({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'default', creationTimestamp: new Date().toISOString() },
      status: { phase: 'Active' },
    } as never);
    server.addService(grpcServiceDefinition(services.Api), {
      List: (_call: grpc.ServerUnaryCall<WireMessage, WireMessage>, done: grpc.sendUnaryData<WireMessage>) =>
        done(null, { items: [namespace], resourceVersion: '7' }),
    });
    const socket = join(dir, 'api.sock');
    await new Promise((resolve, reject) =>
      server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    const overSocket = await modulesLoadedBy(dir, [
      'get',
      'ns',
      '--server',
      `unix://${socket}`,
      '--token',
      't',
    ]);
    assert.equal(overSocket.code, 0, overSocket.stderr);
    assert.deepEqual(
      overSocket.loaded.filter((module) => TLS_OR_CRYPTO.test(module)),
      [],
      'get over the socket loads TLS or crypto',
    );
    // commander's executable subcommands, which skiff has none of (bundle.ts commanderSpawnOnCall)
    assert.deepEqual(
      overSocket.loaded.filter((module) => /^NativeModule (?:child_process|dgram)$/.test(module)),
      [],
      'get over the socket loads child_process',
    );
    // the check sees them where they are loaded: a TLS dial (to a port nothing serves)
    const ca = join(dir, 'ca.crt');
    writeFileSync(ca, CertificateAuthority.create({ commonName: 'bundle-test' }).certificatePem);
    const overTls = await modulesLoadedBy(dir, [
      'get',
      'ns',
      '--server',
      '127.0.0.1:1',
      '--token',
      't',
      '--certificate-authority',
      ca,
    ]);
    assert.notEqual(overTls.code, 0);
    assert.ok(overTls.loaded.includes('NativeModule tls'), 'a TLS dial loads node:tls');
  } finally {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});
