/**
 * The kind registry: every API kind skiff serves, with the names kubectl users type for it
 * (Kind, plural, singular, short names, `plural.group`), its apiVersion, its scope, the field of
 * api.proto's `Object` envelope that carries it and its protobuf message.
 */
import { InvalidArgumentError } from './errors.js';
import { messages } from './gen/messages.js';
import {
  configMapPrinter,
  cronJobPrinter,
  daemonSetPrinter,
  deploymentPrinter,
  endpointSlicePrinter,
  endpointsPrinter,
  eventPrinter,
  jobPrinter,
  leasePrinter,
  namespacePrinter,
  nodePrinter,
  podPrinter,
  priorityClassPrinter,
  replicaSetPrinter,
  secretPrinter,
  serviceAccountPrinter,
  servicePrinter,
  type KindPrinter,
} from './printing/columns.js';
import type { MessageType } from './wire/message-type.js';

export type KindName =
  | 'Namespace'
  | 'Node'
  | 'Pod'
  | 'ReplicaSet'
  | 'Deployment'
  | 'DaemonSet'
  | 'Job'
  | 'Service'
  | 'Endpoints'
  | 'ConfigMap'
  | 'Secret'
  | 'Event'
  | 'CronJob'
  | 'Lease'
  | 'PriorityClass'
  | 'EndpointSlice'
  | 'ServiceAccount';

export type ApiGroup =
  '' | 'apps' | 'batch' | 'coordination.k8s.io' | 'scheduling.k8s.io' | 'discovery.k8s.io';
export type ApiVersion = 'v1' | `${Exclude<ApiGroup, ''>}/v1`;

export interface KindInfo {
  readonly kind: KindName;
  /** "group/version", or just "v1" for the core group, as written in manifests. */
  readonly apiVersion: ApiVersion;
  /** "" for the core group. */
  readonly group: ApiGroup;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly namespaced: boolean;
  /** The field of api.proto's `Object` oneof that carries this kind (its camelCase name). */
  readonly envelopeField: string;
  /** The skiff.v1 message of this kind (same name as the kind). */
  readonly message: MessageType;
  /** `deployments.apps`, or just `pods` for the core group: the name `get` and `api-resources` print. */
  readonly resource: string;
  /** The table columns `get` prints (proto/printing/columns.ts). */
  readonly printer: KindPrinter;
}

interface KindSpec {
  kind: KindName;
  group: ApiGroup;
  plural: string;
  shortNames: string[];
  namespaced: boolean;
  envelopeField: string;
  printer: KindPrinter;
}

const KIND_SPECS: readonly KindSpec[] = [
  {
    kind: 'Namespace',
    group: '',
    plural: 'namespaces',
    shortNames: ['ns'],
    namespaced: false,
    envelopeField: 'namespace',
    printer: namespacePrinter,
  },
  {
    kind: 'Node',
    group: '',
    plural: 'nodes',
    shortNames: ['no'],
    namespaced: false,
    envelopeField: 'node',
    printer: nodePrinter,
  },
  {
    kind: 'Pod',
    group: '',
    plural: 'pods',
    shortNames: ['po'],
    namespaced: true,
    envelopeField: 'pod',
    printer: podPrinter,
  },
  {
    kind: 'ReplicaSet',
    group: 'apps',
    plural: 'replicasets',
    shortNames: ['rs'],
    namespaced: true,
    envelopeField: 'replicaSet',
    printer: replicaSetPrinter,
  },
  {
    kind: 'Deployment',
    group: 'apps',
    plural: 'deployments',
    shortNames: ['deploy'],
    namespaced: true,
    envelopeField: 'deployment',
    printer: deploymentPrinter,
  },
  {
    kind: 'DaemonSet',
    group: 'apps',
    plural: 'daemonsets',
    shortNames: ['ds'],
    namespaced: true,
    envelopeField: 'daemonSet',
    printer: daemonSetPrinter,
  },
  {
    kind: 'Job',
    group: 'batch',
    plural: 'jobs',
    shortNames: [],
    namespaced: true,
    envelopeField: 'job',
    printer: jobPrinter,
  },
  {
    kind: 'Service',
    group: '',
    plural: 'services',
    shortNames: ['svc'],
    namespaced: true,
    envelopeField: 'service',
    printer: servicePrinter,
  },
  {
    kind: 'Endpoints',
    group: '',
    plural: 'endpoints',
    shortNames: ['ep'],
    namespaced: true,
    envelopeField: 'endpoints',
    printer: endpointsPrinter,
  },
  {
    kind: 'ConfigMap',
    group: '',
    plural: 'configmaps',
    shortNames: ['cm'],
    namespaced: true,
    envelopeField: 'configMap',
    printer: configMapPrinter,
  },
  {
    kind: 'Secret',
    group: '',
    plural: 'secrets',
    shortNames: [],
    namespaced: true,
    envelopeField: 'secret',
    printer: secretPrinter,
  },
  {
    kind: 'Event',
    group: '',
    plural: 'events',
    shortNames: ['ev'],
    namespaced: true,
    envelopeField: 'event',
    printer: eventPrinter,
  },
  {
    kind: 'CronJob',
    group: 'batch',
    plural: 'cronjobs',
    shortNames: ['cj'],
    namespaced: true,
    envelopeField: 'cronJob',
    printer: cronJobPrinter,
  },
  {
    kind: 'Lease',
    group: 'coordination.k8s.io',
    plural: 'leases',
    shortNames: [],
    namespaced: true,
    envelopeField: 'lease',
    printer: leasePrinter,
  },
  {
    kind: 'PriorityClass',
    group: 'scheduling.k8s.io',
    plural: 'priorityclasses',
    shortNames: ['pc'],
    namespaced: false,
    envelopeField: 'priorityClass',
    printer: priorityClassPrinter,
  },
  {
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    plural: 'endpointslices',
    shortNames: [],
    namespaced: true,
    envelopeField: 'endpointSlice',
    printer: endpointSlicePrinter,
  },
  {
    kind: 'ServiceAccount',
    group: '',
    plural: 'serviceaccounts',
    shortNames: ['sa'],
    namespaced: true,
    envelopeField: 'serviceAccount',
    printer: serviceAccountPrinter,
  },
];

function kindInfo(spec: KindSpec): KindInfo {
  const apiVersion = (spec.group === '' ? 'v1' : `${spec.group}/v1`) as ApiVersion;
  return {
    kind: spec.kind,
    apiVersion,
    group: spec.group,
    plural: spec.plural,
    singular: spec.kind.toLowerCase(),
    shortNames: Object.freeze([...spec.shortNames]),
    namespaced: spec.namespaced,
    envelopeField: spec.envelopeField,
    printer: spec.printer,
    resource: spec.group === '' ? spec.plural : `${spec.plural}.${spec.group}`,
    message: messages[spec.kind],
  };
}

/** Every kind, in the order `api-resources` lists them. */
export const KINDS: readonly KindInfo[] = Object.freeze(KIND_SPECS.map(kindInfo));

const BY_KIND = new Map<string, KindInfo>(KINDS.map((info) => [info.kind, info]));
const BY_ENVELOPE_FIELD = new Map<string, KindInfo>(KINDS.map((info) => [info.envelopeField, info]));

/** Every lowercase name a user may type for a kind, without a group suffix. */
const BY_NAME = new Map<string, KindInfo>();
for (const info of KINDS) {
  for (const name of [info.singular, info.plural, ...info.shortNames]) BY_NAME.set(name, info);
}

function validKindsHint(): string {
  return KINDS.map((info) => {
    const aliases = [info.plural, ...info.shortNames].join(', ');
    return `${info.kind} (${aliases})`;
  }).join('; ');
}

/** The kind of a Kind name exactly as written in manifests ("Deployment"), if skiff serves it. */
export function lookupKind(kind: string): KindInfo | undefined {
  return BY_KIND.get(kind);
}

/** The kind by its exact Kind name; throws InvalidArgumentError (field `kind`) otherwise. */
export function kindInfoOf(kind: string): KindInfo {
  const info = BY_KIND.get(kind);
  if (info === undefined) {
    throw new InvalidArgumentError(
      `resolve kind "${kind}": unknown kind; valid kinds: ${validKindsHint()}`,
      'kind',
    );
  }
  return info;
}

/** The kind carried by a field of api.proto's `Object` envelope ("replicaSet"). */
export function kindForEnvelopeField(field: string): KindInfo | undefined {
  return BY_ENVELOPE_FIELD.get(field);
}

/**
 * The kind a user means by `name`, as kubectl reads it: the Kind ("Deployment"), its lowercase
 * singular, plural or short name ("deployment", "deployments", "deploy"), optionally qualified by
 * group or version and group ("deployments.apps", "deploy.v1.apps"). Case does not matter.
 * Throws InvalidArgumentError (field `kind`) listing the valid kinds otherwise.
 */
export function resolveKind(name: string): KindInfo {
  const lowered = name.trim().toLowerCase();
  const [resource = '', ...qualifier] = lowered.split('.');
  const info = BY_NAME.get(resource);
  if (info !== undefined && qualifierMatches(info, qualifier)) return info;
  throw new InvalidArgumentError(
    `resolve kind "${name}": the server doesn't have a resource type "${name}"; valid kinds: ${validKindsHint()}`,
    'kind',
  );
}

function qualifierMatches(info: KindInfo, qualifier: string[]): boolean {
  if (qualifier.length === 0) return true;
  // "pods." is how kubectl spells an explicit core group; groups hold dots themselves
  // ("leases.coordination.k8s.io", "leases.v1.coordination.k8s.io").
  const group = qualifier.join('.');
  return group === info.group || (qualifier[0] === 'v1' && qualifier.slice(1).join('.') === info.group);
}

/**
 * The kind named by a manifest's `apiVersion` and `kind`. An unknown kind is an error naming `kind`;
 * a known kind under the wrong apiVersion is an error naming `apiVersion` that says the right one.
 */
export function kindForApiVersion(apiVersion: string, kind: string): KindInfo {
  if (kind === '') {
    throw new InvalidArgumentError(`read object: kind is required; valid kinds: ${validKindsHint()}`, 'kind');
  }
  const info = BY_KIND.get(kind);
  if (info === undefined) {
    const caseInsensitive = KINDS.find((candidate) => candidate.kind.toLowerCase() === kind.toLowerCase());
    const hint =
      caseInsensitive === undefined
        ? `valid kinds: ${validKindsHint()}`
        : `did you mean "${caseInsensitive.kind}"?`;
    throw new InvalidArgumentError(`read object: unknown kind "${kind}"; ${hint}`, 'kind');
  }
  if (apiVersion === '') {
    throw new InvalidArgumentError(
      `read ${kind}: apiVersion is required; use "apiVersion: ${info.apiVersion}"`,
      'apiVersion',
    );
  }
  if (apiVersion !== info.apiVersion) {
    throw new InvalidArgumentError(
      `read ${kind}: apiVersion "${apiVersion}" does not serve kind ${kind}; use "apiVersion: ${info.apiVersion}"`,
      'apiVersion',
    );
  }
  return info;
}
