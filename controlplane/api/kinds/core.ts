/** Strategies of the core ("v1") kinds. */
import type {
  ConfigMap,
  Endpoints,
  Event,
  Namespace,
  Node,
  Pod,
  Secret,
  Service,
  ServiceAccount,
} from '../../../proto/gen/types.js';
import { FailedPreconditionError } from '../../../proto/errors.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import {
  DEFAULT_SERVICE_ACCOUNT,
  DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS,
  defaultPod,
  defaultSecret,
  defaultService,
} from '../defaulting.js';
import { DEFAULT_NAMESPACE } from '../object-lifecycle.js';
import { validateEvent, validateNamespace, validateNode } from '../validation/cluster.js';
import { validateConfigMap, validateSecret } from '../validation/config.js';
import { violation } from '../validation/field-violation.js';
import { checkDns1035Label, checkDns1123Label, checkDns1123Subdomain } from '../validation/names.js';
import {
  RESTART_POLICIES,
  validatePodSpec,
  validatePodSpecUpdate,
  validatePodStatus,
} from '../validation/pod.js';
import { validateEndpoints, validateService } from '../validation/service.js';
import type { KindStrategy } from './strategy.js';

/**
 * The namespaces every Kubernetes cluster has from its first start, so manifests written for one
 * (a DaemonSet in kube-system) apply unchanged: kube-system holds the cluster's own components,
 * kube-public what every reader may see, kube-node-lease the nodes' heartbeat Leases.
 */
export const SYSTEM_NAMESPACES = [DEFAULT_NAMESPACE, 'kube-system', 'kube-public', 'kube-node-lease'];

const systemNamespace = (name: string): Namespace => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name },
  spec: {},
});

export const namespaceStrategy: KindStrategy<Namespace> = {
  info: kindInfoOf('Namespace'),
  nameRule: checkDns1123Label,
  defaults: (ns) => {
    ns.status = { ...ns.status, phase: ns.status?.phase || 'Active' };
  },
  validate: validateNamespace,
  statusSubresource: true,
  initialStatus: () => ({ phase: 'Active' }),
  selectableFields: { 'status.phase': (ns) => ns.status?.phase ?? '' },
  // The namespace controller empties a Terminating namespace, then removes it.
  markOnDelete: (ns, deletionTimestamp) => ({
    ...ns,
    metadata: { ...ns.metadata, deletionTimestamp },
    status: { ...(ns.status ?? {}), phase: 'Terminating' },
  }),
  systemObjects: SYSTEM_NAMESPACES.map(systemNamespace),
  // Every namespace has a `default` ServiceAccount, which its pods run as unless they name another.
  companions: (ns) => [defaultServiceAccountOf(ns.metadata.name!)],
};

export const nodeStrategy: KindStrategy<Node> = {
  info: kindInfoOf('Node'),
  nameRule: checkDns1123Subdomain,
  validate: validateNode,
  statusSubresource: true,
  selectableFields: { 'spec.unschedulable': (node) => String(node.spec.unschedulable ?? false) },
};

export const podStrategy: KindStrategy<Pod> = {
  info: kindInfoOf('Pod'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultPod,
  validate: (pod, old) => {
    if (pod.spec === undefined) violation('spec', 'required');
    validatePodSpec('spec', pod.spec, { restartPolicies: RESTART_POLICIES, isPod: true });
    validatePodStatus(pod.status);
    if (old !== undefined) validatePodSpecUpdate(pod.spec, old.spec);
  },
  statusSubresource: true,
  selectableFields: {
    'spec.nodeName': (pod) => pod.spec.nodeName ?? '',
    'spec.restartPolicy': (pod) => pod.spec.restartPolicy ?? '',
    'spec.schedulerName': (pod) => pod.spec.schedulerName ?? '',
    'status.phase': (pod) => pod.status?.phase ?? '',
    'status.podIP': (pod) => pod.status?.podIP ?? '',
  },
  // A pod bound to a node runs there: its agent needs the grace period to stop it. An unbound
  // pod runs nowhere and goes at once.
  deleteGraceSeconds: (pod, requested) =>
    pod.spec.nodeName
      ? (requested ?? pod.spec.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS)
      : 0,
  // A new pod runs as a ServiceAccount of its namespace, which must exist (Kubernetes'
  // ServiceAccount admission). `default` is always admitted: every namespace has it, and Kubernetes
  // makes it again when it is deleted.
  admit: async (pod, old, cluster) => {
    if (old !== undefined) return;
    const name = pod.spec.serviceAccountName || DEFAULT_SERVICE_ACCOUNT;
    if (name === DEFAULT_SERVICE_ACCOUNT) return;
    const namespace = pod.metadata.namespace || DEFAULT_NAMESPACE;
    const accounts = await cluster.list('ServiceAccount');
    if (accounts.some((sa) => sa.metadata.namespace === namespace && sa.metadata.name === name)) return;
    throw new FailedPreconditionError(
      `Pod "${namespace}/${pod.metadata.name ?? ''}": spec.serviceAccountName: ServiceAccount "${name}" not found in namespace "${namespace}"; create it first, or leave serviceAccountName out to run as "${DEFAULT_SERVICE_ACCOUNT}"`,
    );
  },
};

/** The ServiceAccount every namespace has, which pods that name none run as. */
export function defaultServiceAccountOf(namespace: string): ServiceAccount {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: DEFAULT_SERVICE_ACCOUNT, namespace },
  };
}

/**
 * ServiceAccount: what Kubernetes checks of one is its metadata (secrets and imagePullSecrets are
 * references that may name objects made later).
 */
export const serviceAccountStrategy: KindStrategy<ServiceAccount> = {
  info: kindInfoOf('ServiceAccount'),
  nameRule: checkDns1123Subdomain,
  statusSubresource: false,
};

export const serviceStrategy: KindStrategy<Service> = {
  info: kindInfoOf('Service'),
  nameRule: checkDns1035Label,
  defaults: defaultService,
  validate: validateService,
  statusSubresource: true,
};

export const endpointsStrategy: KindStrategy<Endpoints> = {
  info: kindInfoOf('Endpoints'),
  nameRule: checkDns1123Subdomain,
  validate: validateEndpoints,
  statusSubresource: false,
};

export const configMapStrategy: KindStrategy<ConfigMap> = {
  info: kindInfoOf('ConfigMap'),
  nameRule: checkDns1123Subdomain,
  validate: validateConfigMap,
  statusSubresource: false,
};

export const secretStrategy: KindStrategy<Secret> = {
  info: kindInfoOf('Secret'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultSecret,
  validate: validateSecret,
  statusSubresource: false,
  selectableFields: { type: (secret) => secret.type ?? '' },
};

export const eventStrategy: KindStrategy<Event> = {
  info: kindInfoOf('Event'),
  nameRule: checkDns1123Subdomain,
  validate: validateEvent,
  statusSubresource: false,
  selectableFields: {
    type: (event) => event.type ?? '',
    reason: (event) => event.reason ?? '',
    'involvedObject.kind': (event) => event.involvedObject?.kind ?? '',
    'involvedObject.name': (event) => event.involvedObject?.name ?? '',
    'involvedObject.namespace': (event) => event.involvedObject?.namespace ?? '',
    'involvedObject.uid': (event) => event.involvedObject?.uid ?? '',
  },
};
