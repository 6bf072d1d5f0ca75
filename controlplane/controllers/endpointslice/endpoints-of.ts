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
import { SERVICE_NAME_LABEL } from '../../../proto/endpoint-slices.js';

export { SERVICE_NAME_LABEL };
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'endpointslice-controller.k8s.io';
export const MAX_ENDPOINTS_PER_SLICE = 100;
/** The legacy Endpoints hold at most this many addresses (Kubernetes' limit; slices hold them all). */
export const MAX_ENDPOINTS_ADDRESSES = 1000;
export const OVER_CAPACITY_ANNOTATION = 'endpoints.kubernetes.io/over-capacity';

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
 * the pod is Ready, terminating or not (publishNotReadyAddresses or not); terminating: it is
 * being deleted.
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
      serving: podReady,
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

/** A port set's identity, however the store wrote it ('' names dropped, TCP defaulted). */
export function portsKey(ports: readonly EndpointSlicePort[] | undefined): string {
  return (ports ?? [])
    .map((p) => `${p.name ?? ''}:${p.port ?? ''}/${p.protocol || 'TCP'}`)
    .sort()
    .join(',');
}

const endpointKey = (endpoint: Endpoint) => endpoint.targetRef?.uid || (endpoint.addresses ?? []).join(',');

export interface SliceContent {
  ports: EndpointSlicePort[];
  endpoints: Endpoint[];
}

export interface SlicePlan<S> {
  /** Existing slices and what they are to hold now (unchanged ones too: the caller compares). */
  keep: { slice: S; content: SliceContent }[];
  create: SliceContent[];
  remove: S[];
}

/**
 * How the Service's slices change, as Kubernetes packs them: an endpoint stays in the slice that
 * holds it (its content refreshed), one that left is taken out where it was, new ones go into
 * slices of their port set with room, then into slices left empty, then into new slices of at most
 * `max`. So one pod's change touches one slice. A Service keeps one slice, maybe empty, when it has
 * no endpoint (readers then see "no endpoints", not "not yet computed").
 */
export function planSlices<S extends { ports?: EndpointSlicePort[]; endpoints?: Endpoint[] }>(
  existing: readonly S[],
  members: readonly PodEndpoint[],
  max = MAX_ENDPOINTS_PER_SLICE,
): SlicePlan<S> {
  const groups = new Map<string, { ports: EndpointSlicePort[]; waiting: Map<string, Endpoint> }>();
  for (const { ports, endpoint } of members) {
    const key = portsKey(ports);
    const group = groups.get(key) ?? { ports, waiting: new Map() };
    group.waiting.set(endpointKey(endpoint), endpoint);
    groups.set(key, group);
  }
  const keep: { slice: S; content: SliceContent }[] = [];
  const emptied: S[] = [];
  for (const slice of existing) {
    const group = groups.get(portsKey(slice.ports));
    const held = (slice.endpoints ?? [])
      .map((e) => group?.waiting.get(endpointKey(e)))
      .filter((e): e is Endpoint => e !== undefined)
      .slice(0, max);
    for (const e of held) group!.waiting.delete(endpointKey(e));
    if (held.length === 0) emptied.push(slice);
    else keep.push({ slice, content: { ports: group!.ports, endpoints: held } });
  }
  const create: SliceContent[] = [];
  for (const [key, group] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const waiting = [...group.waiting.values()].sort((a, b) =>
      (a.targetRef?.name ?? '').localeCompare(b.targetRef?.name ?? ''),
    );
    for (const { content } of keep) {
      if (waiting.length === 0) break;
      if (portsKey(content.ports) !== key) continue;
      content.endpoints.push(...waiting.splice(0, max - content.endpoints.length));
    }
    while (waiting.length > 0) {
      const content = { ports: group.ports, endpoints: waiting.splice(0, max) };
      const reused = emptied.shift();
      if (reused !== undefined) keep.push({ slice: reused, content });
      else create.push(content);
    }
  }
  if (keep.length === 0 && create.length === 0) {
    const placeholder = emptied.shift();
    if (placeholder !== undefined) keep.push({ slice: placeholder, content: { ports: [], endpoints: [] } });
    else create.push({ ports: [], endpoints: [] });
  }
  return { keep, create, remove: emptied };
}

/**
 * The legacy Endpoints' subsets: ready addresses and not-ready ones per port set (terminating
 * pods are left out, as Kubernetes' Endpoints controller leaves them, unless all are published).
 */
export function endpointSubsets(
  service: Service,
  endpoints: readonly PodEndpoint[],
  max = MAX_ENDPOINTS_ADDRESSES,
): { subsets: EndpointSubset[]; truncated: boolean } {
  const groups = new Map<string, EndpointSubset>();
  const publishAll = service.spec.publishNotReadyAddresses === true;
  let count = 0;
  for (const { endpoint, ports } of endpoints) {
    if (endpoint.conditions?.terminating && !publishAll) continue;
    if (++count > max) break;
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
  const subsets = [...groups.keys()].sort().map((key) => {
    const subset = groups.get(key)!;
    subset.addresses?.sort(byIp);
    subset.notReadyAddresses?.sort(byIp);
    return subset;
  });
  return { subsets, truncated: count > max };
}
