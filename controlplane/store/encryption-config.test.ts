import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import {
  ensureEncryptionConfig,
  LocalEncryptionConfig,
  mergeEncryptionConfigs,
  newEncryptionKey,
  parseEncryptionConfig,
  readEncryptionConfig,
  renderEncryptionConfig,
  writeEncryptionConfig,
  type EncryptionConfig,
} from './encryption-config.js';

const config = (providers: string): string =>
  `apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n${providers}`;
const key32 = Buffer.alloc(32, 7).toString('base64');

test('a Kubernetes EncryptionConfiguration with aesgcm first reads back as written', () => {
  const parsed = parseEncryptionConfig(
    config(
      `      - aesgcm:\n          keys:\n            - {name: k2, secret: "${key32}"}\n            - {name: k1, secret: "${key32}"}\n      - identity: {}\n`,
    ),
    'enc.yaml',
  );
  assert.deepEqual([...parsed.resources], ['secrets']);
  assert.deepEqual(
    parsed.keys.map((key) => [key.name, key.secret.length]),
    [
      ['k2', 32],
      ['k1', 32],
    ],
  );
  assert.deepEqual(parseEncryptionConfig(renderEncryptionConfig(parsed), 'again.yaml'), parsed);
});

test('what skiff cannot honour is refused, naming the file and the field', () => {
  const cases: [string, string, RegExp][] = [
    [
      config('      - identity: {}\n      - aesgcm: {keys: [{name: k, secret: "' + key32 + '"}]}\n'),
      'resources[0].providers[0]',
      /identity first would store values in plaintext/,
    ],
    [
      config('      - secretbox: {keys: [{name: k, secret: "' + key32 + '"}]}\n'),
      'resources[0].providers[0]',
      /aesgcm/,
    ],
    [
      config('      - aesgcm: {keys: [{name: k, secret: "c2hvcnQ="}]}\n'),
      'keys[0].secret',
      /is 5 bytes; AES-GCM takes 16, 24 or 32/,
    ],
    [
      config('      - aesgcm: {keys: [{name: k, secret: "not base64!"}]}\n'),
      'resources[0].providers[0].aesgcm.keys[0].secret',
      /not base64/,
    ],
    ['kind: Something\n', 'kind', /EncryptionConfiguration/],
  ];
  for (const [text, field, message] of cases) {
    assert.throws(
      () => parseEncryptionConfig(text, 'enc.yaml'),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === field &&
        /enc\.yaml/.test(err.message) &&
        message.test(err.message),
      field,
    );
  }
});

test('a missing config is made with one new key, 0600; one others may read is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-enc-'));
  try {
    const file = join(dir, 'state', 'encryption-config.yaml');
    const made = await ensureEncryptionConfig(file);
    assert.equal(made.keys.length, 1);
    assert.equal(made.keys[0]!.secret.length, 32);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(await ensureEncryptionConfig(file), made, 'kept, not replaced');
    chmodSync(file, 0o644);
    await assert.rejects(readEncryptionConfig(file), FailedPreconditionError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const secrets = (...keys: EncryptionConfig['keys']): EncryptionConfig => ({
  resources: new Set(['secrets']),
  keys,
});
const names = (config: EncryptionConfig): string[] => config.keys.map((key) => key.name);

test("merged configs keep every key of both: the first's in its order, then the keys only the second holds", () => {
  const [a, b, c, old] = [newEncryptionKey(), newEncryptionKey(), newEncryptionKey(), newEncryptionKey()];
  const places = { first: 'the record', then: 'enc.yaml' };
  // a record that does not know a key held here (two rotations at once, a replayed copy)
  const merged = mergeEncryptionConfigs(
    secrets(b, old),
    { resources: new Set(['configmaps']), keys: [a, c, old] },
    places,
  );
  assert.deepEqual(names(merged), [b.name, old.name, a.name, c.name]);
  assert.deepEqual([...merged.resources], ['secrets', 'configmaps']);
  // one name, two secrets: one of them was changed by hand, and values open with one only
  const changed = { name: old.name, secret: Buffer.alloc(32, 9) };
  assert.throws(
    () => mergeEncryptionConfigs(secrets(b, old), secrets(changed), places),
    (err) =>
      err instanceof FailedPreconditionError &&
      err.message.includes(`key "${old.name}" has one secret in the record and another in enc.yaml`),
  );
});

test('the local config takes changes by merging, one at a time, in its file before in use', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-enc-'));
  try {
    const file = join(dir, 'enc.yaml');
    const [old, a, b] = [newEncryptionKey(), newEncryptionKey(), newEncryptionKey()];
    await writeEncryptionConfig(file, secrets(old));
    const inUse: string[][] = [];
    const local = new LocalEncryptionConfig(file, secrets(old), (config) => {
      // in use only once the file holds it
      assert.deepEqual(names(parseEncryptionConfig(readFileSync(file, 'utf8'), file)), names(config));
      inUse.push(names(config));
    });
    // two changes at once, each made without the other's key: neither key is lost
    await Promise.all([local.take(secrets(a, old), 'rotation a'), local.take(secrets(b, old), 'record b')]);
    assert.deepEqual(names(local.config), [b.name, old.name, a.name]);
    assert.deepEqual(names(await readEncryptionConfig(file)), [b.name, old.name, a.name]);
    assert.deepEqual(inUse, [
      [a.name, old.name],
      [b.name, old.name, a.name],
    ]);
    // a config with the same first key that only lacks others changes nothing
    assert.equal(await local.take(secrets(b), 'a record'), local.config);
    assert.equal(inUse.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
