/**
 * skiff's certificate authority: an ECDSA P-256 key with a self-signed CA certificate, which
 * issues the TLS certificates of etcd (server and peer), of the control plane as etcd's one
 * client, and of node agents for mutual TLS.
 *
 * Vocabulary:
 * - A `CertificateAuthority` is a CA certificate with its private key, checked to belong together
 *   and to be a CA; only such a value can issue, so nothing signs with a leaf key by mistake.
 * - `issue(publicKey, options)` signs a certificate for a key someone else holds (a node agent
 *   sends its public key); `issueKeyPair(options)` also makes the key, for files written here.
 * - Usages follow Kubernetes' names: `server auth` (a TLS server: etcd, the API) and
 *   `client auth` (a TLS client proving who it is: the control plane to etcd, an agent to the API).
 *   A server certificate names its hosts in subjectAltName (dnsNames, ipAddresses): TLS clients
 *   match the host against those, never against the common name.
 * - The subject is `O=<organization>…, CN=<commonName>`: Kubernetes reads CN as the user and each
 *   O as a group.
 *
 * What every issued certificate holds (RFC 5280): version 3, a random positive 16-byte serial,
 * ecdsa-with-SHA256, the CA's subject as issuer (its exact bytes), keyUsage digitalSignature
 * (critical; plus keyEncipherment for RSA keys, the only ones that encipher in TLS 1.2),
 * extKeyUsage, basicConstraints CA:FALSE (critical), subjectKeyIdentifier and
 * authorityKeyIdentifier (the CA's subjectKeyIdentifier), subjectAltName. The CA certificate holds
 * basicConstraints CA:TRUE, pathlen 0 (critical: it signs leaves only), keyUsage keyCertSign and
 * cRLSign (critical) and its subjectKeyIdentifier (SHA-1 of its public key, RFC 5280 4.2.1.2).
 *
 * Times: certificates are valid from five minutes before `now` (another host's clock may lag
 * this one's), for 10 years (CA) or 1 year (leaf) unless told otherwise; a leaf never outlives
 * its CA (its notAfter is cut to the CA's). `now` is a parameter so tests can issue certificates
 * that have expired or are not yet valid.
 *
 * Files: `writePrivateFiles` writes a set of files 0600 into a 0700 directory, each atomically
 * and durably (proto/support/atomic-file.ts), and refuses to replace what is there unless asked;
 * `writeCertificateAuthority` / `readCertificateAuthority` store a CA as `ca.key` and `ca.crt`.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto';
import { mkdir, lstat, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  errorMessage,
} from '../errors.js';
import { writeFileAtomic } from './atomic-file.js';
import {
  DerTag,
  derBitString,
  derBoolean,
  derExplicit,
  derImplicit,
  derInteger,
  derNamedBitString,
  derOctetString,
  derOid,
  derSequence,
  derSetOf,
  derTime,
  derUtf8String,
  readDerChildren,
  readDerElement,
  readDerOid,
  type DerElement,
} from './der.js';

/** Extended key usages, by their Kubernetes names (certificates.k8s.io `usages`). */
export type CertificateUsage = 'server auth' | 'client auth';

export interface ValidityOptions {
  /** The current time; default the system clock. */
  now?: Date;
  /** Default: five minutes before `now`. */
  notBefore?: Date;
  /** Default: 10 years (CA) or 1 year (leaf) after `now`; must be after `now`. */
  notAfter?: Date;
}

export interface CertificateAuthorityOptions extends ValidityOptions {
  /** The CA's name, e.g. `skiff-ca`. */
  commonName: string;
}

export interface CertificateOptions extends ValidityOptions {
  /** Who the certificate is for: a host (`etcd`), a user (`skiff-controlplane`, `system:node:n1`). */
  commonName: string;
  /** Subject O values, in order; Kubernetes reads them as groups. */
  organizations?: readonly string[];
  /** At least one. `server auth` needs at least one DNS name or IP address. */
  usages: readonly CertificateUsage[];
  /** Host names the certificate is valid for (`localhost`, `*.skiff.local`); IPs go in ipAddresses. */
  dnsNames?: readonly string[];
  /** IPv4 or IPv6 addresses, without a zone (`127.0.0.1`, `::1`). */
  ipAddresses?: readonly string[];
}

/** A certificate with the private key it certifies. */
export interface CertifiedKeyPair {
  certificate: X509Certificate;
  privateKey: KeyObject;
}

/** Where a CA is stored in its directory (the names kubeadm uses). */
export const CA_CERTIFICATE_FILE = 'ca.crt';
export const CA_PRIVATE_KEY_FILE = 'ca.key';

const CA_VALIDITY_DAYS = 3650;
const LEAF_VALIDITY_DAYS = 365;
const DAY_MS = 24 * 60 * 60 * 1000;
/** How far notBefore is set back by default: another host's clock may run this far behind. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Bounds on hostile input: a name far longer, or a certificate for thousands of hosts, is a mistake. */
const MAX_NAME_LENGTH = 256;
const MAX_ORGANIZATIONS = 16;
const MAX_SUBJECT_ALT_NAMES = 100;
const MAX_USAGES = 8;

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

const USAGE_OIDS: Record<CertificateUsage, string> = {
  'server auth': OID.serverAuth,
  'client auth': OID.clientAuth,
};

/** keyUsage bit numbers (RFC 5280 4.2.1.3). */
const KeyUsageBit = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

export class CertificateAuthority {
  private constructor(
    readonly certificate: X509Certificate,
    readonly privateKey: KeyObject,
    /** The CA certificate's subject, byte for byte: the issuer of everything it signs. */
    private readonly subjectName: Buffer,
    private readonly keyIdentifier: Buffer,
  ) {}

  /** A new CA: a fresh P-256 key and its self-signed certificate. */
  static create(options: CertificateAuthorityOptions): CertificateAuthority {
    const action = `create CA "${String(options?.commonName)}"`;
    checkName(options?.commonName, 'commonName', action);
    const validity = checkValidity(options, CA_VALIDITY_DAYS, action);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const subjectName = encodeName(options.commonName, []);
    const keyIdentifier = subjectKeyIdentifier(publicKey);
    const certificate = signCertificate({
      issuerName: subjectName,
      subjectName,
      validity,
      publicKey,
      signingKey: privateKey,
      extensions: [
        extension(OID.basicConstraints, true, derSequence(derBoolean(true), derInteger(0))),
        extension(OID.keyUsage, true, derNamedBitString([KeyUsageBit.keyCertSign, KeyUsageBit.cRLSign])),
        extension(OID.subjectKeyIdentifier, false, derOctetString(keyIdentifier)),
      ],
    });
    return new CertificateAuthority(certificate, privateKey, subjectName, keyIdentifier);
  }

  /**
   * A CA from its certificate and PKCS#8 (or SEC1) private key in PEM. Throws InvalidArgumentError
   * when either does not parse, the certificate is not a CA (basicConstraints CA:TRUE, keyUsage
   * keyCertSign when present), the key is not ECDSA P-256, or the key is not the certificate's.
   */
  static fromPem(pem: { certificatePem: string; privateKeyPem: string }): CertificateAuthority {
    const action = 'load CA';
    for (const field of ['certificatePem', 'privateKeyPem'] as const) {
      if (typeof pem?.[field] !== 'string') {
        throw new InvalidArgumentError(`${action}: ${field} is not a PEM string`, field);
      }
    }
    const certificateCount = (pem.certificatePem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;
    if (certificateCount !== 1) {
      throw new InvalidArgumentError(
        `${action}: the certificate PEM holds ${certificateCount} certificates; it must hold exactly the CA's`,
        'certificatePem',
      );
    }
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(pem.certificatePem);
    } catch (err) {
      throw new InvalidArgumentError(
        `${action}: the certificate PEM does not parse: ${errorMessage(err)}`,
        'certificatePem',
        { cause: err },
      );
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(pem.privateKeyPem);
    } catch (err) {
      throw new InvalidArgumentError(
        `${action}: the private key PEM does not parse (an unencrypted PKCS#8 or EC key is expected): ${errorMessage(err)}`,
        'privateKeyPem',
        { cause: err },
      );
    }
    const named = `${action} "${commonNameOf(certificate)}"`;
    const fields = readCertificateFields(certificate);
    if (!allowsCa(fields.extensions.get(OID.basicConstraints))) {
      throw new InvalidArgumentError(
        `${named}: the certificate is not a CA certificate (no basicConstraints CA:TRUE)`,
        'certificatePem',
      );
    }
    const keyUsage = fields.extensions.get(OID.keyUsage);
    if (keyUsage !== undefined && !hasNamedBit(keyUsage, KeyUsageBit.keyCertSign)) {
      throw new InvalidArgumentError(
        `${named}: the certificate's keyUsage does not allow signing certificates (keyCertSign)`,
        'certificatePem',
      );
    }
    if (
      privateKey.asymmetricKeyType !== 'ec' ||
      privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
    ) {
      throw new InvalidArgumentError(
        `${named}: the private key is ${describeKey(privateKey)}; skiff's CA signs with ECDSA P-256 only`,
        'privateKeyPem',
      );
    }
    if (!certificate.checkPrivateKey(privateKey)) {
      throw new InvalidArgumentError(
        `${named}: the private key is not the key of the certificate (the two files are from different CAs)`,
        'privateKeyPem',
      );
    }
    const ski = fields.extensions.get(OID.subjectKeyIdentifier);
    const keyIdentifier =
      ski === undefined
        ? subjectKeyIdentifier(certificate.publicKey)
        : readDerElement(ski, 0, 'subjectKeyIdentifier').content;
    return new CertificateAuthority(certificate, privateKey, fields.subjectName, Buffer.from(keyIdentifier));
  }

  get certificatePem(): string {
    return this.certificate.toString();
  }

  get privateKeyPem(): string {
    return privateKeyToPem(this.privateKey);
  }

  /**
   * A certificate for `publicKey` (ECDSA P-256 or P-384, RSA of 2048 bits or more, or Ed25519),
   * signed by this CA. Throws InvalidArgumentError naming the field for bad options or keys, and
   * FailedPreconditionError when this CA has expired.
   */
  issue(publicKey: KeyObject, options: CertificateOptions): X509Certificate {
    const action = `issue certificate "${String(options?.commonName)}"`;
    checkSubjectKey(publicKey, action);
    checkName(options?.commonName, 'commonName', action);
    const organizations = checkList(options.organizations, 'organizations', MAX_ORGANIZATIONS, action);
    organizations.forEach((organization, index) =>
      checkName(organization, `organizations[${index}]`, action),
    );
    const usages = checkUsages(options.usages, action);
    const subjectAltNames = encodeSubjectAltNames(options, action);
    if (usages.includes('server auth') && subjectAltNames.length === 0) {
      throw new InvalidArgumentError(
        `${action}: a "server auth" certificate needs at least one dnsNames or ipAddresses entry (TLS clients match the host against those, not the common name)`,
        'dnsNames',
      );
    }
    const validity = checkValidity(options, LEAF_VALIDITY_DAYS, action);
    const caNotAfter = this.certificate.validToDate;
    if (caNotAfter.getTime() <= validity.now.getTime()) {
      throw new FailedPreconditionError(
        `${action}: CA "${commonNameOf(this.certificate)}" expired at ${caNotAfter.toISOString()}; create a new CA and reissue its certificates`,
      );
    }
    if (validity.notAfter.getTime() > caNotAfter.getTime()) validity.notAfter = caNotAfter;
    if (validity.notBefore.getTime() >= validity.notAfter.getTime()) {
      throw new InvalidArgumentError(
        `${action}: notBefore ${validity.notBefore.toISOString()} is not before ${caNotAfter.toISOString()}, when CA "${commonNameOf(this.certificate)}" expires`,
        'notBefore',
      );
    }
    const keyUsageBits: number[] = [KeyUsageBit.digitalSignature];
    if (publicKey.asymmetricKeyType === 'rsa') keyUsageBits.push(KeyUsageBit.keyEncipherment);
    return signCertificate({
      issuerName: this.subjectName,
      subjectName: encodeName(options.commonName, organizations),
      validity,
      publicKey,
      signingKey: this.privateKey,
      extensions: [
        extension(OID.keyUsage, true, derNamedBitString(keyUsageBits)),
        extension(OID.extKeyUsage, false, derSequence(...usages.map((usage) => derOid(USAGE_OIDS[usage])))),
        extension(OID.basicConstraints, true, derSequence()),
        extension(OID.subjectKeyIdentifier, false, derOctetString(subjectKeyIdentifier(publicKey))),
        extension(OID.authorityKeyIdentifier, false, derSequence(derImplicit(0, this.keyIdentifier))),
        ...(subjectAltNames.length === 0
          ? []
          : [extension(OID.subjectAltName, false, derSequence(...subjectAltNames))]),
      ],
    });
  }

  /** A fresh ECDSA P-256 key and its certificate (see issue). */
  issueKeyPair(options: CertificateOptions): CertifiedKeyPair {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return { certificate: this.issue(publicKey, options), privateKey };
  }
}

/** The key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), what etcd and Node's tls read. */
export function privateKeyToPem(privateKey: KeyObject): string {
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * Writes `files` (name → content) into `dir`, each with mode 0600, creating `dir` with mode 0700
 * when it is missing. Each file is written to a temporary name, fsynced and renamed into place
 * (writeFileAtomic), so a reader sees a whole file or none; the set as a whole is not atomic, so
 * files are written in the order given (put the one whose presence means "done" last).
 *
 * Without `replace`, nothing is written when any of the files exists already (AlreadyExistsError
 * naming them): a CA key, once replaced, cannot be got back, and every certificate it issued
 * stops verifying. The check is made before the writes, so callers that race on one directory
 * must hold a lock (skiff up holds its pid lock). A directory that group or others can write to
 * is refused (FailedPreconditionError): whoever can write there can swap a CA certificate.
 */
export async function writePrivateFiles(
  dir: string,
  files: Readonly<Record<string, string | Buffer>>,
  { replace = false }: { replace?: boolean } = {},
): Promise<void> {
  const names = Object.keys(files);
  const action = `write ${names.join(', ')} in ${dir}`;
  for (const name of names) {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
      throw new InvalidArgumentError(`${action}: "${name}" is not a plain file name`, 'files');
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const dirStat = await stat(dir);
  if (!dirStat.isDirectory()) {
    throw new FailedPreconditionError(`${action}: ${dir} is not a directory`);
  }
  if ((dirStat.mode & 0o022) !== 0) {
    throw new FailedPreconditionError(
      `${action}: ${dir} is writable by group or others (mode ${formatMode(dirStat.mode)}), who could replace the files; chmod 700 it`,
    );
  }
  if (!replace) {
    const present: string[] = [];
    for (const name of names) {
      if (await lstat(join(dir, name)).then(() => true, notFoundAsFalse)) present.push(name);
    }
    if (present.length > 0) {
      throw new AlreadyExistsError(
        `${action}: ${present.join(', ')} already there; nothing was written (remove them to create new ones, or pass replace to overwrite)`,
      );
    }
  }
  for (const name of names) {
    await writeFileAtomic(join(dir, name), files[name]!, { mode: 0o600, durable: true });
  }
}

/** Stores the CA as `ca.key` then `ca.crt` in `dir` (see writePrivateFiles). */
export async function writeCertificateAuthority(
  dir: string,
  ca: CertificateAuthority,
  options: { replace?: boolean } = {},
): Promise<void> {
  await writePrivateFiles(
    dir,
    { [CA_PRIVATE_KEY_FILE]: ca.privateKeyPem, [CA_CERTIFICATE_FILE]: ca.certificatePem },
    options,
  );
}

/**
 * The CA stored in `dir` by writeCertificateAuthority. Throws NotFoundError when a file is
 * missing, FailedPreconditionError when the key file is readable by group or others (a leaked CA
 * key lets anyone mint certificates skiff trusts), and InvalidArgumentError when the files are not
 * a CA (see CertificateAuthority.fromPem).
 */
export async function readCertificateAuthority(dir: string): Promise<CertificateAuthority> {
  const certificatePath = join(dir, CA_CERTIFICATE_FILE);
  const privateKeyPath = join(dir, CA_PRIVATE_KEY_FILE);
  const read = async (path: string): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(
          `load CA from ${dir}: ${path} is missing; restore it from a backup, or remove ${CA_CERTIFICATE_FILE} and ${CA_PRIVATE_KEY_FILE} to create a new CA (and reissue every certificate)`,
          { cause: err },
        );
      }
      throw err;
    }
  };
  const certificatePem = await read(certificatePath);
  const privateKeyPem = await read(privateKeyPath);
  const keyMode = (await stat(privateKeyPath)).mode;
  if ((keyMode & 0o077) !== 0) {
    throw new FailedPreconditionError(
      `load CA from ${dir}: ${privateKeyPath} is readable by group or others (mode ${formatMode(keyMode)}); chmod 600 it, and replace the CA if others may have read it`,
    );
  }
  try {
    return CertificateAuthority.fromPem({ certificatePem, privateKeyPem });
  } catch (err) {
    if (err instanceof InvalidArgumentError) {
      const path = err.field === 'privateKeyPem' ? privateKeyPath : certificatePath;
      throw new InvalidArgumentError(`${err.message} (${path})`, path, { cause: err });
    }
    throw err;
  }
}

// ---- building certificates ----

interface Validity {
  now: Date;
  notBefore: Date;
  notAfter: Date;
}

function signCertificate(parts: {
  issuerName: Buffer;
  subjectName: Buffer;
  validity: Validity;
  publicKey: KeyObject;
  signingKey: KeyObject;
  extensions: Buffer[];
}): X509Certificate {
  const algorithm = derSequence(derOid(OID.ecdsaWithSha256));
  const tbsCertificate = derSequence(
    derExplicit(0, derInteger(2)), // v3
    derInteger(randomSerial()),
    algorithm,
    parts.issuerName,
    derSequence(derTime(parts.validity.notBefore), derTime(parts.validity.notAfter)),
    parts.subjectName,
    parts.publicKey.export({ type: 'spki', format: 'der' }),
    derExplicit(3, derSequence(...parts.extensions)),
  );
  const signature = sign('sha256', tbsCertificate, { key: parts.signingKey, dsaEncoding: 'der' });
  return new X509Certificate(derSequence(tbsCertificate, algorithm, derBitString(signature)));
}

/** 16 random bytes read as a positive integer (derInteger keeps it positive); zero is not a serial. */
function randomSerial(): Buffer {
  for (;;) {
    const serial = randomBytes(16);
    if (serial.some((byte) => byte !== 0)) return serial;
  }
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return derSequence(derOid(oid), ...(critical ? [derBoolean(true)] : []), derOctetString(value));
}

/** `O=…, …, CN=…`, one attribute per RDN, as UTF8String (RFC 5280 4.1.2.6). */
function encodeName(commonName: string, organizations: readonly string[]): Buffer {
  const rdn = (oid: string, value: string): Buffer =>
    derSetOf(derSequence(derOid(oid), derUtf8String(value)));
  return derSequence(
    ...organizations.map((organization) => rdn(OID.organizationName, organization)),
    rdn(OID.commonName, commonName),
  );
}

/** SHA-1 of the subjectPublicKey bits, the key identifier of RFC 5280 4.2.1.2 method 1. */
function subjectKeyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const [, subjectPublicKey] = readDerChildren(readDerElement(spki).content);
  if (subjectPublicKey?.tag !== DerTag.BIT_STRING) {
    throw new InvalidArgumentError('read public key: the SubjectPublicKeyInfo has no key bits', 'publicKey');
  }
  return createHash('sha1').update(subjectPublicKey.content.subarray(1)).digest();
}

function encodeSubjectAltNames(options: CertificateOptions, action: string): Buffer[] {
  const dnsNames = checkList(options.dnsNames, 'dnsNames', MAX_SUBJECT_ALT_NAMES, action);
  const ipAddresses = checkList(options.ipAddresses, 'ipAddresses', MAX_SUBJECT_ALT_NAMES, action);
  if (dnsNames.length + ipAddresses.length > MAX_SUBJECT_ALT_NAMES) {
    throw new InvalidArgumentError(
      `${action}: ${dnsNames.length + ipAddresses.length} DNS names and IP addresses; at most ${MAX_SUBJECT_ALT_NAMES} fit one certificate`,
      'dnsNames',
    );
  }
  const encoded = new Map<string, Buffer>();
  dnsNames.forEach((name, index) => {
    checkDnsName(name, `dnsNames[${index}]`, action);
    // dNSName [2] IMPLICIT IA5String; DNS is case-insensitive, so one spelling per name
    const generalName = derImplicit(2, Buffer.from(name.toLowerCase(), 'ascii'));
    encoded.set(generalName.toString('hex'), generalName);
  });
  ipAddresses.forEach((address, index) => {
    // iPAddress [7] IMPLICIT OCTET STRING: 4 or 16 bytes, so `::1` and `0::1` are one entry
    const generalName = derImplicit(7, ipAddressBytes(address, `ipAddresses[${index}]`, action));
    encoded.set(generalName.toString('hex'), generalName);
  });
  return [...encoded.values()];
}

// ---- validating input ----

function checkName(value: unknown, field: string, action: string): asserts value is string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InvalidArgumentError(
      `${action}: ${field} is empty; it names who the certificate is for`,
      field,
    );
  }
  if (value.length > MAX_NAME_LENGTH) {
    throw new InvalidArgumentError(
      `${action}: ${field} is ${value.length} characters long; at most ${MAX_NAME_LENGTH} are allowed`,
      field,
    );
  }
  if (/[\p{Cc}\p{Cs}]/u.test(value)) {
    throw new InvalidArgumentError(
      `${action}: ${field} ${JSON.stringify(value)} holds a control character or a lone surrogate`,
      field,
    );
  }
}

function checkList<T>(
  value: readonly T[] | undefined,
  field: string,
  max: number,
  action: string,
): readonly T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InvalidArgumentError(`${action}: ${field} is not a list`, field);
  if (value.length > max) {
    throw new InvalidArgumentError(
      `${action}: ${field} has ${value.length} entries; at most ${max} are allowed`,
      field,
    );
  }
  return value;
}

function checkUsages(value: readonly CertificateUsage[] | undefined, action: string): CertificateUsage[] {
  const usages = checkList(value, 'usages', MAX_USAGES, action);
  if (usages.length === 0) {
    throw new InvalidArgumentError(
      `${action}: usages is empty; give "server auth", "client auth" or both`,
      'usages',
    );
  }
  usages.forEach((usage, index) => {
    if (!Object.hasOwn(USAGE_OIDS, usage)) {
      throw new InvalidArgumentError(
        `${action}: usages[${index}] ${JSON.stringify(usage)} is not one of "server auth", "client auth"`,
        `usages[${index}]`,
      );
    }
  });
  return [...new Set(usages)];
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A host name of RFC 1123 labels, optionally with `*` as its whole first label (a wildcard). */
function checkDnsName(name: unknown, field: string, action: string): asserts name is string {
  if (typeof name !== 'string' || name === '') {
    throw new InvalidArgumentError(`${action}: ${field} is empty`, field);
  }
  if (isIP(name) !== 0) {
    throw new InvalidArgumentError(
      `${action}: ${field} "${name}" is an IP address; put it in ipAddresses (clients never match an IP against a DNS name)`,
      field,
    );
  }
  const labels = name.split('.');
  const valid =
    name.length <= 253 &&
    labels.every(
      (label, index) => DNS_LABEL.test(label) || (index === 0 && label === '*' && labels.length > 1),
    );
  if (!valid) {
    throw new InvalidArgumentError(
      `${action}: ${field} ${JSON.stringify(name)} is not a DNS name (dot-separated labels of letters, digits and inner hyphens, at most 63 characters each and 253 in all; "*" only as the whole first label)`,
      field,
    );
  }
}

/** The 4 (IPv4) or 16 (IPv6) bytes of an address. */
function ipAddressBytes(address: unknown, field: string, action: string): Buffer {
  if (typeof address === 'string' && address.includes('%')) {
    throw new InvalidArgumentError(
      `${action}: ${field} "${address}" has a zone (%…), which a certificate cannot hold; give the address alone`,
      field,
    );
  }
  const family = typeof address === 'string' ? isIP(address) : 0;
  if (family === 0) {
    throw new InvalidArgumentError(
      `${action}: ${field} ${JSON.stringify(address)} is not an IPv4 or IPv6 address; host names go in dnsNames`,
      field,
    );
  }
  const text = address as string;
  if (family === 4) return Buffer.from(text.split('.').map(Number));
  // isIP has checked the syntax: groups of hex, at most one "::", maybe a dotted IPv4 tail
  const groups = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [parseInt(group, 16)];
          const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headGroups = groups(head);
  const tailGroups = tail === undefined ? [] : groups(tail);
  const zeros = new Array<number>(8 - headGroups.length - tailGroups.length).fill(0);
  const bytes = Buffer.alloc(16);
  [...headGroups, ...zeros, ...tailGroups].forEach((group, index) => bytes.writeUInt16BE(group, index * 2));
  return bytes;
}

function checkSubjectKey(publicKey: unknown, action: string): asserts publicKey is KeyObject {
  if (!(publicKey instanceof KeyObject) || publicKey.type !== 'public') {
    throw new InvalidArgumentError(
      `${action}: publicKey is not a public KeyObject (read one with crypto.createPublicKey)`,
      'publicKey',
    );
  }
  const details = publicKey.asymmetricKeyDetails ?? {};
  const accepted =
    (publicKey.asymmetricKeyType === 'ec' &&
      (details.namedCurve === 'prime256v1' || details.namedCurve === 'secp384r1')) ||
    (publicKey.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= 2048) ||
    publicKey.asymmetricKeyType === 'ed25519';
  if (!accepted) {
    throw new InvalidArgumentError(
      `${action}: publicKey is ${describeKey(publicKey)}; use ECDSA P-256 or P-384, RSA of 2048 bits or more, or Ed25519`,
      'publicKey',
    );
  }
}

function checkValidity(options: ValidityOptions, defaultDays: number, action: string): Validity {
  const checkDate = (value: unknown, field: string): Date | undefined => {
    if (value === undefined) return undefined;
    if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
      throw new InvalidArgumentError(`${action}: ${field} is not a valid Date`, field);
    }
    const year = value.getUTCFullYear();
    if (year < 1950 || year > 9999) {
      throw new InvalidArgumentError(
        `${action}: ${field} ${value.toISOString()} is outside the years 1950-9999 a certificate can hold`,
        field,
      );
    }
    return value;
  };
  const now = checkDate(options.now, 'now') ?? new Date();
  const notBefore = checkDate(options.notBefore, 'notBefore') ?? new Date(now.getTime() - CLOCK_SKEW_MS);
  const notAfter = checkDate(options.notAfter, 'notAfter') ?? new Date(now.getTime() + defaultDays * DAY_MS);
  if (notAfter.getTime() <= now.getTime()) {
    throw new InvalidArgumentError(
      `${action}: notAfter ${notAfter.toISOString()} is in the past (now is ${now.toISOString()}); the certificate would never be valid`,
      'notAfter',
    );
  }
  if (notBefore.getTime() >= notAfter.getTime()) {
    throw new InvalidArgumentError(
      `${action}: notBefore ${notBefore.toISOString()} is not before notAfter ${notAfter.toISOString()}`,
      'notBefore',
    );
  }
  return { now, notBefore, notAfter };
}

// ---- reading certificates ----

interface CertificateFields {
  /** The subject Name, as encoded (tag and length included). */
  subjectName: Buffer;
  /** Extension OID → extnValue content (the DER inside the OCTET STRING). */
  extensions: Map<string, Buffer>;
}

/** The parts of a certificate Node does not expose: the subject's bytes and the raw extensions. */
function readCertificateFields(certificate: X509Certificate): CertificateFields {
  const what = 'certificate';
  const [tbs] = readDerChildren(readDerElement(certificate.raw, 0, what).content, what);
  const fields = readDerChildren(tbsContent(tbs), what);
  // version [0] is optional; then serial, signature, issuer, validity, subject
  const first = fields[0]?.tag === (DerTag.CONTEXT_SPECIFIC | DerTag.CONSTRUCTED | 0) ? 1 : 0;
  const subject = fields[first + 4];
  if (subject?.tag !== DerTag.SEQUENCE) {
    throw new InvalidArgumentError('read certificate: it has no subject Name', what);
  }
  const extensions = new Map<string, Buffer>();
  const wrapper = fields.find((field) => field.tag === (DerTag.CONTEXT_SPECIFIC | DerTag.CONSTRUCTED | 3));
  if (wrapper !== undefined) {
    for (const entry of readDerChildren(readDerElement(wrapper.content, 0, what).content, what)) {
      const parts = readDerChildren(entry.content, what);
      const oid = parts[0];
      const value = parts[parts.length - 1];
      if (oid?.tag !== DerTag.OBJECT_IDENTIFIER || value?.tag !== DerTag.OCTET_STRING) {
        throw new InvalidArgumentError(
          'read certificate: an extension is not an OID and an OCTET STRING',
          what,
        );
      }
      extensions.set(readDerOid(oid.content, 'extension OID'), value.content);
    }
  }
  return { subjectName: Buffer.from(subject.encoded), extensions };
}

function tbsContent(tbs: DerElement | undefined): Buffer {
  if (tbs?.tag !== DerTag.SEQUENCE) {
    throw new InvalidArgumentError('read certificate: it has no tbsCertificate', 'certificate');
  }
  return tbs.content;
}

/** Whether a basicConstraints value (its DER) says CA:TRUE: a SEQUENCE starting with BOOLEAN TRUE. */
function allowsCa(basicConstraints: Buffer | undefined): boolean {
  if (basicConstraints === undefined) return false;
  const [cA] = readDerChildren(
    readDerElement(basicConstraints, 0, 'basicConstraints').content,
    'basicConstraints',
  );
  return cA?.tag === DerTag.BOOLEAN && cA.content.length === 1 && cA.content[0] !== 0;
}

/** Whether a named-bit BIT STRING (its DER, tag included) has `bit` set. */
function hasNamedBit(bitString: Buffer, bit: number): boolean {
  const { content } = readDerElement(bitString, 0, 'keyUsage');
  const octet = content[1 + (bit >> 3)];
  return octet !== undefined && (octet & (0x80 >> (bit & 7))) !== 0;
}

function commonNameOf(certificate: X509Certificate): string {
  return /^CN=(.*)$/m.exec(certificate.subject)?.[1] ?? certificate.subject;
}

function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') return `ECDSA ${details.namedCurve ?? 'on an unknown curve'}`;
  if (key.asymmetricKeyType === 'rsa') return `RSA ${details.modulusLength ?? '?'}-bit`;
  return key.asymmetricKeyType ?? `a ${key.type} key`;
}

function formatMode(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

function notFoundAsFalse(err: unknown): false {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
  throw err;
}
