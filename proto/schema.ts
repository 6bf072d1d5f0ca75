/**
 * What the API schema says that proto3 cannot: which fields an object needs and which hold
 * quantities, keyed "Message.jsonName". The .proto files under proto/skiff/v1 say the rest, and
 * proto/codegen turns them into the TypeScript shapes (gen/types.ts, which these sets also
 * shape) and the messages' fields and codecs (gen/messages.ts).
 */

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
