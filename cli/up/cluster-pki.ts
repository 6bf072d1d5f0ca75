/**
 * The certificates of a local cluster, under `<state dir>/pki/` (directory 0700, files 0600):
 *
 *   ca.crt, ca.key                          the cluster's own CA (made on the first `skiff up`)
 *   etcd-server.crt/.key                    etcd's client URL (also dials itself: client auth too)
 *   etcd-peer.crt/.key                      etcd's peer URL
 *   controlplane-etcd-client.crt/.key       the only client etcd accepts: the control plane
 *   nats-server.crt/.key                    nats-server's TLS certificate
 *   controlplane-nats-client.crt/.key       the control plane's NATS client certificate (its
 *                                           subject CN=skiff-controlplane maps to the NATS user
 *                                           with every permission: nats-authorization.ts)
 *
 * etcd requires client certificates of this CA on both URLs, so a local user who can reach its
 * loopback port still cannot read a Secret or write a token record. Leaf certificates are issued
 * again when missing, not from this CA, or within 30 days of expiry; the CA is kept.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError } from '../../proto/errors.js';
import {
  CertificateAuthority,
  privateKeyToPem,
  readCertificateAuthority,
  writeCertificateAuthority,
  writePrivateFiles,
  type CertificateOptions,
} from '../../proto/support/pki.js';
import type { EtcdTls } from './etcd-process.js';

const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

export interface ClusterPki {
  dir: string;
  etcd: EtcdTls;
  /** What `skiff controlplane --etcd-cafile/--etcd-certfile/--etcd-keyfile` take. */
  controlplaneEtcdClient: { caFile: string; certFile: string; keyFile: string };
  /** nats-server's TLS files. */
  natsServer: { caFile: string; certFile: string; keyFile: string };
  /** What `skiff controlplane --nats-cafile/--nats-certfile/--nats-keyfile` take. */
  controlplaneNatsClient: { caFile: string; certFile: string; keyFile: string };
}

const LEAVES: Record<string, (host: string) => CertificateOptions> = {
  'etcd-server': (host) => ({
    commonName: 'skiff-etcd',
    usages: ['server auth', 'client auth'],
    ipAddresses: [host],
    dnsNames: ['localhost'],
  }),
  'etcd-peer': (host) => ({
    commonName: 'skiff-etcd-peer',
    usages: ['server auth', 'client auth'],
    ipAddresses: [host],
    dnsNames: ['localhost'],
  }),
  'controlplane-etcd-client': () => ({ commonName: 'skiff-controlplane', usages: ['client auth'] }),
  'nats-server': (host) => ({
    commonName: 'skiff-nats',
    usages: ['server auth'],
    ipAddresses: [host],
    dnsNames: ['localhost'],
  }),
  'controlplane-nats-client': () => ({ commonName: 'skiff-controlplane', usages: ['client auth'] }),
};

async function caOf(dir: string): Promise<CertificateAuthority> {
  try {
    return await readCertificateAuthority(dir);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const ca = CertificateAuthority.create({ commonName: 'skiff-cluster-ca' });
    await writeCertificateAuthority(dir, ca);
    return ca;
  }
}

async function stillGood(ca: CertificateAuthority, certPath: string): Promise<boolean> {
  try {
    const cert = new X509Certificate(await readFile(certPath));
    return (
      cert.checkIssued(ca.certificate) &&
      cert.verify(ca.certificate.publicKey) &&
      Date.parse(cert.validTo) - Date.now() > RENEW_BEFORE_MS
    );
  } catch {
    return false;
  }
}

/** Makes (or keeps) the cluster's CA and certificates for `host`; returns their paths. */
export async function ensureClusterPki(stateDir: string, host: string): Promise<ClusterPki> {
  const dir = join(stateDir, 'pki');
  const ca = await caOf(dir);
  const file = (name: string): string => join(dir, name);
  for (const [name, options] of Object.entries(LEAVES)) {
    if (await stillGood(ca, file(`${name}.crt`))) continue;
    const pair = ca.issueKeyPair(options(host));
    await writePrivateFiles(
      dir,
      { [`${name}.key`]: privateKeyToPem(pair.privateKey), [`${name}.crt`]: pair.certificate.toString() },
      { replace: true },
    );
  }
  const client = {
    caFile: file('ca.crt'),
    certFile: file('controlplane-etcd-client.crt'),
    keyFile: file('controlplane-etcd-client.key'),
  };
  return {
    dir,
    etcd: {
      caFile: client.caFile,
      certFile: file('etcd-server.crt'),
      keyFile: file('etcd-server.key'),
      peerCertFile: file('etcd-peer.crt'),
      peerKeyFile: file('etcd-peer.key'),
      probeCertFile: client.certFile,
      probeKeyFile: client.keyFile,
    },
    controlplaneEtcdClient: client,
    natsServer: {
      caFile: client.caFile,
      certFile: file('nats-server.crt'),
      keyFile: file('nats-server.key'),
    },
    controlplaneNatsClient: {
      caFile: client.caFile,
      certFile: file('controlplane-nats-client.crt'),
      keyFile: file('controlplane-nats-client.key'),
    },
  };
}
