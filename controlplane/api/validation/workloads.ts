/**
 * ReplicaSet, Deployment, DaemonSet and Job: a selector that matches the pod template's labels,
 * a valid template, counts and rollout parameters, and the fields that are fixed after create.
 */
import type {
  CronJob,
  DaemonSet,
  Deployment,
  IntOrString,
  Job,
  JobSpec,
  LabelSelector as LabelSelectorObject,
  PodTemplateSpec,
  ReplicaSet,
} from '../../../proto/gen/types.js';
import { labelSelectorFromObject } from '../selectors.js';
import { type DiffShape, firstDifference } from './diff.js';
import {
  requireAtLeast,
  requireInRange,
  requireOneOf,
  requireSetOneOf,
  requireValid,
  violation,
} from './field-violation.js';
import { validateAnnotations, validateLabels } from './meta.js';
import { cronScheduleProblem } from './cron.js';
import { checkDns1123Subdomain, checkQualifiedName } from './names.js';
import { validatePodSpec } from './pod.js';

function validateSelectorAndTemplate(
  selector: LabelSelectorObject | undefined,
  template: PodTemplateSpec | undefined,
  restartPolicies: readonly string[],
  path = 'spec',
): void {
  if (selector === undefined)
    violation(`${path}.selector`, 'required: the label selector of the pods this object manages');
  const parsed = labelSelectorFromObject(selector, `${path}.selector`);
  if (parsed.empty)
    violation(
      `${path}.selector`,
      'must not be empty: an empty selector would select every pod in the namespace',
    );
  if (template === undefined) violation(`${path}.template`, 'required: the pod template');
  validateLabels(`${path}.template.metadata.labels`, template.metadata?.labels);
  validateAnnotations(`${path}.template.metadata.annotations`, template.metadata?.annotations);
  if (!parsed.matches(template.metadata?.labels)) {
    violation(
      `${path}.template.metadata.labels`,
      `do not match ${path}.selector "${parsed.toString()}": the object would never see its own pods`,
    );
  }
  validatePodSpec(`${path}.template.spec`, template.spec ?? {}, { restartPolicies });
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

/** Kubernetes' limits on the lists of a Job's failure and success policies. */
const MAX_FAILURE_POLICY_RULES = 20;
const MAX_EXIT_CODE_VALUES = 255;
const MAX_POD_CONDITION_PATTERNS = 20;
const MAX_SUCCESS_POLICY_RULES = 20;
const MAX_FAILED_INDEXES = 100_000;
const MAX_SUCCEEDED_INDEXES_LENGTH = 64 * 1024;
const MAX_MANAGED_BY_LENGTH = 63;

/**
 * podFailurePolicy: rules matched in order against a failed pod, by its containers' exit codes
 * or its conditions; the first that matches says what the failure does to the Job.
 */
function validatePodFailurePolicy(path: string, spec: JobSpec): void {
  const policy = spec.podFailurePolicy;
  if (policy === undefined) return;
  const at = `${path}.podFailurePolicy`;
  if (spec.template?.spec?.restartPolicy !== 'Never') {
    violation(
      `${path}.template.spec.restartPolicy`,
      `must be Never when podFailurePolicy is set (the policy judges pods that are not restarted), got "${spec.template?.spec?.restartPolicy ?? ''}"`,
    );
  }
  const rules = policy.rules ?? [];
  if (rules.length > MAX_FAILURE_POLICY_RULES)
    violation(`${at}.rules`, `must have at most ${MAX_FAILURE_POLICY_RULES} rules, got ${rules.length}`);
  const containerNames = new Set(
    [...(spec.template?.spec?.containers ?? []), ...(spec.template?.spec?.initContainers ?? [])].map(
      (c) => c.name,
    ),
  );
  rules.forEach((rule, i) => {
    const ruleAt = `${at}.rules[${i}]`;
    requireOneOf(`${ruleAt}.action`, rule.action, ['FailJob', 'FailIndex', 'Ignore', 'Count']);
    if (rule.action === 'FailIndex' && spec.backoffLimitPerIndex === undefined)
      violation(`${ruleAt}.action`, 'may be FailIndex only when backoffLimitPerIndex is set');
    const onConditions = rule.onPodConditions ?? [];
    if (rule.onExitCodes !== undefined && onConditions.length > 0)
      violation(ruleAt, 'may set only one of onExitCodes and onPodConditions');
    if (rule.onExitCodes === undefined && onConditions.length === 0)
      violation(ruleAt, 'must set one of onExitCodes and onPodConditions');
    const exitCodes = rule.onExitCodes;
    if (exitCodes !== undefined) {
      const codesAt = `${ruleAt}.onExitCodes`;
      if (exitCodes.containerName !== undefined && !containerNames.has(exitCodes.containerName)) {
        violation(
          `${codesAt}.containerName`,
          `"${exitCodes.containerName}" is not one of the pod template's containers or init containers`,
        );
      }
      requireOneOf(`${codesAt}.operator`, exitCodes.operator, ['In', 'NotIn']);
      const values = exitCodes.values;
      if (values.length > MAX_EXIT_CODE_VALUES)
        violation(
          `${codesAt}.values`,
          `must have at most ${MAX_EXIT_CODE_VALUES} values, got ${values.length}`,
        );
      values.forEach((value, j) => {
        if (exitCodes.operator === 'In' && value === 0)
          violation(`${codesAt}.values[${j}]`, 'must not be 0 for the In operator (0 is success)');
        if (j > 0 && value === values[j - 1])
          violation(`${codesAt}.values[${j}]`, `duplicate value ${value}`);
        if (j > 0 && value < values[j - 1]!)
          violation(`${codesAt}.values[${j}]`, 'must be in ascending order');
      });
    }
    if (onConditions.length > MAX_POD_CONDITION_PATTERNS) {
      violation(
        `${ruleAt}.onPodConditions`,
        `must have at most ${MAX_POD_CONDITION_PATTERNS} patterns, got ${onConditions.length}`,
      );
    }
    onConditions.forEach((pattern, j) => {
      const patternAt = `${ruleAt}.onPodConditions[${j}]`;
      requireValid(`${patternAt}.type`, pattern.type, checkQualifiedName(pattern.type));
      requireOneOf(`${patternAt}.status`, pattern.status, ['True', 'False', 'Unknown']);
    });
  });
}

/** "0-2,5,7-9": ascending, disjoint intervals of indexes below `completions`. Returns how many. */
function countSucceededIndexes(path: string, text: string, completions: number): number {
  if (text.length > MAX_SUCCEEDED_INDEXES_LENGTH)
    violation(path, `must be at most ${MAX_SUCCEEDED_INDEXES_LENGTH} characters`);
  let count = 0;
  let last = -1;
  for (const interval of text.split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(interval);
    if (match === null) violation(path, `"${text}" must be indexes and ranges such as "0-2,5"`);
    const first = Number(match[1]);
    const end = match[2] === undefined ? first : Number(match[2]);
    if (end < first) violation(path, `"${interval}" is a range that ends before it starts`);
    if (first <= last) violation(path, `"${text}" must list indexes in ascending order without overlaps`);
    if (end >= completions)
      violation(
        path,
        `index ${end} is out of range: the job has ${completions} completions (0 to ${completions - 1})`,
      );
    count += end - first + 1;
    last = end;
  }
  return count;
}

function validateSuccessPolicy(path: string, spec: JobSpec): void {
  const policy = spec.successPolicy;
  if (policy === undefined) return;
  const at = `${path}.successPolicy`;
  if (spec.completionMode !== 'Indexed') violation(at, 'may be set only when completionMode is Indexed');
  const rules = policy.rules ?? [];
  if (rules.length === 0) violation(`${at}.rules`, 'required: at least one rule');
  if (rules.length > MAX_SUCCESS_POLICY_RULES)
    violation(`${at}.rules`, `must have at most ${MAX_SUCCESS_POLICY_RULES} rules, got ${rules.length}`);
  const completions = spec.completions ?? 0;
  rules.forEach((rule, i) => {
    const ruleAt = `${at}.rules[${i}]`;
    if (rule.succeededIndexes === undefined && rule.succeededCount === undefined)
      violation(ruleAt, 'must set succeededIndexes, succeededCount or both');
    const indexes =
      rule.succeededIndexes === undefined
        ? undefined
        : countSucceededIndexes(`${ruleAt}.succeededIndexes`, rule.succeededIndexes, completions);
    if (rule.succeededCount !== undefined) {
      requireInRange(`${ruleAt}.succeededCount`, rule.succeededCount, 0, completions);
      if (indexes !== undefined && rule.succeededCount > indexes) {
        violation(
          `${ruleAt}.succeededCount`,
          `must be at most ${indexes}, the number of indexes in succeededIndexes, got ${rule.succeededCount}`,
        );
      }
    }
  });
}

/** managedBy: the controller that syncs the Job, a domain-prefixed path ("kueue.x-k8s.io/multikueue"). */
function validateManagedBy(path: string, managedBy: string | undefined): void {
  if (managedBy === undefined) return;
  if (managedBy.length > MAX_MANAGED_BY_LENGTH)
    violation(path, `must be no more than ${MAX_MANAGED_BY_LENGTH} characters, got ${managedBy.length}`);
  const slash = managedBy.indexOf('/');
  const domain = slash === -1 ? managedBy : managedBy.slice(0, slash);
  const rest = slash === -1 ? '' : managedBy.slice(slash + 1);
  if (slash === -1 || rest === '' || !/^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/.test(rest)) {
    violation(path, `"${managedBy}" must be a domain-prefixed path such as "example.com/my-controller"`);
  }
  const problem = checkDns1123Subdomain(domain);
  if (problem !== undefined) violation(path, `"${managedBy}": the domain part ${problem}`);
}

/** A Job spec at `path` (spec, or a CronJob's spec.jobTemplate.spec); `old` the stored one on update. */
function validateJobSpec(path: string, spec: JobSpec, old: JobSpec | undefined): void {
  requireAtLeast(`${path}.parallelism`, spec.parallelism, 0);
  requireAtLeast(`${path}.completions`, spec.completions, 0);
  requireAtLeast(`${path}.backoffLimit`, spec.backoffLimit, 0);
  requireAtLeast(`${path}.activeDeadlineSeconds`, spec.activeDeadlineSeconds, 1);
  requireAtLeast(`${path}.ttlSecondsAfterFinished`, spec.ttlSecondsAfterFinished, 0);
  requireOneOf(`${path}.completionMode`, spec.completionMode, ['NonIndexed', 'Indexed']);
  if (spec.completionMode === 'Indexed' && spec.completions === undefined) {
    violation(`${path}.completions`, 'required when completionMode is Indexed');
  }
  if (spec.backoffLimitPerIndex !== undefined) {
    requireAtLeast(`${path}.backoffLimitPerIndex`, spec.backoffLimitPerIndex, 0);
    if (spec.completionMode !== 'Indexed')
      violation(`${path}.backoffLimitPerIndex`, 'may be set only when completionMode is Indexed');
  }
  if (spec.maxFailedIndexes !== undefined) {
    if (spec.backoffLimitPerIndex === undefined)
      violation(`${path}.maxFailedIndexes`, 'may be set only when backoffLimitPerIndex is set');
    requireInRange(
      `${path}.maxFailedIndexes`,
      spec.maxFailedIndexes,
      0,
      Math.min(MAX_FAILED_INDEXES, spec.completions ?? MAX_FAILED_INDEXES),
    );
  }
  requireSetOneOf(`${path}.podReplacementPolicy`, spec.podReplacementPolicy, [
    'TerminatingOrFailed',
    'Failed',
  ]);
  if (
    spec.podFailurePolicy !== undefined &&
    spec.podReplacementPolicy !== undefined &&
    spec.podReplacementPolicy !== 'Failed'
  ) {
    violation(
      `${path}.podReplacementPolicy`,
      `must be Failed when podFailurePolicy is set, got ${spec.podReplacementPolicy}`,
    );
  }
  validateManagedBy(`${path}.managedBy`, spec.managedBy);
  if (spec.template === undefined) violation(`${path}.template`, 'required: the pod template');
  const restartPolicy = spec.template.spec?.restartPolicy;
  if (restartPolicy !== 'OnFailure' && restartPolicy !== 'Never') {
    violation(
      `${path}.template.spec.restartPolicy`,
      `unsupported value "${restartPolicy ?? ''}": a Job's pods must use OnFailure or Never (a pod that always restarts never completes)`,
    );
  }
  // Without manualSelector the API generated the selector at create (kinds/batch.ts); a selector
  // chosen with manualSelector must match the template, or the job could not see its own pods.
  if (spec.selector !== undefined) {
    validateSelectorAndTemplate(spec.selector, spec.template, ['OnFailure', 'Never'], path);
  } else {
    if (spec.manualSelector) violation(`${path}.selector`, 'required when manualSelector is true');
    validateLabels(`${path}.template.metadata.labels`, spec.template.metadata?.labels);
    validateAnnotations(`${path}.template.metadata.annotations`, spec.template.metadata?.annotations);
    validatePodSpec(`${path}.template.spec`, spec.template.spec ?? {}, {
      restartPolicies: ['OnFailure', 'Never'],
    });
  }
  validatePodFailurePolicy(path, spec);
  validateSuccessPolicy(path, spec);
  if (old) {
    const why = 'a Job runs the pods it was created with; create a new Job';
    requireUnchanged(`${path}.selector`, spec.selector, old.selector, why, 'LabelSelector');
    requireUnchanged(`${path}.completions`, spec.completions, old.completions, why);
    requireUnchanged(`${path}.completionMode`, spec.completionMode, old.completionMode, why);
    requireUnchanged(`${path}.template`, spec.template, old.template, why, 'PodTemplateSpec');
    requireUnchanged(
      `${path}.podFailurePolicy`,
      spec.podFailurePolicy,
      old.podFailurePolicy,
      why,
      'PodFailurePolicy',
    );
    requireUnchanged(`${path}.successPolicy`, spec.successPolicy, old.successPolicy, why, 'SuccessPolicy');
    requireUnchanged(
      `${path}.backoffLimitPerIndex`,
      spec.backoffLimitPerIndex,
      old.backoffLimitPerIndex,
      why,
    );
    requireUnchanged(
      `${path}.managedBy`,
      spec.managedBy,
      old.managedBy,
      'the controller that syncs a Job is fixed when it is created',
    );
  }
}

export function validateJob(job: Job, old: Job | undefined): void {
  validateJobSpec('spec', job.spec, old?.spec);
}

/** Kubernetes' limit: a CronJob's Jobs are named after it with an 11-character suffix. */
const MAX_CRONJOB_NAME_LENGTH = 52;

export function validateCronJob(cronJob: CronJob): void {
  const name = cronJob.metadata.name ?? '';
  if (name.length > MAX_CRONJOB_NAME_LENGTH) {
    violation(
      'metadata.name',
      `must be no more than ${MAX_CRONJOB_NAME_LENGTH} characters (its Jobs add an 11-character suffix), got ${name.length}`,
    );
  }
  const spec = cronJob.spec;
  const problem = cronScheduleProblem(spec.schedule);
  if (problem !== undefined) violation('spec.schedule', `"${spec.schedule}" ${problem}`);
  if (spec.timeZone !== undefined && !isTimeZone(spec.timeZone)) {
    violation(
      'spec.timeZone',
      `unknown time zone "${spec.timeZone}": use an IANA name such as "Europe/Berlin" or "Etc/UTC"`,
    );
  }
  requireAtLeast('spec.startingDeadlineSeconds', spec.startingDeadlineSeconds, 0);
  requireOneOf('spec.concurrencyPolicy', spec.concurrencyPolicy, ['Allow', 'Forbid', 'Replace']);
  requireAtLeast('spec.successfulJobsHistoryLimit', spec.successfulJobsHistoryLimit, 0);
  requireAtLeast('spec.failedJobsHistoryLimit', spec.failedJobsHistoryLimit, 0);
  validateLabels('spec.jobTemplate.metadata.labels', spec.jobTemplate.metadata?.labels);
  validateAnnotations('spec.jobTemplate.metadata.annotations', spec.jobTemplate.metadata?.annotations);
  if (spec.jobTemplate.spec === undefined)
    violation('spec.jobTemplate.spec', 'required: the spec of the Jobs to run');
  // Each run is a new Job, so the template may change at any time; only the Job rules apply.
  validateJobSpec('spec.jobTemplate.spec', spec.jobTemplate.spec, undefined);
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return name !== '' && !/^[+-]/.test(name);
  } catch {
    return false;
  }
}
