/**
 * The EndpointSlice controller, with the legacy Endpoints kept in step (Kubernetes runs the two as
 * separate controllers; one pass over the same pods serves both here): for every Service with a
 * selector, the pods it picks (endpoints-of.ts) are written as EndpointSlices labelled
 * `kubernetes.io/service-name` and owned by the Service (the garbage collector removes them with
 * it), and as the Endpoints of the Service's name. A slice is rewritten only when what it holds
 * changes, and slices are reused by port set, so one pod's change is one small write.
 *
 * A Service without a selector is left alone: its endpoints are the user's.
 */
import { NotFoundError } from '../../../proto/errors.js';
import type { EndpointSlice, Endpoints, Pod, Service } from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { decodeObject, encodeObject } from '../../../proto/objects.js';
import { normalized } from '../../api/object-lifecycle.js';
import { controllerRefOf, controllerReference } from '../support/claims.js';
import { NAMESPACE_INDEX, indexByNamespace } from '../support/indexes.js';
import { LeaderController, type LeaderControllerOptions } from '../support/leader-controller.js';
import {
  MANAGED_BY,
  MANAGED_BY_LABEL,
  SERVICE_NAME_LABEL,
  OVER_CAPACITY_ANNOTATION,
  endpointSubsets,
  planSlices,
  podEndpoint,
  selects,
  type PodEndpoint,
} from './endpoints-of.js';

export interface EndpointSliceControllerOptions extends LeaderControllerOptions {
  services: Informer<Service>;
  pods: Informer<Pod>;
  slices: Informer<EndpointSlice>;
  endpoints: Informer<Endpoints>;
}

export class EndpointSliceController extends LeaderController {
  /** Per Service: the pods and ports last reported as unresolved (an Event when it changes). */
  private readonly unresolvedReported = new Map<string, string>();
  /** Services seen deleted: their Endpoints go (an Endpoints made before its Service stays). */
  private readonly deletedServices = new Set<string>();

  constructor(private readonly options: EndpointSliceControllerOptions) {
    super(options, 'endpointslice-controller', 4);
    options.services.addIndex(SELECTOR_INDEX, bySelectorPairs);
    indexByNamespace(options.pods);
    indexByNamespace(options.slices);
  }

  protected watch(): (() => void)[] {
    const { services, pods, slices, endpoints } = this.options;
    const removals = [
      services.onChange((key, change) => {
        if (change === 'deleted') this.deletedServices.add(key);
        else this.deletedServices.delete(key);
        this.controller.enqueue(key);
      }),
      pods.onChange((key, change, before) => {
        const now = change === 'deleted' ? undefined : pods.get(key)?.object;
        // only what an endpoint is made of: not a restart count, not a container's state
        if (change === 'modified' && now && before && !endpointChanged(before.object, now)) return;
        // the Services filed under one of the pod's labels (before or after), not every Service of
        // its namespace: a namespace of 10,000 Services costs a pod event a few lookups
        const candidates = new Set<string>();
        for (const pod of [now, before?.object])
          for (const [label, value] of Object.entries(pod?.metadata.labels ?? {}))
            for (const { key: serviceKey } of services.byIndex(
              SELECTOR_INDEX,
              selectorPair(pod!.metadata.namespace ?? '', label, value),
            ))
              candidates.add(serviceKey);
        for (const serviceKey of candidates) {
          const selector = services.get(serviceKey)?.object.spec.selector ?? {};
          if ((now && selects(selector, now)) || (before && selects(selector, before.object)))
            this.controller.enqueue(serviceKey);
        }
      }),
      // a slice or Endpoints someone else changed or deleted is put back
      slices.onChange((key, change, before) => {
        const slice = change === 'deleted' ? before?.object : slices.get(key)?.object;
        const service = slice?.metadata.labels?.[SERVICE_NAME_LABEL];
        if (slice && service && slice.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY)
          this.controller.enqueue(`${slice.metadata.namespace}/${service}`);
      }),
      endpoints.onChange((key) => this.controller.enqueue(key)),
    ];
    for (const cached of services.list()) this.controller.enqueue(cached.key);
    return removals;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = '', name = ''] = key.split('/');
    const service = this.options.services.get(key)?.object;
    if (service === undefined) {
      this.unresolvedReported.delete(key);
      // its slices go with it (owner references); the Endpoints of its name are this controller's
      if (this.deletedServices.delete(key) && this.options.endpoints.get(key) !== undefined)
        await this.deleteIgnoringMissing('Endpoints', namespace, name);
      return;
    }
    const selector = service.spec.selector;
    if (selector === undefined || Object.keys(selector).length === 0 || service.spec.type === 'ExternalName')
      return;
    const members = this.options.pods
      .byIndex(NAMESPACE_INDEX, namespace)
      .map((cached) => cached.object)
      .filter((pod) => selects(selector, pod))
      .map((pod) => podEndpoint(service, pod))
      .filter((each): each is PodEndpoint => each !== undefined);
    this.reportUnresolved(key, service, members);
    await this.writeSlices(service, members);
    await this.writeEndpoints(service, members);
  }

  private async writeSlices(service: Service, members: readonly PodEndpoint[]): Promise<void> {
    const namespace = service.metadata.namespace ?? '';
    const name = service.metadata.name ?? '';
    const mine = this.options.slices
      .byIndex(NAMESPACE_INDEX, namespace)
      .map((cached) => cached.object)
      .filter(
        (slice) =>
          slice.metadata.labels?.[SERVICE_NAME_LABEL] === name &&
          slice.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY &&
          !slice.metadata.deletionTimestamp,
      )
      .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
    // slices of an earlier Service of this name go (the garbage collector would take them anyway)
    const owned = mine.filter((slice) => controllerRefOf(slice)?.uid === service.metadata.uid);
    const plan = planSlices(owned, members);
    const labels = { ...service.metadata.labels, [SERVICE_NAME_LABEL]: name, [MANAGED_BY_LABEL]: MANAGED_BY };
    for (const { slice, content } of plan.keep) {
      // compared as stored: what the codec drops ('' names, false conditions) is not a change
      const want = asStored({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {},
        ...content,
      });
      if (
        same(slice.ports, want.ports) &&
        same(slice.endpoints, want.endpoints) &&
        same(slice.metadata.labels, labels)
      )
        continue;
      await this.options.handlers.update({
        ...slice,
        metadata: { ...slice.metadata, labels },
        ports: content.ports,
        endpoints: content.endpoints,
      });
    }
    for (const content of plan.create)
      await this.options.handlers.create({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          generateName: `${name}-`,
          namespace,
          labels,
          ownerReferences: [{ ...controllerReference(service), blockOwnerDeletion: true }],
        },
        addressType: 'IPv4',
        ...content,
      } as EndpointSlice);
    for (const slice of [...plan.remove, ...mine.filter((slice) => !owned.includes(slice))])
      await this.deleteIgnoringMissing('EndpointSlice', namespace, slice.metadata.name ?? '');
  }

  private async writeEndpoints(service: Service, members: readonly PodEndpoint[]): Promise<void> {
    const namespace = service.metadata.namespace ?? '';
    const name = service.metadata.name ?? '';
    const { subsets, truncated } = endpointSubsets(service, members);
    const labels = service.metadata.labels ?? {};
    const current = this.options.endpoints.get(`${namespace}/${name}`)?.object;
    const annotations = { ...current?.metadata.annotations };
    if (truncated) annotations[OVER_CAPACITY_ANNOTATION] = 'truncated';
    else delete annotations[OVER_CAPACITY_ANNOTATION];
    const metadata = { ...current?.metadata, name, namespace, labels, annotations };
    if (current === undefined) {
      await this.options.handlers.create({
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata,
        ...(subsets.length > 0 ? { subsets } : {}),
      } as Endpoints);
      return;
    }
    const want = asStored({ apiVersion: 'v1', kind: 'Endpoints', metadata: {}, subsets } as Endpoints);
    if (
      same(current.subsets, want.subsets) &&
      same(current.metadata.labels, labels) &&
      same(current.metadata.annotations, annotations)
    )
      return;
    const { subsets: _old, ...rest } = current;
    await this.options.handlers.update({
      ...rest,
      metadata,
      ...(subsets.length > 0 ? { subsets } : {}),
    } as Endpoints);
  }

  /** A Warning Event on the Service when pods lack the named port it targets (once per change). */
  private reportUnresolved(key: string, service: Service, members: readonly PodEndpoint[]): void {
    const missing = members
      .filter((m) => m.unresolved.length > 0)
      .map((m) => `${m.pod.metadata.name} (${m.unresolved.join(', ')})`)
      .sort();
    const signature =
      missing.length > 5
        ? `${missing.slice(0, 5).join('; ')} and ${missing.length - 5} more`
        : missing.join('; ');
    if ((this.unresolvedReported.get(key) ?? '') === signature) return;
    this.unresolvedReported.set(key, signature);
    if (missing.length === 0) return;
    this.events.record(
      service,
      'Warning',
      'FailedToResolvePort',
      `pods declare no container port of the targetPort name: ${signature}; they get no traffic on that port (name the port in the pod's container ports, or give a number)`,
    );
  }

  private async deleteIgnoringMissing(kind: string, namespace: string, name: string): Promise<void> {
    try {
      await this.options.handlers.delete(kind, namespace, name);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
}

/** The object as the store hands it back (through the codec), for comparing with a stored one. */
function asStored<T extends EndpointSlice | Endpoints>(object: T): T {
  return decodeObject(object.kind, encodeObject(object)) as T;
}

/** Equal content, whatever the key order and whatever proto3 cannot tell from absent. */
function same(a: unknown, b: unknown): boolean {
  return canonical(normalized(a)) === canonical(normalized(b));
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => x.localeCompare(y)))
      : v,
  );
}

/** Whether the pod changed in what makes its endpoint (not its restart count or container states). */
function endpointChanged(before: Pod, now: Pod): boolean {
  const ready = (pod: Pod) => pod.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  const ports = (pod: Pod) => JSON.stringify((pod.spec.containers ?? []).map((c) => c.ports ?? []));
  return (
    JSON.stringify(before.metadata.labels ?? {}) !== JSON.stringify(now.metadata.labels ?? {}) ||
    before.status?.podIP !== now.status?.podIP ||
    before.status?.phase !== now.status?.phase ||
    ready(before) !== ready(now) ||
    before.metadata.deletionTimestamp !== now.metadata.deletionTimestamp ||
    before.spec.nodeName !== now.spec.nodeName ||
    before.spec.hostname !== now.spec.hostname ||
    before.spec.subdomain !== now.spec.subdomain ||
    ports(before) !== ports(now)
  );
}

const SELECTOR_INDEX = 'selectorPairs';

const selectorPair = (namespace: string, label: string, value: string) =>
  `${namespace}\u0000${label}=${value}`;

/** A Service filed under each key=value of its selector (none: it selects nothing by itself). */
const bySelectorPairs = (service: Service): readonly string[] =>
  Object.entries(service.spec.selector ?? {}).map(([label, value]) =>
    selectorPair(service.metadata.namespace ?? '', label, value),
  );
