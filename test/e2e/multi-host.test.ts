/**
 * A cluster on several hosts (test/harness/lab.ts: each host a network namespace on this machine,
 * its own address, runtime root and cgroup parent): etcd, NATS and the control plane on host cp,
 * agents on n1, n2 and n3, driven through the built CLI from the machine namespace. Nodes join and
 * are Ready at their hosts' addresses; the scheduler spreads pods over the three nodes; pods steered
 * to each node (a kubernetes.io/hostname nodeSelector) get addresses from its pod CIDR and reach
 * each other and the nodes, across hosts too; an agent that is killed, a control plane or NATS that restarts
 * restarts no pod; a status change made while NATS was away arrives after; a node's certificate
 * opens nothing of another node's. The lab is removed after, whatever happened.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { connect, type NatsConnection } from 'nats';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import { connectApi } from '../../proto/client.js';
import type { Node, Pod } from '../../proto/gen/types.js';
import { parseCidr, ipv4Number, cidrContains } from '../../proto/cidr.js';
import { startLab, type Lab } from '../harness/lab.js';
import { leftovers } from '../harness/hosts.js';
import type { RunResult } from './cli-harness.js';

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

/** What must not change when nothing restarts: each pod's container ID and restart count. */
type Fingerprint = Record<string, { containerID: string; restartCount: number }>;

describe('several hosts: a control-plane host and three agent hosts', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  const timings: string[] = [];
  const time = async <T>(what: string, step: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await step();
    } finally {
      timings.push(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  };
  const L = (): Lab => {
    if (!lab) throw new Error('the lab did not start');
    return lab;
  };
  const skiff = (args: string[]) => L().skiff(args);
  const getJson = async <T>(args: string[]): Promise<T> =>
    JSON.parse(ok(await skiff([...args, '-o', 'json']), `skiff ${args.join(' ')}`).stdout) as T;
  const pod = (name: string) => getJson<Pod>(['get', 'pod', name]);
  const fingerprint = async (names: string[]): Promise<Fingerprint> => {
    const out: Fingerprint = {};
    for (const name of names) {
      const status = (await pod(name)).status?.containerStatuses?.[0];
      out[name] = { containerID: status?.containerID ?? '', restartCount: status?.restartCount ?? -1 };
    }
    return out;
  };
  const podRunning = async (name: string) => {
    const p = await pod(name).catch(() => undefined);
    return p?.status?.phase === 'Running' && p.status.containerStatuses?.every((c) => c.ready) === true;
  };
  const nodeStatus = async (name: string) => {
    const out = ok(await skiff(['get', 'node', name]), 'get node').stdout;
    return out.split('\n')[1]?.split(/\s+/)[1] ?? '';
  };
  /**
   * `busybox wget` on a host: what an HTTP GET there answers. Bounded by the run's timeout, not
   * wget's -T, on which Debian's static busybox 1.35 crashes (SIGSEGV).
   */
  const fetchOn = async (host: string, url: string) =>
    (await L().node(host).run(['busybox', 'wget', '-q', '-O', '-', url], { timeoutMs: 15_000 })).stdout;
  /**
   * Every node's heartbeats reach the control plane after `since` (ms). Node status is written only
   * when it changes (or every 5 minutes), so a heartbeat leaves nothing to read; what shows is that
   * a node the control plane stops hearing is marked NotReady once the grace period has passed. So:
   * past `since` + the lab's grace (8 s) + the check interval, every node is Ready, and its Ready
   * condition did not change after the grace ran out (NotReady and back would).
   */
  const heartbeatsSince = async (since: number) => {
    const graceMs = 8000;
    const checkAt = since + graceMs + 4000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, checkAt - Date.now())));
    for (const node of L().nodes) {
      const ready = (await getJson<Node>(['get', 'node', node.name])).status?.conditions?.find(
        (c) => c.type === 'Ready',
      );
      assert.equal(ready?.status, 'True', `${node.name} is Ready past the grace period`);
      assert.ok(
        Date.parse(ready.lastTransitionTime ?? '') < since + graceMs,
        `${node.name}'s Ready condition changed at ${ready.lastTransitionTime}, after the grace ran out: heartbeats were not heard`,
      );
    }
  };
  const podIP: Record<string, string> = {};
  const webs = ['web-n1', 'web-n2', 'web-n3'];
  const afterRestart = ['after-restart-n1', 'after-restart-n2', 'after-restart-n3'];

  before(async () => {
    lab = await time('lab start (namespaces, etcd, NATS, control plane, 3 agents joined and Ready)', () =>
      startLab({ nodes: 3, prefix: 'multi-host' }),
    );
  });
  after(async () => {
    if (lab) {
      const hosts = lab.hosts;
      await time('lab dispose', () => lab!.dispose());
      assert.deepEqual(leftovers(hosts), [], 'nothing of the lab is left');
    }
    console.log(`multi-host timings:\n  ${timings.join('\n  ')}`);
  });

  test('three nodes join from their hosts and are Ready, each at its own address', async () => {
    const wide = ok(await skiff(['get', 'nodes', '-o', 'wide']), 'get nodes -o wide').stdout;
    assert.match(wide.split('\n')[0]!, /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\s+INTERNAL-IP\s/);
    for (const node of L().nodes) {
      const row = wide.split('\n').find((r) => r.startsWith(`${node.name} `));
      assert.ok(row, `${node.name} is listed:\n${wide}`);
      assert.match(
        row!,
        new RegExp(`^${node.name}\\s+Ready\\s.*\\s${node.address.replaceAll('.', '\\.')}\\s`),
      );
      // it joined with the join token: a client certificate of the cluster CA, kept under its root
      assert.match(
        new X509Certificate(readFileSync(node.pki.cert)).subject,
        new RegExp(`CN=system:node:${node.name}`),
      );
      // its pod network is in its own host namespace: the bridge, and unreachable routes for the
      // cluster and service CIDRs; no default route anywhere
      const spec = (await getJson<Node>(['get', 'node', node.name])).spec!;
      const gateway = spec.podCIDR!.replace(/\.0\/24$/, '.1/24');
      assert.match(
        (await node.run(['ip', '-br', 'addr'])).stdout,
        // UP once a pod's veth is on it
        new RegExp(`^skiff0\\s+\\S+\\s+${gateway.replaceAll('.', '\\.')}`, 'm'),
      );
      const routes = (await node.run(['ip', '-4', 'route', 'show', 'table', 'all'])).stdout;
      assert.match(routes, /^unreachable 10\.244\.0\.0\/16/m);
      assert.match(routes, /^unreachable 10\.96\.0\.0\/12/m);
      assert.doesNotMatch(routes, /^default/m);
    }
    assert.doesNotMatch(
      execFileSync('ip', ['-br', 'link']).toString(),
      /^skiff0\s/m,
      'no bridge in the machine namespace',
    );
    const cidrs = new Set(
      await Promise.all(
        L().nodes.map(async (n) => (await getJson<Node>(['get', 'node', n.name])).spec!.podCIDR),
      ),
    );
    assert.equal(cidrs.size, 3, 'each node its own pod CIDR');
  });

  test('an image pushed to the cluster registry runs as pods placed on each node (hostname nodeSelector), with addresses from its pod CIDR', async () => {
    const work = join(L().hosts.dir, 'cli');
    await time('image load, tag, push', async () => {
      writeFileSync(join(L().hosts.dir, 'images.tar'), archiveTar(ociLayout([busyboxImage('busybox:1')])));
      const image = (...args: string[]) => skiff(['image', '--root', join(work, 'root'), ...args]);
      ok(await image('load', '-i', join(L().hosts.dir, 'images.tar')), 'image load');
      ok(await image('tag', 'busybox:1', 'web:1'), 'image tag');
      ok(await image('push', 'web:1'), 'image push');
    });
    const manifest = L()
      .nodes.map(
        (node) => `apiVersion: v1
kind: Pod
metadata: {name: web-${node.name}, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: ${node.name}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: web:1
    command: [sh, -c, 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec busybox httpd -f -p 8080 -h /www']
`,
      )
      .join('---\n');
    writeFileSync(join(L().hosts.dir, 'web.yaml'), manifest);
    await time('3 pods Running (pull on each node)', async () => {
      ok(await skiff(['apply', '-f', join(L().hosts.dir, 'web.yaml')]), 'apply');
      for (const name of webs) await L().waitFor(`${name} Running`, () => podRunning(name), 90_000);
    });
    const wide = ok(await skiff(['get', 'pods', '-o', 'wide']), 'get pods -o wide').stdout;
    for (const node of L().nodes) {
      const row = wide.split('\n').find((r) => r.startsWith(`web-${node.name} `));
      assert.ok(row, wide);
      assert.match(
        row!,
        new RegExp(`\\sRunning\\s.*\\s10\\.244\\.\\d+\\.\\d+\\s+${node.name}\\s+<none>\\s+<none>\\s*$`),
      );
      const ip = (await pod(`web-${node.name}`)).status!.podIP!;
      const cidr = parseCidr((await getJson<Node>(['get', 'node', node.name])).spec!.podCIDR!, 'podCIDR');
      assert.ok(cidrContains(cidr, ipv4Number(ip)!), `${ip} is in ${node.name}'s ${cidr.text}`);
      podIP[`web-${node.name}`] = ip;
    }
  });

  test('pods naming no node are spread over the three nodes by the scheduler and run there', async () => {
    const spread = ['spread-0', 'spread-1', 'spread-2'];
    writeFileSync(
      join(L().hosts.dir, 'spread.yaml'),
      spread
        .map(
          (name) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: default, labels: {app: spread}}
spec:
  terminationGracePeriodSeconds: 1
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: DoNotSchedule
    labelSelector: {matchLabels: {app: spread}}
  containers:
  - name: c
    image: web:1
    command: [sleep, '3600']
`,
        )
        .join('---\n'),
    );
    await time('3 scheduled pods Running', async () => {
      ok(await skiff(['apply', '-f', join(L().hosts.dir, 'spread.yaml')]), 'apply');
      for (const name of spread) await L().waitFor(`${name} Running`, () => podRunning(name), 60_000);
    });
    const placed = await Promise.all(spread.map(async (name) => (await pod(name)).spec.nodeName));
    assert.deepEqual([...placed].sort(), ['n1', 'n2', 'n3'], 'one on each node');
    const described = ok(await skiff(['describe', 'pod', 'spread-0']), 'describe').stdout;
    assert.match(
      described,
      new RegExp(`Scheduled\\s.*Successfully assigned default/spread-0 to ${placed[0]}`),
    );
    ok(await skiff(['delete', 'pod', ...spread]), 'delete');
    await L().waitFor('the spread pods gone', async () => {
      const out = ok(await skiff(['get', 'pods']), 'get pods').stdout;
      return !/^spread-/m.test(out);
    });
  });

  test("pods reach each other on one node and across nodes, and a node reaches its pods and another node's", async () => {
    for (const node of L().nodes) {
      const ip = podIP[`web-${node.name}`]!;
      assert.equal(await fetchOn(node.name, `http://${ip}:8080/`), `hello from web-${node.name}\n`);
      assert.equal(
        (await node.run(['busybox', 'ping', '-c', '1', '-W', '2', ip])).code,
        0,
        `${node.name} pings its pod`,
      );
    }
    // another node's pods, through the route to its pod CIDR (host-gw, the lab's default backend;
    // both backends in depth: pod-routing.test.ts)
    assert.equal(await fetchOn('n1', `http://${podIP['web-n2']}:8080/`), 'hello from web-n2\n');
    // a pod on n1 fetches from the other pod on n1, then from the one on n3, and exits 0 on success
    writeFileSync(
      join(L().hosts.dir, 'client.yaml'),
      `apiVersion: v1
kind: Pod
metadata: {name: client-n1, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: n1}
  restartPolicy: Never
  containers:
  - name: client
    image: web:1
    command: [sh, -c, 'busybox wget -q -O - http://${podIP['web-n1']}:8080/ | grep -q "hello from web-n1" && busybox wget -q -O - http://${podIP['web-n3']}:8080/ | grep -q "hello from web-n3"']
`,
    );
    ok(await skiff(['apply', '-f', join(L().hosts.dir, 'client.yaml')]), 'apply client');
    await L().waitFor(
      'client-n1 Succeeded',
      async () => (await pod('client-n1')).status?.phase === 'Succeeded',
    );
    const exit = (await pod('client-n1')).status!.containerStatuses![0]!.state?.terminated;
    assert.equal(exit?.exitCode, 0);
    ok(await skiff(['delete', 'pod', 'client-n1']), 'delete client');
  });

  test('a node whose agent is killed goes NotReady and is Ready again once it returns; its pod was never restarted', async () => {
    const n2 = L().node('n2');
    const before = await fingerprint(['web-n2']);
    n2.agent!.kill('SIGKILL');
    await n2.agent!.exited;
    await time('NotReady after the agent was killed', () =>
      L().waitFor('n2 NotReady', async () => (await nodeStatus('n2')) === 'NotReady', 30_000),
    );
    // its pod still serves (containers outlive their agent), but is marked not Ready: nothing on an
    // unreachable node should get traffic
    assert.equal(await fetchOn('n2', `http://${podIP['web-n2']}:8080/`), 'hello from web-n2\n');
    const readyCondition = async () =>
      (await pod('web-n2')).status?.conditions?.find((c) => c.type === 'Ready');
    await L().waitFor('web-n2 marked not Ready', async () => (await readyCondition())?.status === 'False');
    assert.equal((await readyCondition())?.reason, 'NodeNotReady');
    await time('Ready after the agent restarted', () => n2.startAgent());
    assert.equal(await nodeStatus('n2'), 'Ready');
    await L().waitFor('web-n2 Running', () => podRunning('web-n2'));
    await L().waitFor('web-n2 Ready again', async () => (await readyCondition())?.status === 'True');
    assert.deepEqual(
      await fingerprint(['web-n2']),
      before,
      'the restarted agent adopted the running container',
    );
  });

  test("a dead node's pods are evicted after their toleration and come back on another node; when it returns it runs none of them", async () => {
    // two replicas on two of the three nodes (one a node), tolerating an unreachable node 2 s
    const toleration = (key: string) =>
      `      - {key: node.kubernetes.io/${key}, operator: Exists, effect: NoExecute, tolerationSeconds: 2}`;
    writeFileSync(
      join(L().hosts.dir, 'movers.yaml'),
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: movers, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: movers}}
  template:
    metadata: {labels: {app: movers}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
${toleration('unreachable')}
${toleration('not-ready')}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: movers}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: c
        image: web:1
        command: [sleep, '3600']
`,
    );
    ok(await skiff(['apply', '-f', join(L().hosts.dir, 'movers.yaml')]), 'apply movers');
    const movers = async () => (await getJson<{ items: Pod[] }>(['get', 'pods', '-l', 'app=movers'])).items;
    await L().waitFor('both movers Running', async () => {
      const pods = await movers();
      return (
        pods.length === 2 && (await Promise.all(pods.map((p) => podRunning(p.metadata.name!)))).every(Boolean)
      );
    });
    const before = await movers();
    const victim = before[0]!;
    const deadNode = victim.spec.nodeName!;
    const survivorNode = before[1]!.spec.nodeName!;
    const freeNode = L()
      .nodes.map((n) => n.name)
      .find((n) => n !== deadNode && n !== survivorNode)!;
    const dead = L().node(deadNode);
    dead.agent!.kill('SIGKILL');
    await dead.agent!.exited;
    await time('NotReady, tainted unreachable:NoExecute', () =>
      L().waitFor(
        `${deadNode} tainted`,
        async () =>
          (await getJson<Node>(['get', 'node', deadNode])).spec.taints?.some(
            (t) => t.key === 'node.kubernetes.io/unreachable' && t.effect === 'NoExecute',
          ) === true,
        30_000,
      ),
    );
    await time('the pod evicted and replaced on the free node', () =>
      L().waitFor(
        'a replacement Running on the free node',
        async () => {
          const pods = await movers();
          const replacement = pods.find((p) => !before.some((b) => b.metadata.uid === p.metadata.uid));
          return replacement?.spec.nodeName === freeNode && (await podRunning(replacement.metadata.name!));
        },
        60_000,
      ),
    );
    const evicted = await pod(victim.metadata.name!);
    assert.ok(
      evicted.metadata.deletionTimestamp,
      'the pod on the dead node is Terminating until its node confirms',
    );
    assert.equal(
      evicted.status?.conditions?.find((c) => c.type === 'DisruptionTarget')?.reason,
      'DeletionByTaintManager',
    );
    const events = ok(await skiff(['get', 'events', '-A']), 'get events').stdout;
    assert.match(events, new RegExp(`TaintManagerEviction\\s.*${victim.metadata.name}`));
    assert.equal(
      (await getJson<{ status?: { availableReplicas?: number } }>(['get', 'deployment', 'movers'])).status
        ?.availableReplicas,
      2,
      'the Deployment is whole again while the node is away',
    );

    await time('the node back Ready, untainted', () => dead.startAgent());
    await L().waitFor(
      'the evicted pod stopped and gone (its agent confirmed)',
      async () => !(await movers()).some((p) => p.metadata.uid === victim.metadata.uid),
      60_000,
    );
    await L().waitFor(
      `${deadNode} untainted`,
      async () => ((await getJson<Node>(['get', 'node', deadNode])).spec.taints ?? []).length === 0,
    );
    const after = await movers();
    assert.deepEqual(
      after.map((p) => p.spec.nodeName).sort(),
      [survivorNode, freeNode].sort(),
      `nothing of movers runs on ${deadNode}`,
    );
    ok(await skiff(['delete', 'deployment', 'movers']), 'delete movers');
    await L().waitFor('movers gone', async () => (await movers()).length === 0, 60_000);
  });

  test('after the control plane restarts, agents reconnect, follow new pods, and nothing restarts', async () => {
    const before = await fingerprint(webs);
    const restarted = await time('control plane restart', async () => {
      await L().cp.stopControlPlane();
      await L().cp.startControlPlane();
      return Date.now();
    });
    // heartbeats reach the new control plane, and every agent's pod watch resumed: pods bound now run
    await heartbeatsSince(restarted);
    writeFileSync(
      join(L().hosts.dir, 'after-restart.yaml'),
      L()
        .nodes.map(
          (node) => `apiVersion: v1
kind: Pod
metadata: {name: after-restart-${node.name}, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: ${node.name}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: web:1
    command: [sleep, '3600']
`,
        )
        .join('---\n'),
    );
    ok(await skiff(['apply', '-f', join(L().hosts.dir, 'after-restart.yaml')]), 'apply');
    await time('pods bound after the restart Running', async () => {
      for (const name of afterRestart) await L().waitFor(`${name} Running`, () => podRunning(name));
    });
    assert.deepEqual(await fingerprint(webs), before);
  });

  test("NATS restarts: agents reconnect, and a container's exit while it was down reaches get pods after", async () => {
    const n2 = L().node('n2');
    writeFileSync(
      join(L().hosts.dir, 'waiter.yaml'),
      `apiVersion: v1
kind: Pod
metadata: {name: waiter, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: n2}
  restartPolicy: Never
  volumes:
  - name: share
    hostPath: {path: ${n2.shareDir}}
  containers:
  - name: waiter
    image: web:1
    command: [sh, -c, 'until [ -e /share/stop ]; do sleep 0.2; done; echo bye > /share/done; exit 3']
    volumeMounts:
    - {name: share, mountPath: /share}
`,
    );
    ok(await skiff(['apply', '-f', join(L().hosts.dir, 'waiter.yaml')]), 'apply waiter');
    await L().waitFor('waiter Running', () => podRunning('waiter'));
    const before = await fingerprint([...webs, ...afterRestart]);
    await time('NATS down, the container exits meanwhile', async () => {
      await L().cp.stopNats();
      writeFileSync(join(n2.shareDir, 'stop'), '');
      await L().waitFor('the waiter to exit', async () => existsSync(join(n2.shareDir, 'done')), 30_000);
      // time for the agent to see the exit and try to report it
      await new Promise((resolve) => setTimeout(resolve, 3000));
    });
    const unheard = (await pod('waiter')).status;
    assert.equal(unheard?.phase, 'Running', 'the control plane has not heard of the exit while NATS is down');
    await time('NATS back: the exit reported, every node heard from', async () => {
      await L().cp.startNats();
      const back = Date.now();
      await L().waitFor('waiter Failed', async () => (await pod('waiter')).status?.phase === 'Failed');
      await heartbeatsSince(back);
    });
    const terminated = (await pod('waiter')).status!.containerStatuses![0]!.state?.terminated;
    assert.equal(terminated?.exitCode, 3);
    assert.match(ok(await skiff(['get', 'pods']), 'get pods').stdout, /^waiter\s+0\/1\s+Error\s/m);
    assert.deepEqual(await fingerprint([...webs, ...afterRestart]), before, 'nothing restarted');
  });

  test("a node's certificate opens nothing of another node's, over the API or NATS", async () => {
    const n1 = L().node('n1');
    const tls = {
      ca: readFileSync(n1.pki.ca, 'utf8'),
      cert: readFileSync(n1.pki.cert, 'utf8'),
      key: readFileSync(n1.pki.key, 'utf8'),
    };
    const asN1 = connectApi({ server: L().cp.api, tls });
    let nats: NatsConnection | undefined;
    try {
      const own = await asN1.get('Node', '', 'n1');
      assert.equal(own.metadata.name, 'n1', 'its own Node is readable');
      const other = await asN1.get('Node', '', 'n2');
      await assert.rejects(
        asN1.updateStatus({ ...other, status: { ...other.status, conditions: [] } }),
        /PERMISSION_DENIED|permission/i,
      );
      await assert.rejects(
        asN1.list('Pod', { fieldSelector: 'spec.nodeName=n2' }),
        /PERMISSION_DENIED|permission/i,
      );
      await assert.rejects(asN1.get('Pod', 'default', 'web-n2'), /PERMISSION_DENIED|permission/i);
      // NATS: n1's subject may not publish n2's heartbeats
      nats = await connect({
        servers: L().cp.natsUrl,
        tls,
        name: 'impostor',
        reconnect: false,
        timeout: 5000,
      });
      const errors: string[] = [];
      void (async () => {
        for await (const status of nats!.status())
          if (status.type === 'error') errors.push(String(status.data));
      })();
      nats.publish('skiff.node.n2.heartbeat', new Uint8Array([1]));
      await nats.flush();
      await L().waitFor(
        'a permissions violation',
        async () => errors.some((e) => /PERMISSIONS_VIOLATION/.test(e)),
        10_000,
      );
    } finally {
      asN1.close();
      await nats?.close().catch(() => {});
    }
    assert.equal(await nodeStatus('n2'), 'Ready');
    const log = readFileSync(L().cp.controlplane.logFile, 'utf8');
    assert.match(log, /api request refused.*system:node:n1|system:node:n1.*api request refused/);
  });
});
