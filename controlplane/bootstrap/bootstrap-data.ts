/**
 * Bootstrap data: what every control plane of one cluster must hold alike, sealed with a key
 * derived from the server token, as k3s keeps its bootstrap data in its datastore:
 *
 *   the cluster CA (certificate and key)   every control plane issues node certificates and its
 *                                          own API and control-plane certificates from it, and
 *                                          join tokens pin its hash
 *   the encryption config of Secrets       every control plane reads and writes the same Secrets
 *                                          in the one etcd, so each needs every key
 *
 * What is not here: the admin token (etcd keeps only its hash; a second control plane's admin uses
 * the first's token file or makes tokens), an operator's own API certificate (each control plane
 * has its own name), and the server token itself.
 *
 * Sealing: PBKDF2-HMAC-SHA256 (600 000 iterations, OWASP's figure for it; a random 16-byte salt)
 * turns the server token into a 256-bit key; AES-256-GCM (a random 12-byte nonce) seals the JSON of
 * the data, with the format, the CA's hash and the generation as associated data, so none can be
 * swapped unnoticed. The record stored is JSON: the format, the CA's hash in the clear (public:
 * join tokens carry it; it lets a refusal name the cluster), the generation, the KDF's parameters,
 * nonce and ciphertext (with GCM's tag).
 *
 * The generation counts the record's versions (1 for the first, one more for each change): a
 * control plane remembers the last it took and never takes an older one, which is what anyone who
 * may write to etcd but lacks the token could otherwise put back (a copy of an earlier record opens
 * with the token as well as the newest does). Records of format v1 (before the generation) read as
 * generation 0. k3s does the same with PBKDF2-SHA1 (4096 iterations) and an 8-byte salt; a
 * token a person chose is guessed offline from a copy of etcd, so this one costs each guess more.
 */
import { createCipheriv, createDecipheriv, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../../proto/errors.js';
import { trustBundleHash } from '../../proto/support/trust-bundle.js';

export const BOOTSTRAP_FORMAT = 'skiff-bootstrap-v2';
/** The format before the generation: read, never written. */
const BOOTSTRAP_FORMAT_V1 = 'skiff-bootstrap-v1';
export const BOOTSTRAP_ITERATIONS = 600_000;
/**
 * Bounds on what a stored record may ask of the KDF: a record is read before it is authenticated,
 * so anyone who may write to etcd chooses the count every control plane then spends on it. Twice
 * what is written leaves room to raise the count in a later version, no more.
 */
const MIN_ITERATIONS = 100_000;
const MAX_ITERATIONS = 2 * BOOTSTRAP_ITERATIONS;
const SALT_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface BootstrapData {
  /** The cluster CA, PEM. */
  ca: { certificatePem: string; privateKeyPem: string };
  /** The EncryptionConfiguration of Secrets at rest, as its file holds it (YAML). */
  encryptionConfig: string;
  /** The record's version: 1 for the first, one more for each change (0: a record of format v1). */
  generation: number;
}

/** What a stored record says in the clear. */
export interface BootstrapRecord {
  format: typeof BOOTSTRAP_FORMAT | typeof BOOTSTRAP_FORMAT_V1;
  /** trustBundleHash of the CA certificate: what join tokens pin. */
  caHash: string;
  /** Absent in format v1, read as 0. */
  generation: number;
  kdf: { name: 'pbkdf2-sha256'; iterations: number; salt: string };
  cipher: 'aes-256-gcm';
  nonce: string;
  /** base64 of the ciphertext followed by GCM's 16-byte tag. */
  ciphertext: string;
}

const derive = promisify(pbkdf2);

function additionalData(record: Pick<BootstrapRecord, 'format' | 'caHash' | 'generation'>): Buffer {
  return Buffer.from(
    record.format === BOOTSTRAP_FORMAT_V1
      ? `${record.format}\0${record.caHash}`
      : `${record.format}\0${record.caHash}\0${record.generation}`,
    'utf8',
  );
}

/** Seals `data` with `serverToken`. */
export async function sealBootstrap(
  data: BootstrapData,
  serverToken: string,
  iterations = BOOTSTRAP_ITERATIONS,
): Promise<Buffer> {
  const caHash = trustBundleHash(data.ca.certificatePem);
  const { generation } = data;
  if (!Number.isSafeInteger(generation) || generation < 1)
    throw new InvalidArgumentError(`seal bootstrap data: generation ${generation} is not a positive integer`);
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const key = await derive(serverToken, salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(additionalData({ format: BOOTSTRAP_FORMAT, caHash, generation }));
  const sealed = Buffer.concat([
    cipher.update(
      JSON.stringify({ ca: data.ca, encryptionConfig: data.encryptionConfig, generation }),
      'utf8',
    ),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  const record: BootstrapRecord = {
    format: BOOTSTRAP_FORMAT,
    caHash,
    generation,
    kdf: { name: 'pbkdf2-sha256', iterations, salt: salt.toString('base64') },
    cipher: 'aes-256-gcm',
    nonce: nonce.toString('base64'),
    ciphertext: sealed.toString('base64'),
  };
  return Buffer.from(JSON.stringify(record), 'utf8');
}

/** The clear part of a stored record; InvalidArgumentError when it is not one this version reads. */
export function readBootstrapRecord(bytes: Uint8Array, where: string): BootstrapRecord {
  const bad = (problem: string): never => {
    throw new InvalidArgumentError(`read bootstrap data ${where}: ${problem}`);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    return bad(`not JSON (${errorMessage(err)})`);
  }
  const record = parsed as Partial<BootstrapRecord> | null;
  if (typeof record !== 'object' || record === null) return bad('not an object');
  if (record.format !== BOOTSTRAP_FORMAT && record.format !== BOOTSTRAP_FORMAT_V1)
    return bad(
      `format ${JSON.stringify(record.format)}; this version reads ${BOOTSTRAP_FORMAT} and ${BOOTSTRAP_FORMAT_V1}`,
    );
  if (record.format === BOOTSTRAP_FORMAT_V1) record.generation = 0;
  else if (!Number.isSafeInteger(record.generation) || record.generation! < 1)
    return bad('generation is not a positive integer');
  if (typeof record.caHash !== 'string' || !/^[0-9a-f]{64}$/.test(record.caHash))
    return bad('caHash is not 64 hex digits');
  const kdf = record.kdf;
  if (
    kdf?.name !== 'pbkdf2-sha256' ||
    !Number.isInteger(kdf.iterations) ||
    kdf.iterations < MIN_ITERATIONS ||
    kdf.iterations > MAX_ITERATIONS ||
    typeof kdf.salt !== 'string'
  )
    return bad(`kdf is not pbkdf2-sha256 with ${MIN_ITERATIONS} to ${MAX_ITERATIONS} iterations and a salt`);
  if (record.cipher !== 'aes-256-gcm')
    return bad(`cipher ${JSON.stringify(record.cipher)}; aes-256-gcm is read`);
  if (typeof record.nonce !== 'string' || typeof record.ciphertext !== 'string')
    return bad('nonce or ciphertext missing');
  return record as BootstrapRecord;
}

/**
 * The data of a stored record. FailedPreconditionError when `serverToken` does not open it (the
 * wrong token, or a record changed by someone without it): `whose` says where the token came from.
 */
export async function openBootstrap(
  bytes: Uint8Array,
  serverToken: string,
  where: string,
  whose: string,
): Promise<BootstrapData> {
  const record = readBootstrapRecord(bytes, where);
  const salt = Buffer.from(record.kdf.salt, 'base64');
  const nonce = Buffer.from(record.nonce, 'base64');
  const sealed = Buffer.from(record.ciphertext, 'base64');
  if (nonce.length !== NONCE_BYTES || sealed.length < TAG_BYTES)
    throw new InvalidArgumentError(`read bootstrap data ${where}: the nonce or the ciphertext is cut short`);
  const key = await derive(serverToken, salt, record.kdf.iterations, 32, 'sha256');
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(additionalData(record));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch (err) {
    throw new FailedPreconditionError(
      `open the cluster's bootstrap data ${where} (cluster CA sha256:${record.caHash.slice(0, 16)}…): ${whose} does not open it; give this control plane the server token of the cluster's first control plane (its <state-dir>/server-token) with --server-token-file`,
      { cause: err },
    );
  }
  const data = JSON.parse(plain.toString('utf8')) as Partial<BootstrapData>;
  // authenticated as associated data already; the sealed copy says the same, or the sealer erred
  const generation = record.format === BOOTSTRAP_FORMAT_V1 ? 0 : data.generation;
  if (generation !== record.generation)
    throw new InvalidArgumentError(
      `read bootstrap data ${where}: its sealed generation ${String(data.generation)} is not the ${record.generation} it names`,
    );
  if (
    typeof data.ca?.certificatePem !== 'string' ||
    typeof data.ca.privateKeyPem !== 'string' ||
    typeof data.encryptionConfig !== 'string'
  )
    throw new InvalidArgumentError(`read bootstrap data ${where}: it lacks the CA or the encryption config`);
  // the sealed data is the token holder's word; the hash in the clear is what refusals and join
  // tokens name: they must be of one CA
  if (trustBundleHash(data.ca.certificatePem) !== record.caHash)
    throw new InvalidArgumentError(
      `read bootstrap data ${where}: its CA certificate is not the one whose hash it names (sha256:${record.caHash.slice(0, 16)}…); the record was made wrong: store it again from a control plane that holds the cluster's CA`,
    );
  return { ca: data.ca, encryptionConfig: data.encryptionConfig, generation };
}
