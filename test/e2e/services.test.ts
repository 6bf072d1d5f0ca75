/**
 * Services on several hosts (test/harness/lab.ts: a control-plane host and three agent hosts, each a
 * network namespace of this machine), as a user meets them: a Deployment spread over the three
 * nodes, exposed with `skiff expose`, answers on its ClusterIP and its cluster DNS name from a pod
 * on one host with every replica in turn (so across hosts); `nslookup` in a pod finds it through the
 * namespace's search path; a NodePort answers on every node's address; a Service without ready
 * endpoints refuses at once; a replica failing its readiness probe stops getting requests within
 * 2 s and leaves a headless Service's DNS answer; and a rolling update behind the Service fails no
 * request of a client looping through it. The lab is removed after, whatever happened.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import type { Pod, Service } from '../../proto/gen/types.js';
import { cidrContains, ipv4Number, parseCidr } from '../../proto/cidr.js';
import { startLab, type Lab } from '../harness/lab.js';
import { leftovers } from '../harness/hosts.js';
import type { RunResult } from './cli-harness.js';

const run = promisify(execFile);

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

const NS = 'shop';
/** Each replica serves "hello from <pod name>"; /www/ready is what its readiness probe reads. */
const WEB = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${NS}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 10
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: web}}
      containers:
      - name: web
        image: web:1
        ports: [{name: http, containerPort: 8080}]
        command: [sh, -c, 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && echo ok > /www/ready && exec busybox httpd -f -p 8080 -h /www']
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          # as Kubernetes asks of a zero-downtime rollout: serve on while every node drops the endpoint
          preStop: {exec: {command: [sleep, '3']}}
`;

/** A pod on `node` that loops requests to `url`, a line each: "<uptime seconds> <answer or FAIL>". */
const looper = (name: string, node: string, url: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${NS}}
spec:
  nodeSelector: {kubernetes.io/hostname: ${node}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: loop
    image: web:1
    command: [sh, -c, 'while :; do a=$(busybox wget -q -O - ${url} 2>/dev/null) || a=FAIL; echo "$(cut -d" " -f1 /proc/uptime) $a"; sleep 0.05; done']
`;

describe(
  'Services across hosts: ClusterIP, DNS names, NodePort, readiness, rolling updates',
  { timeout: 600_000 },
  () => {
    let lab: Lab | undefined;
    const L = (): Lab => {
      if (!lab) throw new Error('the lab did not start');
      return lab;
    };
    const skiff = (args: string[]) => L().skiff(args);
    const getJson = async <T>(args: string[]): Promise<T> =>
      JSON.parse(ok(await skiff([...args, '-o', 'json']), `skiff ${args.join(' ')}`).stdout) as T;
    const apply = async (name: string, manifest: string) => {
      writeFileSync(join(L().hosts.dir, `${name}.yaml`), manifest);
      ok(await skiff(['apply', '-f', join(L().hosts.dir, `${name}.yaml`)]), `apply ${name}`);
    };
    const pods = async (selector: string) =>
      (await getJson<{ items: Pod[] }>(['get', 'pods', '-n', NS, '-l', selector])).items;
    const running = async (name: string) => {
      const p = await getJson<Pod>(['get', 'pod', name, '-n', NS]).catch(() => undefined);
      return p?.status?.phase === 'Running';
    };
    const exec = (pod: string, argv: string[]) => skiff(['exec', '-n', NS, pod, '--', ...argv]);
    const webPods = async () =>
      (await pods('app=web')).filter(
        (p) =>
          !p.metadata.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
    /** The lines a looper printed since `since` (uptime seconds). */
    const loopLines = async (pod: string, since = 0) =>
      ok(await skiff(['logs', '-n', NS, pod]), `logs ${pod}`)
        .stdout.split('\n')
        .filter(Boolean)
        .map((line) => {
          const space = line.indexOf(' ');
          return { at: Number(line.slice(0, space)), answer: line.slice(space + 1).trim() };
        })
        .filter((line) => line.at >= since);
    const uptime = async () => Number((await run('cut', ['-d', ' ', '-f1', '/proc/uptime'])).stdout);

    before(async () => {
      lab = await startLab({ nodes: 3, prefix: 'services' });
      const work = join(L().hosts.dir, 'cli');
      writeFileSync(join(L().hosts.dir, 'images.tar'), archiveTar(ociLayout([busyboxImage('busybox:1')])));
      const image = (...args: string[]) => skiff(['image', '--root', join(work, 'root'), ...args]);
      ok(await image('load', '-i', join(L().hosts.dir, 'images.tar')), 'image load');
      ok(await image('tag', 'busybox:1', 'web:1'), 'image tag');
      ok(await image('push', 'web:1'), 'image push');
      ok(await skiff(['create', 'namespace', NS]), 'create namespace');
      await apply('web', WEB);
      await apply(
        'client',
        `apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ${NS}}
spec:
  nodeSelector: {kubernetes.io/hostname: n1}
  terminationGracePeriodSeconds: 1
  containers:
  - {name: client, image: web:1, command: [sleep, '3600']}
`,
      );
      await L().waitFor('3 web replicas Ready', async () => (await webPods()).length === 3, 120_000);
      await L().waitFor('client Running', () => running('client'), 60_000);
    });
    after(async () => {
      if (lab) {
        const hosts = lab.hosts;
        await lab.dispose();
        assert.deepEqual(leftovers(hosts), [], 'nothing of the lab is left');
      }
    });

    test('skiff expose: the Service gets a ClusterIP, its EndpointSlice the three replicas, one on each node', async () => {
      const placed = (await webPods()).map((p) => p.spec.nodeName).sort();
      assert.deepEqual(placed, ['n1', 'n2', 'n3'], 'the replicas are spread one a node');
      ok(
        await skiff(['expose', 'deployment', 'web', '-n', NS, '--port', '80', '--target-port', '8080']),
        'expose',
      );
      const svc = await getJson<Service>(['get', 'svc', 'web', '-n', NS]);
      assert.ok(
        cidrContains(parseCidr('10.96.0.0/12'), ipv4Number(svc.spec!.clusterIP!)!),
        svc.spec!.clusterIP,
      );
      await L().waitFor('the EndpointSlice holds the 3 replicas', async () => {
        const wide = ok(await skiff(['get', 'endpointslices', '-n', NS, '-o', 'wide']), 'get').stdout;
        return /^web-\S+\s+IPv4\s+8080\s+10\.244\.\S+,10\.244\.\S+,10\.244\.\S+/m.test(wide);
      });
      // both kinds in one listing, each row named with its kind, as kubectl prints them
      const both = ok(await skiff(['get', 'svc,endpointslices', '-n', NS, '-o', 'wide']), 'get both').stdout;
      assert.match(both, /^service\/web\s/m);
      assert.match(both, /^endpointslice\.discovery\.k8s\.io\/web-\S+\s+IPv4\s+8080\s/m);
      const wide = ok(await skiff(['get', 'svc', '-n', NS, '-o', 'wide']), 'get svc').stdout;
      assert.match(
        wide,
        new RegExp(
          `^web\\s+ClusterIP\\s+${svc.spec!.clusterIP!.replace(/\./g, '\\.')}\\s+<none>\\s+80/TCP\\s`,
          'm',
        ),
      );
    });

    test('from a pod on n1, the ClusterIP and the names web, web.shop and web.shop.svc.cluster.local reach every replica, on every node', async () => {
      const clusterIP = (await getJson<Service>(['get', 'svc', 'web', '-n', NS])).spec!.clusterIP!;
      const replicas = new Set((await webPods()).map((p) => p.metadata.name!));
      for (const target of [clusterIP, 'web', 'web.shop', 'web.shop.svc.cluster.local']) {
        const answered = new Set<string>();
        for (let i = 0; i < 40 && answered.size < replicas.size; i++) {
          const out = ok(
            await exec('client', ['busybox', 'wget', '-q', '-O', '-', `http://${target}/`]),
            `wget ${target}`,
          );
          answered.add(out.stdout.trim().replace(/^hello from /, ''));
        }
        assert.deepEqual(
          [...answered].sort(),
          [...replicas].sort(),
          `every replica answers through ${target}`,
        );
      }
      // busybox's nslookup asks every search domain at once and exits 1 when any of them is NXDOMAIN
      // (against Kubernetes' CoreDNS too): what a user reads is the answer it prints
      const looked = (await exec('client', ['busybox', 'nslookup', '-type=a', 'web'])).stdout;
      // and from a node's own namespace (its processes, not a pod), on every host
      for (const node of L().nodes) {
        const answer = await node.run(['busybox', 'wget', '-q', '-O', '-', `http://${clusterIP}/`], {
          timeoutMs: 15_000,
        });
        assert.match(
          answer.stdout,
          /^hello from web-/,
          `host ${node.name} reaches the ClusterIP: ${answer.stderr}`,
        );
      }
      assert.match(
        looked,
        new RegExp(
          `Name:\\s+web\\.shop\\.svc\\.cluster\\.local\\s+Address:\\s+${clusterIP.replace(/\./g, '\\.')}`,
        ),
      );
    });

    test('a NodePort Service answers on every node address, from outside the cluster (this machine)', async () => {
      ok(
        await skiff([
          'expose',
          'deployment',
          'web',
          '-n',
          NS,
          '--name',
          'web-np',
          '--type',
          'NodePort',
          '--port',
          '80',
          '--target-port',
          '8080',
        ]),
        'expose NodePort',
      );
      const nodePort = (await getJson<Service>(['get', 'svc', 'web-np', '-n', NS])).spec!.ports![0]!
        .nodePort!;
      assert.ok(nodePort >= 30000 && nodePort <= 32767, `node port ${nodePort}`);
      for (const node of L().nodes) {
        await L().waitFor(
          `node port ${nodePort} on ${node.name}`,
          async () => {
            const answer = await run('curl', [
              '-s',
              '--max-time',
              '3',
              `http://${node.address}:${nodePort}/`,
            ]).catch(() => undefined);
            return /^hello from web-/.test(answer?.stdout ?? '');
          },
          15_000,
        );
      }
    });

    test('a Service with no ready endpoints refuses connections at once', async () => {
      await apply(
        'nothing',
        `apiVersion: v1
kind: Service
metadata: {name: nothing, namespace: ${NS}}
spec:
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 8080}]
`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const started = Date.now();
      const out = await exec('client', ['busybox', 'wget', '-q', '-O', '-', 'http://nothing/']);
      const took = Date.now() - started;
      assert.notEqual(out.code, 0);
      assert.match(out.stdout + out.stderr, /refused/i);
      // the exec itself costs a CLI start and a stream: well under a connect timeout
      assert.ok(took < 5000, `refused in ${took} ms, not timed out`);
    });

    test('a replica failing its readiness probe gets no requests from any node within 2 s, and leaves the headless name', async () => {
      await apply(
        'headless',
        `apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: ${NS}}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 8080}]
`,
      );
      await apply('loop-n1', looper('loop-n1', 'n1', 'http://web/'));
      await apply('loop-n2', looper('loop-n2', 'n2', 'http://web/'));
      await L().waitFor(
        'loopers Running',
        async () => (await running('loop-n1')) && (await running('loop-n2')),
      );
      const victim = (await webPods()).find((p) => p.spec.nodeName === 'n3')!;
      const victimName = victim.metadata.name!;
      await L().waitFor('the headless name holds the 3 replicas', async () => {
        const out = (await exec('client', ['busybox', 'nslookup', 'web-headless'])).stdout;
        return (out.match(/Address:\s+10\.244\./g) ?? []).length === 3;
      });
      await L().waitFor('both loopers reach the n3 replica', async () => {
        for (const looper of ['loop-n1', 'loop-n2'])
          if (!(await loopLines(looper)).some((l) => l.answer === `hello from ${victimName}`)) return false;
        return true;
      });

      ok(await exec(victimName, ['rm', '/www/ready']), 'the readiness file removed');
      const failedAt = await uptime();
      // the probe runs every second: by failedAt + 1 s it has failed; from then on, 2 s to leave every node
      const budget = 1 + 2;
      await new Promise((resolve) => setTimeout(resolve, (budget + 2) * 1000));
      for (const looper of ['loop-n1', 'loop-n2']) {
        const lines = await loopLines(looper, failedAt);
        const last = lines.filter((l) => l.answer === `hello from ${victimName}`).at(-1);
        const left = last === undefined ? 0 : last.at - failedAt;
        console.log(
          `${looper}: the unready replica's last answer ${left.toFixed(2)} s after its probe began failing`,
        );
        assert.ok(
          left <= budget,
          `${looper} still reached ${victimName} ${left.toFixed(2)} s after (budget ${budget} s)`,
        );
        assert.deepEqual(
          lines.filter((l) => l.answer === 'FAIL'),
          [],
          `${looper}: no request failed`,
        );
        assert.ok(lines.length > 20, `${looper} kept requesting`);
      }
      const headless = (await exec('client', ['busybox', 'nslookup', 'web-headless'])).stdout;
      assert.equal((headless.match(/Address:\s+10\.244\./g) ?? []).length, 2, headless);
      assert.doesNotMatch(headless, new RegExp(victim.status!.podIP!.replace(/\./g, '\\.') + '\\b'));
      ok(await exec(victimName, ['sh', '-c', 'echo ok > /www/ready']), 'ready again');
    });

    test('a rolling update of the Deployment behind the Service fails no request of a client looping through it', async () => {
      await L().waitFor('3 replicas Ready again', async () => (await webPods()).length === 3);
      const before = new Set((await webPods()).map((p) => p.metadata.name!));
      const started = await uptime();
      ok(await skiff(['rollout', 'restart', 'deployment/web', '-n', NS]), 'rollout restart');
      ok(
        await skiff(['rollout', 'status', 'deployment/web', '-n', NS, '--timeout', '180s']),
        'rollout status',
      );
      const after = new Set((await webPods()).map((p) => p.metadata.name!));
      assert.equal([...after].filter((name) => before.has(name)).length, 0, 'every replica was replaced');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      for (const looper of ['loop-n1', 'loop-n2']) {
        const lines = await loopLines(looper, started);
        const failed = lines.filter((l) => l.answer === 'FAIL');
        const newAnswered = new Set(
          lines.map((l) => l.answer.replace(/^hello from /, '')).filter((n) => after.has(n)),
        );
        console.log(`${looper}: ${lines.length} requests during the rollout, ${failed.length} failed`);
        assert.deepEqual(failed, [], `${looper}: no request failed during the rollout`);
        assert.ok(newAnswered.size > 0, `${looper} reached the new replicas`);
      }
    });
  },
);
