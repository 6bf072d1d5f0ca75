/**
 * The typed client of the skiff API, used by the CLI, agents and controllers.
 *
 *   const api = connectApi({ server: '127.0.0.1:7440', token });
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
import * as grpc from '@grpc/grpc-js';
import type {
  DeleteOptions,
  ListOptions,
  ListResult,
  WatchEvent,
  WatchEventType,
  WatchOptions,
} from './api-requests.js';
import { fromGrpcError } from './grpc-status.js';
import { grpcServiceDefinition, type WireMessage } from './grpc-service.js';
import type { KubeObject, KubeObjectByKind } from './gen/types.js';
import { resolveKind } from './kinds.js';
import { fromEnvelope, toEnvelope } from './objects.js';
import { schemaRoot } from './schema.js';

export interface ConnectOptions {
  /** The API address, `host:port`. */
  server: string;
  /** A bearer token (the admin token is written to `<state-dir>/admin-token`). */
  token: string;
  /** Deadline of each unary call; default 10 000 ms; Infinity waits for ever. */
  timeoutMs?: number;
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
}

type KindArg = keyof KubeObjectByKind | string;
type ObjectOf<K> = K extends keyof KubeObjectByKind ? KubeObjectByKind[K] : KubeObject;

/** A write that only checks: the server defaults, validates and admits, and stores nothing. */
export interface WriteOptions {
  dryRun?: boolean;
}

export interface ApiClient {
  create<T extends KubeObject>(object: T, options?: WriteOptions): Promise<T>;
  get<K extends KindArg>(kind: K, namespace: string, name: string): Promise<ObjectOf<K>>;
  list<K extends KindArg>(kind: K, options?: ListOptions): Promise<ListResult<ObjectOf<K>>>;
  /** metadata.resourceVersion, when set, is a precondition: a stale one is a ConflictError. */
  update<T extends KubeObject>(object: T, options?: WriteOptions): Promise<T>;
  /** Writes only `status`. */
  updateStatus<T extends KubeObject>(object: T): Promise<T>;
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

export interface EncryptionKeyRotation {
  keyName: string;
  rewritten: number;
  alreadyCurrent: number;
  resources: string[];
}

type UnaryMethod = (
  request: WireMessage,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: WireMessage) => void,
) => grpc.ClientUnaryCall;
type StreamMethod = (
  request: WireMessage,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
) => grpc.ClientReadableStream<WireMessage>;

let apiClientConstructor: grpc.ServiceClientConstructor | undefined;
let adminClientConstructor: grpc.ServiceClientConstructor | undefined;

/** The grpc-js client class of skiff.v1.Api (built once from the schema). */
function apiClientClass(): grpc.ServiceClientConstructor {
  apiClientConstructor ??= grpc.makeGenericClientConstructor(
    // Responses stay decoded messages: fromEnvelope reads one in a single walk, and the few
    // scalar fields read here (strings) are the same on a message.
    // Object requests carry toEnvelope's output, which is already in the encoder's types.
    grpcServiceDefinition(schemaRoot().lookupService('skiff.v1.Api'), {
      messageResponses: true,
      encoderReadyRequests: ['Create', 'Update', 'UpdateStatus'],
    }),
    'Api',
  );
  return apiClientConstructor;
}

/** Connects lazily: the first call dials the server, so this never blocks or fails on I/O. */
export function connectApi(options: ConnectOptions): ApiClient {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const Client = apiClientClass();
  const client = new Client(options.server, grpc.credentials.createInsecure(), {
    // Watches are long-lived and mostly idle: keepalives notice a dead server or path.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    // channelz keeps per-call bookkeeping that nothing here reads.
    'grpc.enable_channelz': 0,
  }) as unknown as grpc.Client & Record<string, UnaryMethod & StreamMethod>;

  // One instance for every call: grpc-js copies a call's metadata before it adds its own headers
  // (ResolvingCall.start), so sharing it is safe and saves building and validating it per call.
  const authMetadata = new grpc.Metadata();
  authMetadata.set('authorization', `Bearer ${options.token}`);
  // What a failed call's error is told in terms of (proto/grpc-status.ts).
  const callContext = { timeoutMs, tokenBytes: Buffer.byteLength(options.token) };

  const unary = (method: string, request: WireMessage): Promise<WireMessage> =>
    new Promise((resolve, reject) => {
      client[method]!(request, authMetadata, { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err) reject(fromGrpcError(err, options.server, callContext));
        else resolve(response ?? {});
      });
    });

  const objectOf = <T>(envelope: WireMessage): T => fromEnvelope(envelope) as T;

  let admin: Record<string, UnaryMethod> | undefined;
  /** A skiff.v1.Admin call, on the same channel as the object API: one connection to the control plane. */
  const adminUnary = (method: string, request: WireMessage, deadlineMs: number): Promise<WireMessage> => {
    adminClientConstructor ??= grpc.makeGenericClientConstructor(
      grpcServiceDefinition(schemaRoot().lookupService('skiff.v1.Admin')),
      'Admin',
    );
    admin ??= new adminClientConstructor(options.server, grpc.credentials.createInsecure(), {
      channelOverride: client.getChannel(),
    }) as unknown as Record<string, UnaryMethod>;
    return new Promise((resolve, reject) => {
      admin![method]!(request, authMetadata, { deadline: Date.now() + deadlineMs }, (err, answer) => {
        if (err) reject(fromGrpcError(err, options.server, { ...callContext, timeoutMs: deadlineMs }));
        else resolve(answer ?? {});
      });
    });
  };

  return {
    async create(object, writeOptions = {}) {
      return objectOf(
        await unary('Create', { object: toEnvelope(object), dryRun: writeOptions.dryRun === true }),
      );
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
        limit: String(listOptions.limit ?? 0),
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
      return objectOf(
        await unary('Update', { object: toEnvelope(object), dryRun: writeOptions.dryRun === true }),
      );
    },
    async updateStatus(object) {
      return objectOf(await unary('UpdateStatus', { object: toEnvelope(object) }));
    },
    async delete(kind, namespace, name, deleteOptions = {}) {
      const request: WireMessage = { kind: resolveKind(kind).kind, namespace, name };
      if (deleteOptions.gracePeriodSeconds !== undefined) {
        request.gracePeriodSeconds = String(deleteOptions.gracePeriodSeconds);
      }
      if (deleteOptions.preconditions) request.preconditions = { ...deleteOptions.preconditions };
      if (deleteOptions.dryRun) request.dryRun = true;
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
      return watchStream(
        () => client.Watch!(request, authMetadata, {}),
        options.server,
        watchOptions.signal,
        callContext.tokenBytes,
      );
    },
    async version() {
      const response = await unary('Version', {});
      return { version: String(response.version ?? ''), etcdEndpoints: String(response.etcdEndpoints ?? '') };
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
    close() {
      client.close();
    },
  };
}

async function* watchStream<T extends KubeObject>(
  open: () => grpc.ClientReadableStream<WireMessage>,
  server: string,
  signal: AbortSignal | undefined,
  tokenBytes: number,
): AsyncGenerator<WatchEvent<T>> {
  if (signal?.aborted) return;
  const call = open();
  const onAbort = (): void => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call as AsyncIterable<WireMessage>) {
      const event: WatchEvent<T> = {
        type: message.type as WatchEventType,
        resourceVersion: String(message.resourceVersion ?? ''),
      };
      if (message.object) event.object = fromEnvelope(message.object as WireMessage) as T;
      yield event;
    }
  } catch (err) {
    if (signal?.aborted && (err as grpc.ServiceError).code === grpc.status.CANCELLED) return;
    throw fromGrpcError(err, server, { tokenBytes });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // Ends the server-side watch when the consumer stops early (break or throw).
    call.cancel();
  }
}
