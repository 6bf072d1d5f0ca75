import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { sha256Digest } from './digest.js';
import {
  chainIds,
  parseConfig,
  parseDescriptor,
  parseIndex,
  parseManifest,
  parsePushedManifest,
} from './manifests.js';

const D = (s: string) => sha256Digest(s);
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('l'), size: 3 };
const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D('c'), size: 2 };
const manifest = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config,
  layers: [layer],
};
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

function refuses(fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof InvalidArgumentError && why.test(err.message));
}

test('manifests: strict checks with the field named', () => {
  assert.equal(parseManifest(json(manifest), 'm').layers.length, 1);
  refuses(() => parseManifest(json({ ...manifest, manifests: [] }), 'm'), /CVE-2021-41190/);
  refuses(() => parseManifest(json({ ...manifest, schemaVersion: 1 }), 'm'), /schemaVersion must be 2/);
  refuses(
    () => parseManifest(json({ ...manifest, mediaType: 'text/plain' }), 'm'),
    /mediaType "text\/plain" is not one of/,
  );
  refuses(
    () => parseManifest(json(manifest), 'm', 'application/vnd.docker.distribution.manifest.v2+json'),
    /contradicts the descriptor/,
  );
  refuses(
    () =>
      parseManifest(json({ ...manifest, config: { ...config, mediaType: 'application/x-artifact' } }), 'm'),
    /not a container image config/,
  );
  refuses(
    () => parseManifest(json({ ...manifest, layers: [{ ...layer, mediaType: 'application/x-foo' }] }), 'm'),
    /layers\[0\]\.mediaType/,
  );
  refuses(
    () => parseManifest(json({ ...manifest, layers: [{ ...layer, size: -1 }] }), 'm'),
    /layers\[0\]\.size must be a non-negative integer/,
  );
  refuses(
    () => parseManifest(json({ ...manifest, layers: [{ ...layer, digest: 'sha256:AB' }] }), 'm'),
    /layers\[0\]\.digest/,
  );
  refuses(() => parseManifest(Buffer.from('{'), 'm'), /not valid JSON/);
});

test('indexes: CVE-2021-41190 both ways, descriptors checked', () => {
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ ...config, mediaType: manifest.mediaType }],
  };
  assert.equal(parseIndex(json(index), 'i').manifests.length, 1);
  refuses(() => parseIndex(json({ ...index, layers: [] }), 'i'), /CVE-2021-41190/);
  refuses(() => parseIndex(json({ ...index, config }), 'i'), /CVE-2021-41190/);
  refuses(() => parseIndex(json({ ...index, manifests: {} }), 'i'), /manifests must be an array/);
  refuses(() => parseDescriptor({ mediaType: 'x', digest: D('x'), size: 1.5 }, 'd', 'f'), /f\.size/);
});

test('configs: rootfs type, diff_ids, os and architecture', () => {
  const c = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [D('a')] } };
  assert.deepEqual(parseConfig(json(c), 'c').diffIds, [D('a')]);
  refuses(
    () => parseConfig(json({ ...c, rootfs: { type: 'other', diff_ids: [] } }), 'c'),
    /rootfs\.type must be "layers"/,
  );
  refuses(
    () => parseConfig(json({ ...c, rootfs: { type: 'layers', diff_ids: ['x'] } }), 'c'),
    /rootfs\.diff_ids\[0\]/,
  );
  refuses(() => parseConfig(json({ ...c, os: 1 }), 'c'), /os must be a string/);
});

test('chain IDs follow the OCI definition', () => {
  const [a, b, c] = [D('a'), D('b'), D('c')];
  assert.deepEqual(chainIds([a, b, c], sha256Digest), [
    a,
    sha256Digest(`${a} ${b}`),
    sha256Digest(`${sha256Digest(`${a} ${b}`)} ${c}`),
  ]);
});

test('pushed manifests: any of the four types, artifacts included; the type from body, header or fields', () => {
  const oci = parsePushedManifest(json(manifest), 'application/vnd.oci.image.manifest.v1+json', 'm');
  assert.equal(oci.kind, 'manifest');
  assert.deepEqual(
    oci.blobs.map((b) => b.digest),
    [config.digest, layer.digest],
  );
  // an artifact: config and layer types skiff cannot run are stored all the same
  const artifact = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/vnd.example.sbom',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: D('{}'), size: 2 },
    layers: [{ mediaType: 'application/spdx+json', digest: D('s'), size: 1 }],
    subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('m'), size: 9 },
    annotations: { a: 'b' },
  };
  const parsed = parsePushedManifest(json(artifact), undefined, 'a');
  assert.equal(parsed.artifactType, 'application/vnd.example.sbom');
  assert.equal(parsed.subject?.digest, D('m'));
  assert.deepEqual(parsed.annotations, { a: 'b' });
  assert.equal(parsed.configMediaType, 'application/vnd.oci.empty.v1+json');
  // no mediaType in the body: the Content-Type decides, or the fields when it says nothing
  const bare = { schemaVersion: 2, config, layers: [layer] };
  assert.equal(
    parsePushedManifest(json(bare), 'application/vnd.docker.distribution.manifest.v2+json', 'm').mediaType,
    'application/vnd.docker.distribution.manifest.v2+json',
  );
  assert.equal(
    parsePushedManifest(json(bare), 'application/json; charset=utf-8', 'm').mediaType,
    'application/vnd.oci.image.manifest.v1+json',
  );
  const list = {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
    manifests: [{ ...config, mediaType: 'application/vnd.docker.distribution.manifest.v2+json' }],
  };
  const index = parsePushedManifest(json(list), undefined, 'l');
  assert.equal(index.kind, 'index');
  assert.equal(index.manifests.length, 1);
  assert.equal(
    parsePushedManifest(json({ schemaVersion: 2, manifests: [] }), undefined, 'i').mediaType,
    'application/vnd.oci.image.index.v1+json',
  );
});

test('pushed manifests: schema 1, unknown types, contradictions and ambiguity are refused', () => {
  const v1 = { schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [], signatures: [] };
  refuses(
    () => parsePushedManifest(json(v1), 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'm'),
    /schema 1 manifests are not supported/,
  );
  refuses(() => parsePushedManifest(json(v1), undefined, 'm'), /schemaVersion is 1: Docker schema 1/);
  refuses(
    () => parsePushedManifest(json({ ...manifest, mediaType: 'application/x-unknown' }), undefined, 'm'),
    /is not an image manifest or index type/,
  );
  refuses(
    () => parsePushedManifest(json({ schemaVersion: 2, config, layers: [] }), 'application/x-unknown', 'm'),
    /Content-Type application\/x-unknown/,
  );
  refuses(
    () => parsePushedManifest(json(manifest), 'application/vnd.docker.distribution.manifest.v2+json', 'm'),
    /contradicts the Content-Type/,
  );
  refuses(() => parsePushedManifest(json({ ...manifest, manifests: [] }), undefined, 'm'), /CVE-2021-41190/);
  refuses(
    () =>
      parsePushedManifest(
        json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', layers: [] }),
        undefined,
        'm',
      ),
    /is an index .* with layers or config/,
  );
  refuses(
    () => parsePushedManifest(json({ ...manifest, layers: 'no' }), undefined, 'm'),
    /layers must be an array/,
  );
  refuses(
    () => parsePushedManifest(json({ ...manifest, config: { ...config, size: 'x' } }), undefined, 'm'),
    /config.size/,
  );
  refuses(
    () => parsePushedManifest(json({ ...manifest, subject: { digest: 'sha256:x' } }), undefined, 'm'),
    /subject.mediaType/,
  );
  refuses(
    () => parsePushedManifest(json({ ...manifest, artifactType: 7 }), undefined, 'm'),
    /artifactType must be a string/,
  );
  refuses(() => parsePushedManifest(json({ schemaVersion: 2 }), undefined, 'm'), /mediaType is missing/);
  refuses(() => parsePushedManifest(Buffer.from('[]'), undefined, 'm'), /not a JSON object/);
});
