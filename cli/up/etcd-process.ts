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
  const urls = (ports: Record<EtcdPort, number>) => ({
    clientUrl: `http://${host}:${ports['etcd client port']}`,
    peerUrl: `http://${host}:${ports['etcd peer port']}`,
  });
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
      ]; // prettier-ignore
    },
    describe: (ports) => `etcd ${urls(ports).clientUrl} (data ${options.dataDir})`,
    ready: (ports) =>
      httpProbe(`${urls(ports).clientUrl}/health`, (body) => body.includes('"health":"true"')),
    readyTimeoutMs: options.readyTimeoutMs ?? 15_000,
    output: options.output ?? {},
    detached: options.detached ?? false,
    ...(options.stopGraceMs !== undefined ? { stopGraceMs: options.stopGraceMs } : {}),
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

/** The ports etcd listens on: clients (the API) and peers (raft). */
type EtcdPort = 'etcd client port' | 'etcd peer port';
