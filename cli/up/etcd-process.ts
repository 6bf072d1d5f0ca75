/**
 * Launches a single-member etcd (the Debian `etcd-server` binary) on loopback, for `skiff up` and
 * for the test harness: the one way skiff starts etcd.
 *
 * All five URL flags are always given; without them etcd falls back to 2379/2380 and its default
 * initial cluster. Restarting on an existing data dir reuses the member; the initial-cluster flags
 * are then ignored by etcd. Auto-compaction stays off unless asked for, so tests compact explicitly.
 */
import { httpProbe, spawnManagedServer, type OutputTarget } from './process-support.js';

export interface EtcdOptions {
  dataDir: string;
  /** Loopback or another local address; default 127.0.0.1. */
  host?: string;
  /** Exactly this client port; FailedPreconditionError when it is taken. */
  clientPort?: number;
  /** Try this client port first and fall back to a free one (`skiff up`'s defaults). */
  preferredClientPort?: number;
  peerPort?: number;
  preferredPeerPort?: number;
  /** Member name; default `skiff`. Must stay the same across restarts on one data dir. */
  name?: string;
  /** etcd's --auto-compaction-retention (e.g. `1h` or `1000` with mode revision); default off. */
  autoCompactionRetention?: string;
  autoCompactionMode?: 'periodic' | 'revision';
  /** Output goes to this file (appended), or to a pipe; see OutputTarget. Default: a pipe. */
  output?: OutputTarget;
  /** Survive this process (`skiff up --detach`); needs `output.logFile`. */
  detached?: boolean;
  /** Bound on the wait for readiness; default 15 s (a cold first start takes about 1 s). */
  readyTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL; default 5 s. */
  stopGraceMs?: number;
  /**
   * TLS on the client and peer URLs, and client certificates of `caFile` required on both: only
   * who holds one (the control plane) may read or write. Without it etcd is plain http.
   */
  tls?: EtcdTls;
  /**
   * Run in this network namespace (a path, /run/netns/NAME; process-support.ts ManagedServerSpec):
   * the ports must then be given exactly, and `host` be an address this process reaches.
   */
  netns?: string;
}

export interface EtcdProcess {
  pid: number;
  /** The client URL, e.g. `http://127.0.0.1:23790`: what the etcd3 client and EtcdStore take. */
  endpoint: string;
  clientUrl: string;
  peerUrl: string;
  clientPort: number;
  peerPort: number;
  name: string;
  dataDir: string;
  /** Resolves once the process has exited, whoever stopped it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, SIGKILL after the grace period, and resolves once etcd has exited. Idempotent. */
  stop(): Promise<void>;
}

export async function startEtcd(options: EtcdOptions): Promise<EtcdProcess> {
  const host = options.host ?? '127.0.0.1';
  const name = options.name ?? 'skiff';
  const tls = options.tls;
  const scheme = tls ? 'https' : 'http';
  const urls = (ports: Record<EtcdPort, number>) => ({
    clientUrl: `${scheme}://${host}:${ports['etcd client port']}`,
    peerUrl: `${scheme}://${host}:${ports['etcd peer port']}`,
  });
  const tlsArgs = tls
    ? [
        '--client-cert-auth', '--trusted-ca-file', tls.caFile,
        '--cert-file', tls.certFile, '--key-file', tls.keyFile,
        '--peer-client-cert-auth', '--peer-trusted-ca-file', tls.caFile,
        '--peer-cert-file', tls.peerCertFile, '--peer-key-file', tls.peerKeyFile,
      ]
    : []; // prettier-ignore
  const server = await spawnManagedServer<EtcdPort>({
    command: 'etcd',
    aptPackage: 'etcd-server',
    host,
    ports: {
      'etcd client port': { exact: options.clientPort, preferred: options.preferredClientPort },
      'etcd peer port': { exact: options.peerPort, preferred: options.preferredPeerPort },
    },
    dataDir: options.dataDir,
    args: (ports) => {
      const { clientUrl, peerUrl } = urls(ports);
      return [
        '--name', name,
        '--data-dir', options.dataDir,
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', `${name}=${peerUrl}`,
        '--initial-cluster-state', 'new',
        '--auto-compaction-retention', options.autoCompactionRetention ?? '0',
        '--auto-compaction-mode', options.autoCompactionMode ?? 'periodic',
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        ...tlsArgs,
      ]; // prettier-ignore
    },
    describe: (ports) => `etcd ${urls(ports).clientUrl} (data ${options.dataDir})`,
    ready: (ports) =>
      httpProbe(
        `${urls(ports).clientUrl}/health`,
        (body) => body.includes('"health":"true"'),
        1000,
        tls && { caFile: tls.caFile, certFile: tls.probeCertFile, keyFile: tls.probeKeyFile },
      ),
    readyTimeoutMs: options.readyTimeoutMs ?? 15_000,
    output: options.output ?? {},
    detached: options.detached ?? false,
    ...(options.stopGraceMs !== undefined ? { stopGraceMs: options.stopGraceMs } : {}),
    ...(options.netns !== undefined ? { netns: options.netns } : {}),
  });
  const { clientUrl, peerUrl } = urls(server.ports);
  return {
    pid: server.pid,
    endpoint: clientUrl,
    clientUrl,
    peerUrl,
    clientPort: server.ports['etcd client port'],
    peerPort: server.ports['etcd peer port'],
    name,
    dataDir: options.dataDir,
    exited: server.exited,
    stop: server.stop,
  };
}

/** Files of etcd's TLS: its CA, and the certificates it serves clients and peers with. */
export interface EtcdTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  peerCertFile: string;
  peerKeyFile: string;
  /** A client certificate of the same CA, for the readiness probe. */
  probeCertFile: string;
  probeKeyFile: string;
}

/** The ports etcd listens on: clients (the API) and peers (raft). */
type EtcdPort = 'etcd client port' | 'etcd peer port';
