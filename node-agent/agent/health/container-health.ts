/**
 * ContainerHealth: what PodSync asks about and of a pod's containers beyond running them, the
 * kubelet's prober, lifecycle hooks and termination messages in one place, so that PodSync calls a
 * handful of methods at fixed points:
 *
 *   before create     terminationLog(...)   the attempt's termination-log bind mount
 *   after start       started(...)          postStart runs (the container shows ContainerCreating,
 *                                           not ready, until it returns; a failure kills it:
 *                                           FailedPostStartHook), then its probes start
 *   every reconcile   sync(...)             probe workers for the running containers, none for others;
 *                     readMessages(...)     termination messages of attempts that exited (read once)
 *   the status        view(...)             ready, started, starting, termination messages
 *   deletion          stopAll(...)          preStop, then SIGTERM, the rest of the grace, SIGKILL
 *   pod gone          forget(key)           its probes stopped, hooks abandoned
 *
 * A liveness or startup failure kills the container here, not in a reconcile, the way a deletion
 * is done: the Killing event, preStop within the grace (the probe's terminationGracePeriodSeconds,
 * else the pod's), then the runtime's stop; the runtime's exit event brings the pod back to
 * PodSync, which restarts the container per restartPolicy with its back-off. A container being
 * stopped is stopped once, whoever asks again meanwhile (a deletion during a liveness kill).
 */
import type { Container, Pod } from '../../../proto/gen/types.js';
import type { ContainerView } from '../pod-status.js';
import { errorMessage } from '../../../proto/errors.js';
import type { Logger } from '../../../proto/support/logger.js';
import { NetnsDialer, type ContainerInfo, type Dialer } from '../../runtime/runtime.js';
import type { ContainerRuntime } from '../../runtime/containers/container-runtime.js';
import { runHook, runProbe, type HandlerContext, type HandlerTarget } from './handlers.js';
import { Prober, type ProbedContainer } from './prober.js';
import { systemClock, type Clock, type ProbeKind } from './probe-worker.js';
import { prepareTerminationLog, terminationLogFile, terminationMessage } from './termination-message.js';

export type EventSink = (
  pod: Pod,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  fieldPath?: string,
) => void;

export interface ContainerHealthOptions {
  containers: Pick<ContainerRuntime, 'execCapture' | 'stop' | 'logs'>;
  /** The node's network namespace when it is not this process's: pods' IPs are reached from there. */
  hostNetns?: string;
  /** Instead of the one hostNetns implies (tests). */
  dialer?: Dialer;
  event?: EventSink;
  /** Reconcile this pod again (a result its status shows changed, a hook returned). */
  enqueue: (key: string) => void;
  log: Logger;
  clock?: Clock;
  /** `major.minor` for the User-Agent (kube-probe/…, kube-lifecycle/…). */
  version: string;
}

/** What PodSync knows of one container when it asks. */
export interface ContainerRef {
  spec: Container;
  /** `spec.containers[0]`: events name `spec.containers{name}`. */
  field: string;
  info: ContainerInfo;
}

/** The latest two attempts of each of the pod's containers (init containers first), as refs. */
export function containerRefs(pod: Pod, attempts: ReadonlyMap<string, ContainerInfo[]>): ContainerRef[] {
  const refs: ContainerRef[] = [];
  const add = (specs: Container[] | undefined, at: string): void =>
    (specs ?? []).forEach((spec, i) => {
      for (const info of (attempts.get(spec.name) ?? []).slice(0, 2))
        refs.push({ spec, field: `${at}[${i}]`, info });
    });
  add(pod.spec.initContainers, 'spec.initContainers');
  add(pod.spec.containers, 'spec.containers');
  return refs;
}

/** The kubelet's floor on what is left of the grace after a preStop hook. */
const MIN_GRACE_AFTER_HOOK_SECONDS = 2;

export class ContainerHealth {
  private readonly prober: Prober;
  private readonly probeContext: HandlerContext;
  private readonly hookContext: HandlerContext;
  private dialer: Dialer | undefined;
  /** The pod (as last seen) and its IP, per pod key: what probes and kills run against. */
  private readonly pods = new Map<string, { pod: Pod; podIP: string; fields: Map<string, string> }>();
  /** postStart hooks running, by container id: its pod's key and how to abandon it. */
  private readonly postStarts = new Map<string, { key: string; abort: AbortController }>();
  /** Containers being stopped, by id. */
  private readonly stopping = new Map<string, Promise<void>>();
  /** Termination messages of exited attempts, by pod key, then container id. */
  private readonly messages = new Map<string, Map<string, string>>();

  constructor(private readonly options: ContainerHealthOptions) {
    const execCapture: ContainerRuntime['execCapture'] = (ref, opts) =>
      options.containers.execCapture(ref, opts);
    // the dialer is made (its helper started) at the first network probe
    const dialer = (): Dialer => this.dialerNow();
    const context = (userAgent: string): HandlerContext => ({
      execCapture,
      userAgent,
      get dialer() {
        return dialer();
      },
    });
    this.probeContext = context(`kube-probe/${options.version}`);
    this.hookContext = context(`kube-lifecycle/${options.version}`);
    this.prober = new Prober({
      clock: options.clock ?? systemClock,
      run: (key, container, _kind, probe, timeoutMs) =>
        runProbe(this.probeContext, probe, this.target(key, container.id, container.spec), timeoutMs),
      onOutcome: (key, container, kind, outcome) => {
        const pod = this.pods.get(key)?.pod;
        if (!pod) return;
        const what = `${kind[0]!.toUpperCase()}${kind.slice(1)} probe`;
        this.event(
          key,
          pod,
          container.spec.name,
          'Warning',
          'Unhealthy',
          outcome.result === 'error'
            ? `${what} errored: ${outcome.message}`
            : `${what} failed: ${outcome.message}`,
        );
      },
      onKill: (key, container, kind) => this.killForProbe(key, container, kind),
      onChange: (key) => options.enqueue(key),
    });
  }

  private dialerNow(): Dialer {
    // the helper's dialer even in this process's own namespace: it makes TCP and HTTP probes'
    // exchanges whole, cheaper than a socket and an HTTP client here (runtime sys/dialer.ts)
    this.dialer ??= this.options.dialer ?? new NetnsDialer(this.options.hostNetns);
    return this.dialer;
  }

  // ------------------------------------------------------------------ termination messages

  /** The bind mount of an attempt's termination log (its empty host file made now). */
  terminationLog(podDir: string, spec: Container, attempt: number) {
    return prepareTerminationLog(podDir, spec, attempt);
  }

  /**
   * Reads, once each, the termination messages of the pod's attempts that exited, and forgets
   * those of attempts no longer given.
   */
  async readMessages(
    key: string,
    podDir: string,
    attempts: { spec: Container; info: ContainerInfo }[],
  ): Promise<void> {
    let known = this.messages.get(key);
    const given = new Set(attempts.map((a) => a.info.id));
    if (known) for (const id of known.keys()) if (!given.has(id)) known.delete(id);
    for (const { spec, info } of attempts) {
      if (info.state.status !== 'exited' || known?.has(info.id)) continue;
      const attempt = Number(info.config.labels['skiff.io/attempt'] ?? 0);
      const message = await terminationMessage(
        spec,
        terminationLogFile(podDir, spec.name, attempt),
        info.state.exitCode ?? 255,
        async (lines) => {
          const out: string[] = [];
          try {
            for await (const e of this.options.containers.logs(info.id, { tail: lines })) out.push(e.text);
          } catch {
            // no log left
          }
          return out;
        },
      ).catch(() => '');
      known ??= this.messages.set(key, new Map()).get(key)!;
      known.set(info.id, message);
    }
    if (known?.size === 0) this.messages.delete(key);
  }

  /** An exited attempt's termination message, once read (empty: none). */
  message(key: string, id: string): string | undefined {
    return this.messages.get(key)?.get(id);
  }

  // ------------------------------------------------------------------ the status

  /**
   * What the status shows of a container beyond its runtime state: started (startup probe), ready
   * (readiness), starting (postStart running), and the termination messages of its current and
   * previous attempts once they exited.
   */
  view(
    key: string,
    spec: Container,
    current: ContainerInfo | undefined,
    previous?: ContainerInfo,
  ): Pick<ContainerView, 'ready' | 'started' | 'starting' | 'currentMessage' | 'previousMessage'> {
    const messages = {
      ...(current && this.message(key, current.id) !== undefined
        ? { currentMessage: this.message(key, current.id)! }
        : {}),
      ...(previous && this.message(key, previous.id) !== undefined
        ? { previousMessage: this.message(key, previous.id)! }
        : {}),
    };
    if (current?.state.status !== 'running')
      return { ready: false, started: false, starting: false, ...messages };
    if (this.postStarts.has(current.id)) return { ready: false, started: false, starting: true, ...messages };
    return {
      started: this.prober.started(key, current.id, spec),
      ready: this.prober.ready(key, current.id, spec),
      starting: false,
      ...messages,
    };
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * A container just started: runs its postStart hook (the container is not Running or ready
   * until it returns; a failure kills it), and its probes start at the next sync after that.
   */
  started(key: string, pod: Pod, podIP: string, ref: ContainerRef): void {
    this.remember(key, pod, podIP, [ref]);
    const hook = ref.spec.lifecycle?.postStart;
    if (!hook) return;
    const abort = new AbortController();
    this.postStarts.set(ref.info.id, { key, abort });
    const target: HandlerTarget = { containerId: ref.info.id, podIP, container: ref.spec };
    void runHook(this.hookContext, hook, target, podName(pod), abort.signal)
      .then(
        () => undefined,
        (err: unknown) => err,
      )
      .then(async (failure) => {
        this.postStarts.delete(ref.info.id);
        if (failure !== undefined && !abort.signal.aborted) {
          this.options.log.warn(
            { pod: key, container: ref.spec.name, err: errorMessage(failure) },
            'postStart hook failed',
          );
          this.event(key, pod, ref.spec.name, 'Warning', 'FailedPostStartHook', errorMessage(failure));
          this.event(key, pod, ref.spec.name, 'Normal', 'Killing', `FailedPostStartHook`);
          await this.stop(key, pod, podIP, ref.spec, ref.info, podGrace(pod));
        }
        this.options.enqueue(key);
      });
  }

  /**
   * The pod's containers as they are now: probes for those running (once past postStart), none
   * for the others.
   */
  sync(key: string, pod: Pod, podIP: string | undefined, refs: ContainerRef[]): void {
    this.remember(key, pod, podIP ?? '', refs);
    const running: ProbedContainer[] = [];
    for (const { spec, info } of refs) {
      if (info.state.status !== 'running' || this.postStarts.has(info.id) || this.stopping.has(info.id))
        continue;
      running.push({ id: info.id, spec, startedAtMs: Date.parse(info.state.startedAt ?? '') || Date.now() });
    }
    this.prober.sync(key, running);
  }

  /**
   * Stops the running containers of a pod being deleted, all at once: preStop hooks within the
   * grace, then SIGTERM, the rest of the grace, SIGKILL. Its probes stop first.
   */
  async stopAll(
    key: string,
    pod: Pod,
    podIP: string | undefined,
    infos: ContainerInfo[],
    graceSeconds: number,
  ): Promise<void> {
    this.prober.forget(key);
    const specs = new Map((pod.spec.containers ?? []).map((c) => [c.name, c]));
    await Promise.all(
      infos
        .filter((info) => info.state.status === 'running')
        .map((info) => {
          const spec = specs.get(info.config.labels['io.kubernetes.container.name'] ?? '');
          return this.stop(key, pod, podIP ?? '', spec, info, graceSeconds);
        }),
    );
  }

  /** Forgets a pod: its probes stop, its postStart hooks are abandoned. */
  forget(key: string): void {
    this.prober.forget(key);
    this.pods.delete(key);
    this.messages.delete(key);
    for (const running of this.postStarts.values()) if (running.key === key) running.abort.abort();
  }

  /** Stops every probe and hook and the dialer (the agent stops; its containers keep running). */
  close(): void {
    this.prober.close();
    for (const running of this.postStarts.values()) running.abort.abort();
    this.postStarts.clear();
    this.dialer?.close();
    this.dialer = undefined;
  }

  /** Probe workers running now. */
  get probeWorkers(): number {
    return this.prober.workerCount;
  }

  // ------------------------------------------------------------------ inside

  private remember(key: string, pod: Pod, podIP: string, refs: ContainerRef[]): void {
    const known = this.pods.get(key);
    const fields =
      known && known.pod.metadata.uid === pod.metadata.uid ? known.fields : new Map<string, string>();
    for (const r of refs) fields.set(r.spec.name, r.field.replace(/\[\d+\]$/, ''));
    this.pods.set(key, { pod, podIP, fields });
  }

  private target(key: string, id: string, spec: Container): HandlerTarget {
    return { containerId: id, podIP: this.pods.get(key)?.podIP ?? '', container: spec };
  }

  private event(
    key: string,
    pod: Pod,
    container: string,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): void {
    const field = this.pods.get(key)?.fields.get(container) ?? 'spec.containers';
    this.options.event?.(pod, type, reason, message, `${field}{${container}}`);
  }

  private killForProbe(key: string, container: ProbedContainer, kind: ProbeKind): void {
    const known = this.pods.get(key);
    if (!known) return;
    const { pod, podIP } = known;
    const restarts = (pod.spec.restartPolicy ?? 'Always') !== 'Never';
    this.event(
      key,
      pod,
      container.spec.name,
      'Normal',
      'Killing',
      `Container ${container.spec.name} failed ${kind} probe${restarts ? ', will be restarted' : ''}`,
    );
    const probe = kind === 'liveness' ? container.spec.livenessProbe : container.spec.startupProbe;
    const grace = probe?.terminationGracePeriodSeconds ?? podGrace(pod);
    void this.stop(key, pod, podIP, container.spec, { id: container.id } as ContainerInfo, grace)
      .catch((err: unknown) =>
        this.options.log.warn(
          { pod: key, container: container.spec.name, err: errorMessage(err) },
          'killing a container failed',
        ),
      )
      .finally(() => this.options.enqueue(key));
  }

  /**
   * Stops one container once (a second ask meanwhile waits for the first): its postStart is
   * abandoned, its probes stop, its preStop runs within the grace (what the hook took is counted,
   * and at least 2 s are left after it, as the kubelet), then the runtime's SIGTERM, grace, SIGKILL.
   */
  private stop(
    key: string,
    pod: Pod,
    podIP: string,
    spec: Container | undefined,
    info: Pick<ContainerInfo, 'id'>,
    graceSeconds: number,
  ): Promise<void> {
    const already = this.stopping.get(info.id);
    if (already) return already;
    const run = async (): Promise<void> => {
      this.postStarts.get(info.id)?.abort.abort();
      this.prober.stopContainer(key, info.id);
      let grace = graceSeconds;
      const preStop = spec?.lifecycle?.preStop;
      if (preStop && spec && grace > 0) {
        const started = Date.now();
        const timeout = AbortSignal.timeout(grace * 1000);
        try {
          await runHook(
            this.hookContext,
            preStop,
            { containerId: info.id, podIP, container: spec },
            podName(pod),
            timeout,
          );
          if (timeout.aborted)
            throw new Error(`PreStopHook did not finish within the grace period of ${graceSeconds}s`);
        } catch (err) {
          this.options.log.warn(
            { pod: key, container: spec.name, err: errorMessage(err) },
            'preStop hook failed',
          );
          this.event(key, pod, spec.name, 'Warning', 'FailedPreStopHook', errorMessage(err));
        }
        grace = Math.max(MIN_GRACE_AFTER_HOOK_SECONDS, grace - Math.floor((Date.now() - started) / 1000));
      }
      await this.options.containers.stop(info.id, grace).catch(() => undefined);
    };
    const promise = run().finally(() => this.stopping.delete(info.id));
    this.stopping.set(info.id, promise);
    return promise;
  }
}

function podGrace(pod: Pod): number {
  return pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
}

/** How the kubelet names a pod in hook messages: `name_namespace(uid)`. */
function podName(pod: Pod): string {
  return `${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`;
}
