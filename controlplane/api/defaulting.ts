/**
 * Defaulting: the values the API server fills in on create and update before validating, as
 * Kubernetes does, so every stored object says explicitly what it means (a Deployment without
 * `replicas` is stored with `replicas: 1`). Pure: returns a defaulted copy, never changes its input,
 * and is idempotent (defaulting a defaulted object changes nothing).
 *
 * Also done here: Secret `stringData` is merged into `data` (base64) and dropped, because Kubernetes
 * treats it as a write-only convenience that is never stored.
 */
import type {
  Container,
  DaemonSet,
  Deployment,
  Job,
  KubeObject,
  PodSpec,
  PodTemplateSpec,
  Probe,
  ReplicaSet,
  Secret,
  Service,
} from '../../proto/gen/types.js';

export const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30;
export const DEFAULT_SCHEDULER_NAME = 'default-scheduler';
export const DEFAULT_REVISION_HISTORY_LIMIT = 10;
export const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;
export const DEFAULT_BACKOFF_LIMIT = 6;
/** 0644, the mode of files projected from ConfigMaps and Secrets. */
export const DEFAULT_VOLUME_FILE_MODE = 0o644;

/**
 * A deep copy of JSON-shaped data, which is what a KubeObject is: lists and plain objects are
 * copied, anything else is kept as is. It replaced structuredClone, which cost twice as much on
 * every create.
 */
function copyData<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(copyData) as T;
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const item = copyData((value as Record<string, unknown>)[key]);
    // A hostile "__proto__" key must stay a plain key, not replace the copy's prototype.
    if (key === '__proto__')
      Object.defineProperty(copy, key, { value: item, enumerable: true, writable: true, configurable: true });
    else copy[key] = item;
  }
  return copy as T;
}

/** A defaulted copy of `obj`. */
export function defaultObject<T extends KubeObject>(obj: T): T {
  const copy = copyData(obj);
  switch (copy.kind) {
    case 'Pod':
      copy.spec = defaultPodSpec(copy.spec ?? {});
      break;
    case 'ReplicaSet':
      defaultReplicaSet(copy);
      break;
    case 'Deployment':
      defaultDeployment(copy);
      break;
    case 'DaemonSet':
      defaultDaemonSet(copy);
      break;
    case 'Job':
      defaultJob(copy);
      break;
    case 'Service':
      defaultService(copy);
      break;
    case 'Secret':
      defaultSecret(copy);
      break;
    case 'Namespace':
      copy.status = { ...copy.status, phase: copy.status?.phase || 'Active' };
      break;
    case 'Node':
    case 'Endpoints':
    case 'ConfigMap':
    case 'Event':
      break;
  }
  return copy;
}

/** `:latest` or no tag means "moving target", so it is pulled every time; a pinned tag or digest once. */
export function defaultImagePullPolicy(image: string): 'Always' | 'IfNotPresent' {
  if (image.includes('@')) return 'IfNotPresent';
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const colon = lastSegment.lastIndexOf(':');
  if (colon === -1) return 'Always';
  return lastSegment.slice(colon + 1) === 'latest' ? 'Always' : 'IfNotPresent';
}

function defaultProbe(probe: Probe | undefined): Probe | undefined {
  if (probe === undefined) return undefined;
  return {
    ...probe,
    timeoutSeconds: probe.timeoutSeconds || 1,
    periodSeconds: probe.periodSeconds || 10,
    successThreshold: probe.successThreshold || 1,
    failureThreshold: probe.failureThreshold || 3,
    ...(probe.httpGet === undefined
      ? {}
      : { httpGet: { ...probe.httpGet, scheme: probe.httpGet.scheme || 'HTTP' } }),
  };
}

function defaultContainer(container: Container): Container {
  const out: Container = { ...container };
  if (!out.imagePullPolicy && out.image) out.imagePullPolicy = defaultImagePullPolicy(out.image);
  if (out.ports) out.ports = out.ports.map((port) => ({ ...port, protocol: port.protocol || 'TCP' }));
  if (out.env) {
    out.env = out.env.map((env) =>
      env.valueFrom?.fieldRef === undefined
        ? env
        : {
            ...env,
            valueFrom: {
              ...env.valueFrom,
              fieldRef: { ...env.valueFrom.fieldRef, apiVersion: env.valueFrom.fieldRef.apiVersion || 'v1' },
            },
          },
    );
  }
  // A limit without a request means "request what you limit", so the scheduler reserves it.
  const limits = out.resources?.limits;
  if (limits !== undefined) {
    // fromEntries, not assignment, so a hostile "__proto__" key stays a plain key.
    const requests = Object.fromEntries([
      ...Object.entries(limits),
      ...Object.entries(out.resources?.requests ?? {}),
    ]);
    out.resources = { ...out.resources, requests };
  }
  const liveness = defaultProbe(out.livenessProbe);
  const readiness = defaultProbe(out.readinessProbe);
  const startup = defaultProbe(out.startupProbe);
  if (liveness) out.livenessProbe = liveness;
  if (readiness) out.readinessProbe = readiness;
  if (startup) out.startupProbe = startup;
  return out;
}

/** The defaulted copy of a pod spec (also used for the templates of workload kinds). */
export function defaultPodSpec(spec: PodSpec): PodSpec {
  const out: PodSpec = { ...spec };
  out.restartPolicy ||= 'Always';
  out.dnsPolicy ||= 'ClusterFirst';
  out.schedulerName ||= DEFAULT_SCHEDULER_NAME;
  out.terminationGracePeriodSeconds ??= DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS;
  if (out.containers) out.containers = out.containers.map(defaultContainer);
  if (out.initContainers) out.initContainers = out.initContainers.map(defaultContainer);
  if (out.volumes) {
    out.volumes = out.volumes.map((volume) => {
      const copy = { ...volume };
      if (copy.configMap)
        copy.configMap = {
          ...copy.configMap,
          defaultMode: copy.configMap.defaultMode ?? DEFAULT_VOLUME_FILE_MODE,
        };
      if (copy.secret)
        copy.secret = { ...copy.secret, defaultMode: copy.secret.defaultMode ?? DEFAULT_VOLUME_FILE_MODE };
      if (copy.hostPath) copy.hostPath = { ...copy.hostPath, type: copy.hostPath.type ?? '' };
      return copy;
    });
  }
  return out;
}

function defaultTemplate(template: PodTemplateSpec | undefined): PodTemplateSpec {
  return { ...template, spec: defaultPodSpec(template?.spec ?? {}) };
}

function defaultReplicaSet(rs: ReplicaSet): void {
  rs.spec.replicas ??= 1;
  rs.spec.template = defaultTemplate(rs.spec.template);
}

function defaultDeployment(deployment: Deployment): void {
  const spec = deployment.spec;
  spec.replicas ??= 1;
  spec.revisionHistoryLimit ??= DEFAULT_REVISION_HISTORY_LIMIT;
  spec.progressDeadlineSeconds ??= DEFAULT_PROGRESS_DEADLINE_SECONDS;
  const type = spec.strategy?.type || 'RollingUpdate';
  if (type === 'RollingUpdate') {
    spec.strategy = {
      ...spec.strategy,
      type,
      rollingUpdate: {
        maxUnavailable: spec.strategy?.rollingUpdate?.maxUnavailable ?? '25%',
        maxSurge: spec.strategy?.rollingUpdate?.maxSurge ?? '25%',
      },
    };
  } else {
    spec.strategy = { ...spec.strategy, type };
  }
  spec.template = defaultTemplate(spec.template);
}

function defaultDaemonSet(ds: DaemonSet): void {
  const spec = ds.spec;
  spec.revisionHistoryLimit ??= DEFAULT_REVISION_HISTORY_LIMIT;
  const type = spec.updateStrategy?.type || 'RollingUpdate';
  if (type === 'RollingUpdate') {
    spec.updateStrategy = {
      ...spec.updateStrategy,
      type,
      rollingUpdate: {
        maxUnavailable: spec.updateStrategy?.rollingUpdate?.maxUnavailable ?? 1,
        maxSurge: spec.updateStrategy?.rollingUpdate?.maxSurge ?? 0,
      },
    };
  } else {
    spec.updateStrategy = { ...spec.updateStrategy, type };
  }
  spec.template = defaultTemplate(spec.template);
}

function defaultJob(job: Job): void {
  const spec = job.spec;
  // As Kubernetes: with neither set the job runs one pod to completion; with only parallelism set
  // it is a work queue, where completions stays unset.
  if (spec.completions === undefined && spec.parallelism === undefined) spec.completions = 1;
  spec.parallelism ??= 1;
  spec.backoffLimit ??= DEFAULT_BACKOFF_LIMIT;
  spec.completionMode ??= 'NonIndexed';
  spec.template = defaultTemplate(spec.template);
}

function defaultService(service: Service): void {
  const spec = service.spec;
  spec.type ||= 'ClusterIP';
  spec.sessionAffinity ||= 'None';
  if (spec.ports) {
    spec.ports = spec.ports.map((port) => ({
      ...port,
      protocol: port.protocol || 'TCP',
      targetPort:
        port.targetPort === undefined || port.targetPort === 0 || port.targetPort === ''
          ? port.port
          : port.targetPort,
    }));
  }
}

function defaultSecret(secret: Secret): void {
  secret.type ||= 'Opaque';
  if (secret.stringData !== undefined) {
    const encoded = Object.entries(secret.stringData).map(([key, value]) => [
      key,
      Buffer.from(value, 'utf8').toString('base64'),
    ]);
    secret.data = Object.fromEntries([...Object.entries(secret.data ?? {}), ...encoded]);
    delete secret.stringData;
  }
}
