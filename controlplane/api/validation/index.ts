/**
 * Validation of API objects, per kind, as the Kubernetes API server does it: called after
 * defaulting on every create (`old` undefined) and update (`old` the stored object). Pure: no I/O,
 * no clock.
 *
 * The first problem found is thrown as an InvalidArgumentError whose `field` is the path of the
 * offending field ("spec.template.spec.containers[0].image") and whose message says which object,
 * which field, and what is wrong.
 */
import { InvalidArgumentError } from '../../../proto/errors.js';
import type { KubeObject } from '../../../proto/gen/types.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { validateEvent, validateNamespace, validateNode } from './cluster.js';
import { validateConfigMap, validateSecret } from './config.js';
import { FieldViolation, violation } from './field-violation.js';
import { type NameRule, validateMetaUpdate, validateObjectMeta } from './meta.js';
import { checkDns1035Label, checkDns1123Label, checkDns1123Subdomain } from './names.js';
import { validatePodSpec, validatePodSpecUpdate, validatePodStatus } from './pod.js';
import { validateEndpoints, validateService } from './service.js';
import { validateDaemonSet, validateDeployment, validateJob, validateReplicaSet } from './workloads.js';

/** Which names each kind takes, as in Kubernetes. */
const NAME_RULES: Record<KubeObject['kind'], NameRule> = {
  Namespace: checkDns1123Label,
  Service: checkDns1035Label,
  Node: checkDns1123Subdomain,
  Pod: checkDns1123Subdomain,
  ReplicaSet: checkDns1123Subdomain,
  Deployment: checkDns1123Subdomain,
  DaemonSet: checkDns1123Subdomain,
  Job: checkDns1123Subdomain,
  Endpoints: checkDns1123Subdomain,
  ConfigMap: checkDns1123Subdomain,
  Secret: checkDns1123Subdomain,
  Event: checkDns1123Subdomain,
};

function describe(obj: KubeObject): string {
  const name = obj.metadata?.name || obj.metadata?.generateName || '<no name>';
  return obj.metadata?.namespace
    ? `${obj.kind} "${obj.metadata.namespace}/${name}"`
    : `${obj.kind} "${name}"`;
}

/** Throws InvalidArgumentError naming the field path of the first problem in `obj`. */
export function validateObject(obj: KubeObject, old?: KubeObject): void {
  try {
    validate(obj, old);
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

function validate(obj: KubeObject, old: KubeObject | undefined): void {
  const info = kindInfoOf(obj.kind);
  if (obj.metadata === undefined) violation('metadata', 'required');
  if (old !== undefined && old.kind !== obj.kind)
    violation('kind', `field is immutable: was ${old.kind}, got ${obj.kind}`);
  validateObjectMeta(obj.metadata, {
    kind: obj.kind,
    namespaced: info.namespaced,
    nameRule: NAME_RULES[obj.kind],
  });
  if (old !== undefined) validateMetaUpdate(obj.metadata, old.metadata);
  switch (obj.kind) {
    case 'Pod':
      if (obj.spec === undefined) violation('spec', 'required');
      validatePodSpec('spec', obj.spec);
      validatePodStatus(obj.status);
      if (old?.kind === 'Pod') validatePodSpecUpdate(obj.spec, old.spec);
      return;
    case 'ReplicaSet':
      return validateReplicaSet(obj, old?.kind === 'ReplicaSet' ? old : undefined);
    case 'Deployment':
      return validateDeployment(obj, old?.kind === 'Deployment' ? old : undefined);
    case 'DaemonSet':
      return validateDaemonSet(obj, old?.kind === 'DaemonSet' ? old : undefined);
    case 'Job':
      return validateJob(obj, old?.kind === 'Job' ? old : undefined);
    case 'Service':
      return validateService(obj, old?.kind === 'Service' ? old : undefined);
    case 'Endpoints':
      return validateEndpoints(obj);
    case 'ConfigMap':
      return validateConfigMap(obj, old?.kind === 'ConfigMap' ? old : undefined);
    case 'Secret':
      return validateSecret(obj, old?.kind === 'Secret' ? old : undefined);
    case 'Namespace':
      return validateNamespace(obj);
    case 'Node':
      return validateNode(obj);
    case 'Event':
      return validateEvent(obj);
  }
}
