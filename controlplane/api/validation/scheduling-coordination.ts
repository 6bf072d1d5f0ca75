/** PriorityClass (scheduling.k8s.io) and Lease (coordination.k8s.io) rules. */
import type { Lease, PriorityClass } from '../../../proto/gen/types.js';
import { requireAtLeast, requireOneOf, violation } from './field-violation.js';

/** Kubernetes' ceiling for priority classes users define; above it only the system classes. */
export const HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000;
export const SYSTEM_CLUSTER_CRITICAL = 2_000_000_000;
export const SYSTEM_NODE_CRITICAL = SYSTEM_CLUSTER_CRITICAL + 1000;
/** The priority classes the API server keeps, by name, with their values. */
export const SYSTEM_PRIORITY_CLASSES: Readonly<Record<string, number>> = {
  'system-cluster-critical': SYSTEM_CLUSTER_CRITICAL,
  'system-node-critical': SYSTEM_NODE_CRITICAL,
};

export function validatePriorityClass(pc: PriorityClass, old: PriorityClass | undefined): void {
  const name = pc.metadata.name ?? '';
  const value = pc.value ?? 0;
  if (name.startsWith('system-')) {
    const systemValue = SYSTEM_PRIORITY_CLASSES[name];
    if (systemValue === undefined) {
      violation(
        'metadata.name',
        `"${name}": the "system-" prefix is reserved for ${Object.keys(SYSTEM_PRIORITY_CLASSES).join(' and ')}`,
      );
    }
    if (value !== systemValue)
      violation('value', `must be ${systemValue} for the system class ${name}, got ${value}`);
  } else if (value > HIGHEST_USER_DEFINABLE_PRIORITY) {
    violation(
      'value',
      `must be no more than ${HIGHEST_USER_DEFINABLE_PRIORITY} (higher values are kept for the system classes), got ${value}`,
    );
  }
  requireOneOf('preemptionPolicy', pc.preemptionPolicy, ['PreemptLowerPriority', 'Never']);
  if (old !== undefined) {
    // Pods carry the value they were admitted with; changing it would leave them inconsistent.
    if (value !== (old.value ?? 0)) {
      violation(
        'value',
        `field is immutable: was ${old.value ?? 0}, got ${value}; create a new PriorityClass`,
      );
    }
    if (pc.preemptionPolicy !== old.preemptionPolicy) {
      violation(
        'preemptionPolicy',
        `field is immutable: was ${old.preemptionPolicy ?? ''}, got ${pc.preemptionPolicy ?? ''}`,
      );
    }
  }
}

/** RFC 3339 with optional fractional seconds, as Kubernetes' MicroTime prints it. */
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

export function validateLease(lease: Lease): void {
  const spec = lease.spec;
  if (spec.leaseDurationSeconds !== undefined && spec.leaseDurationSeconds <= 0) {
    violation('spec.leaseDurationSeconds', `must be greater than 0, got ${spec.leaseDurationSeconds}`);
  }
  requireAtLeast('spec.leaseTransitions', spec.leaseTransitions, 0);
  for (const field of ['acquireTime', 'renewTime'] as const) {
    const time = spec[field];
    if (time && (!MICRO_TIME.test(time) || Number.isNaN(Date.parse(time)))) {
      violation(`spec.${field}`, `"${time}" is not an RFC 3339 time such as "2026-01-02T15:04:05.000000Z"`);
    }
  }
  requireOneOf('spec.strategy', spec.strategy, ['OldestEmulationVersion']);
  if (spec.preferredHolder && !spec.strategy) {
    violation('spec.preferredHolder', 'may only be set together with spec.strategy');
  }
}
