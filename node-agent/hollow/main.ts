/**
 * `skiff agent --hollow`'s process: the agent's start-up (node-agent/agent/main.ts: credentials,
 * the control plane's Version, NATS) for a node group instead of a node, then HollowNodes. With a
 * join token the group joins once, as `system:node-group:<group>` (credentials in <root>/pki).
 */
import type { NatsConnection } from 'nats';
import { InvalidArgumentError } from '../../proto/errors.js';
import { nodeGroupNameProblem } from '../../proto/node-group.js';
import { packageVersion } from '../../proto/package-info.js';
import type { Logger } from '../../proto/support/logger.js';
import { askVersion, closeCluster, clusterCredentials, connectNats } from '../agent/main.js';
import { detectNodeIP } from '../agent/node-facts.js';
import { HollowNodes, type HollowNodesOptions } from './hollow-nodes.js';

export type HollowProcessOptions = Omit<HollowNodesOptions, 'api' | 'nats' | 'nodeIP' | 'version'> & {
  server: string;
  /** A join token (the group joins with mutual TLS), or an API token. */
  token: string;
  ca?: string;
  /** Where the group's credentials are kept (<root>/pki). */
  root: string;
  natsUrl?: string;
  /** Default: the first non-loopback IPv4 address. */
  nodeIP?: string;
};

export interface RunningHollowNodes {
  nodes: HollowNodes;
  stop(): Promise<void>;
}

export async function startHollowNodes(options: HollowProcessOptions): Promise<RunningHollowNodes> {
  const problem = nodeGroupNameProblem(options.group);
  if (problem !== undefined)
    throw new InvalidArgumentError(
      `agent --hollow: --node-name-prefix "${options.group}": ${problem}`,
      'node-name-prefix',
    );
  if (!Number.isInteger(options.count) || options.count < 1 || options.count > 100_000)
    throw new InvalidArgumentError(
      `agent --hollow: --count must be 1 to 100000, not ${options.count}`,
      'count',
    );
  const credentials = await clusterCredentials({
    ...options,
    nodeName: options.group,
    nodeGroup: options.group,
  });
  const { api } = credentials;
  let nats: NatsConnection | undefined;
  try {
    const version = await askVersion(api, options.server);
    nats = await connectNats(version, options, `skiff-hollow-${options.group}`, credentials.natsTls);
    const { server: _server, token: _token, ca: _ca, root: _root, natsUrl: _natsUrl, ...hollow } = options;
    const nodes = new HollowNodes({
      ...hollow,
      api,
      nats,
      nodeIP: options.nodeIP ?? detectNodeIP(),
      version: packageVersion(),
    });
    await nodes.start();
    const connection = nats;
    return {
      nodes,
      async stop() {
        await nodes.stop();
        await closeCluster(credentials, connection);
      },
    };
  } catch (err) {
    await closeCluster(credentials, nats, { drain: false });
    throw err;
  }
}
