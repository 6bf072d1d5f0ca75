/**
 * What the hollow-node benchmarks share: real etcd and NATS (test/harness/servers.ts launchers), a
 * `skiff controlplane` process (the CLI binary: its CPU and RSS are its own, read from /proc), an
 * admin client, `skiff agent --hollow` processes, and the figures' surroundings (uptime's load).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { Pod } from '../../proto/gen/types.js';
import { nodeGroupMember } from '../../proto/node-group.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { spawnHollowAgent } from '../harness/hollow-agent.js';
import { launchTestEtcd, launchTestNats, type TestEtcd, type TestNats } from '../harness/servers.js';

export interface BenchCluster {
  etcd: TestEtcd;
  nats: TestNats;
  controlPlane: ChildProcess;
  pid: number;
  apiAddress: string;
  adminToken: string;
  caFile: string;
  dir: string;
  api: ApiClient;
  /** `skiff agent --hollow` against this control plane with the admin token, as a process. */
  hollow(args: string[]): ChildProcess;
  dispose(): Promise<void>;
}

/** Starts etcd, NATS and `skiff controlplane` (cluster CIDR 10.0.0.0/8: thousands of /24s). */
export async function startBenchCluster(controlPlaneArgs: string[] = []): Promise<BenchCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-bench-hollow-'));
  const etcd = await launchTestEtcd();
  const nats = await launchTestNats();
  const children: ChildProcess[] = [];
  const controlPlane = spawn(
    process.execPath,
    [
      ...skiffEntryArgv(), 'controlplane', '--etcd', etcd.endpoint, '--nats', nats.endpoint,
      '--api-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--state-dir', join(dir, 'state'),
      '--cluster-cidr', '10.0.0.0/8', ...controlPlaneArgs,
    ], // prettier-ignore
    // info until it is ready (its ready line names the API's port), then only what it warns of
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        SKIFF_LOG_LEVEL: 'info',
        // BENCH_CPU_PROF=DIR: a CPU profile of the control plane, written when it stops
        ...(process.env.BENCH_CPU_PROF
          ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_CPU_PROF}` }
          : {}),
      },
    },
  );
  children.push(controlPlane);
  let output = '';
  const apiAddress = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /control plane ready api=(\S+)/.exec(output);
      if (!match) return;
      controlPlane.stdout!.off('data', onData);
      controlPlane.stderr!.off('data', onData);
      controlPlane.stdout!.resume();
      controlPlane.stderr!.on('data', (line: Buffer) => {
        if (/"level":(40|50|60)/.test(line.toString())) process.stderr.write(line);
      });
      resolve(match[1]!);
    };
    controlPlane.stdout!.on('data', onData);
    controlPlane.stderr!.on('data', onData);
    controlPlane.once('exit', (code) => reject(new Error(`skiff controlplane exited ${code}: ${output}`)));
  });
  const adminToken = (await readFile(join(dir, 'state', 'admin-token'), 'utf8')).trim();
  const caFile = join(dir, 'state', 'pki', 'ca.crt');
  const ca = await readFile(caFile, 'utf8');
  const api = connectApi({ server: apiAddress, token: adminToken, tls: { ca } });
  return {
    etcd,
    nats,
    controlPlane,
    pid: controlPlane.pid!,
    apiAddress,
    adminToken,
    caFile,
    dir,
    api,
    hollow(args) {
      const child = spawnHollowAgent(
        { server: apiAddress, token: adminToken, caFile, root: join(dir, `hollow-${children.length}`) },
        args,
      );
      children.push(child);
      return child;
    },
    async dispose() {
      api.close();
      for (const child of children.reverse()) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      await nats.dispose();
      await etcd.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** user + system CPU seconds of a process so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after the command: state is [0], utime [11], stime [12]
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A process's resident memory in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

/** `uptime`'s line: the load the figures were measured under. */
export function uptime(): string {
  return execFileSync('uptime', { encoding: 'utf8' }).trim();
}

export async function until(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  everyMs = 500,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Runs `task(i)` for i in [0, count), `concurrency` at a time. */
export async function inParallel(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/** Resolves once `count` Nodes are Ready (the watch cache's copy), printing how long it took. */
export async function waitForReadyNodes(api: ApiClient, count: number): Promise<void> {
  const began = Date.now();
  await until(
    `${count} hollow nodes Ready`,
    600_000,
    async () => {
      // a few thousand Nodes: listed every 2 s
      const nodes = (await api.list('Node', { resourceVersion: '0' })).items;
      return (
        nodes.length === count &&
        nodes.every((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
      );
    },
    2000,
  );
  console.log(`${count} hollow nodes registered and Ready in ${((Date.now() - began) / 1000).toFixed(1)} s`);
}

/**
 * Creates `count` pods p-0 … in `default`, bound round-robin to `group`'s `nodes` members (64 in
 * flight), then waits until the hollow nodes report them all Running; prints both times.
 */
export async function createRunningPods(
  api: ApiClient,
  count: number,
  group: string,
  nodes: number,
): Promise<void> {
  const began = Date.now();
  await inParallel(count, 64, (i) =>
    api.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `p-${i}`, namespace: 'default' },
      spec: {
        nodeName: nodeGroupMember(group, i % nodes),
        containers: [
          { name: 'app', image: 'registry.invalid/app:1', resources: { requests: { cpu: '10m' } } },
        ],
      },
    } as Pod),
  );
  const created = (Date.now() - began) / 1000;
  // the pods not Running yet, filtered in the control plane (a list of all would cost it more
  // than what is measured)
  await until(
    `${count} pods Running`,
    900_000,
    async () =>
      (
        await api.list('Pod', {
          namespace: 'default',
          resourceVersion: '0',
          fieldSelector: 'status.phase!=Running',
        })
      ).items.length === 0,
    2000,
  );
  console.log(
    `${count} pods created in ${created.toFixed(1)} s (${(count / created).toFixed(0)}/s), all Running (the hollow nodes' reports) ${((Date.now() - began) / 1000).toFixed(1)} s after the first create`,
  );
}
