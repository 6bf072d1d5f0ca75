/**
 * A local cluster under one state directory, as `skiff up` starts it and `skiff down` stops it:
 *
 *   DIR/etcd/            etcd's data            DIR/logs/etcd.log
 *   DIR/nats/            JetStream's store      DIR/logs/nats.log
 *   DIR/controlplane/    control plane state    DIR/logs/controlplane.log
 *   DIR/admin-token      written by the control plane on its first start
 *   DIR/cluster.json     pids, ports and endpoints of what is running (removed by `down`)
 *
 * Start-up is a straight sequence with a readiness gate after each step: etcd, NATS, then
 * `skiff controlplane` (this same binary) until its /readyz answers. A step that fails stops the
 * steps before it, so a failed `up` leaves nothing running. `down` stops by recorded pid, after
 * checking the pid still runs what `up` started (pids get reused), and keeps every byte of data.
 *
 * Ports: the ones recorded by the previous `up` of DIR, else the defaults (etcd 2379/2380, NATS
 * 4222/8222, API 7440, HTTP 7441), else free ones.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
  errorMessage,
} from '../../proto/errors.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { ensureClusterPki } from './cluster-pki.js';
import { startEtcd } from './etcd-process.js';
import { startNats } from './nats-process.js';
import { PidLock } from '../../proto/support/pid-lock.js';
import {
  choosePorts,
  httpProbe,
  isAlive,
  spawnServer,
  stopProcess,
  waitUntilReady,
} from './process-support.js';

export const HOST = '127.0.0.1';

export const DEFAULT_PORTS = {
  etcdClient: 2379,
  etcdPeer: 2380,
  nats: 4222,
  natsMonitor: 8222,
  api: 7440,
  http: 7441,
} as const;

export interface ComponentRecord {
  pid: number;
  /** What the process's command line must contain for a pid to still be this component. */
  marker: string;
}

export interface ClusterRecord {
  stateDir: string;
  startedAt: string;
  detached: boolean;
  etcd: ComponentRecord & { endpoint: string; clientPort: number; peerPort: number };
  nats: ComponentRecord & { endpoint: string; port: number; monitorPort: number };
  controlplane: ComponentRecord & { api: string; http: string; apiPort: number; httpPort: number };
}

export interface RunningCluster {
  record: ClusterRecord;
  /** Resolves when any component exits (a foreground `up` then stops the rest). */
  firstExit: Promise<{ component: string; code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

export function defaultStateDir(uid: number | undefined = process.getuid?.(), home = homedir()): string {
  return uid === 0 ? '/var/lib/skiff' : join(home, '.local', 'share', 'skiff');
}

export function clusterFile(stateDir: string): string {
  return join(stateDir, 'cluster.json');
}

export function adminTokenFile(stateDir: string): string {
  return join(stateDir, 'admin-token');
}

export function readClusterRecord(stateDir: string): ClusterRecord | undefined {
  const path = clusterFile(stateDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FailedPreconditionError(`read ${path}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    const record = JSON.parse(text) as ClusterRecord;
    for (const part of ['etcd', 'nats', 'controlplane'] as const) {
      if (!Number.isInteger(record[part]?.pid) || typeof record[part]?.marker !== 'string')
        throw new Error(`${part}.pid missing`);
    }
    return record;
  } catch (err) {
    throw new InvalidArgumentError(
      `read ${path}: not a cluster record (${errorMessage(err)}); stop the processes by hand, then remove the file`,
      'cluster.json',
    );
  }
}

function writeClusterRecord(record: ClusterRecord): Promise<void> {
  return writeFileAtomic(clusterFile(record.stateDir), `${JSON.stringify(record, null, 2)}\n`, {
    mode: 0o600,
    durable: false,
  });
}

/** True when `pid` runs and its command line contains `marker` (so it is not a reused pid). */
export function isRunning(component: ComponentRecord): boolean {
  if (!isAlive(component.pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${component.pid}/cmdline`, 'utf8').split('\0').join(' ');
    return cmdline.includes(component.marker);
  } catch {
    return false;
  }
}

export type ComponentName = 'etcd' | 'nats' | 'controlplane';

/** The components of `record` that still run. */
export function runningComponents(record: ClusterRecord): ComponentName[] {
  return (['etcd', 'nats', 'controlplane'] as const).filter((name) => isRunning(record[name]));
}

export interface UpOptions {
  stateDir: string;
  detached: boolean;
  /** Bound on each component's readiness wait. */
  readyTimeoutMs?: number;
  onProgress?: (line: string) => void;
}

/** Starts etcd, NATS and the control plane under `stateDir` and records them in cluster.json. */
export async function startCluster(options: UpOptions): Promise<RunningCluster> {
  // Two `skiff up` on one state dir must not both start servers on the same data.
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  const lockPath = join(options.stateDir, 'up.lock');
  const lock = await PidLock.tryAcquire(lockPath);
  if (!lock) {
    throw new FailedPreconditionError(
      `start cluster in ${options.stateDir}: another \`skiff up\` is starting it (it holds ${lockPath}); wait for it, or stop it`,
    );
  }
  try {
    return await startClusterLocked(options);
  } finally {
    await lock.release();
  }
}

async function startClusterLocked(options: UpOptions): Promise<RunningCluster> {
  const { stateDir, detached } = options;
  const progress = options.onProgress ?? (() => {});
  const previous = readClusterRecord(stateDir);
  if (previous) {
    const running = runningComponents(previous);
    if (running.length > 0) {
      throw new FailedPreconditionError(
        `start cluster in ${stateDir}: already running (${running.map((c) => `${c} pid ${previous[c].pid}`).join(', ')}): use it, or stop it with \`skiff down --state ${stateDir}\``,
      );
    }
  }
  const logs = join(stateDir, 'logs');
  mkdirSync(logs, { recursive: true, mode: 0o700 });
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    stops.length = 0;
  };
  try {
    const pki = await ensureClusterPki(stateDir, HOST);
    const etcdDir = join(stateDir, 'etcd');
    const etcd = await startEtcd({
      dataDir: etcdDir,
      host: HOST,
      tls: pki.etcd,
      preferredClientPort: previous?.etcd.clientPort ?? DEFAULT_PORTS.etcdClient,
      preferredPeerPort: previous?.etcd.peerPort ?? DEFAULT_PORTS.etcdPeer,
      output: { logFile: join(logs, 'etcd.log') },
      detached,
      readyTimeoutMs,
    });
    stops.push(etcd.stop);
    progress(`etcd ready at ${etcd.endpoint} (pid ${etcd.pid})`);

    const natsDir = join(stateDir, 'nats');
    const nats = await startNats({
      storeDir: natsDir,
      host: HOST,
      preferredPort: previous?.nats.port ?? DEFAULT_PORTS.nats,
      preferredMonitorPort: previous?.nats.monitorPort ?? DEFAULT_PORTS.natsMonitor,
      output: { logFile: join(logs, 'nats.log') },
      detached,
      readyTimeoutMs,
    });
    stops.push(nats.stop);
    progress(`nats-server ready at ${nats.endpoint} (pid ${nats.pid})`);

    const ports = await choosePorts(HOST, {
      'API port': { preferred: previous?.controlplane.apiPort ?? DEFAULT_PORTS.api },
      'HTTP port': { preferred: previous?.controlplane.httpPort ?? DEFAULT_PORTS.http },
    });
    const apiPort = ports['API port']!;
    const httpPort = ports['HTTP port']!;
    const controlplaneDir = join(stateDir, 'controlplane');
    mkdirSync(controlplaneDir, { recursive: true, mode: 0o700 });
    const args = [
      ...skiffEntryArgv(),
      'controlplane',
      '--etcd', etcd.endpoint,
      '--etcd-cafile', pki.controlplaneEtcdClient.caFile,
      '--etcd-certfile', pki.controlplaneEtcdClient.certFile,
      '--etcd-keyfile', pki.controlplaneEtcdClient.keyFile,
      '--nats', nats.endpoint,
      '--api-addr', `${HOST}:${apiPort}`,
      '--http-addr', `${HOST}:${httpPort}`,
      '--state-dir', controlplaneDir,
      '--admin-token-file', adminTokenFile(stateDir),
    ]; // prettier-ignore
    const controlplane = spawnServer(
      process.execPath,
      args,
      { logFile: join(logs, 'controlplane.log') },
      detached,
    );
    const controlplanePid = controlplane.child.pid;
    if (controlplanePid === undefined) {
      throw new UnavailableError(
        `start control plane: ${process.execPath} did not start; see ${join(logs, 'controlplane.log')}`,
      );
    }
    stops.push(() => stopProcess(controlplanePid, { exited: controlplane.exited }));
    const httpUrl = `http://${HOST}:${httpPort}`;
    await waitUntilReady(
      `control plane ${HOST}:${apiPort} (log ${join(logs, 'controlplane.log')})`,
      controlplane,
      () => httpProbe(`${httpUrl}/readyz`, () => true),
      readyTimeoutMs,
      100,
    );
    progress(`control plane ready at ${HOST}:${apiPort}, HTTP ${httpUrl} (pid ${controlplanePid})`);

    const record: ClusterRecord = {
      stateDir,
      startedAt: new Date().toISOString(),
      detached,
      etcd: {
        pid: etcd.pid,
        marker: etcdDir,
        endpoint: etcd.endpoint,
        clientPort: etcd.clientPort,
        peerPort: etcd.peerPort,
      },
      nats: {
        pid: nats.pid,
        marker: natsDir,
        endpoint: nats.endpoint,
        port: nats.port,
        monitorPort: nats.monitorPort,
      },
      controlplane: {
        pid: controlplanePid,
        marker: controlplaneDir,
        api: `${HOST}:${apiPort}`,
        http: httpUrl,
        apiPort,
        httpPort,
      },
    };
    await writeClusterRecord(record);
    const firstExit = Promise.race([
      etcd.exited.then((e) => ({ component: 'etcd', ...e })),
      nats.exited.then((e) => ({ component: 'nats-server', ...e })),
      controlplane.exited.then((e) => ({ component: 'control plane', ...e })),
    ]);
    return {
      record,
      firstExit,
      stop: async () => {
        await stopAll();
        rmSync(clusterFile(stateDir), { force: true });
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Reads the admin token the control plane wrote on its first start. */
export function readAdminToken(stateDir: string): string {
  const path = adminTokenFile(stateDir);
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new FailedPreconditionError(
      `read admin token ${path}: ${errorMessage(err)}: the control plane writes it on its first start`,
      {
        cause: err,
      },
    );
  }
  if (token === '') throw new FailedPreconditionError(`read admin token ${path}: the file is empty`);
  return token;
}

/**
 * Stops what cluster.json records (control plane, then NATS, then etcd), by pid, only where the
 * pid still runs that component. Keeps the data. Returns what was stopped; undefined when
 * nothing was recorded.
 */
export async function stopCluster(stateDir: string, graceMs = 10_000): Promise<string[] | undefined> {
  const record = readClusterRecord(stateDir);
  if (!record) return undefined;
  const stopped: string[] = [];
  for (const name of ['controlplane', 'nats', 'etcd'] as const) {
    const component = record[name];
    if (!isRunning(component)) continue;
    await stopProcess(component.pid, { graceMs, what: `${name} (pid ${component.pid})` });
    stopped.push(`${name} (pid ${component.pid})`);
  }
  rmSync(clusterFile(stateDir), { force: true });
  return stopped;
}
