/**
 * `skiff agent`'s process: connects to the control plane (gRPC) and to NATS (the URL the control
 * plane's Version gives, unless --nats says otherwise), opens the runtime, and runs the Agent until
 * stopped. Start-up order, each step failing with a message that names what to check:
 *   1. the API answers Version (the server address, the token)
 *   2. NATS connected (reconnects for ever afterwards)
 *   3. the runtime under --root (the same store `skiff runtime` and `skiff image` use by default)
 *   4. the Node registered, pods followed
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import { connect, type NatsConnection } from 'nats';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { UnavailableError, errorMessage } from '../../proto/errors.js';
import type { Taint } from '../../proto/gen/types.js';
import { packageVersion } from '../../proto/package-info.js';
import type { Logger } from '../../proto/support/logger.js';
import { PodNetwork, openImageRuntime, type ImageRuntime } from '../runtime/runtime.js';
import type { SandboxNetwork } from '../runtime/pod-runtime.js';
import { Agent } from './agent.js';
import { detectNodeIP } from './node-facts.js';
import type { BackoffPolicy } from './pod-sync.js';

export interface AgentProcessOptions {
  /** The control plane's API, host:port. */
  server: string;
  token: string;
  nodeName: string;
  /** Runtime root (images, containers, pod directories). */
  root: string;
  /** NATS URL(s); default: what the control plane's Version says. */
  natsUrl?: string;
  /** Default: the first non-loopback IPv4 address. */
  nodeIP?: string;
  labels?: Record<string, string>;
  taints?: Taint[];
  allowedHostPaths?: string[];
  /** Privileged containers may run (`--allow-privileged`). */
  allowPrivileged?: boolean;
  /** The node's bridge; default skiff0. */
  bridge?: string;
  /**
   * The host network namespace to program (a path, /run/netns/<name>), when it is not this
   * process's own: in-process tests run a node's network in a namespace of their own.
   */
  hostNetns?: string;
  heartbeatMs?: number;
  backoff?: BackoffPolicy;
  log: Logger;
}

export interface RunningAgent {
  agent: Agent;
  runtime: ImageRuntime;
  /** Stops following the cluster and closes the connections; containers keep running. */
  stop(): Promise<void>;
}

export async function startAgent(options: AgentProcessOptions): Promise<RunningAgent> {
  const { log } = options;
  const api: ApiClient = connectApi({ server: options.server, token: options.token });
  let nats: NatsConnection | undefined;
  try {
    let version;
    try {
      version = await api.version();
    } catch (err) {
      throw new UnavailableError(
        `start agent: the control plane at ${options.server} did not answer: ${errorMessage(err)}; check --server and --token`,
        options.server,
        { cause: err },
      );
    }
    const natsUrl = options.natsUrl || version.natsUrl;
    if (!natsUrl)
      throw new UnavailableError(
        `start agent: the control plane at ${options.server} runs without NATS and no --nats was given`,
        options.server,
      );
    try {
      nats = await connect({
        servers: natsUrl.split(',').map((s) => s.trim()),
        name: `skiff-agent-${options.nodeName}`,
        timeout: 5000,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
      });
    } catch (err) {
      throw new UnavailableError(
        `start agent: cannot connect to NATS at ${natsUrl}: ${errorMessage(err)}; check --nats`,
        natsUrl,
        { cause: err },
      );
    }
    const clusterUrl = reachable(version.httpUrl, options.server);
    // the runtime is opened before the node has its pod CIDR: its network hook is this stand-in,
    // given the real PodNetwork once the Node is registered (no sandbox is made before that)
    const network = new DeferredNetwork();
    const runtime = await openImageRuntime(options.root, {
      logger: log.child({ component: 'runtime' }),
      sandboxNetwork: network,
      warmShims: 2,
      registry: { config: { ...(clusterUrl ? { cluster: { url: clusterUrl, token: options.token } } : {}) } },
    });
    const agent = new Agent({
      api,
      nats,
      runtime,
      nodeName: options.nodeName,
      nodeIP: options.nodeIP ?? detectNodeIP(),
      ...(options.labels ? { labels: options.labels } : {}),
      ...(options.taints ? { taints: options.taints } : {}),
      ...(options.allowedHostPaths ? { allowedHostPaths: options.allowedHostPaths } : {}),
      ...(options.allowPrivileged ? { allowPrivileged: true } : {}),
      ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
      ...(options.backoff ? { backoff: options.backoff } : {}),
      version: packageVersion(),
      ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
      prepareNetwork: async (podCIDR) => {
        const plan: NetworkPlan = {
          podCIDR,
          clusterCIDR: version.clusterCIDR || '10.244.0.0/16',
          ...(version.serviceCIDR ? { serviceCIDR: version.serviceCIDR } : {}),
          bridge: options.bridge ?? 'skiff0',
        };
        // kept so that the node's network can be removed without the control plane (removeAgentNode)
        await writeFileAtomic(join(options.root, NETWORK_PLAN_FILE), JSON.stringify(plan) + '\n', {
          mode: 0o600,
        });
        const podNetwork = new PodNetwork({
          ...plan,
          stateDir: join(options.root, 'net'),
          ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
          log: log.child({ component: 'pod-network' }),
        });
        await podNetwork.prepareNode();
        network.target = podNetwork;
        return podNetwork;
      },
      log,
    });
    await agent.start();
    const connection = nats;
    return {
      agent,
      runtime,
      async stop() {
        await agent.stop();
        await connection.drain().catch(() => connection.close());
        api.close();
      },
    };
  } catch (err) {
    await nats?.close().catch(() => {});
    api.close();
    throw err;
  }
}

const NETWORK_PLAN_FILE = 'network.json';

/** What the agent programmed its node's network with (<root>/network.json). */
interface NetworkPlan {
  podCIDR: string;
  clusterCIDR: string;
  serviceCIDR?: string;
  bridge: string;
}

/**
 * Removes what an agent (stopped) left on its node: every pod sandbox and container in its root,
 * then the node's pod network (veths, bridge, table, routes). Images stay. What could not be
 * removed is returned, each naming the object.
 */
export async function removeAgentNode(
  root: string,
  options: { hostNetns?: string; log?: Logger } = {},
): Promise<string[]> {
  const problems: string[] = [];
  let plan: NetworkPlan | undefined;
  try {
    plan = JSON.parse(await readFile(join(root, NETWORK_PLAN_FILE), 'utf8')) as NetworkPlan;
  } catch {
    plan = undefined; // never got a network
  }
  const network = plan
    ? new PodNetwork({
        ...plan,
        stateDir: join(root, 'net'),
        ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
        ...(options.log ? { log: options.log } : {}),
      })
    : undefined;
  let runtime;
  try {
    runtime = (await openImageRuntime(root, network ? { sandboxNetwork: network } : {})).runtime;
  } catch (err) {
    return [`open runtime ${root}: ${errorMessage(err)}`];
  }
  for (const sandbox of await runtime.containers.listSandboxes()) {
    await runtime.containers
      .removeSandbox(sandbox.id)
      .catch((err) => problems.push(`sandbox ${sandbox.name}: ${errorMessage(err)}`));
  }
  for (const container of await runtime.containers.list({ all: true })) {
    await runtime.containers
      .remove(container.id, { force: true })
      .catch((err) => problems.push(`container ${container.name}: ${errorMessage(err)}`));
  }
  if (network) await network.removeNode().catch((err) => problems.push(`pod network: ${errorMessage(err)}`));
  await rm(join(root, NETWORK_PLAN_FILE), { force: true });
  return problems;
}

/** The runtime's network hook until the node's PodNetwork exists. */
class DeferredNetwork implements SandboxNetwork {
  target: SandboxNetwork | undefined;
  setUp(sandbox: Parameters<SandboxNetwork['setUp']>[0]): ReturnType<SandboxNetwork['setUp']> {
    if (!this.target) throw new UnavailableError('pod network: the node has no pod CIDR yet');
    return this.target.setUp(sandbox);
  }
  async tearDown(sandbox: Parameters<SandboxNetwork['tearDown']>[0]): Promise<void> {
    // a sandbox torn down before the network exists was never set up by it
    await this.target?.tearDown(sandbox);
  }
}

/** The control plane's HTTP URL as this host reaches it: a wildcard bind means the --server host. */
function reachable(httpUrl: string, server: string): string | undefined {
  if (!httpUrl) return undefined;
  const url = new URL(httpUrl);
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') {
    url.hostname = server.slice(0, server.lastIndexOf(':'));
  }
  return url.toString().replace(/\/$/, '');
}
