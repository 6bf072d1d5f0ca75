/**
 * The registry's HTTP API against a real server on a loopback port: every endpoint of the
 * distribution spec v1.1 the registry serves, the credentials and roles, and every kind of bad
 * input the registry must refuse (each with the spec's error code and nothing stored).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256Digest, type Digest } from '../../proto/oci/digest.js';
import { MediaType } from '../../proto/oci/media-types.js';
import { startTestRegistry, type TestRegistry } from './registry-server-harness.js';

interface ErrorBody {
  errors: Array<{ code: string; message: string; detail?: unknown }>;
}

async function expectError(response: Response, status: number, code: string): Promise<ErrorBody> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  const body = JSON.parse(text) as ErrorBody;
  assert.equal(body.errors[0]?.code, code, text);
  assert.equal(typeof body.errors[0]?.message, 'string');
  return body;
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** A request with the path sent exactly as given (fetch would normalise `..` away). */
function rawRequest(
  address: string,
  method: string,
  path: string,
  token: string,
  body?: string,
): Promise<{ status: number; body: string }> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        method,
        path,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      out.push(relative(dir, path));
      if (entry.isDirectory()) await walk(path);
    }
  };
  await walk(dir);
  return out.sort();
}

describe('registry API', () => {
  let r: TestRegistry;
  before(async () => {
    r = await startTestRegistry({ maxBlobBytes: 64 * 1024 });
  });
  after(async () => {
    await r.close();
  });

  async function pushBlob(name: string, data: Buffer | string): Promise<Digest> {
    const bytes = Buffer.from(data);
    const digest = sha256Digest(bytes);
    const res = await r.fetch(`/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes });
    assert.equal(res.status, 201, await res.text());
    return digest;
  }

  function imageManifest(config: Buffer, layers: Buffer[], extra: Record<string, unknown> = {}): Buffer {
    return Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length },
        layers: layers.map((l) => ({
          mediaType: MediaType.ociLayerGzip,
          digest: sha256Digest(l),
          size: l.length,
        })),
        ...extra,
      }),
    );
  }

  async function pushImage(
    name: string,
    tag: string,
    seed: string,
  ): Promise<{ digest: Digest; body: Buffer }> {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
    const layers = [Buffer.from(`layer one ${seed}`), Buffer.from(`layer two ${seed}`)];
    for (const b of [config, ...layers]) await pushBlob(name, b);
    const body = imageManifest(config, layers);
    const res = await r.fetch(`/v2/${name}/manifests/${tag}`, {
      method: 'PUT',
      headers: { 'content-type': MediaType.ociManifest },
      body,
    });
    assert.equal(res.status, 201, await res.text());
    return { digest: sha256Digest(body), body };
  }

  describe('credentials and roles', () => {
    test('no credential or a bad one is 401 with WWW-Authenticate, in the spec JSON shape', async () => {
      for (const headers of <Array<Record<string, string>>>[
        {},
        { authorization: 'Bearer not-a-token' },
        { authorization: basic('any', 'not-a-token') },
        { authorization: 'Negotiate abc' },
        { authorization: `Bearer ${'x'.repeat(8000)}` },
      ]) {
        const res = await r.fetch('/v2/', { headers, token: null });
        assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="skiff"/);
        assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
        await expectError(res, 401, 'UNAUTHORIZED');
      }
    });

    test('Bearer tokens and Basic with any user name and the token as password', async () => {
      const bearer = await r.fetch('/v2/', { token: r.tokens.view });
      assert.equal(bearer.status, 200);
      assert.deepEqual(await bearer.json(), {});
      assert.equal(bearer.headers.get('docker-distribution-api-version'), 'registry/2.0');
      const viaBasic = await r.fetch('/v2/', {
        headers: { authorization: basic('whoever', r.tokens.edit) },
        token: null,
      });
      assert.equal(viaBasic.status, 200);
    });

    test('view pulls; only edit and admin push and delete (403 DENIED)', async () => {
      const image = await pushImage('roles/app', 'v1', 'roles');
      const pull = await r.fetch('/v2/roles/app/manifests/v1', { token: r.tokens.view });
      assert.equal(pull.status, 200);
      await pull.arrayBuffer();
      await expectError(
        await r.fetch('/v2/roles/app/blobs/uploads/', { method: 'POST', token: r.tokens.view }),
        403,
        'DENIED',
      );
      await expectError(
        await r.fetch('/v2/roles/app/manifests/v2', {
          method: 'PUT',
          body: image.body,
          token: r.tokens.view,
        }),
        403,
        'DENIED',
      );
      await expectError(
        await r.fetch(`/v2/roles/app/manifests/${image.digest}`, { method: 'DELETE', token: r.tokens.view }),
        403,
        'DENIED',
      );
      const upload = await r.fetch('/v2/roles/app/blobs/uploads/', { method: 'POST', token: r.tokens.edit });
      assert.equal(upload.status, 202);
    });
  });

  describe('blobs', () => {
    test('monolithic POST, HEAD and GET with Range; Docker-Content-Digest on each', async () => {
      const data = Buffer.from(Array.from({ length: 2000 }, (_, i) => i % 251));
      const digest = sha256Digest(data);
      const post = await r.fetch(`/v2/blobs/mono/blobs/uploads/?digest=${digest}`, {
        method: 'POST',
        body: data,
      });
      assert.equal(post.status, 201);
      assert.equal(post.headers.get('location'), `/v2/blobs/mono/blobs/${digest}`);
      assert.equal(post.headers.get('docker-content-digest'), digest);

      const head = await r.fetch(`/v2/blobs/mono/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), '2000');
      assert.equal(head.headers.get('docker-content-digest'), digest);

      const get = await r.fetch(`/v2/blobs/mono/blobs/${digest}`);
      assert.equal(get.headers.get('docker-content-digest'), digest);
      assert.ok(Buffer.from(await get.arrayBuffer()).equals(data));

      const part = await r.fetch(`/v2/blobs/mono/blobs/${digest}`, { headers: { range: 'bytes=500-1499' } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), 'bytes 500-1499/2000');
      assert.equal(part.headers.get('content-length'), '1000');
      assert.equal(part.headers.get('docker-content-digest'), digest);
      assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(500, 1500)));
      const tail = await r.fetch(`/v2/blobs/mono/blobs/${digest}`, { headers: { range: 'bytes=-500' } });
      assert.ok(Buffer.from(await tail.arrayBuffer()).equals(data.subarray(1500)));

      const beyond = await r.fetch(`/v2/blobs/mono/blobs/${digest}`, {
        headers: { range: 'bytes=5000-10000' },
      });
      assert.equal(beyond.status, 416);
      assert.equal(beyond.headers.get('content-range'), 'bytes */2000');
      await beyond.arrayBuffer();
      await expectError(await r.fetch(`/v2/blobs/other/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
      await expectError(await r.fetch(`/v2/blobs/mono/blobs/${sha256Digest('absent')}`), 404, 'BLOB_UNKNOWN');
    });

    test('POST then PUT; chunked PATCHes with Content-Range, status, 416 out of order, final chunk in PUT', async () => {
      const post = await r.fetch('/v2/blobs/chunked/blobs/uploads/', {
        method: 'POST',
        headers: { 'content-length': '0' },
      });
      assert.equal(post.status, 202);
      const location = post.headers.get('location')!;
      assert.match(location, /^\/v2\/blobs\/chunked\/blobs\/uploads\/[0-9a-f-]{36}$/);
      assert.equal(post.headers.get('range'), '0-0');

      const first = await r.fetch(location, {
        method: 'PATCH',
        headers: { 'content-range': '0-4', 'content-type': 'application/octet-stream' },
        body: 'hello',
      });
      assert.equal(first.status, 202);
      assert.equal(first.headers.get('range'), '0-4');
      assert.equal(first.headers.get('location'), location);

      const outOfOrder = await r.fetch(location, {
        method: 'PATCH',
        headers: { 'content-range': '7-9' },
        body: 'xyz',
      });
      assert.equal(outOfOrder.status, 416);
      assert.equal(outOfOrder.headers.get('range'), '0-4');
      assert.equal(outOfOrder.headers.get('location'), location);
      await expectError(outOfOrder, 416, 'BLOB_UPLOAD_INVALID');
      await expectError(
        await r.fetch(location, { method: 'PATCH', headers: { 'content-range': 'garbage' }, body: 'x' }),
        416,
        'BLOB_UPLOAD_INVALID',
      );

      const status = await r.fetch(location);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), '0-4');

      const streamed = await r.fetch(location, { method: 'PATCH', body: ' wor' }); // no Content-Range: appended
      assert.equal(streamed.headers.get('range'), '0-8');
      const digest = sha256Digest('hello world');
      const put = await r.fetch(`${location}?digest=${digest}`, {
        method: 'PUT',
        headers: { 'content-range': '9-10' },
        body: 'ld',
      });
      assert.equal(put.status, 201, await put.text());
      assert.equal(put.headers.get('location'), `/v2/blobs/chunked/blobs/${digest}`);
      assert.equal(put.headers.get('docker-content-digest'), digest);
      assert.equal(await (await r.fetch(`/v2/blobs/chunked/blobs/${digest}`)).text(), 'hello world');
      await expectError(await r.fetch(location), 404, 'BLOB_UPLOAD_UNKNOWN');

      const simple = (await r.fetch('/v2/blobs/chunked/blobs/uploads/', { method: 'POST' })).headers.get(
        'location',
      )!;
      const whole = await r.fetch(`${simple}?digest=${sha256Digest('one go')}`, {
        method: 'PUT',
        body: 'one go',
      });
      assert.equal(whole.status, 201);
    });

    test('DELETE cancels an upload; a PUT without ?digest= is DIGEST_INVALID', async () => {
      const location = (await r.fetch('/v2/blobs/cancel/blobs/uploads/', { method: 'POST' })).headers.get(
        'location',
      )!;
      await expectError(await r.fetch(location, { method: 'PUT', body: '' }), 400, 'DIGEST_INVALID');
      const del = await r.fetch(location, { method: 'DELETE' });
      assert.equal(del.status, 204);
      await expectError(await r.fetch(location), 404, 'BLOB_UPLOAD_UNKNOWN');
      await expectError(await r.fetch(location, { method: 'PATCH', body: 'x' }), 404, 'BLOB_UPLOAD_UNKNOWN');
      await expectError(
        await r.fetch('/v2/blobs/cancel/blobs/uploads/not-a-uuid', { method: 'PATCH', body: 'x' }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      // an id that could smuggle a header line into the response never reaches a header
      await expectError(
        await r.fetch('/v2/blobs/cancel/blobs/uploads/x%0d%0aSet-Cookie:%20a=b', {
          method: 'PATCH',
          headers: { 'content-range': 'junk' },
          body: 'x',
        }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
    });

    test('a blob whose bytes do not match its digest is DIGEST_INVALID, and nothing is stored', async () => {
      const before = await listTree(join(r.dir, 'content'));
      const claimed = sha256Digest('the real bytes');
      await expectError(
        await r.fetch(`/v2/blobs/bad/blobs/uploads/?digest=${claimed}`, {
          method: 'POST',
          body: 'other bytes',
        }),
        400,
        'DIGEST_INVALID',
      );
      const location = (await r.fetch('/v2/blobs/bad/blobs/uploads/', { method: 'POST' })).headers.get(
        'location',
      )!;
      await r.fetch(location, { method: 'PATCH', body: 'other bytes' });
      const put = await expectError(
        await r.fetch(`${location}?digest=${claimed}`, { method: 'PUT' }),
        400,
        'DIGEST_INVALID',
      );
      assert.match(put.errors[0]!.message, /expected sha256:[a-f0-9]{64}, actual sha256:[a-f0-9]{64}/);
      await expectError(await r.fetch(`/v2/blobs/bad/blobs/${claimed}`), 404, 'BLOB_UNKNOWN');
      assert.deepEqual(await listTree(join(r.dir, 'content')), before);
      await expectError(await r.fetch(location), 404, 'BLOB_UPLOAD_UNKNOWN');
      await expectError(
        await r.fetch(`/v2/blobs/bad/blobs/uploads/?digest=sha256:abc`, { method: 'POST', body: 'x' }),
        400,
        'DIGEST_INVALID',
      );
      await expectError(
        await r.fetch(`/v2/blobs/bad/blobs/uploads/?digest=sha512:${'a'.repeat(128)}`, {
          method: 'POST',
          body: 'x',
        }),
        400,
        'DIGEST_INVALID',
      );
    });

    test('an upload over the size limit is refused and its partial upload deleted', async () => {
      const big = Buffer.alloc(64 * 1024 + 1, 7);
      await expectError(
        await r.fetch(`/v2/blobs/big/blobs/uploads/?digest=${sha256Digest(big)}`, {
          method: 'POST',
          body: big,
        }),
        413,
        'SIZE_INVALID',
      );
      const location = (await r.fetch('/v2/blobs/big/blobs/uploads/', { method: 'POST' })).headers.get(
        'location',
      )!;
      const ok = await r.fetch(location, { method: 'PATCH', body: big.subarray(0, 60 * 1024) });
      assert.equal(ok.status, 202);
      const over = await r.fetch(location, { method: 'PATCH', body: big.subarray(60 * 1024) });
      const body = await expectError(over, 413, 'SIZE_INVALID');
      assert.match(body.errors[0]!.message, /limit of 65536 bytes/);
      await expectError(await r.fetch(location), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.ok(
        !(await readdir(join(r.dir, 'uploads'))).includes(location.split('/').pop()!),
        'the partial upload is deleted',
      );
      await expectError(await r.fetch(`/v2/blobs/big/blobs/${sha256Digest(big)}`), 404, 'BLOB_UNKNOWN');
    });

    test('cross-repository mount: 201 when the source holds the blob, else an upload session (202)', async () => {
      const digest = await pushBlob('mount/from', 'mounted bytes');
      const mount = await r.fetch(`/v2/mount/to/blobs/uploads/?mount=${digest}&from=mount/from`, {
        method: 'POST',
      });
      assert.equal(mount.status, 201);
      assert.equal(mount.headers.get('location'), `/v2/mount/to/blobs/${digest}`);
      assert.equal(mount.headers.get('docker-content-digest'), digest);
      assert.equal(await (await r.fetch(`/v2/mount/to/blobs/${digest}`)).text(), 'mounted bytes');
      const missing = await r.fetch(
        `/v2/mount/to/blobs/uploads/?mount=${sha256Digest('nope')}&from=mount/from`,
        {
          method: 'POST',
        },
      );
      assert.equal(missing.status, 202);
      assert.match(missing.headers.get('location') ?? '', /\/blobs\/uploads\//);
      const anonymous = await r.fetch(`/v2/mount/third/blobs/uploads/?mount=${digest}`, { method: 'POST' });
      assert.equal(anonymous.status, 202);
    });

    test('DELETE of a blob removes it from the repository', async () => {
      const digest = await pushBlob('blobs/delete', 'to be deleted');
      const del = await r.fetch(`/v2/blobs/delete/blobs/${digest}`, { method: 'DELETE' });
      assert.equal(del.status, 202);
      assert.equal(del.headers.get('docker-content-digest'), digest);
      await expectError(await r.fetch(`/v2/blobs/delete/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
      await expectError(
        await r.fetch(`/v2/blobs/delete/blobs/${digest}`, { method: 'DELETE' }),
        404,
        'BLOB_UNKNOWN',
      );
    });
  });

  describe('manifests', () => {
    test('PUT by tag, GET and HEAD byte for byte by tag and digest; PUT by digest with ?tag=', async () => {
      // unusual but valid JSON spacing: stored and served exactly as pushed
      const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
      const layer = Buffer.from('a layer');
      await pushBlob('man/app', config);
      await pushBlob('man/app', layer);
      const body = Buffer.from(
        JSON.stringify(JSON.parse(imageManifest(config, [layer]).toString()), null, 3) + '\n\n',
      );
      const digest = sha256Digest(body);
      const put = await r.fetch('/v2/man/app/manifests/v1', {
        method: 'PUT',
        headers: { 'content-type': MediaType.ociManifest },
        body,
      });
      assert.equal(put.status, 201);
      assert.equal(put.headers.get('location'), `/v2/man/app/manifests/${digest}`);
      assert.equal(put.headers.get('docker-content-digest'), digest);
      for (const ref of ['v1', digest]) {
        const get = await r.fetch(`/v2/man/app/manifests/${ref}`, {
          headers: { accept: MediaType.ociManifest },
        });
        assert.equal(get.status, 200);
        assert.equal(get.headers.get('content-type'), MediaType.ociManifest);
        assert.equal(get.headers.get('docker-content-digest'), digest);
        assert.ok(Buffer.from(await get.arrayBuffer()).equals(body));
        const head = await r.fetch(`/v2/man/app/manifests/${ref}`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('content-length'), String(body.length));
        assert.equal(head.headers.get('docker-content-digest'), digest);
      }
      const byDigest = await r.fetch(`/v2/man/app/manifests/${digest}?tag=v2&tag=stable`, {
        method: 'PUT',
        headers: { 'content-type': MediaType.ociManifest },
        body,
      });
      assert.equal(byDigest.status, 201);
      assert.equal(byDigest.headers.get('oci-tag'), 'v2, stable');
      assert.deepEqual(await (await r.fetch('/v2/man/app/tags/list')).json(), {
        name: 'man/app',
        tags: ['stable', 'v1', 'v2'],
      });
      await expectError(await r.fetch('/v2/man/app/manifests/v9'), 404, 'MANIFEST_UNKNOWN');
      await expectError(await r.fetch(`/v2/man/other/manifests/${digest}`), 404, 'MANIFEST_UNKNOWN');
    });

    test('malformed, unknown and schema 1 manifests are MANIFEST_INVALID; a wrong digest is DIGEST_INVALID', async () => {
      const put = (ref: string, body: string | Buffer, contentType?: string) =>
        r.fetch(`/v2/man/bad/manifests/${ref}`, {
          method: 'PUT',
          ...(contentType ? { headers: { 'content-type': contentType } } : {}),
          body,
        });
      await expectError(await put('x', '{not json', MediaType.ociManifest), 400, 'MANIFEST_INVALID');
      await expectError(await put('x', '[]', MediaType.ociManifest), 400, 'MANIFEST_INVALID');
      await expectError(
        await put(
          'x',
          JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.unknown+json' }),
        ),
        400,
        'MANIFEST_INVALID',
      );
      await expectError(
        await put(
          'x',
          JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }),
          'application/vnd.example.unknown',
        ),
        400,
        'MANIFEST_INVALID',
      );
      const v1 = JSON.stringify({
        schemaVersion: 1,
        name: 'man/bad',
        tag: 'x',
        fsLayers: [],
        history: [],
        signatures: [],
      });
      const schema1 = await expectError(
        await put('x', v1, MediaType.dockerManifestSchema1Signed),
        400,
        'MANIFEST_INVALID',
      );
      assert.match(schema1.errors[0]!.message, /schema 1/);
      await expectError(await put('x', v1, MediaType.dockerManifestSchema1), 400, 'MANIFEST_INVALID');
      const body = imageManifest(Buffer.from('c'), []);
      await expectError(await put('x', body, MediaType.dockerManifest), 400, 'MANIFEST_INVALID');
      await expectError(
        await put(sha256Digest('something else'), body, MediaType.ociManifest),
        400,
        'DIGEST_INVALID',
      );
      await expectError(
        await put('sha256:baddigeststring', body, MediaType.ociManifest),
        400,
        'DIGEST_INVALID',
      );
      await expectError(
        await put('x', Buffer.alloc(4 * 1024 * 1024 + 1, 32), MediaType.ociManifest),
        413,
        'SIZE_INVALID',
      );
      await expectError(await r.fetch('/v2/man/bad/tags/list'), 404, 'NAME_UNKNOWN');
    });

    test('a manifest naming blobs or manifests the repository lacks is MANIFEST_BLOB_UNKNOWN', async () => {
      const config = Buffer.from('{"c":1}');
      await pushBlob('man/missing', config);
      const absent = Buffer.from('never pushed');
      const res = await r.fetch('/v2/man/missing/manifests/v1', {
        method: 'PUT',
        headers: { 'content-type': MediaType.ociManifest },
        body: imageManifest(config, [absent]),
      });
      const body = await expectError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
      assert.deepEqual(body.errors[0]!.detail, { missing: [sha256Digest(absent)] });
      // a blob of another repository does not count
      const elsewhere = await pushBlob('man/elsewhere', 'elsewhere');
      await expectError(
        await r.fetch('/v2/man/missing/manifests/v1', {
          method: 'PUT',
          headers: { 'content-type': MediaType.ociManifest },
          body: imageManifest(config, [Buffer.from('elsewhere')]),
        }),
        400,
        'MANIFEST_BLOB_UNKNOWN',
      );
      assert.ok(elsewhere);
      const index = JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [{ mediaType: MediaType.ociManifest, digest: sha256Digest('no manifest'), size: 11 }],
      });
      await expectError(
        await r.fetch('/v2/man/missing/manifests/idx', {
          method: 'PUT',
          headers: { 'content-type': MediaType.ociIndex },
          body: index,
        }),
        400,
        'MANIFEST_BLOB_UNKNOWN',
      );
      // sizes that contradict the blobs are MANIFEST_INVALID
      const wrongSize = JSON.parse(imageManifest(config, []).toString()) as { config: { size: number } };
      wrongSize.config.size = 999;
      await expectError(
        await r.fetch('/v2/man/missing/manifests/v1', {
          method: 'PUT',
          headers: { 'content-type': MediaType.ociManifest },
          body: JSON.stringify(wrongSize),
        }),
        400,
        'MANIFEST_INVALID',
      );
      await expectError(await r.fetch('/v2/man/missing/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
    });

    test('content negotiation: OCI and Docker manifests and indexes, served only where accepted', async () => {
      const image = await pushImage('neg/app', 'amd64', 'negotiation');
      const arm = await pushImage('neg/app', 'arm64', 'arm');
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociIndex,
          manifests: [
            {
              mediaType: MediaType.ociManifest,
              digest: arm.digest,
              size: arm.body.length,
              platform: { os: 'linux', architecture: 'arm64' },
            },
            {
              mediaType: MediaType.ociManifest,
              digest: image.digest,
              size: image.body.length,
              platform: { os: 'linux', architecture: 'amd64' },
            },
          ],
        }),
      );
      assert.equal(
        (
          await r.fetch('/v2/neg/app/manifests/multi', {
            method: 'PUT',
            headers: { 'content-type': MediaType.ociIndex },
            body: index,
          })
        ).status,
        201,
      );
      const all = await r.fetch('/v2/neg/app/manifests/multi', {
        headers: { accept: [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifest].join(', ') },
      });
      assert.equal(all.headers.get('content-type'), MediaType.ociIndex);
      assert.ok(Buffer.from(await all.arrayBuffer()).equals(index));
      // a client that takes no index gets the linux/amd64 manifest, with its own digest
      const single = await r.fetch('/v2/neg/app/manifests/multi', {
        headers: { accept: MediaType.ociManifest },
      });
      assert.equal(single.status, 200);
      assert.equal(single.headers.get('docker-content-digest'), image.digest);
      assert.ok(Buffer.from(await single.arrayBuffer()).equals(image.body));
      // ... but by digest the index is the index: not acceptable is 404
      await expectError(
        await r.fetch(`/v2/neg/app/manifests/${sha256Digest(index)}`, {
          headers: { accept: MediaType.ociManifest },
        }),
        404,
        'MANIFEST_UNKNOWN',
      );
      // an OCI manifest is never turned into a Docker one
      await expectError(
        await r.fetch('/v2/neg/app/manifests/amd64', { headers: { accept: MediaType.dockerManifest } }),
        404,
        'MANIFEST_UNKNOWN',
      );
      const wildcard = await r.fetch('/v2/neg/app/manifests/amd64', { headers: { accept: '*/*' } });
      assert.equal(wildcard.headers.get('content-type'), MediaType.ociManifest);
      await wildcard.arrayBuffer();

      // Docker schema 2 manifest and manifest list, typed by Content-Type only (no mediaType... and with it)
      const config = Buffer.from('{"os":"linux","architecture":"amd64","docker":true}');
      const layer = Buffer.from('docker layer');
      await pushBlob('neg/docker', config);
      await pushBlob('neg/docker', layer);
      const dockerManifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.dockerManifest,
          config: { mediaType: MediaType.dockerConfig, digest: sha256Digest(config), size: config.length },
          layers: [{ mediaType: MediaType.dockerLayerGzip, digest: sha256Digest(layer), size: layer.length }],
        }),
      );
      assert.equal(
        (
          await r.fetch('/v2/neg/docker/manifests/v1', {
            method: 'PUT',
            headers: { 'content-type': MediaType.dockerManifest },
            body: dockerManifest,
          })
        ).status,
        201,
      );
      const list = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.dockerManifestList,
          manifests: [
            {
              mediaType: MediaType.dockerManifest,
              digest: sha256Digest(dockerManifest),
              size: dockerManifest.length,
              platform: { os: 'linux', architecture: 'amd64' },
            },
          ],
        }),
      );
      assert.equal(
        (
          await r.fetch('/v2/neg/docker/manifests/list', {
            method: 'PUT',
            headers: { 'content-type': MediaType.dockerManifestList },
            body: list,
          })
        ).status,
        201,
      );
      const asList = await r.fetch('/v2/neg/docker/manifests/list', {
        headers: { accept: `${MediaType.dockerManifestList}, ${MediaType.dockerManifest}` },
      });
      assert.equal(asList.headers.get('content-type'), MediaType.dockerManifestList);
      assert.ok(Buffer.from(await asList.arrayBuffer()).equals(list));
      const old = await r.fetch('/v2/neg/docker/manifests/list', {
        headers: { accept: MediaType.dockerManifest },
      });
      assert.equal(old.headers.get('content-type'), MediaType.dockerManifest);
      assert.equal(old.headers.get('docker-content-digest'), sha256Digest(dockerManifest));
      await old.arrayBuffer();
    });

    test('DELETE by digest removes the manifest and its tags; DELETE by tag removes the tag', async () => {
      const image = await pushImage('del/app', 'v1', 'delete');
      await r.fetch(`/v2/del/app/manifests/${image.digest}?tag=v2`, {
        method: 'PUT',
        headers: { 'content-type': MediaType.ociManifest },
        body: image.body,
      });
      const untag = await r.fetch('/v2/del/app/manifests/v2', { method: 'DELETE' });
      assert.equal(untag.status, 202);
      await expectError(await r.fetch('/v2/del/app/manifests/v2'), 404, 'MANIFEST_UNKNOWN');
      assert.equal((await r.fetch('/v2/del/app/manifests/v1', { method: 'HEAD' })).status, 200);
      const del = await r.fetch(`/v2/del/app/manifests/${image.digest}`, { method: 'DELETE' });
      assert.equal(del.status, 202);
      await expectError(await r.fetch(`/v2/del/app/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN');
      await expectError(await r.fetch('/v2/del/app/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
      await expectError(
        await r.fetch(`/v2/del/app/manifests/${image.digest}`, { method: 'DELETE' }),
        404,
        'MANIFEST_UNKNOWN',
      );
      assert.deepEqual(await (await r.fetch('/v2/del/app/tags/list')).json(), { name: 'del/app', tags: [] });
    });
  });

  describe('discovery', () => {
    test('tags list and catalog paginate with n, last and Link', async () => {
      const image = await pushImage('page/app', 't0', 'page');
      for (const tag of ['t1', 't2', 't3', 't4']) {
        await r.fetch(`/v2/page/app/manifests/${tag}`, {
          method: 'PUT',
          headers: { 'content-type': MediaType.ociManifest },
          body: image.body,
        });
      }
      const pages: string[][] = [];
      let next: string | undefined = '/v2/page/app/tags/list?n=2';
      while (next !== undefined) {
        const res: Response = await r.fetch(next);
        pages.push(((await res.json()) as { tags: string[] }).tags);
        const link = res.headers.get('link');
        next = link === null ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)![1];
      }
      assert.deepEqual(pages, [['t0', 't1'], ['t2', 't3'], ['t4']]);
      const last = await r.fetch('/v2/page/app/tags/list?last=t2');
      assert.deepEqual(await last.json(), { name: 'page/app', tags: ['t3', 't4'] });
      const none = await r.fetch('/v2/page/app/tags/list?n=0');
      assert.deepEqual(await none.json(), { name: 'page/app', tags: [] });
      assert.equal(none.headers.get('link'), null);
      await expectError(await r.fetch('/v2/page/app/tags/list?n=-1'), 400, 'UNSUPPORTED');
      await expectError(await r.fetch('/v2/page/app/tags/list?last=..%2F..'), 400, 'TAG_INVALID');
      await expectError(await r.fetch('/v2/page/absent/tags/list'), 404, 'NAME_UNKNOWN');

      const catalog = await r.fetch('/v2/_catalog?n=3');
      const first = ((await catalog.json()) as { repositories: string[] }).repositories;
      assert.equal(first.length, 3);
      assert.deepEqual(first, [...first].sort());
      const link = catalog.headers.get('link')!;
      assert.match(link, /^<\/v2\/_catalog\?n=3&last=[^>]+>; rel="next"$/);
      const rest = ((await (await r.fetch(/<([^>]+)>/.exec(link)![1]!)).json()) as { repositories: string[] })
        .repositories;
      const everything = ((await (await r.fetch('/v2/_catalog')).json()) as { repositories: string[] })
        .repositories;
      assert.deepEqual(
        [...first, ...rest].slice(0, everything.length),
        everything.slice(0, first.length + rest.length),
      );
      assert.ok(everything.includes('page/app'));
    });

    test('the referrers API lists manifests whose subject is a digest, filtered by artifactType', async () => {
      const image = await pushImage('ref/app', 'v1', 'referrers');
      const empty = Buffer.from('{}');
      await pushBlob('ref/app', empty);
      const sbomLayer = Buffer.from('{"spdx":true}');
      await pushBlob('ref/app', sbomLayer);
      const artifact = (artifactType: string | undefined, annotations: Record<string, string>) =>
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MediaType.ociManifest,
            ...(artifactType ? { artifactType } : {}),
            config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256Digest(empty), size: 2 },
            layers: [
              { mediaType: 'application/spdx+json', digest: sha256Digest(sbomLayer), size: sbomLayer.length },
            ],
            subject: { mediaType: MediaType.ociManifest, digest: image.digest, size: image.body.length },
            annotations,
          }),
        );
      const sbom = artifact('application/vnd.example.sbom', { 'org.example.kind': 'sbom' });
      const sig = artifact(undefined, { 'org.example.kind': 'signature' });
      for (const body of [sbom, sig]) {
        const put = await r.fetch(`/v2/ref/app/manifests/${sha256Digest(body)}`, {
          method: 'PUT',
          headers: { 'content-type': MediaType.ociManifest },
          body,
        });
        assert.equal(put.status, 201, await put.text());
        assert.equal(put.headers.get('oci-subject'), image.digest);
      }
      const res = await r.fetch(`/v2/ref/app/referrers/${image.digest}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), MediaType.ociIndex);
      const listed = (await res.json()) as {
        schemaVersion: number;
        mediaType: string;
        manifests: Array<Record<string, unknown>>;
      };
      assert.equal(listed.schemaVersion, 2);
      assert.equal(listed.mediaType, MediaType.ociIndex);
      const byDigest = new Map(listed.manifests.map((m) => [m.digest, m]));
      assert.deepEqual(byDigest.get(sha256Digest(sbom)), {
        mediaType: MediaType.ociManifest,
        digest: sha256Digest(sbom),
        size: sbom.length,
        artifactType: 'application/vnd.example.sbom',
        annotations: { 'org.example.kind': 'sbom' },
      });
      // no artifactType: the config's media type stands in
      assert.equal(byDigest.get(sha256Digest(sig))?.artifactType, 'application/vnd.oci.empty.v1+json');
      const filtered = await r.fetch(
        `/v2/ref/app/referrers/${image.digest}?artifactType=application/vnd.example.sbom`,
      );
      assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
      assert.deepEqual(((await filtered.json()) as { manifests: unknown[] }).manifests.length, 1);
      const nothing = await r.fetch(`/v2/ref/app/referrers/${sha256Digest('no subject')}`);
      assert.equal(nothing.status, 200);
      assert.deepEqual(((await nothing.json()) as { manifests: unknown[] }).manifests, []);
      await expectError(await r.fetch('/v2/ref/app/referrers/sha256:nope'), 400, 'DIGEST_INVALID');
      // deleting a referrer takes it off the list
      await r.fetch(`/v2/ref/app/manifests/${sha256Digest(sig)}`, { method: 'DELETE' });
      const after = (await (await r.fetch(`/v2/ref/app/referrers/${image.digest}`)).json()) as {
        manifests: unknown[];
      };
      assert.equal(after.manifests.length, 1);
    });
  });

  describe('clients that go away', () => {
    test('downloads abandoned mid-blob leak no file handle and leave the server serving', async () => {
      const big = await startTestRegistry();
      try {
        const data = Buffer.alloc(32 * 1024 * 1024);
        for (let i = 0; i < data.length; i += 4096) data.writeUInt32BE(i, i);
        const digest = sha256Digest(data);
        assert.equal(
          (await big.fetch(`/v2/gone/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data }))
            .status,
          201,
        );
        const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
        const before = await fds();
        for (let i = 0; i < 20; i++) {
          const controller = new AbortController();
          const res = await big.fetch(`/v2/gone/app/blobs/${digest}`, { signal: controller.signal });
          const reader = res.body!.getReader();
          await reader.read();
          controller.abort();
          await reader.read().catch(() => undefined);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.ok((await fds()) <= before + 2, `file descriptors: ${before} before, ${await fds()} after`);
        const whole = Buffer.from(await (await big.fetch(`/v2/gone/app/blobs/${digest}`)).arrayBuffer());
        assert.ok(whole.equals(data));
      } finally {
        await big.close();
      }
    });
  });

  describe('hostile input', () => {
    test('bad repository names, tags and digests: NAME_INVALID, TAG_INVALID, DIGEST_INVALID', async () => {
      await expectError(await r.fetch('/v2/UPPER/tags/list'), 400, 'NAME_INVALID');
      await expectError(await r.fetch('/v2/a__-b/tags/list'), 400, 'NAME_INVALID');
      await expectError(await r.fetch(`/v2/${'a'.repeat(256)}/tags/list`), 400, 'NAME_INVALID');
      await expectError(
        await r.fetch('/v2/a/manifests/-bad', { method: 'PUT', body: '{}' }),
        400,
        'TAG_INVALID',
      );
      await expectError(await r.fetch(`/v2/a/manifests/${'t'.repeat(129)}`), 400, 'TAG_INVALID');
      await expectError(await r.fetch('/v2/a/manifests/sha256:zz'), 400, 'DIGEST_INVALID');
      await expectError(await r.fetch('/v2/a/blobs/sha256:zz'), 400, 'DIGEST_INVALID');
      await expectError(await r.fetch(`/v2/a/blobs/md5:${'a'.repeat(32)}`), 400, 'DIGEST_INVALID');
      await expectError(
        await r.fetch('/v2/a/blobs/uploads/?mount=nope&from=b', { method: 'POST' }),
        400,
        'DIGEST_INVALID',
      );
      await expectError(
        await r.fetch('/v2/a/manifests/v1', {
          method: 'PUT',
          body: '{}',
          headers: { 'content-type': MediaType.ociManifest },
        }),
        400,
        'MANIFEST_INVALID',
      );
      const e405 = await r.fetch('/v2/a/tags/list', { method: 'DELETE' });
      assert.equal(e405.headers.get('allow'), 'GET, HEAD');
      await expectError(e405, 405, 'UNSUPPORTED');
    });

    test('.. and %2e%2e anywhere in a path never reach the file system', async () => {
      const outside = join(r.dir, '..');
      const canary = join(r.dir, 'canary');
      await writeFile(canary, sha256Digest('canary'));
      const before = await listTree(r.dir);
      const token = r.tokens.admin;
      const attempts: Array<[string, string]> = [
        ['GET', '/v2/a/%2e%2e/%2e%2e/canary/manifests/x'],
        ['GET', '/v2/a/manifests/..%2f..%2f..%2fcanary'],
        ['GET', '/v2/a/manifests/%2e%2e'],
        ['GET', '/v2/../../../etc/passwd'],
        ['GET', '/v2/a/blobs/..%2F..%2Fcanary'],
        ['GET', '/v2/a/b/../../../canary/tags/list'],
        ['GET', '/v2/%2e%2e/tags/list'],
        ['GET', '/v2/a/%2E%2E/tags/list'],
        ['GET', '/v2/a/.%2e/tags/list'],
        ['GET', '/v2/a/blobs/uploads/..%2f..%2fcanary'],
        ['PUT', '/v2/a/manifests/..%2f..%2f..%2fescaped'],
        ['PUT', '/v2/..%2f..%2fescaped/manifests/x'],
        ['PATCH', '/v2/a/blobs/uploads/%2e%2e%2f%2e%2e%2fcontent'],
        ['DELETE', '/v2/a/blobs/uploads/..'],
        ['DELETE', '/v2/a/manifests/..%5c..%5ccanary'],
        ['POST', '/v2/a/%2e%2e/blobs/uploads/'],
        ['GET', '/v2/a/tags/list?last=../../canary'],
        ['GET', '/v2/a/referrers/..%2f..%2fcanary'],
      ];
      for (const [method, path] of attempts) {
        const res = await rawRequest(r.address, method, path, token, method === 'GET' ? undefined : '{}');
        assert.ok(res.status === 400 || res.status === 404, `${method} ${path}: ${res.status} ${res.body}`);
        if (res.status === 400) {
          assert.match(res.body, /"code":"(NAME_INVALID|TAG_INVALID|DIGEST_INVALID)"/, `${method} ${path}`);
        }
      }
      assert.deepEqual(await listTree(r.dir), before, 'nothing was written anywhere in the registry');
      assert.ok(!(await readdir(outside)).includes('escaped'));
    });

    test('junk headers: Content-Length and Content-Range that lie are refused', async () => {
      const location = (await r.fetch('/v2/hostile/app/blobs/uploads/', { method: 'POST' })).headers.get(
        'location',
      )!;
      await expectError(
        await r.fetch(location, { method: 'PATCH', headers: { 'content-range': '0-9' }, body: 'short' }),
        400,
        'SIZE_INVALID',
      );
      await expectError(
        await r.fetch(location, { method: 'PATCH', headers: { 'content-range': '0-1' }, body: 'longer' }),
        400,
        'SIZE_INVALID',
      );
      await expectError(
        await r.fetch(location, {
          method: 'PATCH',
          headers: { 'content-range': `0-${'9'.repeat(20)}` },
          body: 'x',
        }),
        416,
        'BLOB_UPLOAD_INVALID',
      );
      assert.equal((await r.fetch(location)).headers.get('range'), '0-0');
      await expectError(
        await r.fetch('/v2/hostile/app/blobs/uploads/', { method: 'POST', body: 'a body' }),
        400,
        'BLOB_UPLOAD_INVALID',
      );
    });
  });
});
