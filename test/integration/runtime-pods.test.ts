/**
 * The pod-facing runtime (node-agent/runtime/pod-runtime.ts) on the real machine: sandboxes whose
 * namespaces real containers join, plugged into the network by a hook that makes a real veth pair;
 * labels; the event stream of real exits (code, signal, OOM kill, a dead shim, a container another
 * process started); and images pulled when missing. Runs as root; every container, sandbox,
 * mount, cgroup and veth is removed even when a test fails. The veths' host ends go to a network
 * namespace the test makes (its "host"), never to the machine's own.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import type {
  ContainerEvent,
  ContainerWatch,
  ImagePuller,
  PullTarget,
  SandboxNetwork,
  SandboxNetworkTarget,
} from '../../node-agent/runtime/pod-runtime.js';
import { openImageRuntime, type ImageRuntime, type RunOptions } from '../../node-agent/runtime/runtime.js';
import { busyboxImage, type FixtureImage } from '../fixtures/images.js';
import {
  logText,
  makeBusyboxRootfs,
  mountsUnder,
  requireRootAndBusybox,
  withScratchRuntime,
} from './runtime-containers-fixture.js';

const execFileAsync = promisify(execFile);

let work: string;
let rootfs: string;
let root: string;
let rt: ImageRuntime;

// ------------------------------------------------------------------ the network hook

interface HookCall {
  op: 'setUp' | 'tearDown';
  id: string;
  netnsPath?: string;
  /** The namespace the path named when the hook ran (readlink), if it still existed. */
  netns?: string;
}
const hookCalls: HookCall[] = [];
/** What setUp does after plugging the veth in; a test replaces it. */
let afterPlug: (target: SandboxNetworkTarget) => Promise<void> = async () => {};

/** Where the hook puts the veths' host ends: a namespace of this test's, not the machine's. */
const HOST_NETNS = `skiff-pods-test-${process.pid}`;
before(() => execFileSync('ip', ['netns', 'add', HOST_NETNS]));
after(() => execFileSync('ip', ['netns', 'del', HOST_NETNS]));

/** The host end of a sandbox's veth pair (at most 15 characters). */
const hostVeth = (id: string) => `skt${id.slice(0, 8)}`;

/** A veth pair as an agent will plug one: eth0 10.99.0.2/24 in the sandbox, the peer on the host. */
const network: SandboxNetwork = {
  async setUp(target) {
    hookCalls.push({ op: 'setUp', id: target.id, netnsPath: target.netnsPath, netns: await netnsOf(target) });
    const inSandbox = (...args: string[]) =>
      execFileAsync('nsenter', [`--net=${target.netnsPath}`, 'ip', ...args]);
    // made inside, the peer sent to the test's host namespace
    await inSandbox(
      'link',
      'add',
      'eth0',
      'type',
      'veth',
      'peer',
      'name',
      hostVeth(target.id),
      'netns',
      HOST_NETNS,
    );
    await inSandbox('addr', 'add', '10.99.0.2/24', 'dev', 'eth0');
    await inSandbox('link', 'set', 'eth0', 'up');
    await afterPlug(target);
    return { ips: ['10.99.0.2'] };
  },
  async tearDown(target) {
    hookCalls.push({
      op: 'tearDown',
      id: target.id,
      netnsPath: target.netnsPath,
      netns: await netnsOf(target),
    });
    // gone with the namespace when the sandbox's process died first, or never made
    await execFileAsync('ip', ['-n', HOST_NETNS, 'link', 'del', hostVeth(target.id)]).catch(() => {});
  },
};

async function netnsOf(target: SandboxNetworkTarget): Promise<string | undefined> {
  return target.netnsPath ? readlink(target.netnsPath).catch(() => undefined) : undefined;
}

function hostHasVeth(id: string): boolean {
  return execFileSync('ip', ['-n', HOST_NETNS, '-o', 'link', 'show'], { encoding: 'utf8' }).includes(
    `${hostVeth(id)}@`,
  );
}

// ------------------------------------------------------------------ the puller

const PULLABLE = new Map<string, FixtureImage>([['pulled:1', busyboxImage('pulled:1')]]);
const pulled: string[] = [];

/** Writes a fixture image's blobs into the runtime's store as a registry client will (no registry). */
const puller: ImagePuller = {
  async pull(ref: string, into: PullTarget) {
    pulled.push(ref);
    const image = PULLABLE.get(ref);
    if (!image) throw new NotFoundError(`pull ${ref}: the fixture has no such image`);
    const blobs: [string, Buffer][] = [
      [image.manifestDigest, image.manifest],
      [image.configDigest, image.config],
      ...image.layers.map((l): [string, Buffer] => [l.digest, l.blob]),
    ];
    for (const [digest, blob] of blobs) {
      await into.hold(digest as `sha256:${string}`);
      await into.content.ingest([blob], { digest: digest as `sha256:${string}`, size: blob.length });
    }
    await into.tag(ref, {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.manifestDigest,
      size: image.manifest.length,
    });
  },
};

withScratchRuntime('skiff-pods-test-', async (dir) => {
  requireRootAndBusybox();
  work = dir;
  rootfs = await makeBusyboxRootfs(join(work, 'rootfs'));
  root = join(work, 'root');
  rt = await openImageRuntime(root, {
    snapshotter: 'overlay',
    sandboxNetwork: network,
    puller,
    // the resync is what notices a dead shim: kept short so the test waits little
    events: { resyncMs: 200 },
  });
  return rt.runtime.containers;
});

// ------------------------------------------------------------------ helpers

const sh = (script: string) => ['sh', '-c', script];

/** A container on the busybox directory, created (not started). */
function create(command: string[], extra: Partial<RunOptions> = {}) {
  return rt.runtime.create({ rootfsDir: rootfs, command, ...extra });
}

/** Starts a created container and returns its stdout lines once it exited. */
async function outputOf(id: string): Promise<string[]> {
  await rt.runtime.containers.start(id);
  const exit = await rt.runtime.containers.wait(id, { timeoutMs: 30_000 });
  const log = await logText(rt.runtime.containers, id);
  assert.equal(exit.exitCode, 0, log);
  return log
    .split('\n')
    .filter((l) => l.startsWith('stdout '))
    .map((l) => l.slice('stdout '.length));
}

async function nsOf(pid: number, type: string): Promise<string> {
  return readlink(`/proc/${pid}/ns/${type}`);
}

/** Events of a watch until `done` says the collection is complete, or a failure naming what was awaited. */
async function collect(
  watch: ContainerWatch,
  done: (events: ContainerEvent[]) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<ContainerEvent[]> {
  const events: ContainerEvent[] = [];
  const iterator = watch[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  while (!done(events)) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`${what}: not seen within ${timeoutMs} ms; got ${JSON.stringify(events.map(brief))}`),
          ),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      const next = await Promise.race([iterator.next(), timeout]);
      assert.ok(!next.done, `the watch ended while waiting for ${what}`);
      events.push(next.value);
    } finally {
      clearTimeout(timer);
    }
  }
  return events;
}

const brief = (e: ContainerEvent) => `${e.type} ${e.container.name}`;
const exitOf = (events: ContainerEvent[], id: string) =>
  events.find((e) => e.type === 'exited' && e.container.id === id)?.exit;

// ------------------------------------------------------------------ sandboxes

describe('sandboxes', () => {
  test('the network hook runs in the sandbox’s namespace before its containers, which share its network, IPC and UTS', async () => {
    const sandbox = await rt.runtime.containers.createSandbox({
      name: 'pod-a',
      labels: { pod: 'a' },
      hostname: 'pod-a',
    });
    assert.equal(sandbox.state, 'ready');
    assert.equal(sandbox.netnsPath, `/proc/${sandbox.pid}/ns/net`);
    assert.deepEqual(sandbox.ips, ['10.99.0.2'], 'what the hook returned');
    assert.equal(sandbox.hostNetwork, false);
    assert.deepEqual((await rt.runtime.containers.inspectSandbox(sandbox.id)).ips, ['10.99.0.2']);
    const setUp = hookCalls.find((c) => c.op === 'setUp' && c.id === sandbox.id);
    assert.equal(setUp?.netnsPath, sandbox.netnsPath);
    assert.equal(setUp?.netns, await nsOf(sandbox.pid!, 'net'), 'the path named the sandbox’s namespace');
    assert.notEqual(setUp?.netns, await nsOf(process.pid, 'net'));
    assert.ok(hostHasVeth(sandbox.id), 'the hook’s veth has its host end on the host');

    const script = sh(
      'for t in net ipc uts; do readlink /proc/self/ns/$t; done; hostname; cat /etc/hostname; echo "HOSTNAME=$HOSTNAME"; ip -4 addr show eth0 | grep -o "inet [0-9./]*"; grep pod-a /etc/hosts',
    );
    const first = await create(script, { sandbox: sandbox.id, labels: { pod: 'a' } });
    const second = await create(script, { sandbox: sandbox.id });
    assert.equal(first.config.sandbox, sandbox.id);
    assert.deepEqual(first.config.network, { mode: 'container', container: sandbox.id });
    const expected = [
      await nsOf(sandbox.pid!, 'net'),
      await nsOf(sandbox.pid!, 'ipc'),
      await nsOf(sandbox.pid!, 'uts'),
      'pod-a',
      'pod-a',
      'HOSTNAME=pod-a',
      // plugged in before the container started: it finds the address at once
      'inet 10.99.0.2/24',
      // the hook's address names the pod in its /etc/hosts
      '10.99.0.2\tpod-a',
    ];
    assert.deepEqual(await outputOf(first.id), expected);
    assert.deepEqual(await outputOf(second.id), expected);
    assert.notEqual(expected[1], await nsOf(process.pid, 'ipc'));

    const listed = await rt.runtime.containers.listSandboxes({ labels: { pod: 'a' } });
    assert.deepEqual(
      listed.map((s) => [s.id, s.state]),
      [[sandbox.id, 'ready']],
    );
    assert.deepEqual(
      (await rt.runtime.containers.list({ all: true, sandbox: sandbox.id })).map((c) => c.id).sort(),
      [first.id, second.id].sort(),
    );
    await rt.runtime.containers.removeSandbox(sandbox.id);
  });

  test('no container of a sandbox starts before its network hook returned', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inHook!: () => void;
    const hookEntered = new Promise<void>((resolve) => (inHook = resolve));
    afterPlug = async () => {
      inHook();
      await held;
    };
    try {
      const creating = rt.runtime.containers.createSandbox({ name: 'pod-slow', labels: { pod: 'slow' } });
      await hookEntered;
      const [pending] = await rt.runtime.containers.listSandboxes({ labels: { pod: 'slow' } });
      assert.equal(pending?.state, 'notready', 'listed, running, but not ready while its hook runs');
      const early = await create(['true'], { sandbox: pending!.id });
      await assert.rejects(
        rt.runtime.containers.start(early.id),
        (err: unknown) =>
          err instanceof FailedPreconditionError &&
          new RegExp(
            `start container ${early.name}: its sandbox ${pending!.id.slice(0, 12)} is not ready`,
          ).test(err.message),
      );
      release();
      const sandbox = await creating;
      assert.equal(sandbox.state, 'ready');
      const later = await create(['true'], { sandbox: sandbox.id });
      assert.deepEqual(await outputOf(later.id), []);
      await rt.runtime.containers.removeSandbox(sandbox.id);
    } finally {
      afterPlug = async () => {};
      release();
    }
  });

  test('a failed network set-up leaves no sandbox: torn down, process, record and cgroups removed', async () => {
    afterPlug = async () => {
      throw new Error('no addresses left in 10.99.0.0/24');
    };
    let failedId: string | undefined;
    try {
      await assert.rejects(
        rt.runtime.containers.createSandbox({ name: 'pod-fail', labels: { pod: 'fail' } }),
        (err: unknown) =>
          err instanceof FailedPreconditionError &&
          /create sandbox pod-fail: network set-up: no addresses left in 10\.99\.0\.0\/24/.test(err.message),
      );
    } finally {
      afterPlug = async () => {};
    }
    const setUp = hookCalls.filter((c) => c.op === 'setUp').pop()!;
    failedId = setUp.id;
    const tearDown = hookCalls.find((c) => c.op === 'tearDown' && c.id === failedId);
    assert.equal(tearDown?.netns, setUp.netns, 'torn down while its namespace lived');
    assert.equal(hostHasVeth(failedId), false, 'the veth is gone');
    assert.deepEqual(await rt.runtime.containers.listSandboxes({ labels: { pod: 'fail' } }), []);
    await assert.rejects(rt.runtime.containers.inspectSandbox('pod-fail'), NotFoundError);
    assert.equal(await rt.runtime.containers.cgroups.exists(failedId), false);
  });

  test('removing a sandbox removes its containers (killing running ones), then tears its network down, then its process', async () => {
    const sandbox = await rt.runtime.containers.createSandbox({ name: 'pod-rm', labels: { pod: 'rm' } });
    const running = await create(['sleep', '1000'], { sandbox: sandbox.id });
    await rt.runtime.containers.start(running.id);
    const idle = await create(['true'], { sandbox: sandbox.id });
    const netns = await nsOf(sandbox.pid!, 'net');
    const runningPid = (await rt.runtime.containers.inspect(running.id)).state.pid!;

    await rt.runtime.containers.removeSandbox('pod-rm');

    const tearDown = hookCalls.find((c) => c.op === 'tearDown' && c.id === sandbox.id);
    assert.equal(tearDown?.netns, netns, 'torn down while its namespace still lived');
    assert.equal(hostHasVeth(sandbox.id), false);
    for (const ref of [running.id, idle.id, sandbox.id]) {
      await assert.rejects(rt.runtime.containers.inspect(ref), NotFoundError);
    }
    for (const pid of [sandbox.pid!, runningPid]) {
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `process ${pid} is gone`);
    }
    for (const id of [sandbox.id, running.id])
      assert.equal(await rt.runtime.containers.cgroups.exists(id), false);
    assert.deepEqual(mountsUnder(work), []);
  });

  test('a sandbox whose process died is notready; its containers do not start; rm of its process removes the sandbox', async () => {
    const sandbox = await rt.runtime.containers.createSandbox({ name: 'pod-dead' });
    const member = await create(['true'], { sandbox: sandbox.id });
    process.kill(sandbox.pid!, 'SIGKILL');
    await rt.runtime.containers.wait(sandbox.id, { timeoutMs: 30_000 });
    const dead = await rt.runtime.containers.inspectSandbox(sandbox.id);
    assert.equal(dead.state, 'notready');
    assert.equal(dead.netnsPath, undefined);
    await assert.rejects(
      rt.runtime.containers.start(member.id),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /whose namespaces it joins is not running/.test(err.message),
    );
    // the CLI's rm of a sandbox's record is the sandbox's removal: members and network too
    await rt.runtime.containers.remove(sandbox.id);
    await assert.rejects(rt.runtime.containers.inspect(member.id), NotFoundError);
    const tearDown = hookCalls.find((c) => c.op === 'tearDown' && c.id === sandbox.id);
    assert.ok(tearDown, 'torn down');
    assert.equal(tearDown.netnsPath, undefined, 'with no namespace to name');
  });

  test('a sandbox on the host network: no namespace of its own, no hook; the IPs given are its own', async () => {
    const calls = hookCalls.length;
    const ports = [{ hostPort: 9376, containerPort: 9376, protocol: 'TCP' as const }];
    await assert.rejects(
      rt.runtime.containers.createSandbox({
        name: 'pod-hostnet-bad',
        hostNetwork: { ips: ['192.0.2.10'] },
        portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'TCP' }],
      }),
      (err: unknown) => err instanceof InvalidArgumentError && err.field === 'portMappings[0].hostPort',
    );
    await assert.rejects(
      rt.runtime.containers.createSandbox({ name: 'pod-hostnet-bad', hostNetwork: { ips: [] } }),
      (err: unknown) => err instanceof InvalidArgumentError && err.field === 'hostNetwork.ips',
    );
    const sandbox = await rt.runtime.containers.createSandbox({
      name: 'pod-hostnet',
      hostname: 'node-a',
      hostNetwork: { ips: ['192.0.2.10'] },
      portMappings: ports,
    });
    assert.equal(sandbox.state, 'ready');
    assert.equal(sandbox.hostNetwork, true);
    assert.deepEqual(sandbox.ips, ['192.0.2.10']);
    assert.deepEqual(sandbox.portMappings, ports);
    assert.equal(await nsOf(sandbox.pid!, 'net'), await nsOf(process.pid, 'net'), "the host's namespace");
    assert.notEqual(await nsOf(sandbox.pid!, 'uts'), await nsOf(process.pid, 'uts'), 'a hostname of its own');
    const member = await create(sh('readlink /proc/self/ns/net; hostname; grep node-a /etc/hosts'), {
      sandbox: sandbox.id,
    });
    assert.deepEqual(await outputOf(member.id), [
      await nsOf(process.pid, 'net'),
      'node-a',
      '192.0.2.10\tnode-a',
    ]);
    await rt.runtime.containers.removeSandbox(sandbox.id);
    assert.equal(hookCalls.length, calls, 'the hook was neither set up nor torn down');

    // a host that is itself a namespace: the sandbox and its containers are in that one
    const inHost = await rt.runtime.containers.createSandbox({
      name: 'pod-hostnet-ns',
      hostNetwork: { ips: ['192.0.2.11'], netnsPath: `/run/netns/${HOST_NETNS}` },
    });
    const hostNs = `net:[${statSync(`/run/netns/${HOST_NETNS}`).ino}]`;
    assert.equal(await nsOf(inHost.pid!, 'net'), hostNs);
    const inside = await create(sh('readlink /proc/self/ns/net'), { sandbox: inHost.id });
    assert.deepEqual(await outputOf(inside.id), [hostNs]);
    await rt.runtime.containers.removeSandbox(inHost.id);
  });

  test('a pod container takes no network of its own; only a sandbox can hold containers', async () => {
    const sandbox = await rt.runtime.containers.createSandbox({ name: 'pod-args' });
    try {
      await assert.rejects(
        create(['true'], { sandbox: sandbox.id, network: { mode: 'host' } }),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'network',
      );
      await assert.rejects(
        create(['true'], { sandbox: sandbox.id, hostname: 'mine' }),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'hostname',
      );
      const plain = await create(['true']);
      await assert.rejects(
        create(['true'], { sandbox: plain.id }),
        (err: unknown) =>
          err instanceof InvalidArgumentError && /is a container, not a sandbox/.test(err.message),
      );
      await assert.rejects(rt.runtime.containers.inspectSandbox(plain.id), InvalidArgumentError);
      await rt.runtime.containers.remove(plain.id);
    } finally {
      await rt.runtime.containers.removeSandbox(sandbox.id);
    }
  });
});

// ------------------------------------------------------------------ labels

describe('labels', () => {
  test('containers are listed by label, sandbox and kind; the CLI sets and filters labels', async () => {
    const sandbox = await rt.runtime.containers.createSandbox({ name: 'pod-l', labels: { app: 'web' } });
    const web = await create(['true'], { labels: { app: 'web', tier: 'front' } });
    const db = await create(['true'], { labels: { app: 'db' } });
    const inPod = await create(['true'], { labels: { app: 'web' }, sandbox: sandbox.id });
    try {
      const ids = async (opts: Parameters<typeof rt.runtime.containers.list>[0]) =>
        (await rt.runtime.containers.list({ all: true, ...opts })).map((c) => c.id).sort();
      assert.deepEqual(await ids({ labels: { app: 'web' } }), [web.id, inPod.id, sandbox.id].sort());
      assert.deepEqual(await ids({ labels: { app: 'web' }, kind: 'container' }), [web.id, inPod.id].sort());
      assert.deepEqual(await ids({ labels: { app: 'web', tier: 'front' } }), [web.id]);
      assert.deepEqual(await ids({ labels: { app: 'db' } }), [db.id]);
      assert.deepEqual(await ids({ labels: { app: 'nope' } }), []);
      assert.deepEqual(await ids({ sandbox: sandbox.id }), [inPod.id]);
      assert.deepEqual(await ids({ kind: 'sandbox', labels: { app: 'web' } }), [sandbox.id]);
      assert.deepEqual((await rt.runtime.containers.inspect(web.id)).config.labels, {
        app: 'web',
        tier: 'front',
      });

      const cli = (...args: string[]) =>
        execFileAsync(
          process.execPath,
          [...process.execArgv, ...skiffEntryArgv(), 'runtime', '--root', root, ...args],
          {
            encoding: 'utf8',
          },
        );
      const { stdout: started } = await cli(
        'run',
        '-d',
        '--rootfs',
        rootfs,
        '-l',
        'app=cli',
        '--label',
        'k',
        '--',
        'true',
      );
      const id = started.trim();
      assert.deepEqual((await rt.runtime.containers.inspect(id)).config.labels, { app: 'cli', k: '' });
      const { stdout: listed } = await cli('ps', '-a', '-q', '--filter', 'label=app=cli');
      assert.deepEqual(listed.trim().split('\n'), [id.slice(0, 12)]);
      await assert.rejects(
        cli('ps', '--filter', 'status=exited'),
        /--filter: "status=exited" is not supported/,
      );
      await rt.runtime.containers.remove(id, { force: true });
    } finally {
      for (const c of [web, db]) await rt.runtime.containers.remove(c.id, { force: true });
      await rt.runtime.containers.removeSandbox(sandbox.id);
    }
  });
});

// ------------------------------------------------------------------ events

describe('events', () => {
  test('a watch sees starts and exits with their code, signal and OOM kill, with no one waiting on them', async () => {
    const watch = await rt.runtime.containers.watchContainers({ labels: { test: 'exits' } });
    try {
      assert.deepEqual(watch.containers, []);
      const labels = { test: 'exits' };
      const three = await create(sh('exit 3'), { labels });
      const killed = await create(['sleep', '1000'], { labels });
      const oom = await create(['tail', '/dev/zero'], { labels, memoryBytes: 16 * 1024 * 1024 });
      for (const c of [three, killed, oom]) await rt.runtime.containers.start(c.id);
      await rt.runtime.containers.kill(killed.id, 'SIGKILL');
      const events = await collect(
        watch,
        (es) => es.filter((e) => e.type === 'exited').length === 3,
        'three exits',
      );
      for (const c of [three, killed, oom]) {
        const mine = events.filter((e) => e.container.id === c.id).map((e) => e.type);
        assert.deepEqual(mine, ['created', 'started', 'exited'], c.name);
      }
      assert.ok(events[0]!.seq > watch.revision, 'events come after the list');
      assert.ok(
        events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq),
        'in the order of their sequence numbers',
      );
      assert.deepEqual([exitOf(events, three.id)?.exitCode, exitOf(events, three.id)?.reason], [3, 'Error']);
      assert.deepEqual([exitOf(events, killed.id)?.exitCode, exitOf(events, killed.id)?.signal], [137, 9]);
      assert.deepEqual(
        [exitOf(events, oom.id)?.reason, exitOf(events, oom.id)?.oomKilled],
        ['OOMKilled', true],
      );
      for (const c of [three, killed, oom]) await rt.runtime.containers.remove(c.id);
      const removed = await collect(watch, (es) => es.length === 3, 'three removals');
      assert.deepEqual(
        removed.map((e) => e.type),
        ['removed', 'removed', 'removed'],
      );
    } finally {
      watch.close();
    }
  });

  test('a container another process starts is seen from its creation to the exit its shim records', async () => {
    const watch = await rt.runtime.containers.watchContainers({ labels: { test: 'other' } });
    try {
      await execFileAsync(process.execPath, [
        ...process.execArgv,
        ...skiffEntryArgv(),
        'runtime',
        '--root',
        root,
        'run',
        '-d',
        '--name',
        'from-cli',
        '--label',
        'test=other',
        '--rootfs',
        rootfs,
        '--',
        'sh',
        '-c',
        'sleep 0.3; exit 5',
      ]);
      const events = await collect(watch, (es) => es.some((e) => e.type === 'exited'), 'the exit');
      assert.deepEqual(events.map(brief), ['created from-cli', 'started from-cli', 'exited from-cli']);
      assert.equal(events[2]!.exit?.exitCode, 5);
      await rt.runtime.containers.remove('from-cli');
    } finally {
      watch.close();
    }
  });

  test('a shim that dies is an exit (ShimDied), found by the resync, and so is a sandbox’s death', async () => {
    const sandbox = await rt.runtime.containers.createSandbox({ name: 'pod-ev', labels: { test: 'shim' } });
    const c = await create(['sleep', '1000'], { labels: { test: 'shim' } });
    const started = await rt.runtime.containers.start(c.id);
    const watch = await rt.runtime.containers.watchContainers({ labels: { test: 'shim' } });
    try {
      assert.deepEqual(
        watch.containers.map((x) => [x.id, x.state.status]).sort(),
        [
          [c.id, 'running'],
          [sandbox.id, 'running'],
        ].sort(),
      );
      process.kill(started.state.shimPid!, 'SIGKILL');
      process.kill(sandbox.pid!, 'SIGKILL');
      const events = await collect(
        watch,
        (es) => es.filter((e) => e.type === 'exited').length === 2,
        'two exits',
      );
      assert.equal(exitOf(events, c.id)?.reason, 'ShimDied');
      assert.equal(exitOf(events, sandbox.id)?.exitCode, 137);
      assert.equal(events.find((e) => e.container.id === sandbox.id)?.container.config.kind, 'sandbox');
    } finally {
      watch.close();
      await rt.runtime.containers.remove(c.id, { force: true });
      await rt.runtime.containers.removeSandbox(sandbox.id);
    }
  });
});

// ------------------------------------------------------------------ images

describe('images', () => {
  test('an image the store lacks is pulled through the puller once, then runs', async () => {
    const runs = await Promise.all(
      [1, 2].map(() => rt.runtime.run({ image: 'pulled:1', command: sh('echo from a pulled image') })),
    );
    assert.deepEqual(pulled, ['pulled:1'], 'one pull for both');
    for (const c of runs) {
      assert.equal((await rt.runtime.containers.wait(c.id, { timeoutMs: 30_000 })).exitCode, 0);
      assert.equal(await logText(rt.runtime.containers, c.id), 'stdout from a pulled image\n');
      await rt.runtime.containers.remove(c.id);
    }
    assert.equal(
      (await rt.runtime.ensureImage('pulled:1')).manifestDigest,
      PULLABLE.get('pulled:1')!.manifestDigest,
    );
    assert.deepEqual(pulled, ['pulled:1'], 'present now: not pulled again');
  });

  test('without a puller a missing image is NotFound, naming the reference and the local store', async () => {
    const plain = await openImageRuntime(join(work, 'root-without-puller'), { snapshotter: 'overlay' });
    await assert.rejects(
      plain.runtime.run({ image: 'pulled:1', command: ['true'] }),
      (err: unknown) =>
        err instanceof NotFoundError && /"pulled:1": it is not in the local store/.test(err.message),
    );
    assert.deepEqual(await plain.runtime.containers.list({ all: true }), []);
  });
});
