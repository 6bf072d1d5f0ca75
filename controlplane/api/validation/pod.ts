/**
 * Pod spec rules (for Pods and the pod templates of workload kinds) and what may change in a
 * running Pod's spec: containers (regular, init with their sidecars, ephemeral), env, resources,
 * probes, DNS, host aliases and gates. Volumes are in volumes.ts, security contexts and the OS
 * rules in security-context.ts, affinity, tolerations and topology spread in pod-placement.ts.
 */
import type {
  Container,
  ContainerResizePolicy,
  EnvFromSource,
  EnvVar,
  EphemeralContainer,
  IntOrString,
  LifecycleHandler,
  PodDNSConfig,
  PodSpec,
  PodStatus,
  Probe,
  ResourceRequirements,
} from '../../../proto/gen/types.js';
import { compareQuantities, parseQuantity } from '../../../proto/quantity.js';
import { InvalidArgumentError } from '../../../proto/errors.js';
import { firstDifference } from './diff.js';
import {
  requireAtLeast,
  requireExactlyOne,
  requireInRange,
  requireNonEmpty,
  requireOneOf,
  requireSetOneOf,
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
  checkPortName,
  checkQualifiedName,
} from './names.js';
import {
  validateAffinity,
  validateSchedulingGates,
  validateToleration,
  validateTopologySpreadConstraints,
} from './pod-placement.js';
import {
  validateContainerSecurityContext,
  validatePodOs,
  validatePodSecurityContext,
} from './security-context.js';
import { validateVolume, validateVolumeUse } from './volumes.js';

export const RESTART_POLICIES = ['Always', 'OnFailure', 'Never'] as const;
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'];
const DNS_POLICIES = ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'];
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

type Handler = LifecycleHandler & Pick<Probe, 'grpc'>;

function validateHandler(path: string, handler: Handler, kind: 'probe' | 'lifecycle'): void {
  const choices: Record<string, boolean> = {
    exec: handler.exec !== undefined,
    httpGet: handler.httpGet !== undefined,
    tcpSocket: handler.tcpSocket !== undefined,
  };
  if (kind === 'probe') choices['grpc'] = handler.grpc !== undefined;
  else choices['sleep'] = handler.sleep !== undefined;
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
  if (handler.grpc) requireInRange(`${path}.grpc.port`, handler.grpc.port, 1, 65535);
  if (handler.sleep) requireAtLeast(`${path}.sleep.seconds`, handler.sleep.seconds ?? 0, 0);
}

type ProbeKind = 'livenessProbe' | 'readinessProbe' | 'startupProbe';

function validateProbe(path: string, probe: Probe | undefined, kind: ProbeKind): void {
  if (probe === undefined) return;
  validateHandler(path, probe, 'probe');
  requireAtLeast(`${path}.initialDelaySeconds`, probe.initialDelaySeconds, 0);
  requireAtLeast(`${path}.timeoutSeconds`, probe.timeoutSeconds, 0);
  requireAtLeast(`${path}.periodSeconds`, probe.periodSeconds, 0);
  requireAtLeast(`${path}.successThreshold`, probe.successThreshold, 0);
  requireAtLeast(`${path}.failureThreshold`, probe.failureThreshold, 0);
  if (kind !== 'readinessProbe' && (probe.successThreshold ?? 1) > 1) {
    violation(
      `${path}.successThreshold`,
      `must be 1 for liveness and startup probes, got ${probe.successThreshold}`,
    );
  }
  if (probe.terminationGracePeriodSeconds !== undefined) {
    if (kind === 'readinessProbe')
      violation(`${path}.terminationGracePeriodSeconds`, 'may not be set for a readiness probe');
    requireAtLeast(`${path}.terminationGracePeriodSeconds`, probe.terminationGracePeriodSeconds, 1);
  }
}

/**
 * resizePolicy: how a change of cpu or memory (in-place resize) reaches the container. A pod that
 * never restarts cannot restart its container for it.
 */
function validateResizePolicy(
  path: string,
  policies: ContainerResizePolicy[] | undefined,
  podRestartPolicy: string | undefined,
): void {
  const seen = new Set<string>();
  (policies ?? []).forEach((policy, i) => {
    const at = `${path}[${i}]`;
    requireOneOf(`${at}.resourceName`, policy.resourceName, ['cpu', 'memory']);
    if (seen.has(policy.resourceName))
      violation(`${at}.resourceName`, `duplicate resource "${policy.resourceName}"`);
    seen.add(policy.resourceName);
    requireOneOf(`${at}.restartPolicy`, policy.restartPolicy, ['NotRequired', 'RestartContainer']);
    if (podRestartPolicy === 'Never' && policy.restartPolicy !== 'NotRequired') {
      violation(`${at}.restartPolicy`, "must be NotRequired when the pod's restartPolicy is Never");
    }
  });
}

/** resources.claims: entries of the pod's spec.resourceClaims the container uses. */
function validateClaims(
  path: string,
  resources: ResourceRequirements | undefined,
  claimNames: ReadonlySet<string>,
): void {
  const seen = new Set<string>();
  (resources?.claims ?? []).forEach((claim, i) => {
    const at = `${path}[${i}]`;
    if (!claimNames.has(claim.name)) {
      violation(
        `${at}.name`,
        `"${claim.name}" is not one of the pod's spec.resourceClaims (resource claims need the ResourceClaim kind of resource.k8s.io, which skiff does not serve)`,
      );
    }
    const key = `${claim.name}/${claim.request ?? ''}`;
    if (seen.has(key))
      violation(at, `duplicate claim "${claim.name}"${claim.request ? ` request "${claim.request}"` : ''}`);
    seen.add(key);
  });
}

type ContainerKind = 'init' | 'regular' | 'ephemeral';

interface ContainerContext {
  volumeNames: ReadonlySet<string>;
  portNames: Set<string>;
  claimNames: ReadonlySet<string>;
  kind: ContainerKind;
  podRestartPolicy: string | undefined;
  /** The pod's hostUsers (false: the pod has a user namespace of its own). */
  hostUsers: boolean;
}

/** The fields Kubernetes does not allow an ephemeral container to set: it may not serve the pod. */
const EPHEMERAL_FORBIDDEN = [
  'ports',
  'resources',
  'resizePolicy',
  'restartPolicy',
  'lifecycle',
  'livenessProbe',
  'readinessProbe',
  'startupProbe',
] as const;

function isSet(value: unknown): boolean {
  if (value === undefined) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object' && value !== null) return Object.values(value).some(isSet);
  return true;
}

function validateContainer(
  path: string,
  container: Container | EphemeralContainer,
  context: ContainerContext,
): void {
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
  if (context.kind === 'ephemeral') {
    for (const field of EPHEMERAL_FORBIDDEN) {
      if (isSet(container[field])) violation(`${path}.${field}`, 'may not be set for an ephemeral container');
    }
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
  (container.env ?? []).forEach((env, i) => validateEnvVar(`${path}.env[${i}]`, env));
  (container.envFrom ?? []).forEach((source, i) => validateEnvFrom(`${path}.envFrom[${i}]`, source));
  validateResources(`${path}.resources`, container.resources);
  validateClaims(`${path}.resources.claims`, container.resources, context.claimNames);
  validateVolumeUse(path, container, context.volumeNames, context.kind === 'ephemeral');

  const sidecar = context.kind === 'init' && container.restartPolicy === 'Always';
  if (container.restartPolicy !== undefined) {
    if (context.kind === 'regular') {
      violation(`${path}.restartPolicy`, 'may be set only for init containers (Always: a sidecar)');
    }
    requireSetOneOf(`${path}.restartPolicy`, container.restartPolicy, ['Always']);
  }
  if (context.kind === 'init' && !sidecar) {
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
      if (container[probe] !== undefined)
        violation(
          `${path}.${probe}`,
          'init containers may not have probes unless restartPolicy is Always (a sidecar)',
        );
    }
    if (container.lifecycle !== undefined)
      violation(
        `${path}.lifecycle`,
        'init containers may not have lifecycle hooks unless restartPolicy is Always (a sidecar)',
      );
  }
  if (context.kind === 'init' && isSet(container.resizePolicy)) {
    violation(`${path}.resizePolicy`, 'may not be set for init containers');
  }
  validateProbe(`${path}.livenessProbe`, container.livenessProbe, 'livenessProbe');
  validateProbe(`${path}.readinessProbe`, container.readinessProbe, 'readinessProbe');
  validateProbe(`${path}.startupProbe`, container.startupProbe, 'startupProbe');
  if (container.lifecycle?.postStart)
    validateHandler(`${path}.lifecycle.postStart`, container.lifecycle.postStart, 'lifecycle');
  if (container.lifecycle?.preStop)
    validateHandler(`${path}.lifecycle.preStop`, container.lifecycle.preStop, 'lifecycle');
  validateResizePolicy(`${path}.resizePolicy`, container.resizePolicy, context.podRestartPolicy);
  validateContainerSecurityContext(`${path}.securityContext`, container.securityContext, context.hostUsers);
}

/** Kubernetes' limits, from what the C library's resolver reads. */
const MAX_DNS_NAMESERVERS = 3;
const MAX_DNS_SEARCHES = 32;
const MAX_DNS_SEARCH_CHARACTERS = 2048;

const RESOLV_CONF_WORD_BREAK = /[\s\x00-\x1f\x7f]/;

function validateDnsConfig(
  path: string,
  config: PodDNSConfig | undefined,
  dnsPolicy: string | undefined,
): void {
  if (dnsPolicy === 'None') {
    if (config === undefined) violation(path, 'required when dnsPolicy is None');
    if ((config.nameservers ?? []).length === 0)
      violation(`${path}.nameservers`, 'required: at least one nameserver when dnsPolicy is None');
  }
  if (config === undefined) return;
  const nameservers = config.nameservers ?? [];
  if (nameservers.length > MAX_DNS_NAMESERVERS)
    violation(
      `${path}.nameservers`,
      `must have at most ${MAX_DNS_NAMESERVERS} nameservers, got ${nameservers.length}`,
    );
  nameservers.forEach((ip, i) => requireValid(`${path}.nameservers[${i}]`, ip, checkIp(ip)));
  const searches = config.searches ?? [];
  if (searches.length > MAX_DNS_SEARCHES)
    violation(
      `${path}.searches`,
      `must have at most ${MAX_DNS_SEARCHES} search domains, got ${searches.length}`,
    );
  const characters = searches.join(' ').length;
  if (characters > MAX_DNS_SEARCH_CHARACTERS) {
    violation(
      `${path}.searches`,
      `must be at most ${MAX_DNS_SEARCH_CHARACTERS} characters together (with spaces between), got ${characters}`,
    );
  }
  searches.forEach((search, i) => {
    const domain = search.replace(/\.$/, '');
    requireValid(`${path}.searches[${i}]`, search, checkDns1123Subdomain(domain));
  });
  (config.options ?? []).forEach((option, i) => {
    requireNonEmpty(`${path}.options[${i}].name`, option.name, 'the resolver option to set');
    // one word each on resolv.conf's options line: a space or newline would add lines of its own
    for (const field of ['name', 'value'] as const) {
      const text = option[field];
      if (text !== undefined && RESOLV_CONF_WORD_BREAK.test(text))
        violation(
          `${path}.options[${i}].${field}`,
          'may not contain spaces, tabs, newlines or other control characters',
        );
    }
  });
}

/**
 * Pod-level resources (cpu and memory for the whole pod): each at least what its containers
 * request together, and no container's limit above the pod's.
 */
function validatePodResources(specPath: string, spec: PodSpec): void {
  const resources = spec.resources;
  if (resources === undefined) return;
  const path = `${specPath}.resources`;
  if (isSet(resources.claims)) violation(`${path}.claims`, 'may not be set for pod-level resources');
  for (const part of ['limits', 'requests'] as const) {
    for (const name of Object.keys(resources[part] ?? {})) {
      requireOneOf(`${path}.${part}[${name}]`, name, ['cpu', 'memory']);
    }
  }
  validateResources(path, resources);
  for (const [name, podRequest] of Object.entries(resources.requests ?? {})) {
    const needed = aggregateRequest(spec, name);
    if (needed > parseQuantity(podRequest).milli) {
      violation(
        `${path}.requests[${name}]`,
        `"${podRequest}" is less than what the containers request together (${Number(needed) / 1000})`,
      );
    }
  }
  (spec.containers ?? []).forEach((container, i) => {
    for (const [name, limit] of Object.entries(container.resources?.limits ?? {})) {
      const podLimit = resources.limits?.[name];
      if (podLimit !== undefined && compareQuantities(limit, podLimit) > 0) {
        violation(
          `${specPath}.containers[${i}].resources.limits[${name}]`,
          `"${limit}" is more than the pod-level limit "${podLimit}"`,
        );
      }
    }
  });
}

/**
 * What the containers request of `name` together, in thousandths, as Kubernetes reckons it: the
 * regular containers and sidecars all run at once, and each init container runs beside the
 * sidecars started before it.
 */
function aggregateRequest(spec: PodSpec, name: string): bigint {
  const request = (container: Container): bigint => {
    const value = container.resources?.requests?.[name];
    return value === undefined ? 0n : parseQuantity(value).milli;
  };
  let sidecars = 0n;
  let initPeak = 0n;
  for (const container of spec.initContainers ?? []) {
    if (container.restartPolicy === 'Always') sidecars += request(container);
    else if (sidecars + request(container) > initPeak) initPeak = sidecars + request(container);
  }
  const running = (spec.containers ?? []).reduce((sum, container) => sum + request(container), sidecars);
  return running > initPeak ? running : initPeak;
}

export interface PodSpecRules {
  /** Restart policies allowed here (workload templates allow fewer than bare Pods). */
  restartPolicies: readonly string[];
  /** The spec is a Pod's own, not a pod template's: the rules Kubernetes applies to Pods only. */
  isPod?: boolean;
}

export function validatePodSpec(
  path: string,
  spec: PodSpec,
  rules: PodSpecRules = { restartPolicies: RESTART_POLICIES },
): void {
  const isPod = rules.isPod === true;
  const volumeNames = new Set<string>();
  (spec.volumes ?? []).forEach((volume, i) => {
    validateVolume(`${path}.volumes[${i}]`, volume, { isPod, serviceAccountName: spec.serviceAccountName });
    if (volumeNames.has(volume.name))
      violation(`${path}.volumes[${i}].name`, `duplicate volume name "${volume.name}"`);
    volumeNames.add(volume.name);
  });
  if (isSet(spec.resourceClaims)) {
    violation(
      `${path}.resourceClaims`,
      'resource claims need the ResourceClaim and ResourceClaimTemplate kinds (resource.k8s.io), which skiff does not serve',
    );
  }
  if ((spec.containers ?? []).length === 0)
    violation(`${path}.containers`, 'required: a pod needs at least one container');
  const containerNames = new Set<string>();
  const context = {
    volumeNames,
    portNames: new Set<string>(),
    claimNames: new Set<string>(),
    podRestartPolicy: spec.restartPolicy,
    hostUsers: spec.hostUsers !== false,
  };
  for (const [field, kind] of [
    ['initContainers', 'init'],
    ['containers', 'regular'],
  ] as const) {
    (spec[field] ?? []).forEach((container, i) => {
      const at = `${path}.${field}[${i}]`;
      validateContainer(at, container, { ...context, kind });
      if (containerNames.has(container.name))
        violation(`${at}.name`, `duplicate container name "${container.name}"`);
      containerNames.add(container.name);
    });
  }
  if (isSet(spec.ephemeralContainers) && !isPod) {
    violation(
      `${path}.ephemeralContainers`,
      'may not be set in a pod template: ephemeral containers are added to a running pod',
    );
  }
  (spec.ephemeralContainers ?? []).forEach((container, i) => {
    const at = `${path}.ephemeralContainers[${i}]`;
    validateContainer(at, container, { ...context, portNames: new Set(), kind: 'ephemeral' });
    if (containerNames.has(container.name))
      violation(`${at}.name`, `duplicate container name "${container.name}"`);
    if (container.targetContainerName && !containerNames.has(container.targetContainerName)) {
      violation(
        `${at}.targetContainerName`,
        `"${container.targetContainerName}" is not one of the pod's containers or init containers`,
      );
    }
    containerNames.add(container.name);
  });
  validatePodResources(path, spec);
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
  validateDnsConfig(`${path}.dnsConfig`, spec.dnsConfig, spec.dnsPolicy);
  requireAtLeast(`${path}.terminationGracePeriodSeconds`, spec.terminationGracePeriodSeconds, 0);
  requireAtLeast(`${path}.activeDeadlineSeconds`, spec.activeDeadlineSeconds, 1);
  validateLabels(`${path}.nodeSelector`, spec.nodeSelector);
  if (spec.nodeName) requireValid(`${path}.nodeName`, spec.nodeName, checkDns1123Subdomain(spec.nodeName));
  for (const field of ['serviceAccountName', 'serviceAccount'] as const) {
    const name = spec[field];
    if (name) requireValid(`${path}.${field}`, name, checkDns1123Subdomain(name));
  }
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
  validatePodSecurityContext(path, spec);
  (spec.imagePullSecrets ?? []).forEach((secret, i) =>
    requireValid(`${path}.imagePullSecrets[${i}].name`, secret.name, checkDns1123Subdomain(secret.name)),
  );
  validateAffinity(`${path}.affinity`, spec.affinity);
  (spec.tolerations ?? []).forEach((toleration, i) =>
    validateToleration(`${path}.tolerations[${i}]`, toleration),
  );
  (spec.hostAliases ?? []).forEach((alias, i) => {
    requireValid(`${path}.hostAliases[${i}].ip`, alias.ip, checkIp(alias.ip));
    (alias.hostnames ?? []).forEach((hostname, j) =>
      requireValid(`${path}.hostAliases[${i}].hostnames[${j}]`, hostname, checkDns1123Subdomain(hostname)),
    );
  });
  (spec.readinessGates ?? []).forEach((gate, i) =>
    requireValid(
      `${path}.readinessGates[${i}].conditionType`,
      gate.conditionType,
      checkQualifiedName(gate.conditionType),
    ),
  );
  validateSchedulingGates(`${path}.schedulingGates`, spec.schedulingGates);
  if (isPod && spec.nodeName && isSet(spec.schedulingGates)) {
    violation(`${path}.nodeName`, 'may not be set while the pod has schedulingGates');
  }
  validateTopologySpreadConstraints(`${path}.topologySpreadConstraints`, spec.topologySpreadConstraints);
  if (spec.priorityClassName)
    requireValid(
      `${path}.priorityClassName`,
      spec.priorityClassName,
      checkDns1123Subdomain(spec.priorityClassName),
    );
  requireSetOneOf(`${path}.preemptionPolicy`, spec.preemptionPolicy, ['PreemptLowerPriority', 'Never']);
  if (spec.runtimeClassName !== undefined) {
    const name = spec.runtimeClassName;
    requireValid(`${path}.runtimeClassName`, name, checkDns1123Subdomain(name));
    violation(
      `${path}.runtimeClassName`,
      `RuntimeClass "${name}" does not exist: skiff serves no RuntimeClass kind, so a pod runs with the node's own runtime; leave runtimeClassName out`,
    );
  }
  // What the pod's sandbox costs beyond its containers: in Kubernetes only RuntimeClass admission
  // sets it (from the class), and a pod that brings its own is refused.
  validateResourceList(`${path}.overhead`, spec.overhead);
  if (isPod && spec.overhead !== undefined && Object.keys(spec.overhead).length > 0)
    violation(
      `${path}.overhead`,
      'may only be set from a RuntimeClass, and skiff serves no RuntimeClass kind: leave overhead out',
    );
  validatePodOs(path, spec);
}

/**
 * A Pod's spec is fixed once created, as in Kubernetes, except: container and init container
 * images, activeDeadlineSeconds (set, or lowered), tolerations (only added), schedulingGates
 * (only removed), nodeName (set once, when the scheduler binds the pod) and serviceAccountName
 * set to "default" where a pod stored before that default had none.
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
  const oldGates = new Set((old.schedulingGates ?? []).map((gate) => gate.name));
  (spec.schedulingGates ?? []).forEach((gate, i) => {
    if (!oldGates.has(gate.name)) {
      violation(
        `spec.schedulingGates[${i}].name`,
        `"${gate.name}" is new: scheduling gates may only be removed once the pod exists`,
      );
    }
  });
  if (old.schedulingGates === undefined) delete masked.schedulingGates;
  else masked.schedulingGates = old.schedulingGates;
  if (!old.nodeName) {
    if (old.nodeName === undefined) delete masked.nodeName;
    else masked.nodeName = old.nodeName;
  }
  if (old.serviceAccountName === undefined && spec.serviceAccountName === 'default') {
    delete masked.serviceAccountName;
  }
  const changed = firstDifference(masked, old, 'spec', 'PodSpec');
  if (changed !== undefined) {
    violation(
      changed,
      'field is immutable: a pod spec may change only in container images, activeDeadlineSeconds, added tolerations, removed schedulingGates and nodeName (once); delete and re-create the pod, or use a Deployment',
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
