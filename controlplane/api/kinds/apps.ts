/** Strategies of the apps/v1 kinds. */
import type { DaemonSet, Deployment, ReplicaSet } from '../../../proto/gen/types.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { defaultDaemonSet, defaultDeployment, defaultReplicaSet } from '../defaulting.js';
import { checkDns1123Subdomain } from '../validation/names.js';
import { validateDaemonSet, validateDeployment, validateReplicaSet } from '../validation/workloads.js';
import type { KindStrategy } from './strategy.js';

export const replicaSetStrategy: KindStrategy<ReplicaSet> = {
  info: kindInfoOf('ReplicaSet'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultReplicaSet,
  validate: validateReplicaSet,
  statusSubresource: true,
};

export const deploymentStrategy: KindStrategy<Deployment> = {
  info: kindInfoOf('Deployment'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultDeployment,
  validate: validateDeployment,
  statusSubresource: true,
};

export const daemonSetStrategy: KindStrategy<DaemonSet> = {
  info: kindInfoOf('DaemonSet'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultDaemonSet,
  validate: validateDaemonSet,
  statusSubresource: true,
};
