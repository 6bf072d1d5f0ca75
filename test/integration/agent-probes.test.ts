/**
 * Container health and lifecycle on a real node agent (the harness of agent-pods.test.ts: a
 * control plane and an agent in this process, busybox pods, the node's network in a namespace of
 * the test's own, so HTTP and TCP probes reach pods through the agent's NetnsDialer): readiness
 * flipping ready and the Ready condition both ways, a liveness failure restarting the container
 * (restartCount 1, Unhealthy and Killing events), a startup probe holding readiness off, postStart
 * running before the container is Running (and a failing one killing it), preStop running before
 * SIGTERM on deletion, termination messages (the file, FallbackToLogsOnError), and capabilities
 * (dropping NET_RAW makes ping fail, adding NET_ADMIN lets `ip link add` work, privileged refused
 * without --allow-privileged). Probes are flipped by files the test creates and removes with exec.
 * Every container, sandbox, mount and directory is removed after, also when a test fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { NotFoundError } from '../../proto/errors.js';
import type { Container, Event, Pod } from '../../proto/gen/types.js';
import { componentLogger } from '../../proto/support/logger.js';
import { removeAgentNode, startAgent, type RunningAgent } from '../../node-agent/agent/main.js';
import { busyboxImage } from '../fixtures/images.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';
import {
  openImageRuntimeWith,
  removeScratch,
  requireRootAndBusybox,
  scratchDir,
} from './runtime-containers-fixture.js';

const execFileAsync = promisify(execFile);
const NODE = 'probes-test-node';
const HOST_NETNS = `skiff-prb-${process.pid}`;
const FAST_BACKOFF = { initialMs: 300, maxMs: 1200, resetAfterMs: 600_000 };

let cluster: TestControlPlane;
let api: ApiClient;
let work: string;
let root: string;
let agent: RunningAgent | undefined;

/** Polls `read` until `ok` holds; fails with the last value seen. */
async function eventually<T>(
  what: string,
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 45_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < until) {
    try {
      last = await read();
      if (ok(last)) return last;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(
    `${what}: not within ${timeoutMs} ms; last seen: ${JSON.stringify(last ?? String(lastError), null, 1)}`,
  );
}

const getPod = (name: string) => api.get('Pod', 'default', name) as Promise<Pod>;
// false booleans (ready, started) come back absent, as protobuf leaves them
const status0 = (p: Pod) => p.status?.containerStatuses?.[0];
const condition = (p: Pod, type: string) => p.status?.conditions?.find((c) => c.type === type)?.status;
const events = async (name: string) =>
  (await api.list('Event', { namespace: 'default', fieldSelector: `involvedObject.name=${name}` }))
    .items as Event[];

function pod(name: string, container: Partial<Container>, spec: Partial<Pod['spec']> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: NODE,
      terminationGracePeriodSeconds: 2,
      containers: [{ name: 'main', image: 'busybox:1', ...container }],
      ...spec,
    },
  } as Pod;
}

/** Runs `script` in the pod's (first) container; resolves with its exit code. */
async function execIn(p: Pod, script: string): Promise<number> {
  const id = status0(p)!.containerID!.replace('skiff://', '');
  const handle = await agent!.runtime.runtime.containers.exec(id, {
    argv: ['sh', '-c', script],
    stdio: 'ignore',
  });
  return handle.exited;
}

/** A web server on 8080 serving /www, which holds ready.html. */
const WEB = [
  'sh',
  '-c',
  'mkdir -p /www && echo ok > /www/ready.html && exec busybox httpd -f -p 8080 -h /www',
];
const WEB_PORTS = [{ name: 'http', containerPort: 8080 }];

async function launchAgent(): Promise<RunningAgent> {
  return startAgent({
    server: cluster.controlPlane.apiAddress,
    token: cluster.adminToken,
    nodeName: NODE,
    root,
    nodeIP: '127.0.0.1',
    hostNetns: `/run/netns/${HOST_NETNS}`,
    heartbeatMs: 300,
    backoff: FAST_BACKOFF,
    allowedHostPaths: [join(work, 'host')],
    log: componentLogger('agent-probes-test'),
  });
}

before(async () => {
  requireRootAndBusybox();
  await execFileAsync('ip', ['netns', 'add', HOST_NETNS]);
  await execFileAsync('ip', ['netns', 'exec', HOST_NETNS, 'ip', 'link', 'set', 'lo', 'up']);
  cluster = await launchTestControlPlane('agent-probes', { nodeGraceMs: 1500 });
  api = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
  work = await scratchDir('skiff-agent-probes-');
  root = join(work, 'root');
  await execFileAsync('mkdir', ['-p', join(work, 'host')]);
  await openImageRuntimeWith(root, join(work, 'images.tar'), [busyboxImage('busybox:1')]);
  agent = await launchAgent();
});

after(async () => {
  await agent?.stop().catch(() => {});
  if (root) {
    const problems = await removeAgentNode(root, { hostNetns: `/run/netns/${HOST_NETNS}` });
    assert.deepEqual(problems, [], 'the node is left clean');
  }
  await execFileAsync('ip', ['netns', 'del', HOST_NETNS]).catch(() => {});
  api?.close();
  await cluster?.dispose();
  if (work) await removeScratch(work);
});

describe('probes', () => {
  test('readiness (httpGet on a named port) flips ready and the Ready condition both ways, with Unhealthy events', async () => {
    await api.create(
      pod('ready-flip', {
        command: WEB,
        ports: WEB_PORTS,
        readinessProbe: {
          httpGet: { path: '/ready.html', port: 'http' },
          periodSeconds: 1,
          failureThreshold: 1,
        },
      }),
    );
    let p = await eventually(
      'Ready',
      () => getPod('ready-flip'),
      (q) => condition(q, 'Ready') === 'True',
    );
    assert.equal(status0(p)!.ready, true);
    assert.equal(status0(p)!.started, true);
    assert.equal(await execIn(p, 'rm /www/ready.html'), 0);
    p = await eventually(
      'not Ready',
      () => getPod('ready-flip'),
      (q) => condition(q, 'Ready') === 'False',
    );
    assert.equal(status0(p)!.ready ?? false, false);
    assert.equal(condition(p, 'ContainersReady'), 'False');
    assert.ok(status0(p)!.state!.running, 'still running: readiness never kills');
    assert.equal(status0(p)!.restartCount ?? 0, 0);
    const unhealthy = await eventually(
      'an Unhealthy event',
      () => events('ready-flip'),
      (list) => list.some((e) => e.reason === 'Unhealthy'),
    );
    const e = unhealthy.find((x) => x.reason === 'Unhealthy')!;
    assert.equal(e.type, 'Warning');
    assert.equal(e.message, 'Readiness probe failed: HTTP probe failed with statuscode: 404');
    assert.equal(e.involvedObject?.fieldPath, 'spec.containers{main}');
    assert.equal(await execIn(p, 'echo ok > /www/ready.html'), 0);
    await eventually(
      'Ready again',
      () => getPod('ready-flip'),
      (q) => condition(q, 'Ready') === 'True' && status0(q)!.ready === true,
    );
  });

  test('a failing liveness probe kills the container, which restarts: restartCount 1, Unhealthy and Killing events', async () => {
    await api.create(
      pod('liveness', {
        command: ['sh', '-c', 'touch /tmp/alive; exec sleep 1000'],
        livenessProbe: {
          exec: { command: ['sh', '-c', 'test -e /tmp/alive || { echo gone; exit 1; }'] },
          periodSeconds: 1,
          failureThreshold: 2,
          terminationGracePeriodSeconds: 1,
        },
      }),
    );
    let p = await eventually(
      'Running',
      () => getPod('liveness'),
      (q) => !!status0(q)?.state?.running && status0(q)?.ready === true,
    );
    const firstId = status0(p)!.containerID;
    assert.equal(await execIn(p, 'rm /tmp/alive'), 0);
    p = await eventually(
      'restarted once',
      () => getPod('liveness'),
      (q) => status0(q)?.restartCount === 1 && !!status0(q)?.state?.running,
    );
    const s = status0(p)!;
    assert.notEqual(s.containerID, firstId);
    assert.equal(
      s.lastState?.terminated?.exitCode,
      137,
      'sleep as pid 1 ignores SIGTERM: killed after the probe’s 1 s grace',
    );
    const list = await eventually(
      'Unhealthy and Killing events',
      () => events('liveness'),
      (l) => l.some((e) => e.reason === 'Unhealthy') && l.some((e) => e.reason === 'Killing'),
    );
    assert.equal(list.find((e) => e.reason === 'Unhealthy')!.message, 'Liveness probe failed: gone\n');
    assert.equal(
      list.find((e) => e.reason === 'Killing')!.message,
      'Container main failed liveness probe, will be restarted',
    );
    // the new attempt is alive again (its command made the file): no second restart
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(status0(await getPod('liveness'))!.restartCount, 1);
  });

  test('a startup probe holds readiness (and started) off until it succeeds', async () => {
    await api.create(
      pod('startup', {
        command: WEB,
        ports: WEB_PORTS,
        startupProbe: {
          exec: { command: ['sh', '-c', 'test -e /tmp/started'] },
          periodSeconds: 1,
          failureThreshold: 120,
        },
        readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 30 },
      }),
    );
    let p = await eventually(
      'running',
      () => getPod('startup'),
      (q) => !!status0(q)?.state?.running,
    );
    await new Promise((r) => setTimeout(r, 3000));
    p = await getPod('startup');
    assert.equal(status0(p)!.started ?? false, false, 'not started while the startup probe fails');
    assert.equal(status0(p)!.ready ?? false, false, 'nor ready, though the server answers');
    assert.equal(condition(p, 'Ready'), 'False');
    assert.equal(await execIn(p, 'touch /tmp/started'), 0);
    // readiness runs as soon as the startup probe succeeds, not 30 s later
    p = await eventually(
      'started and ready',
      () => getPod('startup'),
      (q) => status0(q)?.ready === true,
      15_000,
    );
    assert.equal(status0(p)!.started, true);
    assert.equal(status0(p)!.restartCount ?? 0, 0);
  });
});

describe('lifecycle hooks', () => {
  test('postStart runs before the container is Running: ContainerCreating meanwhile', async () => {
    await api.create(
      pod('post-start', {
        command: ['sleep', '1000'],
        lifecycle: { postStart: { exec: { command: ['sh', '-c', 'sleep 3; echo done > /tmp/hook'] } } },
      }),
    );
    const seen = new Set<string>();
    const p = await eventually(
      'Running after the hook',
      () => getPod('post-start'),
      (q) => {
        const s = status0(q);
        if (s?.state?.waiting && s.containerID)
          seen.add(`waiting:${s.state.waiting.reason}:${q.status?.phase}`);
        return !!s?.state?.running;
      },
    );
    assert.ok(seen.has('waiting:ContainerCreating:Pending'), `seen ${[...seen]}`);
    assert.equal(await execIn(p, 'test "$(cat /tmp/hook)" = done'), 0, 'the hook had finished by then');
  });

  test('a failing postStart kills the container (FailedPostStartHook) and it is restarted', async () => {
    await api.create(
      pod('post-start-fails', {
        command: ['sleep', '1000'],
        lifecycle: { postStart: { exec: { command: ['sh', '-c', 'exit 7'] } } },
      }),
    );
    await eventually(
      'restarted',
      () => getPod('post-start-fails'),
      (q) => (status0(q)?.restartCount ?? 0) >= 1,
    );
    const list = await eventually(
      'a FailedPostStartHook event',
      () => events('post-start-fails'),
      (l) => l.some((e) => e.reason === 'FailedPostStartHook'),
    );
    const e = list.find((x) => x.reason === 'FailedPostStartHook')!;
    assert.equal(e.type, 'Warning');
    assert.match(
      e.message!,
      /Exec lifecycle hook \(\["sh","-c","exit 7"\]\) for Container "main" in Pod "post-start-fails_default\(.+\)" failed/,
    );
    await api.delete('Pod', 'default', 'post-start-fails');
  });

  test('preStop runs before SIGTERM when the pod is deleted, within its grace period', async () => {
    const dir = join(work, 'host', 'prestop');
    await execFileAsync('mkdir', ['-p', dir]);
    await api.create(
      pod(
        'pre-stop',
        {
          command: ['sh', '-c', "trap 'echo term >> /data/log; exit 0' TERM; while true; do sleep 0.2; done"],
          volumeMounts: [{ name: 'data', mountPath: '/data' }],
          lifecycle: { preStop: { exec: { command: ['sh', '-c', 'echo prestop >> /data/log; sleep 1'] } } },
        },
        { terminationGracePeriodSeconds: 10, volumes: [{ name: 'data', hostPath: { path: dir } }] },
      ),
    );
    await eventually(
      'Running',
      () => getPod('pre-stop'),
      (q) => !!status0(q)?.state?.running,
    );
    await api.delete('Pod', 'default', 'pre-stop');
    await eventually(
      'pod gone',
      () =>
        getPod('pre-stop').then(
          () => false,
          (err) => err instanceof NotFoundError,
        ),
      (gone) => gone,
    );
    assert.equal(await readFile(join(dir, 'log'), 'utf8'), 'prestop\nterm\n');
  });
});

describe('termination messages', () => {
  test('the file at terminationMessagePath becomes state.terminated.message', async () => {
    await api.create(
      pod(
        'message',
        { command: ['sh', '-c', 'echo "bye now" > /dev/termination-log; exit 3'] },
        { restartPolicy: 'Never' },
      ),
    );
    const p = await eventually(
      'Failed',
      () => getPod('message'),
      (q) => q.status?.phase === 'Failed',
    );
    assert.deepEqual(
      { code: status0(p)!.state!.terminated!.exitCode, message: status0(p)!.state!.terminated!.message },
      { code: 3, message: 'bye now\n' },
    );
  });

  test('a path of its own; FallbackToLogsOnError takes the end of the log when the file is empty and it failed', async () => {
    await api.create({
      ...pod('message-fallback', {}, { restartPolicy: 'Never' }),
      spec: {
        nodeName: NODE,
        restartPolicy: 'Never',
        containers: [
          {
            name: 'file',
            image: 'busybox:1',
            command: ['sh', '-c', 'echo custom > /tmp/why'],
            terminationMessagePath: '/tmp/why',
          },
          {
            name: 'logs',
            image: 'busybox:1',
            command: [
              'sh',
              '-c',
              'for i in $(busybox seq 1 100); do echo line $i; done; echo oops >&2; exit 2',
            ],
            terminationMessagePolicy: 'FallbackToLogsOnError',
          },
        ],
      },
    } as Pod);
    const p = await eventually(
      'ended',
      () => getPod('message-fallback'),
      (q) => q.status?.phase === 'Failed',
    );
    const byName = Object.fromEntries(
      p.status!.containerStatuses!.map((s) => [s.name, s.state!.terminated!]),
    );
    assert.equal(byName.file!.message, 'custom\n');
    const lines = byName.logs!.message!.trimEnd().split('\n');
    assert.equal(lines.length, 80, 'the last 80 lines');
    assert.equal(lines[0], 'line 22');
    assert.equal(lines.at(-1), 'oops');
  });
});

describe('capabilities', () => {
  test('dropping NET_RAW makes ping fail; adding NET_ADMIN lets `ip link add` work', async () => {
    const run = (name: string, script: string, capabilities: { add?: string[]; drop?: string[] }) =>
      api.create(
        pod(
          name,
          { command: ['sh', '-c', script], securityContext: { capabilities } },
          { restartPolicy: 'Never' },
        ),
      );
    await run('no-raw', 'busybox ping -c 1 -W 2 127.0.0.1', { drop: ['NET_RAW'] });
    await run('raw', 'busybox ping -c 1 -W 2 127.0.0.1', {});
    await run('net-admin', 'busybox ip link add skiff-t0 type bridge', { add: ['NET_ADMIN'] });
    await run('no-net-admin', 'busybox ip link add skiff-t0 type bridge', {});
    const ended = async (name: string) =>
      (
        await eventually(
          name,
          () => getPod(name),
          (q) => q.status?.phase === 'Succeeded' || q.status?.phase === 'Failed',
        )
      ).status!.containerStatuses![0]!.state!.terminated!.exitCode;
    assert.notEqual(await ended('no-raw'), 0, 'ping needs NET_RAW');
    assert.equal(await ended('raw'), 0);
    assert.equal(await ended('net-admin'), 0);
    assert.notEqual(await ended('no-net-admin'), 0);
  });

  test('no_new_privs only with allowPrivilegeEscalation: false, as in Kubernetes (unset allows escalation)', async () => {
    const noNewPrivs = (name: string, allowPrivilegeEscalation?: boolean) =>
      api.create(
        pod(
          name,
          {
            command: ['sh', '-c', 'grep NoNewPrivs: /proc/self/status > /dev/termination-log'],
            securityContext: allowPrivilegeEscalation === undefined ? {} : { allowPrivilegeEscalation },
          },
          { restartPolicy: 'Never' },
        ),
      );
    await noNewPrivs('escalation-unset');
    await noNewPrivs('escalation-false', false);
    await noNewPrivs('escalation-true', true);
    const reported = async (name: string) =>
      (
        await eventually(
          name,
          () => getPod(name),
          (q) => q.status?.phase === 'Succeeded' || q.status?.phase === 'Failed',
        )
      ).status!.containerStatuses![0]!.state!.terminated!.message?.trim();
    assert.match((await reported('escalation-unset'))!, /NoNewPrivs:\s+0/);
    assert.match((await reported('escalation-false'))!, /NoNewPrivs:\s+1/);
    assert.match((await reported('escalation-true'))!, /NoNewPrivs:\s+0/);
  });

  test('privileged is refused without --allow-privileged: CreateContainerConfigError naming the reason', async () => {
    await api.create(
      pod(
        'privileged',
        { command: ['true'], securityContext: { privileged: true } },
        { restartPolicy: 'Never' },
      ),
    );
    const p = await eventually(
      'CreateContainerConfigError',
      () => getPod('privileged'),
      (q) => status0(q)?.state?.waiting?.reason === 'CreateContainerConfigError',
    );
    assert.match(status0(p)!.state!.waiting!.message!, /--allow-privileged/);
  });
});
