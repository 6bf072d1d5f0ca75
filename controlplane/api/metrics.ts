/**
 * API request metrics: one latency histogram labelled by method, kind and outcome code, plus the
 * default process metrics, all on a registry owned by the caller (one per control plane, so that
 * several can run in one test process).
 */
import { Histogram, collectDefaultMetrics, type Registry } from 'prom-client';

export interface ApiMetrics {
  /** Records one finished call; `code` is the error vocabulary's code or 'OK'. */
  observe(method: string, kind: string, code: string, seconds: number): void;
}

export function createApiMetrics(registry: Registry): ApiMetrics {
  collectDefaultMetrics({ register: registry });
  const latency = new Histogram({
    name: 'skiff_api_request_duration_seconds',
    help: 'Latency of skiff API calls by method, kind and result code (watch: time to first response)',
    labelNames: ['method', 'kind', 'code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return {
    observe(method, kind, code, seconds) {
      latency.observe({ method, kind, code }, seconds);
    },
  };
}
