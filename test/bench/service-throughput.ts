/**
 * Requests/s through a Service's ClusterIP against straight to the pod's address, from a pod on
 * another host (issue 14: at least 0.95×).
 *
 *   node dist/test/bench/service-throughput.js [--rounds 5] [--seconds 5] [--connections 8]
 *
 * A lab of two agent hosts (test/harness/lab.ts; each host a network namespace, the default
 * host-gw backend): one replica of busybox's httpd on n2 behind a ClusterIP Service, and a client
 * pod on n1. Debian's `wrk` runs in the client pod's network namespace (entered with nsenter from
 * this machine: the pod's image has no wrk) against the pod's address and against the ClusterIP,
 * alternating which goes first each round (the machine is shared; only neighbours compare).
 * busybox httpd answers one request a connection, so each request is a new connection: the
 * Service's cost (the DNAT of each connection's first packet, conntrack) is in every request.
 * Printed: requests/s of each per round, the medians, and the median of the rounds' ratios
 * ClusterIP / pod (each round's pair measured back to back).
 * Needs Debian's `apt-get install -y wrk`.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import type { Pod, Service } from '../../proto/gen/types.js';
import { startLab, type Lab } from '../harness/lab.js';

const run = promisify(execFile);

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '8' },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
/** What the client pod runs, so that its process (and through it its network namespace) is found. */
const CLIENT_MARK = 'sleep 36017';

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function requireWrk(): Promise<void> {
  await run('wrk', ['--version']).catch((err: NodeJS.ErrnoException & { stdout?: string }) => {
    // wrk --version exits 1 after printing its version
    if (err.code === 'ENOENT') throw new Error('wrk is missing: apt-get install -y wrk');
  });
}

async function wrk(netnsPid: number, url: string): Promise<number> {
  const { stdout } = await run(
    'nsenter',
    [`--net=/proc/${netnsPid}/ns/net`, 'wrk', '-t', '2', '-c', String(connections), '-d', `${seconds}s`, url],
    { timeout: (seconds + 30) * 1000 },
  );
  const match = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  if (!match) throw new Error(`wrk printed no rate:\n${stdout}`);
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(stdout);
  if (errors) console.log(`  (${url}: ${errors[0]})`);
  return Number(match[1]);
}

async function main(): Promise<void> {
  await requireWrk();
  const lab: Lab = await startLab({ nodes: 2, prefix: 'svc-bench' });
  try {
    const skiff = async (args: string[]) => {
      const result = await lab.skiff(args);
      if (result.code !== 0) throw new Error(`skiff ${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    };
    const dir = lab.hosts.dir;
    writeFileSync(join(dir, 'images.tar'), archiveTar(ociLayout([busyboxImage('busybox:1')])));
    const image = (...args: string[]) => skiff(['image', '--root', join(dir, 'cli-root'), ...args]);
    await image('load', '-i', join(dir, 'images.tar'));
    await image('tag', 'busybox:1', 'web:1');
    await image('push', 'web:1');
    writeFileSync(
      join(dir, 'bench.yaml'),
      `apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  nodeSelector: {kubernetes.io/hostname: n2}
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: web:1
    command: [sh, -c, 'mkdir -p /www && echo hello > /www/index.html && exec busybox httpd -f -p 8080 -h /www']
---
apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  selector: {app: server}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeSelector: {kubernetes.io/hostname: n1}
  terminationGracePeriodSeconds: 1
  containers:
  - {name: client, image: web:1, command: [sh, -c, 'exec ${CLIENT_MARK}']}
`,
    );
    await skiff(['apply', '-f', join(dir, 'bench.yaml')]);
    const pod = async (name: string) => JSON.parse(await skiff(['get', 'pod', name, '-o', 'json'])) as Pod;
    await lab.waitFor('server and client Running', async () =>
      (await Promise.all(['server', 'client'].map(pod))).every((p) => p.status?.phase === 'Running'),
    );
    const podIP = (await pod('server')).status!.podIP!;
    const clusterIP = (JSON.parse(await skiff(['get', 'svc', 'server', '-o', 'json'])) as Service).spec!
      .clusterIP!;
    const clientPid = Number((await run('pgrep', ['-f', `^${CLIENT_MARK}$`])).stdout.trim().split('\n')[0]);
    // each request is a new connection: without reuse of TIME_WAIT ports the client's ephemeral
    // ports run out within a few rounds and every later round measures the wait for them
    await run('nsenter', [
      `--net=/proc/${clientPid}/ns/net`,
      'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000',
    ]); // prettier-ignore
    const direct = `http://${podIP}:8080/`;
    const service = `http://${clusterIP}/`;
    await lab.waitFor('the ClusterIP answers from the client pod', async () =>
      run('nsenter', [`--net=/proc/${clientPid}/ns/net`, 'curl', '-sf', '--max-time', '2', service]).then(
        () => true,
        () => false,
      ),
    );
    console.log(
      `wrk -t2 -c${connections} -d${seconds}s from a pod on n1 to busybox httpd on n2: pod ${direct}, Service ${service}`,
    );
    const pods: number[] = [];
    const services: number[] = [];
    const ratios: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? (['pod', 'service'] as const) : (['service', 'pod'] as const);
      for (const which of order) {
        const rate = await wrk(clientPid, which === 'pod' ? direct : service);
        (which === 'pod' ? pods : services).push(rate);
      }
      ratios.push(services.at(-1)! / pods.at(-1)!);
      console.log(
        `round ${round}: pod ${pods.at(-1)!.toFixed(0)}/s, ClusterIP ${services.at(-1)!.toFixed(0)}/s, ratio ${(services.at(-1)! / pods.at(-1)!).toFixed(3)}`,
      );
    }
    const load = (await run('cat', ['/proc/loadavg'])).stdout.split(' ').slice(0, 3).join(' ');
    console.log(
      `median: pod ${median(pods).toFixed(0)} req/s, ClusterIP ${median(services).toFixed(0)} req/s, ratio ClusterIP/pod (median of the rounds' ratios) ${median(ratios).toFixed(3)} (goal ≥ 0.95; load ${load})`,
    );
  } finally {
    await lab.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
