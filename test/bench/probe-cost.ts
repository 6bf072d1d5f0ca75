/**
 * What probes cost the node agent: CPU time per probe of each kind, and the agent's CPU with 30
 * pods probed every 10 s.
 *
 * A control plane runs in this process (test/harness); the agent runs as `skiff agent` in a
 * process of its own, with the node's network in a namespace of its own (--host-netns, as `skiff
 * up` runs it), so its probes connect through the NetnsDialer. Its CPU is read from /proc: its own
 * time, the time of the children it reaped (the helper of each exec probe, and what it ran in the
 * container), and its dialer helper's.
 *
 * Phases, each with --pods busybox pods (created, all Ready, measured for --seconds, deleted):
 *   none         no probes (the baseline: an agent with that many pods, idle)
 *   http | tcp | exec | grpc   one readiness probe of that kind every second per pod
 *   realistic    readiness httpGet + liveness tcpSocket every 10 s
 *   realistic-exec  readiness httpGet + liveness exec every 10 s
 * A probe's cost is (phase CPU − none's) / probes run. The pods serve HTTP with busybox httpd on
 * 8080; gRPC pods are on the host network and probe a grpc.health.v1 server (node:http2) this
 * process starts in the node's namespace (busybox has no gRPC server).
 *
 * Usage (root): node dist/test/bench/probe-cost.js [--pods 30] [--seconds 60] [--only http,tcp]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { NotFoundError } from '../../proto/errors.js';
import type { Container, Pod } from '../../proto/gen/types.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { busyboxImage } from '../fixtures/images.js';
import { launchTestControlPlane } from '../harness/control-plane.js';
import {
  openImageRuntimeWith,
  removeScratch,
  requireRootAndBusybox,
  scratchDir,
} from '../integration/runtime-containers-fixture.js';
import { removeAgentNode } from '../../node-agent/agent/main.js';

const execFileAsync = promisify(execFile);
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const PODS = Number(arg('pods', '30'));
const SECONDS = Number(arg('seconds', '60'));
const ONLY = arg('only', '');
const NODE = 'probe-bench';
const NS = `skiff-pbench-${process.pid}`;
const GRPC_PORT = 19555;
const TICKS = 100; // clock ticks per second (getconf CLK_TCK)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime+stime(+cutime+cstime) of a process, in seconds. */
function cpuOf(pid: number, withChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const n = (i: number) => Number(f[i - 3]);
    return (n(14) + n(15) + (withChildren ? n(16) + n(17) : 0)) / TICKS;
  } catch {
    return 0;
  }
}

/**
 * The agent's CPU in seconds: its own (Node), what it reaped (helpers that exited), and its live
 * helper children (the dialer, the exec server and the workers it reaped).
 */
function agentCpu(pid: number): { node: number; reaped: number; helpers: number; total: number } {
  const node = cpuOf(pid, false);
  const reaped = cpuOf(pid, true) - node;
  let helpers = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) helpers += cpuOf(Number(entry), true);
    } catch {
      // gone
    }
  }
  return { node, reaped, helpers, total: node + reaped + helpers };
}

function minus(a: ReturnType<typeof agentCpu>, b: ReturnType<typeof agentCpu>) {
  return {
    node: a.node - b.node,
    reaped: a.reaped - b.reaped,
    helpers: a.helpers - b.helpers,
    total: a.total - b.total,
  };
}

const WEB = [
  'sh',
  '-c',
  'mkdir -p /www && echo ok > /www/ready.html && exec busybox httpd -f -p 8080 -h /www',
];

function podOf(i: number, phase: string, container: Partial<Container>, hostNetwork = false): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${phase}-${i}`, namespace: 'default', labels: { bench: phase } },
    spec: {
      nodeName: NODE,
      terminationGracePeriodSeconds: 1,
      ...(hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'main', image: 'busybox:1', command: WEB, ...container }],
    },
  } as Pod;
}

const PHASES: {
  name: string;
  perPodPerSecond: number;
  container: Partial<Container>;
  hostNetwork?: boolean;
}[] = [
  { name: 'none', perPodPerSecond: 0, container: {} },
  {
    name: 'http',
    perPodPerSecond: 1,
    container: { readinessProbe: { httpGet: { path: '/ready.html', port: 8080 }, periodSeconds: 1 } },
  },
  {
    name: 'tcp',
    perPodPerSecond: 1,
    container: { readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } },
  },
  {
    name: 'exec',
    perPodPerSecond: 1,
    container: { readinessProbe: { exec: { command: ['true'] }, periodSeconds: 1 } },
  },
  {
    name: 'grpc',
    perPodPerSecond: 1,
    hostNetwork: true,
    container: {
      command: ['sleep', '100000'],
      readinessProbe: { grpc: { port: GRPC_PORT }, periodSeconds: 1 },
    },
  },
  {
    name: 'realistic',
    perPodPerSecond: 0,
    container: {
      readinessProbe: { httpGet: { path: '/ready.html', port: 8080 }, periodSeconds: 10 },
      livenessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 10 },
    },
  },
  {
    name: 'realistic-exec',
    perPodPerSecond: 0,
    container: {
      readinessProbe: { httpGet: { path: '/ready.html', port: 8080 }, periodSeconds: 10 },
      livenessProbe: { exec: { command: ['true'] }, periodSeconds: 10 },
    },
  },
];

/** A grpc.health.v1 server answering SERVING, in the node's namespace. */
const GRPC_SERVER = `
const h2 = require('node:http2');
const s = h2.createServer();
s.on('stream', (stream) => {
  stream.on('data', () => {});
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
  });
});
s.listen(${GRPC_PORT}, '127.0.0.1');
`;

async function main(): Promise<void> {
  requireRootAndBusybox();
  await execFileAsync('ip', ['netns', 'add', NS]);
  await execFileAsync('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
  const cluster = await launchTestControlPlane('probe-bench', { nodeGraceMs: 60_000 });
  const api: ApiClient = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
  const work = await scratchDir('skiff-probe-bench-');
  const root = join(work, 'root');
  let agent: ChildProcess | undefined;
  let grpc: ChildProcess | undefined;
  try {
    await openImageRuntimeWith(root, join(work, 'images.tar'), [busyboxImage('busybox:1')]);
    grpc = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', GRPC_SERVER], { stdio: 'ignore' });
    const log = createWriteStream(join(work, 'agent.log'));
    agent = spawn(
      process.execPath,
      [
        ...skiffEntryArgv(),
        '--server',
        cluster.controlPlane.apiAddress,
        '--token',
        cluster.adminToken,
        'agent',
        '--node-name',
        NODE,
        '--root',
        root,
        '--node-ip',
        '127.0.0.1',
        '--host-netns',
        `/run/netns/${NS}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SKIFF_LOG_LEVEL: 'warn' } },
    );
    agent.stderr!.pipe(log);
    const pid = agent.pid!;
    await waitFor('node Ready', async () => {
      const node = await api.get('Node', '', NODE).catch(() => undefined);
      return node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    });
    await sleep(3000);
    const idle0 = agentCpu(pid);
    await sleep(SECONDS * 1000);
    const empty = minus(agentCpu(pid), idle0).total / SECONDS;
    console.log(`agent with no pods: ${(empty * 100).toFixed(2)}% of a core`);
    let baseline: number | undefined;
    for (const phase of PHASES) {
      if (ONLY && phase.name !== 'none' && !ONLY.split(',').includes(phase.name)) continue;
      const started = Date.now();
      for (let i = 0; i < PODS; i++)
        await api.create(podOf(i, phase.name, phase.container, phase.hostNetwork));
      await waitFor(`${PODS} ${phase.name} pods Ready`, async () => {
        const pods = (await api.list('Pod', { namespace: 'default', labelSelector: `bench=${phase.name}` }))
          .items as Pod[];
        return (
          pods.length === PODS &&
          pods.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
        );
      });
      const ready = (Date.now() - started) / 1000;
      await sleep(5000); // the starts settle
      const t0 = Date.now();
      const c0 = agentCpu(pid);
      await sleep(SECONDS * 1000);
      const used = minus(agentCpu(pid), c0);
      const cpu = used.total;
      const wall = (Date.now() - t0) / 1000;
      const share = cpu / wall;
      const pct = (x: number) => `${((x / wall) * 100).toFixed(2)}%`;
      if (phase.name === 'none') baseline = share;
      let line = `${phase.name.padEnd(15)} ${PODS} pods (Ready in ${ready.toFixed(0)} s): agent ${(share * 100).toFixed(2)}% of a core (Node ${pct(used.node)}, helpers ${pct(used.helpers + used.reaped)})`;
      if (baseline !== undefined && phase.name !== 'none') {
        line += `, ${((share - baseline) * 100).toFixed(2)} points over no probes`;
        if (phase.perPodPerSecond > 0) {
          const probes = PODS * phase.perPodPerSecond * wall;
          line += `; ${(((share - baseline) * wall * 1e6) / probes).toFixed(0)} µs CPU per probe (${probes.toFixed(0)} probes)`;
        }
      }
      console.log(line);
      for (let i = 0; i < PODS; i++) await api.delete('Pod', 'default', `${phase.name}-${i}`).catch(() => {});
      await waitFor(`${phase.name} pods gone`, async () => {
        for (let i = 0; i < PODS; i++) {
          const gone = await api.get('Pod', 'default', `${phase.name}-${i}`).then(
            () => false,
            (err) => err instanceof NotFoundError,
          );
          if (!gone) return false;
        }
        return true;
      });
    }
  } finally {
    agent?.kill('SIGTERM');
    await sleep(1000);
    grpc?.kill('SIGKILL');
    const problems = await removeAgentNode(root, { hostNetns: `/run/netns/${NS}` }).catch((err) => [
      String(err),
    ]);
    if (problems.length) console.error('left behind:', problems);
    await execFileAsync('ip', ['netns', 'del', NS]).catch(() => {});
    api.close();
    await cluster.dispose();
    await removeScratch(work);
  }
}

async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await ok().catch(() => false)) return;
    await sleep(500);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
