/**
 * The scheduler's metrics, on the control plane's registry, named as kube-scheduler's with the
 * `skiff_scheduler_` prefix:
 *
 *   skiff_scheduler_schedule_attempts_total{result}                 scheduled | unschedulable | error
 *   skiff_scheduler_scheduling_attempt_duration_seconds{result}     one cycle, pop to assume/refusal
 *   skiff_scheduler_pending_pods{queue}                             active | backoff | unschedulable | gated
 *
 * Made once per control plane; each leadership term's scheduler is attached while it runs (a
 * standby reports no pending pods).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CycleOutcome, Scheduler } from '../scheduler/scheduler.js';

export interface SchedulerMetrics {
  /** Counts one scheduling cycle (SchedulerOptions.onCycle). */
  observeCycle(outcome: CycleOutcome, durationMs: number): void;
  /** The scheduler whose queue the gauge reads; undefined when none runs here. */
  attach(scheduler: Scheduler | undefined): void;
}

const RESULT_OF: Record<CycleOutcome['kind'], string | undefined> = {
  assumed: 'scheduled',
  unschedulable: 'unschedulable',
  error: 'error',
  skipped: undefined,
};

export function createSchedulerMetrics(registry: Registry): SchedulerMetrics {
  let attached: Scheduler | undefined;
  const attempts = new Counter({
    name: 'skiff_scheduler_schedule_attempts_total',
    help: 'Scheduling cycles by result: scheduled (placed and binding), unschedulable (no node fits), error',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'skiff_scheduler_scheduling_attempt_duration_seconds',
    help: 'Time one scheduling cycle took (filter, score, preemption), by result',
    labelNames: ['result'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  new Gauge({
    name: 'skiff_scheduler_pending_pods',
    help: "Pods waiting in the scheduler's queue, by queue (active, backoff, unschedulable, gated)",
    labelNames: ['queue'] as const,
    registers: [registry],
    collect() {
      const lengths = attached?.queue.lengths;
      this.set({ queue: 'active' }, lengths?.active ?? 0);
      this.set({ queue: 'backoff' }, lengths?.backoff ?? 0);
      this.set({ queue: 'unschedulable' }, lengths?.unschedulable ?? 0);
      this.set({ queue: 'gated' }, lengths?.gated ?? 0);
    },
  });
  return {
    observeCycle(outcome, durationMs) {
      const result = RESULT_OF[outcome.kind];
      if (result === undefined) return;
      attempts.inc({ result });
      duration.observe({ result }, durationMs / 1000);
    },
    attach(scheduler) {
      attached = scheduler;
    },
  };
}
