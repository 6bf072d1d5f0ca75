/**
 * A node agent against a real control plane (etcd, NATS, the gRPC API in this process), running
 * real pods with the embedded runtime as root: registration and pod CIDR, pods bound by
 * spec.nodeName reaching Running with statuses written through NATS, exit codes, restart policies
 * with back-off, config from ConfigMaps and Secrets (env and volumes), image pull failures, graceful
 * deletion, a restart of the agent adopting what runs, and a node that goes silent.
 * Every container, sandbox, mount and directory is removed after, also when a test fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { NotFoundError } from '../../proto/errors.js';
import type { ConfigMap, Event, Node, Pod, Secret } from '../../proto/gen/types.js';
import { componentLogger } from '../../proto/support/logger.js';
import { removeAgentNode, startAgent, type RunningAgent } from '../../node-agent/agent/main.js';
import { busyboxImage } from '../fixtures/images.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';
import {
  logText,
  openImageRuntimeWith,
  removeAllContainers,
  removeScratch,
  requireRootAndBusybox,
  scratchDir,
} from './runtime-containers-fixture.js';

const execFileAsync = promisify(execFile);
const NODE = 'agent-test-node';
/** The node's network lives in a namespace of the test's own, never the machine's. */
const HOST_NETNS = `skiff-agt-${process.pid}`;
const inHost = (...args: string[]) => execFileAsync('ip', ['netns', 'exec', HOST_NETNS, ...args]);
const FAST_BACKOFF = { initialMs: 300, maxMs: 1200, resetAfterMs: 600_000 };

let cluster: TestControlPlane;
let api: ApiClient;
let work: string;
let root: string;
let agent: RunningAgent | undefined;

async function launchAgent(): Promise<RunningAgent> {
  return startAgent({
    server: cluster.controlPlane.apiAddress,
    token: cluster.adminToken,
    nodeName: NODE,
    root,
    nodeIP: '127.0.0.1',
    hostNetns: `/run/netns/${HOST_NETNS}`,
    heartbeatMs: 300,
    resyncMs: 500,
    backoff: FAST_BACKOFF,
    log: componentLogger('agent-test'),
  });
}

/** Polls `read` until `ok` holds; fails with the last value seen. */
async function eventually<T>(
  what: string,
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 20_000,
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

function pod(name: string, spec: Partial<Pod['spec']> & { command?: string[] }): Pod {
  const { command, ...rest } = spec;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: NODE,
      terminationGracePeriodSeconds: 2,
      containers: [{ name: 'main', image: 'busybox:1', ...(command ? { command } : {}) }],
      ...rest,
    },
  } as Pod;
}

before(async () => {
  requireRootAndBusybox();
  await execFileAsync('ip', ['netns', 'add', HOST_NETNS]);
  await inHost('ip', 'link', 'set', 'lo', 'up');
  cluster = await launchTestControlPlane('agent-pods', { nodeGraceMs: 1500 });
  api = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
  work = await scratchDir('skiff-agent-pods-');
  root = join(work, 'root');
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

describe('registration', () => {
  test('the node registers with capacity, labels and info, gets a pod CIDR, and is Ready from its heartbeats', async () => {
    const node = await eventually(
      'node Ready with a pod CIDR',
      () => api.get('Node', '', NODE) as Promise<Node>,
      (n) =>
        !!n.spec.podCIDR &&
        n.status?.conditions?.some(
          (c) => c.type === 'Ready' && c.status === 'True' && !!c.lastHeartbeatTime,
        ) === true,
    );
    assert.match(node.spec.podCIDR!, /^10\.244\.\d+\.0\/24$/);
    assert.equal(node.metadata.labels?.['kubernetes.io/hostname'], NODE);
    assert.equal(node.metadata.labels?.['kubernetes.io/os'], 'linux');
    assert.ok(Number(node.status!.capacity!.cpu) >= 1);
    assert.match(node.status!.capacity!.memory!, /^\d+Ki$/);
    assert.equal(node.status!.capacity!.pods, '110');
    assert.equal(node.status!.nodeInfo!.operatingSystem, 'linux');
    assert.ok(
      node.status!.images!.some((i) => i.names!.some((n) => n.includes('busybox'))),
      'the images it holds are listed',
    );
    for (const type of ['MemoryPressure', 'DiskPressure', 'PIDPressure'])
      assert.ok(
        node.status!.conditions!.some((c) => c.type === type),
        `${type} is reported`,
      );
  });
});

describe('pods', () => {
  test('a pod bound to the node runs: Running, ready, its container started, conditions True', async () => {
    await api.create(pod('runs', { command: ['sh', '-c', 'echo started; sleep 1000'] }));
    const running = await eventually(
      'pod Running and Ready',
      () => getPod('runs'),
      (p) =>
        p.status?.phase === 'Running' &&
        p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
    );
    const status = running.status!.containerStatuses![0]!;
    assert.equal(status.name, 'main');
    assert.ok(status.state!.running, 'the container is running');
    assert.equal(status.ready, true);
    assert.equal(status.restartCount ?? 0, 0);
    assert.match(status.containerID!, /^skiff:\/\/[0-9a-f]+$/);
    assert.match(status.imageID!, /busybox:1@sha256:[0-9a-f]{64}/);
    assert.equal(running.status!.hostIP, '127.0.0.1');
    const node = (await api.get('Node', '', NODE)) as Node;
    const prefix = node.spec.podCIDR!.split('.').slice(0, 3).join('.');
    assert.ok(
      running.status!.podIP?.startsWith(`${prefix}.`),
      `pod IP ${running.status!.podIP} in ${node.spec.podCIDR}`,
    );
    assert.deepEqual(running.status!.podIPs, [{ ip: running.status!.podIP }]);
    // the node reaches its pod
    await inHost('/bin/busybox', 'ping', '-c', '1', '-W', '2', running.status!.podIP!).catch(
      async (err: Error) => {
        const show = async (...args: string[]) =>
          (await inHost(...args).catch((e: Error) => ({ stdout: e.message }))).stdout;
        assert.fail(
          `${err.message}\n${await show('ip', 'addr')}\n${await show('ip', 'route')}\n${await show('nft', 'list', 'ruleset')}`,
        );
      },
    );
    assert.equal(running.status!.qosClass, 'BestEffort');
    for (const type of ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'])
      assert.equal(running.status!.conditions!.find((c) => c.type === type)?.status, 'True', type);
    const events = await eventually(
      'Pulled, Created and Started events',
      async () =>
        (await api.list('Event', { namespace: 'default', fieldSelector: 'involvedObject.name=runs' }))
          .items as Event[],
      (list) => ['Pulled', 'Created', 'Started'].every((r) => list.some((e) => e.reason === r)),
    );
    const started = events.find((e) => e.reason === 'Started')!;
    assert.equal(started.message, 'Started container main');
    assert.equal(started.source?.component, 'skiff-agent');
    assert.equal(started.source?.host, NODE);
    assert.equal(started.involvedObject?.fieldPath, 'spec.containers{main}');
  });

  test('restartPolicy Never: a container that exits 3 fails the pod with its exit code', async () => {
    await api.create(pod('fails', { restartPolicy: 'Never', command: ['sh', '-c', 'exit 3'] }));
    const failed = await eventually(
      'pod Failed',
      () => getPod('fails'),
      (p) => p.status?.phase === 'Failed',
    );
    const terminated = failed.status!.containerStatuses![0]!.state!.terminated!;
    assert.equal(terminated.exitCode, 3);
    assert.equal(terminated.reason, 'Error');
  });

  test('restartPolicy OnFailure: exit 0 completes the pod (Succeeded)', async () => {
    await api.create(pod('completes', { restartPolicy: 'OnFailure', command: ['true'] }));
    const done = await eventually(
      'pod Succeeded',
      () => getPod('completes'),
      (p) => p.status?.phase === 'Succeeded',
    );
    assert.equal(done.status!.containerStatuses![0]!.state!.terminated!.reason, 'Completed');
    assert.equal(done.status!.containerStatuses![0]!.restartCount ?? 0, 0);
  });

  test('restartPolicy Always: a crashing container is restarted with back-off, shown as CrashLoopBackOff', async () => {
    await api.create(pod('crashes', { command: ['sh', '-c', 'echo boom; exit 1'] }));
    let sawBackOff = false;
    const restarted = await eventually(
      'restarted twice',
      () => getPod('crashes'),
      (p) => {
        const s = p.status?.containerStatuses?.[0];
        if (s?.state?.waiting?.reason === 'CrashLoopBackOff') sawBackOff = true;
        return (s?.restartCount ?? 0) >= 2;
      },
    );
    const s = restarted.status!.containerStatuses![0]!;
    assert.equal(restarted.status!.phase, 'Running');
    assert.equal((s.lastState?.terminated ?? s.state?.terminated)?.exitCode, 1);
    await eventually(
      'CrashLoopBackOff shown',
      () => getPod('crashes'),
      (p) => {
        if (p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CrashLoopBackOff')
          sawBackOff = true;
        return sawBackOff;
      },
    );
    // repeats fold into one Event with a count
    const startedEvents = await eventually(
      'one Started event counted more than once',
      async () =>
        (
          (await api.list('Event', { namespace: 'default', fieldSelector: 'involvedObject.name=crashes' }))
            .items as Event[]
        ).filter((e) => e.reason === 'Started'),
      (list) => list.length === 1 && (list[0]!.count ?? 0) >= 2,
    );
    assert.equal(startedEvents[0]!.type, 'Normal');
  });

  test('init containers run first, in order; command, args and env come from the spec, ConfigMaps and Secrets', async () => {
    await api.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'app-config', namespace: 'default' },
      data: { GREETING: 'hello', 'app.conf': 'mode=fast\n' },
    } as ConfigMap);
    await api.create({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'app-secret', namespace: 'default' },
      stringData: { password: 's3cret' },
    } as Secret);
    await api.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'configured', namespace: 'default', labels: { app: 'demo' } },
      spec: {
        nodeName: NODE,
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        volumes: [
          { name: 'conf', configMap: { name: 'app-config', items: [{ key: 'app.conf', path: 'app.conf' }] } },
          { name: 'creds', secret: { secretName: 'app-secret', defaultMode: 0o400 } },
          { name: 'shared', emptyDir: {} },
          {
            name: 'info',
            downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] },
          },
        ],
        initContainers: [
          {
            name: 'prepare',
            image: 'busybox:1',
            command: ['sh', '-c', 'echo from-init > /shared/note'],
            volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
          },
        ],
        containers: [
          {
            name: 'main',
            image: 'busybox:1',
            command: ['sh', '-c'],
            args: [
              'echo "$(GREETING) $POD_NAME $PASSWORD"; cat /etc/app/app.conf /shared/note /etc/info/labels; echo; stat -L -c %a /etc/creds/password; echo \'$$(LITERAL)\'',
            ],
            env: [
              { name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'app-config', key: 'GREETING' } } },
              { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'app-secret', key: 'password' } } },
              { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            ],
            volumeMounts: [
              { name: 'conf', mountPath: '/etc/app', readOnly: true },
              { name: 'creds', mountPath: '/etc/creds', readOnly: true },
              { name: 'shared', mountPath: '/shared' },
              { name: 'info', mountPath: '/etc/info' },
            ],
          },
        ],
      },
    } as Pod);
    const done = await eventually(
      'pod Succeeded',
      () => getPod('configured'),
      (p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed',
    );
    assert.equal(done.status!.phase, 'Succeeded', JSON.stringify(done.status));
    assert.equal(done.status!.initContainerStatuses![0]!.state!.terminated!.exitCode, 0);
    const id = done.status!.containerStatuses![0]!.containerID!.replace('skiff://', '');
    const output = await logText(agent!.runtime.runtime.containers, id);
    assert.match(output, /hello configured s3cret/);
    assert.match(output, /mode=fast/);
    assert.match(output, /from-init/);
    assert.match(output, /app="demo"/);
    assert.match(output, /^stdout 400$/m);
    assert.match(output, /\$\(LITERAL\)/);
  });

  test("a pod's /etc/resolv.conf follows its dnsPolicy and dnsConfig (the kubelet's rules)", async () => {
    const podWith = (name: string, spec: Partial<Pod['spec']>) =>
      api.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeName: NODE,
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'main', image: 'busybox:1', command: ['cat', '/etc/resolv.conf'] }],
          ...spec,
        },
      } as Pod);
    const outputOf = async (name: string) => {
      const done = await eventually(
        `pod ${name} Succeeded`,
        () => getPod(name),
        (p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed',
      );
      assert.equal(done.status!.phase, 'Succeeded', JSON.stringify(done.status));
      const id = done.status!.containerStatuses![0]!.containerID!.replace('skiff://', '');
      return logText(agent!.runtime.runtime.containers, id);
    };
    await podWith('dns-cluster-first', {});
    await podWith('dns-none', {
      dnsPolicy: 'None',
      dnsConfig: {
        nameservers: ['192.0.2.1'],
        searches: ['corp.example'],
        options: [{ name: 'ndots', value: '2' }],
      },
    });
    const clusterFirst = await outputOf('dns-cluster-first');
    assert.match(clusterFirst, /search default\.svc\.cluster\.local svc\.cluster\.local cluster\.local/);
    assert.match(clusterFirst, /nameserver 10\.96\.0\.10/);
    assert.match(clusterFirst, /options ndots:5/);
    const none = await outputOf('dns-none');
    assert.match(none, /search corp\.example/);
    assert.match(none, /nameserver 192\.0\.2\.1/);
    assert.match(none, /options ndots:2/);
    assert.doesNotMatch(none, /10\.96\.0\.10/);
  });

  test('a reference the node cannot resolve fails the container with CreateContainerConfigError, not the agent', async () => {
    await api.create({
      ...pod('misconfigured', { restartPolicy: 'Never' }),
      spec: {
        nodeName: NODE,
        restartPolicy: 'Never',
        containers: [
          {
            name: 'main',
            image: 'busybox:1',
            command: ['true'],
            env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'absent', key: 'x' } } }],
          },
        ],
      },
    } as Pod);
    const p = await eventually(
      'CreateContainerConfigError',
      () => getPod('misconfigured'),
      (q) => q.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError',
    );
    assert.match(p.status!.containerStatuses![0]!.state!.waiting!.message!, /configmap "absent" not found/);
  });

  test('a ConfigMap volume follows its ConfigMap while the pod runs', async () => {
    await api.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'live', namespace: 'default' },
      data: { mode: 'one' },
    } as ConfigMap);
    await api.create({
      ...pod('follows', { command: ['sleep', '1000'] }),
      spec: {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        volumes: [{ name: 'conf', configMap: { name: 'live' } }],
        containers: [
          {
            name: 'main',
            image: 'busybox:1',
            command: ['sleep', '1000'],
            volumeMounts: [{ name: 'conf', mountPath: '/conf' }],
          },
        ],
      },
    } as Pod);
    const running = await eventually(
      'Running',
      () => getPod('follows'),
      (p) => p.status?.phase === 'Running',
    );
    const file = join(root, 'pods', running.metadata.uid!, 'volumes', 'conf', 'mode');
    assert.equal(readFileSync(file, 'utf8'), 'one');
    const cm = (await api.get('ConfigMap', 'default', 'live')) as ConfigMap;
    await api.update({ ...cm, data: { mode: 'two' } });
    await eventually(
      'the file changed',
      async () => readFileSync(file, 'utf8'),
      (text) => text === 'two',
      15_000,
    );
  });

  test('what the node cannot run fails that pod with a reason: a missing command, a hostPath it does not allow, an OOM kill', async () => {
    await api.create(pod('no-command', { restartPolicy: 'Never', command: ['/no/such/binary'] }));
    await api.create({
      ...pod('host-path', { restartPolicy: 'Never' }),
      spec: {
        nodeName: NODE,
        restartPolicy: 'Never',
        volumes: [{ name: 'etc', hostPath: { path: '/etc' } }],
        containers: [
          {
            name: 'main',
            image: 'busybox:1',
            command: ['true'],
            volumeMounts: [{ name: 'etc', mountPath: '/host-etc' }],
          },
        ],
      },
    } as Pod);
    await api.create({
      ...pod('oom', { restartPolicy: 'Never' }),
      spec: {
        nodeName: NODE,
        restartPolicy: 'Never',
        containers: [
          {
            name: 'main',
            image: 'busybox:1',
            command: ['/bin/busybox', 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'],
            resources: { limits: { memory: '16Mi' } },
          },
        ],
      },
    } as Pod);
    const noCommand = await eventually(
      'no-command ended',
      () => getPod('no-command'),
      (p) => !!p.status?.containerStatuses?.[0]?.state?.terminated,
    );
    const ended = noCommand.status!.containerStatuses![0]!.state!.terminated!;
    assert.notEqual(ended.exitCode, 0);
    assert.match(
      `${ended.reason} ${ended.message}`,
      /no\/such\/binary|not found|No such file/i,
      JSON.stringify(ended),
    );
    const hostPath = await eventually(
      'hostPath refused',
      () => getPod('host-path'),
      (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError',
    );
    assert.match(
      hostPath.status!.containerStatuses![0]!.state!.waiting!.message!,
      /hostPath "\/etc" is outside what this node allows/,
    );
    const oom = await eventually(
      'OOMKilled',
      () => getPod('oom'),
      (p) => !!p.status?.containerStatuses?.[0]?.state?.terminated,
    );
    assert.equal(
      oom.status!.containerStatuses![0]!.state!.terminated!.reason,
      'OOMKilled',
      JSON.stringify(oom.status!.containerStatuses![0]),
    );
    assert.equal(oom.status!.containerStatuses![0]!.state!.terminated!.exitCode, 137);
    assert.equal(oom.status!.phase, 'Failed');
  });

  test("a missing image: ErrImagePull, then ImagePullBackOff, with the registry's message", async () => {
    await api.create(pod('no-image', { containers: [{ name: 'main', image: 'absent-image:1' }] }));
    const reasons = new Set<string>();
    const p = await eventually(
      'ImagePullBackOff',
      () => getPod('no-image'),
      (q) => {
        const reason = q.status?.containerStatuses?.[0]?.state?.waiting?.reason;
        if (reason) reasons.add(reason);
        return reason === 'ImagePullBackOff';
      },
    );
    assert.ok(reasons.has('ErrImagePull') || reasons.has('ImagePullBackOff'));
    assert.match(p.status!.containerStatuses![0]!.state!.waiting!.message!, /absent-image/);
    assert.equal(p.status!.phase, 'Pending');
  });

  test('deleting a pod stops its containers within the grace period, then the pod object goes', async () => {
    await api.create(pod('deleted', { command: ['sleep', '1000'] }));
    await eventually(
      'Running',
      () => getPod('deleted'),
      (p) => p.status?.phase === 'Running',
    );
    const marked = await api.delete('Pod', 'default', 'deleted');
    assert.ok(marked.metadata.deletionTimestamp, 'a bound pod is marked first');
    await eventually(
      'pod gone',
      () =>
        getPod('deleted').then(
          () => false,
          (err) => err instanceof NotFoundError,
        ),
      (gone) => gone,
      15_000,
    );
    const left = await agent!.runtime.runtime.containers.listSandboxes({
      labels: { 'io.kubernetes.pod.name': 'deleted' },
    });
    assert.deepEqual(left, [], 'its sandbox is removed');
  });

  test('restarting the agent adopts running containers: same container, restartCount unchanged', async () => {
    const before = (await getPod('runs')).status!.containerStatuses![0]!;
    await agent!.stop();
    agent = await launchAgent();
    // a change made while the agent was away reaches it too
    await api.create(pod('after-restart', { command: ['sleep', '1000'] }));
    await eventually(
      'new pod Running',
      () => getPod('after-restart'),
      (p) => p.status?.phase === 'Running',
    );
    const after = (await getPod('runs')).status!.containerStatuses![0]!;
    assert.equal(after.containerID, before.containerID);
    assert.equal(after.restartCount, before.restartCount);
    assert.ok(after.state!.running);
  });

  test('a node whose agent stops heartbeating becomes NotReady (Unknown)', async () => {
    await agent!.stop();
    agent = undefined;
    const node = await eventually(
      'Ready Unknown',
      () => api.get('Node', '', NODE) as Promise<Node>,
      (n) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'Unknown',
      15_000,
    );
    assert.equal(node.status!.conditions!.find((c) => c.type === 'Ready')!.reason, 'NodeStatusUnknown');
    await eventually(
      'a NodeNotReady event',
      async () =>
        (await api.list('Event', { namespace: 'default', fieldSelector: `involvedObject.name=${NODE}` }))
          .items as Event[],
      (list) => list.some((e) => e.reason === 'NodeNotReady'),
    );
    agent = await launchAgent();
    await eventually(
      'Ready again',
      () => api.get('Node', '', NODE) as Promise<Node>,
      (n) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True',
    );
  });
});
