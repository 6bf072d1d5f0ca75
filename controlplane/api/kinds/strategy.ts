/**
 * A kind's strategy: everything the API server does differently for one kind, in one object, as
 * Kubernetes' registry strategies are. The handlers (../handlers.ts) are generic and ask the
 * strategy; index.ts registers one per kind, and the compiler refuses a kind without one.
 *
 * What a kind shares with clients (names, short names, scope, printer columns) is declared in
 * proto/kinds.ts, which the CLI reads too; what the server alone decides is here.
 */
import type { KubeObject } from '../../../proto/gen/types.js';
import type { KindInfo, KindName } from '../../../proto/kinds.js';
import type { NameRule } from '../validation/meta.js';
import type { Reservation } from '../reservations.js';
import type { ReservationLookup, ServiceRanges } from '../service-allocation.js';

/** Reads the admission checks of a kind may make against other objects. */
/** Seconds a new pod tolerates its node being not Ready or unreachable (DefaultTolerationSeconds). */
export interface DefaultTolerationSeconds {
  notReady?: number;
  unreachable?: number;
}

export interface AdmissionContext {
  /** Where Services' ClusterIPs and node ports come from. */
  readonly serviceRanges: ServiceRanges;
  /** Who holds what (reservations.ts): what an allocation reads. */
  readonly reservations: ReservationLookup;
  /** What a new pod that says nothing else tolerates of its node's troubles (default 300 s each). */
  readonly defaultTolerationSeconds: Required<DefaultTolerationSeconds>;
  /** Every object of `kind` (all namespaces), read from etcd: for checks that must see every write. */
  list(kind: KindName): Promise<KubeObject[]>;
  /**
   * The same from the watch cache, which may lag a write by moments (as Kubernetes' admission
   * plugins read their informers): for what every pod's create reads.
   */
  cachedList(kind: KindName): Promise<KubeObject[]>;
  /** One object, or undefined when there is none (namespace '' for cluster-scoped kinds). */
  get(kind: KindName, namespace: string, name: string): Promise<KubeObject | undefined>;
}

export interface KindStrategy<T extends KubeObject = KubeObject> {
  readonly info: KindInfo;
  /** The names objects of this kind may take (DNS label, subdomain, ...). */
  readonly nameRule: NameRule;
  /** Fills in what the client left out, in place; idempotent. */
  readonly defaults?: (object: T) => void;
  /**
   * Throws a FieldViolation at the first problem; metadata is checked before. `old` is the stored
   * object on update.
   */
  readonly validate?: (object: T, old: T | undefined) => void;
  /**
   * Throws a FieldViolation at the first problem of an UpdateStatus's object, whose metadata and
   * spec are the stored object's (valid when they were written): its status alone, as Kubernetes'
   * status strategies validate. Absent: `validate` checks the whole object.
   */
  readonly validateStatus?: (object: T) => void;
  /**
   * Whether the kind has a status written through UpdateStatus only (an Update keeps the stored
   * status). Kinds without one refuse UpdateStatus.
   */
  readonly statusSubresource: boolean;
  /**
   * The object as created, given what the server assigned (name, uid, creationTimestamp): what a
   * kind derives from them (a Job's generated selector). Returns a new object; validation follows.
   */
  readonly prepareForCreate?: (object: T) => T;
  /**
   * On update, before validation, in place: what the object keeps of the stored one when the client
   * left it out (a Service's ClusterIP and node ports).
   */
  readonly prepareForUpdate?: (object: T, old: T) => void;
  /**
   * Values the object holds exclusively across the cluster (a Service's ClusterIP and node ports):
   * taken and released in the same transaction as the object's own write (reservations.ts).
   */
  readonly reservations?: (object: T) => Reservation[];
  /** The status an object starts with (what a client sends on create is dropped). */
  readonly initialStatus?: (object: T) => unknown;
  /** Fields a field selector may name, beyond metadata.name and metadata.namespace. */
  readonly selectableFields?: Readonly<Record<string, (object: T) => string>>;
  /** Seconds a delete leaves the object marked before it goes (a bound pod's grace period). */
  readonly deleteGraceSeconds?: (object: T, requested: number | undefined) => number;
  /**
   * Delete only marks the object (given its deletionTimestamp); a controller removes it once it
   * has done its work (a Namespace stays Terminating until it is empty).
   */
  readonly markOnDelete?: (object: T, deletionTimestamp: string) => T;
  /** Objects the API server keeps: created at start-up when missing, and never deleted. */
  readonly systemObjects?: readonly T[];
  /**
   * Objects the API server creates with each object of this kind once it is stored, and at
   * start-up for stored objects that lack them: a Namespace's `default` ServiceAccount. They are
   * ordinary objects afterwards (they may be deleted; a namespace's go with it); one that exists
   * already is left as it is.
   */
  readonly companions?: (object: T) => readonly KubeObject[];
  /**
   * Objects whose keys hold state a mechanism below the API keeps (the leader election's Lease,
   * tied to an etcd lease): the API refuses to create, update or delete them, with the reason this
   * returns (undefined: an ordinary object).
   */
  readonly keptBelowTheApi?: (namespace: string, name: string) => string | undefined;
  /** Checks against other objects, after validation and before a create or update is written. */
  readonly admit?: (object: T, old: T | undefined, cluster: AdmissionContext) => Promise<void>;
}
