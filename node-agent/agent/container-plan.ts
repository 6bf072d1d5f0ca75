/**
 * How a pod's container becomes a runtime container, as a Linux kubelet makes it: the process
 * (command/args over the image's entrypoint/cmd), the environment (envFrom, env, valueFrom, `$(VAR)`
 * references), limits and the security context. Pure: what it needs from the API (ConfigMaps,
 * Secrets) comes in resolved, and a spec this node cannot honour is a PodConfigError naming the
 * field, which fails that pod (CreateContainerConfigError), never the agent.
 */
import type { ConfigMap, Container, Pod, Secret } from '../../proto/gen/types.js';
import { milliValue, parseQuantity, wholeValue } from '../../proto/quantity.js';
import { capabilityNumber } from '../runtime/runtime.js';

/** A pod spec this node cannot run as given: `field` is the path in the pod (`spec.containers[0].env[2]`). */
export class PodConfigError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'PodConfigError';
  }
}

/** ConfigMaps and Secrets of the pod's namespace by name, as read for this pod (absent: not found). */
export interface PodReferences {
  configMaps: ReadonlyMap<string, ConfigMap | undefined>;
  secrets: ReadonlyMap<string, Secret | undefined>;
}

/** The node facts a pod's environment may name (status.hostIP, spec.nodeName…). */
export interface PodPlacement {
  nodeName: string;
  hostIP: string;
  podIP: string;
}

/** The ConfigMaps and Secrets a pod's containers, init containers and volumes refer to. */
export function referencedObjects(pod: Pod): { configMaps: Set<string>; secrets: Set<string> } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const c of [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])]) {
    for (const from of c.envFrom ?? []) {
      if (from.configMapRef?.name) configMaps.add(from.configMapRef.name);
      if (from.secretRef?.name) secrets.add(from.secretRef.name);
    }
    for (const env of c.env ?? []) {
      if (env.valueFrom?.configMapKeyRef?.name) configMaps.add(env.valueFrom.configMapKeyRef.name);
      if (env.valueFrom?.secretKeyRef?.name) secrets.add(env.valueFrom.secretKeyRef.name);
    }
  }
  for (const v of pod.spec.volumes ?? []) {
    if (v.configMap?.name) configMaps.add(v.configMap.name);
    if (v.secret?.secretName) secrets.add(v.secret.secretName);
    for (const source of v.projected?.sources ?? []) {
      if (source.configMap?.name) configMaps.add(source.configMap.name);
      if (source.secret?.name) secrets.add(source.secret.name);
    }
  }
  return { configMaps, secrets };
}

/**
 * The process: Kubernetes' rule, not Docker's. `command` replaces the image's ENTRYPOINT (and then
 * its CMD is not used); `args` replace CMD; `$(VAR)` in either expands from the container's env.
 */
export function containerArgv(
  container: Container,
  imageConfig: Record<string, unknown>,
  env: ReadonlyMap<string, string>,
  field: string,
): string[] {
  const entrypoint = stringList(imageConfig.Entrypoint);
  const cmd = stringList(imageConfig.Cmd);
  const expand = (list: string[]): string[] => list.map((s) => expandReferences(s, env));
  let argv: string[];
  if (container.command !== undefined && container.command.length > 0)
    argv = [...expand(container.command), ...expand(container.args ?? [])];
  else if (container.args !== undefined && container.args.length > 0)
    argv = [...entrypoint, ...expand(container.args)];
  else argv = [...entrypoint, ...cmd];
  if (argv.length === 0)
    throw new PodConfigError(
      `container ${container.name}: no command: the image has no ENTRYPOINT or CMD and the pod gives no command`,
      `${field}.command`,
    );
  return argv;
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/**
 * `$(NAME)` becomes the variable's value when it is defined, and stays as written otherwise;
 * `$$` is a literal `$` (so `$$(NAME)` is the text `$(NAME)`), as Kubernetes expands.
 */
export function expandReferences(text: string, env: ReadonlyMap<string, string>): string {
  if (!text.includes('$')) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch !== '$' || i + 1 >= text.length) {
      out += ch;
      continue;
    }
    const next = text[i + 1]!;
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = text.indexOf(')', i + 2);
      if (close < 0) {
        out += text.slice(i);
        break;
      }
      const name = text.slice(i + 2, close);
      const value = env.get(name);
      out += value ?? text.slice(i, close + 1);
      i = close;
    } else out += ch;
  }
  return out;
}

/** The container's environment in order (envFrom first, then env, later names replacing earlier). */
export function containerEnv(
  pod: Pod,
  container: Container,
  refs: PodReferences,
  placement: PodPlacement,
  field: string,
): Map<string, string> {
  const env = new Map<string, string>();
  (container.envFrom ?? []).forEach((from, i) => {
    const at = `${field}.envFrom[${i}]`;
    const prefix = from.prefix ?? '';
    if (from.configMapRef) {
      const name = from.configMapRef.name ?? '';
      const cm = refs.configMaps.get(name);
      if (!cm) {
        if (from.configMapRef.optional) return;
        throw new PodConfigError(`configmap "${name}" not found`, `${at}.configMapRef`);
      }
      for (const [k, v] of Object.entries(cm.data ?? {})) env.set(prefix + k, v);
    }
    if (from.secretRef) {
      const name = from.secretRef.name ?? '';
      const secret = refs.secrets.get(name);
      if (!secret) {
        if (from.secretRef.optional) return;
        throw new PodConfigError(`secret "${name}" not found`, `${at}.secretRef`);
      }
      for (const [k, v] of Object.entries(secretData(secret))) env.set(prefix + k, v.toString('utf8'));
    }
  });
  (container.env ?? []).forEach((variable, i) => {
    const at = `${field}.env[${i}]`;
    if (variable.valueFrom === undefined) {
      env.set(variable.name, expandReferences(variable.value ?? '', env));
      return;
    }
    const value = valueFrom(pod, container, variable.valueFrom, refs, placement, `${at}.valueFrom`);
    if (value !== undefined) env.set(variable.name, value);
  });
  return env;
}

/** A Secret's values as bytes (`data` is base64 on the wire and here; `stringData` is merged by the API). */
export function secretData(secret: Secret): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(secret.data ?? {}))
    out[k] = typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v as Uint8Array);
  for (const [k, v] of Object.entries(secret.stringData ?? {})) out[k] = Buffer.from(v, 'utf8');
  return out;
}

function valueFrom(
  pod: Pod,
  container: Container,
  source: NonNullable<NonNullable<Container['env']>[number]['valueFrom']>,
  refs: PodReferences,
  placement: PodPlacement,
  at: string,
): string | undefined {
  if (source.configMapKeyRef) {
    const { name = '', key, optional } = source.configMapKeyRef;
    const cm = refs.configMaps.get(name);
    const value = cm?.data?.[key];
    if (value !== undefined) return value;
    if (optional) return undefined;
    throw new PodConfigError(
      cm ? `configmap "${name}" has no key "${key}"` : `configmap "${name}" not found`,
      `${at}.configMapKeyRef`,
    );
  }
  if (source.secretKeyRef) {
    const { name = '', key, optional } = source.secretKeyRef;
    const secret = refs.secrets.get(name);
    const value = secret ? secretData(secret)[key] : undefined;
    if (value !== undefined) return value.toString('utf8');
    if (optional) return undefined;
    throw new PodConfigError(
      secret ? `secret "${name}" has no key "${key}"` : `secret "${name}" not found`,
      `${at}.secretKeyRef`,
    );
  }
  if (source.fieldRef) return podField(pod, placement, source.fieldRef.fieldPath, `${at}.fieldRef`);
  if (source.resourceFieldRef) {
    const target = source.resourceFieldRef.containerName
      ? [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])].find(
          (c) => c.name === source.resourceFieldRef!.containerName,
        )
      : container;
    if (!target)
      throw new PodConfigError(
        `no container named "${source.resourceFieldRef.containerName}"`,
        `${at}.resourceFieldRef.containerName`,
      );
    return resourceField(target, source.resourceFieldRef.resource, source.resourceFieldRef.divisor, at);
  }
  throw new PodConfigError('valueFrom names no source', at);
}

/** The downward API's pod fields (env and downwardAPI volumes). */
export function podField(pod: Pod, placement: PodPlacement, path: string, at: string): string {
  const meta = pod.metadata;
  const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
  if (label) return meta.labels?.[label[1]!] ?? '';
  const annotation = /^metadata\.annotations\['(.+)'\]$/.exec(path);
  if (annotation) return meta.annotations?.[annotation[1]!] ?? '';
  const formatMap = (m: Record<string, string> | undefined): string =>
    Object.keys(m ?? {})
      .sort()
      .map((k) => `${k}=${JSON.stringify(m![k])}`)
      .join('\n');
  switch (path) {
    case 'metadata.name':
      return meta.name ?? '';
    case 'metadata.namespace':
      return meta.namespace ?? '';
    case 'metadata.uid':
      return meta.uid ?? '';
    case 'metadata.labels':
      return formatMap(meta.labels);
    case 'metadata.annotations':
      return formatMap(meta.annotations);
    case 'spec.nodeName':
      return placement.nodeName;
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? '';
    case 'status.hostIP':
      return placement.hostIP;
    case 'status.hostIPs':
      return placement.hostIP;
    case 'status.podIP':
      return placement.podIP;
    case 'status.podIPs':
      return placement.podIP;
  }
  throw new PodConfigError(`fieldPath "${path}" is not a field the downward API offers`, at);
}

/** limits.cpu and friends, in units of the divisor (cpu rounds up, as Kubernetes); unset limits read as 0 here. */
export function resourceField(
  container: Container,
  resource: string,
  divisor: string | undefined,
  at: string,
): string {
  const [kind, name] = resource.split('.', 2) as [string, string];
  if ((kind !== 'limits' && kind !== 'requests') || !name)
    throw new PodConfigError(
      `resource "${resource}" is not limits.X or requests.X`,
      `${at}.resourceFieldRef.resource`,
    );
  const quantity = container.resources?.[kind]?.[name] ?? container.resources?.limits?.[name];
  if (quantity === undefined) return '0';
  const by = divisor ?? (name === 'cpu' ? '1' : '1');
  if (name === 'cpu') return String(Math.ceil(milliValue(quantity) / milliValue(by)));
  return String(Math.ceil(wholeValue(quantity) / Math.max(1, wholeValue(by))));
}

/** What a container's limits and security context become in the runtime. */
export interface ContainerLimits {
  memoryBytes?: number;
  cpus?: number;
  user?: { uid: number; gid?: number; additionalGids?: number[] };
  readOnly: boolean;
}

export function containerLimits(pod: Pod, container: Container, field: string): ContainerLimits {
  const limits = container.resources?.limits ?? {};
  const out: ContainerLimits = { readOnly: container.securityContext?.readOnlyRootFilesystem === true };
  if (limits.memory !== undefined)
    out.memoryBytes = wholeValue(parseQuantity(limits.memory, `${field}.resources.limits.memory`));
  if (limits.cpu !== undefined)
    out.cpus = milliValue(parseQuantity(limits.cpu, `${field}.resources.limits.cpu`)) / 1000;
  const podSc = pod.spec.securityContext ?? {};
  const sc = container.securityContext ?? {};
  const uid = sc.runAsUser ?? podSc.runAsUser;
  const gid = sc.runAsGroup ?? podSc.runAsGroup;
  const runAsNonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
  if (runAsNonRoot && uid === 0)
    throw new PodConfigError(
      `container ${container.name}: runAsNonRoot is set and runAsUser is 0`,
      `${field}.securityContext.runAsUser`,
    );
  if (uid !== undefined) {
    out.user = { uid };
    if (gid !== undefined) out.user.gid = gid;
    if (podSc.supplementalGroups?.length) out.user.additionalGids = [...podSc.supplementalGroups];
  }
  return out;
}

/** What a container's securityContext asks of the runtime beyond its user (runtime create options). */
export interface ContainerSecurity {
  capAdd?: string[];
  capDrop?: string[];
  privileged?: true;
  noNewPrivileges?: boolean;
}

/** What this node lets pods ask for. */
export interface NodeSecurityPolicy {
  /** `skiff agent --allow-privileged`: privileged containers may run (else CreateContainerConfigError). */
  allowPrivileged: boolean;
}

/**
 * securityContext.privileged, capabilities and allowPrivilegeEscalation, as the kubelet and
 * containerd apply them: capabilities are added to and dropped from the runtime's default set
 * (Docker's) by name, ALL included (the runtime resolves them; names are checked here so that a
 * bad one names its field); allowPrivilegeEscalation false sets no_new_privs; true or unset
 * leaves it off, as in Kubernetes (unset means "allowed", so images whose setuid binaries work under
 * the kubelet work here; the restricted Pod Security profile asks for false). `skiff runtime run`
 * keeps the runtime's stricter default (no_new_privs on).
 * privileged needs the node's consent and then takes every capability, no seccomp filter and no
 * no_new_privs, whatever else is asked.
 */
export function containerSecurity(
  container: Container,
  field: string,
  node: NodeSecurityPolicy,
): ContainerSecurity {
  const sc = container.securityContext ?? {};
  const at = `${field}.securityContext`;
  if (sc.privileged) {
    if (!node.allowPrivileged)
      throw new PodConfigError(
        `container ${container.name}: privileged containers are not allowed on this node (its agent runs without --allow-privileged)`,
        `${at}.privileged`,
      );
    return { privileged: true };
  }
  const out: ContainerSecurity = {};
  const check = (list: string[] | undefined, which: 'add' | 'drop'): void =>
    (list ?? []).forEach((name, i) => {
      if (name.toUpperCase() !== 'ALL' && capabilityNumber(name) === undefined)
        throw new PodConfigError(
          `container ${container.name}: "${name}" is not a Linux capability (e.g. NET_ADMIN, SYS_TIME, ALL)`,
          `${at}.capabilities.${which}[${i}]`,
        );
    });
  check(sc.capabilities?.add, 'add');
  check(sc.capabilities?.drop, 'drop');
  if (sc.capabilities?.add?.length) out.capAdd = [...sc.capabilities.add];
  if (sc.capabilities?.drop?.length) out.capDrop = [...sc.capabilities.drop];
  out.noNewPrivileges = sc.allowPrivilegeEscalation === false;
  return out;
}

/** runAsNonRoot with an image whose user is root (or unknown as a name): refused before start, as the kubelet does. */
export function checkNonRoot(pod: Pod, container: Container, imageUser: string, field: string): void {
  const runAsNonRoot = container.securityContext?.runAsNonRoot ?? pod.spec.securityContext?.runAsNonRoot;
  if (!runAsNonRoot) return;
  if ((container.securityContext?.runAsUser ?? pod.spec.securityContext?.runAsUser) !== undefined) return;
  const user = imageUser.split(':')[0] ?? '';
  if (user === '' || user === '0' || user === 'root')
    throw new PodConfigError(
      `container has runAsNonRoot and image will run as root`,
      `${field}.securityContext.runAsNonRoot`,
    );
  if (!/^\d+$/.test(user))
    throw new PodConfigError(
      `container has runAsNonRoot and image has non-numeric user (${user}), cannot verify user is non-root`,
      `${field}.securityContext.runAsNonRoot`,
    );
}
