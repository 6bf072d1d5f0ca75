/**
 * The API schema at run time: one protobufjs Root, built lazily from the descriptor that
 * proto/codegen/gen-types.ts compiles from the .proto files under proto/skiff/v1 (gen/schema.json,
 * bundled with the code, so no file is looked up or parsed). protobufjs is skiff's codec at run
 * time, so every encode/decode and every reflective walk (objects.ts) goes through the types
 * returned here. The generators read the .proto files themselves (codegen/proto-files.ts).
 */
// the reflection build: the .proto text parser is only for codegen (proto/codegen)
import protobuf from 'protobufjs/light.js';
import { InternalError, errorMessage } from './errors.js';
import descriptor from './gen/schema.json' with { type: 'json' };

export const PROTO_PACKAGE = 'skiff.v1';

let cachedRoot: protobuf.Root | undefined;

/** The parts of protobufjs's Type that its own setup() reads and which its typings do not show. */
interface TypeInternals {
  ctor: unknown;
  _fieldsArray: protobuf.Field[];
  root:
    | (protobuf.Root & {
        _needsRecursiveFeatureResolution?: boolean;
        _edition?: string;
        _resolveFeaturesRecursive(edition: string): void;
      })
    | null;
  _edition?: string;
}

type Codec = 'encode' | 'decode' | 'verify' | 'fromObject' | 'toObject';

/** protobufjs's own Type.setup(): every codec at once (schema.test.ts compares the two). */
export const eagerSetup = protobuf.Type.prototype.setup;

/**
 * protobufjs's Type.setup() with each codec generated when it is first called instead of all five
 * at once: setup compiles an encoder, decoder, verifier and both converters from source text for
 * every type it meets, and a one-shot `skiff get ns` uses the decoder of most types and the
 * encoder of one (the five for the dozen types it touches were ~10% of its start-up). Types that
 * protobufjs wraps (google.protobuf.Any and the like; skiff's schema has none) keep the original.
 */
function lazySetup(this: protobuf.Type): protobuf.Type {
  const type = this as unknown as protobuf.Type & TypeInternals;
  const codecs = this as unknown as Record<Codec, unknown>;
  if ((protobuf.wrappers as Record<string, unknown>)[type.fullName] !== undefined)
    return eagerSetup.call(this);
  const root = type.root;
  if (root?._needsRecursiveFeatureResolution) {
    const edition = root._edition || type._edition;
    if (edition) root._resolveFeaturesRecursive(edition);
  }
  let types: Array<protobuf.Type | protobuf.Enum | null> | undefined;
  const typesOf = (): Array<protobuf.Type | protobuf.Enum | null> =>
    (types ??= type.fieldsArray.map((field) => field.resolve().resolvedType));
  const lazily = (codec: Codec, make: () => unknown): void => {
    codecs[codec] = function (this: unknown, ...args: unknown[]) {
      const generated = make() as (...args: unknown[]) => unknown;
      codecs[codec] = generated;
      return generated.apply(this, args);
    };
  };
  const { util, Writer, Reader, encoder, decoder, verifier, converter } = protobuf;
  lazily('encode', () => encoder(type)({ Writer, types: typesOf(), util }));
  lazily('decode', () => decoder(type)({ Reader, types: typesOf(), util, C: type.ctor }));
  lazily('verify', () => verifier(type)({ types: typesOf(), util }));
  lazily('fromObject', () => converter.fromObject(type)({ types: typesOf(), util, C: type.ctor }));
  lazily('toObject', () => converter.toObject(type)({ types: typesOf(), util }));
  return this;
}
protobuf.Type.prototype.setup = lazySetup;

/**
 * The schema of every skiff.v1 type, built on first call, then shared. Its types are made from
 * the descriptor as they are first looked up (a field resolving its type, messageType, a
 * service), and each type's fields are resolved when it is set up or walked (resolvedTypeOf):
 * building and resolving all 199 types was ~30 ms of a one-shot `skiff get ns`, which uses a
 * dozen. schema.test.ts builds and resolves the whole descriptor.
 */
export function schemaRoot(): protobuf.Root {
  if (cachedRoot !== undefined) return cachedRoot;
  try {
    cachedRoot = lazyRoot(descriptor as unknown as SchemaDescriptor);
  } catch (err) {
    throw new InternalError(`load API schema from proto/gen/schema.json: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  return cachedRoot;
}

interface SchemaDescriptor {
  nested: {
    skiff: { nested: { v1: protobuf.INamespace & { nested: Record<string, protobuf.AnyNestedObject> } } };
  };
}

/**
 * A root whose package starts empty and takes each type from the descriptor when a lookup first
 * asks the package for it: every protobufjs lookup (a field's type, a name, a service) asks the
 * package's get() on its way up from where it started.
 */
function lazyRoot(schema: SchemaDescriptor): protobuf.Root {
  const packageJson = schema.nested.skiff.nested.v1;
  const pending = new Map(Object.entries(packageJson.nested));
  const root = protobuf.Root.fromJSON({
    nested: { skiff: { nested: { v1: { ...packageJson, nested: {} } } } },
  });
  const pkg = root.lookup(PROTO_PACKAGE) as protobuf.Namespace;
  const get = pkg.get.bind(pkg);
  pkg.get = (name: string): protobuf.ReflectionObject | null => {
    const json = pending.get(name);
    if (json !== undefined) {
      pending.delete(name); // before adding: add() asks get() for a name it would replace
      pkg.addJSON({ [name]: json });
    }
    return get(name);
  };
  return root;
}

/**
 * The message or enum type of `field`, resolved now if it was not yet (the root is resolved type by
 * type as it is used; reading `field.resolvedType` directly may see null for a message field).
 */
export function resolvedTypeOf(field: protobuf.Field): protobuf.Type | protobuf.Enum | null {
  return field.resolve().resolvedType;
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
  'CronJobSpec.schedule',
  'CronJobSpec.jobTemplate',
  'ForZone.name',
  'WeightedPodAffinityTerm.podAffinityTerm',
  'ContainerStatus.name',
  'ServicePort.port',
  'EndpointAddress.ip',
  'EndpointPort.port',
  'Sysctl.name',
  'LocalObjectReference.name',
  'EphemeralContainer.name',
  'HostAlias.ip',
  'PodReadinessGate.conditionType',
  'PodOS.name',
  'PodSchedulingGate.name',
  'PodResourceClaim.name',
  'TopologySpreadConstraint.topologyKey',
  'TopologySpreadConstraint.whenUnsatisfiable',
  'ContainerResizePolicy.resourceName',
  'ContainerResizePolicy.restartPolicy',
  'VolumeDevice.name',
  'VolumeDevice.devicePath',
  'ResourceClaim.name',
  'GRPCAction.port',
  'SeccompProfile.type',
  'AppArmorProfile.type',
  'DownwardAPIVolumeFile.path',
  'ServiceAccountTokenProjection.path',
  'ClusterTrustBundleProjection.path',
  'PodFailurePolicyRule.action',
  'PodFailurePolicyOnExitCodesRequirement.operator',
  'PodFailurePolicyOnExitCodesRequirement.values',
  'PodFailurePolicyOnPodConditionsPattern.type',
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
  'PodSpec.overhead',
  'VolumeResourceRequirements.limits',
  'VolumeResourceRequirements.requests',
]);
