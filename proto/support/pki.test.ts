import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../errors.js';
import { readDerChildren, readDerElement, type DerElement } from './der.js';
import {
  CA_CERTIFICATE_FILE,
  CA_PRIVATE_KEY_FILE,
  CertificateAuthority,
  privateKeyToPem,
  readCertificateAuthority,
  writeCertificateAuthority,
  writePrivateFiles,
  type CertificateOptions,
} from './pki.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const scratch = mkdtempSync(join(tmpdir(), 'skiff-pki-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs openssl; a machine without it fails the test with the package to install. */
function openssl(args: string[], input?: string): { status: number | null; output: string } {
  const result = spawnSync('openssl', args, { input, encoding: 'utf8' });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail('openssl is not installed: apt-get install -y openssl');
  }
  if (result.error !== undefined) throw result.error;
  return { status: result.status, output: result.stdout + result.stderr };
}

function opensslText(certificate: X509Certificate): string {
  const { status, output } = openssl(['x509', '-noout', '-text'], certificate.toString());
  assert.equal(status, 0, output);
  return output;
}

let pemCount = 0;
function pemFile(pem: string): string {
  const path = join(scratch, `${++pemCount}.pem`);
  writeFileSync(path, pem);
  return path;
}

/** `openssl verify` with RFC 5280 strictness, for a TLS server (sslserver) or client (sslclient). */
function opensslVerify(
  ca: X509Certificate,
  leaf: X509Certificate,
  purpose: 'sslserver' | 'sslclient',
): { ok: boolean; output: string } {
  const { status, output } = openssl([
    'verify',
    '-x509_strict',
    '-purpose',
    purpose,
    '-CAfile',
    pemFile(ca.toString()),
    pemFile(leaf.toString()),
  ]);
  return { ok: status === 0 && /: OK$/m.test(output), output };
}

/** A CA made by `openssl req -x509`: CA:TRUE, its SKI and AKI, and the keyUsage given. */
function opensslCa(
  commonName: string,
  newKey: string[],
  keyUsage: string,
): { certificatePem: string; privateKeyPem: string } {
  const keyFile = join(scratch, `${commonName}.key`);
  const certificateFile = join(scratch, `${commonName}.crt`);
  const { status, output } = openssl([
    'req', '-x509', '-nodes', '-newkey', ...newKey, '-keyout', keyFile, '-out', certificateFile,
    '-subj', `/O=Example/CN=${commonName}`, '-days', '30', '-addext', `keyUsage=${keyUsage}`,
  ]); // prettier-ignore
  assert.equal(status, 0, output);
  return {
    certificatePem: readFileSync(certificateFile, 'utf8'),
    privateKeyPem: readFileSync(keyFile, 'utf8'),
  };
}

/** tbsCertificate's fields: version, serial, signature, issuer, validity, subject, key, extensions. */
function tbsFields(certificate: X509Certificate): DerElement[] {
  const [tbs] = readDerChildren(readDerElement(certificate.raw).content);
  return readDerChildren(tbs!.content);
}

/** The colon-hex value openssl prints under an extension's heading. */
function extensionValue(text: string, heading: string): string | undefined {
  return new RegExp(`${heading}:[^\\n]*\\n\\s*([^\\n]+)`).exec(text)?.[1]?.trim();
}

const ca = CertificateAuthority.create({ commonName: 'skiff-ca' });
const otherCa = CertificateAuthority.create({ commonName: 'skiff-ca' }); // same name, other key

const etcdServer: CertificateOptions = {
  commonName: 'etcd',
  usages: ['server auth', 'client auth'],
  dnsNames: ['localhost', 'etcd.skiff.local', '*.etcd.skiff.local'],
  ipAddresses: ['127.0.0.1', '::1', '10.0.0.7', 'fd00::7'],
};

describe('CertificateAuthority.create', () => {
  test('makes a P-256 self-signed CA certificate with critical CA:TRUE and keyCertSign, cRLSign', () => {
    const { certificate, privateKey } = ca;
    assert.equal(certificate.ca, true);
    assert.equal(certificate.subject, 'CN=skiff-ca');
    assert.equal(certificate.issuer, 'CN=skiff-ca');
    assert.equal(privateKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(certificate.signatureAlgorithm, 'ecdsa-with-SHA256');
    assert.ok(certificate.verify(certificate.publicKey));
    assert.ok(certificate.checkIssued(certificate));
    assert.ok(certificate.checkPrivateKey(privateKey));
    const text = opensslText(certificate);
    assert.match(text, /Version: 3 \(0x2\)/);
    assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0\n/);
    assert.match(text, /X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    assert.match(
      extensionValue(text, 'X509v3 Subject Key Identifier') ?? '',
      /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/,
    );
  });

  test('is valid from five minutes before now for ten years unless told otherwise', () => {
    const now = new Date('2030-06-01T12:00:00Z');
    const dated = CertificateAuthority.create({ commonName: 'dated', now });
    assert.equal(dated.certificate.validFromDate.toISOString(), '2030-06-01T11:55:00.000Z');
    assert.equal(dated.certificate.validToDate.getTime(), now.getTime() + 3650 * DAY_MS);
    const notAfter = new Date('2071-02-03T04:05:06Z');
    const long = CertificateAuthority.create({ commonName: 'long', notAfter });
    assert.equal(long.certificate.validToDate.toISOString(), notAfter.toISOString());
  });
});

describe('CertificateAuthority.issue', () => {
  const server = ca.issueKeyPair(etcdServer);

  test('signs a certificate that Node verifies against the CA and no other', () => {
    const { certificate } = server;
    assert.ok(certificate.verify(ca.certificate.publicKey));
    assert.ok(certificate.checkIssued(ca.certificate));
    assert.equal(certificate.verify(otherCa.certificate.publicKey), false);
    assert.equal(certificate.checkIssued(otherCa.certificate), false, 'the key identifiers differ');
    assert.ok(certificate.checkPrivateKey(server.privateKey));
    assert.equal(certificate.ca, false);
    assert.equal(certificate.issuer, 'CN=skiff-ca');
    assert.equal(certificate.subject, 'CN=etcd');
    // the issuer is the CA's subject byte for byte: Go (etcd) chains by comparing raw names
    assert.ok(tbsFields(certificate)[3]!.encoded.equals(tbsFields(ca.certificate)[5]!.encoded));
  });

  test('names its hosts in subjectAltName and its usages in extKeyUsage', () => {
    const { certificate } = server;
    assert.equal(
      certificate.subjectAltName,
      'DNS:localhost, DNS:etcd.skiff.local, DNS:*.etcd.skiff.local, IP Address:127.0.0.1, ' +
        'IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.7, IP Address:FD00:0:0:0:0:0:0:7',
    );
    assert.deepEqual(certificate.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(certificate.checkHost('localhost'), 'localhost');
    assert.equal(certificate.checkHost('member-1.etcd.skiff.local'), '*.etcd.skiff.local');
    assert.equal(certificate.checkHost('etcd'), undefined, 'the common name is not a host name');
    assert.equal(certificate.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(certificate.checkIP('::1'), '::1');
    assert.equal(certificate.checkIP('fd00:0::7'), 'fd00:0::7');
    assert.equal(certificate.checkIP('10.0.0.8'), undefined);
  });

  test('openssl accepts it for a TLS server and client and shows every extension', () => {
    const asServer = opensslVerify(ca.certificate, server.certificate, 'sslserver');
    assert.ok(asServer.ok, asServer.output);
    assert.doesNotMatch(asServer.output, /error|warning/i);
    assert.ok(opensslVerify(ca.certificate, server.certificate, 'sslclient').ok);
    assert.equal(opensslVerify(otherCa.certificate, server.certificate, 'sslserver').ok, false);
    const text = opensslText(server.certificate);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
    assert.match(
      text,
      /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication, TLS Web Client Authentication\n/,
    );
    assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
    assert.match(text, /X509v3 Subject Alternative Name: \n\s+DNS:localhost, .*IP Address:127\.0\.0\.1/);
    const caSki = extensionValue(opensslText(ca.certificate), 'X509v3 Subject Key Identifier');
    assert.ok(caSki !== undefined);
    assert.equal(extensionValue(text, 'X509v3 Authority Key Identifier')?.replace(/^keyid:/, ''), caSki);
    assert.notEqual(extensionValue(text, 'X509v3 Subject Key Identifier'), caSki);
  });

  test('a client certificate carries its groups as O and is refused as a server certificate', () => {
    const client = ca.issueKeyPair({
      commonName: 'skiff-controlplane',
      organizations: ['system:masters', 'skiff:etcd-clients'],
      usages: ['client auth'],
    });
    assert.equal(client.certificate.subject, 'O=system:masters\nO=skiff:etcd-clients\nCN=skiff-controlplane');
    assert.deepEqual(client.certificate.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(client.certificate.subjectAltName, undefined);
    assert.ok(opensslVerify(ca.certificate, client.certificate, 'sslclient').ok);
    const asServer = opensslVerify(ca.certificate, client.certificate, 'sslserver');
    assert.equal(asServer.ok, false);
    assert.match(asServer.output, /unsuitable certificate purpose/);
    assert.match(
      opensslText(client.certificate),
      /Subject: O = system:masters, O = skiff:etcd-clients, CN = skiff-controlplane/,
    );
  });

  test('serials are 16 random bytes, positive in DER, and differ', () => {
    const serials = new Set<string>();
    for (let index = 0; index < 64; index++) {
      const { certificate } = ca.issueKeyPair({ commonName: `n${index}`, usages: ['client auth'] });
      const serial = tbsFields(certificate)[1]!;
      assert.equal(serial.tag, 0x02);
      assert.ok(serial.content.length >= 1 && serial.content.length <= 17, `${serial.content.length} octets`);
      assert.equal(serial.content[0]! & 0x80, 0, 'positive');
      if (serial.content.length === 17) assert.ok(serial.content[0] === 0 && serial.content[1]! >= 0x80);
      serials.add(serial.content.toString('hex'));
    }
    assert.equal(serials.size, 64);
  });

  test('certifies a key someone else holds; keyEncipherment only for RSA, which enciphers in TLS 1.2', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaCertificate = ca.issue(rsa.publicKey, { commonName: 'rsa-node', usages: ['client auth'] });
    assert.ok(rsaCertificate.checkPrivateKey(rsa.privateKey));
    assert.match(
      opensslText(rsaCertificate),
      /X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/,
    );
    const ed = generateKeyPairSync('ed25519');
    const edCertificate = ca.issue(ed.publicKey, { commonName: 'ed-node', usages: ['client auth'] });
    assert.ok(opensslVerify(ca.certificate, edCertificate, 'sslclient').ok);
    const pemKey = createPublicKey(
      generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey.export({
        type: 'spki',
        format: 'pem',
      }),
    );
    assert.ok(
      ca.issue(pemKey, { commonName: 'p384', usages: ['client auth'] }).verify(ca.certificate.publicKey),
    );
  });

  test('lasts a year from five minutes before now, and never longer than its CA', () => {
    const now = new Date('2031-01-02T03:04:05Z');
    const { certificate } = ca.issueKeyPair({ commonName: 'dated', usages: ['client auth'], now });
    assert.equal(certificate.validFromDate.toISOString(), '2031-01-02T02:59:05.000Z');
    assert.equal(certificate.validToDate.getTime(), now.getTime() + 365 * DAY_MS);
    const shortCa = CertificateAuthority.create({
      commonName: 'short',
      notAfter: new Date(Date.now() + 30 * DAY_MS),
    });
    const clamped = shortCa.issueKeyPair({ commonName: 'clamped', usages: ['client auth'] }).certificate;
    assert.equal(clamped.validToDate.getTime(), shortCa.certificate.validToDate.getTime());
  });

  test('writes UTCTime up to 2049 and GeneralizedTime after, which openssl and Node read back', () => {
    const longCa = CertificateAuthority.create({
      commonName: 'long',
      notAfter: new Date('2070-01-01T00:00:00Z'),
    });
    const notAfter = new Date('2060-07-08T09:10:11Z');
    const { certificate } = longCa.issueKeyPair({ commonName: 'far', usages: ['client auth'], notAfter });
    const [notBeforeTime, notAfterTime] = readDerChildren(tbsFields(certificate)[4]!.content);
    assert.equal(notBeforeTime!.tag, 0x17, 'UTCTime');
    assert.equal(notAfterTime!.tag, 0x18, 'GeneralizedTime');
    assert.equal(notAfterTime!.content.toString('ascii'), '20600708091011Z');
    assert.equal(certificate.validToDate.toISOString(), notAfter.toISOString());
    assert.match(opensslText(certificate), /Not After : Jul {2}8 09:10:11 2060 GMT/);
    assert.ok(opensslVerify(longCa.certificate, certificate, 'sslclient').ok);
    assert.match(opensslText(longCa.certificate), /Not After : Jan {2}1 00:00:00 2070 GMT/);
  });

  test('a hundred host names make extensions longer than 256 bytes, still read by Node and openssl', () => {
    const dnsNames = Array.from({ length: 98 }, (_, index) => `node-${index}.skiff.local`);
    const { certificate } = ca.issueKeyPair({
      commonName: 'many',
      usages: ['server auth'],
      dnsNames,
      ipAddresses: ['192.168.0.1', '2001:db8::1'],
    });
    assert.ok(certificate.raw.length > 2000);
    assert.equal(certificate.subjectAltName?.split(', ').length, 100);
    assert.equal(certificate.checkHost('node-97.skiff.local'), 'node-97.skiff.local');
    assert.ok(opensslVerify(ca.certificate, certificate, 'sslserver').ok);
  });

  test('names equal after normalizing (case, IPv6 spelling) appear once', () => {
    const { certificate } = ca.issueKeyPair({
      commonName: 'dupes',
      usages: ['server auth'],
      dnsNames: ['LocalHost', 'localhost'],
      ipAddresses: ['::1', '0:0::1', '::ffff:10.1.2.3'],
    });
    assert.equal(
      certificate.subjectAltName,
      'DNS:localhost, IP Address:0:0:0:0:0:0:0:1, IP Address:0:0:0:0:0:FFFF:A01:203',
    );
  });
});

describe('input checks', () => {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const issue = (options: Partial<CertificateOptions>) => (): unknown =>
    ca.issue(key.publicKey, { commonName: 'x', usages: ['client auth'], ...options } as CertificateOptions);
  const past = new Date(Date.now() - DAY_MS);
  const cases: Array<[string, () => unknown, string, RegExp]> = [
    ['an empty CN', issue({ commonName: '' }), 'commonName', /commonName is empty/],
    ['a blank CN', issue({ commonName: '  ' }), 'commonName', /commonName is empty/],
    ['a CN with a newline', issue({ commonName: 'a\nO=admin' }), 'commonName', /control character/],
    ['a CN with NUL', issue({ commonName: 'a\0b' }), 'commonName', /control character/],
    ['a CN with a lone surrogate', issue({ commonName: 'a\ud800' }), 'commonName', /lone surrogate/],
    ['a CN of 300 characters', issue({ commonName: 'a'.repeat(300) }), 'commonName', /at most 256/],
    ['a non-string CN', issue({ commonName: 7 as unknown as string }), 'commonName', /empty/],
    ['an empty O', issue({ organizations: ['ok', ''] }), 'organizations[1]', /organizations\[1\] is empty/],
    [
      'an IP that is not one',
      issue({ ipAddresses: ['1.2.3'] }),
      'ipAddresses[0]',
      /"1.2.3" is not an IPv4 or IPv6/,
    ],
    [
      'an IPv4 octet above 255',
      issue({ ipAddresses: ['::1', '256.0.0.1'] }),
      'ipAddresses[1]',
      /not an IPv4/,
    ],
    [
      'a host name as IP',
      issue({ ipAddresses: ['localhost'] }),
      'ipAddresses[0]',
      /host names go in dnsNames/,
    ],
    ['an IPv6 zone', issue({ ipAddresses: ['fe80::1%eth0'] }), 'ipAddresses[0]', /zone/],
    [
      'an IP as DNS name',
      issue({ dnsNames: ['127.0.0.1'] }),
      'dnsNames[0]',
      /is an IP address; put it in ipAddresses/,
    ],
    ['an underscore', issue({ dnsNames: ['bad_name.local'] }), 'dnsNames[0]', /is not a DNS name/],
    ['an empty label', issue({ dnsNames: ['a..b'] }), 'dnsNames[0]', /is not a DNS name/],
    ['a leading hyphen', issue({ dnsNames: ['-a.b'] }), 'dnsNames[0]', /is not a DNS name/],
    ['an inner wildcard', issue({ dnsNames: ['a.*.b'] }), 'dnsNames[0]', /is not a DNS name/],
    ['a bare wildcard', issue({ dnsNames: ['*'] }), 'dnsNames[0]', /is not a DNS name/],
    ['a label of 64', issue({ dnsNames: [`${'a'.repeat(64)}.b`] }), 'dnsNames[0]', /is not a DNS name/],
    ['non-ASCII', issue({ dnsNames: ['bücher.de'] }), 'dnsNames[0]', /is not a DNS name/],
    ['an empty DNS name', issue({ dnsNames: [''] }), 'dnsNames[0]', /is empty/],
    [
      '101 names',
      issue({ dnsNames: Array.from({ length: 101 }, (_, index) => `h${index}`) }),
      'dnsNames',
      /at most 100/,
    ],
    ['no usages', issue({ usages: [] }), 'usages', /usages is empty/],
    [
      'an unknown usage',
      issue({ usages: ['server' as 'server auth'] }),
      'usages[0]',
      /"server" is not one of/,
    ],
    [
      'a server with no hosts',
      issue({ usages: ['server auth'] }),
      'dnsNames',
      /needs at least one dnsNames or ipAddresses/,
    ],
    ['notAfter in the past', issue({ notAfter: past }), 'notAfter', /notAfter .* is in the past/],
    ['notAfter now', issue({ now: past, notAfter: past }), 'notAfter', /is in the past/],
    [
      'notBefore after notAfter',
      issue({ notBefore: new Date(Date.now() + 3 * DAY_MS), notAfter: new Date(Date.now() + 2 * DAY_MS) }),
      'notBefore',
      /is not before notAfter/,
    ],
    [
      'notBefore after the CA expires',
      issue({
        notBefore: new Date(Date.now() + 4000 * DAY_MS),
        notAfter: new Date(Date.now() + 4001 * DAY_MS),
      }),
      'notBefore',
      /is not before .*, when CA "skiff-ca" expires/,
    ],
    ['an invalid date', issue({ notAfter: new Date('soon') }), 'notAfter', /not a valid Date/],
    [
      'a year past 9999',
      issue({ notAfter: new Date('+010000-01-01T00:00:00Z') }),
      'notAfter',
      /outside the years/,
    ],
    [
      'a private key as subject key',
      () => ca.issue(key.privateKey, { commonName: 'x', usages: ['client auth'] }),
      'publicKey',
      /not a public KeyObject/,
    ],
    [
      'an RSA key of 1024 bits',
      () =>
        ca.issue(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, {
          commonName: 'x',
          usages: ['client auth'],
        }),
      'publicKey',
      /RSA 1024-bit; use ECDSA P-256/,
    ],
    [
      'a CA with an empty CN',
      () => CertificateAuthority.create({ commonName: '' }),
      'commonName',
      /^create CA "": commonName is empty/,
    ],
    [
      'a CA that expired',
      () => CertificateAuthority.create({ commonName: 'ca', notAfter: past }),
      'notAfter',
      /^create CA "ca": notAfter .* is in the past/,
    ],
  ];
  for (const [name, call, field, message] of cases) {
    test(`refuses ${name}, naming ${field}`, () => {
      assert.throws(call, (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, `${String(err)}`);
        assert.equal(err.field, field);
        assert.match(err.message, message);
        return true;
      });
    });
  }

  test('a CA past its notAfter issues nothing, and says to make a new one', () => {
    const old = CertificateAuthority.create({
      commonName: 'old-ca',
      now: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-01-01T00:00:00Z'),
    });
    assert.throws(
      () => old.issueKeyPair({ commonName: 'late', usages: ['client auth'] }),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /^issue certificate "late": CA "old-ca" expired at 2021-01-01T00:00:00.000Z; create a new CA/.test(
          err.message,
        ),
    );
  });
});

describe('PEM', () => {
  test('a CA written as PEM loads back and issues certificates that verify against the original', () => {
    assert.match(
      ca.certificatePem,
      /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/,
    );
    assert.match(ca.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(privateKeyToPem(ca.privateKey), ca.privateKeyPem);
    const loaded = CertificateAuthority.fromPem({
      certificatePem: ca.certificatePem,
      privateKeyPem: ca.privateKeyPem,
    });
    assert.equal(loaded.certificate.fingerprint256, ca.certificate.fingerprint256);
    const { certificate } = loaded.issueKeyPair(etcdServer);
    assert.ok(certificate.checkIssued(ca.certificate));
    assert.ok(certificate.verify(ca.certificate.publicKey));
    assert.ok(opensslVerify(ca.certificate, certificate, 'sslserver').ok);
  });

  test('a P-256 CA made by openssl loads, and what it issues openssl verifies', () => {
    const foreign = CertificateAuthority.fromPem(
      opensslCa(
        'openssl-ca',
        ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
        'critical,keyCertSign,cRLSign',
      ),
    );
    const { certificate } = foreign.issueKeyPair(etcdServer);
    assert.equal(certificate.issuer, 'O=Example\nCN=openssl-ca');
    assert.ok(opensslVerify(foreign.certificate, certificate, 'sslserver').ok);
    assert.ok(certificate.validToDate.getTime() <= foreign.certificate.validToDate.getTime());
  });

  test('refuses what is not a CA with its key, saying which part is wrong', () => {
    const leaf = ca.issueKeyPair({ commonName: 'leaf', usages: ['client auth'] });
    const cases: Array<[string, { certificatePem: string; privateKeyPem: string }, string, RegExp]> = [
      [
        'garbage',
        { certificatePem: 'nope', privateKeyPem: ca.privateKeyPem },
        'certificatePem',
        /holds 0 certificates/,
      ],
      [
        'a broken certificate',
        {
          certificatePem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
          privateKeyPem: ca.privateKeyPem,
        },
        'certificatePem',
        /does not parse/,
      ],
      [
        'a bundle',
        { certificatePem: ca.certificatePem + otherCa.certificatePem, privateKeyPem: ca.privateKeyPem },
        'certificatePem',
        /holds 2 certificates/,
      ],
      [
        'no PEM at all',
        { certificatePem: undefined as unknown as string, privateKeyPem: '' },
        'certificatePem',
        /is not a PEM string/,
      ],
      [
        'a broken key',
        { certificatePem: ca.certificatePem, privateKeyPem: 'nope' },
        'privateKeyPem',
        /does not parse/,
      ],
      [
        'a leaf',
        { certificatePem: leaf.certificate.toString(), privateKeyPem: privateKeyToPem(leaf.privateKey) },
        'certificatePem',
        /"leaf": the certificate is not a CA certificate/,
      ],
      [
        'the key of another CA',
        { certificatePem: ca.certificatePem, privateKeyPem: otherCa.privateKeyPem },
        'privateKeyPem',
        /is not the key of the certificate/,
      ],
      [
        'an RSA CA',
        opensslCa('rsa-ca', ['rsa:2048'], 'critical,keyCertSign'),
        'privateKeyPem',
        /RSA 2048-bit; skiff's CA signs with ECDSA P-256 only/,
      ],
      [
        'a CA whose keyUsage does not sign certificates',
        opensslCa('crl-ca', ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'], 'critical,cRLSign'),
        'certificatePem',
        /"crl-ca": the certificate's keyUsage does not allow signing certificates/,
      ],
    ];
    for (const [name, pem, field, message] of cases) {
      assert.throws(
        () => CertificateAuthority.fromPem(pem),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.field === field && message.test(err.message),
        name,
      );
    }
  });
});

describe('CA files', () => {
  test('are written 0600 into a directory made 0700, and read back', async () => {
    const dir = join(mkdtempSync(join(scratch, 'files-')), 'pki', 'etcd');
    await writeCertificateAuthority(dir, ca);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(dir).sort(), [CA_CERTIFICATE_FILE, CA_PRIVATE_KEY_FILE]);
    for (const name of readdirSync(dir)) assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600, name);
    assert.equal(readFileSync(join(dir, CA_CERTIFICATE_FILE), 'utf8'), ca.certificatePem);
    const loaded = await readCertificateAuthority(dir);
    assert.equal(loaded.certificate.fingerprint256, ca.certificate.fingerprint256);
    assert.ok(loaded.privateKey.equals(ca.privateKey));
  });

  test('an existing CA is never replaced unless asked, and nothing is half-written', async () => {
    const dir = mkdtempSync(join(scratch, 'files-'));
    await writeCertificateAuthority(dir, ca);
    await assert.rejects(writeCertificateAuthority(dir, otherCa), (err: unknown) => {
      assert.ok(err instanceof AlreadyExistsError);
      assert.match(err.message, /ca\.key, ca\.crt already there; nothing was written/);
      return true;
    });
    assert.equal(
      (await readCertificateAuthority(dir)).certificate.fingerprint256,
      ca.certificate.fingerprint256,
    );
    // one file of the set is enough to refuse, and the other is then not written either
    rmSync(join(dir, CA_PRIVATE_KEY_FILE));
    await assert.rejects(writeCertificateAuthority(dir, otherCa), /ca\.crt already there/);
    assert.deepEqual(readdirSync(dir), [CA_CERTIFICATE_FILE]);
    await writeCertificateAuthority(dir, otherCa, { replace: true });
    assert.equal(
      (await readCertificateAuthority(dir)).certificate.fingerprint256,
      otherCa.certificate.fingerprint256,
    );
    assert.deepEqual(
      readdirSync(dir).sort(),
      [CA_CERTIFICATE_FILE, CA_PRIVATE_KEY_FILE],
      'no temp files left',
    );
  });

  test('reading says what is missing or exposed', async () => {
    const dir = mkdtempSync(join(scratch, 'files-'));
    await assert.rejects(
      readCertificateAuthority(dir),
      (err: unknown) =>
        err instanceof NotFoundError && err.message.includes(`${join(dir, CA_CERTIFICATE_FILE)} is missing`),
    );
    await writePrivateFiles(dir, { [CA_CERTIFICATE_FILE]: ca.certificatePem });
    await assert.rejects(
      readCertificateAuthority(dir),
      (err: unknown) => err instanceof NotFoundError && /ca\.key is missing/.test(err.message),
    );
    await writePrivateFiles(dir, { [CA_PRIVATE_KEY_FILE]: otherCa.privateKeyPem });
    await assert.rejects(
      readCertificateAuthority(dir),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === join(dir, CA_PRIVATE_KEY_FILE) &&
        err.message.endsWith(`(${join(dir, CA_PRIVATE_KEY_FILE)})`),
    );
    chmodSync(join(dir, CA_PRIVATE_KEY_FILE), 0o644);
    await assert.rejects(
      readCertificateAuthority(dir),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /readable by group or others \(mode 0644\); chmod 600/.test(err.message),
    );
  });

  test('writing refuses a directory others can write to, and names that are not plain file names', async () => {
    const open = mkdtempSync(join(scratch, 'files-'));
    chmodSync(open, 0o777);
    await assert.rejects(
      writePrivateFiles(open, { 'a.key': 'x' }),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /writable by group or others \(mode 0777\).*chmod 700/.test(err.message),
    );
    assert.deepEqual(readdirSync(open), []);
    for (const name of ['../a.key', 'a/b', '', '.', '..']) {
      await assert.rejects(
        writePrivateFiles(mkdtempSync(join(scratch, 'files-')), { [name]: 'x' }),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'files',
        name,
      );
    }
  });
});
