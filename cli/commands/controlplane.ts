/**
 * `skiff controlplane`: the production entry point of the control plane, against external etcd
 * and NATS (`skiff up` runs this same command with the servers it started). The API is always
 * served over TLS: with a certificate from the cluster CA (made in --cluster-ca-dir on the first
 * start) or the operator's own (--tls-cert-file); with --api-socket also on a Unix socket without
 * TLS, for clients on this machine (`skiff up` gives it <state>/api.sock). Runs until SIGTERM or
 * SIGINT, then stops cleanly: the API drains, the etcd and NATS connections close.
 */
import { homedir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';
import {
  parseDurationOption,
  parseNonNegativeInt,
  parseNonNegativeNumber,
  parsePortRange,
  parsePositiveInt,
  parseSecondsOption,
} from './context.js';
import { InvalidArgumentError } from '../../proto/errors.js';
import {
  DEFAULT_SERVICE_CIDR,
  checkClusterDNS,
  parseClusterDomain,
  parseNetworkBackend,
  type NetworkBackend,
} from '../../proto/network-plan.js';
import { componentLogger } from '../../proto/support/logger.js';
import { DEFAULT_API_ADDR, DEFAULT_ETCD_PREFIX, DEFAULT_HTTP_ADDR } from '../../controlplane/defaults.js';

interface ControlPlaneFlags {
  etcd: string;
  nats: string;
  natsAdvertiseUrl?: string;
  serverTokenFile?: string;
  advertiseAddress?: string;
  schedulerConfig?: string;
  apiAddr: string;
  apiSocket?: string;
  httpAddr: string;
  stateDir: string;
  etcdPrefix: string;
  adminTokenFile?: string;
  maxWatchesPerToken?: number;
  etcdCafile?: string;
  etcdCertfile?: string;
  etcdKeyfile?: string;
  encryptionProviderConfig?: string;
  registryDir?: string;
  registryMaxBlobBytes?: number;
  clusterCidr?: string;
  serviceCidr?: string;
  networkBackend?: NetworkBackend;
  clusterDns?: string;
  clusterDomain?: string;
  nodeCidrMaskSize?: number;
  clusterCaDir?: string;
  tlsSan: string[];
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  tlsCaFile?: string;
  natsCafile?: string;
  natsCertfile?: string;
  natsKeyfile?: string;
  natsAuthorizationFile?: string;
  natsPidFile?: string;
  nodeMonitorGracePeriod?: number;
  terminatedPodGcThreshold?: number;
  serviceNodePortRange?: { min: number; max: number };
  nodeEvictionRate?: number;
  secondaryNodeEvictionRate?: number;
  unhealthyZoneThreshold?: number;
  largeClusterSizeThreshold?: number;
  defaultNotReadyTolerationSeconds?: number;
  defaultUnreachableTolerationSeconds?: number;
  leaderElectLeaseDuration?: number;
}

/** TLS to NATS: all three files or none. */
function natsTlsOf(flags: ControlPlaneFlags): {
  natsTls?: { caFile: string; certFile: string; keyFile: string };
} {
  const { natsCafile: caFile, natsCertfile: certFile, natsKeyfile: keyFile } = flags;
  if (caFile === undefined && certFile === undefined && keyFile === undefined) return {};
  if (caFile === undefined || certFile === undefined || keyFile === undefined) {
    throw new InvalidArgumentError(
      'controlplane: --nats-cafile, --nats-certfile and --nats-keyfile go together (NATS with TLS and client certificates)',
      caFile === undefined ? 'nats-cafile' : certFile === undefined ? 'nats-certfile' : 'nats-keyfile',
    );
  }
  return { natsTls: { caFile, certFile, keyFile } };
}

/** The API certificate files of an external setup, or none; the certificate goes with its key. */
function apiServingFilesOf(flags: ControlPlaneFlags): {
  apiServingFiles?: { certFile: string; keyFile: string; caFile?: string };
} {
  const { tlsCertFile: certFile, tlsPrivateKeyFile: keyFile, tlsCaFile: caFile } = flags;
  if (certFile === undefined && keyFile === undefined) {
    if (caFile !== undefined) {
      throw new InvalidArgumentError(
        'controlplane: --tls-ca-file goes with --tls-cert-file (it is the CA that issued that certificate)',
        'tls-ca-file',
      );
    }
    return {};
  }
  if (certFile === undefined || keyFile === undefined) {
    throw new InvalidArgumentError(
      'controlplane: --tls-cert-file and --tls-private-key-file go together (the API certificate and its key)',
      certFile === undefined ? 'tls-cert-file' : 'tls-private-key-file',
    );
  }
  return { apiServingFiles: { certFile, keyFile, ...(caFile !== undefined ? { caFile } : {}) } };
}

function collect(value: string, previous: string[]): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((each) => each.trim())
      .filter((each) => each !== ''),
  ];
}

/** The TLS files for etcd, or none; a client certificate goes with its key, and with a CA. */
function etcdTlsOf(flags: ControlPlaneFlags): {
  etcdTls?: { caFile: string; certFile?: string; keyFile?: string };
} {
  const { etcdCafile: caFile, etcdCertfile: certFile, etcdKeyfile: keyFile } = flags;
  if (caFile === undefined && certFile === undefined && keyFile === undefined) return {};
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new InvalidArgumentError(
      'controlplane: --etcd-certfile and --etcd-keyfile go together (the client certificate and its key)',
      certFile === undefined ? 'etcd-certfile' : 'etcd-keyfile',
    );
  }
  if (caFile === undefined) {
    throw new InvalidArgumentError(
      "controlplane: --etcd-cafile is required with a client certificate (the CA of etcd's server certificate)",
      'etcd-cafile',
    );
  }
  return { etcdTls: { caFile, ...(certFile !== undefined ? { certFile, keyFile: keyFile! } : {}) } };
}

function defaultStateDir(): string {
  return process.getuid?.() === 0
    ? '/var/lib/skiff/controlplane'
    : join(homedir(), '.local/share/skiff/controlplane');
}

export function registerControlPlane(program: Command): void {
  program
    .command('controlplane')
    .description('run the control plane (gRPC API, HTTP health and metrics) against etcd and NATS')
    .requiredOption('--etcd <urls>', 'etcd client URLs, comma-separated (e.g. http://127.0.0.1:2379)')
    .requiredOption('--nats <url>', 'NATS server URL (e.g. nats://127.0.0.1:4222)')
    .option(
      '--nats-advertise-url <urls>',
      'the NATS URL(s), comma-separated, agents are told to report to (default --nats: give this when agents reach NATS by another address than the control plane does)',
    )
    .option(
      '--api-addr <host:port>',
      'gRPC API listen address; several comma-separated: the first is the one advertised, the certificate names each',
      DEFAULT_API_ADDR,
    )
    .option(
      '--advertise-address <host:port>',
      "where the other control planes of the cluster reach this one's API, to relay pod streams of the nodes whose agents are connected here (default --api-addr; on every interface: this host's first non-loopback IPv4 address); the API certificate names its host",
    )
    .option(
      '--api-socket <path>',
      "also serve the API on this Unix socket (absolute path), without TLS, for clients on this machine: made 0600 in a directory that must be this user's and 0700 (made so when missing); a stale socket there is replaced, a symbolic link refused",
    )
    .option(
      '--http-addr <host:port>',
      'HTTP listen address (/healthz, /readyz, /metrics, the registry); several comma-separated: the first is the one agents are told to pull from',
      DEFAULT_HTTP_ADDR,
    )
    .option('--state-dir <dir>', 'directory for the control plane state', defaultStateDir())
    .option('--etcd-prefix <prefix>', 'key prefix of every skiff key in etcd', DEFAULT_ETCD_PREFIX)
    .option('--etcd-cafile <file>', 'CA that signed the etcd server certificate (https etcd URLs)')
    .option('--etcd-certfile <file>', 'client certificate presented to etcd')
    .option('--etcd-keyfile <file>', 'private key of --etcd-certfile')
    .option(
      '--encryption-provider-config <file>',
      "keys that encrypt Secrets at rest (Kubernetes' EncryptionConfiguration; default <state-dir>/encryption-config.yaml, made when missing)",
    )
    .option(
      '--admin-token-file <file>',
      'where the admin token is written on first start (default <state-dir>/admin-token)',
    )
    .option(
      '--registry-dir <dir>',
      'where the image registry (served under /v2/ on the HTTP address) keeps its data; control planes may share one (default <state-dir>/registry)',
    )
    .option(
      '--registry-max-blob-bytes <n>',
      'largest blob the registry accepts; a larger upload is refused and deleted (default no limit but the disk)',
      parsePositiveInt('--registry-max-blob-bytes'),
    )
    .option('--cluster-cidr <cidr>', "pods' addresses; each node gets a block of it (default 10.244.0.0/16)")
    .option(
      '--node-cidr-mask-size <n>',
      "prefix length of each node's block of the cluster CIDR (default 24)",
      parsePositiveInt('--node-cidr-mask-size'),
    )
    .option('--service-cidr <cidr>', "Services' virtual addresses (default 10.96.0.0/12)")
    .option(
      '--network-backend <host-gw|vxlan>',
      "how nodes route each other's pods: host-gw (nodes on one L2 segment) or vxlan (any IP network between them) (default host-gw)",
      (text: string) => parseNetworkBackend(text),
    )
    .option(
      '--cluster-dns <ip>',
      "the cluster DNS Service's address, pods' nameserver (default the service CIDR's tenth address)",
    )
    .option('--cluster-domain <domain>', 'the domain the cluster DNS serves (default cluster.local)')
    .option(
      '--service-node-port-range <min-max>',
      'the ports NodePort Services are given on every node (default 30000-32767)',
      parsePortRange('--service-node-port-range'),
    )
    .option(
      '--cluster-ca-dir <dir>',
      'the cluster CA (ca.crt, ca.key; made on the first start when missing): the API serves TLS with a certificate from it, and it issues node certificates (default <state-dir>/pki)',
    )
    .option(
      '--server-token-file <file>',
      "the token that seals the cluster's CA and Secrets' encryption keys in etcd, so that other control planes given it share them: made here (0600) on the cluster's first start; a control plane that joins a cluster needs the first one's (default <state-dir>/server-token)",
    )
    .option(
      '--tls-san <names>',
      'more DNS names or IP addresses for the API certificate, comma-separated or repeated (agents must reach the API by a name it holds)',
      collect,
      [],
    )
    .option(
      '--tls-cert-file <file>',
      'serve the API with this certificate (PEM) instead of one from the cluster CA',
    )
    .option('--tls-private-key-file <file>', 'the private key of --tls-cert-file')
    .option(
      '--tls-ca-file <file>',
      'the CA that issued --tls-cert-file, when not the cluster CA: clients and join tokens then trust both',
    )
    .option('--nats-cafile <file>', "CA of nats-server's certificate (NATS with TLS)")
    .option('--nats-certfile <file>', 'client certificate presented to NATS (CN=skiff-controlplane)')
    .option('--nats-keyfile <file>', 'private key of --nats-certfile')
    .option(
      '--nats-authorization-file <file>',
      "nats-server's users file (verify_and_map): a node is added when its certificate is issued",
    )
    .option(
      '--nats-pid-file <file>',
      "nats-server's pid file: it is told to reload (SIGHUP) when a node is added",
    )
    .option(
      '--node-monitor-grace-period <duration>',
      'a node whose heartbeats stop this long becomes NotReady (default 40s)',
      parseDurationOption('--node-monitor-grace-period'),
    )
    .option(
      '--node-eviction-rate <n>',
      'nodes a second that may be tainted NoExecute (their pods evicted) in a zone while it is healthy (default 0.1)',
      parseNonNegativeNumber('--node-eviction-rate'),
    )
    .option(
      '--secondary-node-eviction-rate <n>',
      'the same in a zone where --unhealthy-zone-threshold of the nodes are not Ready (default 0.01; zones up to --large-cluster-size-threshold nodes: 0)',
      parseNonNegativeNumber('--secondary-node-eviction-rate'),
    )
    .option(
      '--unhealthy-zone-threshold <fraction>',
      "the share of a zone's nodes not Ready (at least 3) at which it evicts at the secondary rate (default 0.55)",
      parseNonNegativeNumber('--unhealthy-zone-threshold', 1),
    )
    .option(
      '--large-cluster-size-threshold <n>',
      'zones of more nodes than this keep evicting at the secondary rate when unhealthy (default 50)',
      parseNonNegativeInt('--large-cluster-size-threshold'),
    )
    .option(
      '--default-not-ready-toleration-seconds <n>',
      'seconds a new pod tolerates its node being not Ready before it is evicted, unless it says (default 300)',
      parseNonNegativeInt('--default-not-ready-toleration-seconds'),
    )
    .option(
      '--default-unreachable-toleration-seconds <n>',
      'seconds a new pod tolerates its node being unreachable before it is evicted, unless it says (default 300)',
      parseNonNegativeInt('--default-unreachable-toleration-seconds'),
    )
    .option(
      '--terminated-pod-gc-threshold <n>',
      'terminated pods (Succeeded, Failed) kept before the oldest are deleted (default 12500)',
      parsePositiveInt('--terminated-pod-gc-threshold'),
    )
    .option(
      '--leader-elect-lease-duration <duration>',
      'with several control planes, how long a dead leader holds on before another runs the controllers (whole seconds, default 10s)',
      parseSecondsOption('--leader-elect-lease-duration', 2),
    )
    .option(
      '--scheduler-config <file>',
      "the scheduler's profile (YAML: a profile, or a KubeSchedulerConfiguration holding one): plugins, weights, percentageOfNodesToScore; checked at start (default the built-in profile, Kubernetes' defaults)",
    )
    .option(
      '--max-watches-per-token <n>',
      'open watches one token may hold at once (default 256)',
      parsePositiveInt('--max-watches-per-token'),
    )
    .action(async (flags: ControlPlaneFlags) => {
      const log = componentLogger('controlplane');
      // Loaded here, not at the top: every other verb would pay for etcd3, NATS and grpc-js.
      const { startControlPlane } = await import('../../controlplane/main.js');
      const controlPlane = await startControlPlane({
        etcdEndpoints: flags.etcd
          .split(',')
          .map((url) => url.trim())
          .filter((url) => url !== ''),
        natsUrl: flags.nats,
        ...(flags.natsAdvertiseUrl !== undefined ? { natsAdvertiseUrl: flags.natsAdvertiseUrl } : {}),
        ...(flags.advertiseAddress !== undefined ? { advertiseAddress: flags.advertiseAddress } : {}),
        ...(flags.serverTokenFile !== undefined
          ? { serverTokenFile: resolvePath(flags.serverTokenFile) }
          : {}),
        apiAddr: flags.apiAddr,
        ...(flags.apiSocket !== undefined ? { apiSocket: resolvePath(flags.apiSocket) } : {}),
        httpAddr: flags.httpAddr,
        stateDir: flags.stateDir,
        etcdPrefix: flags.etcdPrefix,
        ...etcdTlsOf(flags),
        clusterCaDir: flags.clusterCaDir ?? join(flags.stateDir, 'pki'),
        ...(flags.tlsSan.length > 0 ? { tlsSans: flags.tlsSan } : {}),
        ...apiServingFilesOf(flags),
        ...natsTlsOf(flags),
        ...(flags.natsAuthorizationFile !== undefined
          ? {
              natsAuthorization: {
                file: flags.natsAuthorizationFile,
                ...(flags.natsPidFile !== undefined ? { pidFile: flags.natsPidFile } : {}),
              },
            }
          : {}),
        ...(flags.encryptionProviderConfig ? { encryptionConfigFile: flags.encryptionProviderConfig } : {}),
        ...(flags.adminTokenFile ? { adminTokenFile: flags.adminTokenFile } : {}),
        ...(flags.maxWatchesPerToken !== undefined ? { maxWatchesPerToken: flags.maxWatchesPerToken } : {}),
        ...(flags.schedulerConfig !== undefined
          ? { schedulerConfigFile: resolvePath(flags.schedulerConfig) }
          : {}),
        ...(flags.nodeMonitorGracePeriod ? { nodeGraceMs: flags.nodeMonitorGracePeriod } : {}),
        ...(flags.terminatedPodGcThreshold !== undefined
          ? { terminatedPodGcThreshold: flags.terminatedPodGcThreshold }
          : {}),
        evictionRates: {
          ...(flags.nodeEvictionRate !== undefined ? { rate: flags.nodeEvictionRate } : {}),
          ...(flags.secondaryNodeEvictionRate !== undefined
            ? { secondaryRate: flags.secondaryNodeEvictionRate }
            : {}),
          ...(flags.unhealthyZoneThreshold !== undefined
            ? { unhealthyZoneThreshold: flags.unhealthyZoneThreshold }
            : {}),
          ...(flags.largeClusterSizeThreshold !== undefined
            ? { largeClusterThreshold: flags.largeClusterSizeThreshold }
            : {}),
        },
        defaultTolerationSeconds: {
          ...(flags.defaultNotReadyTolerationSeconds !== undefined
            ? { notReady: flags.defaultNotReadyTolerationSeconds }
            : {}),
          ...(flags.defaultUnreachableTolerationSeconds !== undefined
            ? { unreachable: flags.defaultUnreachableTolerationSeconds }
            : {}),
        },
        ...(flags.leaderElectLeaseDuration !== undefined
          ? { leaderLeaseSeconds: flags.leaderElectLeaseDuration }
          : {}),
        ...(flags.clusterCidr ? { clusterCIDR: flags.clusterCidr } : {}),
        ...(flags.serviceCidr ? { serviceCIDR: flags.serviceCidr } : {}),
        ...(flags.networkBackend ? { networkBackend: flags.networkBackend } : {}),
        ...(flags.clusterDns
          ? { clusterDNS: checkClusterDNS(flags.clusterDns, flags.serviceCidr ?? DEFAULT_SERVICE_CIDR) }
          : {}),
        ...(flags.clusterDomain ? { clusterDomain: parseClusterDomain(flags.clusterDomain) } : {}),
        ...(flags.serviceNodePortRange ? { nodePortRange: flags.serviceNodePortRange } : {}),
        ...(flags.nodeCidrMaskSize !== undefined ? { nodeCidrMaskSize: flags.nodeCidrMaskSize } : {}),
        ...(flags.registryDir ? { registryDir: flags.registryDir } : {}),
        ...(flags.registryMaxBlobBytes !== undefined
          ? { registryMaxBlobBytes: flags.registryMaxBlobBytes }
          : {}),
        log,
      });
      await new Promise<void>((resolve) => {
        const onSignal = (signal: NodeJS.Signals): void => {
          log.info({ signal }, 'stopping control plane');
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          resolve();
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      await controlPlane.stop();
    });
}
