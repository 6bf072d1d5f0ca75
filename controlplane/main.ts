/**
 * The control plane's start-up, as one straight sequence with readiness gates (k3s style):
 *
 *   1. etcd                 gated on etcd answering (bounded wait)
 *   2. bootstrap            with a cluster CA: the CA and the Secrets' encryption config shared
 *                           through etcd, sealed with the server token (bootstrap/); a refusal
 *                           (no token, a wrong one) writes nothing. Then the state dir (0700), and
 *                           the Store behind the encryption layer and the watch
 *                           cache (CachedStore: one etcd watch per kind, started here)
 *   3. NATS                 connected (fails clearly when unreachable now; reconnects forever later)
 *   4. namespaces           informer started; `default`, `kube-system`, `kube-public`, `kube-node-lease` exist
 *   5. tokens               the admin token exists (created and written to the token file on first start)
 *   6. controllers          the namespace controller (resumes any deletion left half-done)
 *   7. HTTP                 /healthz, /readyz, /metrics, and the image registry under /v2/
 *   8. gRPC API             the cluster CA (made on first start) and the API's certificate
 *                           (api/cluster-trust.ts); with `apiSocket` the API on that Unix socket
 *                           first (api/api-socket.ts: no TLS, 0600 in a 0700 directory), then over
 *                           TLS on `apiAddr`; then one "control plane ready" log line. Without a
 *                           CA directory the TCP address is plaintext h2c with bearer tokens only:
 *                           a mode for tests of the API alone
 *
 * `stop()` undoes it in reverse: the API drains (new calls refused, running ones finish, watches
 * are ended) and its socket goes, then the workers stop and the etcd and NATS connections close.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, type NatsConnection } from 'nats';
import { Registry } from 'prom-client';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
  errorMessage,
} from '../proto/errors.js';
import type { KubeObject, KubeObjectByKind, Pod } from '../proto/gen/types.js';
import { componentLogger, type Logger } from '../proto/support/logger.js';
import { KINDS, kindInfoOf, type KindName } from '../proto/kinds.js';
import { decodeObject } from '../proto/objects.js';
import { packageVersion } from '../proto/package-info.js';
import { unixAddress } from '../proto/api-address.js';
import { ensureAdminToken } from './api/admin-token.js';
import { Authenticator, CONTROL_PLANE_USER_PREFIX, CONTROL_PLANES_GROUP } from './api/auth.js';
import { privateKeyToPem } from '../proto/support/pki.js';
import { PeerRelay } from './streams/peer-relay.js';
import { EtcdTunnelRegistry } from './streams/tunnel-registry.js';
import { createAdminService } from './api/admin-service.js';
import { createApiService } from './api/grpc-server.js';
import { loadClusterTrust } from './api/cluster-trust.js';
import { NodeAuthorizer } from './api/node-authorizer.js';
import { createNodesService } from './api/node-certificates.js';
import { NatsNodeUsers } from './nats-node-users.js';
import { StoreNodeGraph } from './api/node-graph.js';
import { apiServerCredentials } from './api/tls-credentials.js';
import { prepareApiSocket, removeApiSocket, secureBoundSocket, type BoundSocket } from './api/api-socket.js';
import { widenConnectionWindows, widenStreamWindows } from './api/grpc-windows.js';
import { ApiHandlers } from './api/handlers.js';
import type { DefaultTolerationSeconds } from './api/kinds/strategy.js';
import { WATCH_CACHE_INDEXES } from './api/watch-cache-indexes.js';
import { createApiMetrics } from './api/metrics.js';
import { CachedNamespaceLookup } from './api/namespace-lookup.js';
import { StoreTokenStore } from './api/token-store.js';
import { TokenAdmin } from './api/token-admin.js';
import { formatHostPort, listenAddresses, parseHostPort } from './http/host-port.js';
import { HttpServer } from './http/server.js';
import { openRegistry, type ImageRegistry } from './registry/registry.js';
import { NamespaceController } from './controllers/namespace/namespace-controller.js';
import { NodeIpamController } from './controllers/node-ipam/node-ipam-controller.js';

import { createPodStreams, type PodStreams } from './streams/pod-streams.js';
import { StatusIngest } from './status/status-ingest.js';
import { CachedStore } from './store/cached-store.js';
import { EncryptingStore } from './store/encrypting-store.js';
import { ensureEncryptionConfig, LocalEncryptionConfig } from './store/encryption-config.js';
import { rotateEncryptionKey } from './store/rotate-encryption-key.js';
import { bootstrapCluster } from './bootstrap/cluster-bootstrap.js';
import { EtcdStore } from './store/etcd-store.js';
import { LeaderElection } from './leader/leader-election.js';
import { LEADER_LEASE_NAME } from './leader/leader-lease.js';
import { defaultProfile, parseProfile, type SchedulerProfile } from './scheduler/profile.js';
import { SchedulerService } from './scheduler-service/scheduler-service.js';
import { createSchedulerMetrics } from './scheduler-service/metrics.js';
import { Informer } from '../proto/informer/informer.js';
import { storeSource } from './store/store-source.js';
import { ReplicaSetController } from './controllers/replicaset/replicaset-controller.js';
import { GarbageCollector } from './controllers/garbage-collector/garbage-collector.js';
import { DeploymentController } from './controllers/deployment/deployment-controller.js';
import { JobController } from './controllers/job/job-controller.js';
import { CronJobController } from './controllers/cronjob/cronjob-controller.js';
import { PodGarbageCollector } from './controllers/pod-gc/pod-gc-controller.js';
import { DaemonSetController } from './controllers/daemonset/daemonset-controller.js';
import { EndpointSliceController } from './controllers/endpointslice/endpointslice-controller.js';
import { NodeLifecycleController } from './controllers/node-lifecycle/node-lifecycle-controller.js';
import type { EvictionRates } from './controllers/node-lifecycle/node-health.js';
import type { ObjectKey, Store, StoredValue } from './store/store.js';
import { DEFAULT_API_ADDR, DEFAULT_ETCD_PREFIX, DEFAULT_HTTP_ADDR } from './defaults.js';
import {
  DEFAULT_CLUSTER_CIDR,
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_NETWORK_BACKEND,
  DEFAULT_SERVICE_CIDR,
  clusterDNSAddress,
  type NetworkBackend,
} from '../proto/network-plan.js';

export { DEFAULT_API_ADDR, DEFAULT_ETCD_PREFIX, DEFAULT_HTTP_ADDR } from './defaults.js';

export interface ControlPlaneOptions {
  etcdEndpoints: string[];
  /** Pod CIDRs of nodes are taken from here; default 10.244.0.0/16. */
  clusterCIDR?: string;
  /** Services' addresses; default 10.96.0.0/12. */
  serviceCIDR?: string;
  /** How nodes route each other's pod CIDRs; default host-gw (`--network-backend`). */
  networkBackend?: NetworkBackend;
  /** The cluster DNS Service's address; default the service CIDR's tenth address (`--cluster-dns`). */
  clusterDNS?: string;
  /** The domain the cluster DNS serves; default cluster.local (`--cluster-domain`). */
  clusterDomain?: string;
  /** Services' node ports; default 30000-32767 (`--service-node-port-range`). */
  nodePortRange?: { min: number; max: number };
  /** Prefix length of each node's pod CIDR; default 24. */
  nodeCidrMaskSize?: number;
  /** A node silent this long becomes NotReady; default 40 000 ms (`--node-monitor-grace-period`). */
  nodeGraceMs?: number;
  /** How fast not-Ready nodes are tainted NoExecute, per zone (`--node-eviction-rate` and friends). */
  evictionRates?: Partial<EvictionRates>;
  /** What new pods tolerate of a not-Ready or unreachable node, in seconds; default 300 each. */
  defaultTolerationSeconds?: DefaultTolerationSeconds;
  /** Terminated pods kept before the oldest are deleted; default 12 500 (`--terminated-pod-gc-threshold`). */
  terminatedPodGcThreshold?: number;
  /** The NATS URL(s) agents are told to report to (Version); default natsUrl. */
  natsAdvertiseUrl?: string;
  /** NATS server URL(s), comma-separated; omitted: run without NATS (tests of the API alone). */
  natsUrl?: string;
  /**
   * gRPC listen address `host:port` (port 0: any free port), or several comma-separated: the
   * first is the one reported and advertised; the API certificate names every host.
   */
  apiAddr?: string;
  /**
   * Also serve the API on this Unix socket (absolute path; api/api-socket.ts): the same services,
   * tokens and authorization, without TLS, for clients on this machine. Its directory must be
   * this user's and 0700 (made so when missing).
   */
  apiSocket?: string;
  /**
   * HTTP listen address `host:port` (port 0: any free port), or several comma-separated: the first
   * is the one advertised (agents pull from the registry there).
   */
  httpAddr?: string;
  stateDir: string;
  etcdPrefix?: string;
  /** Files for https etcd URLs: the CA of etcd's server certificate, and the client certificate. */
  etcdTls?: { caFile: string; certFile?: string; keyFile?: string };
  /**
   * Kubernetes' EncryptionConfiguration for Secrets at rest (store/encryption-config.ts); default
   * `<stateDir>/encryption-config.yaml`, made with a new key when missing.
   */
  encryptionConfigFile?: string;
  /** Default `<stateDir>/admin-token`. */
  adminTokenFile?: string;
  /**
   * The cluster CA's directory (ca.crt, ca.key; made on the first start when both are missing):
   * the API is then served over TLS and the CA issues node certificates. Omitted: plaintext h2c,
   * bearer tokens only, no join (tests of the API alone).
   */
  clusterCaDir?: string;
  /**
   * What seals the cluster's bootstrap data (the CA and the encryption config) in etcd, so that
   * other control planes given it share them (bootstrap/cluster-bootstrap.ts); made on the
   * cluster's first start. Default `<stateDir>/server-token`. Only with `clusterCaDir`.
   */
  serverTokenFile?: string;
  /**
   * Where other control planes reach this one's API (`host:port`), for pod streams of nodes whose
   * tunnel this one holds (registered in etcd; streams/tunnel-registry.ts). Default: the API's
   * address, or with an API on every interface this host's first non-loopback IPv4 address and the
   * API's port. The API certificate names its host. Only with `clusterCaDir`.
   */
  advertiseAddress?: string;
  /** More names and addresses the API certificate holds (k3s's --tls-san). */
  tlsSans?: string[];
  /** Serve this certificate instead of one issued from the cluster CA (and the CA that issued it). */
  apiServingFiles?: { certFile: string; keyFile: string; caFile?: string };
  /** How long node certificates live; default 30 days (agents renew them before). */
  nodeCertificateTtlMs?: number;
  /**
   * How long this control plane's certificate for relays to the others is valid (issued again
   * halfway, while running); default 24 h.
   */
  controlPlaneCertificateTtlMs?: number;
  /** TLS to NATS: its server's CA, and the control plane's client certificate (verify_and_map). */
  natsTls?: { caFile: string; certFile: string; keyFile: string };
  /**
   * nats-server's users file (nats-authorization.ts) and pid file: each node issued a certificate
   * is added, and nats-server reloads. Omitted: NATS users are someone else's to keep.
   */
  natsAuthorization?: { file: string; pidFile?: string };
  /**
   * Seconds a dead leader's etcd lease outlives it (`--leader-elect-lease-duration`), so the
   * time a standby takes to run the controllers instead; default 10.
   */
  leaderLeaseSeconds?: number;
  /**
   * The scheduler's profile (controlplane/scheduler/profile.ts), a YAML file
   * (`--scheduler-config`): read and checked before anything starts; default the built-in one.
   */
  schedulerConfigFile?: string;
  /** The profile itself (tests; wins over schedulerConfigFile). */
  schedulerProfile?: SchedulerProfile;
  /** How long start-up waits for etcd to answer; default 30 s. */
  etcdWaitMs?: number;
  /** Deadline of each etcd call; default the store's (5 s). */
  etcdTimeoutMs?: number;
  bookmarkIntervalMs?: number;
  namespaceResyncMs?: number;
  /** Concurrent API watches one token may hold; default 256. */
  maxWatchesPerToken?: number;
  /** The image registry's directory (several control planes may share one); default `<stateDir>/registry`. */
  registryDir?: string;
  /** Largest blob the registry accepts, in bytes; default no limit but the disk. */
  registryMaxBlobBytes?: number;
  log?: Logger;
}

export interface ControlPlane {
  /** The bound gRPC address, `host:port`. */
  apiAddress: string;
  /** The API's Unix socket (`unix:///path`) when it serves one. */
  apiSocketAddress: string | undefined;
  /** The bound HTTP address, `host:port`. */
  httpAddress: string;
  adminTokenFile: string;
  store: Store;
  /** The API core, for in-process components (controllers, the agent service). */
  handlers: ApiHandlers;
  /** Serves skiff.v1.Api; later services (agents) are added to it with addService. */
  grpcServer: grpc.Server;
  /** The HTTP port's server; later components mount handlers with `route(prefix, handler)`. */
  http: HttpServer;
  /** The image registry served under /v2/ (its garbage collection is for an admin operation). */
  registry: ImageRegistry;
  /** Pod streams and the agents' tunnels (which nodes hold one: podStreams.tunnels.nodes()). */
  podStreams: PodStreams;
  /** Kept for later components (status ingest); undefined when started without NATS. */
  nats: NatsConnection | undefined;
  /**
   * With a cluster CA: the PEM bundle clients verify the API with, and its hash (what join tokens
   * pin). Undefined when the API is plaintext.
   */
  trust: { bundle: string; bundleHash: string } | undefined;
  /** Whether this control plane leads now (runs the controllers). */
  readonly isLeader: boolean;
  /** Drains the API and closes every connection. Idempotent. */
  stop(): Promise<void>;
}

/** `run`, one call at a time: a second caller waits for the first to finish. */
function serialized<T>(run: () => Promise<T>): () => Promise<T> {
  const queue = serializedCalls();
  return () => queue(run);
}

/** A queue that runs the functions given to it one at a time, in order. */
function serializedCalls(): <T>(run: () => Promise<T>) => Promise<T> {
  let last: Promise<unknown> = Promise.resolve();
  return (run) => {
    const next = last.then(run, run);
    last = next.catch(() => undefined);
    return next;
  };
}

/** The etcd3 client's credentials from files; errors name the file that cannot be read. */
async function etcdCredentials(tls: NonNullable<ControlPlaneOptions['etcdTls']>): Promise<{
  rootCertificate: Buffer;
  certChain?: Buffer;
  privateKey?: Buffer;
}> {
  const read = async (file: string, flag: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new InvalidArgumentError(`start control plane: read ${flag} ${file}: ${errorMessage(err)}`, flag);
    }
  };
  return {
    rootCertificate: await read(tls.caFile, '--etcd-cafile'),
    ...(tls.certFile !== undefined ? { certChain: await read(tls.certFile, '--etcd-certfile') } : {}),
    ...(tls.keyFile !== undefined ? { privateKey: await read(tls.keyFile, '--etcd-keyfile') } : {}),
  };
}

async function waitForEtcd(store: Store, endpoints: string, waitMs: number, log: Logger): Promise<void> {
  const until = Date.now() + waitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await store.health();
      return;
    } catch (err) {
      if (Date.now() >= until) {
        throw new UnavailableError(
          `start control plane: etcd at ${endpoints} did not answer within ${waitMs} ms (${errorMessage(err)}); check --etcd and that etcd is running`,
          endpoints,
          { cause: err },
        );
      }
      if (attempt === 1) log.info({ etcd: endpoints }, 'waiting for etcd');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

async function connectNats(
  url: string,
  log: Logger,
  tls: ControlPlaneOptions['natsTls'],
): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: url.split(',').map((s) => s.trim()),
      name: 'skiff-controlplane',
      ...(tls !== undefined
        ? { tls: { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile } }
        : {}),
      timeout: 5000,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
    });
  } catch (err) {
    throw new UnavailableError(
      `start control plane: cannot connect to NATS at ${url}: ${errorMessage(err)}; check --nats and that nats-server is running`,
      url,
      { cause: err },
    );
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log.warn({ nats: url }, 'nats disconnected; reconnecting');
      else if (s.type === 'reconnect') log.info({ nats: url }, 'nats reconnected');
    }
  })();
  return nc;
}

/**
 * The API server's receive windows: a stream may have 512 KiB in flight (what a call paused by flow
 * control holds at most), a connection 16 MiB (the many calls of one client, port-forward's).
 */
const GRPC_STREAM_WINDOW_BYTES = 512 * 1024;
const GRPC_CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;

function bindGrpc(
  server: grpc.Server,
  address: string,
  credentials: grpc.ServerCredentials,
): Promise<number> {
  const { host, port } = parseHostPort(address, '--api-addr');
  return new Promise((resolve, reject) =>
    server.bindAsync(formatHostPort(host, port), credentials, (err, bound) => {
      if (err) {
        reject(
          new FailedPreconditionError(`listen on --api-addr ${address}: ${err.message}`, { cause: err }),
        );
      } else resolve(bound);
    }),
  );
}

/** Binds the API to the Unix socket at `path`: no TLS (api/api-socket.ts says what protects it). */
function bindGrpcSocket(server: grpc.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) =>
    server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) {
        reject(new FailedPreconditionError(`listen on --api-socket ${path}: ${err.message}`, { cause: err }));
      } else resolve();
    }),
  );
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? componentLogger('controlplane');
  const endpoints = options.etcdEndpoints.join(',');
  const adminTokenFile = options.adminTokenFile ?? join(options.stateDir, 'admin-token');
  const undo: Array<() => Promise<void> | void> = [];
  const unwind = async (): Promise<void> => {
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'stop step failed');
      }
    }
    undo.length = 0;
  };

  try {
    // 0. the scheduler's profile: a bad one stops start-up before anything is touched
    const schedulerProfile =
      options.schedulerProfile ?? (await loadSchedulerProfile(options.schedulerConfigFile));

    // 1. etcd, gated on it answering (nothing is written anywhere before the bootstrap's checks)
    const etcdPrefix = options.etcdPrefix ?? DEFAULT_ETCD_PREFIX;
    const etcd = new EtcdStore({
      endpoints: options.etcdEndpoints,
      ...(options.etcdTls !== undefined ? { credentials: await etcdCredentials(options.etcdTls) } : {}),
      prefix: etcdPrefix,
      ...(options.etcdTimeoutMs !== undefined ? { timeoutMs: options.etcdTimeoutMs } : {}),
      logger: log.child({ component: 'store' }),
    });
    let closeStore = (): Promise<void> => etcd.close();
    undo.push(() => closeStore()); // the caches (once made), then etcd
    await waitForEtcd(etcd, endpoints, options.etcdWaitMs ?? 30_000, log);
    log.info({ etcd: endpoints, prefix: etcdPrefix }, 'etcd ready');

    // 2. the cluster's bootstrap data (with a CA: the CA and the encryption config every control
    // plane shares, through etcd sealed with the server token), then the state dir
    const encryptionConfigFile =
      options.encryptionConfigFile ?? join(options.stateDir, 'encryption-config.yaml');
    const serverTokenFile = options.serverTokenFile ?? join(options.stateDir, 'server-token');
    const bootstrap =
      options.clusterCaDir === undefined
        ? undefined
        : await bootstrapCluster({
            store: etcd,
            etcd: `${endpoints} (prefix ${etcdPrefix})`,
            serverTokenFile,
            caDir: options.clusterCaDir,
            encryptionConfigFile,
            generationFile: join(options.stateDir, 'bootstrap-generation'),
            log,
          });
    await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
    // Secrets encrypted at rest: etcd holds only ciphertext; everything above reads plain values
    const encryption = bootstrap?.encryption ?? (await ensureEncryptionConfig(encryptionConfigFile));
    const encrypted = new EncryptingStore(etcd, { resources: encryption.resources, keys: encryption.keys });
    // every later change of the keys (a rotation here or elsewhere) merges: none is ever dropped
    const encryptionKeys = new LocalEncryptionConfig(encryptionConfigFile, encryption, (config) =>
      encrypted.setKeys(config.keys),
    );
    // one etcd watch per kind, however many watch it: API watches, informers, not-older-than lists
    const store = new CachedStore(encrypted, {
      logger: log.child({ component: 'watch-cache' }),
      indexes: WATCH_CACHE_INDEXES,
    });
    closeStore = () => store.close();
    if (bootstrap !== undefined) {
      // a rotation on another control plane: its keys here too, before a Secret needs them
      const following = new AbortController();
      const followed = bootstrap.record.follow(
        encryptionKeys,
        log.child({ component: 'bootstrap' }),
        following.signal,
      );
      undo.push(async () => {
        following.abort();
        await followed;
      });
    }
    await store.prime(KINDS.map((info) => info.plural));

    // 3. NATS
    let nats: NatsConnection | undefined;
    if (options.natsUrl) {
      const nc = await connectNats(options.natsUrl, log, options.natsTls);
      nats = nc;
      undo.push(() => nc.close());
      log.info({ nats: options.natsUrl }, 'nats connected');
    }

    // 4. namespaces
    // one informer per kind for the whole process (the API's checks, the controllers, the scheduler)
    const storeInformer = <K extends KindName>(
      kind: K,
      decode: (bytes: Uint8Array, key: ObjectKey, stored: StoredValue) => KubeObjectByKind[K] = (bytes) =>
        decodeObject(kind, bytes),
    ): Informer<KubeObjectByKind[K]> => {
      const { plural } = kindInfoOf(kind);
      const informer = new Informer<KubeObjectByKind[K]>({
        source: storeSource({ store, resource: plural, decode }),
        logger: log.child({ component: 'informer', resource: plural }),
      });
      informer.start();
      undo.push(() => informer.stop());
      return informer;
    };
    const namespaceInformer = storeInformer('Namespace');
    const namespaces = new CachedNamespaceLookup(namespaceInformer, store);
    const handlers = new ApiHandlers({
      store,
      log: log.child({ component: 'api' }),
      namespaces,
      ...(options.bookmarkIntervalMs !== undefined ? { bookmarkIntervalMs: options.bookmarkIntervalMs } : {}),
      onNamespaceTerminating: (name) => namespaces.noteTerminating(name),
      ...(options.defaultTolerationSeconds !== undefined
        ? { defaultTolerationSeconds: options.defaultTolerationSeconds }
        : {}),
      ...(options.serviceCIDR !== undefined ? { serviceCIDR: options.serviceCIDR } : {}),
      ...(options.nodePortRange !== undefined ? { nodePortRange: options.nodePortRange } : {}),
      clusterDNS: options.clusterDNS ?? clusterDNSAddress(options.serviceCIDR ?? DEFAULT_SERVICE_CIDR),
    });
    await handlers.ensureSystemObjects();

    // 5. tokens
    const tokens = new StoreTokenStore(store);
    await ensureAdminToken(tokens, adminTokenFile, log);
    const auth = new Authenticator({ store: tokens, log });
    await auth.load();

    // 6. controllers, on the one control plane that leads (an etcd lease; the others serve the API
    // and stand by): every term starts them afresh and stops them when it ends
    const nodeInformer = storeInformer('Node');
    // a pod's every change is read by the API's watchers and the status writes too: one decode
    const podInformer = storeInformer(
      'Pod',
      (_bytes, _key, stored) => handlers.cachedObject('Pod', stored) as Pod,
    );
    const replicaSetInformer = storeInformer('ReplicaSet');
    const deploymentInformer = storeInformer('Deployment');
    const daemonSetInformer = storeInformer('DaemonSet');
    const jobInformer = storeInformer('Job');
    const cronJobInformer = storeInformer('CronJob');
    const serviceInformer = storeInformer('Service');
    const endpointSliceInformer = storeInformer('EndpointSlice');
    const endpointsInformer = storeInformer('Endpoints');
    // every kind whose objects own others or are owned, for the garbage collector
    const ownershipInformers = new Map<string, Informer<KubeObject>>(
      (
        [
          ['Pod', podInformer],
          ['ReplicaSet', replicaSetInformer],
          ['Deployment', deploymentInformer],
          ['DaemonSet', daemonSetInformer],
          ['Job', jobInformer],
          ['CronJob', cronJobInformer],
          ['Service', serviceInformer],
          ['EndpointSlice', endpointSliceInformer],
        ] as [string, unknown][]
      ).map(([kind, informer]) => [kind, informer as Informer<KubeObject>]),
    );
    // made here, before the first term, so the scheduler's metrics join the API's on /metrics
    const registry = new Registry();
    const schedulerMetrics = createSchedulerMetrics(registry);
    const instance = `${hostname()}_${process.pid}`;
    const leadControllers = async (signal: AbortSignal): Promise<void> => {
      // the namespace controller finishes namespace deletions (also ones a restart or another
      // leader left half-done: the informer hands it every namespace already marked)
      const namespaceController = new NamespaceController({
        handlers,
        namespaces: namespaceInformer,
        log: log.child({ component: 'namespace-controller' }),
        ...(options.namespaceResyncMs !== undefined ? { resyncMs: options.namespaceResyncMs } : {}),
      });
      // each node's pod CIDR, from the cluster CIDR
      const nodeIpam = new NodeIpamController({
        handlers,
        nodes: nodeInformer,
        ...(options.clusterCIDR !== undefined ? { clusterCIDR: options.clusterCIDR } : {}),
        ...(options.nodeCidrMaskSize !== undefined ? { nodeMaskSize: options.nodeCidrMaskSize } : {}),
        log: log.child({ component: 'node-ipam' }),
      });
      // controllers that count objects must see them all first (a ReplicaSet would create its
      // pods again)
      await Promise.all(
        [...ownershipInformers.values(), endpointsInformer].map((informer) => informer.waitForSync()),
      );
      const replicaSets = new ReplicaSetController({
        handlers,
        replicaSets: replicaSetInformer,
        pods: podInformer,
        log: log.child({ component: 'replicaset-controller' }),
      });
      const deployments = new DeploymentController({
        handlers,
        deployments: deploymentInformer,
        replicaSets: replicaSetInformer,
        pods: podInformer,
        log: log.child({ component: 'deployment-controller' }),
      });
      const jobs = new JobController({
        handlers,
        jobs: jobInformer,
        pods: podInformer,
        log: log.child({ component: 'job-controller' }),
      });
      const daemonSets = new DaemonSetController({
        handlers,
        daemonSets: daemonSetInformer,
        pods: podInformer,
        nodes: nodeInformer,
        log: log.child({ component: 'daemonset-controller' }),
      });
      const cronJobs = new CronJobController({
        handlers,
        cronJobs: cronJobInformer,
        jobs: jobInformer,
        log: log.child({ component: 'cronjob-controller' }),
      });
      const nodeLifecycle = new NodeLifecycleController({
        handlers,
        nodes: nodeInformer,
        pods: podInformer,
        ...(options.evictionRates !== undefined ? { rates: options.evictionRates } : {}),
        ...(options.defaultTolerationSeconds !== undefined
          ? { defaultTolerationSeconds: options.defaultTolerationSeconds }
          : {}),
        // a short grace is looked at as often as the status ingest checks it
        ...(options.nodeGraceMs !== undefined
          ? { monitorPeriodMs: Math.min(5000, Math.max(250, options.nodeGraceMs / 4)) }
          : {}),
        log: log.child({ component: 'node-lifecycle' }),
      });
      const endpointSlices = new EndpointSliceController({
        handlers,
        services: serviceInformer,
        pods: podInformer,
        slices: endpointSliceInformer,
        endpoints: endpointsInformer,
        log: log.child({ component: 'endpointslice-controller' }),
      });
      const podGc = new PodGarbageCollector({
        handlers,
        pods: podInformer,
        nodes: nodeInformer,
        log: log.child({ component: 'pod-gc' }),
        ...(options.terminatedPodGcThreshold !== undefined
          ? { terminatedPodThreshold: options.terminatedPodGcThreshold }
          : {}),
      });
      const garbageCollector = new GarbageCollector({
        handlers,
        informers: ownershipInformers,
        log: log.child({ component: 'garbage-collector' }),
      });
      namespaceController.start();
      nodeIpam.start();
      replicaSets.start();
      deployments.start();
      jobs.start();
      cronJobs.start();
      daemonSets.start();
      garbageCollector.start();
      podGc.start();
      // every 3 minutes, as Kubernetes' allocator repair loops: keys left without their holder go
      const repair = setInterval(() => {
        handlers
          .repairReservations()
          .catch((err) =>
            log.warn({ err: errorMessage(err) }, 'repairing reservations failed; trying again'),
          );
      }, 180_000);
      repair.unref();
      signal.addEventListener('abort', () => clearInterval(repair), { once: true });
      endpointSlices.start();
      // the scheduler, from a fresh start each term on what the informers hold now (pods: above)
      const aborted = new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      await Promise.race([
        Promise.all([nodeInformer.waitForSync(), namespaceInformer.waitForSync()]),
        aborted,
      ]);
      const scheduler = signal.aborted
        ? undefined
        : new SchedulerService({
            handlers,
            pods: podInformer,
            nodes: nodeInformer,
            namespaces: namespaceInformer,
            profile: schedulerProfile,
            metrics: schedulerMetrics,
            instance,
            log: log.child({ component: 'scheduler' }),
          });
      scheduler?.start();
      // zones are counted from every node before any is tainted
      if (!signal.aborted) nodeLifecycle.start();
      await aborted;
      await Promise.all([
        namespaceController.stop(),
        nodeIpam.stop(),
        replicaSets.stop(),
        deployments.stop(),
        jobs.stop(),
        cronJobs.stop(),
        daemonSets.stop(),
        garbageCollector.stop(),
        podGc.stop(),
        endpointSlices.stop(),
        nodeLifecycle.stop(),
        scheduler?.stop(),
      ]);
    };
    const leader = new LeaderElection({
      store,
      name: LEADER_LEASE_NAME,
      ...(options.leaderLeaseSeconds !== undefined ? { ttlSeconds: options.leaderLeaseSeconds } : {}),
      log: log.child({ component: 'leader-election' }),
      lead: leadControllers,
    });
    leader.start();
    undo.push(() => leader.stop());
    // what agents report on NATS, written to etcd
    if (nats) {
      const ingest = new StatusIngest({
        nats,
        handlers,
        // reports are ingested by whichever control plane NATS hands them to; silent nodes are
        // marked by the leader alone
        marksSilentNodes: () => leader.isLeader,
        nodes: nodeInformer,
        log: log.child({ component: 'status-ingest' }),
        // a short grace is checked often enough to keep its meaning (every 5 s otherwise)
        ...(options.nodeGraceMs !== undefined
          ? {
              nodeGraceMs: options.nodeGraceMs,
              checkMs: Math.min(5000, Math.max(250, options.nodeGraceMs / 4)),
            }
          : {}),
      });
      ingest.start();
      undo.push(() => ingest.stop());
    }

    // 7. HTTP
    const metrics = createApiMetrics(registry);
    const http = new HttpServer({
      address: options.httpAddr ?? DEFAULT_HTTP_ADDR,
      readinessChecks: [{ name: 'etcd', check: () => store.health() }],
      metrics: registry,
      log: log.child({ component: 'http' }),
    });
    // the image registry, under /v2/ on the same port, with the API's tokens
    const imageRegistry = await openRegistry({
      dir: options.registryDir ?? join(options.stateDir, 'registry'),
      authenticator: auth,
      log: log.child({ component: 'registry' }),
      metrics: registry,
      ...(options.registryMaxBlobBytes !== undefined ? { maxBlobBytes: options.registryMaxBlobBytes } : {}),
    });
    undo.push(() => imageRegistry.close());
    http.route('/v2', imageRegistry.handler);
    http.route('/v2/', imageRegistry.handler);
    const httpAddress = await http.listen();
    undo.push(() => http.close());

    // 8. gRPC API: over TLS when the cluster has a CA
    const [apiAddr, ...moreApiAddrs] = listenAddresses(options.apiAddr ?? DEFAULT_API_ADDR, '--api-addr') as [
      string,
      ...string[],
    ];
    const trust =
      options.clusterCaDir === undefined
        ? undefined
        : await loadClusterTrust({
            caDir: options.clusterCaDir,
            ...(bootstrap !== undefined ? { ca: bootstrap.ca } : {}),
            apiHost: parseHostPort(apiAddr, '--api-addr').host,
            tlsSans: [
              ...(options.tlsSans ?? []),
              ...moreApiAddrs.map((address) => parseHostPort(address, '--api-addr').host),
              ...(options.advertiseAddress !== undefined
                ? [parseHostPort(options.advertiseAddress, '--advertise-address').host]
                : []),
            ],
            ...(options.apiServingFiles !== undefined ? { servingFiles: options.apiServingFiles } : {}),
            log,
          });
    const server = new grpc.Server({
      'grpc.max_receive_message_length': 8 * 1024 * 1024,
      // channelz keeps per-call bookkeeping that nothing here reads.
      'grpc.enable_channelz': 0,
    });
    // node:http2's 64 KiB windows capped every upload to the control plane (grpc-windows.ts)
    widenStreamWindows(server, GRPC_STREAM_WINDOW_BYTES);
    // With a CA, the control planes of the cluster reach each other's tunnels: this one registers
    // the nodes whose tunnels it holds and relays sessions for the others' over mutual TLS with a
    // control-plane certificate it issues itself from the shared CA
    const controlPlaneName = `${
      hostname()
        .toLowerCase()
        .replace(/[^a-z0-9.-]/g, '-')
        .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '')
        .slice(0, 200) || 'controlplane'
    }-${randomBytes(3).toString('hex')}`;
    let peers: { registry: EtcdTunnelRegistry; relay: PeerRelay } | undefined;
    if (trust !== undefined) {
      const { ca } = trust;
      peers = {
        registry: new EtcdTunnelRegistry({
          store: etcd,
          name: controlPlaneName,
          log: log.child({ component: 'tunnel-registry' }),
        }),
        relay: new PeerRelay({
          ca: trust.bundle,
          issue: (notAfter) => {
            const identity = ca.issueKeyPair({
              commonName: `${CONTROL_PLANE_USER_PREFIX}${controlPlaneName}`,
              organizations: [CONTROL_PLANES_GROUP],
              usages: ['client auth'],
              notAfter,
            });
            return { cert: identity.certificate.toString(), key: privateKeyToPem(identity.privateKey) };
          },
          ...(options.controlPlaneCertificateTtlMs !== undefined
            ? { certificateTtlMs: options.controlPlaneCertificateTtlMs }
            : {}),
          log: log.child({ component: 'peer-relay' }),
        }),
      };
    }
    // logs, exec, attach and port-forward, relayed to the agents' tunnels
    const podStreams = createPodStreams({
      ...(peers !== undefined ? { peers } : {}),
      getPod: async (namespace, name) => (await handlers.get('Pod', namespace, name)).object as Pod,
      auth,
      metrics,
      log: log.child({ component: 'pod-streams' }),
    });
    const service = createApiService({
      handlers,
      auth,
      metrics,
      podStreamMethods: podStreams.apiMethods,
      log: log.child({ component: 'api' }),
      version: packageVersion(),
      etcdEndpoints: endpoints,
      natsUrl: options.natsAdvertiseUrl ?? options.natsUrl ?? '',
      httpUrl: `http://${httpAddress}`,
      clusterCIDR: options.clusterCIDR ?? DEFAULT_CLUSTER_CIDR,
      serviceCIDR: options.serviceCIDR ?? DEFAULT_SERVICE_CIDR,
      networkBackend: options.networkBackend ?? DEFAULT_NETWORK_BACKEND,
      clusterDNS: options.clusterDNS ?? clusterDNSAddress(options.serviceCIDR ?? DEFAULT_SERVICE_CIDR),
      clusterDomain: options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN,
      ...(options.maxWatchesPerToken !== undefined ? { maxWatchesPerToken: options.maxWatchesPerToken } : {}),
      // node certificates exist only where there is a CA to verify them
      ...(trust !== undefined ? { nodeAuthorizer: new NodeAuthorizer(new StoreNodeGraph(store)) } : {}),
    });
    server.addService(service.definition, service.implementation);
    const collectGarbageSerially = serializedCalls();
    const tokenAdmin = new TokenAdmin(tokens, auth, undefined, trust?.bundleHash);
    const admin = createAdminService({
      auth,
      log: log.child({ component: 'admin' }),
      operations: {
        rotateEncryptionKey: serialized(() =>
          rotateEncryptionKey(
            encryptionKeys,
            encrypted,
            bootstrap === undefined ? undefined : (config) => bootstrap.record.saveEncryption(config),
          ),
        ),
        // one collection at a time here; others (other control planes) are safe alongside (gc.ts)
        collectRegistryGarbage: (gc) => collectGarbageSerially(() => imageRegistry.collectGarbage(gc)),
        tokens: tokenAdmin,
      },
    });
    server.addService(admin.definition, admin.implementation);
    // Undone before anything is bound, so a failed bind unwinds the other too.
    let boundSocket: BoundSocket | undefined;
    undo.push(async () => {
      service.closeWatches();
      podStreams.close();
      await drainGrpc(server);
      if (boundSocket !== undefined) await removeApiSocket(boundSocket);
    });
    let nodesImplementation: grpc.UntypedServiceImplementation = { ...podStreams.nodes.implementation };
    if (trust !== undefined) {
      const natsUsers =
        options.natsAuthorization === undefined
          ? undefined
          : new NatsNodeUsers(
              options.natsAuthorization.file,
              options.natsAuthorization.pidFile,
              log.child({ component: 'nats-users' }),
            );
      await natsUsers?.load();
      const nodes = createNodesService({
        ...(natsUsers !== undefined ? { onIssued: (issued) => natsUsers.ensure(issued) } : {}),
        ca: trust.ca,
        bundle: trust.bundle,
        pullTokens: tokenAdmin,
        auth,
        log: log.child({ component: 'node-certificates' }),
        ...(options.nodeCertificateTtlMs !== undefined ? { ttlMs: options.nodeCertificateTtlMs } : {}),
      });
      nodesImplementation = { ...nodesImplementation, ...nodes.implementation };
    }
    // skiff.v1.Nodes is one service: the agents' tunnels (always) and, with a cluster CA, certificates
    server.addService(podStreams.nodes.definition, nodesImplementation);
    if (peers !== undefined)
      server.addService(podStreams.controlPlanes.definition, podStreams.controlPlanes.implementation);
    // the socket first: whoever waits for the TCP address finds the socket there too
    if (options.apiSocket !== undefined) {
      await prepareApiSocket(options.apiSocket, log);
      await bindGrpcSocket(server, options.apiSocket);
      boundSocket = await secureBoundSocket(options.apiSocket);
    }
    const credentials =
      trust === undefined
        ? grpc.ServerCredentials.createInsecure()
        : apiServerCredentials({ clientCa: trust.ca.certificatePem, ...trust.serving }).credentials;
    const port = await bindGrpc(server, apiAddr, credentials);
    for (const address of moreApiAddrs) await bindGrpc(server, address, credentials);
    widenConnectionWindows(server, GRPC_CONNECTION_WINDOW_BYTES);
    const apiAddress = formatHostPort(parseHostPort(apiAddr, '--api-addr').host, port);
    const apiSocketAddress = boundSocket !== undefined ? unixAddress(boundSocket.path) : undefined;
    let advertised: string | undefined;
    if (peers !== undefined) {
      const registered = peers;
      advertised = options.advertiseAddress ?? advertisedApiAddress(apiAddress);
      undo.push(async () => {
        // first at stop: the other control planes stop relaying here, then the connections go
        await registered.registry.close();
        registered.relay.close();
      });
      await registered.registry.start(advertised);
    }

    log.info(
      {
        api: apiAddress,
        http: httpAddress,
        ...(apiSocketAddress !== undefined ? { apiSocket: apiSocketAddress } : {}),
        adminTokenFile,
        tls: trust === undefined ? 'none (plaintext h2c)' : `cluster CA sha256:${trust.bundleHash}`,
        ...(advertised !== undefined ? { controlPlane: controlPlaneName, advertised } : {}),
      },
      `control plane ready api=${apiAddress} http=${httpAddress}`,
    );
    let stopping: Promise<void> | undefined;
    return {
      apiAddress,
      apiSocketAddress,
      httpAddress,
      adminTokenFile,
      store,
      handlers,
      grpcServer: server,
      http,
      registry: imageRegistry,
      podStreams,
      nats,
      trust: trust === undefined ? undefined : { bundle: trust.bundle, bundleHash: trust.bundleHash },
      get isLeader() {
        return leader.isLeader;
      },
      stop: () => (stopping ??= unwind().then(() => log.info('control plane stopped'))),
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}

/**
 * Where other control planes reach this one: the API's bound address, or with an API on every
 * interface this host's first non-loopback IPv4 address (127.0.0.1 when it has none) and its port.
 */
function advertisedApiAddress(apiAddress: string): string {
  const { host, port } = parseHostPort(apiAddress, '--api-addr');
  if (!['0.0.0.0', '::', '[::]', ''].includes(host)) return apiAddress;
  const address = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .find((each) => each.family === 'IPv4' && !each.internal)?.address;
  return formatHostPort(address ?? '127.0.0.1', port);
}

/** Refuses new calls, lets running unary calls finish (bounded), then ends what remains (watches). */
async function drainGrpc(server: grpc.Server, graceMs = 5000): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The scheduler's profile from `--scheduler-config`, or the built-in one; errors name the file. */
async function loadSchedulerProfile(file: string | undefined): Promise<SchedulerProfile> {
  if (file === undefined) return defaultProfile();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(
      `start control plane: read --scheduler-config ${file}: ${errorMessage(err)}`,
      '--scheduler-config',
    );
  }
  return parseProfile(text, file);
}
