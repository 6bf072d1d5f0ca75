import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, pbkdf2Sync, randomBytes } from 'node:crypto';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import { CertificateAuthority } from '../../proto/support/pki.js';
import { trustBundleHash } from '../../proto/support/trust-bundle.js';
import {
  BOOTSTRAP_FORMAT,
  BOOTSTRAP_ITERATIONS,
  openBootstrap,
  readBootstrapRecord,
  sealBootstrap,
  type BootstrapData,
} from './bootstrap-data.js';

const ca = CertificateAuthority.create({ commonName: 'skiff-cluster-ca' });
const data: BootstrapData = {
  ca: { certificatePem: ca.certificatePem, privateKeyPem: ca.privateKeyPem },
  encryptionConfig: 'kind: EncryptionConfiguration\n',
  generation: 3,
};
const caHash = trustBundleHash(ca.certificatePem);
const token = 'a-server-token-of-enough-length';
// the lowest count a record may ask for: the tests need no more
const ITERATIONS = 100_000;

/**
 * A record sealed by hand as the format says, naming `namedHash` as its CA's; of format v1 (no
 * generation, which the associated data then lacks too) when asked.
 */
function handSealed(sealedData: BootstrapData, namedHash: string, v1 = false): Buffer {
  const format = v1 ? 'skiff-bootstrap-v1' : BOOTSTRAP_FORMAT;
  const { generation, ...withoutGeneration } = sealedData;
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const key = pbkdf2Sync(token, salt, ITERATIONS, 32, 'sha256');
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(
    Buffer.from(v1 ? `${format}\0${namedHash}` : `${format}\0${namedHash}\0${generation}`, 'utf8'),
  );
  const sealed = Buffer.concat([
    cipher.update(JSON.stringify(v1 ? withoutGeneration : sealedData), 'utf8'),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  return Buffer.from(
    JSON.stringify({
      format,
      caHash: namedHash,
      ...(v1 ? {} : { generation }),
      kdf: { name: 'pbkdf2-sha256', iterations: ITERATIONS, salt: salt.toString('base64') },
      cipher: 'aes-256-gcm',
      nonce: nonce.toString('base64'),
      ciphertext: sealed.toString('base64'),
    }),
  );
}

test('sealed bootstrap data opens with its token, and holds neither key nor token in the clear', async () => {
  const sealed = await sealBootstrap(data, token, ITERATIONS);
  const text = sealed.toString('utf8');
  assert.ok(
    !text.includes('PRIVATE KEY') && !text.includes(token) && !text.includes('EncryptionConfiguration'),
  );
  assert.equal(readBootstrapRecord(sealed, 'here').caHash, caHash);
  assert.deepEqual(await openBootstrap(sealed, token, 'here', 'the token'), data);
  assert.deepEqual(await openBootstrap(handSealed(data, caHash), token, 'here', 'the token'), data);
});

test('another token does not open it, and the refusal says which token and what to do', async () => {
  const sealed = await sealBootstrap(data, token, ITERATIONS);
  await assert.rejects(
    openBootstrap(sealed, 'another-token-of-enough-length', 'in etcd e', 'the server token in /f'),
    (err) =>
      err instanceof FailedPreconditionError &&
      /the server token in \/f does not open it/.test(err.message) &&
      /--server-token-file/.test(err.message),
  );
});

test('a record whose clear CA hash or generation was changed does not open (both are authenticated with the data)', async () => {
  const record = JSON.parse((await sealBootstrap(data, token, ITERATIONS)).toString('utf8'));
  assert.equal(record.generation, 3);
  for (const change of [{ caHash: 'cd'.repeat(32) }, { generation: 4 }])
    await assert.rejects(
      openBootstrap(Buffer.from(JSON.stringify({ ...record, ...change })), token, 'here', 'the token'),
      FailedPreconditionError,
    );
});

test('a record of format v1, from before the generation, opens as generation 0', async () => {
  const v1 = handSealed(data, caHash, true);
  assert.equal(readBootstrapRecord(v1, 'here').generation, 0);
  assert.deepEqual(await openBootstrap(v1, token, 'here', 'the token'), { ...data, generation: 0 });
});

test('a record that names another CA than the one sealed in it is refused once opened', async () => {
  const other = trustBundleHash(CertificateAuthority.create({ commonName: 'another-ca' }).certificatePem);
  await assert.rejects(
    openBootstrap(handSealed(data, other), token, 'in etcd e', 'the token'),
    (err) =>
      err instanceof InvalidArgumentError &&
      /its CA certificate is not the one whose hash it names/.test(err.message),
  );
});

test('records this version cannot read are refused naming the problem', async () => {
  const record = JSON.parse((await sealBootstrap(data, token, ITERATIONS)).toString('utf8'));
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
  // a record is read before it is authenticated: it may ask the KDF for twice what is written, no more
  const iterations = (count: number) => bad((r) => ((r.kdf as { iterations: number }).iterations = count));
  assert.equal(readBootstrapRecord(iterations(2 * BOOTSTRAP_ITERATIONS), 'here').kdf.iterations, 1_200_000);
  for (const count of [2 * BOOTSTRAP_ITERATIONS + 1, 10_000_000, 1e9])
    assert.throws(() => readBootstrapRecord(iterations(count), 'here'), /100000 to 1200000 iterations/);
});
