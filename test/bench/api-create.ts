/**
 * API create throughput against raw etcd, and list latency / control-plane memory at 10,000 pods.
 *
 *   node dist/test/bench/api-create.js [--concurrency 64] [--seconds 5] [--rounds 3] [--pods 10000] [--profile DIR]
 *   node --import tsx test/bench/api-create.ts …
 *
 * One etcd (temp dir, free port) serves both measurements in the same run:
 * 1. raw etcd create-if-absent transactions (test/bench/etcd-raw-create.ts) with the payload size
 *    of the pod the API stores, `concurrency` in flight;
 * 2. API creates of that pod through the typed client, `concurrency` callers in flight, against
 *    `skiff controlplane` running as its own process (so its memory can be read);
 * then the ratio. The two alternate for `rounds` rounds and each round's ratio is printed, then their
 * median: on a shared machine the load changes between measurements, so only neighbours compare.
 * Afterwards a namespace of its own is filled with `pods` pods, and a full `list` of it, a paged
 * list (500 per page) and the control plane's resident memory are measured (skipped with --pods 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startEtcd } from '../../cli/up/etcd-process.js';
import { startNats } from '../../cli/up/nats-process.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { Pod } from '../../proto/gen/types.js';
import { encodeObject } from '../../proto/objects.js';
import { measureRawEtcdCreates } from './etcd-raw-create.js';
import { skiffEntryArgv } from '../../proto/package-info.js';

/** Where the throughput rounds create (as many pods as they manage). */
const CREATE_NAMESPACE = 'bench';
/** Holds exactly `--pods` pods for the list measurements, however many the rounds created. */
const LIST_NAMESPACE = 'bench-list';

export function benchPod(name: string, namespace = CREATE_NAMESPACE): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'bench', tier: 'web' } },
    spec: {
      containers: [
        {
          name: 'web',
          image: 'registry.local/web:1.0',
          command: ['/bin/web', '--port=8080'],
          ports: [{ containerPort: 8080, name: 'http' }],
          env: [{ name: 'MODE', value: 'production' }],
          resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
        },
      ],
    },
  };
}

export function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

export async function waitReady(httpAddress: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`control plane exited with code ${child.exitCode}`);
    try {
      if ((await fetch(`http://${httpAddress}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`control plane not ready within ${timeoutMs} ms`);
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kib / 1024;
}

export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface BenchCluster {
  etcd: { endpoint: string; pid: number };
  /** The control plane's process, its gRPC and HTTP addresses, and the admin token. */
  controlPlane: ChildProcess;
  apiAddress: string;
  httpAddress: string;
  token: string;
  /** The cluster CA (PEM) and its file: the API speaks TLS. */
  ca: string;
  caFile: string;
}

/**
 * etcd, NATS and `skiff controlplane` (its own process, so its CPU and memory can be read) under
 * `dir`, with `extraArgs` for the control plane and `nodeArgs` for its node; each stop is pushed
 * onto `cleanups` as it starts, so a failure half-way still stops what was started.
 */
export async function startBenchCluster(
  dir: string,
  cleanups: Array<() => Promise<void> | void>,
  options: { extraArgs?: string[]; nodeArgs?: string[] } = {},
): Promise<BenchCluster> {
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd'), output: { logFile: join(dir, 'etcd.log') } });
  cleanups.push(() => etcd.stop());
  const nats = await startNats({ storeDir: join(dir, 'nats'), output: { logFile: join(dir, 'nats.log') } });
  cleanups.push(() => nats.stop());
  const apiAddress = `127.0.0.1:${await freePort()}`;
  const httpAddress = `127.0.0.1:${await freePort()}`;
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      ...skiffEntryArgv(),
      'controlplane',
      '--etcd', etcd.endpoint,
      '--nats', nats.endpoint,
      '--api-addr', apiAddress,
      '--http-addr', httpAddress,
      '--state-dir', join(dir, 'controlplane'),
      ...(options.extraArgs ?? []),
    ], // prettier-ignore
    { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, SKIFF_LOG_LEVEL: 'warn' } },
  );
  cleanups.push(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
  await waitReady(httpAddress, child, 30_000);
  const token = readFileSync(join(dir, 'controlplane', 'admin-token'), 'utf8').trim();
  const caFile = join(dir, 'controlplane', 'pki', 'ca.crt');
  return {
    ca: readFileSync(caFile, 'utf8'),
    caFile,
    etcd: { endpoint: etcd.endpoint, pid: etcd.pid },
    controlPlane: child,
    apiAddress,
    httpAddress,
    token,
  };
}

/**
 * `concurrency` callers creating pods named `${prefix}-<n>` for `durationMs` (or until `total`),
 * all through one client (one HTTP/2 connection), as the raw side sends its transactions through
 * one etcd3 client.
 */
export async function createPods(
  client: ApiClient,
  concurrency: number,
  prefix: string,
  options: { durationMs?: number; total?: number; namespace?: string },
): Promise<{ created: number; seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const began = performance.now();
  const until = options.durationMs !== undefined ? began + options.durationMs : Infinity;
  const total = options.total ?? Infinity;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const n = next++;
        if (n >= total) return;
        const start = performance.now();
        await client.create(benchPod(`${prefix}-${n}`, options.namespace));
        latencies.push(performance.now() - start);
      }
    }),
  );
  return {
    created: latencies.length,
    seconds: (performance.now() - began) / 1000,
    latencies: latencies.sort((a, b) => a - b),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      pods: { type: 'string', default: '10000' },
      /** Write a CPU profile of the control plane into this directory. */
      profile: { type: 'string' },
    },
  });
  const concurrency = Number(values.concurrency);
  const durationMs = Number(values.seconds) * 1000;
  const rounds = Number(values.rounds);
  const podTarget = Number(values.pods);
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-api-'));
  const cleanups: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  try {
    const {
      etcd,
      controlPlane: child,
      apiAddress,
      token,
      ca,
    } = await startBenchCluster(dir, cleanups, {
      ...(values.profile ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', values.profile] } : {}),
    });
    const admin = connectApi({ server: apiAddress, token, tls: { ca }, timeoutMs: 60_000 });
    cleanups.push(() => admin.close());
    for (const name of [CREATE_NAMESPACE, LIST_NAMESPACE]) {
      await admin.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name }, spec: {} });
    }

    // The stored size of the benchmark pod: the raw transactions write the same number of bytes.
    const sample = await admin.create(benchPod('sample'));
    const payloadBytes = encodeObject({
      ...sample,
      metadata: { ...sample.metadata, resourceVersion: undefined },
    }).length;
    // Both sides run untimed for one round's length first: after 256 creates the control plane's
    // JIT was still cold, and the first round measured its compiling more than the create path.
    const warmUpMs = durationMs;
    await measureRawEtcdCreates({ endpoint: etcd.endpoint, payloadBytes, concurrency, durationMs: warmUpMs });
    await createPods(admin, concurrency, 'warm-up', { durationMs: warmUpMs });

    const pids = { etcd: etcd.pid, controlPlane: child.pid!, bench: process.pid };
    const cpuOf = (): Record<string, number> =>
      Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
    const perOp = (after: Record<string, number>, before: Record<string, number>, ops: number): string =>
      Object.keys(pids)
        .map((name) => `${name} ${(((after[name]! - before[name]!) / ops) * 1e6).toFixed(0)}`)
        .join(', ');
    out(
      `create throughput, ${concurrency} in flight, ${payloadBytes} B per object, same etcd (${etcd.endpoint}):`,
    );
    const ratios: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const startCpu = cpuOf();
      const raw = await measureRawEtcdCreates({
        endpoint: etcd.endpoint,
        payloadBytes,
        concurrency,
        durationMs,
      });
      const rawCpu = cpuOf();
      const api = await createPods(admin, concurrency, `p${round}`, { durationMs });
      const apiCpu = cpuOf();
      const apiRate = api.created / api.seconds;
      ratios.push(apiRate / raw.txnPerSec);
      out(`round ${round}:`);
      out(
        `  raw etcd create-if-absent: ${raw.txnPerSec.toFixed(0)} txn/s (p50 ${raw.latencyMs.p50.toFixed(2)} ms, p99 ${raw.latencyMs.p99.toFixed(2)} ms)`,
      );
      out(
        `  API create (gRPC, auth, validation, namespace check): ${apiRate.toFixed(0)} creates/s ` +
          `(p50 ${percentile(api.latencies, 0.5).toFixed(2)} ms, p99 ${percentile(api.latencies, 0.99).toFixed(2)} ms)`,
      );
      out(`  ratio API / raw: ${(apiRate / raw.txnPerSec).toFixed(2)}`);
      out(`  CPU µs per raw create: ${perOp(rawCpu, startCpu, raw.transactions)}`);
      out(`  CPU µs per API create: ${perOp(apiCpu, rawCpu, api.created)}`);
      out(`  control-plane RSS: ${rssMiB(child.pid!).toFixed(0)} MiB`);
    }
    ratios.sort((a, b) => a - b);
    out(
      `ratio API / raw, median of ${rounds} rounds: ${percentile(ratios, 0.5).toFixed(2)} (goal >= 0.60; ` +
        `rounds ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
    );

    // --pods 0 measures creates only, so that a --profile shows the create path alone.
    if (podTarget === 0) return;
    await createPods(admin, concurrency, 'fill', { total: podTarget, namespace: LIST_NAMESPACE });
    const rssBefore = rssMiB(child.pid!);
    const fullLatencies: number[] = [];
    let count = 0;
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      count = (await admin.list('Pod', { namespace: LIST_NAMESPACE })).items.length;
      fullLatencies.push(performance.now() - start);
    }
    const rssAfter = rssMiB(child.pid!);
    const pagedStart = performance.now();
    let pages = 0;
    let token2: string | undefined;
    do {
      const page = await admin.list('Pod', {
        namespace: LIST_NAMESPACE,
        limit: 500,
        ...(token2 ? { continue: token2 } : {}),
      });
      token2 = page.continue;
      pages++;
    } while (token2);
    const pagedMs = performance.now() - pagedStart;
    fullLatencies.sort((a, b) => a - b);
    out(`list of ${count} pods:`);
    out(
      `  one call: ${fullLatencies.map((ms) => ms.toFixed(0)).join(' / ')} ms (3 runs; median ${fullLatencies[1]!.toFixed(0)} ms)`,
    );
    out(`  paged, 500 per page: ${pagedMs.toFixed(0)} ms for ${pages} pages`);
    out(
      `control-plane RSS with ${count} pods listed (more stored by the rounds): ${rssBefore.toFixed(0)} MiB idle, ${rssAfter.toFixed(0)} MiB after the lists`,
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
