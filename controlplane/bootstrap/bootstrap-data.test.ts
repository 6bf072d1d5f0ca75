import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import { openBootstrap, readBootstrapRecord, sealBootstrap, type BootstrapData } from './bootstrap-data.js';

const data: BootstrapData = {
  ca: { certificatePem: 'CERT', privateKeyPem: 'KEY' },
  encryptionConfig: 'kind: EncryptionConfiguration\n',
};
const caHash = 'ab'.repeat(32);
const token = 'a-server-token-of-enough-length';
// the lowest count a record may ask for: the tests need no more
const ITERATIONS = 100_000;

test('sealed bootstrap data opens with its token, and holds neither key nor token in the clear', async () => {
  const sealed = await sealBootstrap(data, caHash, token, ITERATIONS);
  const text = sealed.toString('utf8');
  assert.ok(!text.includes('KEY') && !text.includes(token) && !text.includes('EncryptionConfiguration'));
  assert.equal(readBootstrapRecord(sealed, 'here').caHash, caHash);
  assert.deepEqual(await openBootstrap(sealed, token, 'here', 'the token'), data);
});

test('another token does not open it, and the refusal says which token and what to do', async () => {
  const sealed = await sealBootstrap(data, caHash, token, ITERATIONS);
  await assert.rejects(
    openBootstrap(sealed, 'another-token-of-enough-length', 'in etcd e', 'the server token in /f'),
    (err) =>
      err instanceof FailedPreconditionError &&
      /the server token in \/f does not open it/.test(err.message) &&
      /--server-token-file/.test(err.message),
  );
});

test('a record whose clear CA hash was changed does not open (it is authenticated with the data)', async () => {
  const record = JSON.parse((await sealBootstrap(data, caHash, token, ITERATIONS)).toString('utf8'));
  record.caHash = 'cd'.repeat(32);
  await assert.rejects(
    openBootstrap(Buffer.from(JSON.stringify(record)), token, 'here', 'the token'),
    FailedPreconditionError,
  );
});

test('records this version cannot read are refused naming the problem', async () => {
  const record = JSON.parse((await sealBootstrap(data, caHash, token, ITERATIONS)).toString('utf8'));
  const bad = (change: (r: Record<string, unknown>) => void) => {
    const copy = structuredClone(record);
    change(copy);
    return Buffer.from(JSON.stringify(copy));
  };
  assert.throws(() => readBootstrapRecord(Buffer.from('{'), 'here'), /not JSON/);
  assert.throws(
    () =>
      readBootstrapRecord(
        bad((r) => (r.format = 'other')),
        'here',
      ),
    (err) => err instanceof InvalidArgumentError && /format "other"/.test(err.message),
  );
  // a record is read before it is authenticated: it may not make the KDF run for minutes
  assert.throws(
    () =>
      readBootstrapRecord(
        bad((r) => ((r.kdf as { iterations: number }).iterations = 1e9)),
        'here',
      ),
    /iterations/,
  );
});
