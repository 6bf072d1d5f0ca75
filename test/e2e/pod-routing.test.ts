/**
 * Pods reach each other across hosts (issue 14, part 1), on the lab of test/harness/lab.ts with each
 * backend, through the built CLI:
 *   - host-gw, three nodes on one switch: a pod on n1 reaches a pod on n2 and is seen there with its
 *     own address; host n3 reaches a pod on n1 (seen with n3's address); a pod reaching the cp host
 *     (outside the cluster CIDR) arrives as its node's address; a Node deleted loses its route on
 *     the other hosts.
 *   - vxlan, n1 beside cp and n2 on a second subnet behind a router: the same pod to pod check
 *     across the router; the kernel refuses host-gw's route there (n2 is not on a connected
 *     subnet), so what carries the packets is the VXLAN device.
 * The pods run busybox httpd with a CGI script that answers with the client's address
 * (REMOTE_ADDR): what the server saw as the source. Each lab is removed after, whatever happened.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import type { Node, Pod } from '../../proto/gen/types.js';
import { removeAgentNode } from '../../node-agent/agent/main.js';
import { startLab, type Lab, type LabOptions } from '../harness/lab.js';
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

/** A CGI script answering with the client's address, as the server saw it. */
const PEER_CGI = '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n';
const PEER_PORT = 8080;

/**
 * One lab for a describe, with helpers: pods `echo-<node>` (busybox httpd answering the client's
 * address) on the given nodes, their addresses, and fetches from pods and hosts.
 */
function routingLab(options: LabOptions & { prefix: string; echoPods?: false }) {
  let lab: Lab | undefined;
  const L = (): Lab => {
    if (!lab) throw new Error('the lab did not start');
    return lab;
  };
  const podIP: Record<string, string> = {};
  const getJson = async <T>(args: string[]): Promise<T> =>
    JSON.parse(ok(await L().skiff([...args, '-o', 'json']), `skiff ${args.join(' ')}`).stdout) as T;
  const pod = (name: string) => getJson<Pod>(['get', 'pod', name]);
  const podCIDR = async (node: string) => (await getJson<Node>(['get', 'node', node])).spec!.podCIDR!;

  before(async () => {
    lab = await startLab(options);
    if (options.echoPods === false) return;
    const dir = lab.hosts.dir;
    const image = (...args: string[]) => L().skiff(['image', '--root', join(dir, 'cli', 'root'), ...args]);
    writeFileSync(join(dir, 'images.tar'), archiveTar(ociLayout([busyboxImage('busybox:1')])));
    ok(await image('load', '-i', join(dir, 'images.tar')), 'image load');
    ok(await image('tag', 'busybox:1', 'echo:1'), 'image tag');
    ok(await image('push', 'echo:1'), 'image push');
    const serve = `mkdir -p /www/cgi-bin && printf '${PEER_CGI.replaceAll('\n', '\\n')}' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec busybox httpd -f -p ${PEER_PORT} -h /www`;
    const manifest = lab.nodes
      .map(
        (node) => `apiVersion: v1
kind: Pod
metadata: {name: echo-${node.name}, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: ${node.name}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: echo:1
    command: [sh, -c, ${JSON.stringify(serve)}]
`,
      )
      .join('---\n');
    writeFileSync(join(dir, 'echo.yaml'), manifest);
    ok(await L().skiff(['apply', '-f', join(dir, 'echo.yaml')]), 'apply');
    for (const node of lab.nodes) {
      const name = `echo-${node.name}`;
      await L().waitFor(`${name} Running`, async () => (await pod(name)).status?.phase === 'Running', 90_000);
      podIP[node.name] = (await pod(name)).status!.podIP!;
    }
  });
  after(async () => {
    if (!lab) return;
    const hosts = lab.hosts;
    await lab.dispose();
    assert.deepEqual(leftovers(hosts), [], 'nothing of the lab is left');
  });

  /**
   * The address a GET of `url` was seen from (the peer CGI's answer), made from the pod on
   * `fromNode`, or from a host when `fromHost` is given. busybox httpd listens on IPv6 too, and
   * shows an IPv4 client as IPv4-mapped ([::ffff:a.b.c.d]).
   */
  const seenFrom = async (from: { pod: string } | { host: string }, url: string): Promise<string> => {
    const wget = ['busybox', 'wget', '-q', '-O', '-', url];
    const result =
      'pod' in from
        ? await L().skiff(['exec', `echo-${from.pod}`, '--', ...wget], { timeoutMs: 20_000 })
        : await L().node(from.host).run(wget, { timeoutMs: 15_000 });
    ok(result, `GET ${url} from ${JSON.stringify(from)}`);
    return result.stdout.trim().replace(/^\[::ffff:(.*)\]$/, '$1');
  };
  const peerUrl = (address: string, port = PEER_PORT) => `http://${address}:${port}/cgi-bin/peer`;
  return { L, podIP, podCIDR, seenFrom, peerUrl };
}

describe('pod routing, host-gw: three nodes on one switch', { timeout: 300_000 }, () => {
  const { L, podIP, podCIDR, seenFrom, peerUrl } = routingLab({
    nodes: 3,
    prefix: 'routing-hostgw',
    networkBackend: 'host-gw',
  });

  test("each node routes the others' pod CIDRs via their addresses", async () => {
    for (const node of L().nodes) {
      const routes = (await node.run(['ip', '-4', 'route', 'show'])).stdout;
      for (const other of L().nodes.filter((n) => n !== node)) {
        const cidr = await podCIDR(other.name);
        assert.match(
          routes,
          new RegExp(
            `^${cidr.replaceAll('.', '\\.')} via ${other.address.replaceAll('.', '\\.')} dev eth0`,
            'm',
          ),
          `${node.name}:\n${routes}`,
        );
      }
      assert.doesNotMatch(routes, /^default/m);
    }
  });

  test('a pod on n1 reaches a pod on n2, which sees the pod’s own address', async () => {
    assert.equal(await seenFrom({ pod: 'n1' }, peerUrl(podIP.n2!)), podIP.n1);
    assert.equal(await seenFrom({ pod: 'n2' }, peerUrl(podIP.n1!)), podIP.n2, 'and back');
  });

  test('host n3 reaches a pod on n1, which sees n3’s address', async () => {
    assert.equal(await seenFrom({ host: 'n3' }, peerUrl(podIP.n1!)), L().node('n3').address);
  });

  test('a pod reaching the cp host (outside the cluster CIDR) arrives as its node’s address', async () => {
    const cp = L().cp.host;
    const www = join(cp.dir, 'peer-www');
    mkdirSync(join(www, 'cgi-bin'), { recursive: true });
    writeFileSync(join(www, 'cgi-bin', 'peer'), PEER_CGI);
    chmodSync(join(www, 'cgi-bin', 'peer'), 0o755);
    const server = cp.spawn('peer-httpd', ['busybox', 'httpd', '-f', '-p', `${cp.address}:8090`, '-h', www]);
    try {
      await L().waitFor(
        'the cp host’s httpd',
        async () =>
          (await cp.run(['busybox', 'wget', '-q', '-O', '-', peerUrl(cp.address, 8090)])).code === 0,
      );
      assert.equal(
        await seenFrom({ pod: 'n1' }, peerUrl(cp.address, 8090)),
        L().node('n1').address,
        'masqueraded to n1’s address',
      );
    } finally {
      await server.stop(2000);
    }
  });

  test('a restarted agent puts its routes back as the Nodes say: a missing one made, a stale one removed', async () => {
    const n1 = L().node('n1');
    const n2Cidr = await podCIDR('n2');
    await n1.agent!.stop();
    // while it was away: n2's route removed by hand, a route of a node deleted meanwhile left over
    ok(await n1.run(['ip', 'route', 'del', n2Cidr]), 'ip route del');
    ok(
      await n1.run(['ip', 'route', 'add', '10.244.250.0/24', 'via', L().node('n2').address]),
      'ip route add',
    );
    await n1.startAgent();
    await L().waitFor('n1 routes as the Nodes say', async () => {
      const routes = (await n1.run(['ip', '-4', 'route', 'show'])).stdout;
      return (
        routes.includes(`${n2Cidr} via ${L().node('n2').address}`) && !routes.includes('10.244.250.0/24')
      );
    });
    assert.equal(await seenFrom({ pod: 'n2' }, peerUrl(podIP.n1!)), podIP.n2);
  });

  test('a Node deleted loses its route on the other hosts', async () => {
    const n3 = L().node('n3');
    const cidr = await podCIDR('n3');
    n3.agent!.kill('SIGKILL');
    await n3.agent!.exited;
    ok(await L().skiff(['delete', 'node', 'n3']), 'delete node n3');
    for (const node of [L().node('n1'), L().node('n2')])
      await L().waitFor(
        `${node.name} without a route to n3's ${cidr}`,
        async () => {
          const routes = (await node.run(['ip', '-4', 'route', 'show'])).stdout;
          return !routes.includes(`${cidr} via`);
        },
        15_000,
      );
    // the others are still routed
    assert.equal(await seenFrom({ pod: 'n1' }, peerUrl(podIP.n2!)), podIP.n1);
    // what each route update cost n1's agent (read the host, write the diff), as it logged them
    const updates = readFileSync(L().node('n1').agent!.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.includes('routes to other nodes updated'))
      .map((line) => JSON.parse(line) as { ms: number; changes: number })
      .map((u) => `${u.changes} change(s) in ${u.ms} ms`);
    assert.ok(updates.length > 0);
    console.log(`host-gw route updates on n1: ${updates.join(', ')}`);
  });
});

describe('pod routing, vxlan: n1 and n2 on two subnets joined by a router', { timeout: 300_000 }, () => {
  const { L, podIP, podCIDR, seenFrom, peerUrl } = routingLab({
    nodes: 2,
    prefix: 'routing-vxlan',
    networkBackend: 'vxlan',
    secondSubnet: ['n2'],
  });

  test('the nodes are on different subnets, and host-gw’s route between them is refused by the kernel', async () => {
    const [n1, n2] = [L().node('n1'), L().node('n2')];
    assert.notEqual(n1.host.subnet, n2.host.subnet);
    const refused = await n1.run([
      'ip',
      'route',
      'add',
      await podCIDR('n2'),
      'via',
      n2.address,
      'metric',
      '100',
    ]);
    assert.notEqual(refused.code, 0, 'a route via an address off link');
    assert.match(refused.stderr, /Nexthop has invalid gateway|Network is unreachable/);
  });

  test('each node has skiff.vxlan (VNI 1, port 8472, its address local) and routes the other’s pod CIDR through it', async () => {
    for (const [node, other] of [
      [L().node('n1'), L().node('n2')],
      [L().node('n2'), L().node('n1')],
    ] as const) {
      const device = (await node.run(['ip', '-d', 'link', 'show', 'skiff.vxlan'])).stdout;
      assert.match(
        device,
        new RegExp(`vxlan id 1 local ${node.address.replaceAll('.', '\\.')} .*dstport 8472 .*nolearning`),
        device,
      );
      assert.match(device, /mtu 1450/);
      const cidr = await podCIDR(other.name);
      const vtep = cidr.replace(/\/24$/, '');
      const routes = (await node.run(['ip', '-4', 'route', 'show'])).stdout;
      assert.match(
        routes,
        new RegExp(
          `^${cidr.replaceAll('.', '\\.')} via ${vtep.replaceAll('.', '\\.')} dev skiff\\.vxlan onlink`,
          'm',
        ),
        routes,
      );
      const fdb = (await node.run(['bridge', 'fdb', 'show', 'dev', 'skiff.vxlan'])).stdout;
      assert.match(fdb, new RegExp(`dst ${other.address.replaceAll('.', '\\.')} self permanent`), fdb);
      // the pods' MTU fits in the tunnel
      assert.match((await node.run(['ip', 'link', 'show', 'skiff0'])).stdout, /mtu 1450/);
    }
  });

  test('a pod on n1 reaches a pod on n2 across the router, and each sees the other’s own address', async () => {
    assert.equal(await seenFrom({ pod: 'n1' }, peerUrl(podIP.n2!)), podIP.n1);
    assert.equal(await seenFrom({ pod: 'n2' }, peerUrl(podIP.n1!)), podIP.n2);
  });

  test('host n1 reaches the pod on n2, seen with n1’s VTEP address', async () => {
    const vtep = (await podCIDR('n1')).replace(/\/24$/, '');
    assert.equal(await seenFrom({ host: 'n1' }, peerUrl(podIP.n2!)), vtep);
  });

  test("the node's network removed (skiff down's removeAgentNode): no VXLAN device, no route into the cluster CIDR", async () => {
    const n1 = L().node('n1');
    await n1.agent!.stop();
    assert.deepEqual(await removeAgentNode(n1.root, { hostNetns: n1.host.netnsPath }), []);
    assert.notEqual((await n1.run(['ip', 'link', 'show', 'skiff.vxlan'])).code, 0, 'skiff.vxlan is gone');
    const routes = (await n1.run(['ip', '-4', 'route', 'show'])).stdout;
    assert.doesNotMatch(routes, /^10\.244\./m, routes);
    assert.doesNotMatch(routes, /unreachable/, routes);
  });
});

describe(
  'pod routing, host-gw on two subnets: the node behind the router is reported, not routed',
  { timeout: 300_000 },
  () => {
    const { L, podCIDR } = routingLab({
      nodes: 2,
      prefix: 'routing-hostgw-routed',
      networkBackend: 'host-gw',
      secondSubnet: ['n2'],
      echoPods: false,
    });

    test('n1 records a NodeNotRouted Warning naming n2 and why, and adds no route for it', async () => {
      const n2 = L().node('n2');
      await L().waitFor('the NodeNotRouted event', async () => {
        const events = ok(await L().skiff(['get', 'events', '-A']), 'get events').stdout;
        return /Warning\s+NodeNotRouted\s+node\/n1\s/.test(events) && events.includes('Pods of node n2');
      });
      const events = ok(await L().skiff(['get', 'events', '-A']), 'get events').stdout;
      assert.match(
        events,
        new RegExp(
          `Pods of node n2 are unreachable from here: host-gw cannot route its pod CIDR .*: its address ${n2.address.replaceAll('.', '\\.')} is on no subnet this node is connected to \\(nodes on different subnets need the vxlan backend\\)`,
        ),
      );
      const routes = (await L().node('n1').run(['ip', '-4', 'route', 'show'])).stdout;
      assert.ok(!routes.includes(await podCIDR('n2')), routes);
    });
  },
);
