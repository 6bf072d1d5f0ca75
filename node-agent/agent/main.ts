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
import {
  DEFAULT_CLUSTER_CIDR,
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_SERVICE_CIDR,
  CLUSTER_DNS_SERVICE,
  clusterDNSAddress,
  parseNetworkBackend,
} from '../../proto/network-plan.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import { connect, type NatsConnection } from 'nats';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { UnavailableError, errorMessage } from '../../proto/errors.js';
import type { Taint } from '../../proto/gen/types.js';
import { packageVersion } from '../../proto/package-info.js';
import type { Logger } from '../../proto/support/logger.js';
import { ServiceProxy } from '../proxy/service-proxy.js';
import { serviceInformers, type ServiceInformers } from './service-informers.js';
import { PodNetwork, openImageRuntime, validateCgroupParent, type ImageRuntime } from '../runtime/runtime.js';
import type { SandboxNetwork } from '../runtime/pod-runtime.js';
import { Agent } from './agent.js';
import { clusterRegistryAddress } from './cluster-registry.js';
import { isLoopbackHost } from '../../proto/oci/registry-hosts.js';
import { detectNodeIP } from './node-facts.js';
import type { BackoffPolicy } from './pod-sync.js';
import {
  obtainNodeCredentials,
  readNodeCredentials,
  startCertificateRenewal,
  type CertificateRenewal,
} from './node-credentials.js';
import { isJoinToken } from '../../proto/join-token.js';
import {
  parseResolvConf,
  podResolverConfig,
  resolvConfText,
  type ClusterDNS,
  type ResolverConfig,
} from './pod-dns.js';
import { upstreamsOf, type Upstream } from '../dns/upstreams.js';

// `skiff agent --dns-upstream` is checked by the CLI, which reaches the agent through this file only
export { parseUpstreams } from '../dns/upstreams.js';
import type { NodeDns } from '../dns/node-dns.js';

export interface AgentProcessOptions {
  /**
   * The control plane's API, host:port; with several control planes, several, comma-separated:
   * the agent uses the first it reaches and moves to the next when its connection fails.
   */
  server: string;
  /** A join token (K10…: the node joins with mutual TLS), or an API token. */
  token: string;
  /** PEM of the CA that verifies the API with an API token; none: plaintext (a control plane without a CA). */
  ca?: string;
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
  /** The cgroup parent of the node's containers (`<hierarchy>/<parent>/<id>`); default `skiff`. */
  cgroupParent?: string;
  /** Privileged containers may run (`--allow-privileged`). */
  allowPrivileged?: boolean;
  /** The node's bridge; default skiff0. */
  bridge?: string;
  /**
   * The host network namespace to program (a path, /run/netns/<name>), when it is not this
   * process's own: in-process tests run a node's network in a namespace of their own.
   */
  hostNetns?: string;
  /** Where the node's cluster DNS forwards other names (`--dns-upstream`); default the node's resolv.conf nameservers. */
  dnsUpstreams?: Upstream[];
  heartbeatMs?: number;
  /** Every pod reconciled again this often; default 60 s. */
  resyncMs?: number;
  backoff?: BackoffPolicy;
  log: Logger;
}

export interface RunningAgent {
  agent: Agent;
  runtime: ImageRuntime;
  /** Stops following the cluster and closes the connections; containers keep running. */
  stop(): Promise<void>;
}

/**
 * How the agent talks to the cluster. With a join token (K10…), or credentials from an earlier
 * join in <root>/pki: mutual TLS as system:node:<node> for the API and NATS, renewed before they
 * expire, and a registry pull token the control plane issues to the node. With an API token (tests
 * of a control plane without a CA, or an operator's choice): that token everywhere, TLS verified
 * with `ca` when given.
 */
export async function clusterCredentials(
  options: Pick<AgentProcessOptions, 'server' | 'token' | 'ca' | 'nodeName' | 'root' | 'log'> & {
    /** A node group's credentials instead (hollow nodes). */
    nodeGroup?: string;
  },
): Promise<{
  api: ApiClient;
  natsTls?: { ca: string; cert: string; key: string };
  registryToken: () => Promise<string | undefined>;
  renewal?: CertificateRenewal;
}> {
  const dir = join(options.root, 'pki');
  const joining = isJoinToken(options.token);
  const existing = await readNodeCredentials(dir, options.nodeName, new Date(), options.nodeGroup).catch(
    () => undefined,
  );
  if (!joining && !existing) {
    const api = connectApi({
      server: options.server,
      token: options.token,
      ...(options.ca ? { tls: { ca: options.ca } } : {}),
    });
    return { api, registryToken: async () => options.token };
  }
  const group = options.nodeGroup !== undefined ? { nodeGroup: options.nodeGroup } : {};
  const credentials = await obtainNodeCredentials({
    server: options.server,
    ...(joining ? { joinToken: options.token } : {}),
    ...group,
    nodeName: options.nodeName,
    dir,
    log: options.log,
  });
  // one object the client reads at each (re)connect: a renewal replaces its fields in place
  const tls = { ca: credentials.ca, cert: credentials.cert, key: credentials.key };
  const api = connectApi({ server: options.server, tls });
  const renewal = startCertificateRenewal({
    server: options.server,
    ...group,
    nodeName: options.nodeName,
    dir,
    credentials,
    log: options.log,
    onRenewed: (renewed) => Object.assign(tls, { ca: renewed.ca, cert: renewed.cert, key: renewed.key }),
  });
  let pull: { token: string; expiresAtMs: number } | undefined;
  return {
    api,
    natsTls: tls,
    renewal,
    // asked again an hour before it expires
    registryToken: async () => {
      if (!pull || pull.expiresAtMs - Date.now() < 3_600_000) {
        const issued = await api.issueRegistryToken();
        pull = { token: issued.token, expiresAtMs: Date.parse(issued.expiresAt) || Date.now() + 3_600_000 };
      }
      return pull.token;
    },
  };
}

/**
 * The control plane's Version (where NATS and the registry are), from the first of the servers
 * (comma-separated) that answers: a failed call moves the client to the next one.
 */
export async function askVersion(
  api: ApiClient,
  server: string,
): Promise<Awaited<ReturnType<ApiClient['version']>>> {
  const servers = server.split(',').length;
  for (let attempt = 1; ; attempt++) {
    try {
      return await api.version();
    } catch (err) {
      if (attempt < servers) continue;
      throw new UnavailableError(
        `start agent: the control plane at ${server} did not answer: ${errorMessage(err)}; check --server and --token`,
        server,
        { cause: err },
      );
    }
  }
}

/**
 * The agent's NATS connection (reconnecting for ever) to --nats or where the Version says, with the
 * node's certificate when it has one.
 */
export async function connectNats(
  version: { natsUrl: string },
  options: { server: string; natsUrl?: string },
  name: string,
  tls: { ca: string; cert: string; key: string } | undefined,
): Promise<NatsConnection> {
  const { server } = options;
  const natsUrl = options.natsUrl || version.natsUrl;
  if (!natsUrl)
    throw new UnavailableError(
      `start agent: the control plane at ${server} runs without NATS and no --nats was given`,
      server,
    );
  try {
    return await connect({
      servers: natsUrl.split(',').map((s) => s.trim()),
      name,
      timeout: 5000,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      ...(tls ? { tls: { ...tls } } : {}),
    });
  } catch (err) {
    throw new UnavailableError(
      `start agent: cannot connect to NATS at ${natsUrl}: ${errorMessage(err)}; check --nats`,
      natsUrl,
      { cause: err },
    );
  }
}

export async function startAgent(options: AgentProcessOptions): Promise<RunningAgent> {
  const { log } = options;
  // before joining: a bad flag must not leave a half-joined node
  if (options.cgroupParent !== undefined) validateCgroupParent(options.cgroupParent);
  let credentials;
  try {
    credentials = await clusterCredentials(options);
  } catch (err) {
    throw new UnavailableError(
      `start agent: joining the cluster at ${options.server} failed: ${errorMessage(err)}; check --server and --token`,
      options.server,
      { cause: err },
    );
  }
  const { api } = credentials;
  let nats: NatsConnection | undefined;
  try {
    const version = await askVersion(api, options.server);
    nats = await connectNats(version, options, `skiff-agent-${options.nodeName}`, credentials.natsTls);
    // the API verifies the server with the cluster CA when the node has its certificate or --ca
    const registryAddress = clusterRegistryAddress(
      version.httpUrl,
      options.server.split(',')[0]!.trim(),
      credentials.natsTls !== undefined || options.ca !== undefined,
    );
    // the runtime is opened before the node has its pod CIDR: its network hook is this stand-in,
    // given the real PodNetwork once the Node is registered (no sandbox is made before that)
    const network = new DeferredNetwork();
    // the registry client reads the cluster's token at each pull: kept current here
    const cluster = registryAddress
      ? {
          url: registryAddress.url,
          token: await credentials.registryToken(),
          ...(registryAddress.allowPlainHttp ? { allowPlainHttp: true } : {}),
        }
      : undefined;
    if (registryAddress?.allowPlainHttp && !isLoopbackHost(new URL(registryAddress.url).host))
      log.info(
        { registry: registryAddress.url },
        'cluster registry is plain HTTP: pulls from it are not encrypted',
      );
    const registryRefresh = cluster
      ? setInterval(() => {
          credentials
            .registryToken()
            .then((token) => (cluster.token = token ?? cluster.token))
            .catch((err) => log.warn({ err: errorMessage(err) }, 'renewing the registry token failed'));
        }, 600_000).unref()
      : undefined;
    // the node's Service data plane, started once the pod network has written the table
    let services: { informers: ServiceInformers; proxy: ServiceProxy } | undefined;
    const runtime = await openImageRuntime(options.root, {
      logger: log.child({ component: 'runtime' }),
      sandboxNetwork: network,
      warmShims: 2,
      ...(options.cgroupParent !== undefined ? { cgroupParent: options.cgroupParent } : {}),
      registry: { config: { ...(cluster ? { cluster } : {}) } },
    });
    const nodeIP = options.nodeIP ?? detectNodeIP();
    // an older control plane says nothing: host-gw, its default
    const backend = version.networkBackend
      ? parseNetworkBackend(version.networkBackend, "the control plane's network backend")
      : undefined;
    // pods' resolv.conf (the kubelet's rules) and the node's own cluster DNS server
    const nodeResolver = parseResolvConf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
    const clusterDns: ClusterDNS = {
      address: version.clusterDNS || clusterDNSAddress(version.serviceCIDR || DEFAULT_SERVICE_CIDR),
      domain: version.clusterDomain || DEFAULT_CLUSTER_DOMAIN,
    };
    let nodeDns: NodeDns | undefined;
    const agent = new Agent({
      api,
      nats,
      runtime,
      resolvConfOf: (pod) => resolvConfText(podResolverConfig(pod, clusterDns, nodeResolver)),
      nodeName: options.nodeName,
      nodeIP,
      ...(options.labels ? { labels: options.labels } : {}),
      ...(options.taints ? { taints: options.taints } : {}),
      ...(options.allowedHostPaths ? { allowedHostPaths: options.allowedHostPaths } : {}),
      ...(options.allowPrivileged ? { allowPrivileged: true } : {}),
      ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
      ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
      ...(options.backoff ? { backoff: options.backoff } : {}),
      version: packageVersion(),
      ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
      prepareNetwork: async (podCIDR) => {
        const plan: NetworkPlan = {
          podCIDR,
          clusterCIDR: version.clusterCIDR || DEFAULT_CLUSTER_CIDR,
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
          ...(backend ? { backend } : {}),
          nodeIP,
          log: log.child({ component: 'pod-network' }),
        });
        await podNetwork.prepareNode();
        network.target = podNetwork;
        const informers = serviceInformers(api, log.child({ component: 'service-informers' }));
        const proxy = new ServiceProxy({
          informers,
          nodeName: options.nodeName,
          clusterCIDR: plan.clusterCIDR,
          ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
          log: log.child({ component: 'service-proxy' }),
        });
        services = { informers, proxy };
        informers.services.start();
        informers.endpointSlices.start();
        // not awaited: pods start while the Services list; a failed write is retried by the proxy
        proxy.start().catch((err) => log.warn({ err: errorMessage(err) }, 'service proxy did not start'));
        nodeDns ??= await serveClusterDns({
          ...options,
          informers,
          gateway: podNetwork.gateway,
          clusterDns,
          nodeResolver,
        });
        // the cluster DNS Service has no endpoints: its address goes to this node's own server
        proxy.setNodeLocal(CLUSTER_DNS_SERVICE, podNetwork.gateway);
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
        if (registryRefresh) clearInterval(registryRefresh);
        await services?.proxy.stop();
        await nodeDns?.stop();
        await services?.informers.services.stop();
        await services?.informers.endpointSlices.stop();
        await agent.stop();
        await closeCluster(credentials, connection);
      },
    };
  } catch (err) {
    await closeCluster(credentials, nats, { drain: false });
    throw err;
  }
}

/**
 * The node's cluster DNS server (../dns/node-dns.ts) on its bridge gateway, port 53, where its pods
 * reach it (the data plane DNATs the cluster DNS address there), in the node's namespace: the
 * agent's own (`skiff up`, a lab host, a real one), or --host-netns (in-process tests; sockets bound
 * there, served here). A server that
 * cannot start leaves pods without cluster DNS, not the node without an agent: logged as an error.
 */
async function serveClusterDns(
  options: Pick<AgentProcessOptions, 'hostNetns' | 'dnsUpstreams' | 'log'> & {
    informers: ServiceInformers;
    gateway: string;
    clusterDns: ClusterDNS;
    nodeResolver: ResolverConfig;
  },
): Promise<NodeDns | undefined> {
  const log = options.log.child({ component: 'cluster-dns' });
  const { startNodeDns } = await import('../dns/node-dns.js');
  try {
    return await startNodeDns({
      informers: options.informers,
      address: options.gateway,
      ...(options.hostNetns ? { netnsPath: options.hostNetns } : {}),
      zone: { domain: options.clusterDns.domain, dnsAddress: options.clusterDns.address },
      upstreams: options.dnsUpstreams ?? upstreamsOf(options.nodeResolver, options.gateway),
      log,
    });
  } catch (err) {
    log.error(
      { address: `${options.gateway}:53`, err: errorMessage(err) },
      "cluster dns could not start: pods on this node cannot resolve names; free port 53 on the bridge's address",
    );
    return undefined;
  }
}

/**
 * Closes what clusterCredentials and connectNats opened: the renewal stopped, NATS drained (what
 * was published is sent) or, after a failed start, closed, and the API connection.
 */
export async function closeCluster(
  credentials: { api: ApiClient; renewal?: CertificateRenewal },
  nats: NatsConnection | undefined,
  options: { drain: boolean } = { drain: true },
): Promise<void> {
  credentials.renewal?.stop();
  if (options.drain) await nats?.drain().catch(() => nats.close());
  else await nats?.close().catch(() => {});
  credentials.api.close();
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
 * then the node's pod network (veths, bridge, VXLAN device, table, routes). Images stay. What could not be
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
