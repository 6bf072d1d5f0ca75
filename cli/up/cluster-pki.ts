/**
 * The certificates of a local cluster, under `<state dir>/pki/` (directories 0700, files 0600):
 *
 *   ca.crt, ca.key                          the cluster's CA (made on the first `skiff up`): the
 *                                           API's certificate, node certificates, NATS
 *   nats-server.crt/.key                    nats-server's TLS certificate
 *   controlplane-nats-client.crt/.key       the control plane's NATS client certificate (its
 *                                           subject CN=skiff-controlplane maps to the NATS user
 *                                           with every permission: nats-authorization.ts)
 *   etcd/ca.crt, etcd/ca.key                etcd's own CA, trusted by etcd alone
 *   etcd/server.crt/.key                    etcd's client URL (also dials itself: client auth too)
 *   etcd/peer.crt/.key                      etcd's peer URL
 *   etcd/controlplane-client.crt/.key       the only client etcd accepts: the control plane
 *
 * etcd requires client certificates of its own CA on both URLs, so neither a local user who can
 * reach its loopback port nor a node agent (whose certificate the cluster CA issued on join) can
 * read a Secret or write a token record: etcd trusting the cluster CA would let every node
 * bypass the API's node authorizer. (As k3s keeps separate etcd CAs.) Leaf certificates are
 * issued again when missing, not from their CA, or within 30 days of expiry; the CAs are kept.
 * A state dir from before the etcd CA has its etcd certificates replaced on the next `up`.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
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
  /** The cluster CA's certificate: what clients verify the API with (not etcd's CA). */
  caFile: string;
  etcd: EtcdTls;
  /** What `skiff controlplane --etcd-cafile/--etcd-certfile/--etcd-keyfile` take. */
  controlplaneEtcdClient: { caFile: string; certFile: string; keyFile: string };
  /** nats-server's TLS files. */
  natsServer: { caFile: string; certFile: string; keyFile: string };
  /** What `skiff controlplane --nats-cafile/--nats-certfile/--nats-keyfile` take. */
  controlplaneNatsClient: { caFile: string; certFile: string; keyFile: string };
}

/** Leaf certificates of the cluster CA, in `pki/`. */
const CLUSTER_LEAVES: Record<string, (hosts: string[]) => CertificateOptions> = {
  'nats-server': (hosts) => ({
    commonName: 'skiff-nats',
    usages: ['server auth'],
    ipAddresses: hosts,
    dnsNames: ['localhost'],
  }),
  'controlplane-nats-client': () => ({ commonName: 'skiff-controlplane', usages: ['client auth'] }),
};

/** Leaf certificates of the etcd CA, in `pki/etcd/`. */
const ETCD_LEAVES: Record<string, (hosts: string[]) => CertificateOptions> = {
  server: (hosts) => ({
    commonName: 'skiff-etcd',
    usages: ['server auth', 'client auth'],
    ipAddresses: hosts,
    dnsNames: ['localhost'],
  }),
  peer: (hosts) => ({
    commonName: 'skiff-etcd-peer',
    usages: ['server auth', 'client auth'],
    ipAddresses: hosts,
    dnsNames: ['localhost'],
  }),
  'controlplane-client': () => ({ commonName: 'skiff-controlplane', usages: ['client auth'] }),
};

/** etcd's certificates as the cluster CA issued them, before etcd had a CA of its own. */
const SINGLE_CA_ETCD_FILES = ['etcd-server', 'etcd-peer', 'controlplane-etcd-client'].flatMap((name) => [
  `${name}.crt`,
  `${name}.key`,
]);

async function caOf(dir: string, commonName: string): Promise<CertificateAuthority> {
  try {
    return await readCertificateAuthority(dir);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const ca = CertificateAuthority.create({ commonName });
    await writeCertificateAuthority(dir, ca);
    return ca;
  }
}

/** From `ca`, not about to expire, and naming every address of `ipAddresses`. */
async function stillGood(
  ca: CertificateAuthority,
  certPath: string,
  ipAddresses: readonly string[],
): Promise<boolean> {
  try {
    const cert = new X509Certificate(await readFile(certPath));
    const named = (cert.subjectAltName ?? '').split(', ');
    return (
      cert.checkIssued(ca.certificate) &&
      cert.verify(ca.certificate.publicKey) &&
      Date.parse(cert.validTo) - Date.now() > RENEW_BEFORE_MS &&
      ipAddresses.every((ip) => named.includes(`IP Address:${ip}`))
    );
  } catch {
    return false;
  }
}

/**
 * Issues each leaf of `leaves` into `dir` that is missing, not from `ca`, about to expire, or not
 * naming every address it should (the nodes' switch of a later `up` is another /24).
 */
async function ensureLeaves(
  ca: CertificateAuthority,
  dir: string,
  leaves: Record<string, (hosts: string[]) => CertificateOptions>,
  hosts: string[],
): Promise<void> {
  for (const [name, leaf] of Object.entries(leaves)) {
    const options = leaf(hosts);
    if (await stillGood(ca, join(dir, `${name}.crt`), options.ipAddresses ?? [])) continue;
    const pair = ca.issueKeyPair(options);
    await writePrivateFiles(
      dir,
      { [`${name}.key`]: privateKeyToPem(pair.privateKey), [`${name}.crt`]: pair.certificate.toString() },
      { replace: true },
    );
  }
}

/**
 * Makes (or keeps) the cluster's CA, etcd's CA and certificates naming `hosts` (the addresses the
 * servers listen on: `skiff up`'s NATS serves its nodes on the switch); returns their paths.
 */
export async function ensureClusterPki(stateDir: string, hosts: string[]): Promise<ClusterPki> {
  const dir = join(stateDir, 'pki');
  const etcdDir = join(dir, 'etcd');
  await ensureLeaves(await caOf(dir, 'skiff-cluster-ca'), dir, CLUSTER_LEAVES, hosts);
  await ensureLeaves(await caOf(etcdDir, 'skiff-etcd-ca'), etcdDir, ETCD_LEAVES, hosts);
  await Promise.all(SINGLE_CA_ETCD_FILES.map((name) => rm(join(dir, name), { force: true })));
  const file = (name: string): string => join(dir, name);
  const etcdFile = (name: string): string => join(etcdDir, name);
  const etcdClient = {
    caFile: etcdFile('ca.crt'),
    certFile: etcdFile('controlplane-client.crt'),
    keyFile: etcdFile('controlplane-client.key'),
  };
  return {
    dir,
    caFile: file('ca.crt'),
    etcd: {
      caFile: etcdClient.caFile,
      certFile: etcdFile('server.crt'),
      keyFile: etcdFile('server.key'),
      peerCertFile: etcdFile('peer.crt'),
      peerKeyFile: etcdFile('peer.key'),
      probeCertFile: etcdClient.certFile,
      probeKeyFile: etcdClient.keyFile,
    },
    controlplaneEtcdClient: etcdClient,
    natsServer: {
      caFile: file('ca.crt'),
      certFile: file('nats-server.crt'),
      keyFile: file('nats-server.key'),
    },
    controlplaneNatsClient: {
      caFile: file('ca.crt'),
      certFile: file('controlplane-nats-client.crt'),
      keyFile: file('controlplane-nats-client.key'),
    },
  };
}
