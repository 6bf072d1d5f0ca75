/**
 * The gRPC binding of ApiHandlers: skiff.v1.Api served by grpc-js. Per call it authenticates the
 * bearer token, authorises the verb for the token's role, converts envelopes to KubeObjects and
 * back, records latency, and converts errors in the one place (proto/grpc-status.ts); faults
 * outside the error vocabulary are logged here and reach the client as a generic INTERNAL.
 * DryRunWrites does the same for each write it carries (authorised for its own verb, its error
 * made into a Status in the answer), so each is judged as its own dry-run call would be.
 *
 * Unary calls honour the client's deadline on the server too: a call whose store work has not
 * finished shortly before the deadline fails with UNAVAILABLE naming the etcd endpoints, so the
 * client learns why instead of only seeing DEADLINE_EXCEEDED.
 */
import * as grpc from '@grpc/grpc-js';
import {
  InternalError,
  InvalidArgumentError,
  PermissionDeniedError,
  ResourceExhaustedError,
  SkiffError,
  UnauthenticatedError,
  UnavailableError,
  errorMessage,
} from '../../proto/errors.js';
import { MAX_DRY_RUN_WRITES, type PropagationPolicy } from '../../proto/api-requests.js';
import type { KubeObject } from '../../proto/gen/types.js';
import { toServiceError } from './grpc-errors.js';
import { messages, services } from '../../proto/gen/messages.js';
import { toGrpcStatus, type GrpcStatus } from '../../proto/grpc-status.js';
import { grpcServiceDefinition } from '../../proto/grpc-service.js';
import type { Logger } from '../../proto/support/logger.js';
import { KINDS, lookupKind } from '../../proto/kinds.js';
import { fromEnvelope } from '../../proto/objects.js';
import type { WireMessage } from '../../proto/wire/message-type.js';
import { authorize, type Authenticator, type Principal, type Verb } from './auth.js';
import type { NodeAuthorizer, NodeRequest } from './node-authorizer.js';
import type { ApiObject } from './api-object.js';
import type { ApiHandlers, WatchEvent, WriteInputOptions } from './handlers.js';
import type { ApiMetrics } from './metrics.js';
import { POD_STREAM_RAW } from '../../proto/pod-streams.js';

export interface ApiServiceOptions {
  handlers: ApiHandlers;
  auth: Authenticator;
  metrics: ApiMetrics;
  log: Logger;
  version: string;
  /** etcd endpoints, comma-separated: reported by Version and named when etcd does not answer. */
  etcdEndpoints: string;
  /** NATS URL(s) agents report to, as Version tells them; empty: none. */
  natsUrl?: string;
  /** The HTTP address (registry), as Version tells agents. */
  httpUrl?: string;
  clusterCIDR?: string;
  serviceCIDR?: string;
  /** How nodes route each other's pod CIDRs (`host-gw`, `vxlan`), as Version tells agents. */
  networkBackend?: string;
  /** The cluster DNS Service's address and the domain it serves, as Version tells agents. */
  clusterDNS?: string;
  clusterDomain?: string;
  /**
   * Concurrent watches one token may hold; default 256. Each holds an etcd watch stream and a
   * backlog, so one client must not open them without limit.
   */
  maxWatchesPerToken?: number;
  /** Decides the calls of node certificates; without it they are refused (a plaintext API has none). */
  nodeAuthorizer?: NodeAuthorizer;
  /**
   * Logs, Exec, Attach and PortForward (controlplane/streams/pod-streams.ts); without them those
   * calls are UNIMPLEMENTED.
   */
  podStreamMethods?: grpc.UntypedServiceImplementation;
}

/**
 * How much of a watch may wait in grpc-js for the stream before the watch stops taking events
 * until it has all gone out ('drain'): events (references to wire bytes shared by every watcher)
 * and bytes. Beyond it the events wait in the watch cache's queue, whose bound ends a watcher that
 * does not keep up.
 */
const MAX_BUFFERED_WATCH_EVENTS = 256;
const MAX_BUFFERED_WATCH_BYTES = 1024 * 1024;

/** Time kept back from the client's deadline so the server's own answer arrives first. */
const DEADLINE_MARGIN_MS = 250;

// Responses may be wire bytes already: the service definition's serializers send a Uint8Array as it is.
type Unary = grpc.handleUnaryCall<WireMessage, WireMessage | Uint8Array>;

/** objectOf's result is decoded for the one call and referenced by nothing else, so handlers may default it in place. */
const OWNED_INPUT: WriteInputOptions = { inputOwned: true };
const OWNED_DRY_RUN: WriteInputOptions = { inputOwned: true, dryRun: true };

function writeOptionsOf(request: WireMessage): WriteInputOptions {
  return request.dryRun === true ? OWNED_DRY_RUN : OWNED_INPUT;
}

const WRITE_VERBS: ReadonlySet<Verb> = new Set(['create', 'update', 'updateStatus', 'delete']);

/** An int64 field of a request: unset, or a number the decoder read, which may lie beyond the safe integers. */
function int64Field(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value))
    throw new InvalidArgumentError(
      `read request: ${field} ${String(value)} is out of range for int64`,
      field,
    );
  return value as number;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** Longest selector accepted, checked before any parsing (Kubernetes' selectors are far shorter). */
export const MAX_SELECTOR_BYTES = 4096;

/** Wire bytes of the WatchEvents made of each (shared) ApiObject, by type and resourceVersion. */
const watchEventBytes = new WeakMap<ApiObject, Map<string, Uint8Array>>();

/**
 * A WatchEvent as wire bytes, made once per object, type and resourceVersion however many
 * watchers send it, its object written as the bytes its ApiObject made from the stored bytes. A
 * WatchEvent whose object has no stored bytes goes as a message.
 */
function watchEventWire(event: WatchEvent): Uint8Array | WireMessage {
  const message: WireMessage = { type: event.type, resourceVersion: event.resourceVersion };
  if (event.object === undefined) return message;
  const key = `${event.type} ${event.resourceVersion}`;
  const made = watchEventBytes.get(event.object)?.get(key);
  if (made !== undefined) return made;
  const envelope = event.object.responseEnvelope();
  if (!(envelope instanceof Uint8Array)) return { ...message, object: envelope };
  const bytes = messages.WatchEvent.encode({ ...message, object: envelope });
  let byKey = watchEventBytes.get(event.object);
  if (byKey === undefined) watchEventBytes.set(event.object, (byKey = new Map()));
  byKey.set(key, bytes);
  return bytes;
}

/**
 * A ListResponse as wire bytes: each item's Object envelope spliced from its stored bytes, as a
 * Get's is, instead of decoding every object into a message for grpc-js to encode again.
 */
function listResponseWire(result: {
  items: ApiObject[];
  resourceVersion: string;
  continue?: string;
}): Uint8Array | WireMessage {
  const items: Array<Uint8Array | WireMessage> = [];
  for (const item of result.items) {
    const envelope = item.responseEnvelope();
    if (!(envelope instanceof Uint8Array)) {
      return {
        items: result.items.map((each) => each.envelope()),
        resourceVersion: result.resourceVersion,
        ...(result.continue !== undefined ? { continue: result.continue } : {}),
      };
    }
    items.push(envelope);
  }
  return messages.ListResponse.encode({
    items,
    resourceVersion: result.resourceVersion,
    ...(result.continue !== undefined ? { continue: result.continue } : {}),
  });
}

/** One write's outcome in a DryRunWrites answer: the object it would store, or its status. */
type DryRunOutcome = { object: ApiObject | undefined } | { error: GrpcStatus };

/** Writes of one DryRunWrites call judged at once: an update reads etcd, so they overlap. */
const DRY_RUN_CONCURRENCY = 16;

/** `run` over `items`, `limit` at a time; the results in the items' order. */
async function mapConcurrently<T, R>(
  items: readonly T[],
  limit: number,
  run: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) results[i] = await run(items[i]!, i);
    }),
  );
  return results;
}

/**
 * A DryRunWritesResponse as wire bytes: each object's envelope spliced from the bytes its ApiObject
 * made (a dry-run create has them), as a Get's is; a status encoded as api.proto's Status.
 */
function dryRunWritesResponseWire(outcomes: readonly DryRunOutcome[]): Uint8Array {
  return messages.DryRunWritesResponse.encode({
    results: outcomes.map((outcome): WireMessage => {
      if ('error' in outcome) {
        const { code, details, trailers } = outcome.error;
        return { error: { code, message: details, details: trailers } };
      }
      return outcome.object === undefined ? {} : { object: outcome.object.responseEnvelope() };
    }),
  });
}

function selector(request: WireMessage, field: 'labelSelector' | 'fieldSelector'): string {
  const text = str(request[field]);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_SELECTOR_BYTES) {
    throw new InvalidArgumentError(
      `read request: ${field} is ${bytes} bytes, over the limit of ${MAX_SELECTOR_BYTES}; select with fewer or shorter terms`,
      field,
    );
  }
  return text;
}

function objectOf(request: WireMessage): KubeObject {
  if (!request.object) throw new InvalidArgumentError('read request: object is required', 'object');
  return fromEnvelope(request.object);
}

/** The kind label of an object request: the Kind of the envelope's member that is set ("configMap"). */
function kindOfObjectRequest(request: WireMessage): string {
  const envelope = request.object as Record<string, unknown> | undefined;
  if (envelope === undefined) return 'unknown';
  return KINDS.find((info) => envelope[info.envelopeField] !== undefined)?.kind ?? 'unknown';
}

/** The kind label of a by-name request; anything but an exact Kind name is `unknown`, to bound label cardinality. */
function kindOfNamedRequest(request: WireMessage): string {
  return lookupKind(str(request.kind))?.kind ?? 'unknown';
}

function remainingMs(deadline: grpc.Deadline): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return at === Infinity ? Infinity : at - Date.now();
}

/**
 * A write that did not finish in time may still be applied: etcd3 1.1.2 can only drop its side
 * of the request (the call's gRPC deadline), and a proposal etcd already accepted commits anyway,
 * so the client is told the outcome is unknown rather than to simply retry.
 */
async function withinDeadline<T>(
  work: Promise<T>,
  deadline: grpc.Deadline,
  what: string,
  endpoints: string,
  isWrite: boolean,
): Promise<T> {
  const budget = remainingMs(deadline) - DEADLINE_MARGIN_MS;
  if (budget === Infinity) return work;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new UnavailableError(
                isWrite
                  ? `${what}: etcd (${endpoints}) did not answer within the call's deadline; the outcome is unknown (the write may still be applied): read the object again before retrying`
                  : `${what}: etcd (${endpoints}) did not answer within the call's deadline`,
                endpoints,
              ),
            ),
          Math.max(budget, 0),
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Where a method's request says its object is, for the node authorizer. */
function targetOf(method: string): (request: WireMessage) => Omit<NodeRequest, 'verb' | 'kind'> {
  switch (method) {
    case 'Create':
    case 'Update':
    case 'UpdateStatus':
      return (request) => {
        const metadata = request.object === undefined ? undefined : objectOf(request).metadata;
        return {
          namespace: metadata?.namespace ?? '',
          name: metadata?.name ?? '',
          ...(metadata?.labels ? { labels: metadata.labels } : {}),
        };
      };
    case 'List':
      return (request) => ({
        namespace: str(request.namespace),
        name: '',
        fieldSelector: str(request.fieldSelector),
      });
    default:
      return (request) => ({ namespace: str(request.namespace), name: str(request.name) });
  }
}

export interface ApiService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Ends every open watch with UNAVAILABLE (clients watch again elsewhere): the first step of a drain. */
  closeWatches(): void;
}

/** The pod stream methods given, or ones that say the server has none. */
function podStreamMethodsOf(options: ApiServiceOptions): grpc.UntypedServiceImplementation {
  if (options.podStreamMethods) return options.podStreamMethods;
  const unimplemented = (call: grpc.ServerWritableStream<unknown, unknown>): void => {
    call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'pod streams are not served here' });
  };
  return { Logs: unimplemented, Exec: unimplemented, Attach: unimplemented, PortForward: unimplemented };
}

export function createApiService(options: ApiServiceOptions): ApiService {
  const { handlers, auth, metrics, log } = options;
  const openWatches = new Set<() => void>();
  const maxWatchesPerToken = options.maxWatchesPerToken ?? 256;
  const watchesByToken = new Map<string, number>();
  let closing = false;
  // pod stream frames pass through as wire bytes (controlplane/streams)
  const definition = grpcServiceDefinition(services.Api, POD_STREAM_RAW);

  const fail = (err: unknown, method: string): Partial<grpc.ServiceError> => {
    const serviceError = toServiceError(err);
    if (serviceError.internal || err instanceof InternalError) {
      log.error({ err, method }, 'api call failed with an internal error');
    }
    return serviceError;
  };

  const codeOf = (err: unknown): string => (err instanceof SkiffError ? err.code : 'Internal');

  /**
   * Who calls (a node certificate, else the bearer token) and whether they may: a node through the
   * node authorizer, a token by its role. A refusal is logged here with the principal and the
   * request, and goes to the client naming what was refused.
   */
  const admit = async (
    call: grpc.ServerUnaryCall<WireMessage, unknown> | grpc.ServerWritableStream<WireMessage, unknown>,
    method: string,
    /** null: the call authorises what it does itself (DryRunWrites, per write). */
    verb: Verb | null,
    kind: string,
    request: () => NodeRequest,
  ): Promise<Principal> => {
    let principal: Principal | undefined;
    try {
      principal = await auth.authenticateCall(
        call.metadata.get('authorization')[0]?.toString(),
        call.getAuthContext().sslPeerCertificate,
      );
      if (verb === null) return principal;
      if (principal.role !== 'node') authorize(principal, verb, kind || 'object');
      else if (options.nodeAuthorizer === undefined)
        throw new PermissionDeniedError(`${verb} ${kind || 'object'}: this API takes no node certificates`);
      else await options.nodeAuthorizer.authorize(principal, request());
      return principal;
    } catch (err) {
      if (err instanceof UnauthenticatedError || err instanceof PermissionDeniedError) {
        const target = principal?.role === 'node' ? request() : undefined;
        log.warn(
          {
            method,
            kind,
            principal: principal?.name ?? 'unauthenticated',
            peer: call.getPeer(),
            ...(target !== undefined
              ? { namespace: target.namespace, name: target.name, fieldSelector: target.fieldSelector }
              : {}),
            reason: errorMessage(err),
          },
          'api request refused',
        );
      }
      throw err;
    }
  };

  const unary = (
    method: string,
    /** What the call does, authorised before `run`; null: `run` authorises what it does itself. */
    verb: Verb | null,
    kindOf: (request: WireMessage) => string,
    /** The response as a message, or its wire bytes (ApiObject.responseEnvelope). */
    run: (request: WireMessage, principal: Principal) => Promise<WireMessage | Uint8Array>,
  ): Unary => {
    const target = targetOf(method);
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const kind = kindOf(call.request);
      const done = (code: string): void =>
        metrics.observe(method, kind, code, Number(process.hrtime.bigint() - started) / 1e9);
      const work = (async () => {
        const principal = await admit(call, method, verb, kind, () => ({
          verb: verb!,
          kind,
          ...target(call.request),
        }));
        return withinDeadline(
          run(call.request, principal),
          call.getDeadline(),
          `${method} ${kind}`.trim(),
          options.etcdEndpoints,
          verb !== null && WRITE_VERBS.has(verb),
        );
      })();
      work.then(
        (response) => {
          done('OK');
          callback(null, response);
        },
        (err: unknown) => {
          done(codeOf(err));
          callback(fail(err, method));
        },
      );
    };
  };

  /**
   * One write of a DryRunWrites call, judged as its own Create or Update call with dry_run would
   * be (authorised, then handed to the handlers); a refusal is its outcome, not the call's.
   */
  const dryRunWrite = async (
    write: WireMessage,
    principal: Principal,
    omitObjects: boolean,
  ): Promise<DryRunOutcome> => {
    try {
      // a oneof: the decoder keeps only the member read last
      const verb = write.create !== undefined ? 'create' : write.update !== undefined ? 'update' : undefined;
      if (verb === undefined) {
        throw new InvalidArgumentError('read request: a write sets neither create nor update', 'writes');
      }
      const request = { object: write[verb] };
      authorize(principal, verb, kindOfObjectRequest(request));
      const object = objectOf(request);
      const judged =
        verb === 'create'
          ? await handlers.create(object, OWNED_DRY_RUN)
          : await handlers.update(object, OWNED_DRY_RUN);
      return { object: omitObjects ? undefined : judged };
    } catch (err) {
      const status = toGrpcStatus(err);
      if (status.internal)
        log.error({ err, method: 'DryRunWrites' }, 'api call failed with an internal error');
      return { error: status };
    }
  };

  const implementation: grpc.UntypedServiceImplementation = {
    Create: unary('Create', 'create', kindOfObjectRequest, async (req) =>
      (await handlers.create(objectOf(req), writeOptionsOf(req))).responseEnvelope(),
    ),
    Get: unary('Get', 'get', kindOfNamedRequest, async (req) =>
      (await handlers.get(str(req.kind), str(req.namespace), str(req.name))).responseEnvelope(),
    ),
    List: unary('List', 'list', kindOfNamedRequest, async (req) => {
      const limit = int64Field(req.limit, 'limit');
      const result = await handlers.list(str(req.kind), {
        namespace: str(req.namespace),
        labelSelector: selector(req, 'labelSelector'),
        fieldSelector: selector(req, 'fieldSelector'),
        ...(limit !== undefined ? { limit } : {}),
        continue: str(req.continue),
        resourceVersion: str(req.resourceVersion),
      });
      return listResponseWire(result);
    }),
    Update: unary('Update', 'update', kindOfObjectRequest, async (req) =>
      (await handlers.update(objectOf(req), writeOptionsOf(req))).responseEnvelope(),
    ),
    UpdateStatus: unary('UpdateStatus', 'updateStatus', kindOfObjectRequest, async (req) =>
      (await handlers.updateStatus(objectOf(req))).responseEnvelope(),
    ),
    Delete: unary('Delete', 'delete', kindOfNamedRequest, async (req) => {
      const gracePeriodSeconds = int64Field(req.gracePeriodSeconds, 'gracePeriodSeconds');
      const preconditions = req.preconditions as { uid?: string; resourceVersion?: string } | undefined;
      const deleted = await handlers.delete(str(req.kind), str(req.namespace), str(req.name), {
        ...(gracePeriodSeconds !== undefined ? { gracePeriodSeconds } : {}),
        ...(preconditions ? { preconditions } : {}),
        ...(req.dryRun === true ? { dryRun: true } : {}),
        ...(str(req.propagationPolicy)
          ? { propagationPolicy: str(req.propagationPolicy) as PropagationPolicy }
          : {}),
      });
      return deleted.responseEnvelope();
    }),
    Version: unary(
      'Version',
      'version',
      () => '',
      async () => ({
        version: options.version,
        etcdEndpoints: options.etcdEndpoints,
        natsUrl: options.natsUrl ?? '',
        httpUrl: options.httpUrl ?? '',
        clusterCidr: options.clusterCIDR ?? '',
        serviceCidr: options.serviceCIDR ?? '',
        networkBackend: options.networkBackend ?? '',
        clusterDns: options.clusterDNS ?? '',
        clusterDomain: options.clusterDomain ?? '',
      }),
    ),
    DryRunWrites: unary(
      'DryRunWrites',
      null,
      () => '',
      async (req, principal) => {
        const writes = (req.writes as WireMessage[] | undefined) ?? [];
        if (writes.length > MAX_DRY_RUN_WRITES) {
          throw new InvalidArgumentError(
            `read request: ${writes.length} writes, over the limit of ${MAX_DRY_RUN_WRITES} in one DryRunWrites call; send them in several`,
            'writes',
          );
        }
        const omitObjects = req.omitObjects === true;
        const outcomes = await mapConcurrently(writes, DRY_RUN_CONCURRENCY, (write) =>
          dryRunWrite(write, principal, omitObjects),
        );
        return dryRunWritesResponseWire(outcomes);
      },
    ),
    ...podStreamMethodsOf(options),
    Watch: (call: grpc.ServerWritableStream<WireMessage, WireMessage | Uint8Array>) => {
      const started = process.hrtime.bigint();
      const kind = str(call.request.kind);
      const kindLabel = kindOfNamedRequest(call.request);
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      let closedByServer = false;
      const closeByServer = (): void => {
        closedByServer = true;
        abort.abort();
      };
      openWatches.add(closeByServer);
      let observed = false;
      const observe = (code: string): void => {
        if (observed) return;
        observed = true;
        metrics.observe('Watch', kindLabel, code, Number(process.hrtime.bigint() - started) / 1e9);
      };
      if (closing) closeByServer();
      let releaseWatch = (): void => undefined;
      void (async () => {
        try {
          const principal = await admit(call, 'Watch', 'watch', kindLabel, () => ({
            verb: 'watch',
            kind: kindLabel,
            namespace: str(call.request.namespace),
            name: '',
            fieldSelector: str(call.request.fieldSelector),
          }));
          const held = watchesByToken.get(principal.name) ?? 0;
          if (held >= maxWatchesPerToken) {
            throw new ResourceExhaustedError(
              `watch ${kind}: token "${principal.name}" already holds ${held} watches, the limit (maxWatchesPerToken ${maxWatchesPerToken}); end watches it no longer needs`,
            );
          }
          watchesByToken.set(principal.name, held + 1);
          releaseWatch = () => {
            const left = (watchesByToken.get(principal.name) ?? 1) - 1;
            if (left > 0) watchesByToken.set(principal.name, left);
            else watchesByToken.delete(principal.name);
          };
          const req = call.request;
          const events = await handlers.watch(kind, {
            namespace: str(req.namespace),
            labelSelector: selector(req, 'labelSelector'),
            fieldSelector: selector(req, 'fieldSelector'),
            resourceVersion: str(req.resourceVersion),
            allowBookmarks: req.allowBookmarks === true,
            signal: abort.signal,
          });
          // Headers go out at once, so a client knows the watch is established before any event.
          call.sendMetadata(new grpc.Metadata());
          observe('OK');
          // What was handed to grpc-js since its buffer was last empty: at least what it holds.
          let bufferedBytes = 0;
          for await (const event of events) {
            if (abort.signal.aborted) break;
            const wire = watchEventWire(event);
            if (call.writableLength === 0) bufferedBytes = 0;
            bufferedBytes += wire instanceof Uint8Array ? wire.byteLength : 0;
            // write() says false from 16 events on (an object stream's high-water mark), and the
            // HTTP/2 session sends once per turn of the event loop: waiting for 'drain' there, a
            // watcher behind by n events (after a pause, a burst of grouped creates) took n / 16
            // turns to catch up, each turn as long as every other watcher's writes make it.
            if (
              !call.write(wire) &&
              (call.writableLength >= MAX_BUFFERED_WATCH_EVENTS || bufferedBytes >= MAX_BUFFERED_WATCH_BYTES)
            ) {
              await new Promise<void>((resolve) => {
                const resume = (): void => {
                  call.off('drain', resume);
                  abort.signal.removeEventListener('abort', resume);
                  resolve();
                };
                call.on('drain', resume);
                abort.signal.addEventListener('abort', resume, { once: true });
              });
              bufferedBytes = 0;
            }
          }
          if (closedByServer) {
            call.emit(
              'error',
              fail(
                new UnavailableError(
                  'watch: the control plane is shutting down; watch again from the last resourceVersion',
                ),
                'Watch',
              ),
            );
          } else if (!abort.signal.aborted) call.end();
        } catch (err) {
          observe(codeOf(err));
          if (!abort.signal.aborted || closedByServer) call.emit('error', fail(err, 'Watch'));
        } finally {
          openWatches.delete(closeByServer);
          releaseWatch();
        }
      })();
    },
  };
  return {
    definition,
    implementation,
    closeWatches() {
      closing = true;
      for (const close of openWatches) close();
    },
  };
}
