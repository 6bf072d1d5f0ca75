/**
 * ObjectMeta rules shared by every kind: names by the kind's naming rule, generateName,
 * namespace scope, labels, annotations (keys and total size), owner references and finalizers,
 * and the metadata that may not change on update.
 */
import type { ObjectMeta } from '../../../proto/gen/types.js';
import { requireNonEmpty, requireValid, violation } from './field-violation.js';
import { checkDns1123Label, checkLabelValue, checkQualifiedName } from './names.js';

/** Kubernetes' limit on the total size of an object's annotations (keys and values). */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;

export type NameRule = (name: string) => string | undefined;

export interface MetaRules {
  kind: string;
  namespaced: boolean;
  nameRule: NameRule;
}

export function validateLabels(path: string, labels: Record<string, string> | undefined): void {
  for (const [key, value] of Object.entries(labels ?? {})) {
    requireValid(`${path}[${key}]`, key, keyProblem(key));
    const problem = checkLabelValue(value);
    if (problem !== undefined) violation(`${path}[${key}]`, `value "${value}" ${problem}`);
  }
}

function keyProblem(key: string): string | undefined {
  const problem = checkQualifiedName(key);
  return problem === undefined ? undefined : `is not a valid key: ${problem}`;
}

export function validateAnnotations(path: string, annotations: Record<string, string> | undefined): void {
  let total = 0;
  for (const [key, value] of Object.entries(annotations ?? {})) {
    requireValid(`${path}[${key}]`, key, keyProblem(key));
    total += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (total > MAX_ANNOTATIONS_BYTES) {
    violation(path, `annotations total ${total} bytes, more than the limit of ${MAX_ANNOTATIONS_BYTES}`);
  }
}

export function validateObjectMeta(meta: ObjectMeta, rules: MetaRules): void {
  const name = requireNonEmpty(
    'metadata.name',
    meta.name,
    `a ${rules.kind} needs a name (or metadata.generateName)`,
  );
  requireValid('metadata.name', name, rules.nameRule(name));
  if (meta.generateName) {
    // The prefix gets a random suffix, so it need only be valid once that is appended.
    const prefix = meta.generateName;
    requireValid('metadata.generateName', prefix, rules.nameRule(`${prefix.replace(/-$/, '')}x`));
  }
  if (rules.namespaced) {
    if (meta.namespace) requireValid('metadata.namespace', meta.namespace, checkDns1123Label(meta.namespace));
  } else if (meta.namespace) {
    violation(
      'metadata.namespace',
      `"${meta.namespace}": a ${rules.kind} is cluster-scoped and has no namespace`,
    );
  }
  validateLabels('metadata.labels', meta.labels);
  validateAnnotations('metadata.annotations', meta.annotations);
  let controllers = 0;
  (meta.ownerReferences ?? []).forEach((owner, i) => {
    const at = `metadata.ownerReferences[${i}]`;
    requireNonEmpty(`${at}.apiVersion`, owner.apiVersion, 'the owner apiVersion');
    requireNonEmpty(`${at}.kind`, owner.kind, 'the owner kind');
    requireNonEmpty(`${at}.name`, owner.name, 'the owner name');
    requireNonEmpty(`${at}.uid`, owner.uid, 'the owner uid');
    if (owner.controller) controllers++;
    if (controllers > 1) violation(`${at}.controller`, 'only one owner reference may be the controller');
  });
  (meta.finalizers ?? []).forEach((finalizer, i) => {
    requireValid(`metadata.finalizers[${i}]`, finalizer, keyProblem(finalizer));
  });
  if (meta.deletionGracePeriodSeconds !== undefined && meta.deletionGracePeriodSeconds < 0) {
    violation('metadata.deletionGracePeriodSeconds', 'must not be negative');
  }
}

/** Identity fields that no update may change. */
export function validateMetaUpdate(meta: ObjectMeta, old: ObjectMeta): void {
  const immutable: (keyof ObjectMeta)[] = ['name', 'namespace', 'uid', 'creationTimestamp'];
  for (const field of immutable) {
    if (old[field] !== undefined && old[field] !== '' && meta[field] !== old[field]) {
      violation(
        `metadata.${field}`,
        `field is immutable: was "${String(old[field])}", got "${String(meta[field] ?? '')}"`,
      );
    }
  }
}
