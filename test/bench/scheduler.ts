/**
 * The scheduler as the control plane runs it (issue 12, as Kubernetes' scheduler_perf measures it):
 * create → bound in etcd, through the real store, the API handlers and bindPod.
 *
 * Per case: a fresh etcd (temp dir, free port) and a control plane in this process
 * (`startControlPlane`, no NATS), whose leader runs the SchedulerService; `--nodes` Nodes registered
 * directly through the API handlers (4 cpu, 16Gi, 110 pods, 10 zones; Ready; a pod CIDR given, so
 * node IPAM has nothing to do); then `--pods` pods (100m, 128Mi; with or without a topology spread
 * constraint over zones, maxSkew 1, DoNotSchedule) created through the API handlers, 64 in flight,
 * while the scheduler binds them. Reported: pods bound per second (first create → last bind seen
 * by a watch of etcd), each pod's scheduling latency p50 / p99 (its create answered → its binding
 * seen), the run's CPU time, and the raw etcd compare-and-swap rate measured on the same etcd right
 * after (test/bench/etcd-raw-create.ts, 64 in flight), with the ratio, and how many Scheduled
 * Events were written by then (the recorder drops what the API cannot take in time). Every
 * placement is checked: bound once, no node over its cpu, zones within maxSkew.
 *
 *   node dist/test/bench/scheduler.js [--pods 10000] [--nodes 1000,5000] [--spread both|none|zone]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/test/bench/scheduler.js --nodes 5000 --spread none
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startEtcd } from '../../cli/up/etcd-process.js';
import { startControlPlane } from '../../controlplane/main.js';
import { benchNode, benchPod, printTable, verifyPlacements } from './scheduler-workload.js';
import { storeSource } from '../../controlplane/store/store-source.js';
import type { Pod } from '../../proto/gen/types.js';
import { Informer } from '../../proto/informer/informer.js';
import { decodeObject } from '../../proto/objects.js';
import { percentile } from './api-create.js';
import { measureRawEtcdCreates } from './etcd-raw-create.js';
import { registerNode, userPod } from '../harness/registered-nodes.js';

const IN_FLIGHT = 64;
const NAMESPACE = 'bench';

interface CaseResult {
  nodes: number;
  spread: boolean;
  podsPerSecond: number;
  seconds: number;
  latencyMs: { p50: number; p99: number };
  cpuSeconds: number;
  rawCasPerSecond: number;
  /** Scheduled Events written by the end (the recorder drops what it cannot write in time). */
  scheduledEvents: number;
  /** Scheduling cycles by result (skiff_scheduler_schedule_attempts_total). */
  attempts: string;
  /** The mean scheduling cycle (pop to assume), from the scheduler's histogram. */
  cycleMeanMs: number;
}

/** `count` calls of `run(i)`, `IN_FLIGHT` at once. */
async function inFlight(count: number, run: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await run(next++);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

async function runCase(nodeCount: number, podCount: number, spread: boolean): Promise<CaseResult> {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-scheduler-'));
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd'), output: { logFile: join(dir, 'etcd.log') } });
  const controlPlane = await startControlPlane({
    etcdEndpoints: [etcd.endpoint],
    apiAddr: '127.0.0.1:0',
    httpAddr: '127.0.0.1:0',
    stateDir: join(dir, 'state'),
    clusterCIDR: '10.0.0.0/8',
    // its watches end with warnings when etcd goes at the end of a case
    log: pino({ level: 'error' }),
  });
  const watch = new Informer<Pod>({
    source: storeSource({
      store: controlPlane.store,
      resource: 'pods',
      decode: (bytes) => decodeObject('Pod', bytes),
    }),
    logger: pino({ level: 'warn' }),
  });
  try {
    const { handlers } = controlPlane;
    await handlers.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE }, spec: {} });
    await inFlight(nodeCount, (i) => {
      const node = benchNode(i);
      node.spec = { ...node.spec, podCIDR: `10.${i >> 8}.${i & 255}.0/24` };
      return registerNode(handlers, node);
    });
    // the scheduler's informer has every node before the first pod comes
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const createdAt = new Map<string, number>();
    const boundAt = new Map<string, number>();
    const placed = new Map<string, string>();
    let rebinds = 0;
    let allBound!: () => void;
    const done = new Promise<void>((resolve) => (allBound = resolve));
    watch.onChange((key, change) => {
      if (change === 'deleted') return;
      const pod = watch.get(key)?.object;
      const nodeName = pod?.spec.nodeName;
      if (!nodeName) return;
      const before = placed.get(key);
      if (before === undefined) {
        placed.set(key, nodeName);
        boundAt.set(key, performance.now());
        if (placed.size === podCount) allBound();
      } else if (before !== nodeName) rebinds++;
    });
    watch.start();
    await watch.waitForSync();

    const cpuBefore = process.cpuUsage();
    const began = performance.now();
    await inFlight(podCount, async (i) => {
      const pod = userPod(benchPod(`bench-${i}`, NAMESPACE, spread));
      await handlers.create(pod);
      createdAt.set(`${NAMESPACE}/${pod.metadata.name}`, performance.now());
    });
    await done;
    const seconds = (Math.max(...boundAt.values()) - began) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const latencies = [...boundAt].map(([key, at]) => at - createdAt.get(key)!).sort((a, b) => a - b);
    if (rebinds > 0) throw new Error(`${rebinds} pods changed node after their binding`);
    verifyPlacements(placed, podCount, spread);
    const raw = await measureRawEtcdCreates({
      endpoint: etcd.endpoint,
      payloadBytes: 1500,
      concurrency: IN_FLIGHT,
      durationMs: 3000,
    });
    const events = await handlers.list('Event', { namespace: NAMESPACE, resourceVersion: '0' });
    const scheduledEvents = events.items.filter(
      (item) => (item.object as { reason?: string }).reason === 'Scheduled',
    ).length;
    const metrics = await (await fetch(`http://${controlPlane.httpAddress}/metrics`)).text();
    const attempts = [
      ...metrics.matchAll(/^skiff_scheduler_schedule_attempts_total\{result="(\w+)"\} (\d+)/gm),
    ]
      .map(([, result, count]) => `${result} ${count}`)
      .join(', ');
    const cycleSeconds = (name: string): number =>
      Number(
        new RegExp(
          `^skiff_scheduler_scheduling_attempt_duration_seconds_${name}\\{result="scheduled"\\} (\\S+)`,
          'm',
        ).exec(metrics)?.[1] ?? NaN,
      );
    return {
      cycleMeanMs: (cycleSeconds('sum') / cycleSeconds('count')) * 1000,
      attempts,
      scheduledEvents,
      nodes: nodeCount,
      spread,
      podsPerSecond: podCount / seconds,
      seconds,
      latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) },
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rawCasPerSecond: raw.txnPerSec,
    };
  } finally {
    await watch.stop();
    await controlPlane.stop();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pods: { type: 'string', default: '10000' },
      nodes: { type: 'string', default: '1000,5000' },
      spread: { type: 'string', default: 'both' },
    },
  });
  const podCount = Number(values.pods);
  const spreads = values.spread === 'both' ? [false, true] : [values.spread === 'zone'];
  const header = [
    'nodes',
    'spread',
    'pods',
    'seconds',
    'pods/s',
    'p50 ms',
    'p99 ms',
    'cpu s',
    'raw CAS/s',
    'pods/s ÷ CAS/s',
    'Scheduled events',
    'cycles',
    'cycle mean ms',
  ];
  const rows: string[][] = [];
  for (const nodes of values.nodes.split(',').map(Number)) {
    for (const spread of spreads) {
      const r = await runCase(nodes, podCount, spread);
      rows.push([
        String(r.nodes),
        r.spread ? 'zone, maxSkew 1' : 'none',
        String(podCount),
        r.seconds.toFixed(2),
        r.podsPerSecond.toFixed(0),
        r.latencyMs.p50.toFixed(0),
        r.latencyMs.p99.toFixed(0),
        r.cpuSeconds.toFixed(1),
        r.rawCasPerSecond.toFixed(0),
        (r.podsPerSecond / r.rawCasPerSecond).toFixed(2),
        String(r.scheduledEvents),
        r.attempts,
        r.cycleMeanMs.toFixed(3),
      ]);
      process.stderr.write(`case done: ${rows[rows.length - 1]!.join(' ')}\n`);
    }
  }
  printTable(header, rows);
}

await main();
