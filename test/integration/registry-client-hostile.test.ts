/**
 * The registry client against a registry written here to misbehave on purpose (a real HTTP
 * server on a loopback port): layers whose bytes do not match their digest, connections cut
 * half-way (resumed with Range, within a pull and by the next pull), hostile manifests (too big,
 * wrong media types, schema 1, ambiguous, an index without linux/amd64), the anonymous token
 * flow of public registries, basic auth, the cluster registry's bearer token, redirects.
 *
 * The pulling side is a real image store (content store, copy snapshotter) in a temp dir; after
 * every refused pull nothing of the refused blob or image is committed.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { CertificateAuthority } from '../../proto/support/pki.js';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from '../../proto/errors.js';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { RegistryClient, type TransferEvent } from '../../proto/oci/registry-client.js';
import { ImageStore } from '../../node-agent/runtime/images/image-store.js';
import { CopySnapshotter } from '../../node-agent/runtime/snapshots/copy-snapshotter.js';
import { buildImage, sha256, type FixtureImage } from '../fixtures/images.js';
import { randomBytes } from 'node:crypto';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

interface Served {
  /** Bytes of blob bodies sent, per digest (what a resumed pull must keep small). */
  bytes: Map<string, number>;
  /** Range headers received, per digest. */
  ranges: Map<string, string[]>;
}

type BlobHook = (digest: string, req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean;

/** A registry that serves what it is given, as told, and records what it was asked. */
class FakeRegistry {
  readonly blobs = new Map<string, Buffer>();
  /** `repo ref` → body and content type. */
  readonly manifests = new Map<string, { body: Buffer; type: string; headers?: Record<string, string> }>();
  readonly requests: { method: string; url: string; authorization?: string; range?: string }[] = [];
  readonly served: Served = { bytes: new Map(), ranges: new Map() };
  /** Return true when the hook answered the request itself. */
  blobHook: BlobHook | undefined;
  /** 'bearer': the token flow (anonymous tokens for pull); 'basic': user alice, password pw; 'static': one bearer token. */
  auth: 'none' | 'bearer' | 'basic' | 'static' = 'none';
  staticToken = 'cluster-token';
  tokenRequests: { scope: string[]; authorization?: string }[] = [];
  /** Tokens carry it; bumping it makes every token issued before invalid (they "expire"). */
  tokenGeneration = 0;
  private server!: Server;
  host = '';

  async start(tls?: { key: string; cert: string }): Promise<void> {
    this.server = tls
      ? createTlsServer(tls, (req, res) => this.handle(req, res))
      : createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  addImage(repo: string, tag: string, image: FixtureImage): void {
    this.blobs.set(image.configDigest, image.config);
    for (const l of image.layers) this.blobs.set(l.digest, l.blob);
    this.manifests.set(`${repo} ${tag}`, { body: image.manifest, type: OCI_MANIFEST });
    this.manifests.set(`${repo} ${image.manifestDigest}`, { body: image.manifest, type: OCI_MANIFEST });
  }

  private authorized(req: IncomingMessage, res: ServerResponse, repo: string): boolean {
    const header = req.headers.authorization;
    if (this.auth === 'none') return true;
    if (this.auth === 'static' && header === `Bearer ${this.staticToken}`) return true;
    if (this.auth === 'basic' && header === `Basic ${Buffer.from('alice:pw').toString('base64')}`)
      return true;
    if (this.auth === 'bearer' && header === `Bearer anon-token-for-${repo}-${this.tokenGeneration}`)
      return true;
    const challenge =
      this.auth === 'basic'
        ? 'Basic realm="fake"'
        : this.auth === 'bearer'
          ? `Bearer realm="http://${this.host}/token",service="fake-registry",scope="repository:${repo}:pull"`
          : 'Bearer realm="cluster"';
    res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
    return false;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    const entry: FakeRegistry['requests'][number] = { method: req.method ?? '', url: url.pathname };
    if (req.headers.authorization) entry.authorization = req.headers.authorization;
    if (req.headers.range) entry.range = req.headers.range;
    this.requests.push(entry);
    if (url.pathname === '/token') {
      const scope = url.searchParams.getAll('scope');
      const rec: { scope: string[]; authorization?: string } = { scope };
      if (req.headers.authorization) rec.authorization = req.headers.authorization;
      this.tokenRequests.push(rec);
      const repo = /^repository:([^:]+):/.exec(scope[0] ?? '')?.[1] ?? '';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: `anon-token-for-${repo}-${this.tokenGeneration}`, expires_in: 300 }));
      return;
    }
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      if (!this.authorized(req, res, '')) return;
      res.writeHead(200).end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (!this.authorized(req, res, repo)) return;
    if (kind === 'manifests') {
      const found = this.manifests.get(`${repo} ${ref}`);
      if (!found) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
        return;
      }
      res.writeHead(200, {
        'content-type': found.type,
        'content-length': String(found.body.length),
        ...found.headers,
      });
      res.end(req.method === 'HEAD' ? undefined : found.body);
      return;
    }
    const body = this.blobs.get(ref);
    if (!body) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] }));
      return;
    }
    const ranges = this.served.ranges.get(ref) ?? [];
    if (req.headers.range) ranges.push(req.headers.range);
    this.served.ranges.set(ref, ranges);
    if (this.blobHook?.(ref, req, res, body)) return;
    this.sendBlob(ref, req, res, body);
  }

  /** The blob, honouring `Range: bytes=N-`; `cutAfter` bytes of the body, then the connection is destroyed. */
  sendBlob(digest: string, req: IncomingMessage, res: ServerResponse, body: Buffer, cutAfter?: number): void {
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) start = Number(range[1]);
    const part = body.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'content-length': String(part.length),
      'docker-content-digest': digest,
      ...(range ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const sent = cutAfter === undefined ? part : part.subarray(0, cutAfter);
    this.served.bytes.set(digest, (this.served.bytes.get(digest) ?? 0) + sent.length);
    if (cutAfter === undefined) {
      res.end(sent);
      return;
    }
    res.write(sent, () => setTimeout(() => res.socket?.destroy(), 20));
  }
}

/** A layer of `kib` KiB of random bytes (incompressible, so cuts land mid-blob). */
function randomImage(name: string, kib = 512): FixtureImage {
  return buildImage({ name, layers: [[{ name: 'data', data: randomBytes(kib * 1024) }]] });
}

// all on this thread; all on workers; shared between this thread and a worker (the default's
// shape: an image of one layer stays on this thread, the four-layer test uses both)
for (const { workers, mainThreadFetches } of [
  { workers: 0, mainThreadFetches: true },
  { workers: 2, mainThreadFetches: false },
  { workers: 1, mainThreadFetches: true },
])
  describe(`registry client: hostile registries, resume, auth (${workers === 0 ? 'all on the main thread' : mainThreadFetches ? `layers on the main thread and ${workers} worker thread` : `layers on ${workers} worker threads`})`, () => {
    let base: string;
    let registry: FakeRegistry;
    let content: LocalContentStore;
    let store: ImageStore;
    let n = 0;
    let client: RegistryClient | undefined;

    before(async () => {
      base = await mkdtemp(join(tmpdir(), 'skiff-registry-client-hostile-'));
    });
    after(async () => {
      await rm(base, { recursive: true, force: true });
    });
    beforeEach(async () => {
      registry = new FakeRegistry();
      await registry.start();
      const dir = join(base, String(n++));
      content = await LocalContentStore.open(join(dir, 'content'));
      store = await ImageStore.open(join(dir, 'images'), {
        content,
        snapshotter: await CopySnapshotter.open(join(dir, 'snapshots')),
      });
    });
    afterEach(async () => {
      client?.close();
      client = undefined;
      await registry.stop();
    });

    const newClient = (options: ConstructorParameters<typeof RegistryClient>[0] = {}) => {
      client?.close();
      client = new RegistryClient({
        retryDelayMs: 10,
        workers,
        mainThreadFetches,
        workersFromBytes: 0,
        ...options,
      });
      return client;
    };
    const pull = (ref: string, c = client ?? newClient()) =>
      store.pull(ref, {
        pull: async (r, into) => {
          await c.pull(r, into);
        },
      });
    const ingestFiles = async () => readdir(content.ingestDir);

    test('pulls an image and names it; a second pull fetches no blob again', async () => {
      const image = randomImage('app:1');
      registry.addImage('team/app', '1', image);
      const ref = `${registry.host}/team/app:1`;
      await pull(ref);
      const resolved = await store.resolve(ref);
      assert.equal(resolved.manifestDigest, image.manifestDigest);
      const before = registry.requests.filter((r) => r.url.includes('/blobs/')).length;
      await pull(ref);
      assert.equal(
        registry.requests.filter((r) => r.url.includes('/blobs/')).length,
        before,
        'no blob fetched twice',
      );
    });

    test('a layer whose bytes do not match its digest: refused, nothing of it committed, the image not named', async () => {
      const image = randomImage('bad:1');
      registry.addImage('bad', '1', image);
      const layer = image.layers[0]!;
      const forged = Buffer.from(layer.blob);
      forged[forged.length >> 1] ^= 0xff;
      registry.blobs.set(layer.digest, forged);
      await assert.rejects(pull(`${registry.host}/bad:1`), (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, String(err));
        assert.match(
          err.message,
          new RegExp(`content does not match its digest \\(expected ${layer.digest}`),
        );
        return true;
      });
      assert.equal(await content.has(layer.digest), false, 'the forged layer is not committed');
      assert.equal(await content.has(image.manifestDigest), false, 'the manifest is not committed');
      await assert.rejects(store.resolve(`${registry.host}/bad:1`), NotFoundError);
      assert.deepEqual(await ingestFiles(), [], 'nothing of the forged bytes is kept for a resume');
    });

    test('four layers fetched at once, one of them forged: refused, only good layers committed, the image not named; then all four good', async () => {
      const image = buildImage({
        name: 'four:1',
        layers: [0, 1, 2, 3].map((i) => [{ name: `data-${i}`, data: randomBytes(256 * 1024) }]),
      });
      registry.addImage('four', '1', image);
      const forgedLayer = image.layers[3]!;
      const forged = Buffer.from(forgedLayer.blob);
      forged[forged.length >> 1] ^= 0xff;
      registry.blobs.set(forgedLayer.digest, forged);
      await assert.rejects(pull(`${registry.host}/four:1`), InvalidArgumentError);
      assert.equal(await content.has(forgedLayer.digest), false, 'the forged layer is not committed');
      await assert.rejects(store.resolve(`${registry.host}/four:1`), NotFoundError);
      registry.blobs.set(forgedLayer.digest, forgedLayer.blob);
      await pull(`${registry.host}/four:1`);
      for (const layer of image.layers) assert.equal(await content.has(layer.digest), true);
      assert.equal((await store.resolve(`${registry.host}/four:1`)).manifestDigest, image.manifestDigest);
    });

    test('a connection cut half-way is resumed with Range within the pull: only the rest is fetched again', async () => {
      const image = randomImage('cut:1', 1024);
      registry.addImage('cut', '1', image);
      const layer = image.layers[0]!;
      let cuts = 0;
      registry.blobHook = (digest, req, res, body) => {
        if (digest !== layer.digest || cuts > 0) return false;
        cuts++;
        registry.sendBlob(digest, req, res, body, 300 * 1024);
        return true;
      };
      const events: TransferEvent[] = [];
      const c = newClient({ onEvent: (e) => events.push(e) });
      await pull(`${registry.host}/cut:1`, c);
      assert.equal((await store.resolve(`${registry.host}/cut:1`)).manifestDigest, image.manifestDigest);
      const ranges = registry.served.ranges.get(layer.digest)!;
      assert.equal(ranges.length, 1, 'one Range request');
      const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[0]!)![1]);
      assert.ok(resumedAt > 0 && resumedAt <= 300 * 1024, `resumed at ${resumedAt}`);
      assert.equal(
        registry.served.bytes.get(layer.digest),
        layer.blob.length + (300 * 1024 - resumedAt),
        'the cut bytes plus the rest',
      );
      assert.ok(
        events.some((e) => e.type === 'blob' && e.state === 'retrying'),
        'a retrying event',
      );
    });

    test('a registry that keeps stopping half-way: the pull fails with nothing committed; the next pull fetches only the rest', async () => {
      const image = randomImage('stop:1', 2048);
      registry.addImage('stop', '1', image);
      const layer = image.layers[0]!;
      const half = layer.blob.length >> 1;
      registry.blobHook = (digest, req, res, body) => {
        if (digest !== layer.digest) return false;
        // every answer stops half-way through the blob (a resumed one at once)
        const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
        registry.sendBlob(digest, req, res, body, Math.max(0, half - start));
        return true;
      };
      await assert.rejects(pull(`${registry.host}/stop:1`, newClient({ attempts: 2 })), (err: unknown) => {
        assert.ok(err instanceof UnavailableError, String(err));
        return true;
      });
      assert.equal(await content.has(layer.digest), false, 'the cut layer is not committed');
      await assert.rejects(store.resolve(`${registry.host}/stop:1`), NotFoundError);
      const kept = (await ingestFiles()).filter((f) => f.startsWith('resume-') && !f.endsWith('.lock'));
      assert.equal(kept.length, 1, `the fetched bytes are kept for a resume (${await ingestFiles()})`);
      const fetchedBefore = registry.served.bytes.get(layer.digest)!;
      assert.equal(fetchedBefore, half, 'half the blob came (the retry got nothing more)');

      // the registry heals; a new client (a new `skiff image pull`) continues where the last stopped
      registry.blobHook = undefined;
      await pull(`${registry.host}/stop:1`, newClient());
      assert.equal((await store.resolve(`${registry.host}/stop:1`)).manifestDigest, image.manifestDigest);
      const ranges = registry.served.ranges.get(layer.digest)!;
      assert.equal(ranges.at(-1), `bytes=${fetchedBefore}-`, 'asked for the rest only');
      assert.equal(
        registry.served.bytes.get(layer.digest)! - fetchedBefore,
        layer.blob.length - fetchedBefore,
        'fetched only the rest',
      );
      assert.deepEqual(await ingestFiles(), [], 'the kept bytes became the blob');
    });

    test('kept bytes that no longer match (the registry changed the blob under the tag) are discarded, not committed', async () => {
      const image = randomImage('swap:1', 1024);
      registry.addImage('swap', '1', image);
      const layer = image.layers[0]!;
      registry.blobHook = (digest, req, res, body) => {
        if (digest !== layer.digest) return false;
        const forged = Buffer.from(body);
        forged[10] ^= 0xff; // in the part that will be kept
        registry.sendBlob(digest, req, res, forged, 200 * 1024);
        return true;
      };
      await assert.rejects(pull(`${registry.host}/swap:1`, newClient({ attempts: 1 })));
      registry.blobHook = undefined;
      // the kept prefix is wrong: the pull finds out at the end, drops it, fetches once more from 0
      await pull(`${registry.host}/swap:1`, newClient());
      assert.equal(await content.has(layer.digest), true);
      const ranges = registry.served.ranges.get(layer.digest)!;
      assert.deepEqual(ranges, ['bytes=204800-'], 'one resume, then a whole fetch without Range');
    });

    test('manifests are hostile input: size limit, media types, schema 1, ambiguity, digests', async () => {
      const image = randomImage('m:1', 16);
      registry.addImage('m', 'ok', image);
      const c = newClient();
      const put = (tag: string, body: Buffer | string, type: string, headers?: Record<string, string>) =>
        registry.manifests.set(`m ${tag}`, {
          body: Buffer.isBuffer(body) ? body : Buffer.from(body),
          type,
          ...(headers ? { headers } : {}),
        });
      const expect = async (tag: string, error: new (...args: never[]) => Error, message: RegExp) => {
        await assert.rejects(pull(`${registry.host}/m:${tag}`, c), (err: unknown) => {
          assert.ok(err instanceof error, `${tag}: ${String(err)}`);
          assert.match((err as Error).message, message, tag);
          return true;
        });
        await assert.rejects(store.resolve(`${registry.host}/m:${tag}`), NotFoundError);
      };
      put('big', Buffer.alloc(5 * 1024 * 1024, 0x20), OCI_MANIFEST);
      await expect('big', ResourceExhaustedError, /over the limit of 4194304/);
      put(
        'schema1',
        JSON.stringify({ schemaVersion: 1, name: 'm', tag: 'schema1', fsLayers: [] }),
        'application/vnd.docker.distribution.manifest.v1+prettyjws',
      );
      await expect('schema1', FailedPreconditionError, /schema 1/);
      put('schema1-json', JSON.stringify({ schemaVersion: 1, name: 'm', fsLayers: [] }), 'application/json');
      await expect('schema1-json', FailedPreconditionError, /schema 1/);
      put('html', '<html></html>', 'text/html');
      await expect('html', InvalidArgumentError, /of type "text\/html", not an image index or manifest/);
      const manifest = JSON.parse(image.manifest.toString()) as Record<string, unknown>;
      put('lying-type', JSON.stringify(manifest), OCI_INDEX);
      await expect('lying-type', InvalidArgumentError, /mediaType|manifests/);
      put('ambiguous', JSON.stringify({ ...manifest, manifests: [] }), OCI_MANIFEST);
      await expect('ambiguous', InvalidArgumentError, /CVE-2021-41190/);
      put(
        'artifact',
        JSON.stringify({
          ...manifest,
          config: { ...(manifest.config as object), mediaType: 'application/vnd.example+json' },
        }),
        OCI_MANIFEST,
      );
      await expect('artifact', InvalidArgumentError, /not a container image config/);
      put('lying-digest', image.manifest, OCI_MANIFEST, {
        'docker-content-digest': sha256('something else'),
      });
      await expect('lying-digest', InvalidArgumentError, /Docker-Content-Digest/);
      // by digest: the body must hash to it
      registry.manifests.set(`m ${sha256('other')}`, { body: image.manifest, type: OCI_MANIFEST });
      await assert.rejects(pull(`${registry.host}/m@${sha256('other')}`, c), /does not match its digest/);
      // and the good one still pulls
      await pull(`${registry.host}/m:ok`, c);
    });

    test('an index: the linux/amd64 manifest is picked; an index without it is refused naming what it has', async () => {
      const amd = randomImage('amd:1', 16);
      registry.addImage('multi', 'amd', amd);
      const arm = buildImage({
        name: 'arm:1',
        layers: [[{ name: 'arm', data: 'arm\n' }]],
        editConfig: (c) => {
          c.architecture = 'arm64';
        },
      });
      registry.addImage('multi', 'arm', arm);
      const entry = (image: FixtureImage, architecture: string, variant?: string) => ({
        mediaType: OCI_MANIFEST,
        digest: image.manifestDigest,
        size: image.manifest.length,
        platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
      });
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [entry(arm, 'arm64', 'v8'), entry(amd, 'amd64')],
        }),
      );
      registry.manifests.set('multi both', { body: index, type: OCI_INDEX });
      const noAmd = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [entry(arm, 'arm64', 'v8'), { ...entry(arm, 's390x'), digest: arm.manifestDigest }],
        }),
      );
      registry.manifests.set('multi armonly', { body: noAmd, type: OCI_INDEX });
      const c = newClient({ platform: { os: 'linux', architecture: 'amd64' } });
      await pull(`${registry.host}/multi:both`, c);
      assert.equal((await store.resolve(`${registry.host}/multi:both`)).manifestDigest, amd.manifestDigest);
      await assert.rejects(pull(`${registry.host}/multi:armonly`, c), (err: unknown) => {
        assert.ok(err instanceof NotFoundError, String(err));
        assert.match(err.message, /no linux\/amd64 image \(it has linux\/arm64\/v8, linux\/s390x\)/);
        return true;
      });
      // a single manifest of another platform is refused too (its config says so)
      await assert.rejects(
        pull(`${registry.host}/multi:arm`, c),
        /the image is for linux\/arm64, this machine runs linux\/amd64/,
      );
      assert.equal(
        await content.has(arm.layers[0]!.digest),
        false,
        'no layer of the refused image was fetched',
      );
      // an index entry whose manifest is not what the index says
      const lying = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [{ ...entry(amd, 'amd64'), size: amd.manifest.length + 1 }],
        }),
      );
      registry.manifests.set('multi lying', { body: lying, type: OCI_INDEX });
      await assert.rejects(pull(`${registry.host}/multi:lying`, c), /its descriptor says/);
    });

    test('the anonymous token flow of public registries (WWW-Authenticate: Bearer realm, service, scope)', async () => {
      registry.auth = 'bearer';
      const image = randomImage('pub:1', 16);
      registry.addImage('library/pub', '1', image);
      await pull(`${registry.host}/library/pub:1`);
      assert.equal(
        (await store.resolve(`${registry.host}/library/pub:1`)).manifestDigest,
        image.manifestDigest,
      );
      assert.ok(registry.tokenRequests.length >= 1);
      for (const t of registry.tokenRequests) {
        assert.deepEqual(t.scope, ['repository:library/pub:pull']);
        assert.equal(t.authorization, undefined, 'anonymous: no credentials sent');
      }
      // later requests carry the token from the start: one 401 only
      const unauthorized = registry.requests.filter(
        (r) => r.url.startsWith('/v2/') && r.authorization === undefined,
      );
      assert.equal(unauthorized.length, 1, JSON.stringify(registry.requests));
    });

    test('basic auth with the credentials of the client config; none configured is an error saying where to put them', async () => {
      registry.auth = 'basic';
      const image = randomImage('priv:1', 16);
      registry.addImage('priv', '1', image);
      await assert.rejects(pull(`${registry.host}/priv:1`, newClient()), (err: unknown) => {
        assert.ok(err instanceof UnauthenticatedError, String(err));
        assert.match(err.message, /wants a user name and password; add them to the client config/);
        return true;
      });
      await assert.rejects(
        pull(
          `${registry.host}/priv:1`,
          newClient({ config: { hosts: { [registry.host]: { username: 'alice', password: 'wrong' } } } }),
        ),
        UnauthenticatedError,
      );
      await pull(
        `${registry.host}/priv:1`,
        newClient({ config: { hosts: { [registry.host]: { username: 'alice', password: 'pw' } } } }),
      );
      assert.equal((await store.resolve(`${registry.host}/priv:1`)).manifestDigest, image.manifestDigest);
    });

    test('a short name goes to the cluster registry (its HTTP address, /v2/) with the bearer token of the client config', async () => {
      registry.auth = 'static';
      const image = randomImage('web:1', 16);
      registry.addImage('web', '1', image);
      const cluster = { url: `http://${registry.host}`, token: registry.staticToken };
      await pull('web:1', newClient({ config: { cluster } }));
      assert.equal((await store.resolve('web:1')).manifestDigest, image.manifestDigest);
      for (const r of registry.requests)
        assert.equal(r.authorization, `Bearer ${registry.staticToken}`, r.url);
      assert.ok(
        registry.requests.some((r) => r.url === '/v2/web/manifests/1'),
        'repository "web", not library/web',
      );
      await assert.rejects(
        pull('web:1', newClient({ config: { cluster: { ...cluster, token: 'stale' } } })),
        (err: unknown) => {
          assert.ok(err instanceof UnauthenticatedError, String(err));
          assert.match(err.message, /refused the token of the client config/);
          return true;
        },
      );
      await assert.rejects(
        pull('web:2', newClient()),
        /means the cluster registry, and the client config names no cluster/,
      );
    });

    test('a redirect to another origin does not carry the Authorization header', async () => {
      registry.auth = 'static';
      const image = randomImage('redir:1', 16);
      registry.addImage('redir', '1', image);
      const layer = image.layers[0]!;
      const cdn = new FakeRegistry();
      await cdn.start();
      try {
        cdn.blobs.set(layer.digest, layer.blob);
        registry.blobHook = (digest, _req, res) => {
          if (digest !== layer.digest) return false;
          res.writeHead(307, { location: `http://${cdn.host}/v2/cdn/blobs/${digest}` }).end();
          return true;
        };
        await pull(
          'redir:1',
          newClient({ config: { cluster: { url: `http://${registry.host}`, token: registry.staticToken } } }),
        );
        const fetched = cdn.requests.filter((r) => r.url.includes(layer.digest));
        assert.equal(fetched.length, 1);
        assert.equal(fetched[0]!.authorization, undefined, 'no credentials to another origin');
      } finally {
        await cdn.stop();
      }
    });

    test('a token the registry stops taking mid-pull is renewed (the challenge answered again), the layer resumed', async () => {
      registry.auth = 'bearer';
      const image = randomImage('renew:1', 1024);
      registry.addImage('renew', '1', image);
      const layer = image.layers[0]!;
      let refused = false;
      registry.blobHook = (digest, req, res, body) => {
        if (digest !== layer.digest) return false;
        if (!refused && req.headers.range) {
          // the token "expired" between the cut and the resume
          refused = true;
          registry.tokenGeneration++;
          res.writeHead(401, {
            'www-authenticate': `Bearer realm="http://${registry.host}/token",service="fake-registry",scope="repository:renew:pull",error="invalid_token"`,
          });
          res.end();
          return true;
        }
        if (!req.headers.range) {
          registry.sendBlob(digest, req, res, body, 100 * 1024);
          return true;
        }
        return false;
      };
      await pull(`${registry.host}/renew:1`, newClient({ attempts: 3 }));
      assert.equal((await store.resolve(`${registry.host}/renew:1`)).manifestDigest, image.manifestDigest);
      assert.ok(refused);
      assert.ok(registry.tokenRequests.length >= 2, 'a second token');
      const served = registry.served.bytes.get(layer.digest)!;
      assert.equal(served, layer.blob.length, 'the cut part and the rest: nothing fetched twice');
    });

    test('a loopback registry that speaks TLS: plain HTTP is tried first, then HTTPS; its certificate is checked unless marked insecure', async () => {
      const ca = CertificateAuthority.create({ commonName: 'skiff-test-registry-ca' });
      const leaf = ca.issueKeyPair({
        commonName: '127.0.0.1',
        usages: ['server auth'],
        ipAddresses: ['127.0.0.1'],
      });
      const secure = new FakeRegistry();
      await secure.start({
        key: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        cert: leaf.certificate.toString(),
      });
      try {
        const image = randomImage('tls:1', 64);
        secure.addImage('tls', '1', image);
        await assert.rejects(pull(`${secure.host}/tls:1`, newClient()), /certificate/);
        await pull(
          `${secure.host}/tls:1`,
          newClient({ config: { hosts: { [secure.host]: { insecure: true } } } }),
        );
        assert.equal((await store.resolve(`${secure.host}/tls:1`)).manifestDigest, image.manifestDigest);
      } finally {
        await secure.stop();
      }
    });
  });
