/**
 * `skiff up --agents 2`'s nodes on a switch of their own (cli/up/node-network.ts): each node a
 * network namespace with its own address on the switch, which is its InternalIP, the agent running
 * inside it; the machine on the switch with one veth and one address, and `unreachable` routes for
 * the cluster and service CIDRs. From the machine, a pod's hostPort answers at its node's address
 * while pod addresses stay unreachable. `down` leaves nothing on the machine, and the next `up`
 * takes the same /24 again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import type { Node, Pod } from '../../proto/gen/types.js';
import { pidRunning, prepareTestCluster, type RunResult } from './cli-harness.js';

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** GET http://address:port/ from the machine's namespace: the body, or the error's code. */
function httpGet(address: string, port: number): Promise<{ body?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = request({ host: address, port, path: '/', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ body }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

const ip = (...args: string[]) => execFileSync('ip', args).toString();
const machineLinks = () =>
  ip('-br', 'link')
    .split('\n')
    .map((l) => l.split(/\s+/)[0]!.replace(/@.*/, ''))
    .filter(Boolean);
const machineRoutes = () => ip('-4', 'route', 'show', 'table', 'main');
const netnsOf = (path: string) => {
  const st = statSync(path);
  return `${st.dev}:${st.ino}`;
};

interface UpRecord {
  etcd: { pid: number };
  nats: { endpoint: string };
  controlplane: { api: string; apiPort: number; httpPort: number };
  network: { subnet: string; machineAddress: string; switchNamespace: string; machineVeth: string };
  agents: { name: string; pid: number; netns: string; address: string }[];
}

describe('skiff up: nodes on a switch of their own', { timeout: 400_000 }, () => {
  const cluster = prepareTestCluster('upnet');
  const work = mkdtempSync(join(tmpdir(), 'skiff-e2e-upnet-work-'));
  const forwardingBefore = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
  const routeMetric = () =>
    (JSON.parse(readFileSync(join(cluster.stateDir, 'network.json'), 'utf8')) as { routeMetric: number })
      .routeMetric;
  let record: UpRecord;
  /** The machine's routes this cluster made: its unreachable ones (by their metric), its switch's. */
  const clusterRoutes = () => {
    const metric = routeMetric();
    return machineRoutes()
      .split('\n')
      .filter((r) =>
        r.startsWith('unreachable ')
          ? new RegExp(` metric ${metric}\\b`).test(r)
          : r.includes(` dev ${record.network.machineVeth} `),
      );
  };
  const readRecord = () =>
    JSON.parse(readFileSync(join(cluster.stateDir, 'cluster.json'), 'utf8')) as UpRecord;
  before(async () => {
    ok(await cluster.up(2), 'up --agents 2');
    record = readRecord();
  });
  after(async () => {
    await cluster.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  test("each node's InternalIP is its own address on the switch, and its agent runs in the node's namespace", async () => {
    const { subnet, machineAddress } = record.network;
    const base = subnet.replace(/\.0\/24$/, '');
    assert.match(subnet, /^172\.30\.\d+\.0\/24$/);
    assert.equal(machineAddress, `${base}.254`);
    assert.deepEqual(
      record.agents.map((a) => a.address),
      [`${base}.1`, `${base}.2`],
    );
    const nodes = JSON.parse(ok(await cluster.skiff(['get', 'nodes', '-o', 'json']), 'get nodes').stdout) as {
      items: Node[];
    };
    for (const agent of record.agents) {
      const node = nodes.items.find((n) => n.metadata.name === agent.name);
      assert.ok(node, `node ${agent.name} registered`);
      assert.deepEqual(
        node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address,
        agent.address,
        `${agent.name}'s InternalIP`,
      );
      assert.equal(
        netnsOf(`/proc/${agent.pid}/ns/net`),
        netnsOf(`/run/netns/${agent.netns}`),
        `agent ${agent.name} runs in ${agent.netns}`,
      );
      assert.match(
        ip('-n', agent.netns, '-br', 'addr', 'show', 'dev', 'eth0'),
        new RegExp(`\\s${agent.address}/24`),
      );
      assert.doesNotMatch(ip('-n', agent.netns, 'route'), /^default/m, 'a node has no default route');
    }
    // agents reach NATS and the API at the machine's switch address; the certificates name it
    assert.equal(record.nats.endpoint.replace(/:\d+$/, ''), `nats://${machineAddress}`);
    assert.equal(
      record.controlplane.api,
      `127.0.0.1:${record.controlplane.apiPort}`,
      'the CLI keeps 127.0.0.1',
    );
    const nats = new X509Certificate(readFileSync(join(cluster.stateDir, 'pki', 'nats-server.crt')));
    assert.match(
      nats.subjectAltName ?? '',
      new RegExp(`IP Address:${machineAddress.replaceAll('.', '\\.')}`),
    );
    const listening = execFileSync('ss', ['-ltnH']).toString();
    for (const port of [record.controlplane.apiPort, record.controlplane.httpPort])
      for (const host of [machineAddress, '127.0.0.1'])
        assert.match(
          listening,
          new RegExp(`\\s${host.replaceAll('.', '\\.')}:${port}\\s`),
          `${host}:${port}`,
        );
  });

  test('the machine gains one veth with one address (IPv6 off) and unreachable routes for the cluster and service CIDRs, and never forwards', () => {
    const { machineVeth, machineAddress, subnet } = record.network;
    // (other clusters and labs may come and go meanwhile: only this cluster's names are counted)
    const id = record.network.switchNamespace.replace(/-switch$/, '');
    assert.deepEqual(
      machineLinks().filter((l) => l.startsWith(id) || l === 'skiff0'),
      [machineVeth],
    );
    assert.match(
      ip('-4', '-br', 'addr', 'show', 'dev', machineVeth),
      new RegExp(`\\s${machineAddress}/24\\s*$`, 'm'),
    );
    assert.equal(readFileSync(`/proc/sys/net/ipv6/conf/${machineVeth}/disable_ipv6`, 'utf8').trim(), '1');
    const routes = machineRoutes();
    const metric = routeMetric();
    assert.match(routes, new RegExp(`^unreachable 10\\.244\\.0\\.0/16 metric ${metric}\\s`, 'm'));
    assert.match(routes, new RegExp(`^unreachable 10\\.96\\.0\\.0/12 metric ${metric}\\s`, 'm'));
    assert.match(
      routes,
      new RegExp(`^${subnet.replaceAll('.', '\\.')} dev ${machineVeth} proto kernel`, 'm'),
    );
    for (const address of ['10.244.0.2', '10.96.0.1']) {
      const lookup = spawnSync('ip', ['route', 'get', address], { encoding: 'utf8' });
      assert.notEqual(lookup.status, 0, `the machine routes ${address}: ${lookup.stdout}`);
      assert.match(lookup.stderr, /No route to host/);
    }
    assert.equal(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'), forwardingBefore);
    // the switch has no address: it only switches between the veths
    assert.doesNotMatch(ip('-n', record.network.switchNamespace, '-4', 'addr'), /inet (?!127\.)/);
  });

  test("from the machine a pod's hostPort answers at its node's address on each node; the pod's own address is unreachable", async () => {
    const archive = join(work, 'images.tar');
    writeFileSync(archive, archiveTar(ociLayout([busyboxImage('busybox:1')])));
    const image = (...args: string[]) => cluster.skiff(['image', '--root', join(work, 'root'), ...args]);
    ok(await image('load', '-i', archive), 'image load');
    ok(await image('tag', 'busybox:1', 'hello:1'), 'image tag');
    ok(await image('push', 'hello:1'), 'image push');
    const manifest = record.agents
      .map(
        (agent) => `apiVersion: v1
kind: Pod
metadata: {name: hello-${agent.name}, namespace: default}
spec:
  nodeName: ${agent.name}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: hello:1
    command: [sh, -c, 'mkdir -p /www && echo "hello from ${agent.name}" > /www/index.html && exec httpd -f -p 8080 -h /www']
    ports: [{containerPort: 8080, hostPort: 18080}]
`,
      )
      .join('---\n');
    writeFileSync(join(work, 'pods.yaml'), manifest);
    ok(await cluster.skiff(['apply', '-f', join(work, 'pods.yaml')]), 'apply pods');
    for (const agent of record.agents) {
      await eventually(`hello-${agent.name} answering at ${agent.address}:18080`, async () => {
        const got = await httpGet(agent.address, 18080);
        return got.body === `hello from ${agent.name}\n`;
      });
    }
    const pods = JSON.parse(ok(await cluster.skiff(['get', 'pods', '-o', 'json']), 'get pods').stdout) as {
      items: Pod[];
    };
    for (const pod of pods.items) {
      const podIP = pod.status?.podIP;
      assert.match(podIP ?? '', /^10\.244\.\d+\.\d+$/);
      const got = await httpGet(podIP!, 8080);
      assert.equal(got.body, undefined, `the machine reached pod ${pod.metadata.name} at ${podIP}`);
      assert.equal(got.error, 'EHOSTUNREACH', `${podIP} from the machine`);
    }
  });

  test('with etcd dead, up keeps the agents and their network as they are and starts etcd again', async () => {
    const before = readRecord();
    const routesBefore = clusterRoutes();
    process.kill(before.etcd.pid, 'SIGKILL');
    await eventually('etcd to die', async () => !pidRunning(before.etcd.pid));
    const up = ok(await cluster.up(2), 'up with etcd dead');
    assert.match(up.stderr, /etcd was not running: started again/);
    for (const agent of before.agents)
      assert.match(up.stderr, new RegExp(`agent ${agent.name} is running \\(pid ${agent.pid}\\): kept`));
    const after = readRecord();
    assert.deepEqual(after.network, before.network);
    assert.deepEqual(after.agents, before.agents);
    assert.deepEqual(clusterRoutes(), routesBefore, 'no route of the cluster added or removed');
    for (const agent of after.agents)
      await eventually(
        `hello-${agent.name} answering`,
        async () => (await httpGet(agent.address, 18080)).body === `hello from ${agent.name}\n`,
      );
  });

  test('down leaves nothing of the network on the machine; up again takes the same /24 and node addresses', async () => {
    const { switchNamespace, machineVeth, subnet } = record.network;
    const id = switchNamespace.replace(/-switch$/, '');
    const reservation = `/run/skiff-up/subnet-${subnet.replace(/\.0\/24$/, '')}`;
    assert.ok(existsSync(reservation), 'the /24 is held while the cluster runs');
    const leftovers = () => [
      ...readdirSync('/run/netns')
        .filter((n) => n.startsWith(`${id}-`))
        .map((n) => `namespace ${n}`),
      ...machineLinks()
        .filter((l) => l === machineVeth)
        .map((l) => `veth ${l}`),
      ...clusterRoutes().map((r) => `route ${r}`),
      ...(existsSync(reservation) ? [`reservation ${reservation}`] : []),
    ];
    ok(await cluster.down(), 'down');
    assert.deepEqual(leftovers(), []);

    ok(await cluster.up(2), 'up again');
    const again = readRecord();
    assert.equal(again.network.subnet, subnet, 'the same /24');
    assert.deepEqual(
      again.agents.map((a) => a.address),
      record.agents.map((a) => a.address),
    );
    await eventually('both pods answering again at their nodes', async () => {
      for (const agent of again.agents) {
        if ((await httpGet(agent.address, 18080)).body !== `hello from ${agent.name}\n`) return false;
      }
      return true;
    });
    ok(await cluster.down(), 'second down');
    assert.deepEqual(leftovers(), []);
  });
});
