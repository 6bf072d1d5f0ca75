/**
 * What a Service's endpoints are, as pure functions (Kubernetes' EndpointSlice and Endpoints
 * controllers): the pods its selector picks that have an address and have not ended, each with
 * its ports resolved (a named targetPort is looked up in the pod's containers, so pods may differ)
 * and its conditions (ready, serving, terminating); grouped by port set into slices of at most
 * 100 endpoints, and into the legacy Endpoints' subsets.
 */
import type {
  Endpoint,
  EndpointSlicePort,
  EndpointSubset,
  Pod,
  Service,
  ServicePort,
} from '../../../proto/gen/types.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'endpointslice-controller.k8s.io';
export const MAX_ENDPOINTS_PER_SLICE = 100;

/** The pods the selector picks, by labels (a Service selects by equality on every key). */
export function selects(selector: Readonly<Record<string, string>>, pod: Pod): boolean {
  const labels = pod.metadata.labels ?? {};
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

export interface PodEndpoint {
  pod: Pod;
  endpoint: Endpoint;
  ports: EndpointSlicePort[];
  /** Service ports whose named targetPort the pod does not declare. */
  unresolved: string[];
}

/** The port the service port reaches on this pod, or undefined when a name is not declared. */
function targetPortOf(port: ServicePort, pod: Pod): number | undefined {
  const target = port.targetPort ?? port.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  for (const container of pod.spec.containers ?? [])
    for (const declared of container.ports ?? [])
      if (declared.name === target && (declared.protocol || 'TCP') === (port.protocol || 'TCP'))
        return declared.containerPort;
  return undefined;
}

/**
 * The pod as an endpoint of the Service, or undefined when it is none (no address yet, ended).
 * Ready: the pod is Ready and not terminating (any pod with publishNotReadyAddresses); serving:
 * the pod is Ready, terminating or not; terminating: it is being deleted.
 */
export function podEndpoint(service: Service, pod: Pod): PodEndpoint | undefined {
  const ip = pod.status?.podIP;
  const phase = pod.status?.phase;
  if (!ip || phase === 'Succeeded' || phase === 'Failed') return undefined;
  const podReady = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  const terminating = pod.metadata.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== '';
  const publishAll = service.spec.publishNotReadyAddresses === true;
  const endpoint: Endpoint = {
    addresses: [ip],
    conditions: {
      ready: publishAll || (podReady && !terminating),
      serving: publishAll || podReady,
      terminating,
    },
    targetRef: {
      kind: 'Pod',
      namespace: pod.metadata.namespace ?? '',
      name: pod.metadata.name ?? '',
      uid: pod.metadata.uid ?? '',
    },
  };
  if (pod.spec.nodeName) endpoint.nodeName = pod.spec.nodeName;
  // headless Services name their pods in DNS by hostname (a StatefulSet's, or spec.hostname)
  if (pod.spec.hostname && pod.spec.subdomain === service.metadata.name)
    endpoint.hostname = pod.spec.hostname;
  const ports: EndpointSlicePort[] = [];
  const unresolved: string[] = [];
  for (const port of service.spec.ports ?? []) {
    const number = targetPortOf(port, pod);
    if (number === undefined) {
      unresolved.push(String(port.targetPort));
      continue;
    }
    ports.push({
      name: port.name ?? '',
      port: number,
      protocol: port.protocol || 'TCP',
      ...(port.appProtocol ? { appProtocol: port.appProtocol } : {}),
    });
  }
  return { pod, endpoint, ports, unresolved };
}

const portsKey = (ports: readonly EndpointSlicePort[]) =>
  JSON.stringify([...ports].sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '')));

/**
 * The slices' contents: endpoints grouped by their port set, each group in pod-name order and cut
 * into slices of at most `max`. Every group is one or more slices; no endpoint, no slice (but a
 * Service always has one slice, maybe empty, as Kubernetes keeps one: readers see "no endpoints").
 */
export function sliceContents(
  endpoints: readonly PodEndpoint[],
  servicePorts: readonly ServicePort[],
  max = MAX_ENDPOINTS_PER_SLICE,
): { ports: EndpointSlicePort[]; endpoints: Endpoint[] }[] {
  const groups = new Map<string, { ports: EndpointSlicePort[]; members: PodEndpoint[] }>();
  for (const each of endpoints) {
    const key = portsKey(each.ports);
    const group = groups.get(key) ?? { ports: each.ports, members: [] };
    group.members.push(each);
    groups.set(key, group);
  }
  const slices: { ports: EndpointSlicePort[]; endpoints: Endpoint[] }[] = [];
  for (const key of [...groups.keys()].sort()) {
    const group = groups.get(key)!;
    const sorted = group.members
      .map((m) => m.endpoint)
      .sort((a, b) => (a.targetRef?.name ?? '').localeCompare(b.targetRef?.name ?? ''));
    for (let at = 0; at < sorted.length; at += max)
      slices.push({ ports: group.ports, endpoints: sorted.slice(at, at + max) });
  }
  if (slices.length === 0)
    slices.push({
      ports: servicePorts
        .filter((p) => typeof (p.targetPort ?? p.port) === 'number')
        .map((p) => ({
          name: p.name ?? '',
          port: Number(p.targetPort ?? p.port),
          protocol: p.protocol || 'TCP',
        })),
      endpoints: [],
    });
  return slices;
}

/**
 * The legacy Endpoints' subsets: ready addresses and not-ready ones per port set (terminating
 * pods are left out, as Kubernetes' Endpoints controller leaves them, unless all are published).
 */
export function endpointSubsets(service: Service, endpoints: readonly PodEndpoint[]): EndpointSubset[] {
  const groups = new Map<string, EndpointSubset>();
  const publishAll = service.spec.publishNotReadyAddresses === true;
  for (const { endpoint, ports } of endpoints) {
    if (endpoint.conditions?.terminating && !publishAll) continue;
    const key = portsKey(ports);
    const subset = groups.get(key) ?? {
      ports: ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port!,
        protocol: p.protocol ?? 'TCP',
      })),
    };
    const address = {
      ip: endpoint.addresses![0]!,
      ...(endpoint.hostname ? { hostname: endpoint.hostname } : {}),
      ...(endpoint.nodeName ? { nodeName: endpoint.nodeName } : {}),
      targetRef: endpoint.targetRef!,
    };
    if (endpoint.conditions?.ready) (subset.addresses ??= []).push(address);
    else (subset.notReadyAddresses ??= []).push(address);
    groups.set(key, subset);
  }
  const byIp = (a: { ip: string }, b: { ip: string }) => a.ip.localeCompare(b.ip);
  return [...groups.keys()].sort().map((key) => {
    const subset = groups.get(key)!;
    subset.addresses?.sort(byIp);
    subset.notReadyAddresses?.sort(byIp);
    return subset;
  });
}
