/**
 * The registry client against Debian's docker-registry (Distribution 2.8, the reference
 * implementation), started here on a free loopback port: anonymous, behind htpasswd (basic)
 * auth, and behind the token flow of public registries (JWTs from a token server run here,
 * verified by Distribution). skopeo, also Debian's, is the independent second client: what
 * skiff pushes it reads with the same digests, and what it pushes skiff pulls. Pulled images
 * are unpacked, so every layer's DiffID is checked as well (gzip and zstd).
 *
 * Needs docker-registry, skopeo and htpasswd: a missing one fails with its apt-get line.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PermissionDeniedError, UnauthenticatedError } from '../../proto/errors.js';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { RegistryClient, type RegistryClientOptions } from '../../proto/oci/registry-client.js';
import { ImageStore } from '../../node-agent/runtime/images/image-store.js';
import { CopySnapshotter } from '../../node-agent/runtime/snapshots/copy-snapshotter.js';
import {
  busyboxImage,
  multiLayerImage,
  ociLayout,
  writeArchiveDir,
  type FixtureImage,
} from '../fixtures/images.js';
import { runSkopeo, startDockerRegistry, type TestDockerRegistry } from '../harness/docker-registry.js';

interface Side {
  content: LocalContentStore;
  images: ImageStore;
}

describe('registry client against docker-registry (Distribution 2.8) and skopeo', () => {
  let base: string;
  let n = 0;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'these tests unpack layers (file owners) and must run as root');
    base = await mkdtemp(join(tmpdir(), 'skiff-registry-client-'));
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  const side = async (): Promise<Side> => {
    const dir = join(base, `side-${n++}`);
    const content = await LocalContentStore.open(join(dir, 'content'));
    const images = await ImageStore.open(join(dir, 'images'), {
      content,
      snapshotter: await CopySnapshotter.open(join(dir, 'snapshots')),
    });
    return { content, images };
  };

  /** A store holding `image` (imported from an OCI layout), as a local build would leave it. */
  const holding = async (...images: FixtureImage[]): Promise<Side> => {
    const s = await side();
    const layout = join(base, `layout-${n++}`);
    await writeArchiveDir(layout, ociLayout(images));
    await s.images.import(layout);
    return s;
  };

  const pullInto = (s: Side, client: RegistryClient, ref: string) =>
    s.images.pull(ref, {
      pull: async (r, into) => {
        await client.pull(r, into);
      },
    });

  const pushFrom = async (s: Side, client: RegistryClient, local: string, ref: string) => {
    const image = await s.images.resolve(local);
    const info = await s.content.info(image.manifestDigest);
    return client.push(ref, {
      content: s.content,
      manifest: { mediaType: image.manifest.mediaType, digest: image.manifestDigest, size: info.size },
    });
  };

  const withRegistry = async (
    options: Parameters<typeof startDockerRegistry>[0],
    fn: (registry: TestDockerRegistry) => Promise<void>,
  ) => {
    const registry = await startDockerRegistry(options);
    try {
      await fn(registry);
    } finally {
      await registry.stop();
    }
  };

  const client = (options: RegistryClientOptions = {}) =>
    new RegistryClient({ retryDelayMs: 10, ...options });

  test('push (gzip and zstd layers) then skopeo inspect shows the same digests; pull back and unpack', async () => {
    await withRegistry({}, async (registry) => {
      const gz = multiLayerImage('multi:1');
      const zst = busyboxImage('bbz:1', 'zstd');
      const local = await holding(gz, zst);
      const c = client();
      try {
        for (const [image, ref] of [
          [gz, `${registry.host}/skiff/multi:1`],
          [zst, `${registry.host}/skiff/bbz:1`],
        ] as const) {
          const pushed = await pushFrom(local, c, image.name, ref);
          assert.equal(pushed.manifest.digest, image.manifestDigest);
          const inspected = JSON.parse(
            (await runSkopeo(['inspect', '--tls-verify=false', `docker://${ref}`])).stdout,
          ) as { Digest: string; Layers: string[] };
          assert.equal(inspected.Digest, image.manifestDigest, `skopeo sees ${ref} as skiff pushed it`);
          assert.deepEqual(
            inspected.Layers,
            image.layers.map((l) => l.digest),
          );
          const raw = (await runSkopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout;
          assert.equal(raw, image.manifest.toString(), 'the registry holds the exact bytes');
          assert.deepEqual(
            (JSON.parse(raw) as { layers: { mediaType: string }[] }).layers.map((l) => l.mediaType),
            image.layers.map((l) => l.mediaType),
          );
          // again: every blob is already there
          const again = await pushFrom(local, c, image.name, ref);
          assert.ok(
            again.blobs.every((b) => b.existed),
            'nothing sent twice',
          );

          const other = await side();
          await pullInto(other, c, ref);
          const resolved = await other.images.resolve(ref);
          assert.equal(resolved.manifestDigest, image.manifestDigest);
          // unpacking checks every layer's digest and DiffID, and the zstd decoder's strictness
          const unpacked = await other.images.unpack(ref);
          assert.equal(unpacked.layersUnpacked, image.layers.length);
        }
      } finally {
        c.close();
      }
    });
  });

  test('an image skopeo pushed (OCI and Docker schema 2 manifests) is pulled with the same digest', async () => {
    await withRegistry({}, async (registry) => {
      const image = busyboxImage('busybox:1');
      const layout = join(base, `layout-${n++}`);
      await writeArchiveDir(layout, ociLayout([image]));
      await runSkopeo([
        'copy',
        '--dest-tls-verify=false',
        `oci:${layout}:1`,
        `docker://${registry.host}/from-skopeo/oci:1`,
      ]);
      await runSkopeo([
        'copy',
        '--dest-tls-verify=false',
        '--format',
        'v2s2',
        `oci:${layout}:1`,
        `docker://${registry.host}/from-skopeo/docker:1`,
      ]);
      const c = client();
      try {
        const s = await side();
        await pullInto(s, c, `${registry.host}/from-skopeo/oci:1`);
        assert.equal(
          (await s.images.resolve(`${registry.host}/from-skopeo/oci:1`)).manifestDigest,
          image.manifestDigest,
        );
        await pullInto(s, c, `${registry.host}/from-skopeo/docker:1`);
        const docker = await s.images.resolve(`${registry.host}/from-skopeo/docker:1`);
        assert.equal(docker.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
        const raw = (
          await runSkopeo([
            'inspect',
            '--raw',
            '--tls-verify=false',
            `docker://${registry.host}/from-skopeo/docker:1`,
          ])
        ).stdout;
        assert.equal(
          (await s.content.readAll(docker.manifestDigest, 1 << 20)).toString(),
          raw,
          'the exact bytes kept',
        );
        assert.equal(docker.layers[0]!.digest, image.layers[0]!.digest, 'the layer is shared, fetched once');
        await s.images.unpack(`${registry.host}/from-skopeo/docker:1`);
        // by digest
        const byDigest = `${registry.host}/from-skopeo/oci@${image.manifestDigest}`;
        await pullInto(s, c, byDigest);
        assert.equal((await s.images.resolve(byDigest)).manifestDigest, image.manifestDigest);
        // skopeo copies what skiff pushed into an OCI layout: same manifest
        const mine = await holding(busyboxImage('mine:1', 'zstd'));
        await pushFrom(mine, c, 'mine:1', `${registry.host}/skiff/mine:1`);
        const out = join(base, `out-${n++}`);
        await runSkopeo([
          'copy',
          '--src-tls-verify=false',
          `docker://${registry.host}/skiff/mine:1`,
          `oci:${out}:mine`,
        ]);
        const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
          manifests: { digest: string }[];
        };
        assert.equal(index.manifests[0]!.digest, busyboxImage('mine:1', 'zstd').manifestDigest);
      } finally {
        c.close();
      }
    });
  });

  test('htpasswd (basic auth): refused without the credentials of the client config, works with them', async () => {
    await withRegistry({ htpasswd: { alice: 'wonderland' } }, async (registry) => {
      const local = await holding(busyboxImage('busybox:1'));
      const ref = `${registry.host}/private/busybox:1`;
      const anonymous = client();
      const wrong = client({
        config: { hosts: { [registry.host]: { username: 'alice', password: 'nope' } } },
      });
      const alice = client({
        config: { hosts: { [registry.host]: { username: 'alice', password: 'wonderland' } } },
      });
      try {
        await assert.rejects(pushFrom(local, anonymous, 'busybox:1', ref), (err: unknown) => {
          assert.ok(err instanceof UnauthenticatedError, String(err));
          assert.match(err.message, /wants a user name and password; add them to the client config/);
          return true;
        });
        await assert.rejects(pushFrom(local, wrong, 'busybox:1', ref), UnauthenticatedError);
        const pushed = await pushFrom(local, alice, 'busybox:1', ref);
        const inspected = JSON.parse(
          (
            await runSkopeo([
              'inspect',
              '--tls-verify=false',
              '--creds',
              'alice:wonderland',
              `docker://${ref}`,
            ])
          ).stdout,
        ) as { Digest: string };
        assert.equal(inspected.Digest, pushed.manifest.digest);
        const s = await side();
        await assert.rejects(pullInto(s, anonymous, ref), UnauthenticatedError);
        await pullInto(s, alice, ref);
        assert.equal((await s.images.resolve(ref)).manifestDigest, pushed.manifest.digest);
      } finally {
        anonymous.close();
        wrong.close();
        alice.close();
      }
    });
  });

  test('the token flow (Bearer realm, service, scope): anonymous pull as public registries allow; push needs a user', async () => {
    await withRegistry({ token: { users: { bob: 'builder' }, anonymousPull: true } }, async (registry) => {
      const local = await holding(multiLayerImage('multi:1'));
      const ref = `${registry.host}/public/multi:1`;
      const anonymous = client();
      const bob = client({
        config: { hosts: { [registry.host]: { username: 'bob', password: 'builder' } } },
      });
      try {
        await assert.rejects(pushFrom(local, anonymous, 'multi:1', ref), (err: unknown) => {
          // the token server grants an anonymous caller pull only; Distribution then refuses
          assert.ok(err instanceof UnauthenticatedError || err instanceof PermissionDeniedError, String(err));
          return true;
        });
        await pushFrom(local, bob, 'multi:1', ref);
        assert.ok(
          registry.tokenRequests.some(
            (t) => t.user === 'bob' && t.scopes.includes('repository:public/multi:pull,push'),
          ),
          JSON.stringify(registry.tokenRequests),
        );
        const before = registry.tokenRequests.length;
        const s = await side();
        await pullInto(s, anonymous, ref);
        await s.images.unpack(ref);
        const pulls = registry.tokenRequests.slice(before);
        assert.ok(pulls.length >= 1);
        for (const t of pulls) {
          assert.equal(t.user, undefined, 'the pull asked anonymously');
          assert.deepEqual(t.scopes, ['repository:public/multi:pull']);
        }
        assert.equal(pulls.length, 1, 'one token for the whole pull');
      } finally {
        anonymous.close();
        bob.close();
      }
    });
  });

  test('two pulls of one image at once into one store: both succeed, each blob stored once', async () => {
    await withRegistry({}, async (registry) => {
      const local = await holding(multiLayerImage('multi:1'));
      const ref = `${registry.host}/shared/multi:1`;
      const c = client();
      try {
        await pushFrom(local, c, 'multi:1', ref);
        const s = await side();
        const a = client();
        const b = client();
        await Promise.all([pullInto(s, a, ref), pullInto(s, b, ref)]);
        a.close();
        b.close();
        const image = await s.images.resolve(ref);
        for (const l of image.layers) assert.ok(await s.content.has(l.digest));
        await s.images.unpack(ref);
      } finally {
        c.close();
      }
    });
  });
});
