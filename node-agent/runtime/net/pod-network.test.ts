/**
 * PodNetwork's decisions, with the commands recorded instead of run (the real ones run in
 * test/integration/pod-network.test.ts): what each call asks of ip, nft and sysctl, in which
 * namespace and order; leases kept across instances; the failures that must not touch the host.
 */
import { after, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  ResourceExhaustedError,
} from '../../../proto/errors.js';
import { rootLogger } from '../../../proto/support/logger.js';
import type { SandboxNetworkTarget } from '../pod-runtime.js';
import type { ShownLink } from './ip-scripts.js';
import { NetCommandError, type NetExec } from './net-exec.js';
import { PodNetwork, type PodNetworkOptions } from './pod-network.js';

const HOST = '/run/netns/host-a';
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

interface Call {
  cmd: 'ip' | 'ipJson' | 'bridge' | 'bridgeJson' | 'nft' | 'readSysctl' | 'writeSysctls';
  netns: string | undefined;
  text: string;
}

/**
 * Records every command; `links` are what `ip link show dev X` finds, by namespace and name;
 * `shown` what other `ip -j` and `bridge -j` commands print, by their arguments.
 */
class RecordingExec implements NetExec {
  calls: Call[] = [];
  links = new Map<string, ShownLink>();
  shown = new Map<string, unknown>();
  failIp: (netns: string | undefined, script: string) => boolean = () => false;
  sysctls = new Map<string, string>([['net.ipv4.ip_forward', '0']]);

  async ip(netns: string | undefined, script: string) {
    if (script === '') return;
    this.calls.push({ cmd: 'ip', netns, text: script });
    if (this.failIp(netns, script))
      throw new NetCommandError('ip -batch -', 2, 'RTNETLINK answers: File exists');
  }
  async ipJson<T>(netns: string | undefined, args: string[]) {
    this.calls.push({ cmd: 'ipJson', netns, text: args.join(' ') });
    if (this.shown.has(args.join(' '))) return this.shown.get(args.join(' ')) as T;
    const dev = args.indexOf('dev');
    if (dev >= 0) {
      const link = this.links.get(`${netns} ${args[dev + 1]}`);
      return (link ? [link] : undefined) as T | undefined;
    }
    return [] as T;
  }
  async bridge(netns: string | undefined, script: string) {
    if (script !== '') this.calls.push({ cmd: 'bridge', netns, text: script });
  }
  async bridgeJson<T>(netns: string | undefined, args: string[]) {
    this.calls.push({ cmd: 'bridgeJson', netns, text: args.join(' ') });
    return (this.shown.get(args.join(' ')) ?? []) as T;
  }
  async nft(netns: string | undefined, script: string) {
    this.calls.push({ cmd: 'nft', netns, text: script });
  }
  async readSysctl(netns: string | undefined, key: string) {
    this.calls.push({ cmd: 'readSysctl', netns, text: key });
    return this.sysctls.get(key) ?? '0';
  }
  async writeSysctls(netns: string | undefined, values: Record<string, string>) {
    if (Object.keys(values).length === 0) return;
    this.calls.push({ cmd: 'writeSysctls', netns, text: JSON.stringify(values) });
    for (const [k, v] of Object.entries(values)) this.sysctls.set(k, v);
  }
  take(): Call[] {
    const calls = this.calls;
    this.calls = [];
    return calls;
  }
}

let exec: RecordingExec;
let stateDir: string;
const quiet = rootLogger.child({}, { level: 'silent' });

function network(extra: Partial<PodNetworkOptions> = {}) {
  return new PodNetwork({
    podCIDR: '10.244.3.0/24',
    clusterCIDR: '10.244.0.0/16',
    serviceCIDR: '10.96.0.0/12',
    stateDir,
    hostNetns: HOST,
    exec,
    log: quiet,
    now: () => new Date('2025-01-02T03:04:05Z'),
    ...extra,
  });
}

const sandboxId = (n: number) => `${n.toString(16).padStart(12, '0')}${'f'.repeat(52)}`;
function target(n: number, extra: Partial<SandboxNetworkTarget> = {}) {
  return {
    id: sandboxId(n),
    name: `pod-${n}`,
    labels: {},
    hostname: `pod-${n}`,
    portMappings: [],
    netnsPath: `/proc/${1000 + n}/ns/net`,
    ...extra,
  };
}

beforeEach(() => {
  exec = new RecordingExec();
  stateDir = mkdtempSync(join(tmpdir(), 'skiff-podnet-unit-'));
  dirs.push(stateDir);
});

describe('PodNetwork', () => {
  test('options are checked before anything runs', () => {
    const bad: [Partial<PodNetworkOptions>, RegExp][] = [
      [
        { podCIDR: '10.245.0.0/24' },
        /podCIDR: 10\.245\.0\.0\/24 is not inside the cluster CIDR 10\.244\.0\.0\/16/,
      ],
      [{ podCIDR: '10.244.3.0/31' }, /holds no pod address/],
      [{ serviceCIDR: '10.244.128.0/20' }, /serviceCIDR: .* overlaps the cluster CIDR/],
      [{ bridge: 'br "x"' }, /bridge: .* is not a bridge name/],
      [{ bridge: 'skvbr' }, /bridge: .* is not a bridge name/],
      [{ mtu: 100 }, /mtu: 100 is not an MTU/],
    ];
    for (const [opts, message] of bad) {
      assert.throws(
        () => network(opts),
        (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message),
      );
    }
    assert.deepEqual(exec.calls, []);
  });

  test('prepareNode: unreachable routes first, then the table, the bridge, the service CIDR rule, its sysctls; all in the host namespace', async () => {
    await network().prepareNode();
    const calls = exec.take();
    assert.ok(calls.every((c) => c.netns === HOST));
    const acts = calls.filter((c) => c.cmd !== 'ipJson' && c.cmd !== 'readSysctl');
    assert.equal(acts[0]!.text, 'route add unreachable 10.244.0.0/16\nroute add unreachable 10.96.0.0/12\n');
    assert.equal(acts[1]!.cmd, 'nft');
    assert.match(acts[1]!.text, /^add table inet skiff\ndelete table inet skiff\ntable inet skiff \{/);
    assert.equal(
      acts[2]!.text,
      'link add skiff0 type bridge\nlink set dev skiff0 address 0a:58:0a:f4:03:01 mtu 1500\naddr replace 10.244.3.1/24 dev skiff0\nlink set dev skiff0 up\n',
    );
    assert.equal(
      acts[3]!.text,
      'rule add priority 31000 to 10.96.0.0/12 iif lo lookup 31000\n' +
        'route replace 10.96.0.0/12 dev skiff0 src 10.244.3.1 table 31000\n',
      "the host's own connections to ClusterIPs go onto the bridge",
    );
    assert.deepEqual(JSON.parse(acts[4]!.text), {
      'net.ipv4.conf.skiff0.route_localnet': '1',
      'net.ipv4.ip_forward': '1',
    });
    assert.equal(acts.length, 5);
    assert.deepEqual(JSON.parse(readFileSync(join(stateDir, 'node.json'), 'utf8')), {
      restore: { 'net.ipv4.ip_forward': '0' },
    });
  });

  test('in the process’s own namespace forwarding is left alone unless asked for', async () => {
    await network({ hostNetns: undefined }).prepareNode();
    const calls = exec.take();
    assert.ok(calls.every((c) => c.netns === undefined));
    assert.ok(!calls.some((c) => c.text.includes('ip_forward')));
  });

  test('setUp: a lease saved, the pair made and attached in one batch, eth0 configured in the sandbox; tearDown undoes it', async () => {
    const net = network();
    const status = await net.setUp(target(1));
    assert.deepEqual(status, { ips: ['10.244.3.2'] });
    const calls = exec.take();
    assert.deepEqual(
      calls.map((c) => [c.cmd, c.netns]),
      [
        ['ip', HOST],
        ['ip', '/proc/1001/ns/net'],
      ],
      'two commands, no table write without host ports',
    );
    assert.equal(
      calls[0]!.text,
      'link add skv000000000001 mtu 1500 type veth peer name eth0 mtu 1500 netns /proc/1001/ns/net\n' +
        'link set dev skv000000000001 master skiff0\nlink set dev skv000000000001 type bridge_slave hairpin on\nlink set dev skv000000000001 up\n',
    );
    assert.equal(
      calls[1]!.text,
      'addr replace 10.244.3.2/24 dev eth0\nlink set dev eth0 up\nroute replace default via 10.244.3.1 dev eth0\n',
    );
    assert.deepEqual(
      net.leases().map((l) => [l.name, l.ip, l.veth]),
      [['pod-1', '10.244.3.2', 'skv000000000001']],
    );

    await net.tearDown(target(1));
    assert.deepEqual(
      exec.take().map((c) => [c.cmd, c.netns, c.text]),
      [['ip', HOST, 'link del dev skv000000000001\n']],
    );
    assert.deepEqual(net.leases(), []);
  });

  test('leases outlive the process: a new PodNetwork on the state dir keeps them and gives no address twice', async () => {
    await network().setUp(target(1));
    await network().setUp(target(2));
    const again = network();
    assert.deepEqual(
      again.leases().map((l) => l.ip),
      ['10.244.3.2', '10.244.3.3'],
    );
    assert.deepEqual(
      (await again.setUp(target(1))).ips,
      ['10.244.3.2'],
      'a set-up called again keeps the address',
    );
    assert.deepEqual((await again.setUp(target(3))).ips, ['10.244.3.4']);
  });

  test('host ports: written to the table after the veth, refused while another sandbox holds them', async () => {
    const net = network();
    const web = [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' as const, hostIP: '0.0.0.0' }];
    await net.setUp(target(1, { portMappings: web }));
    const nft = exec.take().filter((c) => c.cmd === 'nft');
    assert.deepEqual(
      nft.map((c) => c.text),
      [
        'flush map inet skiff hostports\nflush map inet skiff hostports_ip\nadd element inet skiff hostports { tcp . 8080 : 10.244.3.2 . 80 }\n',
      ],
    );
    await assert.rejects(
      net.setUp(target(2, { portMappings: [{ hostPort: 8080, containerPort: 90, protocol: 'TCP' }] })),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        err.message === `host port 8080/TCP is held by sandbox pod-1 (${sandboxId(1).slice(0, 12)})`,
    );
    assert.deepEqual(exec.take(), [], 'a refused set-up touches nothing');
    assert.equal(net.leases().length, 1);
    await net.tearDown(target(1, { netnsPath: undefined }));
    assert.deepEqual(
      exec.take().map((c) => c.cmd),
      ['ip', 'nft'],
    );
    await net.setUp(target(2, { portMappings: [{ hostPort: 8080, containerPort: 90, protocol: 'TCP' }] }));
  });

  test('tearDown of a sandbox never set up, or whose veth is gone, succeeds', async () => {
    const net = network();
    exec.failIp = (_, script) => script.startsWith('link del');
    await net.tearDown(target(5, { netnsPath: undefined }));
    assert.deepEqual(
      exec.take().map((c) => `${c.cmd} ${c.text.trim()}`),
      ['ip link del dev skv000000000005', 'ipJson link show dev skv000000000005'],
    );
    // a veth that is there but cannot be deleted is an error, and the lease stays
    exec.failIp = () => false;
    await net.setUp(target(6));
    exec.failIp = (_, script) => script.startsWith('link del');
    exec.links.set(`${HOST} skv000000000006`, { ifindex: 9, ifname: 'skv000000000006' });
    await assert.rejects(net.tearDown(target(6)), NetCommandError);
    assert.equal(net.leases().length, 1);
  });

  test('setUp again: a whole pair is kept, a broken one made again', async () => {
    const net = network();
    await net.setUp(target(1));
    exec.take();
    exec.failIp = (netns, script) => netns === HOST && script.startsWith('link add');
    exec.links.set(`${HOST} skv000000000001`, { ifindex: 7, ifname: 'skv000000000001', link_index: 2 });
    exec.links.set('/proc/1001/ns/net eth0', { ifindex: 2, ifname: 'eth0', link_index: 7 });
    await net.setUp(target(1));
    assert.deepEqual(
      exec.take().map((c) => `${c.cmd} ${c.netns} ${c.text.split('\n')[0]}`),
      [
        `ip ${HOST} link add skv000000000001 mtu 1500 type veth peer name eth0 mtu 1500 netns /proc/1001/ns/net`,
        `ipJson ${HOST} link show dev skv000000000001`,
        'ipJson /proc/1001/ns/net link show dev eth0',
        `ip ${HOST} link set dev skv000000000001 master skiff0`,
        'ip /proc/1001/ns/net addr replace 10.244.3.2/24 dev eth0',
      ],
    );
    // the sandbox's eth0 is not our veth's peer: both removed, the pair made again
    exec.links.set('/proc/1001/ns/net eth0', { ifindex: 2, ifname: 'eth0', link_index: 99 });
    let creates = 0;
    exec.failIp = (netns, script) => netns === HOST && script.startsWith('link add') && creates++ === 0;
    await net.setUp(target(1));
    assert.deepEqual(
      exec
        .take()
        .filter((c) => c.cmd === 'ip')
        .map((c) => `${c.netns} ${c.text.split('\n')[0]}`),
      [
        `${HOST} link add skv000000000001 mtu 1500 type veth peer name eth0 mtu 1500 netns /proc/1001/ns/net`,
        `${HOST} link del dev skv000000000001`,
        '/proc/1001/ns/net link del dev eth0',
        `${HOST} link add skv000000000001 mtu 1500 type veth peer name eth0 mtu 1500 netns /proc/1001/ns/net`,
        `${HOST} link set dev skv000000000001 master skiff0`,
        '/proc/1001/ns/net addr replace 10.244.3.2/24 dev eth0',
      ],
    );
  });

  test('a full pod CIDR fails the set-up with an error naming it, before any command', async () => {
    const net = network({ podCIDR: '10.244.3.0/30' });
    await net.setUp(target(1));
    exec.take();
    await assert.rejects(
      net.setUp(target(2)),
      (err: unknown) =>
        err instanceof ResourceExhaustedError &&
        /the pod CIDR 10\.244\.3\.0\/30 has no address left/.test(err.message),
    );
    assert.deepEqual(exec.take(), []);
  });

  test('releaseExcept tears down the leases of sandboxes gone and rewrites the host ports once', async () => {
    const net = network();
    await net.setUp(target(1, { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'TCP' }] }));
    await net.setUp(target(2, { portMappings: [{ hostPort: 81, containerPort: 80, protocol: 'UDP' }] }));
    await net.setUp(target(3));
    exec.take();
    const released = await net.releaseExcept([sandboxId(2)]);
    assert.deepEqual(
      released.map((l) => l.name),
      ['pod-1', 'pod-3'],
    );
    assert.deepEqual(
      exec.take().map((c) => `${c.cmd} ${c.text.trim().split('\n').pop()}`),
      [
        'ip link del dev skv000000000001',
        'ip link del dev skv000000000003',
        'nft add element inet skiff hostports { udp . 81 : 10.244.3.3 . 80 }',
      ],
    );
    assert.deepEqual(
      network()
        .leases()
        .map((l) => l.name),
      ['pod-2'],
    );
    assert.deepEqual(await net.releaseExcept([sandboxId(2)]), []);
  });

  test('vxlan: prepareNode makes the VXLAN device on the uplink before the bridge, whose MTU fits the tunnel; routePeers writes only what differs', async () => {
    exec.shown.set('-4 addr show', [
      {
        ifindex: 2,
        ifname: 'eth0',
        mtu: 1400,
        addr_info: [{ family: 'inet', local: '172.31.0.2', prefixlen: 24 }],
      },
    ]);
    const net = network({ backend: 'vxlan', nodeIP: '172.31.0.2' });
    await net.prepareNode();
    const acts = exec.take().filter((c) => c.cmd === 'ip');
    assert.equal(
      acts[1]!.text,
      'link add skiff.vxlan type vxlan id 1 local 172.31.0.2 dstport 8472 nolearning\n' +
        'link set dev skiff.vxlan address 0a:58:0a:f4:03:00 mtu 1350\n' +
        'addr replace 10.244.3.0/32 dev skiff.vxlan\nlink set dev skiff.vxlan up\n',
    );
    assert.match(acts[2]!.text, /^link add skiff0 type bridge\nlink set dev skiff0 address \S+ mtu 1350\n/);
    assert.equal(net.mtu, 1350);

    const peers = [{ node: 'n2', podCIDR: '10.244.5.0/24', address: '172.31.9.3' }];
    assert.deepEqual(await net.routePeers(peers), { unrouted: [], changes: 3 });
    assert.deepEqual(
      exec
        .take()
        .filter((c) => c.cmd === 'ip' || c.cmd === 'bridge')
        .map((c) => `${c.cmd} ${c.text}`),
      [
        'bridge fdb replace 0a:58:0a:f4:05:00 dev skiff.vxlan dst 172.31.9.3 self permanent\n',
        'ip neigh replace 10.244.5.0 lladdr 0a:58:0a:f4:05:00 dev skiff.vxlan nud permanent\n' +
          'route replace 10.244.5.0/24 via 10.244.5.0 dev skiff.vxlan onlink\n',
      ],
    );
    exec.shown.set('-4 route show table main', [
      { dst: '10.244.5.0/24', gateway: '10.244.5.0', dev: 'skiff.vxlan', flags: ['onlink'] },
    ]);
    exec.shown.set('-4 neigh show dev skiff.vxlan', [
      { dst: '10.244.5.0', lladdr: '0a:58:0a:f4:05:00', state: ['PERMANENT'] },
    ]);
    exec.shown.set('fdb show dev skiff.vxlan', [{ mac: '0a:58:0a:f4:05:00', dst: '172.31.9.3' }]);
    assert.deepEqual(await net.routePeers(peers), { unrouted: [], changes: 0 });
    assert.deepEqual(
      exec.take().filter((c) => c.cmd === 'ip' || c.cmd === 'bridge'),
      [],
      'nothing written when the host is as wanted',
    );
  });

  test('vxlan needs the node address, which must be on an interface of the host', async () => {
    assert.throws(() => network({ backend: 'vxlan' }), /nodeIP: the vxlan backend needs the node's address/);
    await assert.rejects(
      network({ backend: 'vxlan', nodeIP: '172.31.0.2' }).prepareNode(),
      /no interface of the host holds the node's address 172\.31\.0\.2; check --node-ip/,
    );
  });

  test('removeNode: veths, bridge and table go before the unreachable routes; forwarding is put back; leases cleared', async () => {
    const net = network();
    await net.prepareNode();
    await net.setUp(target(1));
    exec.take();
    exec.links.set(`${HOST} skiff0`, { ifindex: 3, ifname: 'skiff0' });
    exec.ipJson = async <T>(netns: string | undefined, args: string[]) => {
      exec.calls.push({ cmd: 'ipJson', netns, text: args.join(' ') });
      if (args.join(' ') === 'link show type veth')
        return [{ ifindex: 7, ifname: 'skv000000000001', master: 'skiff0' }] as T;
      if (args.join(' ') === 'route show table main')
        return [
          { dst: '10.244.0.0/16', type: 'unreachable' },
          { dst: '10.96.0.0/12', type: 'unreachable' },
        ] as T;
      if (args.join(' ') === '-4 route show table main')
        return [
          { dst: '10.244.0.0/16', type: 'unreachable' },
          { dst: '10.244.5.0/24', gateway: '172.31.0.5', dev: 'eth0' },
        ] as T;
      if (args.join(' ') === 'link show dev skiff0') return [{ ifindex: 3, ifname: 'skiff0' }] as T;
      if (args.join(' ') === '-d link show dev skiff.vxlan')
        return [{ ifindex: 4, ifname: 'skiff.vxlan', linkinfo: { info_kind: 'vxlan' } }] as T;
      return undefined;
    };
    await net.removeNode();
    assert.deepEqual(
      exec
        .take()
        .filter((c) => c.cmd !== 'ipJson')
        .map((c) => `${c.cmd} ${c.text.trim().replace(/\n/g, '; ')}`),
      [
        'ip link del dev skv000000000001',
        'ip link del dev skiff0',
        'ip link del dev skiff.vxlan',
        'ip route del 10.244.5.0/24 via 172.31.0.5 dev eth0',
        'nft add table inet skiff; delete table inet skiff',
        'writeSysctls {"net.ipv4.ip_forward":"0"}',
        'ip route del unreachable 10.244.0.0/16; route del unreachable 10.96.0.0/12',
      ],
    );
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(network().leases(), []);
  });
});
