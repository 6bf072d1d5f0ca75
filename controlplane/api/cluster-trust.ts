/**
 * The cluster's trust, as the control plane holds it: the cluster CA (made on the first start when
 * its directory has none), the trust bundle clients verify the API with and join tokens pin, and
 * the API's serving certificate.
 *
 *   <ca dir>/ca.crt, ca.key     the cluster CA (`skiff up`: <state>/pki, shared with etcd's
 *                               certificates; `skiff controlplane`: --cluster-ca-dir, default
 *                               <state-dir>/pki)
 *
 * The API certificate is issued from the CA at every start, in memory, for the names the API is
 * reached by: its listen host (every interface address when it listens on all), loopback,
 * `localhost`, this host's name and `--tls-san` entries. An operator may serve a certificate of
 * their own instead (--tls-cert-file/--tls-private-key-file, and --tls-ca-file when another CA
 * issued it): the bundle then holds that CA and the cluster CA, which still issues and verifies
 * node certificates.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, errorMessage } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';
import {
  CertificateAuthority,
  privateKeyToPem,
  readCertificateAuthority,
  writeCertificateAuthority,
} from '../../proto/support/pki.js';
import { joinTrustBundle, trustBundleHash } from '../../proto/support/trust-bundle.js';

export interface ClusterTrustOptions {
  /** Where ca.crt and ca.key are; a new CA is made there when both are missing. */
  caDir: string;
  /** The API's listen host (`0.0.0.0` / `::`: every address of this host). */
  apiHost: string;
  /** More names and addresses the API is reached by (k3s's --tls-san). */
  tlsSans?: readonly string[];
  /** An API certificate of the operator's, and the CA that issued it when not the cluster CA. */
  servingFiles?: { certFile: string; keyFile: string; caFile?: string };
  log: Logger;
  now?: () => Date;
}

export interface ClusterTrust {
  /** Issues node certificates and verifies client certificates. */
  ca: CertificateAuthority;
  /** PEM: what a client verifies the API with (the cluster CA, and the serving CA when another). */
  bundle: string;
  /** What join tokens pin: trustBundleHash(bundle). */
  bundleHash: string;
  /** The API's certificate (chain) and private key, PEM. */
  serving: { cert: string; key: string };
}

const UNSPECIFIED = new Set(['', '0.0.0.0', '::', '[::]']);

/** The DNS names and IP addresses the API certificate names (see the file's comment). */
export function apiCertificateHosts(
  apiHost: string,
  tlsSans: readonly string[] = [],
  interfaces: () => string[] = interfaceAddresses,
  hostName: () => string = hostname,
): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames = new Set<string>(['localhost']);
  const ipAddresses = new Set<string>(['127.0.0.1', '::1']);
  const add = (host: string): void => {
    const bare = host.replace(/^\[(.*)\]$/, '$1');
    if (isIP(bare) !== 0) ipAddresses.add(bare);
    else if (/^[a-z0-9*]([a-z0-9.-]*[a-z0-9])?$/i.test(bare)) dnsNames.add(bare.toLowerCase());
  };
  add(hostName());
  // link-local IPv6 addresses need a zone, which a certificate cannot hold
  if (UNSPECIFIED.has(apiHost))
    interfaces()
      .filter((address) => !/^fe80:/i.test(address))
      .forEach(add);
  else add(apiHost);
  for (const san of tlsSans) {
    const bare = san.replace(/^\[(.*)\]$/, '$1');
    if (isIP(bare) === 0 && !/^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(bare)) {
      throw new InvalidArgumentError(
        `--tls-san ${JSON.stringify(san)}: not a DNS name or an IP address`,
        'tls-san',
      );
    }
    add(bare);
  }
  return { dnsNames: [...dnsNames], ipAddresses: [...ipAddresses] };
}

/** This host's addresses. */
function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((each) => each.address);
}

/** The CA in `dir`, or a new one written there when neither file exists. */
async function caOf(dir: string, log: Logger): Promise<CertificateAuthority> {
  try {
    return await readCertificateAuthority(dir);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const ca = CertificateAuthority.create({ commonName: 'skiff-cluster-ca' });
    try {
      await writeCertificateAuthority(dir, ca);
    } catch (writeErr) {
      // one of the two files is there: the read's error names the one missing
      if (writeErr instanceof AlreadyExistsError) throw err;
      throw writeErr;
    }
    log.info({ dir }, 'cluster CA created');
    return ca;
  }
}

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`start control plane: read ${flag} ${file}: ${errorMessage(err)}`, flag, {
      cause: err,
    });
  }
}

export async function loadClusterTrust(options: ClusterTrustOptions): Promise<ClusterTrust> {
  const ca = await caOf(options.caDir, options.log);
  if (options.servingFiles !== undefined) {
    const { certFile, keyFile, caFile } = options.servingFiles;
    const cert = await readPem(certFile, '--tls-cert-file');
    const key = await readPem(keyFile, '--tls-private-key-file');
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(cert);
      if (!leaf.checkPrivateKey(createPrivateKey(key))) throw new Error('the key is not the certificate’s');
    } catch (err) {
      throw new InvalidArgumentError(
        `start control plane: --tls-cert-file ${certFile} and --tls-private-key-file ${keyFile}: ${errorMessage(err)}`,
        'tls-cert-file',
        { cause: err },
      );
    }
    const servingCa = caFile !== undefined ? await readPem(caFile, '--tls-ca-file') : ca.certificatePem;
    const bundle = joinTrustBundle(servingCa, ca.certificatePem);
    return { ca, bundle, bundleHash: trustBundleHash(bundle), serving: { cert, key } };
  }
  const hosts = apiCertificateHosts(options.apiHost, options.tlsSans);
  const pair = ca.issueKeyPair({
    commonName: 'skiff-apiserver',
    usages: ['server auth'],
    ...hosts,
    ...(options.now !== undefined ? { now: options.now() } : {}),
  });
  const bundle = ca.certificatePem;
  return {
    ca,
    bundle,
    bundleHash: trustBundleHash(bundle),
    serving: { cert: pair.certificate.toString(), key: privateKeyToPem(pair.privateKey) },
  };
}
