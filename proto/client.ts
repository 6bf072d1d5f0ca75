/**
 * The typed client of the skiff API, used by the CLI, agents and controllers.
 *
 *   const api = connectApi({ server: '127.0.0.1:7440', token, tls: { ca } });
 *   const local = connectApi({ server: 'unix:///var/lib/skiff/api.sock', token });  // no TLS
 *   const node = connectApi({ server, tls: { ca, cert, key } });   // a node agent: mutual TLS
 *   const pod = await api.get('Pod', 'default', 'web-0');
 *   for await (const ev of api.watch('Pod', { namespace: 'default', resourceVersion })) …
 *   api.close();
 *
 * KubeObjects go in and come out (Kubernetes JSON shape); kinds may be given as kubectl spells them
 * ("Pod", "pods", "po"). Every failure is a proto/errors.ts class (converted in grpc-status.ts):
 * a ConflictError means re-read and retry, a GoneError from watch means re-list. Unary calls carry
 * a deadline (`timeoutMs`, default 10 s; Infinity: none); watches run until the signal aborts, the server ends
 * them, or they fail.
 */
import {
  MAX_DRY_RUN_WRITES,
  type DeleteOptions,
  type ListOptions,
  type ListResult,
  type WatchEvent,
  type WatchEventType,
  type WatchOptions,
} from './api-requests.js';
import { fromGrpcError, fromGrpcStatus, GRPC_CODE } from './grpc-status.js';
import { InternalError, InvalidArgumentError, SkiffError, UnavailableError } from './errors.js';
import { WireChannel, type WireDuplex, type WireStream } from './grpc-wire-client.js';
import { messages, services } from './gen/messages.js';
import {
  SESSION_ID_KEY,
  SESSION_SECRET_KEY,
  chunks,
  dataFrameParts,
  decodeFrame,
  encodeFrame,
  encodeLogsRequest,
  errorOfEnd,
  logsOptionsOf,
  type PodLogsOptions,
  type PodStreamFrame,
  type PodStreamOpen,
  type TerminalSize,
} from './pod-streams.js';
import type { KubeObject, KubeObjectByKind } from './gen/types.js';
import { resolveKind } from './kinds.js';
import { fromEnvelope, toEnvelope } from './objects.js';
import type { MethodType, WireMessage } from './wire/message-type.js';

export interface ConnectOptions {
  /**
   * The API address: `host:port`, or the control plane's Unix socket, `unix:///path`
   * (api-address.ts), which carries no TLS: `tls` must then be absent.
   */
  server: string;
  /**
   * A bearer token (the admin token is written to `<state-dir>/admin-token`); optional when a
   * client certificate proves who calls (a node agent's).
   */
  token?: string;
  /**
   * TLS, for a control plane with a cluster CA: `ca` (PEM) verifies the server; `cert` and `key`
   * (PEM) are a client certificate for mutual TLS. Absent: plaintext h2c.
   */
  tls?: ClientTls;
  /** Deadline of each unary call; default 10 000 ms; Infinity waits for ever. */
  timeoutMs?: number;
}

export interface ClientTls {
  ca: string;
  cert?: string;
  key?: string;
}

export type {
  DeleteOptions,
  ListOptions,
  ListResult,
  WatchEvent,
  WatchEventType,
  WatchOptions,
} from './api-requests.js';

export interface VersionInfo {
  version: string;
  etcdEndpoints: string;
  /** Where agents report (NATS URLs, comma-separated); empty without NATS. */
  natsUrl: string;
  /** The control plane's HTTP address (registry), e.g. http://127.0.0.1:7441. */
  httpUrl: string;
  /** The cluster's pod address range and Service range (agents program them). */
  clusterCIDR: string;
  serviceCIDR: string;
  /** How nodes route each other's pod CIDRs: `host-gw` or `vxlan` (empty: an older control plane). */
  networkBackend: string;
  /** The cluster DNS Service's address (pods' nameserver) and the domain it serves. */
  clusterDNS: string;
  clusterDomain: string;
}

type KindArg = keyof KubeObjectByKind | string;
type ObjectOf<K> = K extends keyof KubeObjectByKind ? KubeObjectByKind[K] : KubeObject;

/** A write that only checks: the server defaults, validates and admits, and stores nothing. */
export interface WriteOptions {
  dryRun?: boolean;
  /**
   * Resolve with the object given instead of reading the server's answer: for bulk writes that
   * need only to know each succeeded (an apply of thousands decodes thousands of answers otherwise).
   */
  discardAnswer?: boolean;
}

/** A create or an update for dryRunWrites to judge. */
export interface DryRunWrite {
  verb: 'create' | 'update';
  object: KubeObject;
}

/**
 * One write's outcome in dryRunWrites: the object as the write would store it (with discardAnswer,
 * the one given), or the error the write would fail with.
 */
export type DryRunOutcome =
  { object: KubeObject; error?: undefined } | { object?: undefined; error: SkiffError };

export interface ApiClient {
  create<T extends KubeObject>(object: T, options?: WriteOptions): Promise<T>;
  get<K extends KindArg>(kind: K, namespace: string, name: string): Promise<ObjectOf<K>>;
  list<K extends KindArg>(kind: K, options?: ListOptions): Promise<ListResult<ObjectOf<K>>>;
  /** metadata.resourceVersion, when set, is a precondition: a stale one is a ConflictError. */
  update<T extends KubeObject>(object: T, options?: WriteOptions): Promise<T>;
  /** Writes only `status`. */
  updateStatus<T extends KubeObject>(object: T): Promise<T>;
  /**
   * The dry runs of many creates and updates (skiff.v1.Api DryRunWrites, several writes a call):
   * each judged as create or update with dryRun would judge it, nothing written; one outcome per
   * write, in order. Rejects only when a call itself fails (unreachable, unauthenticated).
   */
  dryRunWrites(
    writes: readonly DryRunWrite[],
    options?: Pick<WriteOptions, 'discardAnswer'>,
  ): Promise<DryRunOutcome[]>;
  /** The deleted object, or the object with deletionTimestamp set while finalizers or a grace period keep it. */
  delete<K extends KindArg>(
    kind: K,
    namespace: string,
    name: string,
    options?: DeleteOptions,
  ): Promise<ObjectOf<K>>;
  watch<K extends KindArg>(kind: K, options?: WatchOptions): AsyncIterable<WatchEvent<ObjectOf<K>>>;
  version(): Promise<VersionInfo>;
  /** skiff.v1.Admin: a new key encrypts Secrets at rest, and every Secret is rewritten under it. */
  rotateEncryptionKey(): Promise<EncryptionKeyRotation>;
  /** skiff.v1.Admin: deletes the registry's blobs no manifest references (or, dry, lists them). */
  collectRegistryGarbage(options?: { dryRun?: boolean }): Promise<RegistryGarbageCollection>;
  /** skiff.v1.Admin: a new API token; the token itself is in this answer only. */
  createToken(request: { name?: string; role: string; ttlSeconds?: number }): Promise<{
    info: ApiTokenInfo;
    token: string;
  }>;
  listTokens(): Promise<ApiTokenInfo[]>;
  revokeToken(name: string): Promise<ApiTokenInfo>;
  /**
   * skiff.v1.Nodes: a client certificate for `nodeName` and the public key (PEM SPKI), with a join
   * token as this client's token, or over mutual TLS with the node's own certificate (renewal).
   */
  /** `nodeGroup` instead of `nodeName`: a node group's certificate (hollow nodes). */
  issueNodeCertificate(request: { nodeName: string; nodeGroup?: string; publicKey: string }): Promise<{
    certificate: string;
    caBundle: string;
    notAfter: string;
  }>;
  /** skiff.v1.Nodes: a registry pull token for the calling node (mutual TLS with its certificate). */
  issueRegistryToken(): Promise<{ token: string; expiresAt: string }>;
  /**
   * A container's log (kubectl logs): its bytes as they come, in chunks of whole lines; ends with
   * the log (with `follow`, when the container ends). An abort of `signal` ends it quietly.
   */
  logs(options: PodLogsOptions, signal?: AbortSignal): AsyncIterable<Buffer>;
  /** An exec, attach or port-forward (PodStream); the call opens at once. */
  podStream(kind: PodStreamKind, open: PodStreamOpen): PodStream;
  /** skiff.v1.Nodes, for agents: the tunnel over which the control plane asks for sessions. */
  agentTunnel(nodeName: string, version: string): AgentTunnel;
  /** skiff.v1.Nodes, for agents: the data stream answering a session (raw PodStreamFrames). */
  sessionStream(id: string, secret: string): WireDuplex;
  close(): void;
}

export type PodStreamKind = 'Exec' | 'Attach' | 'PortForward';

/**
 * A pod stream's client side: input goes with send*, output comes as frames (stdout, stderr, and
 * last `end` with an exec's exit code). The iteration throws the SkiffError the stream failed
 * with (the pod's node has no agent: UnavailableError naming it; a view token: PermissionDenied).
 */
export interface PodStream extends AsyncIterable<PodStreamFrame> {
  /** Bytes for the process (or the connection), in frames of at most 64 KiB; false once it ended. */
  sendStdin(data: Buffer): Promise<boolean>;
  /** No more input (port-forward: the connection's write side ends). */
  closeStdin(): Promise<boolean>;
  resize(size: TerminalSize): Promise<boolean>;
  /** Ends the stream from this side (the server stops the process or the connection). */
  cancel(): void;
}

/** A session the control plane asks an agent for (api.proto SessionRequest). */
export interface AgentSessionRequest {
  id: string;
  secret: string;
  kind: 'logs' | 'exec' | 'attach' | 'port-forward';
  namespace: string;
  pod: string;
  podUid: string;
  container: string;
  logs?: PodLogsOptions;
  stream?: PodStreamOpen;
}

/** What comes down an agent's tunnel: a session to open, or one whose user went away. */
export type AgentTunnelEvent = { open: AgentSessionRequest } | { cancel: string };

/** An agent's tunnel: `ready` once the control plane took it; then what it asks. */
export interface AgentTunnel extends AsyncIterable<AgentTunnelEvent> {
  readonly ready: Promise<void>;
  close(): void;
}

export interface RegistryGarbageCollection {
  dryRun: boolean;
  /** Manifests found (each digest once). */
  manifests: number;
  /** Blobs and manifests kept because something references them. */
  referenced: number;
  /** Blobs deleted (or, on a dry run, that would be). */
  deleted: Array<{ digest: string; size: number }>;
  deletedBytes: number;
  /** Unreferenced blobs kept because a push may still name them (younger than the grace period). */
  young: number;
  /** Repository links to deleted blobs removed. */
  unlinked: number;
  graceSeconds: number;
}

/** An API token as the control plane knows it (never the token). */
export interface ApiTokenInfo {
  name: string;
  role: string;
  createdAt: string;
  /** Empty: never expires. */
  expiresAt: string;
}

const tokenInfoOf = (message: WireMessage | undefined): ApiTokenInfo => ({
  name: String(message?.name ?? ''),
  role: String(message?.role ?? ''),
  createdAt: String(message?.createdAt ?? ''),
  expiresAt: String(message?.expiresAt ?? ''),
});

export interface EncryptionKeyRotation {
  keyName: string;
  rewritten: number;
  alreadyCurrent: number;
  resources: string[];
}

/**
 * Encoded writes in one DryRunWrites call at most, besides MAX_DRY_RUN_WRITES: half of what the
 * control plane receives in a message (8 MiB, controlplane/main.ts). One larger write goes alone.
 */
const DRY_RUN_BATCH_BYTES = 4 * 1024 * 1024;
/**
 * Writes in one DryRunWrites call: small enough that several calls are in flight at once, the
 * client encoding the next while the server judges one, and one call's deadline is never near.
 */
const DRY_RUN_BATCH_WRITES = Math.min(250, MAX_DRY_RUN_WRITES);
const DRY_RUN_CALLS_IN_FLIGHT = 4;

/** One write of a DryRunWritesRequest as wire bytes (encodeDryRunWrite), and where it came from. */
interface EncodedWrite {
  write: DryRunWrite;
  index: number;
  bytes: Uint8Array;
}

/**
 * The wire bytes of DryRunWritesRequest.writes[i] for `write`: its envelope under create or update.
 * Encoded as each write is taken, so a batch's size is known before it is sent; the request then
 * carries these bytes as they are (a message field may be given as its encoding).
 */
function encodeDryRunWrite(write: DryRunWrite): Uint8Array {
  return messages.DryRunWrite.encode({ [write.verb]: toEnvelope(write.object) });
}

/**
 * The CA bundle (PEM) a control plane shows, fetched over TLS that verifies nothing: for a joining
 * agent, which trusts it only when it hashes to its join token's pin (trustBundleHash). Never use
 * its answer without that check.
 */
export async function fetchUnverifiedTrustBundle(server: string, timeoutMs = 10_000): Promise<string> {
  const channel = new WireChannel(server, {
    maxReceiveBytes: 1024 * 1024,
    keepaliveMs: 30_000,
    keepaliveTimeoutMs: 10_000,
    tls: { unverified: true },
  });
  const method = services.Nodes.methods['GetTrustBundle']!;
  try {
    const response = await channel.unary(method.path, method.request.encode({}), {
      metadata: {},
      timeoutMs,
    });
    return String(method.response.decode(response).caBundle ?? '');
  } catch (err) {
    throw fromGrpcError(err, server, { timeoutMs });
  } finally {
    channel.close();
  }
}

/** Connects lazily: the first call dials the server, so this never blocks or fails on I/O. */
export function connectApi(options: ConnectOptions): ApiClient {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const { tls } = options;
  if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new InvalidArgumentError(
      'connect to the API: tls.cert and tls.key go together (a client certificate and its key)',
      tls.cert === undefined ? 'tls.cert' : 'tls.key',
    );
  }
  const channel = new WireChannel(options.server, {
    maxReceiveBytes: 64 * 1024 * 1024,
    // Watches are long-lived and mostly idle: keepalives notice a dead server or path.
    keepaliveMs: 30_000,
    keepaliveTimeoutMs: 10_000,
    ...(tls !== undefined ? { tls } : {}),
  });
  const metadata: Record<string, string> =
    options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {};
  // What a failed call's error is told in terms of (proto/grpc-status.ts).
  const callContext = { timeoutMs, tokenBytes: Buffer.byteLength(options.token ?? '') };

  const call = async (
    method: MethodType,
    request: WireMessage,
    deadlineMs: number,
    decode = true,
  ): Promise<WireMessage> => {
    try {
      const response = await channel.unary(method.path, method.request.encode(request), {
        metadata,
        timeoutMs: deadlineMs,
      });
      return decode ? method.response.decode(response) : {};
    } catch (err) {
      throw fromGrpcError(err, options.server, { ...callContext, timeoutMs: deadlineMs });
    }
  };
  const unary = (method: string, request: WireMessage, decode = true): Promise<WireMessage> =>
    call(services.Api.methods[method]!, request, timeoutMs, decode);
  /** Create or Update: the stored object, or (discardAnswer) the one given. */
  const write = async <T>(method: 'Create' | 'Update', object: T, options: WriteOptions): Promise<T> => {
    const request = { object: toEnvelope(object as KubeObject), dryRun: options.dryRun === true };
    if (options.discardAnswer === true) {
      await unary(method, request, false);
      return object;
    }
    return objectOf(await unary(method, request));
  };

  const objectOf = <T>(envelope: WireMessage): T => fromEnvelope(envelope) as T;

  /** One DryRunWrites call: the outcomes of `batch`, in its order. */
  const dryRunBatch = async (
    batch: readonly EncodedWrite[],
    discardAnswer: boolean,
  ): Promise<DryRunOutcome[]> => {
    const response = await unary('DryRunWrites', {
      writes: batch.map((each) => each.bytes),
      omitObjects: discardAnswer,
    });
    const results = (response.results as WireMessage[] | undefined) ?? [];
    if (results.length !== batch.length) {
      throw new InternalError(
        `dry-run writes on ${options.server}: ${results.length} results for ${batch.length} writes`,
      );
    }
    return batch.map(({ write }, i): DryRunOutcome => {
      const result = results[i]!;
      const status = result.error as
        | {
            code?: number;
            message?: string;
            details?: Record<string, string>;
          }
        | undefined;
      if (status) {
        const error = fromGrpcStatus(
          { code: status.code ?? 0, message: status.message ?? '', details: status.details ?? {} },
          options.server,
        );
        return { error };
      }
      if (discardAnswer) return { object: write.object };
      if (!result.object) {
        throw new InternalError(`dry-run writes on ${options.server}: a result has neither object nor error`);
      }
      return { object: objectOf(result.object as WireMessage) };
    });
  };

  /** A skiff.v1.Admin call, on the same connection as the object API. */
  const adminUnary = (method: string, request: WireMessage, deadlineMs: number): Promise<WireMessage> =>
    call(services.Admin.methods[method]!, request, deadlineMs);

  return {
    async create(object, writeOptions = {}) {
      return write('Create', object, writeOptions);
    },
    async get(kind, namespace, name) {
      return objectOf(await unary('Get', { kind: resolveKind(kind).kind, namespace, name }));
    },
    async list(kind, listOptions = {}) {
      const response = await unary('List', {
        kind: resolveKind(kind).kind,
        namespace: listOptions.namespace ?? '',
        labelSelector: listOptions.labelSelector ?? '',
        fieldSelector: listOptions.fieldSelector ?? '',
        limit: listOptions.limit ?? 0,
        continue: listOptions.continue ?? '',
        resourceVersion: listOptions.resourceVersion ?? '',
      });
      const items = ((response.items as WireMessage[] | undefined) ?? []).map((item) =>
        objectOf<never>(item),
      );
      const next = response.continue as string | undefined;
      return {
        items,
        resourceVersion: String(response.resourceVersion ?? ''),
        ...(next ? { continue: next } : {}),
      };
    },
    async update(object, writeOptions = {}) {
      return write('Update', object, writeOptions);
    },
    async updateStatus(object) {
      return objectOf(await unary('UpdateStatus', { object: toEnvelope(object) }));
    },
    async dryRunWrites(writes, writeOptions = {}) {
      const discardAnswer = writeOptions.discardAnswer === true;
      const outcomes: DryRunOutcome[] = new Array(writes.length);
      let next = 0;
      let carried: EncodedWrite | undefined;
      /** The next write encoded; one that cannot be (as create or update would refuse it unsent) is its outcome. */
      const take = (): EncodedWrite | undefined => {
        if (carried !== undefined) {
          const item = carried;
          carried = undefined;
          return item;
        }
        while (next < writes.length) {
          const index = next++;
          const write = writes[index]!;
          try {
            return { write, index, bytes: encodeDryRunWrite(write) };
          } catch (err) {
            if (!(err instanceof SkiffError)) throw err;
            outcomes[index] = { error: err };
          }
        }
        return undefined;
      };
      /** The writes of the next call, encoded as they are taken, so the first call goes out at once. */
      const nextBatch = (): EncodedWrite[] => {
        const batch: EncodedWrite[] = [];
        let bytes = 0;
        for (let item = take(); item !== undefined; item = take()) {
          if (batch.length > 0 && bytes + item.bytes.length > DRY_RUN_BATCH_BYTES) {
            carried = item;
            break;
          }
          batch.push(item);
          bytes += item.bytes.length;
          if (batch.length >= DRY_RUN_BATCH_WRITES) break;
        }
        return batch;
      };
      await Promise.all(
        Array.from({ length: DRY_RUN_CALLS_IN_FLIGHT }, async () => {
          for (let batch = nextBatch(); batch.length > 0; batch = nextBatch()) {
            const answered = await dryRunBatch(batch, discardAnswer);
            batch.forEach((each, i) => (outcomes[each.index] = answered[i]!));
          }
        }),
      );
      return outcomes;
    },
    async delete(kind, namespace, name, deleteOptions = {}) {
      const request: WireMessage = { kind: resolveKind(kind).kind, namespace, name };
      if (deleteOptions.gracePeriodSeconds !== undefined) {
        request.gracePeriodSeconds = deleteOptions.gracePeriodSeconds;
      }
      if (deleteOptions.preconditions) request.preconditions = { ...deleteOptions.preconditions };
      if (deleteOptions.dryRun) request.dryRun = true;
      if (deleteOptions.propagationPolicy) request.propagationPolicy = deleteOptions.propagationPolicy;
      return objectOf(await unary('Delete', request));
    },
    watch(kind, watchOptions = {}) {
      const request: WireMessage = {
        kind: resolveKind(kind).kind,
        namespace: watchOptions.namespace ?? '',
        labelSelector: watchOptions.labelSelector ?? '',
        fieldSelector: watchOptions.fieldSelector ?? '',
        resourceVersion: watchOptions.resourceVersion ?? '',
        allowBookmarks: watchOptions.allowBookmarks ?? false,
      };
      const method = services.Api.methods['Watch']!;
      return watchStream(
        () => channel.serverStream(method.path, method.request.encode(request), { metadata }),
        method,
        options.server,
        watchOptions.signal,
        callContext.tokenBytes,
      );
    },
    async version() {
      const response = await unary('Version', {});
      return {
        version: String(response.version ?? ''),
        etcdEndpoints: String(response.etcdEndpoints ?? ''),
        natsUrl: String(response.natsUrl ?? ''),
        httpUrl: String(response.httpUrl ?? ''),
        clusterCIDR: String(response.clusterCidr ?? ''),
        serviceCIDR: String(response.serviceCidr ?? ''),
        networkBackend: String(response.networkBackend ?? ''),
        clusterDNS: String(response.clusterDns ?? ''),
        clusterDomain: String(response.clusterDomain ?? ''),
      };
    },
    async rotateEncryptionKey() {
      // Rewriting every Secret takes longer than one object call.
      const response = await adminUnary('RotateEncryptionKey', {}, 10 * timeoutMs);
      return {
        keyName: String(response.keyName ?? ''),
        rewritten: Number(response.rewritten ?? 0),
        alreadyCurrent: Number(response.alreadyCurrent ?? 0),
        resources: (response.resources as string[] | undefined) ?? [],
      };
    },
    async createToken(request) {
      const response = await adminUnary(
        'CreateToken',
        { name: request.name ?? '', role: request.role, ttlSeconds: request.ttlSeconds ?? 0 },
        timeoutMs,
      );
      return {
        info: tokenInfoOf(response.info as WireMessage | undefined),
        token: String(response.token ?? ''),
      };
    },
    async listTokens() {
      const response = await adminUnary('ListTokens', {}, timeoutMs);
      return ((response.tokens as WireMessage[] | undefined) ?? []).map(tokenInfoOf);
    },
    async revokeToken(name) {
      const response = await adminUnary('RevokeToken', { name }, timeoutMs);
      return tokenInfoOf(response.revoked as WireMessage | undefined);
    },
    async issueNodeCertificate(request) {
      const response = await call(
        services.Nodes.methods['IssueNodeCertificate']!,
        { nodeName: request.nodeName, publicKey: request.publicKey, nodeGroup: request.nodeGroup ?? '' },
        timeoutMs,
      );
      return {
        certificate: String(response.certificate ?? ''),
        caBundle: String(response.caBundle ?? ''),
        notAfter: String(response.notAfter ?? ''),
      };
    },
    async issueRegistryToken() {
      const response = await call(services.Nodes.methods['IssueRegistryToken']!, {}, timeoutMs);
      return { token: String(response.token ?? ''), expiresAt: String(response.expiresAt ?? '') };
    },
    async collectRegistryGarbage(gcOptions = {}) {
      // Reading every manifest and listing every blob of a large registry takes a while.
      const response = await adminUnary(
        'CollectRegistryGarbage',
        { dryRun: gcOptions.dryRun === true },
        Math.max(10 * timeoutMs, 5 * 60_000),
      );
      return {
        dryRun: response.dryRun === true,
        manifests: Number(response.manifests ?? 0),
        referenced: Number(response.referenced ?? 0),
        deleted: ((response.deleted as WireMessage[] | undefined) ?? []).map((b) => ({
          digest: String(b.digest ?? ''),
          size: Number(b.size ?? 0),
        })),
        deletedBytes: Number(response.deletedBytes ?? 0),
        young: Number(response.young ?? 0),
        unlinked: Number(response.unlinked ?? 0),
        graceSeconds: Number(response.graceSeconds ?? 0),
      };
    },
    logs(logsOptions, signal) {
      const method = services.Api.methods['Logs']!;
      return logStream(
        () => channel.serverStream(method.path, encodeLogsRequest(logsOptions), { metadata }),
        options.server,
        signal,
        callContext.tokenBytes,
      );
    },
    podStream(kind, open) {
      const call = channel.duplex(services.Api.methods[kind]!.path, { metadata });
      const send = (frame: PodStreamFrame): Promise<boolean> => call.send(encodeFrame(frame));
      void send({ open });
      return {
        async sendStdin(data) {
          for (const chunk of chunks(data))
            if (!(await call.sendParts(dataFrameParts('stdin', chunk)))) return false;
          return true;
        },
        closeStdin: () => send({ stdinClose: true }),
        resize: (size) => send({ resize: size }),
        cancel: () => call.cancel(),
        async *[Symbol.asyncIterator]() {
          try {
            for await (const bytes of call) {
              const frame = decodeFrame(bytes);
              const failed = frame.end ? errorOfEnd(frame.end) : undefined;
              if (failed) throw failed;
              yield frame;
            }
          } catch (err) {
            throw fromGrpcError(err, options.server, { tokenBytes: callContext.tokenBytes });
          } finally {
            call.cancel();
          }
        },
      };
    },
    agentTunnel(nodeName, version) {
      const method = services.Nodes.methods['AgentTunnel']!;
      const call = channel.duplex(method.path, { metadata });
      void call.send(method.request.encode({ hello: { nodeName, version } }));
      let ready!: () => void;
      let refused!: (err: unknown) => void;
      const readyPromise = new Promise<void>((resolve, reject) => {
        ready = resolve;
        refused = reject;
      });
      readyPromise.catch(() => {});
      // read at once, whoever iterates: `ready` must not wait for a consumer
      const requests: AgentTunnelEvent[] = [];
      let failure: SkiffError | undefined;
      let wake: (() => void) | undefined;
      void (async () => {
        try {
          for await (const bytes of call) {
            const message = method.response.decode(bytes);
            if (message.ready) ready();
            const open = message.open as WireMessage | undefined;
            if (open) requests.push({ open: sessionRequestOf(open) });
            if (typeof message.cancel === 'string' && message.cancel)
              requests.push({ cancel: message.cancel });
            wake?.();
          }
          throw new UnavailableError(
            `agent tunnel: the control plane at ${options.server} ended it`,
            options.server,
          );
        } catch (err) {
          failure = fromGrpcError(err, options.server, { tokenBytes: callContext.tokenBytes });
          refused(failure);
          wake?.();
        }
      })();
      return {
        ready: readyPromise,
        close: () => call.cancel(),
        async *[Symbol.asyncIterator]() {
          try {
            for (;;) {
              const request = requests.shift();
              if (request !== undefined) {
                yield request;
                continue;
              }
              if (failure !== undefined) throw failure;
              await new Promise<void>((resolve) => (wake = resolve));
            }
          } finally {
            call.cancel();
          }
        },
      };
    },
    sessionStream(id, secret) {
      return channel.duplex(services.Nodes.methods['SessionStream']!.path, {
        metadata: { ...metadata, [SESSION_ID_KEY]: id, [SESSION_SECRET_KEY]: secret },
      });
    },
    close() {
      channel.close();
    },
  };
}

/** A SessionRequest as decoded (absent fields undefined). */
function sessionRequestOf(message: WireMessage): AgentSessionRequest {
  const str = (value: unknown): string => (typeof value === 'string' ? value : '');
  const request: AgentSessionRequest = {
    id: str(message.id),
    secret: str(message.secret),
    kind: str(message.kind) as AgentSessionRequest['kind'],
    namespace: str(message.namespace),
    pod: str(message.pod),
    podUid: str(message.podUid),
    container: str(message.container),
  };
  if (message.logs) request.logs = logsOptionsOf(message.logs as WireMessage);
  const stream = message.stream as WireMessage | undefined;
  if (stream) {
    const size = stream.terminalSize as { rows?: number; cols?: number } | undefined;
    request.stream = {
      namespace: str(stream.namespace),
      name: str(stream.name),
      container: str(stream.container),
      command: (stream.command as string[] | undefined) ?? [],
      stdin: stream.stdin === true,
      tty: stream.tty === true,
      ...(size ? { terminalSize: { rows: size.rows ?? 0, cols: size.cols ?? 0 } } : {}),
      port: Number(stream.port ?? 0),
    };
  }
  return request;
}

async function* logStream(
  open: () => WireStream,
  server: string,
  signal: AbortSignal | undefined,
  tokenBytes: number,
): AsyncGenerator<Buffer> {
  if (signal?.aborted) return;
  const stream = open();
  const onAbort = (): void => stream.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const bytes of stream) {
      const frame = decodeFrame(bytes);
      const failed = frame.end ? errorOfEnd(frame.end) : undefined;
      if (failed) throw failed;
      if (frame.stdout?.length) yield frame.stdout;
    }
  } catch (err) {
    if (signal?.aborted && (err as { code?: number }).code === GRPC_CODE.CANCELLED) return;
    throw fromGrpcError(err, server, { tokenBytes });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stream.cancel();
  }
}

async function* watchStream<T extends KubeObject>(
  open: () => WireStream,
  method: MethodType,
  server: string,
  signal: AbortSignal | undefined,
  tokenBytes: number,
): AsyncGenerator<WatchEvent<T>> {
  if (signal?.aborted) return;
  const stream = open();
  const onAbort = (): void => stream.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const bytes of stream) {
      const message = method.response.decode(bytes);
      const event: WatchEvent<T> = {
        type: message.type as WatchEventType,
        resourceVersion: String(message.resourceVersion ?? ''),
      };
      if (message.object) event.object = fromEnvelope(message.object as WireMessage) as T;
      yield event;
    }
  } catch (err) {
    if (signal?.aborted && (err as { code?: number }).code === GRPC_CODE.CANCELLED) return;
    throw fromGrpcError(err, server, { tokenBytes });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // Ends the server-side watch when the consumer stops early (break or throw).
    stream.cancel();
  }
}
