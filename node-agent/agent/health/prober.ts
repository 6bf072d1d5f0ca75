/**
 * The probes of a node's running containers (the kubelet's prober manager): one ProbeWorker per
 * container attempt and probe, made when the container is seen running (and past its postStart
 * hook), stopped when it is not. Results are kept per container id, so a restarted container
 * starts over (not ready, not started) and a restarted agent too, as the kubelet's do.
 *
 *   startup    gates liveness and readiness; success → started (and readiness runs at once);
 *              failure → the container is killed (onKill)
 *   liveness   failure → the container is killed (onKill)
 *   readiness  → ready; each change asks for the pod to be reconciled (its status reported)
 *
 * Every failed run is reported (onOutcome: the Unhealthy events), whatever the thresholds say.
 * Nothing here does I/O: the probe itself is the caller's `run` function.
 */
import type { Container, Probe } from '../../../proto/gen/types.js';
import {
  ProbeWorker,
  probeSettings,
  type Clock,
  type ProbeKind,
  type ProbeOutcome,
  type ProbeResult,
} from './probe-worker.js';

/** A running container attempt to probe. */
export interface ProbedContainer {
  /** The runtime container's id. */
  id: string;
  spec: Container;
  /** When it started (ms since the epoch). */
  startedAtMs: number;
}

export interface ProberOptions {
  clock: Clock;
  /** Runs `probe` once against the container, within `timeoutMs`. */
  run: (
    podKey: string,
    container: ProbedContainer,
    kind: ProbeKind,
    probe: Probe,
    timeoutMs: number,
  ) => Promise<ProbeOutcome>;
  /** A run that did not succeed (failure or error). */
  onOutcome: (podKey: string, container: ProbedContainer, kind: ProbeKind, outcome: ProbeOutcome) => void;
  /** A liveness or startup probe failed: the container must be killed. */
  onKill: (
    podKey: string,
    container: ProbedContainer,
    kind: 'liveness' | 'startup',
    outcome: ProbeOutcome,
  ) => void;
  /** Something a pod's status shows changed (ready, started). */
  onChange: (podKey: string) => void;
}

const KINDS: [ProbeKind, 'livenessProbe' | 'readinessProbe' | 'startupProbe'][] = [
  ['startup', 'startupProbe'],
  ['liveness', 'livenessProbe'],
  ['readiness', 'readinessProbe'],
];

interface Probed {
  container: ProbedContainer;
  workers: Partial<Record<ProbeKind, ProbeWorker>>;
}

export class Prober {
  /** Pod key → container id → its workers. */
  private readonly pods = new Map<string, Map<string, Probed>>();

  constructor(private readonly options: ProberOptions) {}

  /**
   * The containers of `podKey` that run now: workers are made for new ones, and those of
   * containers not listed are stopped.
   */
  sync(podKey: string, running: ProbedContainer[]): void {
    let byId = this.pods.get(podKey);
    const wanted = new Set(running.map((c) => c.id));
    if (byId) {
      for (const [id, probed] of byId) if (!wanted.has(id)) this.stopProbed(byId, id, probed);
    }
    for (const container of running) {
      if (!KINDS.some(([, field]) => container.spec[field])) continue;
      byId ??= this.pods.set(podKey, new Map()).get(podKey)!;
      if (byId.has(container.id)) continue;
      byId.set(container.id, this.start(podKey, container));
    }
    if (byId?.size === 0) this.pods.delete(podKey);
  }

  /** Stops the probes of one container (it is being stopped). */
  stopContainer(podKey: string, id: string): void {
    const byId = this.pods.get(podKey);
    const probed = byId?.get(id);
    if (byId && probed) this.stopProbed(byId, id, probed);
    if (byId?.size === 0) this.pods.delete(podKey);
  }

  /** Stops every probe of a pod. */
  forget(podKey: string): void {
    const byId = this.pods.get(podKey);
    if (!byId) return;
    for (const [id, probed] of byId) this.stopProbed(byId, id, probed);
    this.pods.delete(podKey);
  }

  close(): void {
    for (const key of [...this.pods.keys()]) this.forget(key);
  }

  /** Has the container started (its startup probe succeeded, or it has none)? */
  started(podKey: string, id: string, spec: Container): boolean {
    if (!spec.startupProbe) return true;
    return this.pods.get(podKey)?.get(id)?.workers.startup?.result === 'success';
  }

  /** Is it ready (started, and its readiness probe succeeded, or it has none)? */
  ready(podKey: string, id: string, spec: Container): boolean {
    if (!this.started(podKey, id, spec)) return false;
    if (!spec.readinessProbe) return true;
    return this.pods.get(podKey)?.get(id)?.workers.readiness?.result === 'success';
  }

  /** Workers running now (for tests and metrics). */
  get workerCount(): number {
    let n = 0;
    for (const byId of this.pods.values()) for (const p of byId.values()) n += Object.keys(p.workers).length;
    return n;
  }

  private stopProbed(byId: Map<string, Probed>, id: string, probed: Probed): void {
    for (const worker of Object.values(probed.workers)) worker.stop();
    byId.delete(id);
  }

  private start(podKey: string, container: ProbedContainer): Probed {
    const { clock } = this.options;
    const probed: Probed = { container, workers: {} };
    const startupDone = (): boolean => !probed.workers.startup || probed.workers.startup.result === 'success';
    for (const [kind, field] of KINDS) {
      const probe = container.spec[field];
      if (!probe) continue;
      const settings = probeSettings(probe);
      probed.workers[kind] = new ProbeWorker({
        kind,
        settings,
        startedAtMs: container.startedAtMs,
        clock,
        probe: () => this.options.run(podKey, container, kind, probe, settings.timeoutMs),
        ...(kind === 'startup' ? {} : { gate: startupDone }),
        onOutcome: (outcome) => this.options.onOutcome(podKey, container, kind, outcome),
        onResult: (result: ProbeResult, outcome) => {
          if (result === 'failure' && kind !== 'readiness') {
            this.options.onKill(podKey, container, kind, outcome);
            return;
          }
          if (kind === 'startup') {
            // liveness and readiness were waiting for it
            probed.workers.readiness?.trigger();
            probed.workers.liveness?.trigger();
          }
          this.options.onChange(podKey);
        },
      });
    }
    for (const worker of Object.values(probed.workers)) worker.start();
    return probed;
  }
}
