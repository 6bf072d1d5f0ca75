/**
 * PodInfo: a pod with what the scheduler reads of it parsed once — requests as integers, priority,
 * host ports, image names, inter-pod affinity terms — so that filtering thousands of nodes does not
 * parse quantities or selectors again. PodInfos are immutable: a changed pod gets a new one.
 */
import type { LabelSelector as LabelSelectorObject, Pod, PodAffinityTerm } from '../../../proto/gen/types.js';
import { errorMessage } from '../../../proto/errors.js';
import {
  EVERYTHING,
  labelSelectorFromObject,
  NOTHING,
  type LabelRequirement,
  type LabelSelector,
} from '../../api/selectors.js';
import { podRequests, type Resources } from './resources.js';

export interface HostPort {
  /** "0.0.0.0" when the port binds every address. */
  ip: string;
  protocol: string;
  port: number;
}

/** Namespace labels by namespace name, for namespaceSelector (undefined: the namespace is not known). */
export type NamespaceLabels = (namespace: string) => Readonly<Record<string, string>> | undefined;

/**
 * A PodAffinityTerm made ready to match pods: the namespaces it names (its pod's own when it names
 * none and has no namespaceSelector), its namespaceSelector, and its label selector with
 * matchLabelKeys / mismatchLabelKeys folded in from its pod's labels.
 */
export class AffinityTerm {
  /** A text that is the same for terms that match the same pods (indexes share by it). */
  readonly matcherKey: string;

  constructor(
    readonly topologyKey: string,
    readonly namespaces: ReadonlySet<string>,
    readonly namespaceSelector: LabelSelector | undefined,
    readonly selector: LabelSelector,
  ) {
    this.matcherKey = `${[...namespaces].sort().join(',')}|${namespaceSelector?.toString() ?? '-'}|${selector.toString()}|${selector === NOTHING ? 'none' : ''}`;
  }

  /** Whether `pod` (in its namespace) is a pod this term selects. */
  matches(pod: PodInfo, namespaceLabels: NamespaceLabels): boolean {
    if (!this.namespaces.has(pod.namespace)) {
      if (this.namespaceSelector === undefined) return false;
      if (
        !this.namespaceSelector.empty &&
        !this.namespaceSelector.matches(namespaceLabels(pod.namespace) ?? {})
      )
        return false;
    }
    return this.selector.matches(pod.labels);
  }
}

export interface WeightedAffinityTerm {
  readonly weight: number;
  readonly term: AffinityTerm;
}

/** Selectors parsed before, by their JSON: the pods of a workload all carry the same ones. */
const parsedSelectors = new Map<string, LabelSelector>();
const MAX_REMEMBERED_SELECTORS = 4096;

/** A LabelSelector object parsed once (undefined selects nothing, as in Kubernetes). */
export function cachedLabelSelector(selector: LabelSelectorObject | undefined, path: string): LabelSelector {
  if (selector === undefined) return NOTHING;
  const text = JSON.stringify(selector);
  let parsed = parsedSelectors.get(text);
  if (parsed === undefined) {
    parsed = labelSelectorFromObject(selector, path);
    if (parsedSelectors.size >= MAX_REMEMBERED_SELECTORS) parsedSelectors.clear();
    parsedSelectors.set(text, parsed);
  }
  return parsed;
}

/** `selector` with further requirements (matchLabelKeys and the like) ANDed to it. */
export function withRequirements(selector: LabelSelector, extra: LabelRequirement[]): LabelSelector {
  if (extra.length === 0 || selector === NOTHING) return selector;
  const requirements = [...selector.requirements, ...extra];
  return {
    requirements,
    empty: false,
    matches: (labels) =>
      selector.matches(labels) &&
      extra.every((requirement) => {
        const value = labels?.[requirement.key];
        const has = labels !== undefined && Object.hasOwn(labels, requirement.key);
        return requirement.operator === 'In'
          ? has && requirement.values.includes(value!)
          : !has || !requirement.values.includes(value!);
      }),
    toString: () =>
      [
        selector.toString(),
        ...extra.map((r) => `${r.key} ${r.operator === 'In' ? 'in' : 'notin'} (${r.values.join(',')})`),
      ]
        .filter((part) => part !== '')
        .join(','),
  };
}

function affinityTerm(pod: Pod, term: PodAffinityTerm, path: string): AffinityTerm {
  const labels = pod.metadata.labels ?? {};
  let selector = cachedLabelSelector(term.labelSelector, `${path}.labelSelector`);
  const extra: LabelRequirement[] = [];
  for (const key of term.matchLabelKeys ?? []) {
    if (Object.hasOwn(labels, key)) extra.push({ key, operator: 'In', values: [labels[key]!] });
  }
  for (const key of term.mismatchLabelKeys ?? []) {
    if (Object.hasOwn(labels, key)) extra.push({ key, operator: 'NotIn', values: [labels[key]!] });
  }
  selector = withRequirements(selector, extra);
  const namespaces = new Set(term.namespaces ?? []);
  const namespaceSelector =
    term.namespaceSelector === undefined
      ? undefined
      : Object.keys(term.namespaceSelector).length === 0
        ? EVERYTHING
        : cachedLabelSelector(term.namespaceSelector, `${path}.namespaceSelector`);
  if (namespaces.size === 0 && namespaceSelector === undefined) namespaces.add(pod.metadata.namespace ?? '');
  return new AffinityTerm(term.topologyKey, namespaces, namespaceSelector, selector);
}

export interface PodInfo {
  readonly pod: Pod;
  /** `namespace/name` */
  readonly key: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly requests: Resources;
  /** cpu and memory requests with Kubernetes' defaults for containers that name none (scoring). */
  readonly nonZeroMilliCpu: number;
  readonly nonZeroMemory: number;
  readonly priority: number;
  readonly preemptionPolicy: string;
  readonly hostPorts: readonly HostPort[];
  /** Normalised names (`:latest` added to untagged ones) of init and regular containers' images. */
  readonly images: readonly string[];
  readonly requiredAffinityTerms: readonly AffinityTerm[];
  readonly requiredAntiAffinityTerms: readonly AffinityTerm[];
  readonly preferredAffinityTerms: readonly WeightedAffinityTerm[];
  readonly preferredAntiAffinityTerms: readonly WeightedAffinityTerm[];
  /** Any inter-pod affinity or anti-affinity term at all. */
  readonly hasAffinity: boolean;
  /** The uid of the owner that is the pod's controller (Deployment's ReplicaSet, Job, ...). */
  readonly controllerUid: string | undefined;
  /**
   * When the pod started (status.startTime) in ms; Infinity while it has not, which Kubernetes
   * reads as "now": the latest of all.
   */
  readonly startTime: number;
  /** Marked for deletion. */
  readonly terminating: boolean;
  /** Why the pod's affinity terms could not be read (the scheduler then refuses the pod). */
  readonly parseError: string | undefined;
}

/** Kubernetes' CRI-compliant image name for image locality: an untagged name gets `:latest`. */
export function normalizedImageName(name: string): string {
  return name.lastIndexOf(':') <= name.lastIndexOf('/') ? `${name}:latest` : name;
}

function hostPortsOf(pod: Pod): HostPort[] {
  const ports: HostPort[] = [];
  const hostNetwork = pod.spec.hostNetwork === true;
  for (const containers of [pod.spec.initContainers, pod.spec.containers]) {
    for (const container of containers ?? []) {
      for (const port of container.ports ?? []) {
        // With hostNetwork, every container port is a host port (defaulting sets hostPort so).
        const hostPort = port.hostPort ?? (hostNetwork ? port.containerPort : 0);
        if (hostPort > 0)
          ports.push({ ip: port.hostIP || '0.0.0.0', protocol: port.protocol || 'TCP', port: hostPort });
      }
    }
  }
  return ports;
}

function timeOf(text: string | undefined): number {
  if (text === undefined) return Number.POSITIVE_INFINITY;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? Number.POSITIVE_INFINITY : ms;
}

export function newPodInfo(pod: Pod): PodInfo {
  const namespace = pod.metadata.namespace ?? '';
  const requests = podRequests(pod.spec);
  const nonZero = podRequests(pod.spec, true);
  const images: string[] = [];
  for (const containers of [pod.spec.initContainers, pod.spec.containers]) {
    for (const container of containers ?? [])
      if (container.image) images.push(normalizedImageName(container.image));
  }
  let requiredAffinityTerms: AffinityTerm[] = [];
  let requiredAntiAffinityTerms: AffinityTerm[] = [];
  let preferredAffinityTerms: WeightedAffinityTerm[] = [];
  let preferredAntiAffinityTerms: WeightedAffinityTerm[] = [];
  let parseError: string | undefined;
  const affinity = pod.spec.affinity;
  if (affinity?.podAffinity !== undefined || affinity?.podAntiAffinity !== undefined) {
    try {
      const at = 'spec.affinity';
      const required = (terms: PodAffinityTerm[] | undefined, path: string) =>
        (terms ?? []).map((term, i) => affinityTerm(pod, term, `${path}[${i}]`));
      const preferred = (
        terms: { weight: number; podAffinityTerm: PodAffinityTerm }[] | undefined,
        path: string,
      ) =>
        (terms ?? []).map((term, i) => ({
          weight: term.weight,
          term: affinityTerm(pod, term.podAffinityTerm, `${path}[${i}].podAffinityTerm`),
        }));
      requiredAffinityTerms = required(
        affinity.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution,
        `${at}.podAffinity.requiredDuringSchedulingIgnoredDuringExecution`,
      );
      requiredAntiAffinityTerms = required(
        affinity.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution,
        `${at}.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution`,
      );
      preferredAffinityTerms = preferred(
        affinity.podAffinity?.preferredDuringSchedulingIgnoredDuringExecution,
        `${at}.podAffinity.preferredDuringSchedulingIgnoredDuringExecution`,
      );
      preferredAntiAffinityTerms = preferred(
        affinity.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution,
        `${at}.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution`,
      );
    } catch (err) {
      parseError = errorMessage(err);
      requiredAffinityTerms = requiredAntiAffinityTerms = [];
      preferredAffinityTerms = preferredAntiAffinityTerms = [];
    }
  }
  const controller = pod.metadata.ownerReferences?.find((owner) => owner.controller === true);
  return {
    pod,
    key: `${namespace}/${pod.metadata.name ?? ''}`,
    namespace,
    labels: pod.metadata.labels ?? {},
    requests,
    nonZeroMilliCpu: nonZero.milliCpu,
    nonZeroMemory: nonZero.memory,
    priority: pod.spec.priority ?? 0,
    preemptionPolicy: pod.spec.preemptionPolicy ?? 'PreemptLowerPriority',
    hostPorts: hostPortsOf(pod),
    images,
    requiredAffinityTerms,
    requiredAntiAffinityTerms,
    preferredAffinityTerms,
    preferredAntiAffinityTerms,
    hasAffinity:
      requiredAffinityTerms.length +
        requiredAntiAffinityTerms.length +
        preferredAffinityTerms.length +
        preferredAntiAffinityTerms.length >
      0,
    controllerUid: controller?.uid,
    startTime: timeOf(pod.status?.startTime),
    terminating: pod.metadata.deletionTimestamp !== undefined,
    parseError,
  };
}

/** The key of a pod: `namespace/name`. */
export function podKey(pod: Pod): string {
  return `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`;
}
