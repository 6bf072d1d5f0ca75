/**
 * ReplicaSet, Deployment, DaemonSet and Job: a selector that matches the pod template's labels,
 * a valid template, counts and rollout parameters, and the fields that are fixed after create.
 */
import type {
  DaemonSet,
  Deployment,
  IntOrString,
  Job,
  LabelSelector as LabelSelectorObject,
  PodTemplateSpec,
  ReplicaSet,
} from '../../../proto/gen/types.js';
import { labelSelectorFromObject } from '../selectors.js';
import { type DiffShape, firstDifference } from './diff.js';
import { requireAtLeast, requireOneOf, violation } from './field-violation.js';
import { validateAnnotations, validateLabels } from './meta.js';
import { validatePodSpec } from './pod.js';

function validateSelectorAndTemplate(
  selector: LabelSelectorObject | undefined,
  template: PodTemplateSpec | undefined,
  restartPolicies: readonly string[],
): void {
  if (selector === undefined)
    violation('spec.selector', 'required: the label selector of the pods this object manages');
  const parsed = labelSelectorFromObject(selector, 'spec.selector');
  if (parsed.empty)
    violation(
      'spec.selector',
      'must not be empty: an empty selector would select every pod in the namespace',
    );
  if (template === undefined) violation('spec.template', 'required: the pod template');
  validateLabels('spec.template.metadata.labels', template.metadata?.labels);
  validateAnnotations('spec.template.metadata.annotations', template.metadata?.annotations);
  if (!parsed.matches(template.metadata?.labels)) {
    violation(
      'spec.template.metadata.labels',
      `do not match spec.selector "${parsed.toString()}": the object would never see its own pods`,
    );
  }
  validatePodSpec('spec.template.spec', template.spec ?? {}, { restartPolicies });
}

/** An IntOrString count: a non-negative integer or a percentage "N%". */
function validateIntOrPercent(path: string, value: IntOrString | undefined): void {
  if (value === undefined) return;
  if (typeof value === 'number') {
    requireAtLeast(path, value, 0);
    return;
  }
  const match = /^(\d+)%$/.exec(value);
  if (match === null) violation(path, `"${value}" must be an integer or a percentage such as "25%"`);
  if (Number(match[1]) > 100) violation(path, `"${value}" must not be more than 100%`);
}

function isZero(value: IntOrString | undefined): boolean {
  return value === undefined || value === 0 || value === '0%';
}

function requireUnchanged(path: string, value: unknown, old: unknown, why: string, shape?: DiffShape): void {
  const changed = firstDifference(value, old, path, shape);
  if (changed !== undefined) violation(changed, `field is immutable: ${why}`);
}

const ALWAYS = ['Always'];

export function validateReplicaSet(rs: ReplicaSet, old: ReplicaSet | undefined): void {
  requireAtLeast('spec.replicas', rs.spec.replicas, 0);
  requireAtLeast('spec.minReadySeconds', rs.spec.minReadySeconds, 0);
  validateSelectorAndTemplate(rs.spec.selector, rs.spec.template, ALWAYS);
  if (old)
    requireUnchanged(
      'spec.selector',
      rs.spec.selector,
      old.spec.selector,
      'a ReplicaSet selector cannot change',
      'LabelSelector',
    );
}

/**
 * A Deployment's `strategy` or a DaemonSet's `updateStrategy`: RollingUpdate or the kind's other
 * type (Recreate, OnDelete), which takes no rollingUpdate parameters.
 */
function validateUpdateStrategy(
  path: string,
  strategy:
    { type?: string; rollingUpdate?: { maxUnavailable?: IntOrString; maxSurge?: IntOrString } } | undefined,
  otherType: 'Recreate' | 'OnDelete',
): void {
  requireOneOf(`${path}.type`, strategy?.type, ['RollingUpdate', otherType]);
  const rolling = strategy?.rollingUpdate;
  if (strategy?.type === otherType && rolling !== undefined) {
    violation(`${path}.rollingUpdate`, `may not be set when the type is ${otherType}`);
  }
  if (rolling) {
    validateIntOrPercent(`${path}.rollingUpdate.maxUnavailable`, rolling.maxUnavailable);
    validateIntOrPercent(`${path}.rollingUpdate.maxSurge`, rolling.maxSurge);
    if (isZero(rolling.maxUnavailable) && isZero(rolling.maxSurge)) {
      violation(
        `${path}.rollingUpdate.maxUnavailable`,
        'may not be 0 when maxSurge is 0: the rollout could never make progress',
      );
    }
  }
}

export function validateDeployment(deployment: Deployment, old: Deployment | undefined): void {
  const spec = deployment.spec;
  requireAtLeast('spec.replicas', spec.replicas, 0);
  requireAtLeast('spec.minReadySeconds', spec.minReadySeconds, 0);
  requireAtLeast('spec.revisionHistoryLimit', spec.revisionHistoryLimit, 0);
  if (
    spec.progressDeadlineSeconds !== undefined &&
    spec.progressDeadlineSeconds <= (spec.minReadySeconds ?? 0)
  ) {
    violation(
      'spec.progressDeadlineSeconds',
      `must be more than minReadySeconds (${spec.minReadySeconds ?? 0})`,
    );
  }
  validateUpdateStrategy('spec.strategy', spec.strategy, 'Recreate');
  validateSelectorAndTemplate(spec.selector, spec.template, ALWAYS);
  if (old)
    requireUnchanged(
      'spec.selector',
      spec.selector,
      old.spec.selector,
      'a Deployment selector cannot change; create a new Deployment',
      'LabelSelector',
    );
}

export function validateDaemonSet(ds: DaemonSet, old: DaemonSet | undefined): void {
  const spec = ds.spec;
  requireAtLeast('spec.minReadySeconds', spec.minReadySeconds, 0);
  requireAtLeast('spec.revisionHistoryLimit', spec.revisionHistoryLimit, 0);
  validateUpdateStrategy('spec.updateStrategy', spec.updateStrategy, 'OnDelete');
  validateSelectorAndTemplate(spec.selector, spec.template, ALWAYS);
  if (old)
    requireUnchanged(
      'spec.selector',
      spec.selector,
      old.spec.selector,
      'a DaemonSet selector cannot change',
      'LabelSelector',
    );
}

export function validateJob(job: Job, old: Job | undefined): void {
  const spec = job.spec;
  requireAtLeast('spec.parallelism', spec.parallelism, 0);
  requireAtLeast('spec.completions', spec.completions, 0);
  requireAtLeast('spec.backoffLimit', spec.backoffLimit, 0);
  requireAtLeast('spec.activeDeadlineSeconds', spec.activeDeadlineSeconds, 1);
  requireAtLeast('spec.ttlSecondsAfterFinished', spec.ttlSecondsAfterFinished, 0);
  requireOneOf('spec.completionMode', spec.completionMode, ['NonIndexed', 'Indexed']);
  if (spec.completionMode === 'Indexed' && spec.completions === undefined) {
    violation('spec.completions', 'required when completionMode is Indexed');
  }
  if (spec.template === undefined) violation('spec.template', 'required: the pod template');
  const restartPolicy = spec.template.spec?.restartPolicy;
  if (restartPolicy !== 'OnFailure' && restartPolicy !== 'Never') {
    violation(
      'spec.template.spec.restartPolicy',
      `unsupported value "${restartPolicy ?? ''}": a Job's pods must use OnFailure or Never (a pod that always restarts never completes)`,
    );
  }
  // Without manualSelector the job controller selects its pods by their owner; a selector given
  // anyway must still match the template, or the job could not see its own pods.
  if (spec.selector !== undefined) {
    validateSelectorAndTemplate(spec.selector, spec.template, ['OnFailure', 'Never']);
  } else {
    if (spec.manualSelector) violation('spec.selector', 'required when manualSelector is true');
    validateLabels('spec.template.metadata.labels', spec.template.metadata?.labels);
    validateAnnotations('spec.template.metadata.annotations', spec.template.metadata?.annotations);
    validatePodSpec('spec.template.spec', spec.template.spec ?? {}, {
      restartPolicies: ['OnFailure', 'Never'],
    });
  }
  if (old) {
    const why = 'a Job runs the pods it was created with; create a new Job';
    requireUnchanged('spec.selector', spec.selector, old.spec.selector, why, 'LabelSelector');
    requireUnchanged('spec.completions', spec.completions, old.spec.completions, why);
    requireUnchanged('spec.completionMode', spec.completionMode, old.spec.completionMode, why);
    requireUnchanged('spec.template', spec.template, old.spec.template, why, 'PodTemplateSpec');
  }
}
