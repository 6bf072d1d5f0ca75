/** Strategies of the batch/v1 kinds. */
import type { CronJob, Job } from '../../../proto/gen/types.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { defaultCronJob, defaultJob } from '../defaulting.js';
import { checkDns1123Subdomain } from '../validation/names.js';
import { validateCronJob, validateJob } from '../validation/workloads.js';
import type { KindStrategy } from './strategy.js';

export const jobStrategy: KindStrategy<Job> = {
  info: kindInfoOf('Job'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultJob,
  validate: validateJob,
  statusSubresource: true,
};

export const cronJobStrategy: KindStrategy<CronJob> = {
  info: kindInfoOf('CronJob'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultCronJob,
  validate: validateCronJob,
  statusSubresource: true,
};
