/**
 * A whole cluster on the hosts of hosts.ts, as operators would run one on several machines:
 *
 *   host cp   etcd (2379/2380), nats-server (4222, monitor 8222) and `skiff controlplane` (API 7440,
 *             HTTP 7441), all bound to cp's address, with the PKI of `skiff up` (cluster-pki.ts:
 *             the CA; etcd's and NATS's certificates name cp's address) and NATS's users file
 *   host nN   `skiff agent --server <cp>:7440 --token-file <join token> --node-name nN --root
 *             <nN>/root --node-ip <nN's address> --cgroup-parent skiff-lab-<id>/nN`: it joins with
 *             mutual TLS, learns NATS's and the registry's URLs from the control plane's Version,
 *             programs its own host namespace (bridge skiff0, veths, table inet skiff, unreachable
 *             routes) and keeps its pods' cgroups under its own parent
 *   host cp2  with `controlPlanes: 2`: a second `skiff controlplane` (API 7440, HTTP 7441 on cp2's
 *             address) on the same etcd and NATS, started on an empty state dir and CA directory
 *             with cp's server token: it takes the cluster CA from etcd. Agents are then given
 *             both (`--server cp:7440,cp2:7440`, cp first)
 *   the test  the CLI (dist/bin/skiff.cjs) in the machine namespace, through the lab's one veth,
 *             with a client config of its own (server, CA, admin token; the registry marked
 *             insecure: plain HTTP to cp's address)
 *
 *   const lab = await startLab({ nodes: 3 });
 *   after(() => lab.dispose());
 *   await lab.skiff(['get', 'nodes', '-o', 'wide']);
 *   await lab.node('n1').run(['busybox', 'ping', '-c1', podIP]);
 *
 * `networkBackend` is the control plane's `--network-backend` (how agents route each other's pod
 * CIDRs); `secondSubnet` puts the nodes it names on a second subnet behind a router (hosts.ts), as
 * the vxlan backend is for: cp, and the test process with it, stay on the first.
 *
 * Ports are the defaults: each host is a namespace of its own, so they are free there whatever
 * else runs on the machine. Heartbeats every 2 s and a 8 s grace (rather than 10 s and 40 s) keep
 * "the node went NotReady" short. `dispose()` stops everything and removes the hosts (hosts.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureClusterPki } from '../../cli/up/cluster-pki.js';
import { writeNatsConfig, type NatsConfigFiles } from '../../cli/up/cluster.js';
import { writeJoinToken } from '../../cli/up/agent-process.js';
import { startEtcd, type EtcdProcess } from '../../cli/up/etcd-process.js';
import { startNats, type NatsProcess } from '../../cli/up/nats-process.js';
import { httpProbe, listensOn } from '../../cli/up/process-support.js';
import { formatConfigDocument } from '../../cli/config.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { Node } from '../../proto/gen/types.js';
import type { NetworkBackend } from '../../proto/network-plan.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { runSkiff, type RunOptions, type RunResult } from '../e2e/cli-harness.js';
import { createHosts, type Host, type HostProcess, type Hosts, type HostRunOptions } from './hosts.js';

export const LAB_PORTS = {
  etcdClient: 2379,
  etcdPeer: 2380,
  nats: 4222,
  natsMonitor: 8222,
  api: 7440,
  http: 7441,
};

export interface LabOptions {
  /** Agent hosts n1…nN (default 3). */
  nodes?: number;
  /** Names the lab's directory. */
  prefix?: string;
  /** The agents' heartbeat interval (default 2000 ms). */
  heartbeatMs?: number;
  /** The control plane's --node-monitor-grace-period (default 8000 ms). */
  nodeGraceMs?: number;
  /** Bound on each start-up wait (default 60 s: the machine may be loaded). */
  readyTimeoutMs?: number;
  /** 2: a second control plane on host cp2 (default 1). */
  controlPlanes?: 1 | 2;
  /** The control plane's `--network-backend` (default: its own, host-gw). */
  networkBackend?: NetworkBackend;
  /** Nodes (n2, …) put on a second subnet, joined to cp's by a router (default none: one switch). */
  secondSubnet?: string[];
}

/** The second control plane of `controlPlanes: 2`. */
export interface LabSecondControlPlane {
  host: Host;
  address: string;
  /** The API, host:port. */
  api: string;
  /** Its --cluster-ca-dir (empty before it started). */
  caDir: string;
  readonly controlplane: HostProcess;
}

export interface LabControlPlane {
  host: Host;
  name: string;
  address: string;
  /** The API, host:port. */
  api: string;
  /** The HTTP address (registry under /v2/), http://host:port. */
  httpUrl: string;
  natsUrl: string;
  /** The cluster CA (PEM file). */
  caFile: string;
  adminToken: string;
  /** The running `skiff controlplane`. */
  readonly controlplane: HostProcess;
  stopControlPlane(): Promise<void>;
  startControlPlane(): Promise<void>;
  stopNats(): Promise<void>;
  startNats(): Promise<void>;
}

export interface LabNode {
  host: Host;
  name: string;
  address: string;
  netns: string;
  root: string;
  /** A directory of the host pods may mount as hostPath (the agent allows it). */
  shareDir: string;
  /** The node's credentials as its agent keeps them (<root>/pki). */
  pki: { ca: string; cert: string; key: string };
  /** The running agent, if any. */
  readonly agent: HostProcess | undefined;
  run(argv: string[], options?: HostRunOptions): Promise<RunResult>;
  /** Starts `skiff agent` on the host; waits until the Node is Ready unless told not to. */
  startAgent(options?: { waitReady?: boolean }): Promise<void>;
}

export interface Lab {
  hosts: Hosts;
  cp: LabControlPlane;
  cp2: LabSecondControlPlane | undefined;
  nodes: LabNode[];
  node(name: string): LabNode;
  /** The client config the CLI runs with. */
  configPath: string;
  /** `skiff ARGS…` in the machine namespace against the lab's cluster. */
  skiff(args: string[], options?: RunOptions): Promise<RunResult>;
  /** An admin API client (closed by dispose). */
  api(): ApiClient;
  /** Resolves once `check()` is true, polling; fails naming `what` after `timeoutMs` (default 60 s). */
  waitFor(what: string, check: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  /** Whether the Node's Ready condition is True. */
  nodeReady(name: string): Promise<boolean>;
  /** Stops every process and removes every host; throws naming what is left. */
  dispose(): Promise<void>;
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startLab(options: LabOptions = {}): Promise<Lab> {
  const count = options.nodes ?? 3;
  const heartbeatMs = options.heartbeatMs ?? 2000;
  const nodeGraceMs = options.nodeGraceMs ?? 8000;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const names = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const two = options.controlPlanes === 2;
  for (const name of options.secondSubnet ?? [])
    if (!names.includes(name))
      throw new Error(`start lab: secondSubnet names ${name}, not one of ${names.join(', ')}`);
  const hosts = await createHosts(['cp', ...(two ? ['cp2'] : []), ...names], {
    prefix: options.prefix ?? 'lab',
    ...(options.secondSubnet?.length ? { secondSubnet: options.secondSubnet } : {}),
  });
  const cpHost = hosts.host('cp');
  const state = join(cpHost.dir, 'state');
  const logs = cpHost.dir;
  const api = `${cpHost.address}:${LAB_PORTS.api}`;
  const httpUrl = `http://${cpHost.address}:${LAB_PORTS.http}`;
  let etcd: EtcdProcess | undefined;
  let nats: NatsProcess | undefined;
  let controlplane: HostProcess | undefined;
  let controlplane2: HostProcess | undefined;
  let client: ApiClient | undefined;
  const agents = new Map<string, HostProcess>();
  let disposed: Promise<void> | undefined;
  const dispose = (): Promise<void> =>
    (disposed ??= (async () => {
      client?.close();
      // agents and the control plane first, so nothing reports to what is gone; then NATS, etcd
      await Promise.all(
        [...agents.values(), ...[controlplane, controlplane2].filter((p) => p !== undefined)].map((p) =>
          p.stop(5000),
        ),
      );
      await nats?.stop().catch(() => {});
      await etcd?.stop().catch(() => {});
      await hosts.dispose();
    })());
  try {
    const pki = await ensureClusterPki(state, [cpHost.address]);
    let natsConfig: NatsConfigFiles | undefined;
    const launchNats = async () => {
      natsConfig ??= await writeNatsConfig(state, pki);
      nats = await startNats({
        configFile: natsConfig.configFile,
        storeDir: join(state, 'nats'),
        host: cpHost.address,
        port: LAB_PORTS.nats,
        monitorPort: LAB_PORTS.natsMonitor,
        output: { logFile: join(logs, 'nats.log') },
        netns: cpHost.netnsPath,
        readyTimeoutMs,
      });
    };
    await Promise.all([
      (async () => {
        etcd = await startEtcd({
          dataDir: join(state, 'etcd'),
          host: cpHost.address,
          clientPort: LAB_PORTS.etcdClient,
          peerPort: LAB_PORTS.etcdPeer,
          tls: pki.etcd,
          output: { logFile: join(logs, 'etcd.log') },
          netns: cpHost.netnsPath,
          readyTimeoutMs,
        });
      })(),
      launchNats(),
    ]);
    const adminTokenFile = join(state, 'admin-token');
    const controlplaneArgs = [
      process.execPath,
      ...skiffEntryArgv(),
      'controlplane',
      '--etcd', etcd!.endpoint,
      '--etcd-cafile', pki.controlplaneEtcdClient.caFile,
      '--etcd-certfile', pki.controlplaneEtcdClient.certFile,
      '--etcd-keyfile', pki.controlplaneEtcdClient.keyFile,
      '--nats', nats!.endpoint,
      '--nats-cafile', pki.controlplaneNatsClient.caFile,
      '--nats-certfile', pki.controlplaneNatsClient.certFile,
      '--nats-keyfile', pki.controlplaneNatsClient.keyFile,
      '--nats-authorization-file', natsConfig!.authorizationFile,
      '--nats-pid-file', natsConfig!.pidFile,
      '--api-addr', api,
      '--http-addr', `${cpHost.address}:${LAB_PORTS.http}`,
      '--state-dir', join(state, 'controlplane'),
      '--admin-token-file', adminTokenFile,
      '--cluster-ca-dir', pki.dir,
      '--node-monitor-grace-period', `${nodeGraceMs}ms`,
      ...(options.networkBackend ? ['--network-backend', options.networkBackend] : []),
    ]; // prettier-ignore
    const env = { ...process.env, SKIFF_LOG_LEVEL: process.env.SKIFF_LOG_LEVEL ?? 'info' };
    const launchControlPlane = async () => {
      const started = cpHost.spawn('controlplane', controlplaneArgs, { env });
      controlplane = started;
      try {
        await waitFor(
          `the control plane at ${api}`,
          async () => {
            if (!started.running) throw new Error('exited');
            return (
              (await httpProbe(`${httpUrl}/readyz`, () => true)) &&
              listensOn(started.pid, LAB_PORTS.api) &&
              existsSync(adminTokenFile)
            );
          },
          readyTimeoutMs,
        );
        if (!started.running) throw new Error('it exited');
      } catch (err) {
        throw new Error(
          `start the control plane on ${cpHost.name}: ${(err as Error).message}; log:\n${tail(started.logFile)}`,
        );
      }
    };
    await launchControlPlane();
    let cp2: LabSecondControlPlane | undefined;
    if (two) {
      const host = hosts.host('cp2');
      const api2 = `${host.address}:${LAB_PORTS.api}`;
      const caDir = join(host.dir, 'state', 'pki');
      // what an operator gives a second control plane: the etcd and NATS credentials, the first
      // one's server token, and nothing of the cluster CA
      const args = [
        ...controlplaneArgs.slice(0, controlplaneArgs.indexOf('--api-addr')),
        '--api-addr', api2,
        '--http-addr', `${host.address}:${LAB_PORTS.http}`,
        '--state-dir', join(host.dir, 'state', 'controlplane'),
        '--admin-token-file', join(host.dir, 'state', 'admin-token'),
        '--cluster-ca-dir', caDir,
        '--server-token-file', join(state, 'controlplane', 'server-token'),
        '--node-monitor-grace-period', `${nodeGraceMs}ms`,
        ...(options.networkBackend ? ['--network-backend', options.networkBackend] : []),
      ]; // prettier-ignore
      const started = host.spawn('controlplane', args, { env });
      controlplane2 = started;
      try {
        await waitFor(
          `the second control plane at ${api2}`,
          async () => {
            if (!started.running) throw new Error('exited');
            return (
              (await httpProbe(`http://${host.address}:${LAB_PORTS.http}/readyz`, () => true)) &&
              listensOn(started.pid, LAB_PORTS.api)
            );
          },
          readyTimeoutMs,
        );
      } catch (err) {
        throw new Error(
          `start the second control plane on ${host.name}: ${(err as Error).message}; log:\n${tail(started.logFile)}`,
        );
      }
      cp2 = {
        host,
        address: host.address,
        api: api2,
        caDir,
        get controlplane() {
          return started;
        },
      };
    }
    const agentServer = cp2 ? `${api},${cp2.api}` : api;
    const adminToken = readFileSync(adminTokenFile, 'utf8').trim();
    const caFile = pki.caFile;
    const configPath = join(hosts.dir, 'config');
    writeFileSync(
      configPath,
      formatConfigDocument({
        clusters: [{ name: 'lab', cluster: { server: api, http: httpUrl, ca: caFile } }],
        users: [{ name: 'admin', user: { token: adminToken } }],
        contexts: [{ name: 'lab', context: { cluster: 'lab', user: 'admin' } }],
        currentContext: 'lab',
        legacy: false,
        // the CLI pushes to cp's address over plain HTTP (the control plane's HTTP port has no TLS)
        registries: { [`${cpHost.address}:${LAB_PORTS.http}`]: { insecure: true } },
      }),
      { mode: 0o600 },
    );
    const cliEnv = {
      ...process.env,
      SKIFF_CONFIG: configPath,
      SKIFF_LOG_LEVEL: process.env.SKIFF_LOG_LEVEL ?? 'warn',
    };
    client = connectApi({ server: api, token: adminToken, tls: { ca: readFileSync(caFile, 'utf8') } });
    const apiClient = client;
    const nodeReady = async (name: string) => {
      try {
        const node = (await apiClient.get('Node', '', name)) as Node;
        return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
      } catch {
        return false;
      }
    };
    const tokenFile = join(hosts.dir, 'join-token');
    await writeJoinToken({ api, adminToken, caFile, file: tokenFile });

    const nodes: LabNode[] = names.map((name) => {
      const host = hosts.host(name);
      const shareDir = join(host.dir, 'share');
      const node: LabNode = {
        host,
        name,
        address: host.address,
        netns: host.netns,
        root: host.root,
        shareDir,
        pki: {
          ca: join(host.root, 'pki', 'ca.crt'),
          cert: join(host.root, 'pki', 'node.crt'),
          key: join(host.root, 'pki', 'node.key'),
        },
        get agent() {
          return agents.get(name);
        },
        run: (argv, runOptions) => host.run(argv, runOptions),
        async startAgent({ waitReady = true } = {}) {
          const running = agents.get(name);
          if (running?.running) throw new Error(`start agent ${name}: one runs already (pid ${running.pid})`);
          const agent = host.spawn(
            'agent',
            [
              process.execPath,
              ...skiffEntryArgv(),
              'agent',
              '--server', agentServer,
              '--token-file', tokenFile,
              '--node-name', name,
              '--root', host.root,
              '--node-ip', host.address,
              '--cgroup-parent', host.cgroupParent,
              '--node-status-update-frequency', `${heartbeatMs}ms`,
              '--allow-host-path', shareDir,
            ], // prettier-ignore
            { env },
          );
          agents.set(name, agent);
          if (!waitReady) return;
          try {
            await waitFor(
              `node ${name} Ready`,
              async () => {
                if (!agent.running) throw new Error('exited');
                return nodeReady(name);
              },
              readyTimeoutMs,
            );
            if (!agent.running) throw new Error('it exited');
          } catch (err) {
            throw new Error(`start agent ${name}: ${(err as Error).message}; log:\n${tail(agent.logFile)}`);
          }
        },
      };
      return node;
    });
    for (const node of nodes) mkdirSync(node.shareDir, { recursive: true, mode: 0o755 });
    // a node forwards its pods' packets (as a Kubernetes node must): the operator's part, which an
    // agent leaves alone in its own namespace. Safe here: a host routes the lab's subnets only
    for (const node of nodes) {
      const set = await node.run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      if (set.code !== 0) throw new Error(`turn on forwarding on ${node.name}: ${set.stderr.trim()}`);
    }
    await Promise.all(nodes.map((node) => node.startAgent()));

    const cp: LabControlPlane = {
      host: cpHost,
      name: cpHost.name,
      address: cpHost.address,
      api,
      httpUrl,
      natsUrl: nats!.endpoint,
      caFile,
      adminToken,
      get controlplane() {
        return controlplane!;
      },
      stopControlPlane: () => controlplane!.stop(),
      startControlPlane: launchControlPlane,
      stopNats: async () => {
        await nats?.stop();
      },
      startNats: launchNats,
    };
    return {
      hosts,
      cp,
      cp2,
      nodes,
      node(name) {
        const node = nodes.find((n) => n.name === name);
        if (!node) throw new Error(`the lab has no node ${name}`);
        return node;
      },
      configPath,
      skiff: (args, runOptions = {}) => runSkiff(args, { env: cliEnv, ...runOptions }),
      api: () => apiClient,
      waitFor,
      nodeReady,
      dispose,
    };
  } catch (err) {
    await dispose().catch((cleanup: unknown) => {
      (err as Error).message += `\n(and the clean-up failed: ${(cleanup as Error).message})`;
    });
    throw err;
  }
}
