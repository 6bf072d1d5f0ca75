/**
 * Pod spec rules (for Pods and the pod templates of workload kinds) and what may change in a
 * running Pod's spec.
 */
import type {
  Affinity,
  Container,
  EnvFromSource,
  EnvVar,
  IntOrString,
  LifecycleHandler,
  NodeSelectorTerm,
  PodAffinityTerm,
  PodSpec,
  PodStatus,
  Probe,
  ResourceRequirements,
  SecurityContext,
  Toleration,
  Volume,
  WeightedPodAffinityTerm,
} from '../../../proto/gen/types.js';
import { compareQuantities, parseQuantity } from '../../../proto/quantity.js';
import { labelSelectorFromObject } from '../selectors.js';
import { InvalidArgumentError } from '../../../proto/errors.js';
import { firstDifference } from './diff.js';
import {
  requireAtLeast,
  requireExactlyOne,
  requireInRange,
  requireNonEmpty,
  requireOneOf,
  requireValid,
  violation,
} from './field-violation.js';
import { validateLabels } from './meta.js';
import {
  checkConfigKey,
  checkDns1123Label,
  checkDns1123Subdomain,
  checkEnvVarName,
  checkIp,
  checkLabelValue,
  checkPortName,
  checkQualifiedName,
} from './names.js';

export const RESTART_POLICIES = ['Always', 'OnFailure', 'Never'] as const;
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'];
const DNS_POLICIES = ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'];
const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'];
const HOST_PATH_TYPES = [
  '',
  'DirectoryOrCreate',
  'Directory',
  'FileOrCreate',
  'File',
  'Socket',
  'CharDevice',
  'BlockDevice',
];
const NODE_SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'];
const STANDARD_RESOURCES = new Set(['cpu', 'memory', 'ephemeral-storage', 'pods']);
/** The pod fields an env var's fieldRef may read, as the agent can fill them in. */
const ENV_FIELD_PATHS = [
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'spec.nodeName',
  'spec.serviceAccountName',
  'status.hostIP',
  'status.hostIPs',
  'status.podIP',
  'status.podIPs',
];
const ENV_RESOURCE_FIELDS = [
  'limits.cpu',
  'limits.memory',
  'limits.ephemeral-storage',
  'requests.cpu',
  'requests.memory',
  'requests.ephemeral-storage',
];

/** A port given by number (1–65535) or by the name of a container port. */
export function validatePortReference(path: string, port: IntOrString | undefined): void {
  if (port === undefined) violation(path, 'required: a port number or name');
  if (typeof port === 'number') requireInRange(path, port, 1, 65535);
  else requireValid(path, port, checkPortName(port));
}

function validateResourceName(path: string, name: string): void {
  if (STANDARD_RESOURCES.has(name) || name.startsWith('hugepages-')) return;
  // Extended resources must be domain-qualified ("example.com/gpu") as in Kubernetes.
  if (!name.includes('/')) {
    violation(
      path,
      `unknown resource "${name}": use cpu, memory, ephemeral-storage, hugepages-<size> or a domain-qualified name such as example.com/gpu`,
    );
  }
  requireValid(path, name, checkQualifiedName(name));
}

/** A map of resource name to quantity (container requests/limits, node capacity/allocatable). */
export function validateResourceList(path: string, list: Record<string, string> | undefined): void {
  for (const [name, quantity] of Object.entries(list ?? {})) {
    const at = `${path}[${name}]`;
    validateResourceName(at, name);
    let parsed;
    try {
      parsed = parseQuantity(quantity, at);
    } catch (err) {
      if (err instanceof InvalidArgumentError)
        violation(at, err.message.replace(/^parse quantity /, 'quantity '));
      throw err;
    }
    if (parsed.milli < 0n) violation(at, `must not be negative, got "${quantity}"`);
  }
}

export function validateResources(path: string, resources: ResourceRequirements | undefined): void {
  if (resources === undefined) return;
  validateResourceList(`${path}.limits`, resources.limits);
  validateResourceList(`${path}.requests`, resources.requests);
  for (const [name, request] of Object.entries(resources.requests ?? {})) {
    const limit = resources.limits?.[name];
    if (limit !== undefined && compareQuantities(request, limit) > 0) {
      violation(`${path}.requests[${name}]`, `request "${request}" is more than the limit "${limit}"`);
    }
  }
}

function validateEnvVar(path: string, env: EnvVar): void {
  requireValid(`${path}.name`, env.name, checkEnvVarName(env.name));
  const source = env.valueFrom;
  if (source === undefined) return;
  if (env.value) violation(`${path}.valueFrom`, 'may not be set together with value');
  requireExactlyOne(
    `${path}.valueFrom`,
    {
      fieldRef: source.fieldRef !== undefined,
      resourceFieldRef: source.resourceFieldRef !== undefined,
      configMapKeyRef: source.configMapKeyRef !== undefined,
      secretKeyRef: source.secretKeyRef !== undefined,
    },
    'value source',
  );
  if (source.fieldRef) {
    const at = `${path}.valueFrom.fieldRef`;
    requireOneOf(`${at}.apiVersion`, source.fieldRef.apiVersion, ['v1']);
    const fieldPath = source.fieldRef.fieldPath;
    const labelOrAnnotation = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(fieldPath);
    if (labelOrAnnotation !== null)
      requireValid(`${at}.fieldPath`, labelOrAnnotation[2]!, checkQualifiedName(labelOrAnnotation[2]!));
    else
      requireOneOf(`${at}.fieldPath`, fieldPath, [
        ...ENV_FIELD_PATHS,
        "metadata.labels['<key>']",
        "metadata.annotations['<key>']",
      ]);
  }
  if (source.resourceFieldRef) {
    requireOneOf(
      `${path}.valueFrom.resourceFieldRef.resource`,
      source.resourceFieldRef.resource,
      ENV_RESOURCE_FIELDS,
    );
    if (source.resourceFieldRef.divisor) {
      const at = `${path}.valueFrom.resourceFieldRef.divisor`;
      if (parseQuantity(source.resourceFieldRef.divisor, at).milli <= 0n) violation(at, 'must be positive');
    }
  }
  for (const [refName, ref] of [
    ['configMapKeyRef', source.configMapKeyRef],
    ['secretKeyRef', source.secretKeyRef],
  ] as const) {
    if (ref === undefined) continue;
    const at = `${path}.valueFrom.${refName}`;
    const name = requireNonEmpty(
      `${at}.name`,
      ref.name,
      `the ${refName === 'configMapKeyRef' ? 'ConfigMap' : 'Secret'} name`,
    );
    requireValid(`${at}.name`, name, checkDns1123Subdomain(name));
    requireValid(`${at}.key`, ref.key, checkConfigKey(ref.key));
  }
}

function validateEnvFrom(path: string, source: EnvFromSource): void {
  requireExactlyOne(
    path,
    { configMapRef: source.configMapRef !== undefined, secretRef: source.secretRef !== undefined },
    'source',
  );
  if (source.prefix) requireValid(`${path}.prefix`, source.prefix, checkEnvVarName(source.prefix));
  const ref = source.configMapRef ?? source.secretRef!;
  const at = `${path}.${source.configMapRef ? 'configMapRef' : 'secretRef'}.name`;
  requireValid(
    at,
    requireNonEmpty(at, ref.name, 'the name to read variables from'),
    checkDns1123Subdomain(ref.name ?? ''),
  );
}

function validateHandler(path: string, handler: LifecycleHandler | Probe, allowSleep: boolean): void {
  const choices: Record<string, boolean> = {
    exec: handler.exec !== undefined,
    httpGet: handler.httpGet !== undefined,
    tcpSocket: handler.tcpSocket !== undefined,
  };
  if (allowSleep) choices['sleep'] = (handler as LifecycleHandler).sleep !== undefined;
  requireExactlyOne(path, choices, 'handler');
  if (handler.exec) {
    if ((handler.exec.command ?? []).length === 0)
      violation(`${path}.exec.command`, 'required: the command to run');
  }
  if (handler.httpGet) {
    validatePortReference(`${path}.httpGet.port`, handler.httpGet.port);
    requireOneOf(`${path}.httpGet.scheme`, handler.httpGet.scheme, ['HTTP', 'HTTPS']);
    if (handler.httpGet.path && !handler.httpGet.path.startsWith('/')) {
      violation(`${path}.httpGet.path`, `"${handler.httpGet.path}" must start with "/"`);
    }
  }
  if (handler.tcpSocket) validatePortReference(`${path}.tcpSocket.port`, handler.tcpSocket.port);
  if (allowSleep && (handler as LifecycleHandler).sleep) {
    requireAtLeast(`${path}.sleep.seconds`, (handler as LifecycleHandler).sleep!.seconds ?? 0, 0);
  }
}

function validateProbe(path: string, probe: Probe | undefined, successMustBeOne: boolean): void {
  if (probe === undefined) return;
  validateHandler(path, probe, false);
  requireAtLeast(`${path}.initialDelaySeconds`, probe.initialDelaySeconds, 0);
  requireAtLeast(`${path}.timeoutSeconds`, probe.timeoutSeconds, 0);
  requireAtLeast(`${path}.periodSeconds`, probe.periodSeconds, 0);
  requireAtLeast(`${path}.successThreshold`, probe.successThreshold, 0);
  requireAtLeast(`${path}.failureThreshold`, probe.failureThreshold, 0);
  if (successMustBeOne && (probe.successThreshold ?? 1) > 1) {
    violation(
      `${path}.successThreshold`,
      `must be 1 for liveness and startup probes, got ${probe.successThreshold}`,
    );
  }
  if (probe.terminationGracePeriodSeconds !== undefined) {
    requireAtLeast(`${path}.terminationGracePeriodSeconds`, probe.terminationGracePeriodSeconds, 1);
  }
}

function validateSecurityContext(path: string, context: SecurityContext | undefined): void {
  if (context === undefined) return;
  requireAtLeast(`${path}.runAsUser`, context.runAsUser, 0);
  requireAtLeast(`${path}.runAsGroup`, context.runAsGroup, 0);
  if (context.privileged && context.allowPrivilegeEscalation === false) {
    violation(`${path}.allowPrivilegeEscalation`, 'cannot be false when privileged is true');
  }
  if (context.runAsNonRoot && context.runAsUser === 0) {
    violation(`${path}.runAsUser`, 'cannot be 0 (root) when runAsNonRoot is true');
  }
  for (const part of ['add', 'drop'] as const) {
    (context.capabilities?.[part] ?? []).forEach((capability, i) => {
      if (!/^(CAP_)?[A-Z_]+$/.test(capability)) {
        violation(
          `${path}.capabilities.${part}[${i}]`,
          `"${capability}" is not a capability name such as NET_BIND_SERVICE or ALL`,
        );
      }
    });
  }
}

interface ContainerContext {
  volumeNames: Set<string>;
  portNames: Set<string>;
  init: boolean;
}

function validateContainer(path: string, container: Container, context: ContainerContext): void {
  requireValid(`${path}.name`, container.name, checkDns1123Label(container.name));
  const image = requireNonEmpty(`${path}.image`, container.image, 'every container needs an image');
  if (image.trim() !== image || /\s/.test(image))
    violation(`${path}.image`, `"${image}" must not contain whitespace`);
  requireOneOf(`${path}.imagePullPolicy`, container.imagePullPolicy, PULL_POLICIES);
  requireOneOf(`${path}.terminationMessagePolicy`, container.terminationMessagePolicy, [
    'File',
    'FallbackToLogsOnError',
  ]);
  if (container.workingDir && !container.workingDir.startsWith('/')) {
    violation(`${path}.workingDir`, `"${container.workingDir}" must be an absolute path`);
  }
  const seenPorts = new Set<string>();
  (container.ports ?? []).forEach((port, i) => {
    const at = `${path}.ports[${i}]`;
    requireInRange(`${at}.containerPort`, port.containerPort, 1, 65535);
    if (port.hostPort) requireInRange(`${at}.hostPort`, port.hostPort, 1, 65535);
    requireOneOf(`${at}.protocol`, port.protocol, PROTOCOLS);
    if (port.hostIP) requireValid(`${at}.hostIP`, port.hostIP, checkIp(port.hostIP));
    if (port.name) {
      requireValid(`${at}.name`, port.name, checkPortName(port.name));
      if (context.portNames.has(port.name))
        violation(`${at}.name`, `duplicate port name "${port.name}" in the pod`);
      context.portNames.add(port.name);
    }
    const key = `${port.containerPort}/${port.protocol || 'TCP'}`;
    if (seenPorts.has(key)) violation(`${at}.containerPort`, `duplicate port ${key} in the container`);
    seenPorts.add(key);
  });
  const envNames = new Set<string>();
  (container.env ?? []).forEach((env, i) => {
    validateEnvVar(`${path}.env[${i}]`, env);
    envNames.add(env.name);
  });
  (container.envFrom ?? []).forEach((source, i) => validateEnvFrom(`${path}.envFrom[${i}]`, source));
  validateResources(`${path}.resources`, container.resources);
  const mountPaths = new Set<string>();
  (container.volumeMounts ?? []).forEach((mount, i) => {
    const at = `${path}.volumeMounts[${i}]`;
    if (!context.volumeNames.has(mount.name)) {
      violation(`${at}.name`, `volume "${mount.name}" is not one of the pod's spec.volumes`);
    }
    if (!mount.mountPath.startsWith('/'))
      violation(`${at}.mountPath`, `"${mount.mountPath}" must be an absolute path`);
    if (mountPaths.has(mount.mountPath))
      violation(`${at}.mountPath`, `"${mount.mountPath}" is already mounted in this container`);
    mountPaths.add(mount.mountPath);
    if (mount.subPath) validateRelativePath(`${at}.subPath`, mount.subPath);
  });
  if (context.init) {
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
      if (container[probe] !== undefined)
        violation(`${path}.${probe}`, 'init containers may not have probes');
    }
    if (container.lifecycle !== undefined)
      violation(`${path}.lifecycle`, 'init containers may not have lifecycle hooks');
  }
  validateProbe(`${path}.livenessProbe`, container.livenessProbe, true);
  validateProbe(`${path}.readinessProbe`, container.readinessProbe, false);
  validateProbe(`${path}.startupProbe`, container.startupProbe, true);
  if (container.lifecycle?.postStart)
    validateHandler(`${path}.lifecycle.postStart`, container.lifecycle.postStart, true);
  if (container.lifecycle?.preStop)
    validateHandler(`${path}.lifecycle.preStop`, container.lifecycle.preStop, true);
  validateSecurityContext(`${path}.securityContext`, container.securityContext);
}

function validateRelativePath(path: string, value: string): void {
  if (value.startsWith('/')) violation(path, `"${value}" must be a relative path`);
  if (value.split('/').includes('..')) violation(path, `"${value}" must not contain '..'`);
}

function validateVolume(path: string, volume: Volume): void {
  requireValid(`${path}.name`, volume.name, checkDns1123Label(volume.name));
  requireExactlyOne(
    path,
    {
      emptyDir: volume.emptyDir !== undefined,
      hostPath: volume.hostPath !== undefined,
      configMap: volume.configMap !== undefined,
      secret: volume.secret !== undefined,
    },
    'volume source',
  );
  if (volume.emptyDir) {
    requireOneOf(`${path}.emptyDir.medium`, volume.emptyDir.medium, ['Memory']);
    if (volume.emptyDir.sizeLimit) {
      const at = `${path}.emptyDir.sizeLimit`;
      if (parseQuantity(volume.emptyDir.sizeLimit, at).milli < 0n) violation(at, 'must not be negative');
    }
  }
  if (volume.hostPath) {
    if (!volume.hostPath.path.startsWith('/'))
      violation(`${path}.hostPath.path`, `"${volume.hostPath.path}" must be an absolute path`);
    if (volume.hostPath.path.split('/').includes('..'))
      violation(`${path}.hostPath.path`, `"${volume.hostPath.path}" must not contain '..'`);
    requireOneOf(`${path}.hostPath.type`, volume.hostPath.type, HOST_PATH_TYPES);
  }
  const projected = volume.configMap
    ? { at: `${path}.configMap`, nameField: 'name', name: volume.configMap.name, source: volume.configMap }
    : volume.secret
      ? {
          at: `${path}.secret`,
          nameField: 'secretName',
          name: volume.secret.secretName,
          source: volume.secret,
        }
      : undefined;
  if (projected) {
    const nameAt = `${projected.at}.${projected.nameField}`;
    requireValid(
      nameAt,
      requireNonEmpty(nameAt, projected.name, 'the name of the object to project'),
      checkDns1123Subdomain(projected.name ?? ''),
    );
    requireInRange(`${projected.at}.defaultMode`, projected.source.defaultMode, 0, 0o777);
    (projected.source.items ?? []).forEach((item, i) => {
      requireValid(`${projected.at}.items[${i}].key`, item.key, checkConfigKey(item.key));
      validateRelativePath(`${projected.at}.items[${i}].path`, item.path);
      requireInRange(`${projected.at}.items[${i}].mode`, item.mode, 0, 0o777);
    });
  }
}

function validateToleration(path: string, toleration: Toleration): void {
  if (toleration.key) requireValid(`${path}.key`, toleration.key, checkQualifiedName(toleration.key));
  requireOneOf(`${path}.operator`, toleration.operator, ['Exists', 'Equal']);
  if (!toleration.key && toleration.operator !== 'Exists') {
    violation(`${path}.operator`, 'must be Exists when key is empty (a toleration of every taint)');
  }
  if (toleration.operator === 'Exists' && toleration.value) {
    violation(`${path}.value`, 'must be empty when operator is Exists');
  }
  if (toleration.value) {
    const problem = checkLabelValue(toleration.value);
    if (problem !== undefined) violation(`${path}.value`, `"${toleration.value}" ${problem}`);
  }
  requireOneOf(`${path}.effect`, toleration.effect, TAINT_EFFECTS);
  if (toleration.tolerationSeconds !== undefined && toleration.effect !== 'NoExecute') {
    violation(`${path}.tolerationSeconds`, 'may be set only when effect is NoExecute');
  }
}

function validateNodeSelectorTerm(path: string, term: NodeSelectorTerm): void {
  for (const part of ['matchExpressions', 'matchFields'] as const) {
    (term[part] ?? []).forEach((requirement, i) => {
      const at = `${path}.${part}[${i}]`;
      if (part === 'matchFields') {
        requireOneOf(`${at}.key`, requirement.key, ['metadata.name']);
      } else {
        requireValid(`${at}.key`, requirement.key, checkQualifiedName(requirement.key));
      }
      requireOneOf(`${at}.operator`, requirement.operator, NODE_SELECTOR_OPERATORS);
      const values = requirement.values ?? [];
      switch (requirement.operator) {
        case 'In':
        case 'NotIn':
          if (values.length === 0)
            violation(`${at}.values`, `must be non-empty when operator is ${requirement.operator}`);
          break;
        case 'Exists':
        case 'DoesNotExist':
          if (values.length > 0)
            violation(`${at}.values`, `must be empty when operator is ${requirement.operator}`);
          break;
        case 'Gt':
        case 'Lt':
          if (values.length !== 1 || !/^-?\d+$/.test(values[0]!)) {
            violation(`${at}.values`, `must be a single integer when operator is ${requirement.operator}`);
          }
      }
    });
  }
}

function validatePodAffinityTerm(path: string, term: PodAffinityTerm): void {
  if (term.labelSelector) labelSelectorFromObject(term.labelSelector, `${path}.labelSelector`);
  if (term.namespaceSelector) labelSelectorFromObject(term.namespaceSelector, `${path}.namespaceSelector`);
  requireValid(
    `${path}.topologyKey`,
    requireNonEmpty(
      `${path}.topologyKey`,
      term.topologyKey,
      'the node label that defines the topology domain',
    ),
    checkQualifiedName(term.topologyKey),
  );
  (term.namespaces ?? []).forEach((namespace, i) =>
    requireValid(`${path}.namespaces[${i}]`, namespace, checkDns1123Label(namespace)),
  );
}

function validateWeightedTerms(path: string, terms: WeightedPodAffinityTerm[] | undefined): void {
  (terms ?? []).forEach((term, i) => {
    requireInRange(`${path}[${i}].weight`, term.weight, 1, 100);
    validatePodAffinityTerm(`${path}[${i}].podAffinityTerm`, term.podAffinityTerm);
  });
}

function validateAffinity(path: string, affinity: Affinity | undefined): void {
  if (affinity === undefined) return;
  const node = affinity.nodeAffinity;
  if (node?.requiredDuringSchedulingIgnoredDuringExecution) {
    const at = `${path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`;
    const terms = node.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms ?? [];
    if (terms.length === 0) violation(at, 'required: at least one node selector term');
    terms.forEach((term, i) => validateNodeSelectorTerm(`${at}[${i}]`, term));
  }
  (node?.preferredDuringSchedulingIgnoredDuringExecution ?? []).forEach((term, i) => {
    const at = `${path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[${i}]`;
    requireInRange(`${at}.weight`, term.weight, 1, 100);
    validateNodeSelectorTerm(`${at}.preference`, term.preference);
  });
  for (const kind of ['podAffinity', 'podAntiAffinity'] as const) {
    const part = affinity[kind];
    (part?.requiredDuringSchedulingIgnoredDuringExecution ?? []).forEach((term, i) =>
      validatePodAffinityTerm(`${path}.${kind}.requiredDuringSchedulingIgnoredDuringExecution[${i}]`, term),
    );
    validateWeightedTerms(
      `${path}.${kind}.preferredDuringSchedulingIgnoredDuringExecution`,
      part?.preferredDuringSchedulingIgnoredDuringExecution,
    );
  }
}

export interface PodSpecRules {
  /** Restart policies allowed here (workload templates allow fewer than bare Pods). */
  restartPolicies: readonly string[];
}

export function validatePodSpec(
  path: string,
  spec: PodSpec,
  rules: PodSpecRules = { restartPolicies: RESTART_POLICIES },
): void {
  const volumeNames = new Set<string>();
  (spec.volumes ?? []).forEach((volume, i) => {
    validateVolume(`${path}.volumes[${i}]`, volume);
    if (volumeNames.has(volume.name))
      violation(`${path}.volumes[${i}].name`, `duplicate volume name "${volume.name}"`);
    volumeNames.add(volume.name);
  });
  if ((spec.containers ?? []).length === 0)
    violation(`${path}.containers`, 'required: a pod needs at least one container');
  const containerNames = new Set<string>();
  const context = { volumeNames, portNames: new Set<string>() };
  for (const [field, init] of [
    ['initContainers', true],
    ['containers', false],
  ] as const) {
    (spec[field] ?? []).forEach((container, i) => {
      const at = `${path}.${field}[${i}]`;
      validateContainer(at, container, { ...context, init });
      if (containerNames.has(container.name))
        violation(`${at}.name`, `duplicate container name "${container.name}"`);
      containerNames.add(container.name);
    });
  }
  if (
    spec.restartPolicy !== undefined &&
    spec.restartPolicy !== '' &&
    !rules.restartPolicies.includes(spec.restartPolicy)
  ) {
    violation(
      `${path}.restartPolicy`,
      `unsupported value "${spec.restartPolicy}": must be ${rules.restartPolicies.join(' or ')} here`,
    );
  }
  requireOneOf(`${path}.dnsPolicy`, spec.dnsPolicy, DNS_POLICIES);
  requireAtLeast(`${path}.terminationGracePeriodSeconds`, spec.terminationGracePeriodSeconds, 0);
  requireAtLeast(`${path}.activeDeadlineSeconds`, spec.activeDeadlineSeconds, 1);
  validateLabels(`${path}.nodeSelector`, spec.nodeSelector);
  if (spec.nodeName) requireValid(`${path}.nodeName`, spec.nodeName, checkDns1123Subdomain(spec.nodeName));
  if (spec.serviceAccountName)
    requireValid(
      `${path}.serviceAccountName`,
      spec.serviceAccountName,
      checkDns1123Subdomain(spec.serviceAccountName),
    );
  if (spec.schedulerName)
    requireValid(`${path}.schedulerName`, spec.schedulerName, checkDns1123Subdomain(spec.schedulerName));
  if (spec.hostname) requireValid(`${path}.hostname`, spec.hostname, checkDns1123Label(spec.hostname));
  if (spec.subdomain) requireValid(`${path}.subdomain`, spec.subdomain, checkDns1123Label(spec.subdomain));
  if (spec.hostNetwork) {
    // With the host's network the container port is the host port: they must agree, as in Kubernetes.
    for (const field of ['initContainers', 'containers'] as const) {
      (spec[field] ?? []).forEach((container, i) =>
        (container.ports ?? []).forEach((port, j) => {
          if (port.hostPort && port.hostPort !== port.containerPort) {
            violation(
              `${path}.${field}[${i}].ports[${j}].hostPort`,
              'must equal containerPort when hostNetwork is true',
            );
          }
        }),
      );
    }
  }
  const podSecurity = spec.securityContext;
  if (podSecurity) {
    requireAtLeast(`${path}.securityContext.runAsUser`, podSecurity.runAsUser, 0);
    requireAtLeast(`${path}.securityContext.runAsGroup`, podSecurity.runAsGroup, 0);
    requireAtLeast(`${path}.securityContext.fsGroup`, podSecurity.fsGroup, 0);
    (podSecurity.supplementalGroups ?? []).forEach((group, i) =>
      requireAtLeast(`${path}.securityContext.supplementalGroups[${i}]`, group, 0),
    );
    (podSecurity.sysctls ?? []).forEach((sysctl, i) => {
      if (!/^[a-z0-9]([-_a-z0-9]*[a-z0-9])?([./][a-z0-9]([-_a-z0-9]*[a-z0-9])?)*$/.test(sysctl.name)) {
        violation(
          `${path}.securityContext.sysctls[${i}].name`,
          `"${sysctl.name}" is not a sysctl name such as net.core.somaxconn`,
        );
      }
    });
  }
  (spec.imagePullSecrets ?? []).forEach((secret, i) =>
    requireValid(`${path}.imagePullSecrets[${i}].name`, secret.name, checkDns1123Subdomain(secret.name)),
  );
  validateAffinity(`${path}.affinity`, spec.affinity);
  (spec.tolerations ?? []).forEach((toleration, i) =>
    validateToleration(`${path}.tolerations[${i}]`, toleration),
  );
}

/**
 * A Pod's spec is fixed once created, as in Kubernetes, except: container and init container
 * images, activeDeadlineSeconds (set, or lowered), tolerations (only added), and nodeName (set
 * once, when the scheduler binds the pod).
 */
export function validatePodSpecUpdate(spec: PodSpec, old: PodSpec): void {
  const masked: PodSpec = structuredClone(spec);
  for (const field of ['containers', 'initContainers'] as const) {
    const oldContainers = old[field] ?? [];
    const newContainers = masked[field] ?? [];
    if (newContainers.length === oldContainers.length) {
      newContainers.forEach((container, i) => (container.image = oldContainers[i]!.image));
    }
  }
  if (
    spec.activeDeadlineSeconds !== undefined &&
    old.activeDeadlineSeconds !== undefined &&
    spec.activeDeadlineSeconds > old.activeDeadlineSeconds
  ) {
    violation(
      'spec.activeDeadlineSeconds',
      `may only be lowered (was ${old.activeDeadlineSeconds}, got ${spec.activeDeadlineSeconds})`,
    );
  }
  if (spec.activeDeadlineSeconds !== undefined) masked.activeDeadlineSeconds = old.activeDeadlineSeconds!;
  if (masked.activeDeadlineSeconds === undefined) delete masked.activeDeadlineSeconds;
  const oldTolerations = old.tolerations ?? [];
  const newTolerations = spec.tolerations ?? [];
  const kept = firstDifference(
    newTolerations.slice(0, oldTolerations.length),
    oldTolerations,
    'spec.tolerations',
    'Toleration',
  );
  if (kept !== undefined)
    violation(kept, 'existing tolerations may not be changed or removed, only new ones added');
  if (old.tolerations === undefined) delete masked.tolerations;
  else masked.tolerations = old.tolerations;
  if (!old.nodeName) {
    if (old.nodeName === undefined) delete masked.nodeName;
    else masked.nodeName = old.nodeName;
  }
  const changed = firstDifference(masked, old, 'spec', 'PodSpec');
  if (changed !== undefined) {
    violation(
      changed,
      'field is immutable: a pod spec may change only in container images, activeDeadlineSeconds, added tolerations and nodeName (once); delete and re-create the pod, or use a Deployment',
    );
  }
}

const POD_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

export function validatePodStatus(status: PodStatus | undefined): void {
  if (status === undefined) return;
  requireOneOf('status.phase', status.phase, POD_PHASES);
  (status.conditions ?? []).forEach((condition, i) =>
    requireOneOf(`status.conditions[${i}].status`, condition.status, ['True', 'False', 'Unknown']),
  );
  if (status.podIP) requireValid('status.podIP', status.podIP, checkIp(status.podIP));
  if (status.hostIP) requireValid('status.hostIP', status.hostIP, checkIp(status.hostIP));
  (status.podIPs ?? []).forEach((ip, i) =>
    requireValid(`status.podIPs[${i}].ip`, ip.ip ?? '', checkIp(ip.ip ?? '')),
  );
  for (const field of ['initContainerStatuses', 'containerStatuses'] as const) {
    (status[field] ?? []).forEach((containerStatus, i) =>
      requireAtLeast(`status.${field}[${i}].restartCount`, containerStatus.restartCount, 0),
    );
  }
}
