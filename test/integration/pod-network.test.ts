/**
 * The pod network (node-agent/runtime/net) on real namespaces: a runtime whose sandboxes a
 * PodNetwork plugs into a bridge of a "host" that is a network namespace this test makes (never
 * the machine's own), with a "client" namespace beside it standing for another host. Checked from
 * inside: pod to pod, host to pod, /etc/hosts, a host port from the host (its address and
 * 127.0.0.1), from a pod and from the other host; the pod from the other host once it routes the
 * pod CIDR via this one (as another node does); a second claim of that port refused; everything
 * gone with the sandboxes; the host namespace as it was found after removeNode. Prints what
 * setUp and tearDown cost per pod over 50 sandboxes. Runs as root; the namespaces, sandboxes and
 * processes are removed in `after` even when a test fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../proto/errors.js';
import { rootLogger } from '../../proto/support/logger.js';
import type { SandboxInfo, SandboxNetwork } from '../../node-agent/runtime/pod-runtime.js';
import { PodNetwork } from '../../node-agent/runtime/net/pod-network.js';
import { openImageRuntime, type ImageRuntime } from '../../node-agent/runtime/runtime.js';
import {
  logText,
  makeBusyboxRootfs,
  requireRootAndBusybox,
  withScratchRuntime,
} from './runtime-containers-fixture.js';

const HOST = `skiff-podnet-h${process.pid}`;
const CLIENT = `skiff-podnet-c${process.pid}`;
const HOST_NETNS = `/run/netns/${HOST}`;
/** The client's link to the host: 192.168.77.0/24 inside the test's two namespaces only. */
const HOST_ADDR = '192.168.77.1';
const CLIENT_ADDR = '192.168.77.2';
const GATEWAY = '10.244.3.1';

let rt: ImageRuntime;
let network: PodNetwork;
let rootfs: string;
let stateDir: string;
/** setUp and tearDown times (ms), as the runtime called them. */
const timings = { setUp: [] as number[], tearDown: [] as number[] };

/** The network as the runtime calls it, timed. */
const timed: SandboxNetwork = {
  async setUp(target) {
    const t0 = performance.now();
    try {
      return await network.setUp(target);
    } finally {
      timings.setUp.push(performance.now() - t0);
    }
  },
  async tearDown(target) {
    const t0 = performance.now();
    try {
      await network.tearDown(target);
    } finally {
      timings.tearDown.push(performance.now() - t0);
    }
  },
};

// ------------------------------------------------------------------ commands

interface Ran {
  code: number | null;
  out: string;
}

/** Runs a command with no stdin, at most `timeoutMs`; its exit code and output. */
function run(argv: string[], timeoutMs = 10_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** `argv` in the network namespace at `netns` (a path). */
const inNs = (netns: string, argv: string[]) => run(['nsenter', `--net=${netns}`, '--', ...argv]);
const ipIn = (ns: string, ...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });

/** What `nc` got back from ADDR:PORT (TCP), or '' when nothing answered within 2 s. */
async function tcp(netns: string, addr: string, port: number): Promise<string> {
  const ran = await inNs(netns, ['busybox', 'nc', '-w', '2', addr, String(port)]);
  return ran.code === 0 ? ran.out.trim() : '';
}

async function pings(netns: string, addr: string): Promise<boolean> {
  return (await inNs(netns, ['busybox', 'ping', '-c', '1', '-W', '2', addr])).code === 0;
}

/** The parts of a namespace's network that skiff may touch, to compare before and after. */
function snapshot(ns: string) {
  const json = (args: string[]) => JSON.parse(ipIn(ns, '-j', ...args)) as Record<string, unknown>[];
  return {
    links: json(['-d', 'link', 'show']).map(
      (l) => `${l.ifname} ${(l.linkinfo as { info_kind?: string })?.info_kind ?? ''} ${l.mtu}`,
    ),
    addrs: json(['addr', 'show']).flatMap((l) =>
      ((l.addr_info as { local: string; prefixlen: number }[]) ?? []).map(
        (a) => `${l.ifname} ${a.local}/${a.prefixlen}`,
      ),
    ),
    routes: json(['route', 'show', 'table', 'all']).map((r) => JSON.stringify(r)),
    rules: json(['rule', 'show']).map((r) => JSON.stringify(r)),
    nft: execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' }),
    forwarding: execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-n', 'net.ipv4.ip_forward'], {
      encoding: 'utf8',
    }).trim(),
  };
}

const hostVeths = () =>
  (JSON.parse(ipIn(HOST, '-j', 'link', 'show', 'type', 'veth')) as { ifname: string }[])
    .map((l) => l.ifname)
    .filter((n) => n.startsWith('skv'));

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

// ------------------------------------------------------------------ set-up

let before0: ReturnType<typeof snapshot>;

before(() => {
  requireRootAndBusybox();
  if (!existsSync('/usr/sbin/nft'))
    throw new Error('the pod network needs nftables: apt-get install -y nftables');
  execFileSync('ip', ['netns', 'add', HOST]);
  execFileSync('ip', ['netns', 'add', CLIENT]);
  // the other host: a veth between the two namespaces, nothing else
  ipIn(HOST, 'link', 'set', 'lo', 'up');
  ipIn(HOST, 'link', 'add', 'skc0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', CLIENT);
  // no IPv6 link-local address, whose route the kernel adds later, after the snapshot below
  execFileSync('ip', ['netns', 'exec', HOST, 'sysctl', '-qw', 'net.ipv6.conf.skc0.disable_ipv6=1']);
  ipIn(HOST, 'addr', 'add', `${HOST_ADDR}/24`, 'dev', 'skc0');
  ipIn(HOST, 'link', 'set', 'skc0', 'up');
  ipIn(CLIENT, 'link', 'set', 'lo', 'up');
  ipIn(CLIENT, 'addr', 'add', `${CLIENT_ADDR}/24`, 'dev', 'eth0');
  ipIn(CLIENT, 'link', 'set', 'eth0', 'up');
  before0 = snapshot(HOST);
});

withScratchRuntime('skiff-podnet-test-', async (work) => {
  rootfs = await makeBusyboxRootfs(join(work, 'rootfs'));
  stateDir = join(work, 'net');
  network = newNetwork();
  rt = await openImageRuntime(join(work, 'root'), { snapshotter: 'overlay', sandboxNetwork: timed });
  return rt.runtime.containers;
});

function newNetwork() {
  return new PodNetwork({
    podCIDR: '10.244.3.0/24',
    clusterCIDR: '10.244.0.0/16',
    serviceCIDR: '10.96.0.0/12',
    bridge: 'skiff0',
    stateDir,
    hostNetns: HOST_NETNS,
    log: rootLogger.child({ component: 'pod-network-test' }, { level: 'warn' }),
  });
}

after(async () => {
  // the sandboxes are removed by withScratchRuntime's hook; the namespaces take what is left
  for (const ns of [HOST, CLIENT]) {
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {
      // never made
    }
  }
});

// ------------------------------------------------------------------ tests

describe('pod network', () => {
  let a: SandboxInfo;
  let b: SandboxInfo;

  test('prepareNode: unreachable routes, the bridge at the gateway, the table; again changes nothing', async () => {
    await network.prepareNode();
    const routes = ipIn(HOST, 'route', 'show');
    assert.match(routes, /^unreachable 10\.244\.0\.0\/16/m);
    assert.match(routes, /^unreachable 10\.96\.0\.0\/12/m);
    assert.match(routes, /^10\.244\.3\.0\/24 dev skiff0 proto kernel scope link src 10\.244\.3\.1/m);
    assert.doesNotMatch(routes, /^default/m, 'no default route on the host');
    assert.match(ipIn(HOST, '-d', 'link', 'show', 'skiff0'), /link\/ether 0a:58:0a:f4:03:01[\s\S]*bridge/);
    const prepared = snapshot(HOST);
    assert.match(prepared.nft, /table inet skiff/);
    assert.equal(
      prepared.forwarding,
      '1',
      'in a host namespace of its own, host ports reach it from other hosts',
    );
    await newNetwork().prepareNode();
    assert.deepEqual(snapshot(HOST), prepared);
  });

  test('two sandboxes: each an address of the pod CIDR on eth0, routed via the bridge; reported by the runtime', async () => {
    a = await rt.runtime.containers.createSandbox({ name: 'pod-a', hostname: 'pod-a' });
    b = await rt.runtime.containers.createSandbox({
      name: 'pod-b',
      hostname: 'pod-b',
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }],
    });
    assert.deepEqual([a.ips, b.ips], [['10.244.3.2'], ['10.244.3.3']]);
    assert.deepEqual((await rt.runtime.containers.inspectSandbox('pod-b')).ips, ['10.244.3.3']);
    assert.deepEqual((await rt.runtime.containers.listSandboxes()).map((s) => [s.name, s.ips]).sort(), [
      ['pod-a', ['10.244.3.2']],
      ['pod-b', ['10.244.3.3']],
    ]);
    const inA = await inNs(a.netnsPath!, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
    assert.match(inA.out, /inet 10\.244\.3\.2\/24/);
    assert.match((await inNs(a.netnsPath!, ['ip', 'route'])).out, /^default via 10\.244\.3\.1 dev eth0/m);
    assert.match((await inNs(a.netnsPath!, ['ip', 'link', 'show', 'eth0'])).out, /mtu 1500/);
    assert.equal(hostVeths().length, 2);
    assert.deepEqual(
      network.leases().map((l) => [l.name, l.ip]),
      [
        ['pod-a', '10.244.3.2'],
        ['pod-b', '10.244.3.3'],
      ],
    );
  });

  test('/etc/hosts of the pod’s containers names its hostname at its IP', async () => {
    const c = await rt.runtime.create({ rootfsDir: rootfs, command: ['cat', '/etc/hosts'], sandbox: a.id });
    await rt.runtime.containers.start(c.id);
    await rt.runtime.containers.wait(c.id, { timeoutMs: 30_000 });
    assert.match(await logText(rt.runtime.containers, c.id), /stdout 10\.244\.3\.2\tpod-a/);
    await rt.runtime.containers.remove(c.id);
  });

  test('pod to pod, host to pod, and a host port from the host, a pod and another host', async () => {
    const server = await rt.runtime.create({
      rootfsDir: rootfs,
      command: ['nc', '-ll', '-p', '80', '-e', 'echo', 'hello-from-b'],
      sandbox: b.id,
    });
    await rt.runtime.containers.start(server.id);
    // the listener is up once pod b answers itself
    for (let i = 0; i < 50 && (await tcp(b.netnsPath!, '127.0.0.1', 80)) === ''; i++) await sleep(100);

    // bridged packets seen by the host's netfilter (br_netfilter: built into this kernel) or not
    const brNetfilter =
      (await inNs(HOST_NETNS, ['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'])).code === 0;
    for (const callIptables of brNetfilter ? ['1', '0'] : ['absent']) {
      const seen = brNetfilter ? `bridge-nf-call-iptables=${callIptables}` : 'no br_netfilter';
      if (brNetfilter) execFileSync('ip', ['netns', 'exec', HOST, 'sysctl', '-qw', `net.bridge.${seen}`]);
      assert.ok(await pings(a.netnsPath!, '10.244.3.3'), `pod a pings pod b, ${seen}`);
      assert.equal(
        await tcp(a.netnsPath!, '10.244.3.3', 80),
        'hello-from-b',
        `pod a reaches pod b over TCP, ${seen}`,
      );
      assert.ok(await pings(HOST_NETNS, '10.244.3.2'), 'the host pings pod a');
      assert.equal(await tcp(HOST_NETNS, '10.244.3.3', 80), 'hello-from-b', 'the host reaches pod b');
      assert.ok(await pings(a.netnsPath!, GATEWAY), 'pod a pings its gateway');

      for (const [from, addr, what] of [
        [HOST_NETNS, HOST_ADDR, 'the host, to its own address'],
        [HOST_NETNS, '127.0.0.1', 'the host, to 127.0.0.1'],
        [HOST_NETNS, GATEWAY, 'the host, to the bridge'],
        [a.netnsPath!, GATEWAY, 'pod a, through its gateway'],
        [b.netnsPath!, GATEWAY, 'pod b, to itself (hairpin)'],
        [`/run/netns/${CLIENT}`, HOST_ADDR, 'another host'],
      ] as const) {
        assert.equal(await tcp(from, addr, 8080), 'hello-from-b', `host port 8080 from ${what}, ${seen}`);
      }
    }
    if (brNetfilter)
      execFileSync('ip', ['netns', 'exec', HOST, 'sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=1']);
    // another node routes this pod CIDR via this host (host-gw): it reaches the pod as it is, and
    // the pod's reply leaves un-NATed
    ipIn(CLIENT, 'route', 'add', '10.244.3.0/24', 'via', HOST_ADDR);
    try {
      assert.equal(
        await tcp(`/run/netns/${CLIENT}`, '10.244.3.3', 80),
        'hello-from-b',
        'a host routing the pod CIDR reaches the pod',
      );
    } finally {
      ipIn(CLIENT, 'route', 'del', '10.244.3.0/24');
    }
    // a pod address no bridge here holds is unreachable, not sent on
    const away = await inNs(HOST_NETNS, ['ip', 'route', 'get', '10.244.9.9']);
    assert.match(away.out, /No route to host/);
  });

  test('a second pod asking for the same host port is refused, naming the port and the pod holding it; nothing of it stays', async () => {
    const leases = network.leases().length;
    await assert.rejects(
      rt.runtime.containers.createSandbox({
        name: 'pod-c',
        portMappings: [{ hostPort: 8080, containerPort: 8080, protocol: 'TCP', hostIP: HOST_ADDR }],
      }),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        err.message.includes(
          `create sandbox pod-c: network set-up: host port ${HOST_ADDR}:8080/TCP is held by sandbox pod-b (${b.id.slice(0, 12)}) as 8080/TCP`,
        ),
    );
    assert.equal(network.leases().length, leases);
    assert.equal(hostVeths().length, 2);
    assert.deepEqual((await rt.runtime.containers.listSandboxes()).map((s) => s.name).sort(), [
      'pod-a',
      'pod-b',
    ]);
    // the same port over UDP is another port
    const udp = await rt.runtime.containers.createSandbox({
      name: 'pod-udp',
      portMappings: [{ hostPort: 8080, containerPort: 53, protocol: 'UDP' }],
    });
    assert.match(
      execFileSync('ip', ['netns', 'exec', HOST, 'nft', 'list', 'map', 'inet', 'skiff', 'hostports'], {
        encoding: 'utf8',
      }),
      /udp \. 8080 : 10\.244\.3\.\d+ \. 53/,
    );
    await rt.runtime.containers.removeSandbox(udp.id);
  });

  test('an agent restart: a new PodNetwork keeps the leases, prepareNode keeps the pods reachable, releaseExcept frees the gone', async () => {
    network = newNetwork();
    assert.deepEqual(
      network.leases().map((l) => l.name),
      ['pod-a', 'pod-b'],
    );
    await network.prepareNode();
    assert.equal(await tcp(HOST_NETNS, HOST_ADDR, 8080), 'hello-from-b', 'the host port survived');
    assert.deepEqual(await network.releaseExcept([a.id, b.id]), []);
    // a set-up called again for a running sandbox keeps its address and its working veth
    const again = await network.setUp({ ...a, portMappings: [], netnsPath: a.netnsPath! });
    assert.deepEqual(again.ips, a.ips);
    assert.ok(await pings(HOST_NETNS, '10.244.3.2'));
  });

  test('tearDown of a sandbox never set up succeeds; so does removing one whose namespace is gone', async () => {
    await network.tearDown({
      id: 'e'.repeat(64),
      name: 'never',
      labels: {},
      hostname: 'never',
      portMappings: [],
    });
    process.kill(a.pid!, 'SIGKILL');
    await rt.runtime.containers.wait(a.id, { timeoutMs: 30_000 });
    await rt.runtime.containers.removeSandbox(a.id);
    assert.deepEqual(
      network.leases().map((l) => l.name),
      ['pod-b'],
    );
    await rt.runtime.containers.removeSandbox(b.id);
    assert.deepEqual(network.leases(), []);
    assert.deepEqual(hostVeths(), []);
    const maps = execFileSync('ip', ['netns', 'exec', HOST, 'nft', 'list', 'table', 'inet', 'skiff'], {
      encoding: 'utf8',
    });
    assert.doesNotMatch(maps, /elements/, 'no host port left in the table');
    assert.deepEqual(JSON.parse(readFileSync(join(stateDir, 'leases.json'), 'utf8')).leases, {});
  });

  test('50 sandboxes, 8 at a time: setUp and tearDown per pod', async () => {
    timings.setUp.length = 0;
    timings.tearDown.length = 0;
    const memBefore = slabKb();
    const made: SandboxInfo[] = [];
    const t0 = performance.now();
    await inBatches(50, 8, async (i) => {
      made.push(await rt.runtime.containers.createSandbox({ name: `bench-${i}` }));
    });
    const createMs = performance.now() - t0;
    const memAfter = slabKb();
    assert.equal(new Set(made.map((s) => s.ips[0])).size, 50, 'no address twice');
    assert.ok(await pings(made[0]!.netnsPath!, made[49]!.ips[0]!));
    await inBatches(50, 8, (i) => rt.runtime.containers.removeSandbox(made[i]!.id));
    const fmt = (xs: number[]) =>
      `median ${percentile(xs, 50).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms`;
    console.log(
      `# pod network, 50 sandboxes 8 at a time: setUp ${fmt(timings.setUp)}; tearDown ${fmt(timings.tearDown)}; ` +
        `createSandbox ${(createMs / 50).toFixed(1)} ms of wall time each; kernel slab +${Math.round((memAfter - memBefore) / 50)} KiB per pod (pause process included; noisy)`,
    );
    assert.deepEqual(hostVeths(), []);
    assert.deepEqual(network.leases(), []);
  });

  test('removeNode leaves the host namespace as it found it', async () => {
    await network.removeNode();
    assert.deepEqual(snapshot(HOST), before0);
    assert.equal(existsSync(join(stateDir, 'leases.json')), false);
    await network.removeNode(); // idempotent
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn(0)`…`fn(n-1)`, at most `width` at a time. */
async function inBatches(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

function slabKb(): number {
  const m = /^Slab:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : 0;
}
