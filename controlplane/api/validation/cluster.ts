/** Namespace, Node and Event rules. */
import type { Event, Namespace, Node } from '../../../proto/gen/types.js';
import { requireNonEmpty, requireOneOf, requireValid, violation } from './field-violation.js';
import { validateResourceList } from './pod.js';
import { checkCidr, checkIp, checkLabelValue, checkQualifiedName } from './names.js';

export function validateNamespace(namespace: Namespace): void {
  requireOneOf('status.phase', namespace.status?.phase, ['Active', 'Terminating']);
}

export function validateNode(node: Node, old?: Node): void {
  const spec = node.spec;
  // every node routes a pod CIDR to the Node that holds it: moving it onto another's (a node may
  // write its own Node) would take that node's pod traffic; as Kubernetes, set once, then fixed
  for (const field of ['podCIDR', 'podCIDRs'] as const) {
    const was = old?.spec[field];
    if (was === undefined || (Array.isArray(was) && was.length === 0)) continue;
    if (JSON.stringify(spec[field]) !== JSON.stringify(was))
      violation(
        `spec.${field}`,
        `may not be changed once set: was ${JSON.stringify(was)}, got ${JSON.stringify(spec[field] ?? null)}`,
      );
  }
  const taints = new Set<string>();
  (spec.taints ?? []).forEach((taint, i) => {
    const at = `spec.taints[${i}]`;
    requireValid(`${at}.key`, taint.key, checkQualifiedName(taint.key));
    if (taint.value) {
      const problem = checkLabelValue(taint.value);
      if (problem !== undefined) violation(`${at}.value`, `"${taint.value}" ${problem}`);
    }
    requireOneOf(
      `${at}.effect`,
      requireNonEmpty(`${at}.effect`, taint.effect, 'NoSchedule, PreferNoSchedule or NoExecute'),
      ['NoSchedule', 'PreferNoSchedule', 'NoExecute'],
    );
    const key = `${taint.key}:${taint.effect}`;
    if (taints.has(key)) violation(`${at}`, `duplicate taint ${key}`);
    taints.add(key);
  });
  if (spec.podCIDR) requireValid('spec.podCIDR', spec.podCIDR, checkCidr(spec.podCIDR));
  (spec.podCIDRs ?? []).forEach((cidr, i) => requireValid(`spec.podCIDRs[${i}]`, cidr, checkCidr(cidr)));
  const status = node.status;
  if (status) {
    // Capacity and allocatable use the same resource names and quantity syntax as container resources.
    validateResourceList('status.capacity', status.capacity);
    validateResourceList('status.allocatable', status.allocatable);
    (status.addresses ?? []).forEach((address, i) => {
      requireOneOf(`status.addresses[${i}].type`, address.type, [
        'InternalIP',
        'ExternalIP',
        'Hostname',
        'InternalDNS',
        'ExternalDNS',
      ]);
      if (address.type === 'InternalIP' || address.type === 'ExternalIP') {
        requireValid(`status.addresses[${i}].address`, address.address, checkIp(address.address));
      }
    });
  }
}

export function validateEvent(event: Event): void {
  const involved = event.involvedObject;
  if (involved === undefined) violation('involvedObject', 'required: the object the event is about');
  requireNonEmpty('involvedObject.kind', involved.kind, 'the kind of the object the event is about');
  requireNonEmpty('involvedObject.name', involved.name, 'the name of the object the event is about');
  if (involved.namespace && event.metadata.namespace && involved.namespace !== event.metadata.namespace) {
    violation(
      'involvedObject.namespace',
      `"${involved.namespace}" must match the event's namespace "${event.metadata.namespace}"`,
    );
  }
  requireOneOf('type', event.type, ['Normal', 'Warning']);
  if (event.count !== undefined && event.count < 0) violation('count', 'must not be negative');
}
