/**
 * A trust bundle: the CA certificate(s), in PEM, that a client verifies a skiff API server with
 * (the cluster CA; with an API certificate from another CA, that CA too). Its hash is what a join
 * token pins: SHA-256 over the DER bytes of its certificates, in order, as lowercase hex. For the
 * usual bundle of one CA that is the SHA-256 of the CA certificate's DER, what
 * `openssl x509 -in ca.crt -outform der | sha256sum` prints.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { InvalidArgumentError, errorMessage } from '../errors.js';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
/** A bundle of more certificates than this is not a CA bundle. */
const MAX_CERTIFICATES = 16;

/** The certificates of a PEM bundle, in order; InvalidArgumentError when there are none or one does not parse. */
export function bundleCertificates(pem: string, what = 'trust bundle'): X509Certificate[] {
  const blocks = typeof pem === 'string' ? (pem.match(PEM_BLOCK) ?? []) : [];
  if (blocks.length === 0) throw new InvalidArgumentError(`read ${what}: it holds no PEM certificate`);
  if (blocks.length > MAX_CERTIFICATES) {
    throw new InvalidArgumentError(
      `read ${what}: it holds ${blocks.length} certificates; at most ${MAX_CERTIFICATES} are read`,
    );
  }
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new InvalidArgumentError(
        `read ${what}: certificate ${index + 1} does not parse: ${errorMessage(err)}`,
        undefined,
        { cause: err },
      );
    }
  });
}

/** The hash a join token pins (see above). */
export function trustBundleHash(pem: string): string {
  const hash = createHash('sha256');
  for (const certificate of bundleCertificates(pem)) hash.update(certificate.raw);
  return hash.digest('hex');
}

/** The bundle of `pems` with each certificate once, in first-seen order. */
export function joinTrustBundle(...pems: string[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const pem of pems) {
    for (const certificate of bundleCertificates(pem)) {
      if (seen.has(certificate.fingerprint256)) continue;
      seen.add(certificate.fingerprint256);
      out.push(certificate.toString());
    }
  }
  return out.join('');
}
