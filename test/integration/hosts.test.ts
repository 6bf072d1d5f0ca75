/**
 * The multi-host harness itself (test/harness/hosts.ts), without a cluster: hosts reach each
 * other and the machine over the switch and nothing else, the machine's namespace gains one veth
 * routed for the lab's /24 only, and disposing (also of a lab whose test process was killed) leaves no
 * namespace, veth, process, cgroup, mount or directory behind.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHosts, leftovers, sweepAbandonedLabs, type Hosts } from '../harness/hosts.js';

const machineLinks = () =>
  execFileSync('ip', ['-br', 'link'])
    .toString()
    .split('\n')
    .map((l) => l.split(/\s+/)[0]!.replace(/@.*/, ''))
    .filter(Boolean)
    .sort();
const machineRoutes = () => execFileSync('ip', ['-4', 'route', 'show', 'table', 'all']).toString();

/** The pids controller's hierarchy (v1), or the unified one (v2). */
function pidsHierarchy(): string {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => ({ point: line.split(' ')[4] ?? '', fs: line.split(' - ')[1]?.split(' ') ?? [] }));
  const v1 = mounts.find((m) => m.fs[0] === 'cgroup' && m.fs[2]?.split(',').includes('pids'));
  const v2 = mounts.find((m) => m.fs[0] === 'cgroup2');
  return (v1 ?? v2)!.point;
}

describe('hosts: network namespaces on one switch', { timeout: 120_000 }, () => {
  let lab: Hosts | undefined;
  after(async () => {
    await lab?.dispose();
  });

  test("hosts reach each other and the machine, nothing else; the machine gains one veth and routes for the lab's /24 only", async () => {
    const linksBefore = machineLinks();
    const routesBefore = machineRoutes();
    const forwardBefore = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
    lab = await createHosts(['a', 'b'], { prefix: 'hosts-test' });
    const [a, b] = lab.hosts as [NonNullable<Hosts['hosts'][0]>, NonNullable<Hosts['hosts'][1]>];
    assert.match(lab.subnet, /^172\.31\.\d+\.0\/24$/);
    assert.notEqual(a.address, b.address);
    const ping = (from: typeof a, to: string) => from.run(['busybox', 'ping', '-c', '1', '-W', '2', to]);
    assert.equal((await ping(a, b.address)).code, 0, 'a reaches b');
    assert.equal((await ping(b, lab.machineAddress)).code, 0, 'b reaches the machine');
    const fromMachine = await new Promise<number | null>((resolve) =>
      spawn('busybox', ['ping', '-c', '1', '-W', '2', a.address]).on('close', resolve),
    );
    assert.equal(fromMachine, 0, 'the machine reaches a');
    for (const host of [a, b]) {
      const routes = (await host.run(['ip', '-4', 'route', 'show', 'table', 'all'])).stdout;
      assert.doesNotMatch(routes, /^default/m, `${host.name} has no default route`);
      const beyond = await host.run(['ip', 'route', 'get', '192.0.2.1']);
      assert.notEqual(beyond.code, 0, `${host.name} routes nothing beyond the switch`);
      assert.match(beyond.stderr, /unreachable/i);
      assert.equal((await host.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), '0');
      assert.deepEqual(
        (await host.run(['ip', '-br', 'link'])).stdout
          .split('\n')
          .map((l) => l.split(/[\s@]+/)[0])
          .filter(Boolean)
          .sort(),
        ['eth0', 'lo'],
      );
    }
    // the machine: one link of the lab's (other tests may add their own meanwhile), whose routes
    // are the lab's /24 only, and the same default route as before
    const ours = machineLinks().filter((l) => !linksBefore.includes(l) && l.includes(lab!.id));
    assert.deepEqual(ours, [`skl${lab.id}`]);
    const viaLab = execFileSync('ip', ['-4', 'route', 'show', 'table', 'all', 'dev', `skl${lab.id}`])
      .toString()
      .split('\n')
      .filter(Boolean);
    const third = lab.subnet.split('.')[2]!;
    assert.ok(viaLab.length > 0);
    for (const line of viaLab) assert.match(line, new RegExp(`172\\.31\\.${third}\\.`), line);
    const defaults = (text: string) => text.split('\n').filter((line) => /^default/.test(line));
    assert.deepEqual(defaults(machineRoutes()), defaults(routesBefore));
    assert.equal(
      readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'),
      forwardBefore,
      'forwarding untouched',
    );
  });

  test('dispose removes processes, cgroups, mounts, namespaces, the veth and the directory', async () => {
    const hosts = lab!;
    const a = hosts.host('a');
    // what an agent leaves: a process on the host, one in the host's cgroup, a mount under its root
    const sleeper = a.spawn('sleeper', ['sleep', '600']);
    const cgroup = join(pidsHierarchy(), a.cgroupParent, 'c1');
    mkdirSync(cgroup, { recursive: true });
    const inCgroup = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    inCgroup.unref();
    writeFileSync(join(cgroup, 'cgroup.procs'), String(inCgroup.pid));
    const mountPoint = join(a.root, 'tmpfs');
    mkdirSync(mountPoint, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'none', mountPoint]);
    assert.ok(leftovers(hosts).length > 0);
    await hosts.dispose();
    assert.deepEqual(leftovers(hosts), []);
    assert.equal(sleeper.running, false);
    assert.throws(() => process.kill(inCgroup.pid!, 0), /ESRCH/);
  });

  test('a damaged lab record is not acted on: it could name what is not the lab’s', async () => {
    const path = '/run/skiff-labs/abcdef.json';
    writeFileSync(
      path,
      JSON.stringify({
        id: 'abcdef',
        owner: { pid: 999_999_999, startTime: '1' },
        dir: '/tmp',
        subnet: '172.31.1.0/24',
        reservation: '/run/skiff-labs/subnet-172.31.1',
        machineVeth: 'sklabcdef',
        namespaces: ['skl-abcdef-switch'],
        cgroupRoot: '',
        groups: [],
      }),
    );
    try {
      const problems = await sweepAbandonedLabs();
      assert.ok(
        problems.some((p) =>
          /record abcdef: not acted on, its cgroup root "" is not one a lab makes/.test(p),
        ),
        problems.join('\n'),
      );
      assert.ok(existsSync('/tmp'));
    } finally {
      rmSync(path, { force: true });
    }
  });

  test('a lab whose test process was killed is swept away', async () => {
    const hostsModule = join(fileURLToPath(new URL('.', import.meta.url)), '../harness/hosts.js');
    const owner = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { createHosts } = await import(${JSON.stringify(hostsModule)});
         const lab = await createHosts(['x'], { prefix: 'hosts-test-orphan' });
         lab.host('x').spawn('sleeper', ['sleep', '600']);
         console.log(JSON.stringify({ id: lab.id, dir: lab.dir }));
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const orphan = await new Promise<{ id: string; dir: string }>((resolve, reject) => {
      let out = '';
      owner.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(JSON.parse(out) as { id: string; dir: string });
      });
      owner.on('exit', (code) => reject(new Error(`the owner exited (${code}) before its lab was made`)));
    });
    owner.kill('SIGKILL');
    await new Promise((resolve) => owner.once('exit', resolve));
    assert.ok(leftovers(orphan).length > 0, 'the killed owner left its lab');
    assert.deepEqual(await sweepAbandonedLabs(), []);
    assert.deepEqual(leftovers(orphan), []);
  });
});

describe('hosts: two subnets joined by a router', { timeout: 120_000 }, () => {
  let lab: Hosts | undefined;
  after(async () => {
    await lab?.dispose();
  });

  test('hosts on the two subnets reach each other through the router, and nothing else; the router forwards, no host does; S2 never reaches the machine', async () => {
    const routesBefore = machineRoutes();
    lab = await createHosts(['a', 'b'], { prefix: 'hosts-test-routed', secondSubnet: ['b'] });
    const [a, b] = [lab.host('a'), lab.host('b')];
    assert.equal(lab.subnets.length, 2);
    assert.notEqual(lab.subnets[0], lab.subnets[1]);
    assert.deepEqual([a.subnet, b.subnet], lab.subnets);
    const ping = (from: typeof a, to: string) => from.run(['busybox', 'ping', '-c', '1', '-W', '2', to]);
    assert.equal((await ping(a, b.address)).code, 0, 'a reaches b across the router');
    assert.equal((await ping(b, a.address)).code, 0, 'b reaches a');
    assert.notEqual((await ping(b, lab.machineAddress)).code, 0, 'b never reaches the machine');
    for (const host of [a, b]) {
      const routes = (await host.run(['ip', '-4', 'route', 'show', 'table', 'all'])).stdout;
      assert.doesNotMatch(routes, /^default/m, `${host.name} has no default route`);
      const beyond = await host.run(['ip', 'route', 'get', '192.0.2.1']);
      assert.notEqual(beyond.code, 0, `${host.name} routes nothing beyond the two subnets`);
      assert.equal((await host.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), '0');
    }
    const router = `/run/netns/skl-${lab.id}-router`;
    const inRouter = (argv: string[]) => execFileSync('nsenter', [`--net=${router}`, ...argv]).toString();
    assert.equal(inRouter(['cat', '/proc/sys/net/ipv4/ip_forward']).trim(), '1');
    const routerRoutes = inRouter(['ip', '-4', 'route', 'show', 'table', 'all']);
    assert.doesNotMatch(routerRoutes, /^default/m);
    assert.match(routerRoutes, new RegExp(`^blackhole ${lab.machineAddress.replaceAll('.', '\\.')}`, 'm'));
    // the machine: nothing of the second subnet
    assert.equal(machineRoutes().includes(lab.subnets[1]!.replace(/\.0\/24$/, '.')), false);
    assert.deepEqual(
      machineRoutes()
        .split('\n')
        .filter((l) => /^default/.test(l)),
      routesBefore.split('\n').filter((l) => /^default/.test(l)),
    );
  });

  test('dispose removes both switches, the router and both /24 reservations', async () => {
    const hosts = lab!;
    await hosts.dispose();
    assert.deepEqual(leftovers(hosts), []);
    for (const subnet of hosts.subnets)
      assert.equal(existsSync(`/run/skiff-labs/subnet-${subnet.replace(/\.0\/24$/, '')}`), false, subnet);
  });
});
