/**
 * The registry end to end: a real `skiff up` cluster, its admin token, skopeo and curl from
 * Debian. An OCI archive goes in through the control plane's HTTP port and comes back out with the
 * same manifest digest and blobs; a second `skiff controlplane` on the same etcd and the same
 * registry directory serves what the first stored, and what it stores the first serves.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { archiveTar, multiLayerImage, ociLayout } from '../fixtures/images.js';
import { requireTool } from '../integration/registry-server-harness.js';
import { startTestCluster, type TestCluster } from './cli-harness.js';

const run = promisify(execFile);
let cluster: TestCluster | undefined;
let work: string;
let second: ChildProcess | undefined;

before(async () => {
  requireTool('skopeo', 'skopeo');
  requireTool('curl', 'curl');
  work = await mkdtemp(join(tmpdir(), 'skiff-e2e-registry-'));
  cluster = await startTestCluster('registry');
});

after(async () => {
  if (second && second.exitCode === null && second.signalCode === null) {
    const exited = new Promise((resolve) => second!.once('exit', resolve));
    second.kill('SIGTERM');
    await exited;
  }
  await cluster?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

async function tool(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(command, args, {
      timeout: 120_000,
      maxBuffer: 64 << 20,
      encoding: 'utf8',
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? String(err),
    };
  }
}

async function ok(command: string, args: string[]): Promise<string> {
  const result = await tool(command, args);
  assert.equal(result.code, 0, `${command} ${args.join(' ')}\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

test('skopeo and curl against a real control plane, and a second control plane on the same registry directory', async () => {
  const stateDir = cluster!.stateDir;
  const record = JSON.parse(await readFile(join(stateDir, 'cluster.json'), 'utf8')) as {
    etcd: { endpoint: string };
    nats: { endpoint: string };
    controlplane: { http: string };
  };
  const token = (await readFile(join(stateDir, 'admin-token'), 'utf8')).trim();
  const http = record.controlplane.http;
  const host = new URL(http).host;
  const image = multiLayerImage('multi:1');
  const archive = join(work, 'multi.tar');
  await writeFile(archive, archiveTar(ociLayout([image])));
  const creds = ['--creds', `any:${token}`, '--tls-verify=false'];

  // push, inspect, list, pull back: same manifest digest, same blobs
  await ok('skopeo', [
    'copy',
    '--dest-creds',
    `any:${token}`,
    '--dest-tls-verify=false',
    `oci-archive:${archive}`,
    `docker://${host}/e2e/multi:1`,
  ]);
  const inspected = JSON.parse(await ok('skopeo', ['inspect', ...creds, `docker://${host}/e2e/multi:1`])) as {
    Digest: string;
  };
  assert.equal(inspected.Digest, image.manifestDigest);
  const out = join(work, 'out');
  await ok('skopeo', [
    'copy',
    '--src-creds',
    `any:${token}`,
    '--src-tls-verify=false',
    `docker://${host}/e2e/multi:1`,
    `oci:${out}:x`,
  ]);
  const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string }>;
  };
  assert.equal(index.manifests[0]!.digest, image.manifestDigest);
  for (const layer of image.layers) {
    assert.ok((await readFile(join(out, 'blobs', 'sha256', layer.digest.slice(7)))).equals(layer.blob));
  }

  // curl with Range, and without a credential
  const layer = image.layers[0]!;
  const blobUrl = `${http}/v2/e2e/multi/blobs/${layer.digest}`;
  const part = join(work, 'part');
  await ok('curl', ['-sSf', '-H', `Authorization: Bearer ${token}`, '-r', '10-4009', '-o', part, blobUrl]);
  assert.ok((await readFile(part)).equals(layer.blob.subarray(10, 4010)));
  const challenge = await ok('curl', ['-s', '-D', '-', '-o', '/dev/null', blobUrl]);
  assert.match(challenge, /^HTTP\/1\.1 401/);
  assert.match(challenge, /www-authenticate: Basic realm="skiff"/i);
  const metrics = await ok('curl', ['-sSf', `${http}/metrics`]);
  assert.match(metrics, /skiff_registry_requests_total\{method="GET",route="blob",code="206"\} 1/);

  // a second control plane, same etcd, same registry directory
  const pki = join(stateDir, 'pki');
  const secondHttp = `127.0.0.1:${await freePort()}`;
  second = spawn(
    process.execPath,
    [
      ...skiffEntryArgv(),
      'controlplane',
      '--etcd', record.etcd.endpoint,
      '--etcd-cafile', join(pki, 'ca.crt'),
      '--etcd-certfile', join(pki, 'controlplane-etcd-client.crt'),
      '--etcd-keyfile', join(pki, 'controlplane-etcd-client.key'),
      '--nats', record.nats.endpoint,
      '--nats-cafile', join(pki, 'ca.crt'),
      '--nats-certfile', join(pki, 'controlplane-nats-client.crt'),
      '--nats-keyfile', join(pki, 'controlplane-nats-client.key'),
      '--cluster-ca-dir', pki,
      '--api-addr', '127.0.0.1:0',
      '--http-addr', secondHttp,
      '--state-dir', join(work, 'second'),
      '--encryption-provider-config', join(stateDir, 'controlplane', 'encryption-config.yaml'),
      '--registry-dir', join(stateDir, 'controlplane', 'registry'),
    ], // prettier-ignore
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SKIFF_LOG_LEVEL: 'warn' } },
  );
  let log = '';
  second.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  const until = Date.now() + 60_000;
  for (;;) {
    assert.equal(second.exitCode, null, `the second control plane exited:\n${log}`);
    const ready = await fetch(`http://${secondHttp}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    assert.ok(Date.now() < until, `the second control plane was not ready within 60 s:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const fromSecond = JSON.parse(
    await ok('skopeo', ['inspect', ...creds, `docker://${secondHttp}/e2e/multi:1`]),
  ) as {
    Digest: string;
  };
  assert.equal(
    fromSecond.Digest,
    image.manifestDigest,
    'the second control plane serves what the first stored',
  );
  await ok('skopeo', [
    'copy',
    '--src-creds', `any:${token}`, '--src-tls-verify=false',
    '--dest-creds', `any:${token}`, '--dest-tls-verify=false',
    `docker://${host}/e2e/multi:1`, `docker://${secondHttp}/e2e/multi:2`,
  ]); // prettier-ignore
  const tags = JSON.parse(await ok('skopeo', ['list-tags', ...creds, `docker://${host}/e2e/multi`])) as {
    Tags: string[];
  };
  assert.deepEqual(tags.Tags, ['1', '2'], 'the first serves the tag the second wrote');

  // delete through the first; gone through the second
  await ok('skopeo', ['delete', ...creds, `docker://${host}/e2e/multi:1`]);
  const gone = await tool('skopeo', ['inspect', ...creds, `docker://${secondHttp}/e2e/multi:2`]);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /manifest unknown|not found/i);
});
