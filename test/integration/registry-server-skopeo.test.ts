/**
 * Clients nobody here wrote, against the registry on a loopback port: Debian's skopeo pushes an
 * OCI archive in (Basic credentials: any user name, the token as password), inspects it, lists
 * its tags, copies it between repositories and back out (same manifest digest, same blobs) and
 * deletes it; curl fetches blobs with Range. A missing tool fails the test naming its package.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import {
  archiveTar,
  buildImage,
  busyboxLayerEntries,
  multiLayerImage,
  ociLayout,
  type FixtureImage,
} from '../fixtures/images.js';
import { MediaType } from '../../proto/oci/media-types.js';
import { requireTool, startTestRegistry, type TestRegistry } from './registry-server-harness.js';

const run = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function tool(command: string, args: string[]): Promise<Result> {
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

describe('registry with skopeo and curl', () => {
  let r: TestRegistry;
  let work: string;
  let image: FixtureImage;
  let archive: string;

  before(async () => {
    requireTool('skopeo', 'skopeo');
    requireTool('curl', 'curl');
    // pages of two: list-tags must follow the Link header to see every tag
    r = await startTestRegistry({ maxPage: 2 });
    work = await mkdtemp(join(tmpdir(), 'skiff-registry-skopeo-'));
    image = multiLayerImage('multi:1');
    archive = join(work, 'multi.tar');
    await writeFile(archive, archiveTar(ociLayout([image])));
  });
  after(async () => {
    await r?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const ref = (path: string): string => `docker://${r.address}/${path}`;
  const dest = (token: string): string[] => ['--dest-creds', `any:${token}`, '--dest-tls-verify=false'];
  const src = (token: string): string[] => ['--src-creds', `any:${token}`, '--src-tls-verify=false'];
  const creds = (token: string): string[] => ['--creds', `any:${token}`, '--tls-verify=false'];
  const skopeo = (args: string[]): Promise<string> =>
    ok('skopeo', ['--registries.d', work, '--override-os', 'linux', '--override-arch', 'amd64', ...args]);
  const skopeoResult = (args: string[]): Promise<Result> => tool('skopeo', ['--registries.d', work, ...args]);

  test('skopeo copy pushes an OCI archive and copies it back out with the same manifest digest and blobs', async () => {
    await skopeo(['copy', ...dest(r.tokens.edit), `oci-archive:${archive}`, ref('test/multi:1')]);
    const raw = await skopeo(['inspect', '--raw', ...creds(r.tokens.view), ref('test/multi:1')]);
    assert.equal(raw, image.manifest.toString(), 'the manifest is served byte for byte');
    const inspected = JSON.parse(await skopeo(['inspect', ...creds(r.tokens.view), ref('test/multi:1')])) as {
      Digest: string;
      Layers: string[];
      RepoTags: string[];
    };
    assert.equal(inspected.Digest, image.manifestDigest);
    assert.deepEqual(
      inspected.Layers,
      image.layers.map((l) => l.digest),
    );
    assert.deepEqual(inspected.RepoTags, ['1']);

    const out = join(work, 'out');
    await skopeo(['copy', ...src(r.tokens.view), ref('test/multi:1'), `oci:${out}:pulled`]);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
    };
    assert.equal(index.manifests[0]!.digest, image.manifestDigest);
    const blob = (digest: string) => readFile(join(out, 'blobs', 'sha256', digest.slice('sha256:'.length)));
    assert.ok((await blob(image.manifestDigest)).equals(image.manifest));
    assert.ok((await blob(image.configDigest)).equals(image.config));
    for (const layer of image.layers) assert.ok((await blob(layer.digest)).equals(layer.blob), layer.digest);
  });

  test('copy between repositories of the registry, and as Docker schema 2', async () => {
    await skopeo([
      'copy',
      ...src(r.tokens.view),
      ...dest(r.tokens.admin),
      ref('test/multi:1'),
      ref('copies/multi:1'),
    ]);
    const copied = JSON.parse(await skopeo(['inspect', ...creds(r.tokens.view), ref('copies/multi:1')])) as {
      Digest: string;
    };
    assert.equal(copied.Digest, image.manifestDigest);

    await skopeo([
      'copy',
      '--format',
      'v2s2',
      ...dest(r.tokens.edit),
      `oci-archive:${archive}`,
      ref('test/docker:1'),
    ]);
    const raw = JSON.parse(
      await skopeo(['inspect', '--raw', ...creds(r.tokens.view), ref('test/docker:1')]),
    ) as {
      mediaType: string;
    };
    assert.equal(raw.mediaType, MediaType.dockerManifest);
    const back = join(work, 'docker-out');
    await skopeo(['copy', ...src(r.tokens.view), ref('test/docker:1'), `dir:${back}`]);
    const manifest = await readFile(join(back, 'manifest.json'), 'utf8');
    assert.equal(manifest, await skopeo(['inspect', '--raw', ...creds(r.tokens.view), ref('test/docker:1')]));
  });

  test('list-tags (following Link pages), delete, and refusals for view and bad tokens', async () => {
    const small = buildImage({ name: 'small:1', layers: [busyboxLayerEntries()] });
    const smallArchive = join(work, 'small.tar');
    await writeFile(smallArchive, archiveTar(ociLayout([small])));
    for (const tag of ['a', 'b', 'c', 'd', 'e']) {
      await skopeo(['copy', ...dest(r.tokens.edit), `oci-archive:${smallArchive}`, ref(`tags/small:${tag}`)]);
    }
    const tags = JSON.parse(await skopeo(['list-tags', ...creds(r.tokens.view), ref('tags/small')])) as {
      Tags: string[];
    };
    assert.deepEqual(tags.Tags, ['a', 'b', 'c', 'd', 'e']);

    const denied = await skopeoResult([
      'copy',
      ...dest(r.tokens.view),
      `oci-archive:${smallArchive}`,
      ref('tags/small:f'),
    ]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /denied|DENIED|403/i);
    const bad = await skopeoResult(['inspect', ...creds('not-a-token'), ref('tags/small:a')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unauthorized|authentication required|401/i);

    // skopeo delete resolves the tag and deletes the manifest by digest: every tag of it goes
    await skopeo(['delete', ...creds(r.tokens.edit), ref('tags/small:a')]);
    const gone = await skopeoResult(['inspect', ...creds(r.tokens.view), ref('tags/small:b')]);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /manifest unknown|not found/i);
    const after = JSON.parse(await skopeo(['list-tags', ...creds(r.tokens.view), ref('tags/small')])) as {
      Tags: string[];
    };
    assert.deepEqual(after.Tags, []);
  });

  test('curl fetches blobs whole and by Range, with Bearer or Basic credentials', async () => {
    const layer = image.layers[0]!;
    const url = `${r.url}/v2/test/multi/blobs/${layer.digest}`;
    const whole = join(work, 'whole');
    await ok('curl', ['-sSf', '-H', `Authorization: Bearer ${r.tokens.view}`, '-o', whole, url]);
    assert.ok((await readFile(whole)).equals(layer.blob));
    const part = join(work, 'part');
    await ok('curl', ['-sSf', '-u', `any:${r.tokens.view}`, '-r', '100-1099', '-o', part, url]);
    assert.ok((await readFile(part)).equals(layer.blob.subarray(100, 1100)));
    const tail = join(work, 'tail');
    await ok('curl', ['-sSf', '-u', `any:${r.tokens.view}`, '-r', '-10', '-o', tail, url]);
    assert.ok((await readFile(tail)).equals(layer.blob.subarray(layer.blob.length - 10)));
    // resuming a download where it stopped: curl -C
    const resumed = join(work, 'resumed');
    await writeFile(resumed, layer.blob.subarray(0, 5000));
    await ok('curl', ['-sSf', '-u', `any:${r.tokens.view}`, '-C', '-', '-o', resumed, url]);
    assert.ok((await readFile(resumed)).equals(layer.blob));
    const headers = await ok('curl', ['-sSI', '-u', `any:${r.tokens.view}`, url]);
    assert.match(headers, new RegExp(`docker-content-digest: ${layer.digest}`, 'i'));
    assert.match(headers, new RegExp(`content-length: ${layer.blob.length}`, 'i'));
    const denied = await ok('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', url]);
    assert.equal(denied, '401');
  });
});
