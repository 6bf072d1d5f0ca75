/**
 * The kind strategies, one per kind, registered here and nowhere else: the type below makes a
 * kind declared in proto/kinds.ts without a strategy a compile error. Adding a kind is its message
 * in proto/skiff/v1, its entry in proto/kinds.ts (names, scope, printer columns) and its strategy.
 *
 * Also the two generic steps every write takes through the strategy: defaulting and validation.
 */
import { InvalidArgumentError } from '../../../proto/errors.js';
import type { KubeObject, KubeObjectByKind } from '../../../proto/gen/types.js';
import { KINDS, kindInfoOf, type KindName } from '../../../proto/kinds.js';
import { copyData } from '../defaulting.js';
import { FieldViolation, violation } from '../validation/field-violation.js';
import { validateMetaUpdate, validateObjectMeta } from '../validation/meta.js';
import { daemonSetStrategy, deploymentStrategy, replicaSetStrategy } from './apps.js';
import { cronJobStrategy, jobStrategy } from './batch.js';
import { leaseStrategy } from './coordination.js';
import {
  configMapStrategy,
  endpointsStrategy,
  eventStrategy,
  namespaceStrategy,
  nodeStrategy,
  podStrategy,
  secretStrategy,
  serviceAccountStrategy,
  serviceStrategy,
} from './core.js';
import { endpointSliceStrategy } from './discovery.js';
import { priorityClassStrategy } from './scheduling.js';
import type { KindStrategy } from './strategy.js';

export type { AdmissionContext, DefaultTolerationSeconds, KindStrategy } from './strategy.js';

const STRATEGIES: { readonly [K in KindName]: KindStrategy<KubeObjectByKind[K]> } = {
  Namespace: namespaceStrategy,
  Node: nodeStrategy,
  Pod: podStrategy,
  ReplicaSet: replicaSetStrategy,
  Deployment: deploymentStrategy,
  DaemonSet: daemonSetStrategy,
  Job: jobStrategy,
  CronJob: cronJobStrategy,
  Service: serviceStrategy,
  Endpoints: endpointsStrategy,
  EndpointSlice: endpointSliceStrategy,
  ConfigMap: configMapStrategy,
  Secret: secretStrategy,
  Event: eventStrategy,
  Lease: leaseStrategy,
  PriorityClass: priorityClassStrategy,
  ServiceAccount: serviceAccountStrategy,
};

/** The strategy of `kind`; InvalidArgumentError (field `kind`) for a kind skiff does not serve. */
export function strategyOf(kind: string): KindStrategy {
  const info = kindInfoOf(kind);
  return STRATEGIES[info.kind] as unknown as KindStrategy;
}

/** Every strategy, in the order of proto/kinds.ts. */
export function allStrategies(): KindStrategy[] {
  return KINDS.map((info) => strategyOf(info.kind));
}

/** A defaulted copy of `obj`; `obj` is left as it was. */
export function defaultObject<T extends KubeObject>(obj: T): T {
  return defaultObjectInPlace(copyData(obj));
}

/**
 * Defaults `obj` itself and returns it. Only for an object nothing else references (one just
 * decoded from a request): its fields, nested ones included, may be replaced or changed.
 */
export function defaultObjectInPlace<T extends KubeObject>(obj: T): T {
  strategyOf(obj.kind).defaults?.(obj);
  return obj;
}

function describe(obj: KubeObject): string {
  const name = obj.metadata?.name || obj.metadata?.generateName || '<no name>';
  return obj.metadata?.namespace
    ? `${obj.kind} "${obj.metadata.namespace}/${name}"`
    : `${obj.kind} "${name}"`;
}

/**
 * Validation as the Kubernetes API server does it: after defaulting, on every create (`old`
 * undefined) and update (`old` the stored object). Pure: no I/O, no clock. Throws an
 * InvalidArgumentError whose `field` is the path of the first offending field
 * ("spec.template.spec.containers[0].image") and whose message names the object and the problem.
 */
export function validateObject(obj: KubeObject, old?: KubeObject): void {
  withObjectInErrors(obj, () => {
    const strategy = strategyOf(obj.kind);
    if (obj.metadata === undefined) violation('metadata', 'required');
    if (old !== undefined && old.kind !== obj.kind)
      violation('kind', `field is immutable: was ${old.kind}, got ${obj.kind}`);
    validateObjectMeta(obj.metadata, {
      kind: obj.kind,
      namespaced: strategy.info.namespaced,
      nameRule: strategy.nameRule,
    });
    if (old !== undefined) validateMetaUpdate(obj.metadata, old.metadata);
    strategy.validate?.(obj, old);
  });
}

/**
 * Validates what UpdateStatus would store: `obj` is `old` (stored, so valid when written) with
 * another status (prepareStatusUpdate), so only the status is checked where the kind's strategy
 * says how (KindStrategy.validateStatus); otherwise the whole object, as validateObject does.
 */
export function validateStatusUpdate(obj: KubeObject, old: KubeObject): void {
  const strategy = strategyOf(obj.kind);
  if (strategy.validateStatus === undefined || old.kind !== obj.kind) {
    validateObject(obj, old);
    return;
  }
  withObjectInErrors(obj, () => strategy.validateStatus!(obj));
}

/** Runs a check, its FieldViolation (or a parser's InvalidArgumentError) saying which object. */
function withObjectInErrors(obj: KubeObject, check: () => void): void {
  try {
    check();
  } catch (err) {
    if (err instanceof FieldViolation) {
      throw new InvalidArgumentError(`validate ${describe(obj)}: ${err.message}`, err.path);
    }
    if (err instanceof InvalidArgumentError) {
      // Quantity and selector parsers throw the vocabulary error themselves; add the object.
      throw new InvalidArgumentError(`validate ${describe(obj)}: ${err.message}`, err.field, { cause: err });
    }
    throw err;
  }
}
