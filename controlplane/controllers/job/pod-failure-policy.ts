/**
 * A Job's podFailurePolicy applied to one failed pod, as Kubernetes does: the first rule that
 * matches the pod's containers' exit codes or its conditions says what the failure does — FailJob
 * (the Job fails at once), Ignore (not counted toward backoffLimit), Count (counted, the default
 * when no rule matches). FailIndex needs backoffLimitPerIndex, which this controller does not
 * implement; it counts as Count.
 */
import type { Pod, PodFailurePolicy, PodFailurePolicyRule } from '../../../proto/gen/types.js';

export interface FailureVerdict {
  action: 'FailJob' | 'Ignore' | 'Count';
  /** For FailJob: why, as Kubernetes words it. */
  message?: string;
}

export function failureAction(policy: PodFailurePolicy | undefined, pod: Pod): FailureVerdict {
  const rules = policy?.rules ?? [];
  for (const [index, rule] of rules.entries()) {
    const matched = matchExitCodes(rule, pod) ?? matchConditions(rule, pod);
    if (matched === undefined) continue;
    if (rule.action === 'FailJob')
      return { action: 'FailJob', message: `${matched} matching FailJob rule at index ${index}` };
    if (rule.action === 'Ignore') return { action: 'Ignore' };
    return { action: 'Count' };
  }
  return { action: 'Count' };
}

/** What matched, in Kubernetes' words, or undefined. */
function matchExitCodes(rule: PodFailurePolicyRule, pod: Pod): string | undefined {
  const requirement = rule.onExitCodes;
  if (requirement === undefined) return undefined;
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const status of statuses) {
    if (requirement.containerName && status.name !== requirement.containerName) continue;
    const exitCode = status.state?.terminated?.exitCode;
    if (exitCode === undefined || exitCode === 0) continue;
    const listed = requirement.values.includes(exitCode);
    if (requirement.operator === 'In' ? listed : !listed)
      return `Container ${status.name} for pod ${pod.metadata.namespace}/${pod.metadata.name} failed with exit code ${exitCode}`;
  }
  return undefined;
}

function matchConditions(rule: PodFailurePolicyRule, pod: Pod): string | undefined {
  for (const pattern of rule.onPodConditions ?? []) {
    const found = pod.status?.conditions?.find(
      (c) => c.type === pattern.type && c.status === (pattern.status || 'True'),
    );
    if (found !== undefined)
      return `Pod ${pod.metadata.namespace}/${pod.metadata.name} has condition ${pattern.type}`;
  }
  return undefined;
}
