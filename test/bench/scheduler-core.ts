/**
 * The scheduler's core alone (issue 12): no etcd, no informer — an in-memory binder that answers at
 * once and hands the bound pod back as the informer would. It measures what the scheduling logic
 * costs, the part of "create → bound in etcd" that is the scheduler's own.
 *
 * For each case, `--pods` pods (100m cpu, 128Mi each) are queued at once onto `--nodes` nodes
 * (4 cpu, 16Gi, 110 pods; 10 zones), with and without a topology spread constraint (zone,
 * maxSkew 1, DoNotSchedule, over the benchmark's pods), and scheduled to the last one. Reported:
 * pods placed per second (wall time from queueing them to the last bind), the p50/p99 of each
 * pod's scheduling cycle (pop to assume) and of its end-to-end latency (queued to bound, which
 * for pods queued all at once is mostly waiting in the queue), and the CPU time of the run.
 * Every placement is checked afterwards: no node over its allocatable, every spread within maxSkew.
 *
 *   node dist/test/bench/scheduler-core.js [--pods 10000] [--nodes 1000,5000] [--rounds 1]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/test/bench/scheduler-core.js --nodes 5000
 */
import { parseArgs } from 'node:util';
import type { Pod } from '../../proto/gen/types.js';
import { Scheduler } from '../../controlplane/scheduler/scheduler.js';
import { benchNode, benchPod, printTable, verifyPlacements } from './scheduler-workload.js';
import { seededRandom } from '../../proto/support/seeded-random.js';
import type { Clock } from '../../proto/informer/work-queue.js';

interface CaseResult {
  nodes: number;
  spread: boolean;
  pods: number;
  seconds: number;
  podsPerSecond: number;
  cycleMs: { p50: number; p99: number };
  e2eMs: { p50: number; p99: number };
  cpuSeconds: number;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/** The real clock, with timers that do not keep the process alive. */
const clock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

function benchPods(count: number, spread: boolean): Pod[] {
  return Array.from({ length: count }, (_, i) => benchPod(`bench-${i}`, 'bench', spread));
}

async function runCase(nodeCount: number, podCount: number, spread: boolean): Promise<CaseResult> {
  const queuedAt = new Map<string, number>();
  const cycleTimes: number[] = [];
  const e2e: number[] = [];
  const placed = new Map<string, string>();
  let done!: () => void;
  const allBound = new Promise<void>((resolve) => (done = resolve));
  const scheduler: Scheduler = new Scheduler({
    clock,
    random: seededRandom(1),
    onCycle(outcome, durationMs) {
      if (outcome.kind !== 'assumed') throw new Error(`pod ${outcome.pod.metadata.name}: ${outcome.kind}`);
      cycleTimes.push(durationMs);
    },
    binder: {
      async bind(pod, nodeName) {
        const bound: Pod = { ...pod, spec: { ...pod.spec, nodeName } };
        // The informer brings the bound pod back, which confirms the assumption.
        setImmediate(() => scheduler.podUpdated(pod, bound));
      },
    },
    reporter: {
      scheduled(pod, nodeName) {
        const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
        placed.set(key, nodeName);
        e2e.push(performance.now() - queuedAt.get(key)!);
        if (placed.size === podCount) done();
      },
      unschedulable(pod, message) {
        throw new Error(`pod ${pod.metadata.name} unschedulable: ${message}`);
      },
    },
  });
  for (let i = 0; i < nodeCount; i++) {
    scheduler.nodeAdded(benchNode(i));
  }
  const pods = benchPods(podCount, spread);
  const cpuBefore = process.cpuUsage();
  const began = performance.now();
  for (const pod of pods) {
    queuedAt.set(`${pod.metadata.namespace}/${pod.metadata.name}`, performance.now());
    scheduler.podAdded(pod);
  }
  const running = scheduler.run();
  await allBound;
  const seconds = (performance.now() - began) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await scheduler.stop();
  await running;
  verifyPlacements(placed, pods.length, spread);
  cycleTimes.sort((a, b) => a - b);
  e2e.sort((a, b) => a - b);
  return {
    nodes: nodeCount,
    spread,
    pods: podCount,
    seconds,
    podsPerSecond: podCount / seconds,
    cycleMs: { p50: percentile(cycleTimes, 0.5), p99: percentile(cycleTimes, 0.99) },
    e2eMs: { p50: percentile(e2e, 0.5), p99: percentile(e2e, 0.99) },
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pods: { type: 'string', default: '10000' },
      nodes: { type: 'string', default: '1000,5000' },
      rounds: { type: 'string', default: '1' },
    },
  });
  const podCount = Number(values.pods);
  const nodeCounts = values.nodes.split(',').map(Number);
  const rounds = Number(values.rounds);
  const results: CaseResult[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const nodes of nodeCounts) {
      for (const spread of [false, true]) results.push(await runCase(nodes, podCount, spread));
    }
  }
  const rows = results.map((r) => [
    String(r.nodes),
    r.spread ? 'zone, maxSkew 1' : 'none',
    String(r.pods),
    r.seconds.toFixed(2),
    r.podsPerSecond.toFixed(0),
    r.cycleMs.p50.toFixed(3),
    r.cycleMs.p99.toFixed(3),
    r.e2eMs.p50.toFixed(0),
    r.e2eMs.p99.toFixed(0),
    r.cpuSeconds.toFixed(2),
  ]);
  const header = [
    'nodes',
    'spread',
    'pods',
    'seconds',
    'pods/s',
    'cycle p50 ms',
    'cycle p99 ms',
    'e2e p50 ms',
    'e2e p99 ms',
    'cpu s',
  ];
  printTable(header, rows);
}

await main();
