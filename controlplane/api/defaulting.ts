/**
 * Defaulting: the values the API server fills in on create and update before validating, as
 * Kubernetes does, so every stored object says explicitly what it means (a Deployment without
 * `replicas` is stored with `replicas: 1`). Each kind's strategy (kinds/) names its defaulting
 * function from here; kinds/index.ts `defaultObject` runs it on a copy. Every function defaults
 * in place and is idempotent (defaulting a defaulted object changes nothing).
 *
 * Also done here: Secret `stringData` is merged into `data` (base64) and dropped, because Kubernetes
 * treats it as a write-only convenience that is never stored.
 */
import type {
  Container,
  CronJob,
  DaemonSet,
  DownwardAPIVolumeFile,
  EndpointSlice,
  EphemeralContainer,
  Deployment,
  Job,
  Pod,
  PodSpec,
  PodTemplateSpec,
  PriorityClass,
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
/** A Job with backoffLimitPerIndex counts failures per index, so its total limit is open. */
export const MAX_INT32 = 2 ** 31 - 1;
/** The ServiceAccount a pod that names none runs as; every namespace has one. */
export const DEFAULT_SERVICE_ACCOUNT = 'default';
/** Seconds a projected service account token lives unless the pod says otherwise. */
export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600;
/** Seconds a ClientIP session affinity lasts unless the Service says otherwise (3 hours). */
export const DEFAULT_CLIENT_IP_AFFINITY_SECONDS = 10800;
/** 0644, the mode of files projected from ConfigMaps and Secrets. */
export const DEFAULT_VOLUME_FILE_MODE = 0o644;

/**
 * A deep copy of JSON-shaped data, which is what a KubeObject is: lists and plain objects are
 * copied, anything else is kept as is. It replaced structuredClone, which cost twice as much on
 * every create.
 */
export function copyData<T>(value: T): T {
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

/** `:latest` or no tag means "moving target", so it is pulled every time; a pinned tag or digest once. */
export function defaultImagePullPolicy(image: string): 'Always' | 'IfNotPresent' {
  if (image.includes('@')) return 'IfNotPresent';
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const colon = lastSegment.lastIndexOf(':');
  if (colon === -1) return 'Always';
  return lastSegment.slice(colon + 1) === 'latest' ? 'Always' : 'IfNotPresent';
}

// The pod spec is defaulted by assigning to the objects it is given, never by spreading a copy and
// adding fields: in V8 adding a property to a spread copy takes a slower path (Node 24: about twice
// the cost of a copy built by assignment; Node 20: ten times). defaultObject has already copied
// what these change.

function defaultProbe(probe: Probe | undefined): void {
  if (probe === undefined) return;
  probe.timeoutSeconds ||= 1;
  probe.periodSeconds ||= 10;
  probe.successThreshold ||= 1;
  probe.failureThreshold ||= 3;
  if (probe.httpGet !== undefined) probe.httpGet.scheme ||= 'HTTP';
  // The gRPC health service: "" asks about the server as a whole.
  if (probe.grpc !== undefined) probe.grpc.service ??= '';
}

function defaultDownwardApiFiles(files: DownwardAPIVolumeFile[] | undefined): void {
  if (files) for (const file of files) if (file.fieldRef !== undefined) file.fieldRef.apiVersion ||= 'v1';
}

function defaultContainer(container: Container | EphemeralContainer): void {
  if (!container.imagePullPolicy && container.image)
    container.imagePullPolicy = defaultImagePullPolicy(container.image);
  if (container.ports) for (const port of container.ports) port.protocol ||= 'TCP';
  if (container.env) {
    for (const env of container.env) {
      const fieldRef = env.valueFrom?.fieldRef;
      if (fieldRef !== undefined) fieldRef.apiVersion ||= 'v1';
    }
  }
  // A limit without a request means "request what you limit", so the scheduler reserves it.
  const resources = container.resources;
  if (resources?.limits !== undefined) {
    // fromEntries, not assignment, so a hostile "__proto__" key stays a plain key.
    resources.requests = Object.fromEntries([
      ...Object.entries(resources.limits),
      ...Object.entries(resources.requests ?? {}),
    ]);
  }
  defaultProbe(container.livenessProbe);
  defaultProbe(container.readinessProbe);
  defaultProbe(container.startupProbe);
}

/** Defaults a pod spec in place (also the templates of workload kinds). */
export function defaultPodSpec(spec: PodSpec): void {
  spec.restartPolicy ||= 'Always';
  spec.dnsPolicy ||= 'ClusterFirst';
  spec.schedulerName ||= DEFAULT_SCHEDULER_NAME;
  spec.terminationGracePeriodSeconds ??= DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS;
  if (spec.containers) for (const container of spec.containers) defaultContainer(container);
  if (spec.initContainers) for (const container of spec.initContainers) defaultContainer(container);
  if (spec.ephemeralContainers) for (const container of spec.ephemeralContainers) defaultContainer(container);
  if (spec.volumes) {
    for (const volume of spec.volumes) {
      if (volume.configMap) volume.configMap.defaultMode ??= DEFAULT_VOLUME_FILE_MODE;
      if (volume.secret) volume.secret.defaultMode ??= DEFAULT_VOLUME_FILE_MODE;
      if (volume.hostPath) volume.hostPath.type ??= '';
      if (volume.downwardAPI) {
        volume.downwardAPI.defaultMode ??= DEFAULT_VOLUME_FILE_MODE;
        defaultDownwardApiFiles(volume.downwardAPI.items);
      }
      if (volume.projected) {
        volume.projected.defaultMode ??= DEFAULT_VOLUME_FILE_MODE;
        for (const source of volume.projected.sources ?? []) {
          defaultDownwardApiFiles(source.downwardAPI?.items);
          if (source.serviceAccountToken)
            source.serviceAccountToken.expirationSeconds ??= DEFAULT_TOKEN_EXPIRATION_SECONDS;
        }
      }
    }
  }
  // serviceAccount is the old name of serviceAccountName: read when the new one is empty, and
  // returned as the name in use, as Kubernetes converts them.
  if (!spec.serviceAccountName && spec.serviceAccount) spec.serviceAccountName = spec.serviceAccount;
  if (spec.serviceAccount) spec.serviceAccount = spec.serviceAccountName!;
}

/**
 * Defaults a Pod's spec: the pod spec defaults, and the ServiceAccount it runs as when it names
 * none (Kubernetes' ServiceAccount admission does this for Pods, not for pod templates).
 */
export function defaultPod(pod: Pod): void {
  const spec = (pod.spec ??= {});
  defaultPodSpec(spec);
  spec.serviceAccountName ||= DEFAULT_SERVICE_ACCOUNT;
}

export function defaultTemplate(template: PodTemplateSpec | undefined): PodTemplateSpec {
  const defaulted = template ?? {};
  defaultPodSpec((defaulted.spec ??= {}));
  return defaulted;
}

export function defaultReplicaSet(rs: ReplicaSet): void {
  rs.spec.replicas ??= 1;
  rs.spec.template = defaultTemplate(rs.spec.template);
}

export function defaultDeployment(deployment: Deployment): void {
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

export function defaultDaemonSet(ds: DaemonSet): void {
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

export function defaultJob(job: Job): void {
  const spec = job.spec;
  // As Kubernetes: with neither set the job runs one pod to completion; with only parallelism set
  // it is a work queue, where completions stays unset.
  if (spec.completions === undefined && spec.parallelism === undefined) spec.completions = 1;
  spec.parallelism ??= 1;
  spec.backoffLimit ??= spec.backoffLimitPerIndex !== undefined ? MAX_INT32 : DEFAULT_BACKOFF_LIMIT;
  spec.completionMode ??= 'NonIndexed';
  for (const rule of spec.podFailurePolicy?.rules ?? []) {
    for (const pattern of rule.onPodConditions ?? []) pattern.status ||= 'True';
  }
  // Without a podFailurePolicy a pod is replaced as soon as it is terminating (or has failed);
  // with one, only once it has failed, so the policy judges its final state.
  spec.podReplacementPolicy ??= spec.podFailurePolicy !== undefined ? 'Failed' : 'TerminatingOrFailed';
  spec.template = defaultTemplate(spec.template);
}

export function defaultService(service: Service): void {
  const spec = service.spec;
  spec.type ||= 'ClusterIP';
  spec.sessionAffinity ||= 'None';
  if (spec.sessionAffinity === 'ClientIP' && spec.sessionAffinityConfig === undefined) {
    spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: DEFAULT_CLIENT_IP_AFFINITY_SECONDS } };
  }
  if (spec.type === 'LoadBalancer') spec.allocateLoadBalancerNodePorts ??= true;
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

export function defaultSecret(secret: Secret): void {
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

export const DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT = 3;
export const DEFAULT_FAILED_JOBS_HISTORY_LIMIT = 1;

export function defaultCronJob(cronJob: CronJob): void {
  const spec = cronJob.spec;
  spec.concurrencyPolicy ||= 'Allow';
  spec.suspend ??= false;
  spec.successfulJobsHistoryLimit ??= DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT;
  spec.failedJobsHistoryLimit ??= DEFAULT_FAILED_JOBS_HISTORY_LIMIT;
  // As Kubernetes: the pod template is defaulted; the Job's own fields are defaulted on each Job.
  const jobSpec = (spec.jobTemplate.spec ??= {});
  jobSpec.template = defaultTemplate(jobSpec.template);
}

export function defaultPriorityClass(priorityClass: PriorityClass): void {
  priorityClass.preemptionPolicy ||= 'PreemptLowerPriority';
}

export function defaultEndpointSlice(slice: EndpointSlice): void {
  if (slice.ports) for (const port of slice.ports) port.protocol ||= 'TCP';
}
