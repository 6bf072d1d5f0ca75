/**
 * One probe of one container, as the kubelet's prober worker runs it (pkg/kubelet/prober/worker.go):
 * when it runs, how its outcomes become a result through the thresholds, and when it stops. Pure:
 * time comes from a Clock and the probe itself is a function, so probe-worker.test.ts drives it
 * with a fake clock.
 *
 *   start ─► first run at startedAt + initialDelaySeconds (at once when that has passed)
 *         ─► then every periodSeconds (a tick that comes while a run is in flight is skipped, as a
 *            Go ticker drops ticks; a run never starts twice at once)
 *   a run ─► gated (liveness and readiness wait for the startup probe: skipped, not counted)
 *         ─► outcome success | failure | error (an error, e.g. a port name the container lacks,
 *            is reported and thrown away: it counts neither way)
 *         ─► the same outcome as the last one extends the run of them, another starts a new run;
 *            the result changes once a run of successes reaches successThreshold, or of failures
 *            failureThreshold
 *   liveness or startup failure ─► on hold: no more runs (the container is killed, and the next
 *                                  attempt gets a worker of its own)
 *   startup success            ─► done: no more runs
 *
 * Results start as Kubernetes' do: liveness succeeded (alive until shown otherwise), readiness
 * failed (not ready until shown), startup unknown (not started).
 */
import type { Probe } from '../../../proto/gen/types.js';

export type ProbeKind = 'liveness' | 'readiness' | 'startup';
export type ProbeResult = 'success' | 'failure';

/** What one run of a probe found. */
export interface ProbeOutcome {
  result: ProbeResult | 'error';
  /** Why it failed or errored (the probe's output, the HTTP status, the connect error). */
  message: string;
}

/** A probe's timing and thresholds, in milliseconds, with Kubernetes' defaults applied. */
export interface ProbeSettings {
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
}

/** Kubernetes' defaults (0 / 10 / 1 / 1 / 3 s and counts) and minimums (1 s period and timeout, counts of 1). */
export function probeSettings(probe: Probe): ProbeSettings {
  const atLeast = (value: number | undefined, fallback: number, min: number): number =>
    Math.max(min, value || fallback);
  return {
    initialDelayMs: Math.max(0, probe.initialDelaySeconds ?? 0) * 1000,
    periodMs: atLeast(probe.periodSeconds, 10, 1) * 1000,
    timeoutMs: atLeast(probe.timeoutSeconds, 1, 1) * 1000,
    successThreshold: atLeast(probe.successThreshold, 1, 1),
    failureThreshold: atLeast(probe.failureThreshold, 3, 1),
  };
}

/** What a worker needs of time: now, and one-shot timers. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

/** Real time; timers unref'd (a probe never keeps the agent alive on its own). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t;
  },
  clearTimer(timer) {
    clearTimeout(timer as NodeJS.Timeout);
  },
};

export interface ProbeWorkerOptions {
  kind: ProbeKind;
  settings: ProbeSettings;
  /** When the container started (ms since the epoch): the initial delay counts from there. */
  startedAtMs: number;
  clock: Clock;
  /** Runs the probe once (with its timeout); must not reject. */
  probe: () => Promise<ProbeOutcome>;
  /** Whether the probe may run now (liveness and readiness: once the startup probe succeeded). */
  gate?: () => boolean;
  /** Every outcome that is not a success (for events), before the thresholds. */
  onOutcome?: (outcome: ProbeOutcome) => void;
  /** The result changed (or a liveness or startup probe failed: the container must go). */
  onResult: (result: ProbeResult, outcome: ProbeOutcome) => void;
}

export class ProbeWorker {
  readonly kind: ProbeKind;
  private current: ProbeResult | undefined;
  private last: ProbeResult | undefined;
  private run = 0;
  private held = false;
  private stopped = false;
  private running = false;
  private timer: unknown;
  private lastStart = 0;

  constructor(private readonly options: ProbeWorkerOptions) {
    this.kind = options.kind;
    this.current =
      options.kind === 'liveness' ? 'success' : options.kind === 'readiness' ? 'failure' : undefined;
  }

  /** The result so far: undefined while a startup probe has not decided. */
  get result(): ProbeResult | undefined {
    return this.current;
  }

  /** No run will come again (stopped, on hold after a failure, or a startup probe that succeeded). */
  get done(): boolean {
    return this.stopped || this.held || (this.kind === 'startup' && this.current === 'success');
  }

  start(): void {
    const { startedAtMs, settings } = this.options;
    this.schedule(startedAtMs + settings.initialDelayMs);
  }

  /** Runs now rather than at the next tick (readiness once the startup probe succeeded). */
  trigger(): void {
    if (this.done || this.running) return;
    this.schedule(this.options.clock.now());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.options.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private schedule(at: number): void {
    if (this.done) return;
    const { clock } = this.options;
    if (this.timer !== undefined) clock.clearTimer(this.timer);
    this.timer = clock.setTimer(
      () => {
        this.timer = undefined;
        void this.tick();
      },
      Math.max(0, at - clock.now()),
    );
  }

  /** The next tick: a period after the last run started, or now when that has passed. */
  private next(): void {
    const { clock, settings } = this.options;
    this.schedule(Math.max(this.lastStart + settings.periodMs, clock.now()));
  }

  private async tick(): Promise<void> {
    if (this.done || this.running) return;
    const { clock, settings } = this.options;
    const now = clock.now();
    const from = this.options.startedAtMs + settings.initialDelayMs;
    if (now < from) return this.schedule(from);
    this.lastStart = now;
    if (this.options.gate && !this.options.gate()) return this.next();
    this.running = true;
    let outcome: ProbeOutcome;
    try {
      outcome = await this.options.probe();
    } catch (err) {
      outcome = { result: 'error', message: err instanceof Error ? err.message : String(err) };
    } finally {
      this.running = false;
    }
    if (this.done) return;
    if (outcome.result !== 'success') this.options.onOutcome?.(outcome);
    if (outcome.result === 'error') return this.next();
    const result = outcome.result;
    if (result === this.last) this.run++;
    else {
      this.last = result;
      this.run = 1;
    }
    const threshold = result === 'success' ? settings.successThreshold : settings.failureThreshold;
    if (this.run < threshold) return this.next();
    const changed = result !== this.current;
    this.current = result;
    const fatal = result === 'failure' && this.kind !== 'readiness';
    if (fatal) {
      this.held = true;
      this.run = 0;
    }
    if (changed || fatal) this.options.onResult(result, outcome);
    this.next();
  }
}
