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
import type {
  DeleteOptions,
  ListOptions,
  ListResult,
  WatchEvent,
  WatchEventType,
  WatchOptions,
} from './api-requests.js';
import { fromGrpcError, GRPC_CODE } from './grpc-status.js';
import { WireChannel, type WireStream } from './grpc-wire-client.js';
import { services } from './gen/messages.js';
import type { KubeObject, KubeObjectByKind } from './gen/types.js';
import { resolveKind } from './kinds.js';
import { fromEnvelope, toEnvelope } from './objects.js';
import type { MethodType, WireMessage } from './wire/message-type.js';

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
  /**
   * Resolve with the object given instead of reading the server's answer: for bulk writes that
   * need only to know each succeeded (an apply of thousands decodes thousands of answers otherwise).
   */
  discardAnswer?: boolean;
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
  /** skiff.v1.Admin: a new API token; the token itself is in this answer only. */
  createToken(request: { name?: string; role: string; ttlSeconds?: number }): Promise<{
    info: ApiTokenInfo;
    token: string;
  }>;
  listTokens(): Promise<ApiTokenInfo[]>;
  revokeToken(name: string): Promise<ApiTokenInfo>;
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

/** Connects lazily: the first call dials the server, so this never blocks or fails on I/O. */
export function connectApi(options: ConnectOptions): ApiClient {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const channel = new WireChannel(options.server, {
    maxReceiveBytes: 64 * 1024 * 1024,
    // Watches are long-lived and mostly idle: keepalives notice a dead server or path.
    keepaliveMs: 30_000,
    keepaliveTimeoutMs: 10_000,
  });
  const metadata = { authorization: `Bearer ${options.token}` };
  // What a failed call's error is told in terms of (proto/grpc-status.ts).
  const callContext = { timeoutMs, tokenBytes: Buffer.byteLength(options.token) };

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
    async delete(kind, namespace, name, deleteOptions = {}) {
      const request: WireMessage = { kind: resolveKind(kind).kind, namespace, name };
      if (deleteOptions.gracePeriodSeconds !== undefined) {
        request.gracePeriodSeconds = deleteOptions.gracePeriodSeconds;
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
      channel.close();
    },
  };
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
