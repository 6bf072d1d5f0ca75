/**
 * PodSync: makes what runs on this node match the pods bound to it, one pod key at a time
 * (level-triggered, STYLE.md: every call re-reads the pod and the runtime and acts on the
 * difference; a crash or restart of the agent loses nothing, because nothing is remembered that
 * the runtime does not also show).
 *
 *   pod gone              → its sandboxes (and containers) removed, its directory removed
 *   deletionTimestamp set → containers stopped (SIGTERM, grace period, SIGKILL), sandbox removed,
 *                           then the pod object deleted for good (grace 0, only that uid)
 *   otherwise             → sandbox; init containers one by one, in order; then every container;
 *                           ended containers restarted per restartPolicy with back-off
 *                           (10 s doubling to 5 min; reset after 10 min running)
 *
 * Runtime objects carry the pod in labels (as CRI's): io.kubernetes.pod.{namespace,name,uid},
 * io.kubernetes.container.name, and skiff.io/attempt (the restart count of that attempt). The
 * latest two attempts of each container are kept (`logs --previous`), older ones removed.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiClient } from '../../proto/client.js';
import { NotFoundError, errorMessage } from '../../proto/errors.js';
import type { ConfigMap, Container, Pod, Secret } from '../../proto/gen/types.js';
import type { ReconcileResult } from '../../proto/informer/work-queue.js';
import type { PodStatusReport } from '../../proto/node-reports.js';
import type { Logger } from '../../proto/support/logger.js';
import type { ContainerInfo, Runtime } from '../runtime/runtime.js';
import type { SandboxInfo } from '../runtime/pod-runtime.js';
import {
  PodConfigError,
  checkNonRoot,
  containerArgv,
  containerEnv,
  containerLimits,
  containerSecurity,
  expandReferences,
  referencedObjects,
  type PodPlacement,
  type PodReferences,
} from './container-plan.js';
import { containerMounts, prepareVolumes, removePodDir } from './pod-volumes.js';
import { podStatus, willRestart, type ContainerView } from './pod-status.js';
import { ContainerHealth, containerRefs } from './health/container-health.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';

export const LABEL_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_NAME = 'io.kubernetes.pod.name';
export const LABEL_UID = 'io.kubernetes.pod.uid';
export const LABEL_CONTAINER = 'io.kubernetes.container.name';
export const LABEL_ATTEMPT = 'skiff.io/attempt';

export interface BackoffPolicy {
  /** First wait before a restart; default 10 s. */
  initialMs: number;
  /** Longest wait; default 5 min. */
  maxMs: number;
  /** A container that ran this long resets its back-off; default 10 min. */
  resetAfterMs: number;
}

export const KUBELET_BACKOFF: BackoffPolicy = { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 };

export interface PodSyncOptions {
  runtime: Runtime;
  api: ApiClient;
  nodeName: string;
  hostIP: string;
  /** `<agent root>`: pods' directories are under `pods/<uid>`. */
  root: string;
  allowedHostPaths: readonly string[];
  /** The host's network namespace when it is not this process's own (hostNetwork pods join it). */
  hostNetns?: string;
  backoff?: BackoffPolicy;
  /** The pod's /etc/resolv.conf (pod-dns.ts, from its dnsPolicy); absent: the runtime's default. */
  resolvConfOf?: (pod: Pod) => string;
  /** The pod's address, from its sandbox (the node network records it). */
  podIPOf?: (sandbox: SandboxInfo) => string | undefined;
  /** Called with every status that differs from the last one reported for that pod. */
  report: (report: Omit<PodStatusReport, 'seq'>) => void;
  /** Tells users what happened to a pod (Pulling, Pulled, Created, Started, Killing, BackOff, Failed). */
  event?: (pod: Pod, type: 'Normal' | 'Warning', reason: string, message: string, fieldPath?: string) => void;
  /** The pod as the informer holds it now; undefined when it is gone. */
  podOf: (key: string) => Pod | undefined;
  /** Reconciles a pod again soon (probes and hooks report through it); absent: only what else enqueues. */
  enqueue?: (key: string) => void;
  /** `skiff agent --allow-privileged`: privileged containers may run. */
  allowPrivileged?: boolean;
  /** The agent's `major.minor`, for probes' User-Agent (kube-probe/…). */
  version?: string;
  log: Logger;
  now?: () => Date;
}

/** What is remembered per pod between reconciles: only what the runtime cannot show. */
interface PodMemory {
  uid: string;
  startTime: string;
  /** Per container: why it is not running (pull failures, config errors, back-off). */
  waiting: Map<string, { reason: string; message?: string }>;
  /** Per container: when it may be started again, and the back-off that led there. */
  backoff: Map<string, { until: number; delayMs: number }>;
  imageIDs: Map<string, string>;
  lastReported?: string;
  /** The phase the pod ended in, once it ended: it never runs again. */
  terminal?: string;
  podError?: { reason: string; message: string };
}

export class PodSync {
  private readonly memory = new Map<string, PodMemory>();
  private readonly backoff: BackoffPolicy;
  private readonly now: () => Date;
  /** Probes, lifecycle hooks and termination messages (health/container-health.ts). */
  private readonly health: ContainerHealth;

  constructor(private readonly options: PodSyncOptions) {
    this.backoff = options.backoff ?? KUBELET_BACKOFF;
    this.now = options.now ?? (() => new Date());
    this.health = new ContainerHealth({
      containers: options.runtime.containers,
      ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
      ...(options.event ? { event: options.event } : {}),
      enqueue: (key) => options.enqueue?.(key),
      log: options.log,
      version: options.version ?? '0.1',
    });
  }

  /** Reconciles the pod `namespace/name`. */
  async reconcile(key: string): Promise<ReconcileResult> {
    const { runtime } = this.options;
    const [namespace, name] = key.split('/') as [string, string];
    const pod = this.options.podOf(key);
    const sandboxes = await runtime.containers.listSandboxes({
      labels: { [LABEL_NAMESPACE]: namespace, [LABEL_NAME]: name },
    });
    for (const stale of sandboxes.filter((s) => s.labels[LABEL_UID] !== pod?.metadata.uid)) {
      await this.removePodSandbox(stale, 0);
    }
    if (!pod) {
      this.memory.delete(key);
      this.health.forget(key);
      return;
    }
    if (pod.metadata.deletionTimestamp) return this.terminate(key, pod, sandboxes);
    let memory = this.memory.get(key);
    if (!memory || memory.uid !== pod.metadata.uid) {
      memory = {
        uid: pod.metadata.uid!,
        startTime: pod.status?.startTime || rfc3339Seconds(this.now()),
        waiting: new Map(),
        backoff: new Map(),
        imageIDs: new Map(),
      };
      this.memory.set(key, memory);
    }
    // the pod's own sandbox is among those just listed by its name: no second read of the records
    const requeue = await this.run(
      key,
      pod,
      memory,
      sandboxes.find((s) => s.labels[LABEL_UID] === pod.metadata.uid),
    );
    return requeue;
  }

  /** Forgets a pod the agent no longer holds (its containers were removed by reconcile). */
  forget(key: string): void {
    this.memory.delete(key);
    this.health.forget(key);
  }

  /** Stops probing and hooks (the agent stops; what runs keeps running). */
  close(): void {
    this.health.close();
  }

  /** Every status again, whether it changed or not (the control plane asked: it may have lost them). */
  resendAll(): void {
    for (const memory of this.memory.values()) delete memory.lastReported;
  }

  private async run(
    key: string,
    pod: Pod,
    memory: PodMemory,
    listed: SandboxInfo | undefined,
  ): Promise<ReconcileResult> {
    const { runtime, log } = this.options;
    const uid = pod.metadata.uid!;
    const labels = {
      [LABEL_NAMESPACE]: pod.metadata.namespace!,
      [LABEL_NAME]: pod.metadata.name!,
      [LABEL_UID]: uid,
    };
    const all = await runtime.containers.list({ all: true, labels: { [LABEL_UID]: uid } });
    const attempts = groupAttempts(all.filter((c) => c.config.kind === 'container'));
    const terminalBefore =
      memory.terminal !== undefined || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
    let sandbox: SandboxInfo | undefined = listed;
    const requeues: number[] = [];

    if (!terminalBefore) {
      if (sandbox && (sandbox.state !== 'ready' || sandbox.pid === undefined)) {
        // its process died (the host rebooted, or it was killed): a pod's namespaces cannot be
        // brought back, so the pod starts again in a new one, as the kubelet does
        log.warn({ pod: key, sandbox: sandbox.id }, 'sandbox is not running; making a new one');
        await this.removePodSandbox(sandbox, 0);
        sandbox = undefined;
        attempts.clear();
      }
      if (!sandbox) {
        try {
          const portMappings = hostPorts(pod);
          sandbox = await runtime.containers.createSandbox({
            name: `${pod.metadata.namespace}_${pod.metadata.name}_${uid.slice(0, 8)}`,
            labels,
            hostname: pod.spec.hostNetwork ? this.options.nodeName : pod.spec.hostname || pod.metadata.name!,
            ...(portMappings.length && !pod.spec.hostNetwork ? { portMappings } : {}),
            ...(this.options.resolvConfOf ? { resolvConf: this.options.resolvConfOf(pod) } : {}),
            ...(pod.spec.hostNetwork
              ? {
                  hostNetwork: {
                    ips: [this.options.hostIP],
                    ...(this.options.hostNetns ? { netnsPath: this.options.hostNetns } : {}),
                  },
                }
              : {}),
          });
          memory.podError = undefined;
        } catch (err) {
          memory.podError = { reason: 'FailedCreatePodSandBox', message: errorMessage(err) };
          log.warn({ pod: key, err: errorMessage(err) }, 'creating the pod sandbox failed');
          requeues.push(this.backoff.initialMs);
        }
      }
    }

    const podIP = sandbox ? this.options.podIPOf?.(sandbox) : undefined;
    const placement: PodPlacement = {
      nodeName: this.options.nodeName,
      hostIP: this.options.hostIP,
      podIP: podIP ?? '',
    };
    const views = (specs: Container[]): ContainerView[] =>
      specs.map((spec) => {
        const list = attempts.get(spec.name) ?? [];
        const current = list[0];
        return {
          spec,
          ...(current ? { current } : {}),
          ...(list[1] ? { previous: list[1] } : {}),
          restartCount: current ? Number(current.config.labels[LABEL_ATTEMPT] ?? 0) : 0,
          ...(memory.waiting.has(spec.name) ? { waiting: memory.waiting.get(spec.name)! } : {}),
          ...this.health.view(key, spec, current, list[1]),
          ...(memory.imageIDs.has(spec.name) ? { imageID: memory.imageIDs.get(spec.name)! } : {}),
        };
      });

    if (sandbox && sandbox.state === 'ready' && !terminalBefore) {
      const started = await this.startWhatIsDue(key, pod, memory, sandbox, attempts, placement, requeues);
      if (!started) await this.refreshFileVolumes(key, pod, placement, attempts);
      if (started) {
        // what was started shows in the runtime now
        const fresh = await runtime.containers.list({ all: true, labels: { [LABEL_UID]: uid } });
        attempts.clear();
        for (const [k, v] of groupAttempts(fresh.filter((c) => c.config.kind === 'container')))
          attempts.set(k, v);
      }
    }

    // probes for what runs now; termination messages of what ended
    const refs = containerRefs(pod, attempts);
    this.health.sync(key, pod, podIP, terminalBefore ? [] : refs);
    await this.health.readMessages(key, join(this.options.root, 'pods', uid), refs);

    const status = podStatus({
      pod,
      sandboxReady: sandbox?.state === 'ready',
      ...(podIP ? { podIP } : {}),
      hostIP: this.options.hostIP,
      initContainers: views(pod.spec.initContainers ?? []),
      containers: views(pod.spec.containers ?? []),
      ...(memory.podError ? { podError: memory.podError } : {}),
      startTime: memory.startTime,
      now: rfc3339Seconds(this.now()),
    });
    if (terminalBefore) status.phase = memory.terminal ?? pod.status!.phase!;
    const encoded = JSON.stringify(comparable(status));
    // as the kubelet's status manager: when the API says otherwise than this agent reported (the
    // node lifecycle controller wrote the pod not Ready while the node was unreachable), again
    const readyOf = (s: typeof status | undefined) => s?.conditions?.find((c) => c.type === 'Ready')?.status;
    // (or a report was lost with the control plane it went to)
    const apiDisagrees =
      memory.lastReported !== undefined &&
      encoded === memory.lastReported &&
      ((readyOf(pod.status) !== undefined && readyOf(pod.status) !== readyOf(status)) ||
        pod.status?.phase !== status.phase);
    if (encoded !== memory.lastReported || apiDisagrees) {
      memory.lastReported = encoded;
      this.options.report({ namespace: pod.metadata.namespace!, name: pod.metadata.name!, uid, status });
    }
    // a pod that ended for good stays as it ended (its containers' logs kept) until it is deleted
    if (status.phase === 'Succeeded' || status.phase === 'Failed') memory.terminal = status.phase;
    if (requeues.length) return { requeueAfterMs: Math.max(0, Math.min(...requeues)) };
  }

  /** Starts the next init container, or every app container that is due; true when one was started. */
  private async startWhatIsDue(
    key: string,
    pod: Pod,
    memory: PodMemory,
    sandbox: SandboxInfo,
    attempts: Map<string, ContainerInfo[]>,
    placement: PodPlacement,
    requeues: number[],
  ): Promise<boolean> {
    let refs: PodReferences | undefined;
    let volumePaths: Map<string, string> | undefined;
    const prepare = async (): Promise<void> => {
      refs ??= await this.references(pod);
      volumePaths ??= await prepareVolumes(pod, refs, placement, {
        podDir: join(this.options.root, 'pods', pod.metadata.uid!),
        allowedHostPaths: this.options.allowedHostPaths,
      });
    };
    let started = false;
    const init = pod.spec.initContainers ?? [];
    for (let i = 0; i < init.length; i++) {
      const spec = init[i]!;
      const current = attempts.get(spec.name)?.[0];
      const state = current?.state.status;
      if (state === 'exited' && current!.state.exitCode === 0) continue;
      if (state === 'running' || state === 'created') return started;
      if (state === 'exited' && (pod.spec.restartPolicy ?? 'Always') === 'Never') return started;
      const due = this.dueIn(memory, pod, spec.name, current);
      if (due > 0) {
        requeues.push(due);
        return started;
      }
      started =
        (await this.startContainer(
          key,
          pod,
          memory,
          sandbox,
          spec,
          `spec.initContainers[${i}]`,
          current,
          prepare,
          () => ({ refs: refs!, volumePaths: volumePaths! }),
          placement,
          requeues,
        )) || started;
      return started;
    }
    const containers = pod.spec.containers ?? [];
    for (let i = 0; i < containers.length; i++) {
      const spec = containers[i]!;
      const current = attempts.get(spec.name)?.[0];
      const state = current?.state.status;
      if (state === 'running' || state === 'created') {
        if (state === 'running') this.noteRunning(memory, spec.name, current!);
        continue;
      }
      if (state === 'exited' && !willRestart(pod, current!.state.exitCode ?? 255)) continue;
      const due = this.dueIn(memory, pod, spec.name, current);
      if (due > 0) {
        requeues.push(due);
        continue;
      }
      started =
        (await this.startContainer(
          key,
          pod,
          memory,
          sandbox,
          spec,
          `spec.containers[${i}]`,
          current,
          prepare,
          () => ({ refs: refs!, volumePaths: volumePaths! }),
          placement,
          requeues,
        )) || started;
    }
    // older attempts than the last two go
    for (const list of attempts.values()) {
      for (const old of list.slice(2))
        await this.options.runtime.containers.remove(old.id, { force: true }).catch(() => {});
    }
    return started;
  }

  /**
   * ConfigMap, Secret, downward API and projected volumes follow their sources while the pod runs
   * (the atomic writer swaps the files only when the content changed), as the kubelet's sync does.
   */
  private async refreshFileVolumes(
    key: string,
    pod: Pod,
    placement: PodPlacement,
    attempts: Map<string, ContainerInfo[]>,
  ): Promise<void> {
    const fileVolumes = (pod.spec.volumes ?? []).some(
      (v) => v.configMap || v.secret || v.downwardAPI || v.projected,
    );
    const running = [...attempts.values()].some((list) => list[0]?.state.status === 'running');
    if (!fileVolumes || !running) return;
    try {
      await prepareVolumes(pod, await this.references(pod), placement, {
        podDir: join(this.options.root, 'pods', pod.metadata.uid!),
        allowedHostPaths: this.options.allowedHostPaths,
      });
    } catch (err) {
      // a source gone or changed badly: the files stay as they were, as the kubelet leaves them
      this.options.log.warn({ pod: key, err: errorMessage(err) }, "updating the pod's volumes failed");
    }
  }

  /** ms until `name` may start again (0: now); sets the CrashLoopBackOff reason while waiting. */
  private dueIn(memory: PodMemory, pod: Pod, name: string, current: ContainerInfo | undefined): number {
    if (!current || current.state.status !== 'exited') return 0;
    const now = this.now().getTime();
    let entry = memory.backoff.get(name);
    const ranFor = Date.parse(current.state.finishedAt ?? '') - Date.parse(current.state.startedAt ?? '');
    if (!entry || entry.until === 0) {
      // first time this exit is seen: the next wait doubles the last one, unless it ran long enough
      const last = entry?.delayMs ?? 0;
      const delayMs =
        last === 0 || ranFor >= this.backoff.resetAfterMs
          ? this.backoff.initialMs
          : Math.min(last * 2, this.backoff.maxMs);
      const finished = Date.parse(current.state.finishedAt ?? '') || now;
      entry = { until: finished + delayMs, delayMs };
      memory.backoff.set(name, entry);
    }
    const left = entry.until - now;
    if (left > 0) {
      if (memory.waiting.get(name)?.reason !== 'CrashLoopBackOff')
        this.options.event?.(
          pod,
          'Warning',
          'BackOff',
          `Back-off restarting failed container ${name} in pod ${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`,
        );
      memory.waiting.set(name, {
        reason: 'CrashLoopBackOff',
        message: `back-off ${Math.round(entry.delayMs / 1000)}s restarting failed container=${name}`,
      });
      return left;
    }
    return 0;
  }

  private noteRunning(memory: PodMemory, name: string, current: ContainerInfo): void {
    memory.waiting.delete(name);
    const entry = memory.backoff.get(name);
    if (!entry) return;
    const ran = this.now().getTime() - Date.parse(current.state.startedAt ?? '');
    if (ran >= this.backoff.resetAfterMs) memory.backoff.delete(name);
    else entry.until = 0;
  }

  private async startContainer(
    key: string,
    pod: Pod,
    memory: PodMemory,
    sandbox: SandboxInfo,
    spec: Container,
    field: string,
    previous: ContainerInfo | undefined,
    prepare: () => Promise<void>,
    prepared: () => { refs: PodReferences; volumePaths: Map<string, string> },
    placement: PodPlacement,
    requeues: number[],
  ): Promise<boolean> {
    const { runtime, log } = this.options;
    const ref = spec.image ?? '';
    const event = (type: 'Normal' | 'Warning', reason: string, message: string): void =>
      this.options.event?.(pod, type, reason, message, `${field.replace(/\[\d+\]$/, '')}{${spec.name}}`);
    let image;
    try {
      const policy = pullPolicy(spec);
      const present =
        policy === 'Always' ? undefined : await runtime.ensureImage(ref, 'Never').catch(() => undefined);
      if (present) {
        image = present;
        event('Normal', 'Pulled', `Container image "${ref}" already present on machine`);
      } else {
        if (policy !== 'Never') event('Normal', 'Pulling', `Pulling image "${ref}"`);
        const started = Date.now();
        image = await runtime.ensureImage(ref, policy);
        event(
          'Normal',
          'Pulled',
          `Successfully pulled image "${ref}" in ${((Date.now() - started) / 1000).toFixed(3)}s`,
        );
      }
      memory.imageIDs.set(spec.name, `${ref}@${image.manifestDigest}`);
    } catch (err) {
      const previousReason = memory.waiting.get(spec.name)?.reason;
      const reason =
        spec.imagePullPolicy === 'Never'
          ? 'ErrImageNeverPull'
          : previousReason === 'ErrImagePull' || previousReason === 'ImagePullBackOff'
            ? 'ImagePullBackOff'
            : 'ErrImagePull';
      memory.waiting.set(spec.name, { reason, message: errorMessage(err) });
      log.warn({ pod: key, container: spec.name, image: ref, err: errorMessage(err) }, 'image pull failed');
      if (reason === 'ImagePullBackOff') event('Normal', 'BackOff', `Back-off pulling image "${ref}"`);
      else {
        event('Warning', 'Failed', `Failed to pull image "${ref}": ${errorMessage(err)}`);
        event('Warning', 'Failed', `Error: ${reason}`);
      }
      requeues.push(
        reason === 'ImagePullBackOff' ? this.backoff.initialMs : Math.min(this.backoff.initialMs, 2000),
      );
      return false;
    }
    let created: ContainerInfo;
    try {
      await prepare();
      const { refs, volumePaths } = prepared();
      const env = containerEnv(pod, spec, refs, placement, field);
      const imageConfig = image.config.config ?? {};
      containerArgv(spec, imageConfig, env, field);
      const limits = containerLimits(pod, spec, field);
      checkNonRoot(pod, spec, limits.user ? String(limits.user.uid) : String(imageConfig.User ?? ''), field);
      const mounts = await containerMounts(spec, volumePaths, field);
      const security = containerSecurity(spec, field, {
        allowPrivileged: this.options.allowPrivileged ?? false,
      });
      const expand = (list: string[] | undefined): string[] | undefined =>
        list?.map((s) => expandReferences(s, env));
      const attempt = previous ? Number(previous.config.labels[LABEL_ATTEMPT] ?? 0) + 1 : 0;
      await mkdir(join(this.options.root, 'pods', pod.metadata.uid!), { recursive: true, mode: 0o700 });
      const terminationLog = await this.health.terminationLog(
        join(this.options.root, 'pods', pod.metadata.uid!),
        spec,
        attempt,
      );
      created = await runtime.create({
        image: ref,
        sandbox: sandbox.id,
        name: `${pod.metadata.namespace}_${pod.metadata.name}_${spec.name}_${pod.metadata.uid!.slice(0, 8)}_${attempt}`,
        labels: {
          [LABEL_NAMESPACE]: pod.metadata.namespace!,
          [LABEL_NAME]: pod.metadata.name!,
          [LABEL_UID]: pod.metadata.uid!,
          [LABEL_CONTAINER]: spec.name,
          [LABEL_ATTEMPT]: String(attempt),
        },
        ...(spec.command?.length ? { entrypoint: expand(spec.command)! } : {}),
        ...(spec.args?.length ? { command: expand(spec.args)! } : {}),
        env: [...env].map(([k, v]) => `${k}=${v}`),
        ...(spec.workingDir ? { workdir: spec.workingDir } : {}),
        ...(limits.user
          ? {
              user:
                limits.user.gid !== undefined
                  ? `${limits.user.uid}:${limits.user.gid}`
                  : String(limits.user.uid),
            }
          : {}),
        ...(limits.user?.additionalGids?.length ? { groupAdd: limits.user.additionalGids.map(String) } : {}),
        ...(limits.memoryBytes !== undefined ? { memoryBytes: limits.memoryBytes } : {}),
        ...(limits.cpus !== undefined ? { cpus: limits.cpus } : {}),
        readOnly: limits.readOnly,
        ...security,
        volumes: [...mounts, terminationLog],
        // what attach reaches: a stdin kept open, and a terminal (sized by the first attach -t)
        ...(spec.stdin ? { openStdin: true } : {}),
        ...(spec.tty ? { terminal: { rows: 24, cols: 80 } } : {}),
      });
    } catch (err) {
      const reason = err instanceof PodConfigError ? 'CreateContainerConfigError' : 'CreateContainerError';
      memory.waiting.set(spec.name, { reason, message: errorMessage(err) });
      log.warn({ pod: key, container: spec.name, err: errorMessage(err) }, 'creating the container failed');
      event('Warning', 'Failed', `Error: ${errorMessage(err)}`);
      requeues.push(this.backoff.initialMs);
      return false;
    }
    event('Normal', 'Created', `Created container ${spec.name}`);
    try {
      const started = await runtime.containers.start(created.id);
      event('Normal', 'Started', `Started container ${spec.name}`);
      this.health.started(key, pod, placement.podIP, { spec, field, info: started });
      memory.waiting.delete(spec.name);
      const entry = memory.backoff.get(spec.name);
      if (entry) entry.until = 0;
    } catch (err) {
      // the record keeps the start error (StartError, with the reason): it shows as terminated
      log.warn({ pod: key, container: spec.name, err: errorMessage(err) }, 'starting the container failed');
      event('Warning', 'Failed', `Error: ${errorMessage(err)}`);
      memory.waiting.delete(spec.name);
    }
    return true;
  }

  /** The ConfigMaps and Secrets the pod refers to, read now (absent ones as undefined). */
  private async references(pod: Pod): Promise<PodReferences> {
    const { api } = this.options;
    const namespace = pod.metadata.namespace!;
    const wanted = referencedObjects(pod);
    const read = async <T>(kind: string, name: string): Promise<T | undefined> => {
      try {
        return (await api.get(kind, namespace, name)) as T;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    };
    const configMaps = new Map<string, ConfigMap | undefined>();
    const secrets = new Map<string, Secret | undefined>();
    await Promise.all([
      ...[...wanted.configMaps].map(async (n) => configMaps.set(n, await read<ConfigMap>('ConfigMap', n))),
      ...[...wanted.secrets].map(async (n) => secrets.set(n, await read<Secret>('Secret', n))),
    ]);
    return { configMaps, secrets };
  }

  /** Stops a pod being deleted, then removes the pod object (only this uid). */
  private async terminate(key: string, pod: Pod, sandboxes: SandboxInfo[]): Promise<ReconcileResult> {
    const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    for (const sandbox of sandboxes) {
      const running = await this.options.runtime.containers.list({ sandbox: sandbox.id });
      for (const c of running) {
        const name = c.config.labels[LABEL_CONTAINER];
        if (name) this.options.event?.(pod, 'Normal', 'Killing', `Stopping container ${name}`);
      }
      // preStop hooks within the grace, then SIGTERM, the rest of it, SIGKILL
      await this.health.stopAll(key, pod, this.options.podIPOf?.(sandbox), running, grace);
      await this.removePodSandbox(sandbox, grace);
    }
    this.health.forget(key);
    await removePodDir(join(this.options.root, 'pods', pod.metadata.uid!));
    this.memory.delete(key);
    try {
      await this.options.api.delete('Pod', pod.metadata.namespace!, pod.metadata.name!, {
        gracePeriodSeconds: 0,
        preconditions: { uid: pod.metadata.uid! },
      });
      this.options.log.info({ pod: key }, 'pod stopped and deleted');
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  private async stopContainers(containers: ContainerInfo[], graceSeconds: number): Promise<void> {
    const running = containers.filter((c) => c.state.status === 'running');
    await Promise.all(
      running.map((c) => this.options.runtime.containers.stop(c.id, graceSeconds).catch(() => undefined)),
    );
  }

  /** Stops the sandbox's containers within the grace period, then removes it and the pod's files. */
  private async removePodSandbox(sandbox: SandboxInfo, graceSeconds: number): Promise<void> {
    const { runtime } = this.options;
    const members = await runtime.containers.list({ all: true, sandbox: sandbox.id });
    await this.stopContainers(members, graceSeconds);
    await runtime.containers.removeSandbox(sandbox.id);
    const uid = sandbox.labels[LABEL_UID];
    if (uid) await removePodDir(join(this.options.root, 'pods', uid));
  }
}

/** The hostPorts the pod's containers ask for (a hostNetwork pod has the host's ports themselves). */
function hostPorts(
  pod: Pod,
): { hostPort: number; containerPort: number; protocol: 'TCP' | 'UDP'; hostIP?: string }[] {
  return [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])].flatMap((c) =>
    (c.ports ?? [])
      .filter((p) => p.hostPort)
      .map((p) => ({
        hostPort: p.hostPort!,
        containerPort: p.containerPort,
        protocol: p.protocol === 'UDP' ? ('UDP' as const) : ('TCP' as const),
        ...(p.hostIP ? { hostIP: p.hostIP } : {}),
      })),
  );
}

/** Kubernetes' default: Always for `:latest` or no tag, else IfNotPresent (the API defaults it too). */
function pullPolicy(spec: Container): 'Always' | 'IfNotPresent' | 'Never' {
  const given = spec.imagePullPolicy;
  if (given === 'Always' || given === 'IfNotPresent' || given === 'Never') return given;
  const ref = spec.image ?? '';
  if (ref.includes('@')) return 'IfNotPresent';
  const tag = /:([^/:]+)$/.exec(ref)?.[1];
  return tag === undefined || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** Attempts per container name, newest first. */
function groupAttempts(containers: ContainerInfo[]): Map<string, ContainerInfo[]> {
  const byName = new Map<string, ContainerInfo[]>();
  for (const c of containers) {
    const name = c.config.labels[LABEL_CONTAINER];
    if (!name) continue;
    const list = byName.get(name) ?? [];
    list.push(c);
    byName.set(name, list);
  }
  for (const list of byName.values())
    list.sort(
      (a, b) => Number(b.config.labels[LABEL_ATTEMPT] ?? 0) - Number(a.config.labels[LABEL_ATTEMPT] ?? 0),
    );
  return byName;
}

/** A status without its timestamps of transition, to tell a real change from a re-computation. */
function comparable(status: Pod['status']): unknown {
  return {
    ...status,
    conditions: status?.conditions?.map(({ lastTransitionTime: _t, ...rest }) => rest),
  };
}
