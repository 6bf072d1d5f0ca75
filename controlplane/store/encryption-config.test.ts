import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import {
  ensureEncryptionConfig,
  parseEncryptionConfig,
  readEncryptionConfig,
  renderEncryptionConfig,
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
