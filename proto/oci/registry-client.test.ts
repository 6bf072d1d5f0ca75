/**
 * The registry client's pure parts, without a network: which registry a reference names and
 * how it may be reached, WWW-Authenticate parsing, platform selection from an index; and what
 * loading the client costs a process.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { NotFoundError } from '../errors.js';
import { parseChallenges } from './registry-auth.js';
import { locateReference } from './registry-hosts.js';
import { selectPlatform } from './registry-manifest.js';
import { layerStaysOnThisThread } from './registry-pull.js';

test('plain HTTP only for loopback, a registry the config marks insecure, or the cluster URL an agent was given', () => {
  assert.deepEqual(
    locateReference('registry.example:5000/app:1').endpoints.map((u) => u.protocol),
    ['https:'],
  );
  assert.deepEqual(
    locateReference('registry.example:5000/app:1', {
      hosts: { 'registry.example:5000': { insecure: true } },
    }).endpoints.map((u) => u.protocol),
    ['https:', 'http:'],
  );
  assert.deepEqual(
    locateReference('127.0.0.1:5000/app:1').endpoints.map((u) => u.protocol),
    ['http:', 'https:'],
  );
  assert.deepEqual(
    locateReference('localhost:5000/app:1').endpoints.map((u) => u.protocol),
    ['http:', 'https:'],
  );
  assert.throws(
    () => locateReference('app:1', { cluster: { url: 'http://10.0.0.5:7441' } }),
    /plain HTTP on a host that is not loopback/,
  );
  // the leave an agent gives the URL its control plane advertised covers that URL only
  const cluster = { url: 'http://10.0.0.5:7441', allowPlainHttp: true };
  const located = locateReference('app:1', { cluster });
  assert.deepEqual(
    located.endpoints.map((u) => u.href),
    ['http://10.0.0.5:7441/'],
  );
  assert.equal(located.insecureTls, false);
  assert.deepEqual(
    locateReference('10.0.0.5:7441/app:1', { cluster }).endpoints.map((u) => u.protocol),
    ['https:'],
    'a reference naming the host as its registry is not covered',
  );
  const hub = locateReference('docker.io/library/busybox:1');
  assert.equal(hub.host, 'registry-1.docker.io');
  assert.equal(hub.repository, 'library/busybox');
});

test('WWW-Authenticate challenges parse as RFC 7235 writes them', () => {
  assert.deepEqual(
    parseChallenges(
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
    ),
    [
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example/token',
          service: 'registry.example',
          scope: 'repository:a/b:pull,push',
        },
      },
    ],
  );
  assert.deepEqual(parseChallenges(['Basic realm="x"', 'Bearer realm="y", error="invalid_token"']), [
    { scheme: 'basic', params: { realm: 'x' } },
    { scheme: 'bearer', params: { realm: 'y', error: 'invalid_token' } },
  ]);
});

test('an index entry for the platform: the one without a variant first; none names what there is', () => {
  const d = (architecture: string, variant?: string) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${architecture
      .padEnd(64, '0')
      .slice(0, 64)
      .replace(/[^a-f0-9]/g, 'a')}` as const,
    size: 1,
    platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
  });
  const index = {
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [d('arm', 'v7'), d('amd64', 'v3'), d('amd64')],
  };
  assert.equal(
    selectPlatform(index, { os: 'linux', architecture: 'amd64' }, 'pull x').platform?.variant,
    undefined,
  );
  assert.equal(
    selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }, 'pull x').platform?.variant,
    'v7',
  );
  assert.throws(
    () => selectPlatform(index, { os: 'linux', architecture: 'riscv64' }, 'pull x'),
    (err: unknown) =>
      err instanceof NotFoundError &&
      /it has linux\/arm\/v7, linux\/amd64\/v3, linux\/amd64\)/.test(err.message),
  );
});

test('short names: the repository as typed, the cluster registry from the config', () => {
  const cluster = { url: 'http://127.0.0.1:7441', token: 't' };
  const web = locateReference('web:1', { cluster });
  assert.equal(web.cluster, true);
  assert.equal(web.repository, 'web');
  assert.equal(web.tag, '1');
  assert.equal(web.settings.token, 't');
  assert.equal(web.endpoints[0]!.href, 'http://127.0.0.1:7441/');
  assert.equal(locateReference('team/web@sha256:' + 'a'.repeat(64), { cluster }).repository, 'team/web');
  assert.throws(() => locateReference('web:1'), /names no cluster/);
  assert.equal(locateReference('localhost/app').host, 'localhost');
});

test('loading the client and making one does not load undici (~60 ms of every pull’s start-up)', () => {
  // a process of its own: this one may have loaded anything
  const script = `
    const { RegistryClient } = await import(${JSON.stringify(new URL('./registry-client.js', import.meta.url).href)});
    new RegistryClient({ workers: 0 }).close();
    process.stdout.write(JSON.stringify(process.moduleLoadList.filter((m) => /undici/.test(m))));`;
  const loaded = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(loaded), []);
});

test('layers are shared between this thread and the workers, this thread taking the first', () => {
  // six layers started at once, none finished: where each goes, with 1 and with 3 workers
  for (const [workers, expected] of [
    [1, 'here worker here worker here worker'],
    [3, 'here worker worker worker here worker'],
  ] as const) {
    let here = 0;
    let onWorkers = 0;
    const lanes: string[] = [];
    for (let layer = 0; layer < 6; layer++) {
      const stays = layerStaysOnThisThread(onWorkers, workers, here);
      if (stays) here++;
      else onWorkers++;
      lanes.push(stays ? 'here' : 'worker');
    }
    assert.equal(lanes.join(' '), expected, `${workers} workers`);
  }
});
