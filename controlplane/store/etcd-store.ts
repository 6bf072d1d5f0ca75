/**
 * EtcdStore: the Store contract (store.ts) on etcd v3, through the etcd3 client.
 *
 * - create is a transaction `if create_revision == 0 then put`. Creates that arrive while one is
 *   in flight are sent together as one transaction (one compare and one put per key), falling back
 *   to one transaction each when a key exists; this halved the control plane's CPU per create
 *   (~440 -> ~200 µs) and etcd's (~140 -> ~45 µs) with 64 clients. Keys of one group share a
 *   revision. update and a preconditioned
 *   delete compare mod_revision; a failed comparison reads the key in the same transaction to tell
 *   Conflict from NotFound.
 * - Every unary call has a deadline (default 5 s): gRPC's own, and a timer around the whole call,
 *   including the client's retries. Any etcd failure becomes UnavailableError naming the
 *   endpoints. etcd3's default circuit breaker is replaced (it keeps failing calls for 5 s after
 *   etcd is back); a call is retried on the next endpoint only when there is one.
 * - watch uses etcd3's Watcher, which re-establishes the stream after a disconnect. It resumes
 *   from the revision after the last event *this store delivered*: etcd3 on its own resumes after
 *   the response header's revision, which during a replay can be ahead of the events sent so far.
 * - A watch from compacted history must never take the process down. etcd3 1.1.2 throws from its
 *   gRPC 'data' listener (an uncaught exception) when a response names a watch it has forgotten,
 *   which is what follows etcd cancelling a watch whose start was compacted: the library drops
 *   the watcher, and the answer to the cancel request sent after it names it again; the throw
 *   also leaves that gRPC stream deaf, stalling every other watch on it. So a watch first checks
 *   its start revision with a read (GoneError without touching the watch stream), every watch
 *   has a gRPC watch stream of its own (a cancelled one cannot stall another), the manager of
 *   that stream ignores responses for watches it no longer has (guardWatchManager), and a watch
 *   etcd has cancelled is not cancelled again.
 */
import {
  Etcd3,
  isRecoverableError,
  type IOptions,
  type IKeyValue,
  type IWatchResponse,
  type Namespace,
} from 'etcd3';
import {
  GoneError,
  InvalidArgumentError,
  NotFoundError,
  ConflictError,
  AlreadyExistsError,
  UnavailableError,
  InternalError,
  ResourceExhaustedError,
  isSkiffError,
  errorMessage,
} from '../../proto/errors.js';
import { componentLogger, type Logger } from '../../proto/support/logger.js';
import {
  DEFAULT_PREFIX,
  checkKey,
  checkList,
  checkLeaseTtl,
  checkRevision,
  checkTransaction,
  checkWatch,
  checkPrefix,
  decodeContinue,
  encodeContinue,
  eventRevision,
  expiredContinue,
  objectPath,
  parseObjectPath,
  prefixEnd,
  rangePrefix,
} from './keys.js';
import {
  describeKey,
  type ListOptions,
  type ListResult,
  type ObjectKey,
  type Store,
  type StoreEvent,
  type StoredValue,
  type WatchOptions,
  type Lease,
  type LeaseId,
  type Write,
  type WriteOptions,
} from './store.js';
import { watchBacklog, watchEventQueue, type WatchBacklog } from './event-queue.js';

/** etcd's default --max-request-bytes. */
export const ETCD_DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** Room in a request for the transaction around the key and value. */
const REQUEST_OVERHEAD_BYTES = 512;

export interface EtcdStoreOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Key prefix; default `/skiff`. */
  prefix?: string;
  /** Deadline of every unary call; default 5000 ms. */
  timeoutMs?: number;
  /** The etcd server's --max-request-bytes; default 1.5 MiB. */
  maxRequestBytes?: number;
  /**
   * The largest answer accepted from etcd (an unpaged list of many objects); default 256 MiB.
   * gRPC's own default, 4 MiB, is about 3,000 small pods.
   */
  maxResponseBytes?: number;
  /**
   * Most creates sent as one transaction; default 64, at most etcd's --max-txn-ops (128 by
   * default). 1 sends every create on its own.
   */
  maxCreatesPerTxn?: number;
  /** Longest pause between watch reconnection attempts; default 1000 ms. */
  maxWatchBackoffMs?: number;
  /**
   * Most events (and value bytes) a watch holds for a consumer that does not take them: beyond
   * either the watch fails with ResourceExhaustedError, and the consumer watches again from the
   * last revision it took. Defaults 10 000 events, 64 MiB.
   */
  maxWatchBacklog?: { events?: number; bytes?: number };
  credentials?: IOptions['credentials'];
  logger?: Logger;
}

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;
type Backoff = NonNullable<FaultHandling['watchBackoff']>;

/**
 * A policy that runs the call and retries recoverable failures on the next host, up to once per
 * host. etcd3 only ever calls `execute` on its policies.
 */
function failoverPolicy(hostCount: number): Policy {
  const noEvent = () => ({ dispose() {} });
  const policy = {
    onSuccess: noEvent,
    onFailure: noEvent,
    async execute<T>(
      fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T,
      signal?: AbortSignal,
    ): Promise<T> {
      const context = { signal: signal ?? new AbortController().signal };
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn(context);
        } catch (err) {
          if (attempt >= hostCount || !(err instanceof Error) || !isRecoverableError(err)) throw err;
        }
      }
    },
  };
  return policy as unknown as Policy;
}

const passThroughPolicy = (): Policy => failoverPolicy(1);

function cappedBackoff(durationMs: number, maxMs: number): Backoff {
  return { duration: durationMs, next: () => cappedBackoff(Math.min(durationMs * 2, maxMs), maxMs) };
}

/** Create transactions sent at once; the creates that arrive meanwhile are grouped (see create). */
const MAX_CREATE_TXNS_IN_FLIGHT = 1;
/** Room in a request for one compare and one put around a key and value. */
const PER_OP_OVERHEAD_BYTES = 32;

interface QueuedCreate {
  action: string;
  key: ObjectKey;
  path: Buffer;
  value: Uint8Array;
  lease?: LeaseId;
  /** Date.now() by which the caller has its answer. */
  deadline: number;
  resolve(stored: StoredValue): void;
  reject(err: Error): void;
}

/** Runs `run`, rejecting when it has not settled within `timeoutMs` (which may already be over). */
async function withDeadline<T>(run: () => Promise<T>, timeoutMs: number): Promise<T> {
  if (timeoutMs <= 0) throw new Error('no answer within the deadline');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([run(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** etcd error texts (stable across 3.x) that are not outages. */
const COMPACTED = 'required revision has been compacted';
const FUTURE_REVISION = 'required revision is a future revision';
const TOO_LARGE = 'request is too large';
const LEASE_NOT_FOUND = 'requested lease not found';
/** grpc-js's text when an answer exceeds grpc.max_receive_message_length. */
const ANSWER_TOO_LARGE = 'Received message larger than max';

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly maxRequestBytes: number;
  private readonly maxResponseBytes: number;
  private readonly endpointList: string;
  private readonly log: Logger;
  private readonly watches = new Set<AbortController>();
  private readonly maxCreatesPerTxn: number;
  private readonly maxWatchBacklog: WatchBacklog;
  private readonly queuedCreates: QueuedCreate[] = [];
  private createTxnsInFlight = 0;

  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) {
      throw new InvalidArgumentError('configure store: no etcd endpoints given', 'endpoints');
    }
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    checkPrefix(this.prefix);
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxRequestBytes = options.maxRequestBytes ?? ETCD_DEFAULT_MAX_REQUEST_BYTES;
    this.maxResponseBytes = options.maxResponseBytes ?? 256 * 1024 * 1024;
    this.endpointList = options.endpoints.join(',');
    this.maxCreatesPerTxn = options.maxCreatesPerTxn ?? 64;
    if (!Number.isInteger(this.maxCreatesPerTxn) || this.maxCreatesPerTxn < 1) {
      throw new InvalidArgumentError(
        `configure store: maxCreatesPerTxn ${this.maxCreatesPerTxn} must be a positive integer`,
        'maxCreatesPerTxn',
      );
    }
    this.maxWatchBacklog = watchBacklog(options.maxWatchBacklog);
    this.log = options.logger ?? componentLogger('store', { etcd: this.endpointList });
    const timeoutMs = this.timeoutMs;
    this.client = new Etcd3({
      hosts: options.endpoints,
      credentials: options.credentials,
      grpcOptions: { 'grpc.max_receive_message_length': this.maxResponseBytes },
      dialTimeout: timeoutMs,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
      faultHandling: {
        host: passThroughPolicy,
        global: failoverPolicy(options.endpoints.length),
        watchBackoff: cappedBackoff(100, options.maxWatchBackoffMs ?? 1000),
      },
    });
  }

  /**
   * Creates are grouped: one sent while no other create transaction is in flight goes at once;
   * those that arrive meanwhile wait for it and then go together as one transaction (see
   * commitCreates), which is most of what a create costs the control plane under load.
   */
  async create(key: ObjectKey, value: Uint8Array, options: WriteOptions = {}): Promise<StoredValue> {
    const action = `create ${key.resource} ${describeKey(key)}`;
    checkKey(action, key);
    const path = Buffer.from(objectPath(this.prefix, key));
    this.checkSize(action, path, value);
    return new Promise<StoredValue>((resolve, reject) => {
      const deadline = Date.now() + this.timeoutMs;
      const queued = { action, key, path, value, lease: options.lease, deadline, resolve, reject };
      // Ungrouped creates are not held back by the one in flight.
      if (this.maxCreatesPerTxn === 1) void this.commitOneCreate(queued);
      else {
        this.queuedCreates.push(queued);
        this.sendQueuedCreates();
      }
    });
  }

  private sendQueuedCreates(): void {
    while (this.createTxnsInFlight < MAX_CREATE_TXNS_IN_FLIGHT && this.queuedCreates.length > 0) {
      const group = this.takeCreateGroup();
      this.createTxnsInFlight++;
      void this.commitCreates(group).finally(() => {
        this.createTxnsInFlight--;
        this.sendQueuedCreates();
      });
    }
  }

  /**
   * The longest run of queued creates that fits one transaction: at most maxCreatesPerTxn keys
   * (etcd refuses more than --max-txn-ops, 128 by default, compares or puts), within the request
   * byte limit, and no key twice (etcd refuses a transaction that puts one key twice).
   */
  private takeCreateGroup(): QueuedCreate[] {
    const group: QueuedCreate[] = [];
    const paths = new Set<string>();
    let bytes = REQUEST_OVERHEAD_BYTES;
    for (const queued of this.queuedCreates) {
      const size = queued.value.byteLength + 2 * queued.path.byteLength + PER_OP_OVERHEAD_BYTES;
      const pathText = queued.path.toString('latin1');
      if (group.length > 0 && (bytes + size > this.maxRequestBytes || paths.has(pathText))) break;
      group.push(queued);
      paths.add(pathText);
      bytes += size;
      if (group.length >= this.maxCreatesPerTxn) break;
    }
    this.queuedCreates.splice(0, group.length);
    return group;
  }

  /**
   * One transaction for the group: `create_revision == 0` for every key, then all the puts. When
   * it fails some key exists, and each create is tried on its own so that every caller gets its
   * own answer. Every key of a group gets the same revision; watches deliver each put as its own
   * event (one revision's events always arrive in one watch response).
   */
  private async commitCreates(group: QueuedCreate[]): Promise<void> {
    const now = Date.now();
    const live = group.filter((queued) => {
      if (queued.deadline > now) return true;
      queued.reject(this.translate(queued.action, new Error(`no answer within ${this.timeoutMs} ms`)));
      return false;
    });
    if (live.length === 0) return;
    if (live.length === 1) {
      await this.commitOneCreate(live[0]!);
      return;
    }
    const timeoutMs = Math.min(...live.map((queued) => queued.deadline)) - now;
    let response;
    try {
      response = await withDeadline(
        () =>
          this.client.kv.txn({
            compare: live.map((queued) => ({
              key: queued.path,
              target: 'Create' as const,
              result: 'Equal' as const,
              create_revision: 0,
            })),
            success: live.map((queued) => ({
              request_put: putRequest(queued.path, queued.value, queued.lease),
            })),
            failure: [],
          }),
        timeoutMs,
      );
    } catch (err) {
      for (const queued of live) queued.reject(this.translate(queued.action, err));
      return;
    }
    if (!response.succeeded) {
      await Promise.all(live.map((queued) => this.commitOneCreate(queued)));
      return;
    }
    const revision = BigInt(response.header.revision);
    for (const queued of live) {
      queued.resolve({
        key: { ...queued.key },
        value: queued.value,
        modRevision: revision,
        createRevision: revision,
      });
    }
  }

  private async commitOneCreate(queued: QueuedCreate): Promise<void> {
    try {
      const response = await this.call(
        queued.action,
        () =>
          this.client.kv.txn({
            compare: [{ key: queued.path, target: 'Create', result: 'Equal', create_revision: 0 }],
            success: [{ request_put: putRequest(queued.path, queued.value, queued.lease) }],
            failure: [],
          }),
        queued.deadline - Date.now(),
      );
      if (!response.succeeded) {
        throw new AlreadyExistsError(`${queued.action}: it already exists; update it or choose another name`);
      }
      const revision = BigInt(response.header.revision);
      queued.resolve({
        key: { ...queued.key },
        value: queued.value,
        modRevision: revision,
        createRevision: revision,
      });
    } catch (err) {
      queued.reject(err instanceof Error ? err : this.translate(queued.action, err));
    }
  }

  async get(key: ObjectKey): Promise<StoredValue> {
    const action = `get ${key.resource} ${describeKey(key)}`;
    checkKey(action, key);
    const path = Buffer.from(objectPath(this.prefix, key));
    const response = await this.call(action, () => this.client.kv.range({ key: path }));
    const kv = response.kvs[0];
    if (kv === undefined) throw new NotFoundError(`${action}: not found`);
    return toStoredValue(key, kv);
  }

  async update(
    key: ObjectKey,
    value: Uint8Array,
    expectedModRevision: bigint,
    options: WriteOptions = {},
  ): Promise<StoredValue> {
    const action = `update ${key.resource} ${describeKey(key)}`;
    checkKey(action, key);
    checkRevision(action, expectedModRevision);
    const path = Buffer.from(objectPath(this.prefix, key));
    this.checkSize(action, path, value);
    const response = await this.call(action, () =>
      this.client.kv.txn({
        compare: [
          { key: path, target: 'Mod', result: 'Equal', mod_revision: expectedModRevision.toString() },
        ],
        success: [{ request_put: { ...putRequest(path, value, options.lease), prev_kv: true } }],
        failure: [{ request_range: { key: path } }],
      }),
    );
    if (!response.succeeded)
      throw this.preconditionFailure(action, response.responses[0], expectedModRevision);
    const previous = response.responses[0]?.response_put?.prev_kv;
    const revision = BigInt(response.header.revision);
    return {
      key: { ...key },
      value,
      modRevision: revision,
      createRevision: previous === undefined ? revision : BigInt(previous.create_revision),
    };
  }

  async delete(key: ObjectKey, expectedModRevision?: bigint): Promise<StoredValue> {
    const action = `delete ${key.resource} ${describeKey(key)}`;
    checkKey(action, key);
    if (expectedModRevision !== undefined) checkRevision(action, expectedModRevision);
    const path = Buffer.from(objectPath(this.prefix, key));
    const response = await this.call(action, () =>
      this.client.kv.txn({
        compare:
          expectedModRevision === undefined
            ? []
            : [{ key: path, target: 'Mod', result: 'Equal', mod_revision: expectedModRevision.toString() }],
        success: [{ request_delete_range: { key: path, prev_kv: true } }],
        failure: [{ request_range: { key: path } }],
      }),
    );
    if (!response.succeeded) {
      throw this.preconditionFailure(action, response.responses[0], expectedModRevision!);
    }
    const deleted = response.responses[0]?.response_delete_range?.prev_kvs[0];
    if (deleted === undefined) throw new NotFoundError(`${action}: not found`);
    return toStoredValue(key, deleted);
  }

  async transact(writes: Write[]): Promise<StoredValue[]> {
    const action = `write ${writes.length} objects`;
    checkTransaction(action, writes);
    let bytes = REQUEST_OVERHEAD_BYTES;
    const ops = writes.map((write) => {
      const what = `${action}: ${write.type} ${write.key.resource} ${describeKey(write.key)}`;
      checkKey(what, write.key);
      if (write.type === 'update' || (write.type === 'delete' && write.expectedModRevision !== undefined))
        checkRevision(what, write.expectedModRevision!);
      const path = Buffer.from(objectPath(this.prefix, write.key));
      bytes +=
        (write.type === 'delete' ? 0 : write.value.byteLength) + 2 * path.byteLength + PER_OP_OVERHEAD_BYTES;
      return { what, write, path };
    });
    if (bytes > this.maxRequestBytes) {
      throw new InvalidArgumentError(
        `${action}: the objects are too large together: about ${bytes} bytes, and etcd accepts at most ${this.maxRequestBytes} bytes per request; write them in smaller groups`,
      );
    }
    const response = await this.call(action, () =>
      this.client.kv.txn({
        compare: ops.map(({ write, path }) =>
          write.type === 'create'
            ? { key: path, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }
            : write.expectedModRevision !== undefined
              ? {
                  key: path,
                  target: 'Mod' as const,
                  result: 'Equal' as const,
                  mod_revision: write.expectedModRevision.toString(),
                }
              : { key: path, target: 'Create' as const, result: 'Greater' as const, create_revision: 0 },
        ),
        success: ops.map(({ write, path }) =>
          write.type === 'delete'
            ? { request_delete_range: { key: path, prev_kv: true } }
            : {
                request_put: {
                  ...putRequest(path, write.value, write.lease),
                  // the replaced value only for its createRevision, unless the writer knows it
                  prev_kv: write.type === 'create' || write.createRevision === undefined,
                },
              },
        ),
        failure: ops.map(({ path }) => ({ request_range: { key: path } })),
      }),
    );
    if (!response.succeeded) {
      for (const [i, { what, write }] of ops.entries()) {
        const current = response.responses[i]?.response_range?.kvs[0];
        if (write.type === 'create') {
          if (current !== undefined)
            throw new AlreadyExistsError(`${what}: it already exists; update it or choose another name`);
        } else if (current === undefined) {
          throw new NotFoundError(`${what}: not found`);
        } else if (
          write.expectedModRevision !== undefined &&
          BigInt(current.mod_revision) !== write.expectedModRevision
        ) {
          throw this.preconditionFailure(what, response.responses[i], write.expectedModRevision);
        }
      }
      throw new ConflictError(
        `${action}: the objects changed while the transaction was checked; read them again and retry`,
      );
    }
    const revision = BigInt(response.header.revision);
    return ops.map(({ what, write }, i) => {
      const answer = response.responses[i];
      if (write.type === 'delete') {
        const last = answer?.response_delete_range?.prev_kvs[0];
        if (last === undefined) throw new InternalError(`${what}: etcd returned no last value`);
        return toStoredValue({ ...write.key }, last);
      }
      const previous = answer?.response_put?.prev_kv;
      return {
        key: { ...write.key },
        value: write.value,
        modRevision: revision,
        // etcd answers a put of a new key with a null prev_kv
        createRevision:
          write.type === 'update' && write.createRevision !== undefined
            ? write.createRevision
            : previous
              ? BigInt(previous.create_revision)
              : revision,
      };
    });
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    const action = `grant a lease of ${ttlSeconds} s`;
    checkLeaseTtl(action, ttlSeconds);
    const response = await this.call(action, () =>
      this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }),
    );
    if (response.error)
      throw new UnavailableError(`${action}: etcd refused: ${response.error}`, this.endpointList);
    // etcd raises a TTL below its minimum (about 2 s with the default election timeout)
    return { id: BigInt(response.ID), ttlSeconds: Number(response.TTL) };
  }

  async keepAlive(lease: LeaseId): Promise<void> {
    const action = `keep lease ${lease} alive`;
    const answer = await this.call(action, async () => {
      // etcd's keep-alive is a stream: one request, one answer, closed again
      const stream = await this.client.leaseClient.leaseKeepAlive();
      try {
        const reply = new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve);
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('the keep-alive stream ended without an answer')));
        });
        stream.write({ ID: lease.toString() });
        return await reply;
      } finally {
        stream.end();
        stream.cancel();
      }
    });
    if (Number(answer.TTL) <= 0)
      throw new NotFoundError(`${action}: lease ${lease} not found (it expired or was revoked)`);
  }

  async revokeLease(lease: LeaseId): Promise<void> {
    await this.call(`revoke lease ${lease}`, () =>
      this.client.leaseClient.leaseRevoke({ ID: lease.toString() }),
    );
  }

  async list(resource: string, options: ListOptions = {}): Promise<ListResult> {
    const action = checkList(resource, options);
    const base = rangePrefix(this.prefix, resource);
    const range = Buffer.from(rangePrefix(this.prefix, resource, options.namespace));
    let start = range;
    let revision = options.revision;
    if (options.continue !== undefined) {
      const token = decodeContinue(action, options.continue, options.namespace);
      revision = token.revision;
      start = Buffer.concat([Buffer.from(base + token.after), Buffer.from([0])]);
    }
    const response = await this.call(action, () =>
      this.client.kv.range({
        key: start,
        range_end: prefixEnd(range),
        limit: options.limit ?? 0,
        revision: revision === undefined ? 0 : revision.toString(),
      }),
    ).catch((err: unknown) => {
      if (err instanceof GoneError && options.continue !== undefined) {
        throw expiredContinue(action, revision!);
      }
      throw err;
    });
    const readAt = revision ?? BigInt(response.header.revision);
    const items: StoredValue[] = [];
    for (const kv of response.kvs) {
      const path = kv.key.toString('utf8');
      const key = parseObjectPath(this.prefix, resource, path);
      if (key === undefined) {
        this.log.warn({ key: path }, 'skipping a key that is not an object key');
        continue;
      }
      items.push(toStoredValue(key, kv));
    }
    const last = response.kvs[response.kvs.length - 1];
    const result: ListResult = { items, revision: readAt };
    if (response.more && last !== undefined) {
      result.continue = encodeContinue(readAt, last.key.toString('utf8').slice(base.length));
    }
    return result;
  }

  watch(resource: string, options: WatchOptions): AsyncIterable<StoreEvent> {
    const action = checkWatch(resource, options);
    return { [Symbol.asyncIterator]: () => this.watchEvents(action, resource, options) };
  }

  private async *watchEvents(
    action: string,
    resource: string,
    options: WatchOptions,
  ): AsyncGenerator<StoreEvent> {
    const range = Buffer.from(rangePrefix(this.prefix, resource, options.namespace));
    if (options.signal?.aborted) return;
    let delivered = options.afterRevision;
    await this.requireHistory(action, range, delivered);
    if (options.signal?.aborted) return;
    const watcher = this.isolatedWatchStream()
      .watch()
      .inRange({ start: range, end: prefixEnd(range) })
      .startRevision((delivered + 1n).toString())
      .withPreviousKV()
      .watcher();
    const queue = watchEventQueue(action, this.maxWatchBacklog);
    const stopped = new AbortController();
    const onAbort = (): void => stopped.abort();
    let cancelled = false;
    // etcd3 has already forgotten a watcher etcd cancelled; a cancel request for it would be
    // answered with a response naming a watch the library no longer knows.
    let cancelledByEtcd = false;
    // Runs on abort even when the consumer is not waiting in next(), so an abandoned iteration
    // does not leave a watcher behind.
    const cancelWatcher = (): void => {
      if (cancelled) return;
      cancelled = true;
      queue.end();
      options.signal?.removeEventListener('abort', onAbort);
      this.watches.delete(stopped);
      // Not awaited: while etcd is down etcd3 only confirms a cancel after it reconnects.
      if (!cancelledByEtcd) watcher.cancel().catch(() => undefined);
    };
    stopped.signal.addEventListener('abort', cancelWatcher);
    options.signal?.addEventListener('abort', onAbort);
    this.watches.add(stopped);
    watcher.on('connecting', (request) => {
      // etcd3 passes the create request it is about to send; resume after what was delivered.
      const create = request as { start_revision?: string | number };
      create.start_revision = (delivered + 1n).toString();
    });
    watcher.on('disconnected', (err) =>
      this.log.warn({ resource, err: errorMessage(err) }, 'watch disconnected, resuming'),
    );
    watcher.on('data', (response: IWatchResponse) => {
      if (queue.failIfBehind()) {
        cancelWatcher();
        return;
      }
      const alreadyDelivered = delivered;
      if (response.events.length === 0) {
        if (!response.created && !response.canceled) {
          const revision = BigInt(response.header.revision);
          if (revision > delivered) {
            delivered = revision;
            queue.push({ type: 'progress', revision });
          }
        }
        return;
      }
      // etcd sends a revision's events in one response unless the watch asked for fragments
      // (this one does not): the server's batches split only between revisions. A fragmented
      // response (`fragment` set) would continue its last revision in the next one.
      const converted: Exclude<StoreEvent, { type: 'progress' }>[] = [];
      for (const event of response.events) {
        const revision = BigInt(event.kv.mod_revision);
        // A resumed stream can repeat a revision; one revision's events arrive in one response.
        if (revision <= alreadyDelivered) continue;
        const storeEvent = this.toEvent(resource, event.type, event.kv, event.prev_kv);
        if (storeEvent !== undefined) converted.push(storeEvent);
        delivered = revision;
      }
      for (let i = 0; i < converted.length; i++) {
        const event = converted[i]!;
        const following = converted[i + 1];
        event.lastOfRevision =
          following === undefined
            ? response.fragment !== true
            : eventRevision(following) !== eventRevision(event);
        queue.push(event);
      }
    });
    watcher.on('error', (err) => {
      cancelledByEtcd = true;
      void this.explainCancel(action, delivered + 1n, err).then((error) => queue.fail(error));
    });
    try {
      for (;;) {
        const next = await queue.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      cancelWatcher();
    }
  }

  /**
   * GoneError when the changes after `afterRevision` have been compacted, read before the watch
   * is opened so that the common case never reaches etcd3's watch stream. The read is at
   * `afterRevision` itself, which a watch from a list's revision can always read (the revision
   * after it is usually in the future, which etcd refuses); only when that is compacted is the
   * revision the watch starts from read. An unreachable etcd is left to the watch, which waits.
   */
  private async requireHistory(action: string, range: Buffer, afterRevision: bigint): Promise<void> {
    const readAt = (revision: bigint): Promise<unknown> =>
      this.call(action, () =>
        this.client.kv.range({
          key: range,
          range_end: prefixEnd(range),
          revision: revision.toString(),
          limit: 1,
          keys_only: true,
        }),
      );
    try {
      try {
        await readAt(afterRevision > 0n ? afterRevision : 1n);
      } catch (err) {
        // etcd keeps the compacted revision itself, so a watch may start exactly there.
        if (err instanceof GoneError && afterRevision > 0n) await readAt(afterRevision + 1n);
        else throw err;
      }
    } catch (err) {
      if (err instanceof GoneError) {
        throw new GoneError(
          `${action}: revision ${afterRevision + 1n} has been compacted; list again and watch from the list's revision`,
          { cause: err },
        );
      }
      if (err instanceof InvalidArgumentError || err instanceof UnavailableError) return;
      throw err;
    }
  }

  /** A namespace of the same client (same connection) whose watch manager is this watch's alone. */
  private isolatedWatchStream(): Namespace {
    const scope = this.client.namespace('');
    guardWatchManager(scope, this.log);
    return scope;
  }

  /** etcd cancels a watch without a reason when its start is compacted: find out if it was. */
  private async explainCancel(action: string, resumeAt: bigint, err: unknown): Promise<Error> {
    try {
      await this.call(action, () =>
        this.client.kv.range({ key: Buffer.from(this.prefix), revision: resumeAt.toString(), limit: 1 }),
      );
    } catch (probeError) {
      if (probeError instanceof GoneError) {
        return new GoneError(
          `${action}: revision ${resumeAt} has been compacted; list again and watch from the list's revision`,
          { cause: err },
        );
      }
      if (probeError instanceof UnavailableError) return probeError;
    }
    return new UnavailableError(
      `${action}: etcd ended the watch: ${errorMessage(err)}; watch again`,
      this.endpointList,
      { cause: err },
    );
  }

  async currentRevision(): Promise<bigint> {
    const response = await this.call('read current revision', () =>
      this.client.kv.range({ key: Buffer.from(this.prefix), limit: 1, keys_only: true }),
    );
    return BigInt(response.header.revision);
  }

  async compact(revision: bigint): Promise<void> {
    const action = `compact to revision ${revision}`;
    checkRevision(action, revision, 'revision');
    try {
      await this.call(action, () =>
        this.client.kv.compact({ revision: revision.toString(), physical: true }),
      );
    } catch (err) {
      if (err instanceof GoneError) return; // already compacted at or past it
      throw err;
    }
  }

  async health(): Promise<void> {
    await this.call('check etcd health', () =>
      this.client.kv.range({ key: Buffer.from(`${this.prefix}/`), limit: 1, keys_only: true }),
    );
  }

  async close(): Promise<void> {
    for (const watch of this.watches) watch.abort();
    this.client.close();
  }

  private checkSize(action: string, path: Buffer, value: Uint8Array): void {
    const size = value.byteLength + 2 * path.byteLength + REQUEST_OVERHEAD_BYTES;
    if (size > this.maxRequestBytes) {
      throw new InvalidArgumentError(
        `${action}: the object is too large: ${value.byteLength} bytes encoded, and etcd accepts at most ${this.maxRequestBytes} bytes per request; make it smaller (large data belongs in a volume, not in the object)`,
      );
    }
  }

  private preconditionFailure(
    action: string,
    failure: { response_range?: { kvs: IKeyValue[] } } | undefined,
    expected: bigint,
  ): Error {
    const current = failure?.response_range?.kvs[0];
    if (current === undefined) return new NotFoundError(`${action}: not found`);
    return new ConflictError(
      `${action}: the object has been modified (resourceVersion ${expected} is stale, it is now ${current.mod_revision}); read it again and retry`,
    );
  }

  private toEvent(
    resource: string,
    type: string,
    kv: IKeyValue,
    previous: IKeyValue | undefined,
  ): Exclude<StoreEvent, { type: 'progress' }> | undefined {
    const path = kv.key.toString('utf8');
    const key = parseObjectPath(this.prefix, resource, path);
    if (key === undefined) {
      this.log.warn({ key: path }, 'skipping a key that is not an object key');
      return undefined;
    }
    const revision = BigInt(kv.mod_revision);
    if (type === 'Delete') {
      const item =
        previous === undefined || previous === null
          ? { key, value: new Uint8Array(), modRevision: revision, createRevision: 0n }
          : toStoredValue(key, previous);
      return { type: 'deleted', item, revision, lastOfRevision: true };
    }
    const item = toStoredValue(key, kv);
    if (item.createRevision === item.modRevision) return { type: 'added', item, lastOfRevision: true };
    return previous
      ? { type: 'modified', item, previous: toStoredValue(key, previous), lastOfRevision: true }
      : { type: 'modified', item, lastOfRevision: true };
  }

  /** Runs one etcd call within the deadline and translates its failure to the vocabulary. */
  private async call<T>(action: string, run: () => Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    try {
      return await withDeadline(run, timeoutMs);
    } catch (err) {
      throw this.translate(action, err);
    }
  }

  private translate(action: string, err: unknown): Error {
    if (isSkiffError(err)) return err;
    const message = errorMessage(err);
    if (message.includes(COMPACTED)) {
      return new GoneError(`${action}: the revision asked for has been compacted; list again`, {
        cause: err,
      });
    }
    if (message.includes(FUTURE_REVISION)) {
      return new InvalidArgumentError(
        `${action}: the revision asked for is newer than the store's`,
        'revision',
        {
          cause: err,
        },
      );
    }
    if (message.includes(LEASE_NOT_FOUND)) {
      return new NotFoundError(`${action}: the lease was not found (it expired or was revoked)`, {
        cause: err,
      });
    }
    if (message.includes(TOO_LARGE)) {
      return new InvalidArgumentError(
        `${action}: the object is too large for etcd's request limit; make it smaller`,
        undefined,
        { cause: err },
      );
    }
    if (message.includes(ANSWER_TOO_LARGE)) {
      return new ResourceExhaustedError(
        `${action}: the answer is larger than ${this.maxResponseBytes} bytes; list in pages (limit and continue)`,
        { cause: err },
      );
    }
    if (err instanceof Error && err.name === 'ClientClosedError') {
      return new InternalError(`${action}: the store has been closed`, { cause: err });
    }
    return new UnavailableError(
      `${action}: etcd ${this.endpointList} is unavailable: ${message}; check that etcd is running and reachable`,
      this.endpointList,
      { cause: err },
    );
  }
}

/** The parts of etcd3 1.1.2's (unexported) WatchManager that guardWatchManager relies on. */
interface WatchManagerInternals {
  watchers: { id: string | null }[];
  handleResponse(response: IWatchResponse): void;
}

/**
 * Makes the namespace's watch manager ignore a response for a watch it no longer tracks instead
 * of throwing from the gRPC stream's 'data' listener, where nothing can catch it (see the top of
 * this file). Such a response carries nothing a consumer is still waiting for: it answers a
 * cancel, or follows one.
 */
function guardWatchManager(scope: Namespace, log: Logger): void {
  const manager = (scope as unknown as { watchManager?: Partial<WatchManagerInternals> }).watchManager;
  if (
    manager === undefined ||
    !Array.isArray(manager.watchers) ||
    typeof manager.handleResponse !== 'function'
  ) {
    throw new InternalError(
      'open etcd watch: the etcd3 client no longer has the WatchManager this store guards; keep etcd3 pinned at 1.1.2 or update guardWatchManager',
    );
  }
  const tracked = manager as WatchManagerInternals;
  const handleResponse = tracked.handleResponse.bind(tracked);
  tracked.handleResponse = (response: IWatchResponse): void => {
    if (!tracked.watchers.some((watcher) => watcher.id === response.watch_id)) {
      log.debug(
        { watchId: response.watch_id, canceled: response.canceled },
        'ignoring a watch response for a watch that has ended',
      );
      return;
    }
    handleResponse(response);
  };
}

function toStoredValue(key: ObjectKey, kv: IKeyValue): StoredValue {
  return {
    key,
    value: new Uint8Array(kv.value.buffer, kv.value.byteOffset, kv.value.byteLength),
    modRevision: BigInt(kv.mod_revision),
    createRevision: BigInt(kv.create_revision),
  };
}

/** A put of `value` at `path`, attached to `lease` when given. */
function putRequest(
  path: Buffer,
  value: Uint8Array,
  lease: LeaseId | undefined,
): { key: Buffer; value: Buffer; lease?: string } {
  return lease === undefined
    ? { key: path, value: asBuffer(value) }
    : { key: path, value: asBuffer(value), lease: lease.toString() };
}

/** A view of the same bytes (Buffer.from(Uint8Array) would copy them). */
function asBuffer(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}
