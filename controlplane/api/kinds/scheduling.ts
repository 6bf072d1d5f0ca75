/** Strategies of the scheduling.k8s.io/v1 kinds. */
import { FailedPreconditionError } from '../../../proto/errors.js';
import type { PriorityClass } from '../../../proto/gen/types.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { defaultPriorityClass } from '../defaulting.js';
import { checkDns1123Subdomain } from '../validation/names.js';
import { SYSTEM_PRIORITY_CLASSES, validatePriorityClass } from '../validation/scheduling-coordination.js';
import type { KindStrategy } from './strategy.js';

const SYSTEM_PRIORITY_DESCRIPTIONS: Readonly<Record<string, string>> = {
  'system-cluster-critical':
    'Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.',
  'system-node-critical': 'Used for system critical pods that must not be moved from their current node.',
};

export const priorityClassStrategy: KindStrategy<PriorityClass> = {
  info: kindInfoOf('PriorityClass'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultPriorityClass,
  validate: validatePriorityClass,
  statusSubresource: false,
  systemObjects: Object.entries(SYSTEM_PRIORITY_CLASSES).map(([name, value]) => ({
    apiVersion: 'scheduling.k8s.io/v1',
    kind: 'PriorityClass',
    metadata: { name },
    value,
    description: SYSTEM_PRIORITY_DESCRIPTIONS[name] ?? '',
    preemptionPolicy: 'PreemptLowerPriority',
  })),
  // One class at most is the default for pods that name none, as Kubernetes' Priority admission.
  admit: async (pc, _old, cluster) => {
    if (!pc.globalDefault) return;
    const others = (await cluster.list('PriorityClass')).filter(
      (other) =>
        other.kind === 'PriorityClass' && other.globalDefault && other.metadata.name !== pc.metadata.name,
    );
    if (others.length > 0) {
      throw new FailedPreconditionError(
        `PriorityClass "${pc.metadata.name}": globalDefault is already set on "${others[0]!.metadata.name}"; only one PriorityClass may be the global default`,
      );
    }
  },
};
