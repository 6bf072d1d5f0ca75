import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pod } from '../../proto/gen/types.js';
import type { ContainerInfo } from '../runtime/runtime.js';
import { podPhase, podStatus, qosClass, type ContainerView, type PodView } from './pod-status.js';

const now = '2026-12-07T00:00:00Z';

function info(status: 'created' | 'running' | 'exited', exitCode?: number): ContainerInfo {
  return {
    id: `id-${status}-${exitCode ?? ''}`,
    name: 'c',
    config: { labels: {} },
    state: {
      status,
      ...(exitCode !== undefined ? { exitCode } : {}),
      startedAt: '2026-12-07T00:00:00.123Z',
      ...(status === 'exited' ? { finishedAt: '2026-12-07T00:00:01.5Z' } : {}),
    },
  } as unknown as ContainerInfo;
}

function view(
  restartPolicy: string,
  containers: Partial<ContainerView>[],
  init: Partial<ContainerView>[] = [],
): PodView {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p' },
    spec: { restartPolicy, containers: containers.map((_, i) => ({ name: `c${i}` })) },
  } as Pod;
  const full = (c: Partial<ContainerView>, i: number, prefix: string): ContainerView => ({
    spec: { name: `${prefix}${i}` },
    restartCount: 0,
    ready: c.current?.state.status === 'running',
    ...c,
  });
  return {
    pod,
    sandboxReady: true,
    hostIP: '10.0.0.1',
    containers: containers.map((c, i) => full(c, i, 'c')),
    initContainers: init.map((c, i) => full(c, i, 'i')),
    now,
  };
}

test('phases as the kubelet computes them', () => {
  assert.equal(podPhase(view('Always', [{}])), 'Pending');
  assert.equal(podPhase(view('Always', [{ current: info('running') }])), 'Running');
  assert.equal(
    podPhase(view('Always', [{ current: info('exited', 0) }])),
    'Running',
    'Always restarts even a success',
  );
  assert.equal(podPhase(view('OnFailure', [{ current: info('exited', 0) }])), 'Succeeded');
  assert.equal(podPhase(view('OnFailure', [{ current: info('exited', 2) }])), 'Running');
  assert.equal(
    podPhase(view('Never', [{ current: info('exited', 2) }, { current: info('exited', 0) }])),
    'Failed',
  );
  assert.equal(
    podPhase(view('Never', [{ current: info('exited', 2) }, { current: info('running') }])),
    'Running',
  );
  assert.equal(
    podPhase(view('Always', [{ current: info('running') }], [{ current: info('running') }])),
    'Pending',
    'init not done',
  );
  assert.equal(
    podPhase(view('Never', [{}], [{ current: info('exited', 1) }])),
    'Failed',
    'an init container failed for good',
  );
  assert.equal(
    podPhase({ ...view('Always', [{ current: info('running') }]), sandboxReady: false }),
    'Pending',
  );
});

test('container statuses: running, terminated with its reason, waiting with lastState', () => {
  const s = podStatus(
    view('Always', [
      { current: info('running') },
      {
        current: info('exited', 1),
        restartCount: 3,
        waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s' },
      },
    ]),
  );
  const [running, crashing] = s.containerStatuses!;
  assert.deepEqual(running!.state, { running: { startedAt: '2026-12-07T00:00:00Z' } });
  assert.equal(running!.ready, true);
  assert.equal(crashing!.state!.waiting!.reason, 'CrashLoopBackOff');
  assert.equal(crashing!.lastState!.terminated!.exitCode, 1);
  assert.equal(crashing!.lastState!.terminated!.reason, 'Error');
  assert.equal(crashing!.restartCount, 3);
  assert.equal(s.conditions!.find((c) => c.type === 'Ready')!.status, 'False');
  assert.equal(s.conditions!.find((c) => c.type === 'Ready')!.reason, 'ContainersNotReady');
});

test("a condition's lastTransitionTime stays while its status does", () => {
  const v = view('Always', [{ current: info('running') }]);
  v.pod.status = {
    conditions: [
      { type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' },
      { type: 'Initialized', status: 'False', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ],
  };
  const s = podStatus(v);
  assert.equal(s.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime, '2026-01-01T00:00:00Z');
  assert.equal(s.conditions!.find((c) => c.type === 'Initialized')!.lastTransitionTime, now);
});

test('QoS classes', () => {
  const p = (resources: object) => ({ spec: { containers: [{ name: 'c', resources }] } }) as unknown as Pod;
  assert.equal(qosClass(p({})), 'BestEffort');
  assert.equal(qosClass(p({ limits: { cpu: '1', memory: '1Gi' } })), 'Guaranteed');
  assert.equal(qosClass(p({ limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '500m' } })), 'Burstable');
  assert.equal(qosClass(p({ requests: { memory: '1Gi' } })), 'Burstable');
});

test('probes and hooks in the status: started and ready follow the prober, a postStart hook shows ContainerCreating', () => {
  const notReady = podStatus(view('Always', [{ current: info('running'), ready: false, started: true }]));
  const c = notReady.containerStatuses![0]!;
  assert.deepEqual([c.ready, c.started, Object.keys(c.state!)], [false, true, ['running']]);
  assert.equal(notReady.phase, 'Running');
  for (const type of ['ContainersReady', 'Ready'])
    assert.equal(notReady.conditions!.find((x) => x.type === type)!.status, 'False', type);
  const starting = podStatus(view('Always', [{ current: info('running'), ready: false, started: false }]));
  assert.equal(starting.containerStatuses![0]!.started, false, 'a startup probe that has not succeeded');
  const hook = podStatus(view('Always', [{ current: info('running'), ready: true, starting: true }]));
  assert.deepEqual(hook.containerStatuses![0]!.state, { waiting: { reason: 'ContainerCreating' } });
  assert.equal(hook.containerStatuses![0]!.ready, false);
  assert.equal(hook.containerStatuses![0]!.started, false);
  assert.equal(hook.phase, 'Pending', 'a first attempt in its postStart hook has not started');
  assert.equal(
    podStatus(view('Always', [{ current: info('running'), previous: info('exited', 1), starting: true }]))
      .phase,
    'Running',
    'a restarted one has',
  );
});

test('termination messages: in state.terminated, and in lastState once restarted; a start error when there is none', () => {
  const ended = podStatus(view('Never', [{ current: info('exited', 1), currentMessage: 'disk full\n' }]));
  assert.equal(ended.containerStatuses![0]!.state!.terminated!.message, 'disk full\n');
  const restarted = podStatus(
    view('Always', [
      { current: info('running'), previous: info('exited', 1), previousMessage: 'oops', restartCount: 1 },
    ]),
  );
  assert.equal(restarted.containerStatuses![0]!.lastState!.terminated!.message, 'oops');
  const backingOff = podStatus(
    view('Always', [
      {
        current: info('exited', 1),
        currentMessage: 'again',
        waiting: { reason: 'CrashLoopBackOff' },
        restartCount: 1,
      },
    ]),
  );
  assert.equal(backingOff.containerStatuses![0]!.lastState!.terminated!.message, 'again');
  const startError = info('exited', 127);
  (startError.state as { error?: string }).error = 'exec: no such file';
  assert.equal(
    podStatus(view('Never', [{ current: startError }])).containerStatuses![0]!.state!.terminated!.message,
    'exec: no such file',
  );
});
