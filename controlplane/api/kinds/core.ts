/** Strategies of the core ("v1") kinds. */
import { NODE_GROUP_FIELD, nodeGroupOfName } from '../../../proto/node-group.js';
import type {
  ConfigMap,
  Endpoints,
  Event,
  Namespace,
  Node,
  Pod,
  PriorityClass,
  Secret,
  Service,
  ServiceAccount,
} from '../../../proto/gen/types.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../../proto/errors.js';
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
import type { AdmissionContext, KindStrategy } from './strategy.js';
import { withDefaultTolerations } from '../../../proto/taints.js';
import { allocateService, carryServiceAllocations, serviceReservations } from '../service-allocation.js';

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
    // Kubernetes adds them to a running pod through a subresource of their own, never on create.
    if (old === undefined && (pod.spec.ephemeralContainers ?? []).length > 0)
      violation(
        'spec.ephemeralContainers',
        'cannot be set on create: ephemeral containers are added to a running pod',
      );
    if (old !== undefined) validatePodSpecUpdate(pod.spec, old.spec);
  },
  validateStatus: (pod) => validatePodStatus(pod.status),
  statusSubresource: true,
  // Kubernetes' pod strategy: a new pod is Pending until its node's agent reports otherwise.
  initialStatus: () => ({ phase: 'Pending' }),
  selectableFields: {
    'spec.nodeName': (pod) => pod.spec.nodeName ?? '',
    // not a field of the pod: the node group of its node's name (<G>-<digits>), for hollow nodes
    [NODE_GROUP_FIELD]: (pod) => nodeGroupOfName(pod.spec.nodeName ?? '') ?? '',
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
  // A new pod runs as a ServiceAccount of its namespace, at the priority of its PriorityClass, and
  // tolerates its node's outage for a while (Kubernetes' ServiceAccount, Priority and
  // DefaultTolerationSeconds admission).
  admit: async (pod, old, cluster) => {
    if (old !== undefined) return;
    await admitServiceAccount(pod, cluster);
    await admitPriority(pod, cluster);
    pod.spec.tolerations = withDefaultTolerations(pod.spec.tolerations, cluster.defaultTolerationSeconds);
  },
};

/**
 * The ServiceAccount a new pod names must exist in its namespace, and a pod that names no image
 * pull secrets gets its account's (Kubernetes' ServiceAccount admission). `default` is always
 * admitted: every namespace has it, and Kubernetes makes it again when it is deleted.
 */
async function admitServiceAccount(pod: Pod, cluster: AdmissionContext): Promise<void> {
  const name = pod.spec.serviceAccountName || DEFAULT_SERVICE_ACCOUNT;
  const namespace = pod.metadata.namespace || DEFAULT_NAMESPACE;
  const account = await cluster.get('ServiceAccount', namespace, name);
  if (account === undefined || account.kind !== 'ServiceAccount') {
    if (name === DEFAULT_SERVICE_ACCOUNT) return;
    throw new FailedPreconditionError(
      `Pod "${namespace}/${pod.metadata.name ?? ''}": spec.serviceAccountName: ServiceAccount "${name}" not found in namespace "${namespace}"; create it first, or leave serviceAccountName out to run as "${DEFAULT_SERVICE_ACCOUNT}"`,
    );
  }
  if ((pod.spec.imagePullSecrets ?? []).length === 0 && (account.imagePullSecrets ?? []).length > 0)
    pod.spec.imagePullSecrets = account.imagePullSecrets!.map((secret) => ({ ...secret }));
}

/**
 * A new pod's priority comes from its PriorityClass, or from the global default class when it
 * names none (0 without one), and with it the class's preemptionPolicy, as Kubernetes' Priority
 * admission sets them: the scheduler orders and preempts by spec.priority. A pod may not state a
 * priority or policy of its own that differs.
 */
async function admitPriority(pod: Pod, cluster: AdmissionContext): Promise<void> {
  const what = `Pod "${pod.metadata.namespace || DEFAULT_NAMESPACE}/${pod.metadata.name ?? ''}"`;
  let priority = 0;
  let preemptionPolicy: string | undefined = 'PreemptLowerPriority';
  if (pod.spec.priorityClassName) {
    const found = await cluster.get('PriorityClass', '', pod.spec.priorityClassName);
    if (found === undefined || found.kind !== 'PriorityClass') {
      throw new FailedPreconditionError(
        `${what}: spec.priorityClassName: no PriorityClass with name "${pod.spec.priorityClassName}" was found; create it, or leave priorityClassName out`,
      );
    }
    priority = found.value ?? 0;
    preemptionPolicy = found.preemptionPolicy;
  } else {
    const classes = await cluster.cachedList('PriorityClass');
    const globalDefault = classes.find(
      (each): each is PriorityClass => each.kind === 'PriorityClass' && each.globalDefault === true,
    );
    if (globalDefault !== undefined) {
      pod.spec.priorityClassName = globalDefault.metadata.name;
      priority = globalDefault.value ?? 0;
      preemptionPolicy = globalDefault.preemptionPolicy;
    }
  }
  if (pod.spec.priority !== undefined && pod.spec.priority !== priority) {
    throw new InvalidArgumentError(
      `${what}: spec.priority: the integer value of priority (${pod.spec.priority}) must not be provided in pod spec; priority admission computed ${priority} from the given PriorityClass name`,
      'spec.priority',
    );
  }
  pod.spec.priority = priority;
  if (preemptionPolicy !== undefined) {
    if (pod.spec.preemptionPolicy !== undefined && pod.spec.preemptionPolicy !== preemptionPolicy) {
      throw new InvalidArgumentError(
        `${what}: spec.preemptionPolicy: the value of preemptionPolicy (${pod.spec.preemptionPolicy}) must not be provided in pod spec; priority admission computed ${preemptionPolicy} from the given PriorityClass name`,
        'spec.preemptionPolicy',
      );
    }
    pod.spec.preemptionPolicy = preemptionPolicy;
  }
}

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
  prepareForUpdate: carryServiceAllocations,
  reservations: serviceReservations,
  // its ClusterIP and node ports: given ones checked, missing ones allocated
  admit: (service, old, cluster) =>
    allocateService(
      service,
      old,
      cluster.serviceRanges,
      cluster.reservations,
      `Service "${service.metadata.namespace || DEFAULT_NAMESPACE}/${service.metadata.name ?? ''}"`,
    ),
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
