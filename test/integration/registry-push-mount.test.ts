/**
 * Cross-repository mount in the registry client's push, against skiff's own registry and against
 * Debian's docker-registry (Distribution 2.8, without auth and behind the token flow), each behind
 * a counting TCP relay on loopback: the
 * bytes on the wire are counted, not taken from the client's word. An image pushed as team/a:1
 * (or pulled from there) and then pushed as team/b:1 sends no layer bytes; a stale record of where
 * a blob is falls back to an ordinary upload.
 *
 * Needs docker-registry.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import type { Descriptor } from '../../proto/oci/manifests.js';
import { RegistryClient, type RegistryHostSettings } from '../../proto/oci/registry-client.js';
import { buildImage, busyboxLayerEntries, type FixtureImage } from '../fixtures/images.js';
import { startCountingProxy, type CountingProxy } from '../harness/counting-proxy.js';
import { startDockerRegistry, type TestDockerRegistry } from '../harness/docker-registry.js';
import { startTestRegistry, type TestRegistry } from './registry-server-harness.js';

const image: FixtureImage = buildImage({
  name: 'team/app:1',
  layers: [
    busyboxLayerEntries(),
    [{ name: 'big-1', data: randomBytes(3 << 20) }],
    [{ name: 'big-2', data: randomBytes(2 << 20) }],
  ],
  compression: 'none',
});
const layerBytes = image.layers.reduce((s, l) => s + l.blob.length, 0);
const manifest: Descriptor = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: image.manifestDigest,
  size: image.manifest.length,
};

interface Target {
  name: string;
  start(): Promise<{
    address: string;
    settings: RegistryHostSettings;
    /** The scopes of each token asked for, where the registry uses the token flow. */
    tokenScopes?: () => string[][];
    stop(): Promise<void>;
  }>;
}

const targets: Target[] = [
  {
    name: "skiff's registry",
    async start() {
      const r: TestRegistry = await startTestRegistry();
      return { address: r.address, settings: { token: r.tokens.edit }, stop: () => r.close() };
    },
  },
  {
    name: "Debian's docker-registry (Distribution 2.8)",
    async start() {
      const r: TestDockerRegistry = await startDockerRegistry();
      return { address: r.host, settings: {}, stop: () => r.stop() };
    },
  },
  {
    // a token scoped to the repository pushed to does not reach the one mounted from: the
    // registry's 401 asks for both, and the client gets a token for both
    name: 'docker-registry behind the token flow',
    async start() {
      const r: TestDockerRegistry = await startDockerRegistry({
        token: { users: { bob: 'builder' }, anonymousPull: false },
      });
      return {
        address: r.host,
        settings: { username: 'bob', password: 'builder' },
        tokenScopes: () => r.tokenRequests.map((t) => t.scopes),
        stop: () => r.stop(),
      };
    },
  },
];

for (const target of targets) {
  describe(`push mounts blobs another repository holds: ${target.name}`, { timeout: 120_000 }, () => {
    let work: string;
    let registry: Awaited<ReturnType<Target['start']>>;
    let proxy: CountingProxy;
    let n = 0;

    const store = async (): Promise<LocalContentStore> => LocalContentStore.open(join(work, `store-${n++}`));
    const holding = async (): Promise<LocalContentStore> => {
      const content = await store();
      for (const blob of [image.config, ...image.layers.map((l) => l.blob), image.manifest])
        await content.ingest(
          (async function* () {
            yield blob;
          })(),
        );
      return content;
    };
    const client = () =>
      new RegistryClient({ config: { hosts: { [proxy.host]: registry.settings } }, workers: 0 });
    const push = async (content: LocalContentStore, ref: string) => {
      const c = client();
      try {
        proxy.reset();
        const result = await c.push(`${proxy.host}/${ref}`, { content, manifest });
        return { result, wire: proxy.sent };
      } finally {
        c.close();
      }
    };
    const pullInto = async (content: LocalContentStore, ref: string) => {
      const c = client();
      try {
        return await c.pull(`${proxy.host}/${ref}`, {
          content,
          hold: async () => undefined,
          tag: async () => undefined,
        });
      } finally {
        c.close();
      }
    };

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'skiff-push-mount-'));
      registry = await target.start();
      proxy = await startCountingProxy(registry.address);
    });
    after(async () => {
      await proxy?.close();
      await registry?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    test('team/a:1 then the same image as team/b:1: no layer bytes the second time', async () => {
      const content = await holding();
      const first = await push(content, 'team/a:1');
      assert.ok(first.wire > layerBytes, `the first push sends the layers (${first.wire} bytes)`);
      assert.ok(first.result.blobs.every((b) => !b.existed && b.mountedFrom === undefined));

      const second = await push(content, 'team/b:1');
      for (const b of second.result.blobs) assert.equal(b.mountedFrom, 'team/a', `${b.digest} mounted`);
      assert.equal(second.result.bytesSent, image.manifest.length, 'only the manifest is sent');
      if (registry.tokenScopes) {
        assert.ok(
          registry
            .tokenScopes()
            .some(
              (s) =>
                s.includes('repository:team/a:pull') && s.some((x) => x.startsWith('repository:team/b:')),
            ),
          `a token for both repositories was asked for: ${JSON.stringify(registry.tokenScopes())}`,
        );
      }
      assert.ok(
        second.wire < 64 * 1024,
        `requests only, no blob bytes: ${second.wire} bytes on the wire, the layers are ${layerBytes}`,
      );

      // team/b:1 is whole: a pull gets every byte back
      const back = await store();
      const pulled = await pullInto(back, 'team/b:1');
      assert.equal(pulled.manifest.digest, image.manifestDigest);
      for (const l of image.layers) assert.deepEqual(await back.readAll(l.digest, 16 << 20), l.blob);
    });

    test('an image pulled from team/a pushed as team/c mounts from team/a', async () => {
      const content = await store();
      await pullInto(content, 'team/a:1');
      const pushed = await push(content, 'team/c:1');
      for (const b of pushed.result.blobs) assert.equal(b.mountedFrom, 'team/a');
      assert.ok(pushed.wire < 64 * 1024, `${pushed.wire} bytes on the wire`);
    });

    test('a stale record (the other repository lacks the blob) falls back to an upload', async () => {
      const content = await holding();
      for (const blob of [image.configDigest, ...image.layers.map((l) => l.digest)]) {
        await content.setLabels(blob, {
          [`containerd.io/distribution.source.${proxy.host}`]: 'team/never-pushed',
        });
      }
      const pushed = await push(content, 'team/d:1');
      assert.ok(pushed.result.blobs.every((b) => b.mountedFrom === undefined && !b.existed));
      assert.ok(pushed.wire > layerBytes, `uploaded as usual (${pushed.wire} bytes)`);
      const back = await store();
      const pulled = await pullInto(back, 'team/d:1');
      assert.equal(pulled.manifest.digest, image.manifestDigest);
    });
  });
}
