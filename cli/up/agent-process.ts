/**
 * The node agents of a local cluster (`skiff up --agents N`): `skiff agent` children of this same
 * binary, one runtime root each under the state dir, so agents of different clusters on one
 * machine never share (or clean up) each other's containers:
 *
 *   DIR/nodes/<name>/      that node's runtime root (images, containers, pod files)
 *   DIR/logs/agent-<name>.log
 *   /run/netns/skiff-<id>-<n>   the node's network namespace, on the cluster's switch
 *                               (node-network.ts): the agent runs in it (`nsenter --net`, nothing
 *                               else: mounts, cgroups and pids stay the machine's), so its pods'
 *                               bridge, veths and nftables table, and whatever it listens on, are
 *                               the node's and never the machine's
 *
 * One agent is named after the host, as a kubelet is; several are `<host>-1`, `<host>-2`, …
 * An agent is ready once its Node reports Ready. Stopping the cluster stops the agents, then
 * removes their pods' containers and sandboxes (the pods start again on the next `up`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { connectApi } from '../../proto/client.js';
import { UnavailableError } from '../../proto/errors.js';
import type { Node } from '../../proto/gen/types.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import {
  findBinary,
  spawnServer,
  stopProcess,
  waitUntilReady,
  type SpawnedServer,
} from './process-support.js';

export interface AgentRecord {
  name: string;
  pid: number;
  /** The node's runtime root; also what its command line contains (see isRunning). */
  marker: string;
  /** The node's network namespace (a name under /run/netns). */
  netns: string;
  /** Its address on the cluster's switch: the Node's InternalIP (absent in older records). */
  address?: string;
}

export function deleteNodeNetns(name: string): void {
  if (existsSync(`/run/netns/${name}`)) execFileSync('ip', ['netns', 'del', name]);
}

export function agentNames(count: number, host = hostname().toLowerCase()): string[] {
  const base = host.replace(/[^a-z0-9.-]/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '') || 'node';
  if (count === 1) return [base];
  return Array.from({ length: count }, (_, i) => `${base}-${i + 1}`);
}

export function nodeRoot(stateDir: string, name: string): string {
  return join(stateDir, 'nodes', name);
}

export interface StartedAgent {
  record: AgentRecord;
  server: SpawnedServer;
  stop(): Promise<void>;
}

/**
 * A join token for the nodes `up` starts now (an hour is plenty: a node that joined keeps its
 * certificate under its root and renews it), written 0600 where the agents read it.
 */
export async function writeJoinToken(options: {
  api: string;
  adminToken: string;
  caFile: string;
  file: string;
}): Promise<void> {
  const api = connectApi({
    server: options.api,
    token: options.adminToken,
    tls: { ca: readFileSync(options.caFile, 'utf8') },
  });
  try {
    const { token } = await api.createToken({ role: 'join', ttlSeconds: 3600 });
    await writeFileAtomic(options.file, `${token}\n`, { mode: 0o600 });
  } finally {
    api.close();
  }
}

/** Starts one agent and waits until its Node is Ready. */
export async function startAgentProcess(options: {
  stateDir: string;
  name: string;
  /** The node's namespace, on the switch (node-network.ts attachNode), and its address there. */
  netns: string;
  address: string;
  /** The API as the node reaches it: the machine's address on the switch. */
  api: string;
  /** A join token (the agent joins with it and keeps its certificate under its root). */
  tokenFile: string;
  /** The admin token and the cluster CA: what this process asks the API with. */
  adminToken: string;
  caFile: string;
  logs: string;
  detached: boolean;
  readyTimeoutMs: number;
}): Promise<StartedAgent> {
  const root = nodeRoot(options.stateDir, options.name);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const logFile = join(options.logs, `agent-${options.name}.log`);
  const args = [
    `--net=/run/netns/${options.netns}`, '--',
    process.execPath,
    ...skiffEntryArgv(),
    'agent',
    '--server', options.api,
    '--token-file', options.tokenFile,
    '--node-name', options.name,
    '--root', root,
    '--node-ip', options.address,
  ]; // prettier-ignore
  // nsenter execs the agent: the pid is the agent's
  const server = spawnServer(findBinary('nsenter', 'util-linux'), args, { logFile }, options.detached);
  const pid = server.child.pid;
  if (pid === undefined)
    throw new UnavailableError(`start agent ${options.name}: it did not start; see ${logFile}`);
  const stop = () => stopProcess(pid, { exited: server.exited, what: `agent ${options.name} (pid ${pid})` });
  const api = connectApi({
    server: options.api,
    token: options.adminToken,
    tls: { ca: readFileSync(options.caFile, 'utf8') },
  });
  try {
    await waitUntilReady(
      `agent ${options.name} (log ${logFile})`,
      server,
      async () => {
        try {
          const node = (await api.get('Node', '', options.name)) as Node;
          return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
        } catch {
          return false;
        }
      },
      options.readyTimeoutMs,
      200,
    );
  } catch (err) {
    await stop();
    throw err;
  } finally {
    api.close();
  }
  return {
    record: { name: options.name, pid, marker: root, netns: options.netns, address: options.address },
    server,
    stop,
  };
}

/**
 * Removes what a stopped agent left: its pods, its node network and the node's namespace; the
 * problems, if any, each naming what it could not remove.
 */
export async function removeAgentPods(agent: AgentRecord): Promise<string[]> {
  const { removeAgentNode } = await import('../../node-agent/agent/main.js');
  const problems = await removeAgentNode(agent.marker, { hostNetns: `/run/netns/${agent.netns}` });
  try {
    deleteNodeNetns(agent.netns);
  } catch (err) {
    problems.push(`network namespace ${agent.netns}: ${(err as Error).message}`);
  }
  return problems;
}
