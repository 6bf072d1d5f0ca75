/**
 * The Service data plane (node-agent/proxy) on real nftables and namespaces: a "node" network
 * namespace prepared by PodNetwork, three server pods and a client pod on its bridge (namespaces
 * this test makes, plugged by PodNetwork.setUp), an "outside" namespace on a veth standing for
 * another host, and a ServiceProxy fed by the node's informers over a real control plane (etcd,
 * NATS, API), where the test writes Services and EndpointSlices. Each server answers with its
 * pod's name. Checked from the pods, the node and the outside: ClusterIP balancing, NodePort on
 * the node's address and 127.0.0.1, no endpoints refused at once, a not-ready endpoint getting no
 * new connections while an open one keeps working, hairpin, ClientIP affinity, and the table gone
 * with removeNode. Runs as root; everything is removed in `after`, also when a test fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { rootLogger } from '../../proto/support/logger.js';
import { serviceInformers, type ServiceInformers } from '../../node-agent/agent/service-informers.js';
import { PodNetwork } from '../../node-agent/runtime/net/pod-network.js';
import { ServiceProxy } from '../../node-agent/proxy/service-proxy.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';
import { until } from '../harness/until.js';

const TAG = `${process.pid}`;
const NODE = `skiff-svc-n${TAG}`;
const OUTSIDE = `skiff-svc-o${TAG}`;
const NODE_NETNS = `/run/netns/${NODE}`;
const PODS = ['a', 'b', 'c', 'client'] as const;
const podNs = (pod: string) => `skiff-svc-${pod}${TAG}`;
/** The outside's link to the node: inside the test's namespaces only. */
const NODE_ADDR = '192.168.78.1';
const OUTSIDE_ADDR = '192.168.78.2';
const PORT = 8080;

let cluster: TestControlPlane | undefined;
let api: ApiClient;
let informers: ServiceInformers | undefined;
let proxy: ServiceProxy | undefined;
let network: PodNetwork | undefined;
let work: string;
const servers: ChildProcess[] = [];
const podIP: Record<string, string> = {};

function run(
  argv: string[],
  input?: string,
  timeoutMs = 10_000,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

const nsPath = (ns: string) => `/run/netns/${ns}`;
const inNs = (ns: string, argv: string[]) => run(['nsenter', `--net=${nsPath(ns)}`, '--', ...argv]);

/** Who answered a TCP connection from `ns` to ADDR:PORT; '' when nobody did (refused or timed out). */
async function ask(ns: string, addr: string, port: number): Promise<string> {
  const ran = await inNs(ns, ['busybox', 'nc', '-w', '2', addr, String(port)]);
  return ran.code === 0 ? ran.out.trim() : '';
}

/** Who answered `n` connections, counted. */
async function tally(ns: string, addr: string, port: number, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const who = await ask(ns, addr, port);
    counts[who] = (counts[who] ?? 0) + 1;
  }
  return counts;
}

const SERVER = `
import { createServer } from 'node:net';
const [name, port] = process.argv.slice(2);
createServer((s) => {
  s.write(name + '\\n');
  s.on('data', () => s.write(name + '\\n'));
  s.on('end', () => s.end());
  s.on('error', () => {});
}).listen(Number(port), '0.0.0.0', () => process.stdout.write('listening\\n'));
`;

function startServer(pod: string): Promise<void> {
  const child = spawn(
    'nsenter',
    [`--net=${nsPath(podNs(pod))}`, '--', process.execPath, join(work, 'server.mjs'), pod, String(PORT)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  servers.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`server of pod ${pod} exited: ${code}`)));
  });
}

function service(name: string, spec: Partial<Service['spec']> = {}): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'default', name },
    spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
  };
}

function slice(serviceName: string, ready: Record<string, boolean>): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      namespace: 'default',
      name: `${serviceName}-1`,
      labels: { 'kubernetes.io/service-name': serviceName },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: PORT, protocol: 'TCP' }],
    endpoints: Object.entries(ready).map(([pod, isReady]) => ({
      addresses: [podIP[pod]!],
      nodeName: NODE,
      conditions: { ready: isReady, serving: isReady, terminating: false },
    })),
  };
}

async function setSlice(next: EndpointSlice): Promise<void> {
  const current = await api.get('EndpointSlice', 'default', next.metadata.name!).catch(() => undefined);
  if (current)
    await api.update({
      ...next,
      metadata: { ...next.metadata, resourceVersion: current.metadata.resourceVersion },
    });
  else await api.create(next);
}

const nftTable = () => run(['nsenter', `--net=${NODE_NETNS}`, '--', 'nft', 'list', 'table', 'inet', 'skiff']);

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the Service proxy test needs root (namespaces, nftables)');
  for (const bin of ['/usr/sbin/nft', '/usr/bin/busybox'])
    if (!existsSync(bin)) throw new Error(`missing ${bin}: apt-get install -y nftables busybox-static`);
  work = mkdtempSync(join(tmpdir(), 'skiff-svc-'));
  writeFileSync(join(work, 'server.mjs'), SERVER);
  for (const ns of [NODE, OUTSIDE, ...PODS.map(podNs)]) execFileSync('ip', ['netns', 'add', ns]);
  const ipIn = (ns: string, ...args: string[]) => execFileSync('ip', ['-n', ns, ...args]);
  ipIn(NODE, 'link', 'set', 'lo', 'up');
  ipIn(NODE, 'link', 'add', 'sko0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUTSIDE);
  ipIn(NODE, 'addr', 'add', `${NODE_ADDR}/24`, 'dev', 'sko0');
  ipIn(NODE, 'link', 'set', 'sko0', 'up');
  ipIn(OUTSIDE, 'addr', 'add', `${OUTSIDE_ADDR}/24`, 'dev', 'eth0');
  ipIn(OUTSIDE, 'link', 'set', 'eth0', 'up');
  ipIn(OUTSIDE, 'link', 'set', 'lo', 'up');
  network = new PodNetwork({
    podCIDR: '10.244.5.0/24',
    clusterCIDR: '10.244.0.0/16',
    serviceCIDR: '10.96.0.0/12',
    stateDir: join(work, 'net'),
    hostNetns: NODE_NETNS,
    log: rootLogger.child({ component: 'pod-network' }),
  });
  await network.prepareNode();
  for (const [i, pod] of PODS.entries()) {
    const { ips } = await network.setUp({
      id: `${(i + 1).toString(16).padStart(2, '0')}${'5'.repeat(62)}`,
      name: pod,
      netnsPath: nsPath(podNs(pod)),
      portMappings: [],
      labels: {},
      hostname: pod,
    });
    podIP[pod] = ips[0]!;
    await inNs(podNs(pod), ['ip', 'link', 'set', 'lo', 'up']);
  }
  await Promise.all(['a', 'b', 'c'].map(startServer));
  cluster = await launchTestControlPlane('service-proxy', { bookmarkIntervalMs: 200 });
  api = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
  informers = serviceInformers(api, rootLogger.child({ component: 'service-informers' }));
  informers.services.start();
  informers.endpointSlices.start();
  proxy = new ServiceProxy({
    informers,
    nodeName: NODE,
    clusterCIDR: '10.244.0.0/16',
    hostNetns: NODE_NETNS,
    log: rootLogger.child({ component: 'service-proxy' }),
  });
  await proxy.start();
});

after(async () => {
  await proxy?.stop();
  await informers?.services.stop();
  await informers?.endpointSlices.stop();
  api?.close();
  await cluster?.dispose();
  for (const child of servers) child.kill('SIGKILL');
  await network?.removeNode().catch(() => {});
  for (const ns of [NODE, OUTSIDE, ...PODS.map(podNs)])
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {
      // never made
    }
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Waits until `check` holds (the proxy caught up with the API, a server answered, …). */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  await until(what, async () => ((await check()) ? true : undefined), timeoutMs);
}

describe('service proxy', () => {
  let web: Service;

  test('a ClusterIP balances over every ready endpoint, from a pod', async () => {
    web = await api.create(service('web', { type: 'NodePort' }));
    await api.create(slice('web', { a: true, b: true, c: true }));
    const ip = web.spec.clusterIP!;
    await waitFor('the ClusterIP answers', async () => (await ask(podNs('client'), ip, 80)) !== '');
    const counts = await tally(podNs('client'), ip, 80, 30);
    assert.deepEqual(Object.keys(counts).sort(), ['a', 'b', 'c'], JSON.stringify(counts));
  });

  test('NodePort: from the node’s address and 127.0.0.1 on the node, and from outside', async () => {
    const nodePort = web.spec.ports![0]!.nodePort!;
    assert.ok(nodePort >= 30000);
    assert.match(await ask(NODE, NODE_ADDR, nodePort), /^[abc]$/);
    assert.match(await ask(NODE, '127.0.0.1', nodePort), /^[abc]$/);
    assert.match(await ask(OUTSIDE, NODE_ADDR, nodePort), /^[abc]$/);
  });

  test('no endpoints: a connection is refused at once, not left to time out', async () => {
    const empty = await api.create(service('empty', { type: 'NodePort' }));
    const ip = empty.spec.clusterIP!;
    await waitFor('rejected', async () =>
      (await nftTable()).out.includes(`${ip} . tcp . 80 : goto service-reject`),
    );
    const baseline = performance.now();
    await inNs(podNs('client'), ['busybox', 'true']);
    const spawnMs = performance.now() - baseline;
    const started = performance.now();
    const ran = await inNs(podNs('client'), ['busybox', 'nc', '-w', '5', ip, '80']);
    const ms = performance.now() - started - spawnMs;
    assert.notEqual(ran.code, 0);
    assert.match(ran.out, /refused/i);
    console.log(
      `no endpoints: refused after ${ms.toFixed(1)} ms (beyond ${spawnMs.toFixed(1)} ms to start nc)`,
    );
    assert.ok(ms < 100, `refused within 100 ms, took ${ms.toFixed(1)} ms`);
    const fromOutside = await inNs(OUTSIDE, [
      'busybox',
      'nc',
      '-w',
      '5',
      NODE_ADDR,
      String(empty.spec.ports![0]!.nodePort!),
    ]);
    assert.match(fromOutside.out, /refused/i);
  });

  test('an endpoint made not ready gets no new connections within 1 s; an open one to it keeps working', async () => {
    const ip = web.spec.clusterIP!;
    // a connection held open to pod c (tried until the balancing picks c)
    let held: ChildProcess | undefined;
    let lines: string[] = [];
    for (let i = 0; i < 40 && !held; i++) {
      const child = spawn('nsenter', [`--net=${nsPath(podNs('client'))}`, '--', 'busybox', 'nc', ip, '80'], {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      const got: string[] = [];
      child.stdout!.on('data', (b: Buffer) => got.push(...b.toString().trim().split('\n')));
      await waitFor('a greeting', async () => got.length > 0, 3000);
      if (got[0] === 'c') {
        held = child;
        lines = got;
      } else child.kill('SIGKILL');
    }
    assert.ok(held, 'a connection to c');
    try {
      const changed = performance.now();
      await setSlice(slice('web', { a: true, b: true, c: false }));
      // new connections: none to c from now on, within 1 s of the change
      await waitFor('c leaves', async () => (await tally(podNs('client'), ip, 80, 6)).c === undefined, 3000);
      const ms = performance.now() - changed;
      console.log(`not ready → out of the balancing within ${ms.toFixed(0)} ms (incl. 6 probes)`);
      const counts = await tally(podNs('client'), ip, 80, 20);
      assert.equal(counts.c, undefined, JSON.stringify(counts));
      assert.ok(ms < 1500, `c out within about 1 s (${ms.toFixed(0)} ms, probes included)`);
      // the held connection still reaches c
      held.stdin!.write('still there?\n');
      await waitFor('an answer on the open connection', async () => lines.length >= 2, 2000);
      assert.equal(lines[1], 'c');
    } finally {
      held.kill('SIGKILL');
    }
  });

  test('hairpin: a pod reaches itself through its Service', async () => {
    const ip = web.spec.clusterIP!;
    const counts = await tally(podNs('a'), ip, 80, 20);
    assert.ok((counts.a ?? 0) > 0, `pod a answered itself: ${JSON.stringify(counts)}`);
  });

  test('ClientIP affinity: one client keeps its endpoint', async () => {
    const sticky = await api.create(
      service('sticky', {
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
      }),
    );
    await api.create(slice('sticky', { a: true, b: true, c: true }));
    const ip = sticky.spec.clusterIP!;
    await waitFor('the sticky Service answers', async () => (await ask(podNs('client'), ip, 80)) !== '');
    const counts = await tally(podNs('client'), ip, 80, 12);
    assert.equal(Object.keys(counts).length, 1, JSON.stringify(counts));
  });

  test('a Service deleted: its objects leave the table; removeNode takes the table', async () => {
    const ip = web.spec.clusterIP!;
    await api.delete('Service', 'default', 'web');
    await waitFor('web gone from the maps', async () => !(await nftTable()).out.includes(`${ip} . tcp`));
    assert.doesNotMatch((await nftTable()).out, /default\/web\//);
    await proxy!.stop();
    await network!.removeNode();
    const listed = await run(['nsenter', `--net=${NODE_NETNS}`, '--', 'nft', 'list', 'tables']);
    assert.doesNotMatch(listed.out, /skiff/);
  });
});
