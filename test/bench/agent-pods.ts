/**
 * Issue 11's node-agent figures, on a local cluster of real agent processes (`skiff up --agents 3`,
 * each node with its network in a namespace of its own), the image already on every node:
 *
 *   start latency   pod created → Running seen by a watch, 100 pods pinned round-robin over the 3
 *                   nodes, first at a steady 10/s, then as one burst; p50 and p99 of each, beside
 *                   the runtime's own start (create + start of the same container, in this process:
 *                   the agent's overhead is the difference)
 *   agent RSS       of one agent idle (no pods), and with 30 pods running on it
 *   agent CPU       of that agent over 30 s idle with its 30 pods running, as % of one core
 *   density         250 pods of `sleep` on one node: the host memory each pod costs beyond its own
 *                   process — the PSS of its shims and sandbox holder, and the agent's RSS growth
 *                   (its bookkeeping), per pod; kernel objects (veth, cgroups) are not counted
 *
 * Goals (issue 11): p99 ≤ 1 s at 10/s; RSS < 80 MB; CPU < 1 %; ≤ 2 MB per pod beyond its process
 * (the shim and sandbox holder's PSS plus what the agent's RSS grew by, over the pods).
 * The machine is shared: run it on a quiet one, and read the figures with `uptime`'s load.
 *
 * Usage (root): node dist/test/bench/agent-pods.js [--pods 100] [--density 250]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { Pod } from '../../proto/gen/types.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { openImageRuntime } from '../../node-agent/runtime/runtime.js';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';

const { values } = parseArgs({
  options: { pods: { type: 'string', default: '100' }, density: { type: 'string', default: '250' } },
});
const PODS = Number(values.pods);
const DENSITY = Number(values.density);

function skiff(env: NodeJS.ProcessEnv, ...args: string[]): string {
  const result = spawnSync(process.execPath, [...skiffEntryArgv(), ...args], { env, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`skiff ${args.join(' ')}: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `p50 ${percentile(s, 50).toFixed(0)} ms, p99 ${percentile(s, 99).toFixed(0)} ms, max ${s[s.length - 1]!.toFixed(0)} ms (${s.length} pods)`;
}

function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Proportional set size: a process's share of the pages it maps (shared pages split among their users). */
function pssBytes(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

function pod(name: string, node: string): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: 'main',
          image: 'bench/busybox:1',
          imagePullPolicy: 'IfNotPresent',
          command: ['sleep', '100000'],
        },
      ],
    },
  } as Pod;
}

/** Creates `names` (pinned round-robin to `nodes`) at `perSecond` (0: all at once); ms from create to Running. */
async function startPods(
  api: ApiClient,
  names: string[],
  nodes: string[],
  perSecond: number,
): Promise<number[]> {
  const created = new Map<string, number>();
  const latency = new Map<string, number>();
  const list = await api.list('Pod', { namespace: 'default' });
  const controller = new AbortController();
  const watching = (async () => {
    for await (const event of api.watch('Pod', {
      namespace: 'default',
      resourceVersion: list.resourceVersion,
      signal: controller.signal,
    })) {
      const p = event.object as Pod | undefined;
      const name = p?.metadata.name ?? '';
      if (p?.status?.phase === 'Running' && created.has(name) && !latency.has(name)) {
        latency.set(name, performance.now() - created.get(name)!);
        if (latency.size === names.length) return;
      }
    }
  })().catch(() => undefined);
  const started = performance.now();
  await Promise.all(
    names.map(async (name, i) => {
      if (perSecond > 0) {
        const due = started + (i * 1000) / perSecond;
        await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
      }
      created.set(name, performance.now());
      await api.create(pod(name, nodes[i % nodes.length]!));
    }),
  );
  const until = Date.now() + 300_000;
  while (latency.size < names.length && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  controller.abort();
  await watching;
  if (latency.size < names.length)
    throw new Error(`${names.length - latency.size} pods did not reach Running`);
  return [...latency.values()];
}

async function deletePods(api: ApiClient, names: string[]): Promise<void> {
  await Promise.all(
    names.map((n) => api.delete('Pod', 'default', n, { gracePeriodSeconds: 0 }).catch(() => undefined)),
  );
  const until = Date.now() + 300_000;
  while (Date.now() < until) {
    const left = (await api.list('Pod', { namespace: 'default' })).items.filter((p) =>
      names.includes(p.metadata.name!),
    );
    if (left.length === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The runtime's own create + start of the same container (a sandbox, then the container), in this process. */
async function runtimeStarts(root: string, archive: string, count: number): Promise<number[]> {
  const rt = await openImageRuntime(root, { warmShims: 2 });
  await rt.images.import(archive);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const sandbox = await rt.runtime.containers.createSandbox({ name: `bench-${i}` });
    const c = await rt.runtime.create({
      image: 'bench/busybox:1',
      sandbox: sandbox.id,
      command: ['sleep', '100000'],
    });
    await rt.runtime.containers.start(c.id);
    times.push(performance.now() - t0);
    await rt.runtime.containers.removeSandbox(sandbox.id);
  }
  return times;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-agents-'));
  const env = { ...process.env, SKIFF_CONFIG: join(dir, 'config'), SKIFF_LOG_LEVEL: 'warn' };
  const state = join(dir, 'state');
  console.log(
    `load before: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  try {
    skiff(env, 'up', '--detach', '--no-demo', '--agents', '3', '--state', state);
    const record = JSON.parse(readFileSync(join(state, 'cluster.json'), 'utf8')) as {
      controlplane: { api: string };
      agents: { name: string; pid: number; marker: string }[];
    };
    const nodes = record.agents.map((a) => a.name);
    // the image on the cluster registry; each node pulls it once in a warm-up pod
    const archive = join(dir, 'images.tar');
    writeFileSync(archive, archiveTar(ociLayout([busyboxImage('bench/busybox:1')])));
    skiff(env, 'image', '--root', join(dir, 'images'), 'load', '-i', archive);
    skiff(env, 'image', '--root', join(dir, 'images'), 'push', 'bench/busybox:1');
    const api = connectApi({
      server: record.controlplane.api,
      token: readFileSync(join(state, 'admin-token'), 'utf8').trim(),
      tls: { ca: readFileSync(join(state, 'pki', 'ca.crt'), 'utf8') },
      timeoutMs: 60_000,
    });
    const warm = nodes.map((_, i) => `warm-${i}`);
    await startPods(api, warm, nodes, 0);
    await deletePods(api, warm);

    const agent = record.agents[0]!;
    const idleRss = rssBytes(agent.pid);

    const steady = Array.from({ length: PODS }, (_, i) => `steady-${i}`);
    const steadyMs = await startPods(api, steady, nodes, 10);
    await deletePods(api, steady);
    const burst = Array.from({ length: PODS }, (_, i) => `burst-${i}`);
    const burstMs = await startPods(api, burst, nodes, 0);
    await deletePods(api, burst);
    const own = await runtimeStarts(join(dir, 'own-runtime'), archive, 20).catch((err: Error) => {
      console.log(`(runtime's own start not measured: ${err.message})`);
      return [] as number[];
    });

    console.log(`pod start, created → Running seen by a watch, over ${nodes.length} agents:`);
    console.log(`  steady 10/s   ${summary(steadyMs)}   goal p99 ≤ 1000 ms`);
    console.log(`  one burst     ${summary(burstMs)}`);
    if (own.length) console.log(`  runtime alone (sandbox + container create + start) ${summary(own)}`);

    // 30 pods on one agent: RSS, then CPU over 30 s idle
    const thirty = Array.from({ length: 30 }, (_, i) => `thirty-${i}`);
    await startPods(api, thirty, [agent.name], 0);
    await new Promise((r) => setTimeout(r, 5000));
    const busyRss = rssBytes(agent.pid);
    const t0 = cpuTicks(agent.pid);
    await new Promise((r) => setTimeout(r, 30_000));
    const cpuPercent = ((cpuTicks(agent.pid) - t0) / 100 / 30) * 100;
    await deletePods(api, thirty);
    console.log(
      `agent RSS: idle ${(idleRss / 1048576).toFixed(1)} MB, with 30 pods ${(busyRss / 1048576).toFixed(1)} MB   goal < 80 MB`,
    );
    console.log(`agent CPU with 30 pods, idle 30 s: ${cpuPercent.toFixed(2)} % of a core   goal < 1 %`);

    // density: DENSITY pods on one node; what each costs beyond its own process, in user space: the
    // PSS of its sandbox holder (pause) and of the shims of both (the runtime's records name them),
    // and the agent's RSS growth.
    // Kernel objects (a veth pair, cgroups, namespaces: tens of KiB) are not counted here; the
    // machine is shared, so MemAvailable is no measure of one node's pods.
    const dense = Array.from({ length: DENSITY }, (_, i) => `dense-${i}`);
    const agentBefore = rssBytes(agent.pid);
    await startPods(api, dense, [agent.name], 20);
    await new Promise((r) => setTimeout(r, 5000));
    const nodeRuntime = await openImageRuntime(agent.marker);
    const records = await nodeRuntime.runtime.containers.list({ all: true });
    const ofDense = records.filter((c) =>
      (c.config.labels['io.kubernetes.pod.name'] ?? '').startsWith('dense-'),
    );
    let overhead = 0;
    let ownPss = 0;
    for (const c of ofDense) {
      if (c.state.shimPid) overhead += pssBytes(c.state.shimPid);
      if (c.state.pid === undefined) continue;
      if (c.config.kind === 'sandbox') overhead += pssBytes(c.state.pid);
      else ownPss += pssBytes(c.state.pid);
    }
    const pods = ofDense.filter((c) => c.config.kind === 'sandbox').length;
    // the agent's bookkeeping: what its RSS grew by with the pods
    const agentAfter = rssBytes(agent.pid);
    const agentGrowth = Math.max(0, agentAfter - agentBefore);
    const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);
    console.log(
      `density: ${pods} pods on one node: beyond their own processes (${mb(ownPss)} MB PSS in all), shims and sandbox holders take ${mb(overhead)} MB PSS, the agent ${mb(agentBefore)} → ${mb(agentAfter)} MB RSS → ${((overhead + agentGrowth) / pods / 1048576).toFixed(2)} MB per pod   goal ≤ 2 MB`,
    );
    await deletePods(api, dense);
    api.close();
  } finally {
    console.log(
      `load after: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    spawnSync(process.execPath, [...skiffEntryArgv(), 'down', '--state', state], { env });
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
