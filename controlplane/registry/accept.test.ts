import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MediaType } from '../../proto/oci/media-types.js';
import { acceptedTypes, isAccepted, pickFromIndex, wantsManifestOnly } from './accept.js';

test('Accept: absent or wildcard takes anything; q=0 and parameters are read', () => {
  assert.equal(acceptedTypes(undefined), undefined);
  assert.equal(acceptedTypes('*/*'), undefined);
  assert.equal(acceptedTypes(`${MediaType.ociManifest}, application/*;q=0.5`), undefined);
  const docker = acceptedTypes([`${MediaType.dockerManifest}; q=0.9`, MediaType.dockerManifestList]);
  assert.deepEqual([...docker!], [MediaType.dockerManifest, MediaType.dockerManifestList]);
  const none = acceptedTypes(`${MediaType.ociIndex};q=0, ${MediaType.ociManifest}`);
  assert.equal(isAccepted(none, MediaType.ociIndex), false);
  assert.equal(isAccepted(none, MediaType.ociManifest), true);
  assert.equal(wantsManifestOnly(none), true);
  assert.equal(wantsManifestOnly(acceptedTypes(`${MediaType.ociIndex}, ${MediaType.ociManifest}`)), false);
  assert.equal(wantsManifestOnly(undefined), false);
});

test('an index for a client that takes no index: linux/amd64 of an accepted type, or the only one', () => {
  const arm = {
    mediaType: MediaType.ociManifest,
    digest: 'a',
    platform: { os: 'linux', architecture: 'arm64' },
  };
  const amd = {
    mediaType: MediaType.ociManifest,
    digest: 'b',
    platform: { os: 'linux', architecture: 'amd64' },
  };
  const accepted = acceptedTypes(MediaType.ociManifest);
  assert.equal(pickFromIndex([arm, amd], accepted), amd);
  assert.equal(pickFromIndex([arm], accepted), arm);
  assert.equal(pickFromIndex([arm, { ...arm, digest: 'c' }], accepted), undefined);
  assert.equal(pickFromIndex([amd], acceptedTypes(MediaType.dockerManifest)), undefined);
});
