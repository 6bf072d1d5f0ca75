/**
 * A pod's status as the kubelet computes it, from what the runtime shows of its containers. Pure.
 *
 * Phase: Pending until the sandbox is up, the init containers have succeeded and every container has
 * started once; Running while any container runs or will be restarted; Succeeded when all ended with
 * 0 and none will restart; Failed when all ended, one did not end with 0, and none will restart.
 * Conditions: PodScheduled, Initialized, ContainersReady, Ready (lastTransitionTime kept while a
 * condition's status stays the same).
 */
import type {
  Condition,
  Container,
  ContainerState,
  ContainerStatus,
  Pod,
  PodStatus,
} from '../../proto/gen/types.js';
import type { ContainerInfo } from '../runtime/runtime.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';

/** What the agent knows of one container of the pod. */
export interface ContainerView {
  spec: Container;
  /** The latest attempt, if any was created. */
  current?: ContainerInfo;
  /** The attempt before it (kept for `logs --previous` and lastState). */
  previous?: ContainerInfo;
  restartCount: number;
  /** Why it is not running (ErrImagePull, CrashLoopBackOff, CreateContainerConfigError…), when it is not. */
  waiting?: { reason: string; message?: string };
  /** Readiness (no readiness probe: ready while running). */
  ready: boolean;
  /** Its startup probe succeeded (none: started once running); default: running. */
  started?: boolean;
  /** Running, but its postStart hook has not returned: shown as waiting (ContainerCreating). */
  starting?: boolean;
  /** The termination message of `current` and of `previous`, once they exited and it was read. */
  currentMessage?: string;
  previousMessage?: string;
  /** Its image as resolved (`name@sha256:…`), once known. */
  imageID?: string;
}

export interface PodView {
  pod: Pod;
  /** The sandbox is up (namespaces and network): containers can start. */
  sandboxReady: boolean;
  podIP?: string;
  hostIP: string;
  initContainers: ContainerView[];
  containers: ContainerView[];
  /** A reason the whole pod cannot run (a volume the node cannot provide…), shown as the pod's. */
  podError?: { reason: string; message: string };
  /** When the agent first acted on the pod (RFC 3339). */
  startTime?: string;
  now: string;
}

export const CONTAINER_ID_PREFIX = 'skiff://';

function stateOf(info: ContainerInfo | undefined, message?: string): ContainerState | undefined {
  if (!info) return undefined;
  const s = info.state;
  if (s.status === 'running')
    return { running: { ...(s.startedAt ? { startedAt: seconds(s.startedAt) } : {}) } };
  if (s.status === 'exited')
    return {
      terminated: {
        exitCode: s.exitCode ?? 255,
        ...(s.signal ? { signal: s.signal } : {}),
        reason:
          s.reason === 'StartError' ? 'StartError' : (s.reason ?? (s.exitCode === 0 ? 'Completed' : 'Error')),
        // what the container left in its termination log, else why it could not start
        ...(message ? { message } : s.error ? { message: s.error } : {}),
        ...(s.startedAt ? { startedAt: seconds(s.startedAt) } : {}),
        ...(s.finishedAt ? { finishedAt: seconds(s.finishedAt) } : {}),
        containerID: CONTAINER_ID_PREFIX + info.id,
      },
    };
  return { waiting: { reason: 'ContainerCreating' } };
}

/** RFC 3339 without fractions, as Kubernetes' timestamps. */
function seconds(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : rfc3339Seconds(d);
}

function containerStatus(view: ContainerView): ContainerStatus {
  const running = view.current?.state.status === 'running' && !view.starting;
  const state: ContainerState =
    view.waiting && !running
      ? {
          waiting: {
            reason: view.waiting.reason,
            ...(view.waiting.message ? { message: view.waiting.message } : {}),
          },
        }
      : view.starting
        ? { waiting: { reason: 'ContainerCreating' } }
        : (stateOf(view.current, view.currentMessage) ?? { waiting: { reason: 'ContainerCreating' } });
  // after a restart, what ended last; while waiting to restart, the attempt that ended
  const waitingAfterExit = view.waiting && view.current?.state.status === 'exited';
  const last = waitingAfterExit ? view.current : view.previous;
  const lastState = state.terminated
    ? undefined
    : stateOf(
        last?.state.status === 'exited' ? last : undefined,
        waitingAfterExit ? view.currentMessage : view.previousMessage,
      );
  return {
    name: view.spec.name,
    state,
    ...(lastState ? { lastState } : { lastState: {} }),
    ready: running && view.ready,
    restartCount: view.restartCount,
    image: view.spec.image ?? '',
    imageID: view.imageID ?? '',
    ...(view.current ? { containerID: CONTAINER_ID_PREFIX + view.current.id } : {}),
    started: running && (view.started ?? true),
  };
}

/** Will this container be started again after it ended with `exitCode`? */
export function willRestart(pod: Pod, exitCode: number): boolean {
  const policy = pod.spec.restartPolicy ?? 'Always';
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

export function podPhase(view: PodView): string {
  const { pod } = view;
  const exited = (c: ContainerView): number | undefined =>
    c.current?.state.status === 'exited' ? (c.current.state.exitCode ?? 255) : undefined;
  // an init container that failed for good fails the pod
  for (const c of view.initContainers) {
    const code = exited(c);
    if (code !== undefined && code !== 0 && (pod.spec.restartPolicy ?? 'Always') === 'Never') return 'Failed';
  }
  const initDone = view.initContainers.every((c) => exited(c) === 0);
  if (!view.sandboxReady || !initDone) return 'Pending';
  // a first attempt still in its postStart hook has not started yet (a later one has, before)
  const everStarted = view.containers.every(
    (c) => c.current !== undefined && c.current.state.status !== 'created' && !(c.starting && !c.previous),
  );
  if (!everStarted) return 'Pending';
  const codes = view.containers.map(exited);
  if (codes.some((code) => code === undefined)) return 'Running';
  if (codes.some((code) => willRestart(pod, code!))) return 'Running';
  return codes.every((code) => code === 0) ? 'Succeeded' : 'Failed';
}

function condition(
  type: string,
  ok: boolean,
  previous: Condition[] | undefined,
  now: string,
  reason?: string,
): Condition {
  const status = ok ? 'True' : 'False';
  const before = previous?.find((c) => c.type === type);
  return {
    type,
    status,
    lastTransitionTime:
      before?.status === status && before.lastTransitionTime ? before.lastTransitionTime : now,
    ...(reason && !ok ? { reason } : {}),
  };
}

export function podStatus(view: PodView): PodStatus {
  const { pod, now } = view;
  const phase = podPhase(view);
  const previous = pod.status?.conditions;
  const initialized = view.initContainers.every(
    (c) => c.current?.state.status === 'exited' && c.current.state.exitCode === 0,
  );
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const containersReady =
    !terminal &&
    view.sandboxReady &&
    view.containers.every((c) => c.ready && !c.starting && c.current?.state.status === 'running');
  const status: PodStatus = {
    phase,
    conditions: [
      condition('PodScheduled', true, previous, now),
      condition('Initialized', initialized, previous, now, 'ContainersNotInitialized'),
      condition(
        'ContainersReady',
        containersReady,
        previous,
        now,
        terminal ? 'PodCompleted' : 'ContainersNotReady',
      ),
      condition('Ready', containersReady, previous, now, terminal ? 'PodCompleted' : 'ContainersNotReady'),
    ],
    hostIP: view.hostIP,
    hostIPs: [{ ip: view.hostIP }],
    ...(view.podIP ? { podIP: view.podIP, podIPs: [{ ip: view.podIP }] } : {}),
    ...(view.startTime ? { startTime: view.startTime } : {}),
    ...(view.initContainers.length
      ? { initContainerStatuses: view.initContainers.map(containerStatus) }
      : {}),
    containerStatuses: view.containers.map(containerStatus),
    qosClass: qosClass(pod),
  };
  if (view.podError) {
    status.reason = view.podError.reason;
    status.message = view.podError.message;
  }
  return status;
}

/** Guaranteed (limits = requests for cpu and memory everywhere), BestEffort (none), else Burstable. */
export function qosClass(pod: Pod): string {
  const all = [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])];
  let any = false;
  let guaranteed = true;
  for (const c of all) {
    const limits = c.resources?.limits ?? {};
    const requests = c.resources?.requests ?? {};
    for (const r of ['cpu', 'memory']) {
      if (limits[r] !== undefined || requests[r] !== undefined) any = true;
      if (limits[r] === undefined || (requests[r] !== undefined && requests[r] !== limits[r]))
        guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}
