/** Strategies of the batch/v1 kinds. */
import { isDeepStrictEqual } from 'node:util';
import type { CronJob, Job } from '../../../proto/gen/types.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { defaultCronJob, defaultJob } from '../defaulting.js';
import { violation } from '../validation/field-violation.js';
import { checkDns1123Subdomain } from '../validation/names.js';
import { validateCronJob, validateJob } from '../validation/workloads.js';
import type { KindStrategy } from './strategy.js';

export const jobStrategy: KindStrategy<Job> = {
  info: kindInfoOf('Job'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultJob,
  prepareForCreate: withGeneratedSelector,
  validate: validateJobWithSelector,
  statusSubresource: true,
};

export const cronJobStrategy: KindStrategy<CronJob> = {
  info: kindInfoOf('CronJob'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultCronJob,
  validate: validateCronJob,
  statusSubresource: true,
};

/** The label naming the Job that owns a pod, by uid: the selector Kubernetes generates. */
export const JOB_CONTROLLER_UID_LABEL = 'batch.kubernetes.io/controller-uid';
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';
/** The labels' older names, which Kubernetes still sets beside them. */
const LEGACY_CONTROLLER_UID_LABEL = 'controller-uid';
const LEGACY_JOB_NAME_LABEL = 'job-name';

/** The selector a Job selects its pods by unless manualSelector is true. */
export function generatedJobSelector(uid: string): { matchLabels: Record<string, string> } {
  return { matchLabels: { [JOB_CONTROLLER_UID_LABEL]: uid } };
}

/**
 * As Kubernetes' Job strategy at create: unless `manualSelector` is true, the Job selects its pods
 * by its own uid, which no other Job shares, and its template carries that label (and the Job's
 * name). A selector given without manualSelector is left for validation to refuse.
 */
function withGeneratedSelector(job: Job): Job {
  if (job.spec.manualSelector === true || job.spec.selector !== undefined) return job;
  const uid = job.metadata.uid ?? '';
  const name = job.metadata.name ?? '';
  const template = job.spec.template ?? {};
  const labels = {
    ...template.metadata?.labels,
    [JOB_CONTROLLER_UID_LABEL]: uid,
    [JOB_NAME_LABEL]: name,
    [LEGACY_CONTROLLER_UID_LABEL]: uid,
    [LEGACY_JOB_NAME_LABEL]: name,
  };
  return {
    ...job,
    spec: {
      ...job.spec,
      selector: generatedJobSelector(uid),
      template: { ...template, metadata: { ...template.metadata, labels } },
    },
  };
}

/**
 * Kubernetes' ValidateGeneratedSelector: without manualSelector the selector must be the generated
 * one, since a chosen selector could match another Job's pods.
 */
function validateJobWithSelector(job: Job, old: Job | undefined): void {
  validateJob(job, old);
  if (job.spec.manualSelector === true || job.spec.selector === undefined) return;
  if (!isDeepStrictEqual(job.spec.selector, generatedJobSelector(job.metadata.uid ?? '')))
    violation(
      'spec.selector',
      '`selector` not auto-generated: set spec.manualSelector to true to choose the selector yourself',
    );
}
