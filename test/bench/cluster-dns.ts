/**
 * Issue 14's DNS figure: `dnsperf` (Debian) against skiff's cluster DNS server for service names,
 * beside `unbound` (Debian) serving the same names as local data, in the same run, on loopback.
 *
 *   skiff     DnsServer + QueryHandler + ClusterRecords of N ClusterIP Services (the agent's code,
 *             in a process of its own, one thread as the agent has), its Forwarder pointed at a loopback
 *             port nothing listens on (every name asked is the cluster's: nothing is forwarded)
 *   unbound   one thread (`num-threads: 1`), the same N names as `local-data` in a static zone,
 *             no recursion (`.` refused), no DNSSEC modules
 *
 * Each round runs dnsperf for `--seconds` against each (order alternating), 100 queries in flight,
 * the N names in order, and reads its queries/s; then a latency pass with `-v` (each reply and its
 * latency) for the p50/p99. Goal: skiff ≥ 0.5× unbound's queries/s, p99 reported for both.
 *
 * Usage: node dist/test/bench/cluster-dns.js [--services 1000] [--seconds 10] [--rounds 3]
 * Needs dnsperf and unbound (`apt-get install -y dnsperf unbound`; cli/bootstrap.sh installs them).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Service } from '../../proto/gen/types.js';
import { ClusterRecords, serviceRecords } from '../../node-agent/dns/cluster-records.js';
import { DnsServer } from '../../node-agent/dns/dns-server.js';
import { Forwarder } from '../../node-agent/dns/forwarder.js';
import { QueryHandler } from '../../node-agent/dns/query-handler.js';
import { dig } from '../../node-agent/dns/loopback-peers.js';
import { createSocket } from 'node:dgram';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    serve: { type: 'boolean', default: false },
  },
});
const SERVICES = Number(values.services);
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);

for (const [tool, pkg] of [
  ['dnsperf', 'dnsperf'],
  ['unbound', 'unbound'],
] as const) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`${tool} is not installed: apt-get install -y ${pkg} (cli/bootstrap.sh installs it)`);
    process.exit(1);
  }
}

const names = Array.from({ length: SERVICES }, (_, i) => ({
  name: `web-${i}.bench.svc.cluster.local`,
  ip: `10.96.${Math.floor((i + 100) / 250)}.${((i + 100) % 250) + 1}`,
}));
// the parent's: the query list, unbound's files, dnsperf's output
const dir = values.serve ? '' : mkdtempSync(join(tmpdir(), 'skiff-bench-dns-'));
const queryFile = join(dir, 'queries.txt');

let unbound: ChildProcess | undefined;
let skiffChild: ChildProcess | undefined;

/** `--serve`: skiff's server for the names, on a free port it prints; until killed. */
async function serve(): Promise<void> {
  const records = new ClusterRecords({ domain: 'cluster.local', dnsAddress: '10.96.0.10' });
  for (const { name, ip } of names) {
    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: name.split('.')[0]!, namespace: 'bench' },
      spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    } as Service;
    records.setService(`bench/${svc.metadata.name}`, serviceRecords(svc, [], 'cluster.local'));
  }
  const log = pino({ level: 'silent' });
  const forwarder = new Forwarder({ upstreams: [{ address: '127.0.0.1', port: await freeUdpPort() }], log });
  const handler = new QueryHandler({ records, forward: (q) => forwarder.resolve(q) });
  const server = await DnsServer.listen({ address: '127.0.0.1', port: 0, handler, log });
  process.stdout.write(`${server.port}\n`);
  process.on('SIGTERM', () => {
    forwarder.close();
    void server.close().then(() => process.exit(0));
  });
}

async function main(): Promise<void> {
  writeFileSync(queryFile, names.map((n) => `${n.name} A\n`).join(''));
  const unboundPort = await freeUdpPort();

  // skiff: the agent's pieces, in a process of their own as in the agent
  skiffChild = spawn(process.execPath, [process.argv[1]!, '--serve', '--services', String(SERVICES)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const skiffPort = await new Promise<number>((resolve, reject) => {
    skiffChild!.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    skiffChild!.once('exit', (code) => reject(new Error(`the skiff DNS process exited ${code}`)));
  });

  // unbound: the same names as local data
  const config = join(dir, 'unbound.conf');
  writeFileSync(
    config,
    [
      'server:',
      `  interface: 127.0.0.1@${unboundPort}`,
      `  port: ${unboundPort}`,
      '  do-daemonize: no',
      '  chroot: ""',
      '  username: ""',
      `  directory: "${dir}"`,
      `  pidfile: "${join(dir, 'unbound.pid')}"`,
      '  use-syslog: no',
      `  logfile: "${join(dir, 'unbound.log')}"`,
      '  verbosity: 0',
      '  num-threads: 1',
      '  so-reuseport: no',
      '  access-control: 127.0.0.0/8 allow',
      '  module-config: "iterator"',
      '  do-ip6: no',
      '  local-zone: "." refuse',
      '  local-zone: "cluster.local." static',
      ...names.map((n) => `  local-data: "${n.name}. 5 IN A ${n.ip}"`),
      '',
    ].join('\n'),
  );
  const check = spawnSync('unbound-checkconf', [config], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`unbound-checkconf: ${check.stdout}${check.stderr}`);
  unbound = spawn('unbound', ['-d', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let unboundErr = '';
  unbound.stderr!.on('data', (d: Buffer) => (unboundErr += d.toString()));
  await waitForAnswer(unboundPort, () => unboundErr);
  await waitForAnswer(skiffPort, () => 'skiff');

  console.log(
    `cluster DNS: ${SERVICES} services, dnsperf ${SECONDS} s × ${ROUNDS} rounds, 100 in flight, load ${loadavg()[0]!.toFixed(1)}`,
  );
  const results: { skiff: Run[]; unbound: Run[] } = { skiff: [], unbound: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order: ['skiff' | 'unbound', number][] =
      round % 2 === 0
        ? [
            ['skiff', skiffPort],
            ['unbound', unboundPort],
          ]
        : [
            ['unbound', unboundPort],
            ['skiff', skiffPort],
          ];
    for (const [who, port] of order) {
      const run = await dnsperf(port);
      results[who].push(run);
      console.log(
        `  round ${round + 1} ${who.padEnd(7)} ${run.qps.toFixed(0).padStart(7)} q/s, lost ${run.lost}, p50 ${run.p50.toFixed(2)} ms, p99 ${run.p99.toFixed(2)} ms`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const skiffQps = median(results.skiff.map((r) => r.qps));
  const unboundQps = median(results.unbound.map((r) => r.qps));
  console.log(
    `skiff ${skiffQps.toFixed(0)} q/s (p99 ${median(results.skiff.map((r) => r.p99)).toFixed(2)} ms), ` +
      `unbound ${unboundQps.toFixed(0)} q/s (p99 ${median(results.unbound.map((r) => r.p99)).toFixed(2)} ms): ` +
      `ratio ${(skiffQps / unboundQps).toFixed(2)}× (goal ≥ 0.5×), rounds ${results.skiff
        .map((r, i) => (r.qps / results.unbound[i]!.qps).toFixed(2))
        .join(', ')}; load ${loadavg()[0]!.toFixed(1)}`,
  );
}

interface Run {
  qps: number;
  lost: number;
  p50: number;
  p99: number;
}

/** Throughput from a plain run; latency percentiles from a `-v` run half as long. */
async function dnsperf(port: number): Promise<Run> {
  const args = (seconds: number) => [
    '-s',
    '127.0.0.1',
    '-p',
    String(port),
    '-d',
    queryFile,
    '-l',
    String(seconds),
    '-q',
    '100',
  ];
  const plain = await runDnsperf(args(SECONDS));
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(plain)?.[1]);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  if (!Number.isFinite(qps)) throw new Error(`dnsperf printed no rate:\n${plain}`);
  const verbose = await runDnsperf(
    [...args(Math.max(2, Math.round(SECONDS / 2))), '-v'],
    join(dir, 'verbose.txt'),
  );
  // "> NOERROR web-1.bench.svc.cluster.local A 0.000123" per reply
  const latencies = [...verbose.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)]
    .map((m) => Number(m[1]) * 1000)
    .sort((a, b) => a - b);
  if (latencies.length === 0) throw new Error(`dnsperf -v printed no latencies:\n${verbose.slice(0, 2000)}`);
  const at = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]!;
  return { qps, lost, p50: at(50), p99: at(99) };
}

/** dnsperf's output; with `outFile` its stdout goes there (read after), so nothing here competes with the servers. */
function runDnsperf(args: string[], outFile?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const fd = outFile !== undefined ? openSync(outFile, 'w') : undefined;
    const child = spawn('dnsperf', args, { stdio: ['ignore', fd ?? 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (fd !== undefined) {
        closeSync(fd);
        out += readFileSync(outFile!, 'utf8');
      }
      if (code === 0) resolve(out);
      else reject(new Error(`dnsperf exited ${code}:\n${out.slice(0, 2000)}`));
    });
  });
}

/** A UDP port free now (the kernel's pick, released again). */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

async function waitForAnswer(port: number, why: () => string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const answer = await dig(port, '+short', names[0]!.name, 'A').catch(() => '');
    if (answer.trim() === names[0]!.ip) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no answer on port ${port}: ${why()}`);
}

if (values.serve) await serve();
else {
  try {
    await main();
  } finally {
    unbound?.kill('SIGTERM');
    skiffChild?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
