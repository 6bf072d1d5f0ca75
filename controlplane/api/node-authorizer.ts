/**
 * What a node agent may do with its certificate (`system:node:<node>`): Kubernetes' node
 * authorizer, for skiff's kinds. A node reads the cluster's Nodes and writes only its own, sees only
 * the pods bound to it and what those pods reference, and records Events:
 *
 *   Node             get, list, watch any; create, update, updateStatus only its own
 *   Lease            get, create, update, delete only kube-node-lease/<node> (its heartbeat)
 *   Pod              list, watch only with the field selector spec.nodeName=<node>;
 *                    get, updateStatus, delete only a pod bound to it (as stored, not as sent)
 *   ConfigMap,       get only one referenced by a pod bound to it (volumes, projected sources,
 *   Secret,          env and envFrom of every container, imagePullSecrets, the service account);
 *   ServiceAccount   list, watch only in one namespace with the field selector metadata.name=<one
 *                    such object> (how kubelet watches a single object)
 *   Service,         get, list, watch any (every node programs every Service's load balancing and
 *   EndpointSlice    answers its cluster DNS names, as kube-proxy on each node does)
 *   Event            create
 *   version          always
 *
 * A node group (`system:node-group:<G>`, hollow nodes: proto/node-group.ts) acts for its members,
 * the nodes named <G>-<digits> whose Node carries the label skiff.io/node-group=<G>:
 *
 *   Node             get, list, watch any; create one named as a member and labelled with the group;
 *                    update, updateStatus a member (the stored Node labelled so, the label kept)
 *   Lease            a member's, as a node its own
 *   Pod              list, watch only with the field selector spec.nodeGroup=<G>; get,
 *                    updateStatus, delete only a pod bound to a member
 *   Event            create
 *   anything else    refused (hollow pods run nothing: no ConfigMaps, Secrets, pod streams)
 *
 * Everything else is refused with a PermissionDeniedError that names the request and why. The
 * pods are looked up per request through NodeGraph, which the control plane answers from the watch
 * cache (its pods are indexed by spec.nodeName), so a check costs a map lookup and the decoding
 * of the node's pods, not an etcd round trip; Kubernetes keeps a graph updated by informers
 * instead, which this interface allows later without changing the rules.
 */
import { PermissionDeniedError } from '../../proto/errors.js';
import type { KubeObject, Pod, PodSpec } from '../../proto/gen/types.js';
import type { Verb } from './auth.js';
import { NODE_GROUP_FIELD, NODE_GROUP_LABEL, isNodeGroupMemberName } from '../../proto/node-group.js';

/** The namespace of node heartbeats (Leases named after their node). */
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

/** One API request, as much of it as the rules read. */
export interface NodeRequest {
  verb: Verb;
  /** The Kind ("Pod"); '' for version. */
  kind: string;
  namespace: string;
  name: string;
  /** list, watch: the field selector as sent. */
  fieldSelector?: string;
  /** create, update, updateStatus: the labels of the object sent. */
  labels?: Record<string, string>;
}

/** Who asks: a node, or a node group (one of the two). */
export interface NodeIdentity {
  node?: string;
  nodeGroup?: string;
}

/** The pods the rules read. */
export interface NodeGraph {
  /** The pod as the control plane holds it; undefined when there is none. */
  pod(namespace: string, name: string): Promise<Pod | undefined>;
  /** Every pod bound to `node` (spec.nodeName). */
  podsOn(node: string): Promise<Pod[]>;
  /** The labels of Node `name` as the control plane holds it; undefined when there is none. */
  nodeLabels(name: string): Promise<Record<string, string> | undefined>;
}

type ReferencedKind = 'ConfigMap' | 'Secret' | 'ServiceAccount';
const REFERENCED: ReadonlySet<string> = new Set<ReferencedKind>(['ConfigMap', 'Secret', 'ServiceAccount']);

/** The value of `field`'s equality term (`field=value` or `field==value`) in a selector, if any. */
export function selectedValue(selector: string | undefined, field: string): string | undefined {
  for (const term of (selector ?? '').split(',')) {
    const match = /^\s*([^=!\s]+)\s*==?\s*(.*?)\s*$/.exec(term);
    if (match !== null && match[1] === field && !match[2]!.includes('=')) return match[2];
  }
  return undefined;
}

/** The names of the objects of `kind` that a pod's spec references, in its namespace. */
export function podReferences(spec: PodSpec | undefined, kind: ReferencedKind): Set<string> {
  const names = new Set<string>();
  const add = (name: string | undefined): void => {
    if (name) names.add(name);
  };
  if (spec === undefined) return names;
  if (kind === 'ServiceAccount') {
    add(spec.serviceAccountName || spec.serviceAccount || 'default');
    return names;
  }
  const containers = [
    ...(spec.initContainers ?? []),
    ...(spec.containers ?? []),
    ...(spec.ephemeralContainers ?? []),
  ];
  for (const container of containers) {
    for (const env of container.env ?? []) {
      if (kind === 'ConfigMap') add(env.valueFrom?.configMapKeyRef?.name);
      else add(env.valueFrom?.secretKeyRef?.name);
    }
    for (const from of container.envFrom ?? []) {
      if (kind === 'ConfigMap') add(from.configMapRef?.name);
      else add(from.secretRef?.name);
    }
  }
  for (const volume of spec.volumes ?? []) {
    for (const source of volume.projected?.sources ?? []) {
      if (kind === 'ConfigMap') add(source.configMap?.name);
      else add(source.secret?.name);
    }
    if (kind === 'ConfigMap') {
      add(volume.configMap?.name);
      continue;
    }
    add(volume.secret?.secretName);
    add(volume.azureFile?.secretName);
    add(volume.csi?.nodePublishSecretRef?.name);
    for (const withRef of [
      volume.cephfs,
      volume.rbd,
      volume.flexVolume,
      volume.iscsi,
      volume.scaleIO,
      volume.storageos,
      volume.cinder,
    ] as Array<{ secretRef?: { name?: string } } | undefined>) {
      add(withRef?.secretRef?.name);
    }
  }
  if (kind === 'Secret') for (const ref of spec.imagePullSecrets ?? []) add(ref.name);
  return names;
}

function describe(request: NodeRequest): string {
  if (request.kind === '') return request.verb;
  const where =
    request.name !== ''
      ? ` ${request.namespace ? `${request.namespace}/` : ''}${request.name}`
      : request.namespace
        ? ` in namespace ${request.namespace}`
        : '';
  const selector = request.fieldSelector ? ` (fieldSelector ${JSON.stringify(request.fieldSelector)})` : '';
  return `${request.verb} ${request.kind}${where}${selector}`;
}

export class NodeAuthorizer {
  constructor(private readonly graph: NodeGraph) {}

  /** Resolves when `who` may make `request`; PermissionDeniedError saying why not otherwise. */
  async authorize(who: NodeIdentity, request: NodeRequest): Promise<void> {
    const group = who.nodeGroup;
    const reason =
      group !== undefined
        ? await this.groupRefusal(group, request)
        : await this.refusal(who.node ?? '', request);
    if (reason !== undefined) {
      const whom = group !== undefined ? `node group "${group}"` : `node "${who.node}"`;
      throw new PermissionDeniedError(`${describe(request)}: refused for ${whom}: ${reason}`);
    }
  }

  /** Why node group `group` may not make `request`, or undefined when it may. */
  private async groupRefusal(group: string, request: NodeRequest): Promise<string | undefined> {
    const { verb, kind, namespace, name } = request;
    if (verb === 'version') return undefined;
    const members = `its members (Nodes named ${group}-<digits> labelled ${NODE_GROUP_LABEL}=${group})`;
    const isMember = async (node: string): Promise<boolean> =>
      isNodeGroupMemberName(group, node) && (await this.graph.nodeLabels(node))?.[NODE_GROUP_LABEL] === group;
    switch (kind) {
      case 'Node': {
        if (verb === 'get' || verb === 'list' || verb === 'watch') return undefined;
        if (verb === 'delete') return 'a node group may not delete Nodes';
        if (!isNodeGroupMemberName(group, name)) return `a node group may ${verb} only ${members}`;
        if (request.labels?.[NODE_GROUP_LABEL] !== group)
          return `a node group's Nodes carry the label ${NODE_GROUP_LABEL}=${group}`;
        if (verb === 'create') return undefined;
        return (await isMember(name)) ? undefined : `a node group may ${verb} only ${members}`;
      }
      case 'Lease':
        if (verb === 'list' || verb === 'watch' || verb === 'updateStatus')
          return `a node group may only get, create, update and delete its members' Leases`;
        return namespace === NODE_LEASE_NAMESPACE && (await isMember(name))
          ? undefined
          : `a node group may only use the Leases of ${members} (${NODE_LEASE_NAMESPACE}/<member>)`;
      case 'Pod': {
        if (verb === 'list' || verb === 'watch')
          return selectedValue(request.fieldSelector, NODE_GROUP_FIELD) === group
            ? undefined
            : `a node group may ${verb} only its pods: select them with the field selector ${NODE_GROUP_FIELD}=${group}`;
        if (verb === 'create' || verb === 'update')
          return `a node group may not ${verb} pods (only their status)`;
        if (verb !== 'get' && verb !== 'updateStatus' && verb !== 'delete')
          return `a node group may not ${verb} pods: its nodes are hollow`;
        const pod = await this.graph.pod(namespace, name);
        if (pod === undefined) return `there is no pod ${namespace}/${name} bound to one of its members`;
        return (await isMember(pod.spec?.nodeName ?? ''))
          ? undefined
          : `the pod is not bound to one of ${members}`;
      }
      case 'Event':
        return verb === 'create' ? undefined : 'a node group may only create Events';
    }
    return `a node group may not ${verb} ${kind || 'objects of that kind'}: its nodes are hollow`;
  }

  /** Why `node` may not make `request`, or undefined when it may. */
  private async refusal(node: string, request: NodeRequest): Promise<string | undefined> {
    const { verb, kind, namespace, name } = request;
    if (verb === 'version') return undefined;
    switch (kind) {
      case 'Node':
        if (verb === 'get' || verb === 'list' || verb === 'watch') return undefined;
        if (verb === 'delete') return 'a node may not delete Nodes';
        return name === node ? undefined : `a node may ${verb} only its own Node ("${node}")`;
      case 'Lease':
        if (verb === 'list' || verb === 'watch' || verb === 'updateStatus')
          return `a node may only get, create, update and delete its own Lease (${NODE_LEASE_NAMESPACE}/${node})`;
        return namespace === NODE_LEASE_NAMESPACE && name === node
          ? undefined
          : `a node may only use its own Lease (${NODE_LEASE_NAMESPACE}/${node})`;
      case 'Pod':
        return this.podRefusal(node, request);
      case 'Service':
      case 'EndpointSlice':
        return verb === 'get' || verb === 'list' || verb === 'watch'
          ? undefined
          : `a node may only read ${kind}s`;
      case 'Event':
        return verb === 'create' ? undefined : 'a node may only create Events';
    }
    if (REFERENCED.has(kind)) return this.referencedRefusal(node, request, kind as ReferencedKind);
    return `a node may not ${verb} ${kind || 'objects of that kind'}`;
  }

  private async podRefusal(node: string, request: NodeRequest): Promise<string | undefined> {
    const { verb, namespace, name } = request;
    if (verb === 'list' || verb === 'watch') {
      return selectedValue(request.fieldSelector, 'spec.nodeName') === node
        ? undefined
        : `a node may ${verb} only its own pods: select them with the field selector spec.nodeName=${node}`;
    }
    if (verb === 'create' || verb === 'update') return `a node may not ${verb} pods (only their status)`;
    const pod = await this.graph.pod(namespace, name);
    if (pod === undefined) return `there is no pod ${namespace}/${name} bound to it`;
    const boundTo = pod.spec?.nodeName ?? '';
    return boundTo === node
      ? undefined
      : `the pod is ${boundTo === '' ? 'not bound to a node' : `bound to another node`}`;
  }

  private async referencedRefusal(
    node: string,
    request: NodeRequest,
    kind: ReferencedKind,
  ): Promise<string | undefined> {
    const { verb, namespace } = request;
    let name = request.name;
    if (verb === 'list' || verb === 'watch') {
      const selected = selectedValue(request.fieldSelector, 'metadata.name');
      if (namespace === '' || selected === undefined || selected === '') {
        return `a node may ${verb} a ${kind} only in one namespace with the field selector metadata.name=<one its pods reference>`;
      }
      name = selected;
    } else if (verb !== 'get') return `a node may only read ${kind}s`;
    for (const pod of await this.graph.podsOn(node)) {
      if ((pod.metadata.namespace ?? '') !== namespace) continue;
      if (podReferences(pod.spec, kind).has(name)) return undefined;
    }
    return `no pod bound to it references ${kind} ${namespace}/${name}`;
  }
}

/** The namespace and name of a request's object, for the rules (create/update carry the object). */
export function objectTarget(object: KubeObject): { namespace: string; name: string } {
  return { namespace: object.metadata.namespace ?? '', name: object.metadata.name ?? '' };
}
