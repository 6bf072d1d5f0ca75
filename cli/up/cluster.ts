/**
 * A local cluster under one state directory, as `skiff up` starts it and `skiff down` stops it:
 *
 *   DIR/etcd/            etcd's data            DIR/logs/etcd.log
 *   DIR/nats/            JetStream's store      DIR/logs/nats.log
 *   DIR/controlplane/    control plane state    DIR/logs/controlplane.log
 *   DIR/pki/             the cluster CA and etcd's certificates (cluster-pki.ts); the control plane
 *                        serves its API over TLS with a certificate from this CA
 *   DIR/nats-config/     nats-server's configuration: TLS with client certificates of the CA
 *                        mapped to users (verify_and_map), the users file the control plane adds
 *                        nodes to, nats-server's pid file
 *   DIR/nodes/<name>/    each node agent's runtime root   DIR/logs/agent-<name>.log (agent-process.ts)
 *   DIR/network.json     the nodes' switch /24 (node-network.ts): with agents, each node is a network
 *                        namespace on a switch of the cluster's own, the machine at S.254 on it
 *   DIR/api.sock         the API's Unix socket (0600; DIR is 0700), which the client config names
 *                        as the context's server: the CLI on this machine calls it without TLS
 *   DIR/admin-token      written by the control plane on its first start
 *   DIR/cluster.json     pids, ports and endpoints of what is running (removed by `down`)
 *
 * Start-up is a straight sequence with a readiness gate after each step: with agents, the nodes'
 * network first (the machine's unreachable routes, the switch, its veth); etcd, NATS, then
 * `skiff controlplane` (this same binary) until its /readyz answers, then the node agents until
 * their Nodes are Ready. A step that fails stops the
 * steps before it, so a failed `up` leaves nothing running. When a previous `up` of DIR still
 * partly runs (etcd died), `up` keeps what runs and starts the rest on the recorded ports. `down`
 * stops the recorded pids (checking each still runs what `up` started: pids get reused) and any
 * other process serving the same data directory (an etcd restarted by hand), names what it could
 * not stop, and keeps every byte of data.
 *
 * Ports: the ones recorded by the previous `up` of DIR, else the defaults (etcd 2379/2380, NATS
 * 4222/8222, API 7440, HTTP 7441), else free ones.
 *
 * Addresses: etcd on 127.0.0.1 (only the control plane calls it). With agents, NATS on the
 * machine's switch address S.254 (the agents and the control plane reach it there), and the API
 * and HTTP ports on both S.254 (what agents are given, and the registry they pull from) and
 * 127.0.0.1 (what the client config names beside the socket); the certificates name both.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
  errorMessage,
} from '../../proto/errors.js';
import { socketPathProblem, unixAddress } from '../../proto/api-address.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { ensureClusterPki, type ClusterPki } from './cluster-pki.js';
import {
  formatNatsAuthorization,
  formatNatsServerConfig,
  natsAuthorizationUsers,
} from '../../proto/support/nats-authorization.js';
import { writePrivateFiles } from '../../proto/support/pki.js';
import { startEtcd } from './etcd-process.js';
import { startNats } from './nats-process.js';
import { attachNode, ensureNodeNetwork, removeNodeNetwork, type NodeNetwork } from './node-network.js';
import {
  agentNames,
  removeAgentPods,
  startAgentProcess,
  writeJoinToken,
  type AgentRecord,
} from './agent-process.js';
import { PidLock } from '../../proto/support/pid-lock.js';
import {
  choosePorts,
  httpProbe,
  ownReadiness,
  retryLostPortRace,
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
  controlplane: ComponentRecord & {
    api: string;
    http: string;
    apiPort: number;
    httpPort: number;
    /** The API's Unix socket, `unix:///path` (absent from records of older versions). */
    apiSocket?: string;
  };
  /** Node agents (absent in records of clusters started without them). */
  agents?: AgentRecord[];
  /** The nodes' switch (absent without agents). */
  network?: NodeNetwork;
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

/** Where the control plane of `stateDir` serves its API without TLS, for this machine's CLI. */
export function apiSocketFile(stateDir: string): string {
  return join(stateDir, 'api.sock');
}

export interface NatsConfigFiles {
  configFile: string;
  authorizationFile: string;
  pidFile: string;
}

/**
 * nats-server's configuration under DIR/nats-config (nats-authorization.ts): TLS with the CA's
 * certificates and verify_and_map, and the users file, whose nodes are kept across `up`s.
 */
export async function writeNatsConfig(stateDir: string, pki: ClusterPki): Promise<NatsConfigFiles> {
  const dir = join(stateDir, 'nats-config');
  const files = {
    configFile: join(dir, 'nats.conf'),
    authorizationFile: join(dir, 'nats-authorization.conf'),
    pidFile: join(dir, 'nats.pid'),
  };
  let users: { nodes: string[]; groups: string[] } = { nodes: [], groups: [] };
  try {
    users = natsAuthorizationUsers(readFileSync(files.authorizationFile, 'utf8'));
  } catch {
    // first up: no node yet
  }
  await writePrivateFiles(
    dir,
    {
      'nats-authorization.conf': formatNatsAuthorization(users.nodes, users.groups),
      'nats.conf': formatNatsServerConfig({
        ...pki.natsServer,
        authorizationFile: 'nats-authorization.conf',
        pidFile: files.pidFile,
      }),
    },
    { replace: true },
  );
  return files;
}

/** The cluster CA's certificate: what the client config names as its certificate-authority. */
export function clusterCaFile(stateDir: string): string {
  return join(stateDir, 'pki', 'ca.crt');
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
  return (['etcd', 'nats', 'controlplane'] as const).filter((name) => livePid(record[name]) !== undefined);
}

const COMPONENTS: readonly ComponentName[] = ['etcd', 'nats', 'controlplane'];
const LABELS: Readonly<Record<ComponentName, string>> = {
  etcd: 'etcd',
  nats: 'nats-server',
  controlplane: 'control plane',
};

/**
 * Processes serving `marker` (a data or state directory), found by their command lines: one of
 * their arguments is exactly the marker. Finds what `up` did not start, e.g. an etcd restarted by
 * hand on the same data.
 */
export function processesServing(marker: string): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (
        readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(marker) &&
        isAlive(Number(entry))
      )
        pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

/** The pid running `component`: the recorded one while it still is it, else one found serving its marker. */
function livePid(component: ComponentRecord): number | undefined {
  return isRunning(component) ? component.pid : processesServing(component.marker)[0];
}

/** A `skiff agent` process (containers' shims also name the root on their command lines). */
function isAgentProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('agent');
  } catch {
    return false;
  }
}

/** Resolves once `pid` has exited; polls, for a process this one did not start. */
function exitOf(pid: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (isAlive(pid)) return;
      clearInterval(timer);
      resolve({ code: null, signal: null });
    }, 250);
    timer.unref();
  });
}

export interface UpOptions {
  stateDir: string;
  detached: boolean;
  /** Node agents to run (default 0). */
  agents?: number;
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
  // What still runs of the previous `up` is kept; the rest starts again on the recorded ports, so
  // what is kept (a control plane dialling etcd) finds it where it was.
  const kept: Partial<Record<ComponentName, number>> = {};
  if (previous) {
    for (const name of COMPONENTS) {
      const pid = livePid(previous[name]);
      if (pid !== undefined) kept[name] = pid;
    }
    if (COMPONENTS.every((name) => kept[name] !== undefined)) {
      throw new FailedPreconditionError(
        `start cluster in ${stateDir}: already running (${COMPONENTS.map((c) => `${c} pid ${kept[c]}`).join(', ')}): use it, or stop it with \`skiff down --state ${stateDir}\``,
      );
    }
  }
  const restarting = Object.keys(kept).length > 0;
  const logs = join(stateDir, 'logs');
  mkdirSync(logs, { recursive: true, mode: 0o700 });
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  // How to stop each component, kept or started; a failed `up` stops only what it started.
  const stopOf: Partial<Record<ComponentName, () => Promise<void>>> = {};
  const started: ComponentName[] = [];
  const stopStarted = async (): Promise<void> => {
    for (const name of started.reverse()) await stopOf[name]!().catch(() => {});
  };
  const keep = (name: ComponentName): number | undefined => {
    const pid = kept[name];
    if (pid === undefined) return undefined;
    progress(`${LABELS[name]} is running (pid ${pid}): kept`);
    stopOf[name] = () => stopProcess(pid, { what: `${LABELS[name]} (pid ${pid})` });
    return pid;
  };
  const exits: Promise<{ component: string; code: number | null; signal: NodeJS.Signals | null }>[] = [];
  // the nodes' network is made by an `up` with agents, and kept by one that keeps what runs
  const withNetwork = (options.agents ?? 0) > 0 || previous?.network !== undefined;
  let network: NodeNetwork | undefined;
  try {
    if (withNetwork) {
      network = await ensureNodeNetwork(stateDir);
      progress(`nodes' switch ${network.subnet}: this machine is ${network.machineAddress} on it`);
    }
    // what agents reach is on the switch; the CLI keeps 127.0.0.1. The first listen address is
    // the one the control plane advertises: agents pull from the registry at the HTTP one
    const agentHost = network?.machineAddress ?? HOST;
    const listenHosts = [...new Set([agentHost, HOST])];
    const pki = await ensureClusterPki(stateDir, listenHosts);
    const etcdDir = join(stateDir, 'etcd');
    let etcdRecord: ClusterRecord['etcd'];
    const keptEtcd = keep('etcd');
    if (keptEtcd !== undefined) {
      etcdRecord = { ...previous!.etcd, pid: keptEtcd };
      exits.push(exitOf(keptEtcd).then((e) => ({ component: 'etcd', ...e })));
    } else {
      const etcd = await startEtcd({
        dataDir: etcdDir,
        host: HOST,
        tls: pki.etcd,
        ...(restarting
          ? { clientPort: previous!.etcd.clientPort, peerPort: previous!.etcd.peerPort }
          : {
              preferredClientPort: previous?.etcd.clientPort ?? DEFAULT_PORTS.etcdClient,
              preferredPeerPort: previous?.etcd.peerPort ?? DEFAULT_PORTS.etcdPeer,
            }),
        output: { logFile: join(logs, 'etcd.log') },
        detached,
        readyTimeoutMs,
      });
      stopOf.etcd = etcd.stop;
      started.push('etcd');
      exits.push(etcd.exited.then((e) => ({ component: 'etcd', ...e })));
      progress(
        `etcd ${restarting ? 'was not running: started again' : 'ready'} at ${etcd.endpoint} (pid ${etcd.pid})`,
      );
      etcdRecord = {
        pid: etcd.pid,
        marker: etcdDir,
        endpoint: etcd.endpoint,
        clientPort: etcd.clientPort,
        peerPort: etcd.peerPort,
      };
    }

    const natsDir = join(stateDir, 'nats');
    let natsRecord: ClusterRecord['nats'];
    const keptNats = keep('nats');
    if (keptNats !== undefined) {
      natsRecord = { ...previous!.nats, pid: keptNats };
      exits.push(exitOf(keptNats).then((e) => ({ component: 'nats-server', ...e })));
    } else {
      const natsConfig = await writeNatsConfig(stateDir, pki);
      const nats = await startNats({
        configFile: natsConfig.configFile,
        storeDir: natsDir,
        host: agentHost,
        ...(restarting
          ? { port: previous!.nats.port, monitorPort: previous!.nats.monitorPort }
          : {
              preferredPort: previous?.nats.port ?? DEFAULT_PORTS.nats,
              preferredMonitorPort: previous?.nats.monitorPort ?? DEFAULT_PORTS.natsMonitor,
            }),
        output: { logFile: join(logs, 'nats.log') },
        detached,
        readyTimeoutMs,
      });
      stopOf.nats = nats.stop;
      started.push('nats');
      exits.push(nats.exited.then((e) => ({ component: 'nats-server', ...e })));
      progress(
        `nats-server ${restarting ? 'was not running: started again' : 'ready'} at ${nats.endpoint} (pid ${nats.pid})`,
      );
      natsRecord = {
        pid: nats.pid,
        marker: natsDir,
        endpoint: nats.endpoint,
        port: nats.port,
        monitorPort: nats.monitorPort,
      };
    }

    const controlplaneDir = join(stateDir, 'controlplane');
    let controlplaneRecord: ClusterRecord['controlplane'];
    const keptControlplane = keep('controlplane');
    if (keptControlplane !== undefined) {
      controlplaneRecord = { ...previous!.controlplane, pid: keptControlplane };
      exits.push(exitOf(keptControlplane).then((e) => ({ component: 'control plane', ...e })));
    } else {
      // ports chosen now may be taken before the control plane binds them: then it exits and is
      // started again on new ones (not when restarting on the recorded ports)
      const startControlPlane = async () => {
        const ports = restarting
          ? { 'API port': previous!.controlplane.apiPort, 'HTTP port': previous!.controlplane.httpPort }
          : await choosePorts(HOST, {
              'API port': { preferred: previous?.controlplane.apiPort ?? DEFAULT_PORTS.api },
              'HTTP port': { preferred: previous?.controlplane.httpPort ?? DEFAULT_PORTS.http },
            });
        const apiPort = ports['API port']!;
        const httpPort = ports['HTTP port']!;
        mkdirSync(controlplaneDir, { recursive: true, mode: 0o700 });
        const socket = apiSocketFile(stateDir);
        const socketProblem = socketPathProblem(socket);
        if (socketProblem !== undefined)
          progress(`no API socket: ${socketProblem}; the CLI calls the API over TLS`);
        const args = [
          ...skiffEntryArgv(),
          'controlplane',
          '--etcd', etcdRecord.endpoint,
          '--etcd-cafile', pki.controlplaneEtcdClient.caFile,
          '--etcd-certfile', pki.controlplaneEtcdClient.certFile,
          '--etcd-keyfile', pki.controlplaneEtcdClient.keyFile,
          '--nats', natsRecord.endpoint,
          '--nats-cafile', pki.controlplaneNatsClient.caFile,
          '--nats-certfile', pki.controlplaneNatsClient.certFile,
          '--nats-keyfile', pki.controlplaneNatsClient.keyFile,
          '--nats-authorization-file', join(stateDir, 'nats-config', 'nats-authorization.conf'),
          '--nats-pid-file', join(stateDir, 'nats-config', 'nats.pid'),
          '--api-addr', listenHosts.map((host) => `${host}:${apiPort}`).join(','),
          '--http-addr', listenHosts.map((host) => `${host}:${httpPort}`).join(','),
          '--state-dir', controlplaneDir,
          '--admin-token-file', adminTokenFile(stateDir),
          '--cluster-ca-dir', pki.dir,
          ...(socketProblem === undefined ? ['--api-socket', socket] : []),
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
        const stop = () => stopProcess(controlplanePid, { exited: controlplane.exited });
        const httpUrl = `http://${HOST}:${httpPort}`;
        try {
          await waitUntilReady(
            `control plane ${HOST}:${apiPort} (log ${join(logs, 'controlplane.log')})`,
            controlplane,
            // ready, and listening itself: another server on these ports answers /readyz too
            ownReadiness(
              controlplanePid,
              [apiPort, httpPort],
              async () =>
                (socketProblem !== undefined || existsSync(socket)) &&
                httpProbe(`${httpUrl}/readyz`, () => true),
            ),
            readyTimeoutMs,
            100,
          );
        } catch (err) {
          await stop();
          throw err;
        }
        const apiSocket = socketProblem === undefined ? unixAddress(socket) : undefined;
        return { controlplane, controlplanePid, apiPort, httpPort, httpUrl, apiSocket, stop };
      };
      const { controlplane, controlplanePid, apiPort, httpPort, httpUrl, apiSocket, stop } = restarting
        ? await startControlPlane()
        : await retryLostPortRace(startControlPlane);
      stopOf.controlplane = stop;
      started.push('controlplane');
      exits.push(controlplane.exited.then((e) => ({ component: 'control plane', ...e })));
      progress(
        `control plane ${restarting ? 'was not running: started again' : 'ready'} at ${HOST}:${apiPort}, HTTP ${httpUrl} (pid ${controlplanePid})`,
      );
      controlplaneRecord = {
        pid: controlplanePid,
        marker: controlplaneDir,
        api: `${HOST}:${apiPort}`,
        http: httpUrl,
        apiPort,
        httpPort,
        ...(apiSocket !== undefined ? { apiSocket } : {}),
      };
    }

    // node agents: those of the previous `up` that still run are kept, the others started
    const agents: AgentRecord[] = [];
    const stopAgents: (() => Promise<void>)[] = [];
    const joinTokenFile = join(stateDir, 'join-token');
    let joinTokenWritten = false;
    for (const [index, name] of agentNames(options.agents ?? 0).entries()) {
      const previousAgent = previous?.agents?.find((a) => a.name === name);
      const keptPid = previousAgent ? livePid(previousAgent) : undefined;
      if (previousAgent && keptPid !== undefined) {
        progress(`agent ${name} is running (pid ${keptPid}): kept`);
        agents.push({ ...previousAgent, pid: keptPid });
        stopAgents.push(() => stopProcess(keptPid, { what: `agent ${name} (pid ${keptPid})` }));
        continue;
      }
      try {
        if (!joinTokenWritten) {
          await writeJoinToken({
            api: controlplaneRecord.api,
            adminToken: readAdminToken(stateDir),
            caFile: clusterCaFile(stateDir),
            file: joinTokenFile,
          });
          joinTokenWritten = true;
        }
        const node = await attachNode(stateDir, network!, index + 1);
        const agent = await startAgentProcess({
          stateDir,
          name,
          ...node,
          api: `${agentHost}:${controlplaneRecord.apiPort}`,
          tokenFile: joinTokenFile,
          adminToken: readAdminToken(stateDir),
          caFile: clusterCaFile(stateDir),
          logs,
          detached,
          readyTimeoutMs,
        });
        agents.push(agent.record);
        stopAgents.push(agent.stop);
        exits.push(agent.server.exited.then((e) => ({ component: `agent ${name}`, ...e })));
        progress(`agent ${name} ready: node ${name} at ${node.address} (pid ${agent.record.pid})`);
      } catch (err) {
        for (const stop of stopAgents) await stop().catch(() => {});
        throw err;
      }
    }

    const record: ClusterRecord = {
      stateDir,
      startedAt: new Date().toISOString(),
      detached,
      etcd: etcdRecord,
      nats: natsRecord,
      controlplane: controlplaneRecord,
      ...(agents.length ? { agents } : {}),
      ...(network !== undefined ? { network } : {}),
    };
    await writeClusterRecord(record);
    return {
      record,
      firstExit: Promise.race(exits),
      stop: async () => {
        for (const stop of stopAgents) await stop().catch(() => {});
        for (const agent of agents) await removeAgentPods(agent).catch(() => {});
        for (const name of ['controlplane', 'nats', 'etcd'] as const) await stopOf[name]?.().catch(() => {});
        if (network !== undefined) await removeNodeNetwork(stateDir).catch(() => []);
        rmSync(clusterFile(stateDir), { force: true });
      },
    };
  } catch (err) {
    // What it kept was running before this `up` and stays, and so does the network it uses.
    await stopStarted();
    if (network !== undefined && !restarting) await removeNodeNetwork(stateDir).catch(() => {});
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

/** What `down` did: the components it stopped, and those it could not, with why. */
export interface StopResult {
  stopped: string[];
  failed: string[];
}

/**
 * Stops the cluster of `stateDir` (control plane, then NATS, then etcd): the pids cluster.json
 * records, where they still run that component, and any other process serving the same data (an
 * etcd restarted by hand). Keeps the data. Undefined when nothing was recorded.
 */
export async function stopCluster(stateDir: string, graceMs = 10_000): Promise<StopResult | undefined> {
  const record = readClusterRecord(stateDir);
  if (!record) return undefined;
  const result: StopResult = { stopped: [], failed: [] };
  // the agents first (their pods' containers then), so nothing reports to a control plane that is gone
  for (const agent of record.agents ?? []) {
    const pids = new Set(processesServing(agent.marker).filter((pid) => isAgentProcess(pid)));
    if (isRunning(agent)) pids.add(agent.pid);
    for (const pid of pids) {
      const what = `agent ${agent.name} (pid ${pid})`;
      try {
        await stopProcess(pid, { graceMs, what });
        result.stopped.push(what);
      } catch (err) {
        result.failed.push(`${what}: ${errorMessage(err)}`);
      }
    }
    for (const problem of await removeAgentPods(agent)) result.failed.push(`node ${agent.name}: ${problem}`);
  }
  for (const name of ['controlplane', 'nats', 'etcd'] as const) {
    const component = record[name];
    const pids = new Set(processesServing(component.marker));
    if (isRunning(component)) pids.add(component.pid);
    for (const pid of pids) {
      const what = `${name} (pid ${pid}${pid === component.pid ? '' : ', not the one `up` started'})`;
      try {
        await stopProcess(pid, { graceMs, what });
        result.stopped.push(what);
      } catch (err) {
        result.failed.push(`${what}: ${errorMessage(err)}`);
      }
    }
  }
  // the network last, its unreachable routes last of all: nothing runs that could send there
  if (result.failed.length === 0)
    for (const problem of await removeNodeNetwork(stateDir)) result.failed.push(`nodes' network: ${problem}`);
  if (result.failed.length === 0) rmSync(clusterFile(stateDir), { force: true });
  return result;
}
