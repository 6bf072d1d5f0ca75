import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { InternalError, InvalidArgumentError } from '../../proto/errors.js';
import { EncryptingStore, type EncryptionKey } from './encrypting-store.js';
import { MemoryStore } from './memory-store.js';
import { storeConformance } from './store-conformance.js';

/** Every resource encrypted, so the whole conformance suite runs through the cipher. */
class EveryResource extends Set<string> {
  override has(): boolean {
    return true;
  }
}

const key = (name: string): EncryptionKey => ({ name, secret: randomBytes(32) });
const secret = (name: string, namespace = 'default') => ({ resource: 'secrets', namespace, name });
const text = (value: string) => new TextEncoder().encode(value);
const read = (value: Uint8Array) => new TextDecoder().decode(value);

describe('EncryptingStore', () => {
  let fixtures = 0;
  storeConformance('EncryptingStore over MemoryStore, every resource encrypted', async () => {
    const inner = new MemoryStore({ name: `encrypted-${++fixtures}` });
    return {
      store: new EncryptingStore(inner, { resources: new EveryResource(), keys: [key('k1')] }),
      endpoint: inner.endpoint,
      deadlineMs: 100,
      stopBackend: async () => inner.setAvailable(false),
      startBackend: async () => inner.setAvailable(true),
    };
  });

  test('below it the bytes hold no plaintext, only what names the key; above it reads are plain', async () => {
    const inner = new MemoryStore();
    const store = new EncryptingStore(inner, { resources: new Set(['secrets']), keys: [key('first')] });
    await store.create(secret('db'), text('password=hunter2'));
    await store.create({ resource: 'configmaps', namespace: 'default', name: 'c' }, text('plain=yes'));
    const raw = Buffer.from((await inner.get(secret('db'))).value);
    assert.ok(raw.toString('latin1').startsWith('k8s:enc:aesgcm:v1:first:'));
    assert.ok(!raw.includes('hunter2'), 'the stored bytes hold no plaintext');
    assert.equal(read((await store.get(secret('db'))).value), 'password=hunter2');
    assert.equal(read((await store.list('secrets')).items[0]!.value), 'password=hunter2');
    assert.equal(
      read((await inner.get({ resource: 'configmaps', namespace: 'default', name: 'c' })).value),
      'plain=yes',
      'other resources are not encrypted',
    );
    await store.close();
  });

  test('a value moved under another object does not decrypt', async () => {
    const inner = new MemoryStore();
    const store = new EncryptingStore(inner, { resources: new Set(['secrets']), keys: [key('k')] });
    await store.create(secret('a'), text('for a'));
    await inner.create(secret('b'), (await inner.get(secret('a'))).value);
    await assert.rejects(
      store.get(secret('b')),
      (err: unknown) => err instanceof InternalError && /does not authenticate/.test(err.message),
    );
    await store.close();
  });

  test('keys rotate: older values read until rewritten, then the old key can go; plaintext is rewritten too', async () => {
    const inner = new MemoryStore();
    const k1 = key('k1');
    const k2 = key('k2');
    await inner.create(secret('legacy'), text('written before encryption'));
    const store = new EncryptingStore(inner, { resources: new Set(['secrets']), keys: [k1] });
    for (let i = 0; i < 3; i++) await store.create(secret(`s${i}`, `ns${i}`), text(`value ${i}`));
    store.setKeys([k2, k1]);
    assert.equal(read((await store.get(secret('s1', 'ns1'))).value), 'value 1', 'old values still read');
    await store.create(secret('new'), text('after rotation'));
    assert.deepEqual(await store.reencrypt('secrets'), { rewritten: 4, current: 1 });
    for (const item of (await inner.list('secrets')).items)
      assert.equal(EncryptingStore.keyNameOf(item.value), 'k2');
    store.setKeys([k2]);
    const values = (await store.list('secrets')).items.map((item) => read(item.value)).sort();
    assert.deepEqual(values, [
      'after rotation',
      'value 0',
      'value 1',
      'value 2',
      'written before encryption',
    ]);
    await store.close();
  });

  test('a value under a key the config no longer holds says which key to add back', async () => {
    const inner = new MemoryStore();
    const store = new EncryptingStore(inner, { resources: new Set(['secrets']), keys: [key('gone')] });
    await store.create(secret('s'), text('x'));
    store.setKeys([key('other')]);
    await assert.rejects(
      store.get(secret('s')),
      /encrypted with key "gone", which the encryption config no longer holds/,
    );
    assert.throws(() => store.setKeys([{ name: 'short', secret: randomBytes(8) }]), InvalidArgumentError);
    assert.throws(() => store.setKeys([]), InvalidArgumentError);
    await store.close();
  });

  test('watch events arrive decrypted, previous values included', async () => {
    const inner = new MemoryStore();
    const store = new EncryptingStore(inner, { resources: new Set(['secrets']), keys: [key('k')] });
    const controller = new AbortController();
    const events = store
      .watch('secrets', { afterRevision: await store.currentRevision(), signal: controller.signal })
      [Symbol.asyncIterator]();
    const created = await store.create(secret('w'), text('one'));
    await store.update(secret('w'), text('two'), created.modRevision);
    const first = (await events.next()).value;
    const second = (await events.next()).value;
    assert.equal(first.type, 'added');
    assert.equal(read(first.item.value), 'one');
    assert.equal(second.type, 'modified');
    assert.equal(read(second.item.value), 'two');
    assert.equal(read(second.previous.value), 'one');
    controller.abort();
    await store.close();
  });
});
