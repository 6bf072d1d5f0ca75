/**
 * The API schema: the .proto files under proto/skiff/v1 loaded once, lazily, into one protobufjs
 * Root. protobufjs is skiff's codec at run time, so every encode/decode and every reflective walk
 * (objects.ts, codegen/gen-types.ts) goes through the types returned here.
 *
 * The .proto files are read from the source tree, not copied into dist/: from proto/schema.ts (tsx)
 * they are in ./skiff/v1/, from dist/proto/schema.js in ../../proto/skiff/v1/.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { InternalError, errorMessage } from './errors.js';

export const PROTO_PACKAGE = 'skiff.v1';

const ENTRY_FILE = 'skiff/v1/api.proto';

let cachedRoot: protobuf.Root | undefined;
let cachedProtoRoot: string | undefined;

/**
 * The directory that import paths in the .proto files are relative to (it holds skiff/v1/), for
 * tools that load the files themselves (e.g. @grpc/proto-loader's `includeDirs`).
 */
export function protoIncludeDir(): string {
  if (cachedProtoRoot !== undefined) return cachedProtoRoot;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [here, path.resolve(here, '../../proto')];
  const found = candidates.find((dir) => existsSync(path.join(dir, ENTRY_FILE)));
  if (found === undefined) {
    throw new InternalError(
      `load API schema: ${ENTRY_FILE} not found in ${candidates.join(' or ')}; ` +
        'the .proto files must ship beside dist/ (run skiff from its source tree)',
    );
  }
  cachedProtoRoot = found;
  return found;
}

/** The fully resolved schema of every skiff.v1 type. Loaded on first call, then shared. */
export function schemaRoot(): protobuf.Root {
  if (cachedRoot !== undefined) return cachedRoot;
  const includeDir = protoIncludeDir();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.resolve(includeDir, target);
  try {
    // Comments are kept so the type generator can carry them into proto/gen/types.ts.
    root.loadSync(ENTRY_FILE, { alternateCommentMode: true });
    root.resolveAll();
  } catch (err) {
    throw new InternalError(`load API schema from ${includeDir}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  cachedRoot = root;
  return root;
}

const messageTypes = new Map<string, protobuf.Type>();

/** A skiff.v1 message type by its short name ("Pod", "ObjectMeta", "Object"). */
export function messageType(name: string): protobuf.Type {
  // Cached: every object conversion asks for its kind's type, and a Root lookup walks namespaces.
  const cached = messageTypes.get(name);
  if (cached !== undefined) return cached;
  const found = schemaRoot().lookup(`${PROTO_PACKAGE}.${name}`);
  if (!(found instanceof protobuf.Type)) {
    throw new InternalError(`look up message ${PROTO_PACKAGE}.${name}: no such message in the schema`);
  }
  messageTypes.set(name, found);
  return found;
}

/**
 * The name a field has in the Kubernetes JSON shape: its `json_name` where the .proto gives one
 * (acronyms such as podIP), else protobufjs's camelCase of the snake_case name.
 */
export function jsonFieldName(field: protobuf.Field): string {
  const explicit = field.options?.['json_name'];
  return typeof explicit === 'string' ? explicit : field.name;
}

/** True for proto3 `optional` fields, whose zero value is kept (unset and zero differ). */
export function hasExplicitPresence(field: protobuf.Field): boolean {
  return field.options?.['proto3_optional'] === true;
}

/**
 * Fields without which their message means nothing, keyed "Message.jsonName". proto3 has no
 * `required`, so the contract lives here: parseObject rejects an object that lacks one, and the
 * generated TypeScript types make them non-optional. (Kind-level metadata and spec are handled by
 * objects.ts, which fills in empty ones so validation can say what inside is missing.)
 */
export const REQUIRED_FIELDS: ReadonlySet<string> = new Set([
  'OwnerReference.apiVersion',
  'OwnerReference.kind',
  'OwnerReference.name',
  'OwnerReference.uid',
  'LabelSelectorRequirement.key',
  'LabelSelectorRequirement.operator',
  'Condition.type',
  'Condition.status',
  'Taint.key',
  'Taint.effect',
  'NodeAddress.type',
  'NodeAddress.address',
  'Container.name',
  'ContainerPort.containerPort',
  'EnvVar.name',
  'ConfigMapKeySelector.key',
  'SecretKeySelector.key',
  'ObjectFieldSelector.fieldPath',
  'ResourceFieldSelector.resource',
  'VolumeMount.name',
  'VolumeMount.mountPath',
  'HTTPGetAction.port',
  'HTTPHeader.name',
  'TCPSocketAction.port',
  'Volume.name',
  'HostPathVolumeSource.path',
  'KeyToPath.key',
  'KeyToPath.path',
  'NodeSelectorRequirement.key',
  'NodeSelectorRequirement.operator',
  'PreferredSchedulingTerm.weight',
  'PreferredSchedulingTerm.preference',
  'PodAffinityTerm.topologyKey',
  'WeightedPodAffinityTerm.weight',
  'WeightedPodAffinityTerm.podAffinityTerm',
  'ContainerStatus.name',
  'ServicePort.port',
  'EndpointAddress.ip',
  'EndpointPort.port',
  'Sysctl.name',
  'LocalObjectReference.name',
]);

/**
 * Fields holding Kubernetes quantities ("500m", "128Mi"), keyed "Message.jsonName". They are strings
 * in the schema, but Kubernetes manifests may write them as bare numbers (`cpu: 1`, `cpu: 0.5`), so
 * parseObject accepts a number there and stores its decimal text.
 */
export const QUANTITY_FIELDS: ReadonlySet<string> = new Set([
  'ResourceRequirements.limits',
  'ResourceRequirements.requests',
  'NodeStatus.capacity',
  'NodeStatus.allocatable',
  'EmptyDirVolumeSource.sizeLimit',
  'ResourceFieldSelector.divisor',
]);
