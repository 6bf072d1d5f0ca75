/**
 * `skiff agent`'s process: connects to the control plane (gRPC) and to NATS (the URL the control
 * plane's Version gives, unless --nats says otherwise), opens the runtime, and runs the Agent until
 * stopped. Start-up order, each step failing with a message that names what to check:
 *   1. the API answers Version (the server address, the token)
 *   2. NATS connected (reconnects for ever afterwards)
 *   3. the runtime under --root (the same store `skiff runtime` and `skiff image` use by default)
 *   4. the Node registered, pods followed
 */
import { connect, type NatsConnection } from 'nats';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { UnavailableError, errorMessage } from '../../proto/errors.js';
import type { Taint } from '../../proto/gen/types.js';
import { packageVersion } from '../../proto/package-info.js';
import type { Logger } from '../../proto/support/logger.js';
import { openImageRuntime, type ImageRuntime } from '../runtime/runtime.js';
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
    const runtime = await openImageRuntime(options.root, {
      logger: log.child({ component: 'runtime' }),
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
      ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
      ...(options.backoff ? { backoff: options.backoff } : {}),
      version: packageVersion(),
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

/** The control plane's HTTP URL as this host reaches it: a wildcard bind means the --server host. */
function reachable(httpUrl: string, server: string): string | undefined {
  if (!httpUrl) return undefined;
  const url = new URL(httpUrl);
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') {
    url.hostname = server.slice(0, server.lastIndexOf(':'));
  }
  return url.toString().replace(/\/$/, '');
}
