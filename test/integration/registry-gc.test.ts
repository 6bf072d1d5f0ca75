/**
 * `skiff registry gc [--dry-run]` against a real control plane (etcd, NATS, the built `skiff`
 * CLI), images pushed and pulled by skopeo and by skiff's registry client over loopback. Two
 * images share a base layer; one's manifest is deleted; GC takes exactly what only it named, the
 * other still pulls byte for byte. Time is made to pass by setting the blobs' mtimes back (the
 * registry keeps an unreferenced blob for an hour after a push last needed it).
 *
 * Needs etcd, nats-server and skopeo.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateToken, hashToken } from '../../controlplane/api/auth.js';
import { StoreTokenStore } from '../../controlplane/api/token-store.js';
import type { ControlPlane } from '../../controlplane/main.js';
import { connectApi } from '../../proto/client.js';
import { PermissionDeniedError } from '../../proto/errors.js';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { RegistryClient } from '../../proto/oci/registry-client.js';
import { runSkiff } from '../e2e/cli-harness.js';
import {
  busyboxLayerEntries,
  buildImage,
  ociLayout,
  sha256,
  writeArchiveDir,
  type FixtureImage,
} from '../fixtures/images.js';
import { requireTool, runSkopeo } from '../harness/docker-registry.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';

const HOUR = 60 * 60 * 1000;

function image(name: string, unique: string): FixtureImage {
  return buildImage({
    name,
    layers: [busyboxLayerEntries(), [{ name: 'app', data: `${unique}\n`.repeat(1000) }]],
  });
}

describe('skiff registry gc', { timeout: 180_000 }, () => {
  let cluster: TestControlPlane | undefined;
  let work: string;
  let controlPlane: ControlPlane;
  let adminToken: string;
  let editToken: string;
  let host: string;
  let blobsDir: string;
  const kept = image('team/kept:1', 'kept');
  const dropped = image('team/dropped:1', 'dropped');

  const skiff = (args: string[], token = adminToken) =>
    runSkiff(['--server', controlPlane.apiAddress, '--token', token, ...args], {
      env: { ...process.env, SKIFF_CONFIG: join(work, 'no-config'), SKIFF_LOG_LEVEL: 'warn' },
    });
  const registryFetch = (path: string, init: RequestInit = {}) =>
    fetch(`http://${host}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${editToken}`, ...(init.headers as Record<string, string>) },
    });
  const stored = async (): Promise<Set<string>> =>
    new Set((await readdir(blobsDir)).map((hex) => `sha256:${hex}`));
  /** Every stored blob an hour and a minute old: as if the pushes were long ago. */
  const ageEverything = async () => {
    const then = new Date(Date.now() - HOUR - 60_000);
    for (const hex of await readdir(blobsDir)) await utimes(join(blobsDir, hex), then, then);
  };

  before(async () => {
    requireTool('skopeo', 'skopeo');
    work = await mkdtemp(join(tmpdir(), 'skiff-registry-gc-'));
    cluster = await launchTestControlPlane('registry-gc');
    ({ controlPlane, adminToken } = cluster);
    host = controlPlane.httpAddress;
    blobsDir = join(cluster.stateDir, 'registry', 'content', 'blobs', 'sha256');
    editToken = generateToken();
    await new StoreTokenStore(controlPlane.store).createIfAbsent({
      name: 'pusher',
      role: 'edit',
      sha256: hashToken(editToken),
      createdAt: new Date().toISOString(),
    });
    // the token store is reloaded about once a second
    await new Promise((resolve) => setTimeout(resolve, 1100));
    for (const i of [kept, dropped]) {
      const layout = join(work, `layout-${i.name.replace(/\W/g, '-')}`);
      await writeArchiveDir(layout, ociLayout([i]));
      await runSkopeo([
        'copy',
        '--dest-creds',
        `any:${editToken}`,
        '--dest-tls-verify=false',
        `oci:${layout}:1`,
        `docker://${host}/${i.name}`,
      ]);
    }
  });

  after(async () => {
    await cluster?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('a non-admin token is refused with PermissionDenied, by the API and by the CLI', async () => {
    const api = connectApi({ server: controlPlane.apiAddress, token: editToken });
    try {
      await assert.rejects(api.collectRegistryGarbage({ dryRun: true }), (err: unknown) => {
        assert.ok(err instanceof PermissionDeniedError);
        assert.match(err.message, /collect registry garbage: token "pusher" has role edit; only admin/);
        return true;
      });
    } finally {
      api.close();
    }
    const refused = await skiff(['registry', 'gc', '--dry-run'], editToken);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /only admin tokens may/);
    const badFormat = await skiff(['registry', 'gc', '-o', 'yaml']);
    assert.notEqual(badFormat.code, 0);
    assert.match(badFormat.stderr, /output format "yaml" is not supported/);
  });

  test('dry run lists exactly the deleted image’s own blobs, gc deletes them, the other still pulls', async () => {
    const ownBlobs = (i: FixtureImage) => [i.manifestDigest, i.configDigest, i.layers[1]!.digest];
    const pushed = await stored();
    for (const d of [...ownBlobs(kept), ...ownBlobs(dropped), kept.layers[0]!.digest])
      assert.ok(pushed.has(d), `${d} was pushed`);
    assert.equal(kept.layers[0]!.digest, dropped.layers[0]!.digest, 'the images share their base');

    // untagging frees nothing: the manifest stays pullable by digest (Distribution keeps untagged
    // manifests too, unless asked to --delete-untagged)
    const untag = await registryFetch('/v2/team/dropped/manifests/1', { method: 'DELETE' });
    assert.equal(untag.status, 202);
    await ageEverything();
    const afterUntag = await skiff(['registry', 'gc', '--dry-run', '-o', 'json']);
    assert.equal(afterUntag.code, 0, afterUntag.stderr);
    assert.deepEqual(JSON.parse(afterUntag.stdout).deleted, []);

    const deleteManifest = await registryFetch(`/v2/team/dropped/manifests/${dropped.manifestDigest}`, {
      method: 'DELETE',
    });
    assert.equal(deleteManifest.status, 202);

    // what a push in progress holds: a blob just uploaded (no manifest yet), an old one a push has
    // just HEAD-checked (so it will not upload it), and an upload still open
    const fresh = Buffer.from('uploaded a moment ago, its manifest not yet pushed');
    const post = await registryFetch(`/v2/team/next/blobs/uploads/?digest=${sha256(fresh)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Uint8Array.from(fresh),
    });
    assert.equal(post.status, 201);
    const reused = Buffer.from('an old unreferenced blob a new push names again');
    const reusedPost = await registryFetch(`/v2/team/next/blobs/uploads/?digest=${sha256(reused)}`, {
      method: 'POST',
      body: Uint8Array.from(reused),
    });
    assert.equal(reusedPost.status, 201);
    const open = await registryFetch('/v2/team/next/blobs/uploads/', { method: 'POST' });
    assert.equal(open.status, 202);
    const half = Buffer.from('first half of a chunked upload, ');
    const patch = await registryFetch(open.headers.get('location')!, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${half.length - 1}` },
      body: Uint8Array.from(half),
    });
    assert.equal(patch.status, 202);
    // the reused blob is old; fresh is not
    const then = new Date(Date.now() - HOUR - 60_000);
    await utimes(join(blobsDir, sha256(reused).slice(7)), then, then);
    const head = await registryFetch(`/v2/team/next/blobs/${sha256(reused)}`, { method: 'HEAD' });
    assert.equal(head.status, 200);

    const expected = ownBlobs(dropped).sort();
    const dry = await skiff(['registry', 'gc', '--dry-run', '-o', 'json']);
    assert.equal(dry.code, 0, dry.stderr);
    const report = JSON.parse(dry.stdout) as {
      dryRun: boolean;
      deleted: { digest: string; size: number }[];
      deletedBytes: number;
      young: number;
    };
    assert.equal(report.dryRun, true);
    assert.deepEqual(report.deleted.map((b) => b.digest).sort(), expected);
    const sizes = [dropped.manifest.length, dropped.config.length, dropped.layers[1]!.blob.length];
    assert.equal(
      report.deletedBytes,
      sizes.reduce((a, b) => a + b, 0),
    );
    assert.equal(report.young, 2, 'the fresh and the HEAD-checked blobs are kept');
    assert.deepEqual(
      await stored(),
      new Set([...pushed, sha256(fresh), sha256(reused)]),
      'dry: nothing deleted',
    );

    const real = await skiff(['registry', 'gc']);
    assert.equal(real.code, 0, real.stderr);
    for (const d of expected) assert.match(real.stdout, new RegExp(`^deleted ${d} \\(`, 'm'));
    assert.match(real.stdout, new RegExp(`3 blobs deleted, ${report.deletedBytes} bytes \\(`));
    const left = await stored();
    for (const d of expected) assert.ok(!left.has(d), `${d} deleted`);
    for (const d of [...ownBlobs(kept), kept.layers[0]!.digest, sha256(fresh), sha256(reused)])
      assert.ok(left.has(d), `${d} kept`);

    // the open upload survived and completes
    const rest = Buffer.from('second half');
    const whole = Buffer.concat([half, rest]);
    const put = await registryFetch(
      `${patch.headers.get('location')!}${patch.headers.get('location')!.includes('?') ? '&' : '?'}digest=${sha256(whole)}`,
      { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: Uint8Array.from(rest) },
    );
    assert.equal(put.status, 201, await put.text());

    // the kept image pulls byte for byte: skopeo, and skiff's registry client
    const out = join(work, 'pulled');
    await runSkopeo([
      'copy',
      '--src-creds',
      `any:${editToken}`,
      '--src-tls-verify=false',
      `docker://${host}/team/kept:1`,
      `oci:${out}:kept`,
    ]);
    const ociBlob = (d: string) => readFile(join(out, 'blobs', 'sha256', d.slice(7)));
    assert.deepEqual(await ociBlob(kept.manifestDigest), kept.manifest);
    assert.deepEqual(await ociBlob(kept.configDigest), kept.config);
    for (const l of kept.layers) assert.deepEqual(await ociBlob(l.digest), l.blob);

    const content = await LocalContentStore.open(join(work, 'client-content'));
    const client = new RegistryClient({
      config: { cluster: { url: `http://${host}`, token: editToken } },
      workers: 0,
    });
    try {
      const pulled = await client.pull('team/kept:1', {
        content,
        hold: async () => undefined,
        tag: async () => undefined,
      });
      assert.equal(pulled.manifest.digest, kept.manifestDigest);
    } finally {
      client.close();
    }
    for (const l of kept.layers) assert.deepEqual(await content.readAll(l.digest, 1 << 30), l.blob);
    assert.deepEqual(await content.readAll(kept.configDigest, 1 << 20), kept.config);

    // and the deleted one is gone for a pull
    const missing = await registryFetch(`/v2/team/dropped/blobs/${dropped.layers[1]!.digest}`);
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
  });
});
