/**
 * ApiHandlers: the API server's core, generic over kinds, with no transport. It turns API calls
 * on KubeObjects into Store operations (returning ApiObjects, which give the KubeObject or the
 * wire form, see api-object.ts), and owns what Kubernetes' apiserver owns: server-set
 * metadata (object-lifecycle.ts), defaulting then validation, namespaces (an object needs an
 * existing, non-terminating namespace), optimistic concurrency, finalizers and graceful delete,
 * label/field selectors, pagination, and watches that resume from a resourceVersion.
 *
 * resourceVersion is the etcd mod revision of the object (set on every object returned, never
 * stored). Writes without a resourceVersion from the client are retried on conflict (the server
 * re-reads and re-applies them); writes with one fail with ConflictError when it is stale.
 *
 * The clock, uid source and randomness are parameters, so the logic is testable; the transport
 * (grpc-server.ts) adds authentication, deadlines and metrics.
 */
import { CLUSTER_DNS_SERVICE, DEFAULT_SERVICE_CIDR } from '../../proto/network-plan.js';
import { randomUUID } from 'node:crypto';
import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
} from '../../proto/errors.js';
import type { KubeObject, ObjectMeta, Pod, PodStatus } from '../../proto/gen/types.js';
import { parseCidr } from '../../proto/cidr.js';
import {
  decodeHolder,
  reservationKey,
  reservationResource,
  reservationWrites,
  type Reservation,
  type ReservationHolder,
  type ReservationRange,
} from './reservations.js';
import type { ServiceRanges } from './service-allocation.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';
import { kindInfoOf, type KindInfo, type KindName } from '../../proto/kinds.js';
import type { Logger } from '../../proto/support/logger.js';
import type {
  DeleteOptions,
  ListOptions,
  ListResult as SharedListResult,
  WatchEvent as SharedWatchEvent,
  WatchOptions,
} from '../../proto/api-requests.js';
import { PROPAGATION_POLICIES } from '../../proto/api-requests.js';
import { encodeObjectWithin, MAX_OBJECT_BYTES, withStatusBytes } from '../../proto/objects.js';
import {
  MAX_WRITES_PER_TRANSACTION,
  type GetOptions,
  type IndexHint,
  type ObjectKey,
  type Store,
  type StoreEvent,
  type StoredValue,
  type Write,
} from '../store/store.js';
import { ApiObject } from './api-object.js';
import {
  DEFAULT_NAMESPACE,
  deletionComplete,
  generatedName,
  planDelete,
  prepareCreate,
  prepareStatusUpdate,
  prepareUpdate,
  randomNameSuffix,
  sameStored,
} from './object-lifecycle.js';
import { StoreNamespaceLookup, type NamespaceLookup } from './namespace-lookup.js';
import { compileObjectFilter, type ObjectFilter } from './object-filter.js';
import { parseFieldSelector } from './selectors.js';
import {
  allStrategies,
  defaultObject,
  defaultObjectInPlace,
  strategyOf,
  validateObject,
  validateStatusUpdate,
  type AdmissionContext,
  type DefaultTolerationSeconds,
  type KindStrategy,
} from './kinds/index.js';
import { WATCH_CACHE_INDEXES } from './watch-cache-indexes.js';
import { checkDns1123Subdomain } from './validation/names.js';

const GENERATE_NAME_ATTEMPTS = 8;
const CONFLICT_RETRIES = 16;

/** Creates that find an allocated value (a ClusterIP, a node port) taken meanwhile allocate again this often. */
const RESERVATION_RETRIES = 8;

/** Kubernetes' DefaultTolerationSeconds: five minutes on a node that is down, then elsewhere. */
const DEFAULT_TOLERATION_SECONDS = 300;

/** One pod's reported status for ApiHandlers.updatePodStatuses. */
export interface PodStatusWrite {
  namespace: string;
  name: string;
  /** The pod the status is about: another pod of that name is `gone`. */
  uid: string;
  status: PodStatus;
  /** The revision the caller last wrote this pod at: the cached copy must be at least as new. */
  minRevision?: bigint;
  /** Whether the stored pod may take this status (the reporter's node is the pod's). */
  accept?: (pod: Pod) => boolean;
}

export type PodStatusOutcome = { written: bigint } | 'unchanged' | 'gone' | 'refused' | Error;

export type { DeleteOptions, ListOptions, WatchOptions } from '../../proto/api-requests.js';
export type ListResult = SharedListResult<ApiObject>;
export type WatchEvent = SharedWatchEvent<ApiObject>;

export interface ApiHandlersOptions {
  store: Store;
  log: Logger;
  now?: () => Date;
  newUid?: () => string;
  random?: () => number;
  namespaces?: NamespaceLookup;
  maxObjectBytes?: number;
  /** How often a watch with allowBookmarks sends a BOOKMARK; default 60 s. */
  bookmarkIntervalMs?: number;
  /** Called after a namespace is marked for deletion (the namespace lookup notes it at once). */
  onNamespaceTerminating?: (name: string) => void;
  /** What new pods tolerate of a not-Ready or unreachable node; default 300 s each. */
  defaultTolerationSeconds?: DefaultTolerationSeconds;
  /** Services' ClusterIPs come from here; default 10.96.0.0/12 (`--service-cidr`). */
  serviceCIDR?: string;
  /** Node ports; default 30000-32767 (`--service-node-port-range`). */
  nodePortRange?: { min: number; max: number };
  /**
   * The cluster DNS Service's address (`--cluster-dns`): ensureSystemObjects makes
   * `kube-system/kube-dns` with it; absent, none is made.
   */
  clusterDNS?: string;
}

export const DEFAULT_NODE_PORT_RANGE = { min: 30000, max: 32767 };

/** How a create or update may treat the object it is given. */
export interface WriteInputOptions {
  /**
   * The caller hands the object over and never reads it again (the gRPC binding's freshly decoded
   * request), so it is defaulted in place instead of deep-copied first. Default false: the
   * caller's object is left as it was.
   */
  inputOwned?: boolean;
  /**
   * Take every step of the write (defaulting, validation, admission, size) and store nothing: the
   * result is the object as it would be stored, without a resourceVersion.
   */
  dryRun?: boolean;
}

function defaultInput<T extends KubeObject>(input: T, options: WriteInputOptions | undefined): T {
  return options?.inputOwned === true ? defaultObjectInPlace(input) : defaultObject(input);
}

function parseRevision(value: string, field: string, action: string): bigint {
  if (!/^\d{1,19}$/.test(value)) {
    throw new InvalidArgumentError(
      `${action}: ${field} "${value}" is not a revision (a decimal number)`,
      field,
    );
  }
  return BigInt(value);
}

/**
 * The index hint of a field selector: its first `field=value` term on an indexed field, so the watch
 * cache hands this request only that value's objects and events. The filter still runs on all.
 */
function indexHintOf(strategy: KindStrategy, fieldSelector: string | undefined): { index?: IndexHint } {
  const indexes = WATCH_CACHE_INDEXES[strategy.info.plural];
  if (!fieldSelector || indexes === undefined) return {};
  const term = parseFieldSelector(fieldSelector, strategy).requirements.find(
    (requirement) => requirement.operator === 'Equals' && requirement.field in indexes,
  );
  return term === undefined ? {} : { index: { name: term.field, value: term.value } };
}

/** What binding a pod names (Kubernetes' Binding: the pod, and the node as its target). */
export interface PodBinding {
  namespace: string;
  name: string;
  /** The pod the caller means; a pod re-created under the name is not bound. */
  uid?: string;
  nodeName: string;
  /** The pod's resourceVersion the caller decided on (a hint: see ApiHandlers.bindPod). */
  seenResourceVersion?: string;
}

function describeObject(info: KindInfo, namespace: string | undefined, name: string): string {
  return info.namespaced ? `${info.singular} ${namespace}/${name}` : `${info.singular} ${name}`;
}

export class ApiHandlers {
  private readonly watchedObjects = new WeakMap<StoredValue, ApiObject>();
  /** The same for deleted values, which carry the revision of their delete. */
  private readonly deletedObjects = new WeakMap<StoredValue, ApiObject>();
  /** Pods whose status updatePodStatuses writes or wrote, by key, until their value is watched. */
  private readonly writtenObjects = new Map<string, WrittenObject>();
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly newUid: () => string;
  private readonly random: () => number;
  private readonly namespaces: NamespaceLookup;
  private readonly maxObjectBytes: number;
  private readonly bookmarkIntervalMs: number;
  private readonly clusterDNS: string | undefined;

  constructor(private readonly options: ApiHandlersOptions) {
    this.store = options.store;
    this.log = options.log;
    this.now = options.now ?? (() => new Date());
    this.newUid = options.newUid ?? randomUUID;
    this.random = options.random ?? Math.random;
    this.namespaces = options.namespaces ?? new StoreNamespaceLookup(options.store);
    this.maxObjectBytes = options.maxObjectBytes ?? MAX_OBJECT_BYTES;
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 60_000;
    Object.assign(this.admission.defaultTolerationSeconds, options.defaultTolerationSeconds);
    const ranges: ServiceRanges = this.admission.serviceRanges;
    if (options.serviceCIDR !== undefined)
      ranges.serviceCIDR = parseCidr(options.serviceCIDR, '--service-cidr');
    if (options.nodePortRange !== undefined) ranges.nodePorts = options.nodePortRange;
    this.clusterDNS = options.clusterDNS;
  }

  /** Refuses a write to an object the API does not keep (KindStrategy.keptBelowTheApi). */
  private refuseKeptBelowTheApi(
    strategy: KindStrategy,
    namespace: string | undefined,
    name: string,
    action: string,
  ): void {
    const why = strategy.keptBelowTheApi?.(namespace ?? '', name);
    if (why !== undefined) throw new PermissionDeniedError(`${action}: ${why}`);
  }

  private keyOf(info: KindInfo, namespace: string | undefined, name: string): ObjectKey {
    return info.namespaced
      ? { resource: info.plural, namespace: namespace || DEFAULT_NAMESPACE, name }
      : { resource: info.plural, name };
  }

  private apiObject(info: KindInfo, stored: StoredValue): ApiObject {
    return ApiObject.fromStored(info, stored.value, stored.modRevision.toString());
  }

  /**
   * The one ApiObject of a value from the watch cache: it hands the same StoredValue to every
   * watcher of an event and every list from memory, so the object is decoded (for selectors) and
   * encoded (for the wire) once however many read it. Read-only from here on: such objects are
   * only filtered and sent.
   */
  private watchedObject(info: KindInfo, stored: StoredValue, deletedAt?: string): ApiObject {
    const objects = deletedAt === undefined ? this.watchedObjects : this.deletedObjects;
    let object = objects.get(stored);
    if (object === undefined) {
      const written = this.takeWrittenObject(stored);
      object =
        deletedAt === undefined
          ? ApiObject.fromStored(info, stored.value, stored.modRevision.toString(), written)
          : ApiObject.fromStored(info, stored.value, deletedAt);
      objects.set(stored, object);
    }
    return object;
  }

  /**
   * Remembers the object a status write is about to store (`write`'s bytes): the watch cache's
   * value of it is not decoded again, even when the watch has it before the write's answer is in.
   * Read-only from here on, as every watched object is.
   */
  private expectWrittenObject(write: Write & { type: 'update' }, object: KubeObject): WrittenObject {
    if (this.writtenObjects.size >= MAX_WRITTEN_OBJECTS) this.writtenObjects.clear();
    const written: WrittenObject = { bytes: write.value, after: write.expectedModRevision, object };
    this.writtenObjects.set(writtenObjectKey(write.key), written);
    return written;
  }

  /**
   * The write of `written` is done (stored as `stored`: its resourceVersion is set) or failed
   * (undefined: forgotten). Done, the pod's next status write starts from it while the watch cache
   * has not caught up.
   */
  private writtenObjectStored(written: WrittenObject, key: ObjectKey, stored: StoredValue | undefined): void {
    const path = writtenObjectKey(key);
    if (this.writtenObjects.get(path) !== written) return;
    if (stored === undefined) {
      this.writtenObjects.delete(path);
      return;
    }
    written.object.metadata.resourceVersion = stored.modRevision.toString();
    written.stored = stored;
  }

  /**
   * The object remembered as written as `stored`, if any: the one stored at that revision, or the
   * one whose write is under way when `stored` holds its bytes at a later revision than the write
   * expects. One stored at an older revision than `stored` goes.
   */
  private takeWrittenObject(stored: StoredValue): KubeObject | undefined {
    const key = writtenObjectKey(stored.key);
    const written = this.writtenObjects.get(key);
    if (written === undefined) return undefined;
    if (written.stored === undefined) {
      if (stored.modRevision <= written.after || !sameBytes(stored.value, written.bytes)) return undefined;
      written.object.metadata.resourceVersion = stored.modRevision.toString();
      return written.object;
    }
    if (written.stored.modRevision > stored.modRevision) return undefined;
    this.writtenObjects.delete(key);
    return written.stored.modRevision === stored.modRevision ? written.object : undefined;
  }

  /**
   * The object a value of the watch cache holds, decoded once however many in this process read
   * it (the API's watchers, the status writes, the informers that share it). Read-only.
   */
  cachedObject(kind: KindName, stored: StoredValue): KubeObject {
    return this.watchedObject(kindInfoOf(kind), stored).object;
  }

  private decode(info: KindInfo, stored: StoredValue): KubeObject {
    return this.apiObject(info, stored).object;
  }

  private encode(object: KubeObject, action: string): Uint8Array {
    return encodeObjectWithin(object, action, this.maxObjectBytes);
  }

  /**
   * Creates the objects the strategies keep (the system namespaces, the system priority classes)
   * and the companions of stored objects (every namespace's `default` ServiceAccount) when
   * missing; idempotent, safe with several control planes.
   */
  async ensureSystemObjects(): Promise<void> {
    for (const strategy of allStrategies()) {
      for (const object of strategy.systemObjects ?? []) {
        try {
          await this.create(object);
          this.log.info({ kind: object.kind, name: object.metadata.name }, 'system object created');
        } catch (err) {
          if (!(err instanceof AlreadyExistsError)) throw err;
        }
      }
    }
    if (this.clusterDNS !== undefined) await this.ensureClusterDNSService(this.clusterDNS);
    // What objects stored before (or while a create failed half-way) still lack.
    for (const strategy of allStrategies()) {
      if (strategy.companions === undefined) continue;
      for (const { object } of (await this.list(strategy.info.kind)).items) {
        if (!object.metadata.deletionTimestamp) await this.createCompanions(strategy, object);
      }
    }
    await this.reserveStoredValues();
  }

  /** `kube-system/kube-dns` (after the system namespaces), unless it exists. */
  private async ensureClusterDNSService(clusterIP: string): Promise<void> {
    try {
      await this.create(clusterDNSService(clusterIP));
      this.log.info({ service: 'kube-system/kube-dns', clusterIP }, 'system object created');
    } catch (err) {
      if (err instanceof AlreadyExistsError) return;
      // its address taken by a Service made before skiff reserved it: that one keeps it
      if (!(err instanceof InvalidArgumentError)) throw err;
      this.log.warn(
        { service: 'kube-system/kube-dns', err: err.message },
        'the cluster DNS Service could not be made; free its address or change --cluster-dns',
      );
    }
  }

  /**
   * Kubernetes' repair loops for its allocators (RepairIP, RepairNodePort), run by the leader:
   * every stored object holds its keys, and a key whose holder is gone or no longer states the value
   * (left by a control plane of an older version, or by hand) is released. The keys are listed
   * before the objects: a key and its object are written together, so a key seen has its object in
   * the later list. Returns what was released.
   */
  async repairReservations(): Promise<string[]> {
    await this.reserveStoredValues();
    const held = await this.heldValues();
    const stated = new Set<string>();
    for (const strategy of allStrategies()) {
      if (strategy.reservations === undefined) continue;
      for (const { object } of (await this.list(strategy.info.kind)).items)
        for (const r of strategy.reservations(object))
          stated.add(`${r.range}/${r.value}/${object.metadata.uid}`);
    }
    const released: string[] = [];
    for (const [value, { stored, holder }] of held) {
      if (stated.has(`${value}/${holder.uid}`)) continue;
      try {
        await this.store.delete(stored.key, stored.modRevision);
        released.push(`${value.replace('/', ' ')} (held for ${holder.namespace}/${holder.name})`);
      } catch (err) {
        if (!(err instanceof NotFoundError || err instanceof ConflictError)) throw err;
      }
    }
    if (released.length > 0) this.log.warn({ released }, 'released values no object holds any more');
    return released;
  }

  /** Every held value (`<range>/<value>`), read in one list per range rather than a get each. */
  private async heldValues(): Promise<Map<string, { stored: StoredValue; holder: ReservationHolder }>> {
    const held = new Map<string, { stored: StoredValue; holder: ReservationHolder }>();
    for (const range of ['serviceIPs', 'nodePorts'] as const)
      for (const stored of (await this.store.list(reservationResource(range))).items)
        held.set(`${range}/${stored.key.name}`, { stored, holder: decodeHolder(stored.value) });
    return held;
  }

  /**
   * Objects stored before reservations existed (a Service's ClusterIP, its node ports) are given
   * theirs, so no new object is handed a value one of them holds. A value another object holds
   * already is left to it, with a warning naming both.
   */
  private async reserveStoredValues(): Promise<void> {
    const held = await this.heldValues();
    for (const strategy of allStrategies()) {
      if (strategy.reservations === undefined) continue;
      for (const { object } of (await this.list(strategy.info.kind)).items) {
        for (const reservation of strategy.reservations(object)) {
          const holder = held.get(`${reservation.range}/${reservation.value}`)?.holder;
          if (holder?.uid === object.metadata.uid) continue;
          const what = describeObject(strategy.info, object.metadata.namespace, object.metadata.name ?? '');
          if (holder !== undefined) {
            this.log.warn(
              {
                object: what,
                field: reservation.field,
                value: reservation.value,
                heldBy: `${holder.namespace}/${holder.name}`,
              },
              'a stored object states a value another holds; change one of them',
            );
            continue;
          }
          try {
            await this.store.transact(reservationWrites([], [reservation], object.metadata));
            this.log.info(
              { object: what, field: reservation.field, value: reservation.value },
              'stored value reserved',
            );
          } catch (err) {
            if (!(err instanceof AlreadyExistsError)) throw err;
          }
        }
      }
    }
  }

  /**
   * What a strategy's admission check may read. `get` and `cachedList` read the watch cache when
   * there is one (as Kubernetes' admission plugins read their informers' listers: a pod's create
   * costs no etcd read); a get the cache answers "not found" is read again from etcd, so an object
   * created just before is found (Kubernetes' ServiceAccount admission does the same).
   */
  private readonly admission: AdmissionContext = {
    defaultTolerationSeconds: {
      notReady: DEFAULT_TOLERATION_SECONDS,
      unreachable: DEFAULT_TOLERATION_SECONDS,
    },
    serviceRanges: {
      serviceCIDR: parseCidr(DEFAULT_SERVICE_CIDR, '--service-cidr'),
      nodePorts: DEFAULT_NODE_PORT_RANGE,
    },
    reservations: {
      holderOf: async (range, value) => {
        const holder = await this.reservationHolder(reservationKey({ range, value }));
        return holder === undefined ? undefined : `${holder.namespace}/${holder.name}`;
      },
      held: async (range) =>
        new Set((await this.store.list(reservationResource(range))).items.map((item) => item.key.name)),
      random: () => this.random(),
    },
    list: async (kind) => (await this.list(kind)).items.map((item) => item.object),
    cachedList: async (kind) =>
      (await this.list(kind, { resourceVersion: '0' })).items.map((item) => item.object),
    get: async (kind, namespace, name) => {
      const info = kindInfoOf(kind);
      const key = this.keyOf(info, namespace, name);
      for (const options of [{ minRevision: 0n }, {}]) {
        try {
          return this.watchedObject(info, await this.store.get(key, options)).object;
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
      }
      return undefined;
    },
  };

  private async requireNamespace(namespace: string, action: string): Promise<void> {
    const phase = await this.namespaces.phase(namespace);
    if (phase === undefined) {
      throw new NotFoundError(
        `${action}: namespace "${namespace}" not found; create it first (skiff create namespace ${namespace})`,
      );
    }
    if (phase === 'Terminating') {
      throw new FailedPreconditionError(
        `${action}: namespace "${namespace}" is being terminated; new objects cannot be created in it`,
      );
    }
  }

  async create(input: KubeObject, options?: WriteInputOptions): Promise<ApiObject> {
    const strategy = strategyOf(input.kind);
    const info = strategy.info;
    const defaulted = defaultInput(input, options);
    const namespace = info.namespaced ? defaulted.metadata.namespace || DEFAULT_NAMESPACE : undefined;
    const givenName = defaulted.metadata.name ?? '';
    const generateName = defaulted.metadata.generateName ?? '';
    const attempts = givenName === '' && generateName !== '' ? GENERATE_NAME_ATTEMPTS : 1;
    // what the client asked to hold (a ClusterIP it chose): taken, that is its error, not a retry
    const requested = strategy.reservations?.(defaulted) ?? [];
    let reservationRetries = 0;
    let namespaceChecked = false;
    for (let attempt = 1; ; attempt++) {
      const name =
        givenName !== ''
          ? givenName
          : generateName !== ''
            ? generatedName(generateName, randomNameSuffix(this.random))
            : '';
      const action = `create ${describeObject(info, namespace, name || generateName || '<no name>')}`;
      this.refuseKeptBelowTheApi(strategy, namespace, name, action);
      // allocation fills the object in (a Service's ClusterIP): each attempt starts from the input
      const input = strategy.reservations !== undefined ? structuredClone(defaulted) : defaulted;
      const prepared = prepareCreate(input, strategy, { now: this.now(), uid: this.newUid(), name });
      validateObject(prepared);
      if (namespace !== undefined && !namespaceChecked) {
        await this.requireNamespace(namespace, action);
        namespaceChecked = true;
      }
      await strategy.admit?.(prepared, undefined, this.admission);
      const bytes = this.encode(prepared, action);
      if (options?.dryRun) {
        // advisory, as a dry run is: the watch cache answers when it is running (the real create
        // checks again), sparing etcd a read per document of an apply
        if (name !== '' && (await this.exists(this.keyOf(info, namespace, name), { minRevision: 0n }))) {
          throw new AlreadyExistsError(
            `${action}: already exists; use update (or apply) to change it, or delete it first`,
          );
        }
        // answered from the bytes just encoded, as a create answers from what it stored
        return ApiObject.fromStored(info, bytes, '', prepared);
      }
      const key = this.keyOf(info, namespace, name);
      const held = strategy.reservations?.(prepared) ?? [];
      let stored: StoredValue;
      try {
        stored =
          held.length === 0
            ? await this.store.create(key, bytes)
            : (
                await this.store.transact([
                  { type: 'create', key, value: bytes },
                  ...(await this.reservationChanges([], held, prepared.metadata, action)),
                ])
              )[0]!;
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
        if (held.length > 0 && !(await this.exists(key))) {
          // a value it was to hold was taken after admission read it free
          await this.refuseTakenRequest(held, requested, prepared.metadata.uid, action);
          if (++reservationRetries <= RESERVATION_RETRIES) {
            attempt--;
            continue;
          }
          throw new ConflictError(`${action}: the values allocated to it were taken meanwhile; try again`, {
            cause: err,
          });
        }
        if (attempt < attempts) continue;
        const hint =
          givenName === ''
            ? `${attempts} generated names from "${generateName}" were all taken; try again or choose another generateName`
            : 'already exists; use update (or apply) to change it, or delete it first';
        throw new AlreadyExistsError(`${action}: ${hint}`, { cause: err });
      }
      prepared.metadata.resourceVersion = stored.modRevision.toString();
      await this.createCompanions(strategy, prepared);
      return ApiObject.fromStored(info, bytes, prepared.metadata.resourceVersion, prepared);
    }
  }

  /**
   * Creates what the strategy makes with `object` (a namespace's `default` ServiceAccount) where it
   * is missing. A failure is logged, not returned: `object` is stored, and the next start-up makes
   * what is still missing.
   */
  private async createCompanions(strategy: KindStrategy, object: KubeObject): Promise<void> {
    for (const companion of strategy.companions?.(object) ?? []) {
      try {
        await this.create(companion);
      } catch (err) {
        if (err instanceof AlreadyExistsError) continue;
        this.log.warn(
          {
            kind: companion.kind,
            namespace: companion.metadata.namespace,
            name: companion.metadata.name,
            err,
          },
          'companion object not created',
        );
      }
    }
  }

  private async exists(key: ObjectKey, options?: GetOptions): Promise<boolean> {
    try {
      await this.store.get(key, options);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /**
   * `options.minRevision`: any state not older than it will do (0n: the watch cache's copy), for
   * advisory reads that no write is based on.
   */
  async get(
    kind: string,
    namespace: string,
    name: string,
    options: { minRevision?: bigint } = {},
  ): Promise<ApiObject> {
    const info = kindInfoOf(kind);
    try {
      return this.apiObject(info, await this.store.get(this.keyOf(info, namespace, name), options));
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError(
          `get ${describeObject(info, namespace || DEFAULT_NAMESPACE, name)}: not found`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  private async read(
    info: KindInfo,
    key: ObjectKey,
    action: string,
  ): Promise<{ object: KubeObject; revision: bigint; stored: StoredValue }> {
    try {
      const stored = await this.store.get(key);
      return { object: this.decode(info, stored), revision: stored.modRevision, stored };
    } catch (err) {
      if (err instanceof NotFoundError) throw new NotFoundError(`${action}: not found`, { cause: err });
      throw err;
    }
  }

  /**
   * The read-modify-write loop of update, updateStatus and delete: re-reads and re-applies on a
   * conflict unless the caller pinned a resourceVersion, whose staleness is then its conflict.
   */
  private async readModifyWrite<T>(
    info: KindInfo,
    key: ObjectKey,
    action: string,
    pinnedRevision: string | undefined,
    /** `stored` is what `current` was decoded from (its bytes: what a write that changes nothing gives). */
    step: (current: KubeObject, revision: bigint, stored: StoredValue) => Promise<T>,
    /** Throws when the stored object is not the one the caller means (a uid precondition). */
    precondition?: (current: KubeObject) => void,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { object: current, revision, stored } = await this.read(info, key, action);
      if (pinnedRevision !== undefined && pinnedRevision !== revision.toString()) {
        throw new ConflictError(
          `${action}: the object has been modified (resourceVersion ${pinnedRevision} is stale, now ${revision}); read it again and retry`,
        );
      }
      // Outside the retry below: another object under the same name stays another object.
      precondition?.(current);
      try {
        return await step(current, revision, stored);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        if (pinnedRevision !== undefined || attempt >= CONFLICT_RETRIES) {
          throw new ConflictError(
            `${action}: the object has been modified since resourceVersion ${revision}; read it again and retry`,
            { cause: err },
          );
        }
      }
    }
  }

  async update(input: KubeObject, options?: WriteInputOptions): Promise<ApiObject> {
    return this.write(input, 'update', options);
  }

  async updateStatus(input: KubeObject): Promise<ApiObject> {
    return this.write(input, 'updateStatus');
  }

  private async write(
    input: KubeObject,
    verb: 'update' | 'updateStatus',
    options?: WriteInputOptions,
  ): Promise<ApiObject> {
    const strategy = strategyOf(input.kind);
    const info = strategy.info;
    const name = input.metadata.name ?? '';
    if (name === '')
      throw new InvalidArgumentError(`${verb} ${info.singular}: metadata.name is required`, 'metadata.name');
    const key = this.keyOf(info, input.metadata.namespace, name);
    const action = `${verb === 'update' ? 'update' : 'update status of'} ${describeObject(info, key.namespace, name)}`;
    this.refuseKeptBelowTheApi(strategy, key.namespace, name, action);
    if (verb === 'updateStatus' && !strategy.statusSubresource) {
      throw new NotFoundError(`${action}: ${info.plural} have no status subresource; use update`);
    }
    const pinned = input.metadata.resourceVersion || undefined;
    if (pinned !== undefined) parseRevision(pinned, 'metadata.resourceVersion', action);
    const defaulted = verb === 'update' ? defaultInput(input, options) : input;
    const sameUid = (current: KubeObject): void => {
      if (input.metadata.uid && input.metadata.uid !== current.metadata.uid) {
        throw new ConflictError(
          `${action}: precondition failed: metadata.uid ${input.metadata.uid} does not match the stored object's ${current.metadata.uid} (it was deleted and re-created)`,
        );
      }
    };
    return this.readModifyWrite(
      info,
      key,
      action,
      pinned,
      async (current, revision, stored) => {
        if (verb === 'updateStatus') {
          const status = (input as { status?: unknown }).status;
          const change = this.statusChange(info, stored, current, status, action);
          if (change === undefined) return ApiObject.fromObject(info, current);
          const written = await this.store.update(key, change.bytes, revision);
          change.next.metadata.resourceVersion = written.modRevision.toString();
          return ApiObject.fromStored(info, change.bytes, change.next.metadata.resourceVersion, change.next);
        }
        const next = prepareUpdate(
          strategy.reservations !== undefined ? structuredClone(defaulted) : defaulted,
          current,
        );
        strategy.prepareForUpdate?.(next, current);
        validateObject(next, current);
        if (deletionComplete(next, strategy)) {
          if (options?.dryRun) return ApiObject.fromObject(info, next);
          await this.removeStored(strategy, key, current, revision, action);
          this.log.debug({ object: action }, 'last finalizer removed; object deleted');
          return ApiObject.fromObject(info, next);
        }
        let bytes = this.encode(next, action);
        // the bytes decide what proto3 cannot tell apart (a zero count and none); the objects, maps
        // whose keys came in another order
        if (sameBytes(bytes, stored.value) || sameStored(next, current))
          return ApiObject.fromObject(info, current);
        if (strategy.admit !== undefined) {
          await strategy.admit(next, current, this.admission);
          bytes = this.encode(next, action); // admission may fill fields in (a Service's node ports)
        }
        if (options?.dryRun) return ApiObject.fromObject(info, next);
        const changes = strategy.reservations
          ? await this.reservationChanges(
              strategy.reservations(current),
              strategy.reservations(next),
              next.metadata,
              action,
            )
          : [];
        let written: StoredValue;
        try {
          written =
            changes.length === 0
              ? await this.store.update(key, bytes, revision)
              : (
                  await this.store.transact([
                    { type: 'update', key, value: bytes, expectedModRevision: revision },
                    ...changes,
                  ])
                )[0]!;
        } catch (err) {
          if (!(err instanceof AlreadyExistsError)) throw err;
          await this.refuseTakenRequest(
            strategy.reservations!(next),
            strategy.reservations!(defaulted),
            current.metadata.uid,
            action,
          );
          // an allocated value was taken meanwhile: read again, allocate again (readModifyWrite)
          throw new ConflictError(`${action}: a value allocated to it was taken meanwhile`, { cause: err });
        }
        next.metadata.resourceVersion = written.modRevision.toString();
        return ApiObject.fromStored(info, bytes, next.metadata.resourceVersion, next);
      },
      sameUid,
    );
  }

  /**
   * The store writes that take the values `after` holds and `before` did not, and release the
   * others, from what the store holds now: a value already held for this object (its uid) is not
   * taken again, one not held (an object stored before reservations existed) or held by another is
   * not released.
   */
  private async reservationChanges(
    before: readonly Reservation[],
    after: readonly Reservation[],
    holder: ObjectMeta,
    action: string,
  ): Promise<Write[]> {
    const writes = reservationWrites(before, after, holder);
    const kept: Write[] = [];
    for (const write of writes) {
      const current = await this.reservationHolder(write.key);
      const mine = current !== undefined && current.uid === holder.uid;
      if (write.type === 'create' && mine) continue;
      if (write.type === 'delete' && !mine) continue;
      kept.push(write);
    }
    this.log.debug({ object: action, reservations: kept.length }, 'reservations written with the object');
    return kept;
  }

  private async reservationHolder(key: ObjectKey): Promise<ReservationHolder | undefined> {
    try {
      const stored = await this.store.get(key);
      return decodeHolder(stored.value);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * Throws InvalidArgumentError naming the field when a value the client asked for is held by
   * another object (not `uid`, the one written).
   */
  private async refuseTakenRequest(
    held: readonly Reservation[],
    requested: readonly Reservation[],
    uid: string | undefined,
    action: string,
  ): Promise<void> {
    for (const reservation of held) {
      if (!requested.some((r) => r.range === reservation.range && r.value === reservation.value)) continue;
      const holder = await this.reservationHolder(reservationKey(reservation));
      if (holder === undefined || holder.uid === uid) continue;
      throw new InvalidArgumentError(
        `${action}: ${reservation.field}: Invalid value: "${reservation.value}": provided value is already allocated (to ${holder.namespace}/${holder.name})`,
        reservation.field,
      );
    }
  }

  /** Deletes the stored object, releasing what it holds (its reservations) in the same transaction. */
  private async removeStored(
    strategy: KindStrategy,
    key: ObjectKey,
    current: KubeObject,
    revision: bigint,
    action: string,
  ): Promise<StoredValue> {
    const releases = strategy.reservations
      ? await this.reservationChanges(strategy.reservations(current), [], current.metadata, action)
      : [];
    if (releases.length === 0) return this.store.delete(key, revision);
    const [removed] = await this.store.transact([
      { type: 'delete', key, expectedModRevision: revision },
      ...releases,
    ]);
    return removed!;
  }

  /**
   * Writes many pods' statuses (what agents report) in few etcd transactions: each pod's write is a
   * compare-and-swap on the copy the watch cache holds, or the one this process wrote last when the
   * cache has not seen it yet (at least `minRevision`, the revision the caller last wrote it at),
   * up to MAX_WRITES_PER_TRANSACTION in one transaction. A transaction
   * that fails (one pod changed since its cached copy) is not retried whole: each of its writes is
   * read again from etcd and written alone, so one busy pod costs its batch one round trip.
   * Per write, in order: the revision written, `unchanged` (the status is already stored), `gone`
   * (no pod of that uid), `refused` (`accept` said no), or the error of that write.
   */
  async updatePodStatuses(writes: readonly PodStatusWrite[]): Promise<PodStatusOutcome[]> {
    const info = strategyOf('Pod').info;
    const outcomes: PodStatusOutcome[] = new Array(writes.length);
    const prepared: { index: number; write: Write & { type: 'update' }; next: KubeObject }[] = [];
    await Promise.all(
      writes.map(async (write, index) => {
        try {
          const step = await this.preparePodStatus(info, write, write.minRevision ?? 0n);
          if ('outcome' in step) outcomes[index] = step.outcome;
          else prepared.push({ index, write: step.write, next: step.next });
        } catch (err) {
          outcomes[index] = err as Error;
        }
      }),
    );
    prepared.sort((a, b) => a.index - b.index);
    for (let at = 0; at < prepared.length; at += MAX_WRITES_PER_TRANSACTION) {
      const chunk = prepared.slice(at, at + MAX_WRITES_PER_TRANSACTION);
      const written = chunk.map((each) => this.expectWrittenObject(each.write, each.next));
      try {
        const stored = await this.store.transact(chunk.map((each) => each.write));
        chunk.forEach((each, i) => {
          this.writtenObjectStored(written[i]!, each.write.key, stored[i]!);
          outcomes[each.index] = { written: stored[i]!.modRevision };
        });
      } catch (err) {
        chunk.forEach((each, i) => this.writtenObjectStored(written[i]!, each.write.key, undefined));
        if (!(err instanceof ConflictError || err instanceof NotFoundError)) {
          for (const each of chunk) outcomes[each.index] = err as Error;
          continue;
        }
        await Promise.all(
          chunk.map(async (each) => {
            outcomes[each.index] = await this.writePodStatusAlone(info, writes[each.index]!);
          }),
        );
      }
    }
    return outcomes;
  }

  /** One pod's status write after its batch failed: read from etcd, written alone, retried on conflict. */
  private async writePodStatusAlone(info: KindInfo, write: PodStatusWrite): Promise<PodStatusOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        const step = await this.preparePodStatus(info, write, undefined);
        if ('outcome' in step) return step.outcome;
        const written = this.expectWrittenObject(step.write, step.next);
        let stored: StoredValue | undefined;
        try {
          stored = await this.store.update(step.write.key, step.write.value, step.write.expectedModRevision);
        } finally {
          this.writtenObjectStored(written, step.write.key, stored);
        }
        return { written: stored.modRevision };
      } catch (err) {
        if (err instanceof NotFoundError) return 'gone';
        if (!(err instanceof ConflictError) || attempt >= CONFLICT_RETRIES) return err as Error;
      }
    }
  }

  /** The compare-and-swap write of one pod's status on the copy read (cached when `minRevision` is set). */
  private async preparePodStatus(
    info: KindInfo,
    write: PodStatusWrite,
    minRevision: bigint | undefined,
  ): Promise<
    { write: Write & { type: 'update' }; next: KubeObject } | { outcome: 'unchanged' | 'gone' | 'refused' }
  > {
    const key = this.keyOf(info, write.namespace, write.name);
    // What this process wrote last of the pod, when it is the copy the caller asks for at least:
    // under load the watch cache lags the writes, and reading each pod from etcd instead costs a
    // round trip a pod. A change since (by another writer) fails the compare-and-swap.
    const own = minRevision === undefined ? undefined : this.writtenObjects.get(writtenObjectKey(key));
    const known =
      own?.stored !== undefined &&
      write.minRevision !== undefined &&
      own.stored.modRevision >= write.minRevision &&
      own.object.metadata.uid === write.uid
        ? own.stored
        : undefined;
    let stored: StoredValue;
    try {
      stored = await this.store.get(
        key,
        minRevision === undefined ? {} : known === undefined ? { minRevision } : { minRevision, known },
      );
    } catch (err) {
      if (err instanceof NotFoundError) return { outcome: 'gone' };
      throw err;
    }
    // the watch cache's value is decoded once for every reader of it (its watchers, the last write)
    const current = (stored === known ? own!.object : this.watchedObject(info, stored).object) as Pod;
    if (current.metadata.uid !== write.uid) return { outcome: 'gone' };
    if (write.accept && !write.accept(current)) return { outcome: 'refused' };
    const action = `update status of ${describeObject(info, key.namespace, write.name)}`;
    const change = this.statusChange(info, stored, current, write.status, action);
    if (change === undefined) return { outcome: 'unchanged' };
    return {
      write: {
        type: 'update',
        key,
        value: change.bytes,
        expectedModRevision: stored.modRevision,
        createRevision: stored.createRevision,
      },
      next: change.next,
    };
  }

  /**
   * What an UpdateStatus of `current` (decoded from `stored`) to `status` writes: the stored bytes
   * with the status spliced in (metadata and spec stay as stored, so only the status is encoded and
   * validated), and the object they hold; undefined when they are the stored bytes (no change).
   * `current` is not changed (it may be the watch cache's).
   */
  private statusChange(
    info: KindInfo,
    stored: StoredValue,
    current: KubeObject,
    status: unknown,
    action: string,
  ): { next: KubeObject; bytes: Uint8Array } | undefined {
    const spliced = withStatusBytes(info.kind, stored.value, status, action);
    const next = prepareStatusUpdate({ ...current, status: spliced.status } as KubeObject, current);
    validateStatusUpdate(next, current);
    if (sameBytes(spliced.bytes, stored.value)) return undefined;
    // over the limit: encodeObjectWithin says which field holds the bulk of it
    if (spliced.bytes.length > this.maxObjectBytes) this.encode(next, action);
    return { next, bytes: spliced.bytes };
  }

  /**
   * Binds a pod to a node, as Kubernetes' pods/binding subresource does: sets spec.nodeName and the
   * PodScheduled condition (True) in one compare-and-swap write. ConflictError when the pod is
   * already bound (to any node), is being deleted, or is not the pod `uid` names (deleted and
   * re-created); NotFoundError when it is gone. `seenResourceVersion`, the version the caller
   * decided on, lets the first attempt read from the watch cache instead of etcd; a write that finds
   * the pod changed since reads it again and re-checks.
   */
  async bindPod(binding: PodBinding): Promise<ApiObject> {
    let fromCache = binding.seenResourceVersion !== undefined;
    for (let attempt = 1; ; attempt++) {
      const prepared = await this.prepareBinding(binding, fromCache);
      try {
        const written = await this.store.update(prepared.key, prepared.bytes, prepared.revision);
        return prepared.written(written.modRevision);
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= CONFLICT_RETRIES) throw err;
        // changed since (a status write, a label): read it from etcd and check again
        fromCache = false;
      }
    }
  }

  /**
   * Several bindings, each with bindPod's semantics, written in as few etcd transactions as can
   * hold them (a scheduler binding hundreds of pods a second pays one round trip for many). A
   * transaction is all or nothing: when one of its binds is refused, its binds are made one by one
   * with bindPod, so each gets its own answer. The answer for each binding, in order: the bound pod
   * or the error bindPod would have given.
   */
  async bindPods(bindings: readonly PodBinding[]): Promise<(ApiObject | Error)[]> {
    const answers: (ApiObject | Error)[] = new Array(bindings.length);
    const prepared: { index: number; binding: Awaited<ReturnType<ApiHandlers['prepareBinding']>> }[] = [];
    await Promise.all(
      bindings.map(async (binding, index) => {
        try {
          prepared.push({
            index,
            binding: await this.prepareBinding(binding, binding.seenResourceVersion !== undefined),
          });
        } catch (err) {
          answers[index] = err instanceof Error ? err : new Error(String(err));
        }
      }),
    );
    for (let from = 0; from < prepared.length; from += MAX_WRITES_PER_TRANSACTION) {
      const chunk = prepared.slice(from, from + MAX_WRITES_PER_TRANSACTION);
      try {
        const written = await this.store.transact(
          chunk.map(({ binding }) => ({
            type: 'update' as const,
            key: binding.key,
            value: binding.bytes,
            expectedModRevision: binding.revision,
          })),
        );
        chunk.forEach(({ index, binding }, i) => (answers[index] = binding.written(written[i]!.modRevision)));
      } catch (err) {
        // one bind refused (or two of one pod): each on its own
        if (
          !(err instanceof ConflictError) &&
          !(err instanceof NotFoundError) &&
          !(err instanceof InvalidArgumentError)
        )
          throw err;
        await Promise.all(
          chunk.map(async ({ index }) => {
            try {
              answers[index] = await this.bindPod(bindings[index]!);
            } catch (each) {
              answers[index] = each instanceof Error ? each : new Error(String(each));
            }
          }),
        );
      }
    }
    return answers;
  }

  /** Reads the pod, checks that it may be bound, and encodes it bound: one bind's write, unmade. */
  private async prepareBinding(
    binding: PodBinding,
    fromCache: boolean,
  ): Promise<{ key: ObjectKey; bytes: Uint8Array; revision: bigint; written(revision: bigint): ApiObject }> {
    const info = strategyOf('Pod').info;
    const key = this.keyOf(info, binding.namespace, binding.name);
    const action = `bind ${describeObject(info, key.namespace, binding.name)} to node ${binding.nodeName}`;
    const badNode = checkDns1123Subdomain(binding.nodeName);
    if (badNode !== undefined)
      throw new InvalidArgumentError(
        `${action}: target.name: "${binding.nodeName}" ${badNode}`,
        'target.name',
      );
    const minRevision =
      fromCache && binding.seenResourceVersion !== undefined
        ? parseRevision(binding.seenResourceVersion, 'resourceVersion', action)
        : undefined;
    let stored: StoredValue;
    try {
      stored = await this.store.get(key, minRevision !== undefined ? { minRevision } : {});
    } catch (err) {
      if (err instanceof NotFoundError) throw new NotFoundError(`${action}: the pod is gone`, { cause: err });
      throw err;
    }
    const pod = this.decode(info, stored) as Pod;
    if (binding.uid && pod.metadata.uid !== binding.uid)
      throw new ConflictError(
        `${action}: precondition failed: uid is ${pod.metadata.uid}, not ${binding.uid} (the pod was deleted and re-created)`,
      );
    if (pod.spec.nodeName)
      throw new ConflictError(
        `${action}: pod ${binding.name} is already assigned to node "${pod.spec.nodeName}"`,
      );
    if (pod.metadata.deletionTimestamp)
      throw new ConflictError(
        `${action}: pod ${binding.name} is being deleted, cannot be assigned to a host`,
      );
    const now = rfc3339Seconds(this.now());
    const conditions = (pod.status?.conditions ?? []).filter((c) => c.type !== 'PodScheduled');
    const bound: Pod = {
      ...pod,
      metadata: { ...pod.metadata },
      spec: { ...pod.spec, nodeName: binding.nodeName },
      status: {
        ...pod.status,
        conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: now }, ...conditions],
      },
    };
    delete bound.metadata.resourceVersion;
    if (bound.status?.nominatedNodeName !== undefined) delete bound.status.nominatedNodeName;
    const bytes = this.encode(bound, action);
    return {
      key,
      bytes,
      revision: stored.modRevision,
      written: (revision) => {
        bound.metadata.resourceVersion = revision.toString();
        return ApiObject.fromStored(info, bytes, bound.metadata.resourceVersion, bound);
      },
    };
  }

  async delete(
    kind: string,
    namespace: string,
    name: string,
    options: DeleteOptions = {},
  ): Promise<ApiObject> {
    const strategy = strategyOf(kind);
    const info = strategy.info;
    const key = this.keyOf(info, namespace, name);
    const action = `delete ${describeObject(info, key.namespace, name)}`;
    this.refuseKeptBelowTheApi(strategy, key.namespace, name, action);
    if (strategy.systemObjects?.some((object) => object.metadata.name === name)) {
      throw new FailedPreconditionError(
        `${action}: the system ${info.singular} "${name}" may not be deleted`,
      );
    }
    const grace = options.gracePeriodSeconds;
    if (grace !== undefined && (!Number.isInteger(grace) || grace < 0)) {
      throw new InvalidArgumentError(
        `${action}: gracePeriodSeconds must be a whole number ≥ 0, got ${grace}`,
        'gracePeriodSeconds',
      );
    }
    const policy = options.propagationPolicy;
    if (policy !== undefined && !PROPAGATION_POLICIES.includes(policy)) {
      throw new InvalidArgumentError(
        `${action}: propagationPolicy "${policy}" is not one of ${PROPAGATION_POLICIES.join(', ')}`,
        'propagationPolicy',
      );
    }
    const pinned = options.preconditions?.resourceVersion || undefined;
    if (pinned !== undefined) parseRevision(pinned, 'preconditions.resourceVersion', action);
    const uid = options.preconditions?.uid;
    const sameUid = (current: KubeObject): void => {
      if (uid && uid !== current.metadata.uid) {
        throw new ConflictError(
          `${action}: precondition failed: uid is ${current.metadata.uid}, not ${uid} (the object was deleted and re-created)`,
        );
      }
    };
    return this.readModifyWrite(
      info,
      key,
      action,
      pinned,
      async (current, revision) => {
        const plan = planDelete(current, strategy, grace, this.now(), policy);
        if (plan.action === 'unchanged') return ApiObject.fromObject(info, current);
        if (options.dryRun) return ApiObject.fromObject(info, plan.action === 'mark' ? plan.object : current);
        if (plan.action === 'remove')
          return this.apiObject(info, await this.removeStored(strategy, key, current, revision, action));
        const bytes = this.encode(plan.object, action);
        const stored = await this.store.update(key, bytes, revision);
        plan.object.metadata.resourceVersion = stored.modRevision.toString();
        if (info.kind === 'Namespace') this.options.onNamespaceTerminating?.(name);
        return ApiObject.fromStored(info, bytes, plan.object.metadata.resourceVersion, plan.object);
      },
      sameUid,
    );
  }

  /**
   * Removes a Terminating namespace (the namespace controller's last step, once it is empty).
   * ConflictError when it changed since `resourceVersion` was read.
   */
  async removeTerminatedNamespace(name: string, resourceVersion: string): Promise<void> {
    const action = `delete namespace ${name}`;
    await this.store.delete(
      { resource: 'namespaces', name },
      parseRevision(resourceVersion, 'resourceVersion', action),
    );
  }

  async list(kind: string, options: ListOptions = {}): Promise<ListResult> {
    const strategy = strategyOf(kind);
    const info = strategy.info;
    const namespace = info.namespaced && options.namespace ? options.namespace : undefined;
    const limit = options.limit ?? 0;
    if (!Number.isInteger(limit) || limit < 0) {
      throw new InvalidArgumentError(
        `list ${info.plural}: limit must be a whole number ≥ 0, got ${limit}`,
        'limit',
      );
    }
    const filter = compileObjectFilter(strategy, options.labelSelector ?? '', options.fieldSelector ?? '');
    const items: ApiObject[] = [];
    let token = options.continue || undefined;
    if (options.resourceVersion) {
      const action = `list ${info.plural}`;
      const minRevision = parseRevision(options.resourceVersion, 'resourceVersion', action);
      if (limit !== 0 || token !== undefined) {
        throw new InvalidArgumentError(
          `${action}: resourceVersion "${options.resourceVersion}" reads a whole list from the watch cache; it does not go with limit or continue`,
          'resourceVersion',
        );
      }
      const all = await this.store.list(info.plural, {
        ...(namespace !== undefined ? { namespace } : {}),
        minRevision,
        ...indexHintOf(strategy, options.fieldSelector),
      });
      for (const stored of all.items) {
        // the cache's values: shared with its watchers, decoded and encoded once
        const object = this.watchedObject(info, stored);
        if (!filter || filter(object.object)) items.push(object);
      }
      return { items, resourceVersion: all.revision.toString() };
    }
    for (;;) {
      const want = limit === 0 ? undefined : limit - items.length;
      const page = await this.store.list(info.plural, {
        ...(namespace !== undefined ? { namespace } : {}),
        ...(want !== undefined ? { limit: want } : {}),
        ...(token !== undefined ? { continue: token } : {}),
      });
      for (const stored of page.items) {
        const object = this.apiObject(info, stored);
        if (!filter || filter(object.object)) items.push(object);
      }
      token = page.continue;
      // Without a filter one page is the answer; with one, pages are refilled up to the limit.
      if (!filter || token === undefined || (limit !== 0 && items.length >= limit)) {
        return {
          items,
          resourceVersion: page.revision.toString(),
          ...(token !== undefined ? { continue: token } : {}),
        };
      }
    }
  }

  /**
   * The changes after `resourceVersion` as an async iterable. With a selector, an object that
   * stops matching is delivered as DELETED and one that starts matching as ADDED (as Kubernetes
   * does); the set of matching objects at the start revision is read from the store for that.
   * Compacted history fails the iteration with GoneError.
   */
  async watch(kind: string, options: WatchOptions = {}): Promise<AsyncIterableIterator<WatchEvent>> {
    const strategy = strategyOf(kind);
    const info = strategy.info;
    const namespace = info.namespaced && options.namespace ? options.namespace : undefined;
    const action = `watch ${info.plural}`;
    const filter = compileObjectFilter(strategy, options.labelSelector ?? '', options.fieldSelector ?? '');
    const requested = options.resourceVersion ?? '';
    // Resolved before returning, so "from now" means from the moment the watch was opened.
    const afterRevision =
      requested === '' || requested === '0'
        ? await this.store.currentRevision()
        : parseRevision(requested, 'resourceVersion', action);
    const matching = filter ? await this.matchingAt(info, namespace, afterRevision, filter) : undefined;
    return this.watchFrom(info, namespace, afterRevision, filter, matching, options);
  }

  private watchFrom(
    info: KindInfo,
    namespace: string | undefined,
    afterRevision: bigint,
    filter: ObjectFilter | undefined,
    matching: Set<string> | undefined,
    options: WatchOptions,
  ): AsyncIterableIterator<WatchEvent> {
    const abort = new AbortController();
    const events = this.store
      .watch(info.plural, {
        ...(namespace !== undefined ? { namespace } : {}),
        afterRevision,
        signal: abort.signal,
        ...indexHintOf(strategyOf(info.kind), options.fieldSelector),
      })
      [Symbol.asyncIterator]();
    return new ApiWatch(
      events,
      abort,
      afterRevision,
      (event, revision, resumeFrom) => this.toWatchEvent(info, event, revision, resumeFrom, filter, matching),
      options.allowBookmarks === true ? this.bookmarkIntervalMs : undefined,
      options.signal,
    );
  }

  /**
   * What a watcher sees of `event`: undefined when its selector hides it. The event carries
   * `resumeFrom` (where a watch resumed from it starts), the object its revision.
   */
  private toWatchEvent(
    info: KindInfo,
    event: ObjectEvent,
    revision: bigint,
    resumeFrom: string,
    filter: ObjectFilter | undefined,
    matching: Set<string> | undefined,
  ): WatchEvent | undefined {
    const resourceVersion = resumeFrom;
    if (event.type === 'deleted') {
      const deletedAt = revision.toString();
      const object =
        event.item.value.length > 0
          ? this.watchedObject(info, event.item, deletedAt)
          : ApiObject.fromObject(info, {
              apiVersion: info.apiVersion,
              kind: info.kind,
              metadata: {
                name: event.item.key.name,
                ...(event.item.key.namespace ? { namespace: event.item.key.namespace } : {}),
                resourceVersion: deletedAt,
              },
            } as KubeObject);
      if (matching && !matching.delete(keyTextOf(event.item.key))) return undefined;
      return { type: 'DELETED', object, resourceVersion };
    }
    const object = this.watchedObject(info, event.item);
    if (!filter || !matching)
      return { type: event.type === 'added' ? 'ADDED' : 'MODIFIED', object, resourceVersion };
    const keyText = keyTextOf(event.item.key);
    const matchesNow = filter(object.object);
    const matchedBefore = matching.has(keyText);
    if (matchesNow) matching.add(keyText);
    else matching.delete(keyText);
    if (matchesNow && matchedBefore) return { type: 'MODIFIED', object, resourceVersion };
    if (matchesNow) return { type: 'ADDED', object, resourceVersion };
    if (matchedBefore) return { type: 'DELETED', object, resourceVersion };
    return undefined;
  }

  private async matchingAt(
    info: KindInfo,
    namespace: string | undefined,
    revision: bigint,
    filter: ObjectFilter,
  ): Promise<Set<string>> {
    const matching = new Set<string>();
    // unpaged: the watch cache rebuilds a recent revision from memory (CachedStore)
    const all = await this.store.list(info.plural, {
      ...(namespace !== undefined ? { namespace } : {}),
      revision,
    });
    for (const stored of all.items) {
      if (filter(this.decode(info, stored))) matching.add(`${stored.key.namespace ?? ''}/${stored.key.name}`);
    }
    return matching;
  }
}

type ObjectEvent = Exclude<StoreEvent, { type: 'progress' }>;

/** The key of a watch's set of matching objects. */
const keyTextOf = (key: ObjectKey): string => `${key.namespace ?? ''}/${key.name}`;

const writtenObjectKey = (key: ObjectKey): string => `${key.resource}/${keyTextOf(key)}`;

/** A status write of this process, under way or done (ApiHandlers.writtenObjects). */
interface WrittenObject {
  /** What the write stores. */
  bytes: Uint8Array;
  /** The revision it replaces (its compare-and-swap's). */
  after: bigint;
  /** What `bytes` hold, decoded (resourceVersion set once the revision is known). */
  object: KubeObject;
  /** The stored value, once written. */
  stored?: StoredValue;
}

/** Written objects remembered for the watch at most (a safety bound: most are taken at once). */
const MAX_WRITTEN_OBJECTS = 65_536;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

const WATCH_DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * One API watch over a store watch: each store event as the watcher sees it (`convert`; undefined
 * skips it), progress as bookmarks, and with `bookmarkIntervalMs` a bookmark whenever that long
 * passed without one. An iterator by hand rather than an async generator racing a timer: with a
 * thousand watchers each event went through five promise hand-offs per watcher (the generator's
 * resumption, the race, the yield), and every race left a reaction on the timer's promise until
 * it fired; here it is one.
 */
class ApiWatch implements AsyncIterableIterator<WatchEvent> {
  /** The last revision all of whose events were taken: bookmarks carry only these. */
  private lastRevision: bigint;
  /** The store watch's next() while it is outstanding. */
  private pending = false;
  private waiter:
    { resolve(result: IteratorResult<WatchEvent>): void; reject(err: unknown): void } | undefined;
  /** What came while no one waited (a bookmark took the waiter): handed out by the next next(). */
  private ready: IteratorResult<WatchEvent> | undefined;
  private failure: { error: unknown } | undefined;
  private bookmarkDue = false;
  private bookmarkTimer: NodeJS.Timeout | undefined;
  private finished = false;
  private readonly onOuterAbort = (): void => this.abort.abort();

  constructor(
    private readonly events: AsyncIterator<StoreEvent>,
    private readonly abort: AbortController,
    afterRevision: bigint,
    private readonly convert: (
      event: ObjectEvent,
      revision: bigint,
      resumeFrom: string,
    ) => WatchEvent | undefined,
    private readonly bookmarkIntervalMs: number | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.lastRevision = afterRevision;
    signal?.addEventListener('abort', this.onOuterAbort, { once: true });
    this.armBookmark();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.ready !== undefined) {
      const ready = this.ready;
      this.ready = undefined;
      return Promise.resolve(ready);
    }
    if (this.failure !== undefined) return Promise.reject(this.failure.error);
    if (this.finished) return Promise.resolve(WATCH_DONE);
    if (this.bookmarkDue) {
      this.bookmarkDue = false;
      this.armBookmark();
      return Promise.resolve({ done: false, value: this.bookmark() });
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.pull();
    });
  }

  async return(): Promise<IteratorResult<WatchEvent>> {
    this.finish();
    this.hand(WATCH_DONE);
    await this.events.return?.();
    return WATCH_DONE;
  }

  private pull(): void {
    if (this.pending || this.finished) return;
    this.pending = true;
    this.events.next().then(this.onEvent, this.onError);
  }

  private readonly onEvent = (result: IteratorResult<StoreEvent>): void => {
    this.pending = false;
    if (this.finished) return;
    if (result.done === true) {
      this.finish();
      this.hand(WATCH_DONE);
      return;
    }
    const event = result.value;
    let out: WatchEvent | undefined;
    if (event.type === 'progress') {
      this.lastRevision = event.revision;
      if (this.bookmarkIntervalMs !== undefined) out = this.bookmark();
    } else {
      const revision = event.type === 'deleted' ? event.revision : event.item.modRevision;
      // Resuming after a revision skips all of it, so until its last event has gone out the
      // point to resume from is the revision before (its events may then be sent again).
      const resumeFrom = event.lastOfRevision ? revision : revision - 1n;
      if (event.lastOfRevision) this.lastRevision = revision;
      out = this.convert(event, revision, resumeFrom.toString());
    }
    if (out === undefined) this.pull();
    else this.hand({ done: false, value: out });
  };

  private readonly onError = (error: unknown): void => {
    this.pending = false;
    if (this.finished) return;
    this.finish();
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter === undefined) this.failure = { error };
    else waiter.reject(error);
  };

  /** Gives `result` to the reader waiting, or keeps it for the next next(). */
  private hand(result: IteratorResult<WatchEvent>): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter !== undefined) waiter.resolve(result);
    else if (!result.done) this.ready = result;
  }

  private bookmark(): WatchEvent {
    return { type: 'BOOKMARK', resourceVersion: this.lastRevision.toString() };
  }

  private armBookmark(): void {
    if (this.bookmarkIntervalMs === undefined || this.finished) return;
    this.bookmarkTimer = setTimeout(() => {
      if (this.waiter === undefined) {
        this.bookmarkDue = true;
        return;
      }
      // the store watch's next() stays outstanding; the event it brings goes to the next reader
      this.hand({ done: false, value: this.bookmark() });
      this.armBookmark();
    }, this.bookmarkIntervalMs);
  }

  /** Lets go of the timer, the caller's signal and the store watch (its next() ends). */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.bookmarkTimer);
    this.signal?.removeEventListener('abort', this.onOuterAbort);
    this.abort.abort();
  }
}

/**
 * `kube-system/kube-dns`, as kubeadm's: the cluster DNS address reserved and listed like any
 * Service. Every node's agent answers at it (node-agent/dns); no pods back it, so it has no
 * selector and the data plane DNATs its port 53 to the node's own server.
 */
function clusterDNSService(clusterIP: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: CLUSTER_DNS_SERVICE.split('/')[1]!,
      namespace: CLUSTER_DNS_SERVICE.split('/')[0]!,
      labels: {
        'k8s-app': 'kube-dns',
        'kubernetes.io/cluster-service': 'true',
        'kubernetes.io/name': 'skiff-dns',
      },
    },
    spec: {
      clusterIP,
      clusterIPs: [clusterIP],
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      ],
    },
  } as KubeObject;
}
