import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnavailableError } from '../../proto/errors.js';
import { EncryptingStore } from './encrypting-store.js';
import {
  LocalEncryptionConfig,
  newEncryptionKey,
  readEncryptionConfig,
  writeEncryptionConfig,
  type EncryptionConfig,
} from './encryption-config.js';
import { MemoryStore } from './memory-store.js';
import { rotateEncryptionKey } from './rotate-encryption-key.js';

const secret = { resource: 'secrets', namespace: 'default', name: 's' };

async function fixture() {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-rotate-'));
  const file = join(dir, 'encryption-config.yaml');
  const initial: EncryptionConfig = { resources: new Set(['secrets']), keys: [newEncryptionKey()] };
  await writeEncryptionConfig(file, initial);
  const store = new EncryptingStore(new MemoryStore(), initial);
  const keys = new LocalEncryptionConfig(file, initial, (config) => store.setKeys(config.keys));
  await store.create(secret, Buffer.from('value'));
  return { dir, file, store, keys, oldKey: initial.keys[0]!.name };
}

test('a rotation stores the new key in the cluster’s record before this control plane uses it', async () => {
  const { dir, file, store, keys, oldKey } = await fixture();
  try {
    const shared: string[][] = [];
    const rotation = await rotateEncryptionKey(keys, store, async (config) => {
      // nothing here knows the key yet: were this control plane lost now, no value would need it
      assert.equal(store.writeKeyName, oldKey);
      assert.ok(!(await readFile(file, 'utf8')).includes(config.keys[0]!.name));
      shared.push(config.keys.map((key) => key.name));
      return config;
    });
    assert.deepEqual(shared, [[rotation.keyName, oldKey]]);
    assert.equal(store.writeKeyName, rotation.keyName);
    assert.deepEqual(
      (await readEncryptionConfig(file)).keys.map((key) => key.name),
      [rotation.keyName, oldKey],
    );
    assert.equal(rotation.rewritten, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a rotation whose store in the record failed changes nothing here', async () => {
  const { dir, file, store, keys, oldKey } = await fixture();
  try {
    const before = await readFile(file, 'utf8');
    await assert.rejects(
      rotateEncryptionKey(keys, store, async () => {
        throw new UnavailableError('update bootstrap cluster: no answer within 5000 ms');
      }),
      UnavailableError,
    );
    assert.equal(store.writeKeyName, oldKey);
    assert.equal(await readFile(file, 'utf8'), before);
    assert.deepEqual(
      keys.config.keys.map((key) => key.name),
      [oldKey],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
