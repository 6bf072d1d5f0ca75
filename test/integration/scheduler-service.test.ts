/**
 * The scheduler as the control plane runs it (controlplane/scheduler-service/), against a real
 * control plane (etcd, NATS, the API) with nodes registered through the API and no agents: pods
 * are bound with PodScheduled True and a Scheduled Event; a pod that fits nowhere stays Pending
 * with the reasons in Kubernetes' words, and is placed as soon as a node that fits appears;
 * preemption evicts a lower-priority pod, nominates the node, and binds once the victim is gone;
 * the CLI shows all of it (describe's Events, get -o wide's NODE and NOMINATED NODE).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane } from '../../controlplane/main.js';
import { makeNode, makePod } from '../../controlplane/scheduler/testing.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import type { Event, Pod } from '../../proto/gen/types.js';
import { runSkiff, type RunResult } from '../e2e/cli-harness.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';
import { registerNode, userPod } from '../harness/registered-nodes.js';
import { until } from '../harness/until.js';

describe('the scheduler service', { timeout: 120_000 }, () => {
  let cluster: TestControlPlane;
  let api: ApiClient;
  let work: string;
  before(async () => {
    // no agent heartbeats here: nodes must not be marked NotReady during the suite
    cluster = await launchTestControlPlane('scheduler-service', { nodeGraceMs: 600_000 });
    api = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
    work = mkdtempSync(join(tmpdir(), 'skiff-scheduler-service-'));
    await registerNode(api, makeNode('n1', { cpu: '2', memory: '4Gi', zone: 'a' }));
    await registerNode(api, makeNode('n2', { cpu: '2', memory: '4Gi', zone: 'b' }));
    await registerNode(
      api,
      makeNode('gpu', {
        cpu: '8',
        memory: '64Gi',
        taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
      }),
    );
  });
  after(async () => {
    await cluster?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const skiff = async (...args: string[]): Promise<RunResult> => {
    const result = await runSkiff(
      ['--server', cluster.controlPlane.apiAddress, '--token', cluster.adminToken, ...args],
      { env: { ...process.env, SKIFF_CONFIG: join(work, 'no-config'), SKIFF_LOG_LEVEL: 'warn' } },
    );
    assert.equal(result.code, 0, `skiff ${args.join(' ')} failed (exit ${result.code}): ${result.stderr}`);
    return result;
  };
  const pod = (name: string): Promise<Pod> => api.get('Pod', 'default', name);
  const eventsOf = async (name: string, reason: string): Promise<Event[]> =>
    (await api.list('Event', { namespace: 'default' })).items.filter(
      (e) => e.involvedObject?.name === name && e.reason === reason,
    );
  const bound = (name: string): Promise<Pod> =>
    until(`pod ${name} bound`, async () => {
      const current = await pod(name);
      return current.spec.nodeName ? current : undefined;
    });

  test('a pod without a node is created Pending and bound, with PodScheduled True and a Scheduled Event', async () => {
    const created = await api.create(userPod(makePod('web', { cpu: '100m', memory: '64Mi' })));
    assert.equal(created.status?.phase, 'Pending');
    assert.equal(created.spec.nodeName, undefined);
    const placed = await bound('web');
    assert.ok(
      ['n1', 'n2'].includes(placed.spec.nodeName!),
      `not on the tainted node: ${placed.spec.nodeName}`,
    );
    const condition = placed.status?.conditions?.find((c) => c.type === 'PodScheduled');
    assert.equal(condition?.status, 'True');
    const [scheduled] = await until('a Scheduled event', async () => {
      const found = await eventsOf('web', 'Scheduled');
      return found.length > 0 ? found : undefined;
    });
    assert.equal(scheduled!.message, `Successfully assigned default/web to ${placed.spec.nodeName}`);
    assert.equal(scheduled!.type, 'Normal');
    assert.equal(scheduled!.source?.component, 'default-scheduler');

    const metrics = await (await fetch(`http://${cluster.controlPlane.httpAddress}/metrics`)).text();
    assert.match(metrics, /^skiff_scheduler_schedule_attempts_total\{result="scheduled"\} [1-9]/m);
    assert.match(metrics, /^skiff_scheduler_pending_pods\{queue="active"\} 0$/m);
    assert.match(
      metrics,
      /^skiff_scheduler_scheduling_attempt_duration_seconds_count\{result="scheduled"\} [1-9]/m,
    );
  });

  test('a pod that fits nowhere stays Pending with the reasons, and is placed when a node that fits is added', async () => {
    await api.create(userPod(makePod('big', { cpu: '100m', memory: '100Gi' })));
    const expected =
      '0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient memory. ' +
      'preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, ' +
      '2 No preemption victims found for incoming pod.';
    const refused = await until('PodScheduled False', async () => {
      const current = await pod('big');
      const condition = current.status?.conditions?.find((c) => c.type === 'PodScheduled');
      return condition?.status === 'False' ? condition : undefined;
    });
    assert.equal(refused.reason, 'Unschedulable');
    assert.equal(refused.message, expected);
    const [failed] = await until('a FailedScheduling event', async () => {
      const found = await eventsOf('big', 'FailedScheduling');
      return found.length > 0 ? found : undefined;
    });
    assert.equal(failed!.type, 'Warning');
    assert.equal(failed!.message, expected);
    assert.equal((await pod('big')).status?.phase, 'Pending');

    const described = await skiff('describe', 'pod', 'big');
    assert.match(
      described.stdout,
      /Warning\s+FailedScheduling\s+.*0\/3 nodes are available: 1 node\(s\) had untolerated taint \{dedicated: gpu\}, 2 Insufficient memory\./,
    );

    // the node that fits: the pod waits for such a change, not for a timer
    const added = Date.now();
    await registerNode(api, makeNode('large', { cpu: '4', memory: '128Gi' }));
    const placed = await bound('big');
    const tookMs = Date.now() - added;
    assert.equal(placed.spec.nodeName, 'large');
    assert.ok(tookMs < 5000, `placed ${tookMs} ms after the node was added`);
  });

  test('preemption: a higher-priority pod evicts a lower one, is nominated, and bound once the victim is gone', async () => {
    for (const [name, value] of [
      ['low', 100],
      ['high', 1000],
    ] as const) {
      await api.create({
        apiVersion: 'scheduling.k8s.io/v1',
        kind: 'PriorityClass',
        metadata: { name },
        value,
      });
    }
    await registerNode(api, makeNode('small', { cpu: '1', memory: '1Gi', labels: { size: 'small' } }));
    const onSmall = { nodeSelector: { size: 'small' } };
    // a graceful victim: with no agent to stop it, it stays Terminating until finalized below
    await api.create(
      userPod(makePod('victim', { cpu: '800m', ...onSmall }), {
        priorityClassName: 'low',
        terminationGracePeriodSeconds: 30,
      }),
    );
    assert.equal((await bound('victim')).spec.nodeName, 'small');
    await api.create(
      userPod(makePod('preemptor', { cpu: '800m', ...onSmall }), { priorityClassName: 'high' }),
    );
    const nominated = await until('preemptor nominated', async () => {
      const current = await pod('preemptor');
      return current.status?.nominatedNodeName ? current : undefined;
    });
    assert.equal(nominated.status?.nominatedNodeName, 'small');
    assert.equal(nominated.spec.nodeName, undefined);
    const victim = await pod('victim');
    assert.ok(victim.metadata.deletionTimestamp, 'the victim is being deleted');
    const [preempted] = await eventsOf('victim', 'Preempted');
    assert.equal(preempted?.message, `Preempted by pod ${nominated.metadata.uid} on node small`);

    const wide = await skiff('get', 'pods', '-o', 'wide');
    const lines = wide.stdout.trimEnd().split('\n');
    assert.match(
      lines[0]!,
      /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES$/,
    );
    assert.match(
      lines.find((l) => l.startsWith('preemptor '))!,
      /\s<none>\s+<none>\s+small\s+<none>$/,
    );
    assert.match(
      lines.find((l) => l.startsWith('victim '))!,
      /\s<none>\s+small\s+<none>\s+<none>$/,
    );
    assert.match(
      lines.find((l) => l.startsWith('big '))!,
      /\s<none>\s+large\s+<none>\s+<none>$/,
    );

    // what the victim's agent would do once its containers stopped
    await api.delete('Pod', 'default', 'victim', { gracePeriodSeconds: 0 });
    const placed = await bound('preemptor');
    assert.equal(placed.spec.nodeName, 'small');
    assert.equal(placed.status?.nominatedNodeName, undefined, 'the binding clears the nomination');
  });

  test('bad input: a pod naming a PriorityClass that does not exist is refused; get priorityclasses lists them', async () => {
    await assert.rejects(
      api.create(userPod(makePod('nameless'), { priorityClassName: 'no-such-class' })),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /spec\.priorityClassName: no PriorityClass with name "no-such-class" was found/.test(err.message),
    );
    const listed = await skiff('get', 'priorityclasses');
    assert.match(listed.stdout.split('\n')[0]!, /^NAME\s+VALUE\s+GLOBAL-DEFAULT\s+AGE\s+PREEMPTIONPOLICY$/);
    assert.match(listed.stdout, /^high\s+1000\s+false\s/m);
    assert.match(listed.stdout, /^system-node-critical\s+2000001000\s+false\s/m);
  });

  test('a scheduler profile naming an unknown plugin or a bad weight stops start-up, naming it', async () => {
    const profile = join(work, 'profile.yaml');
    writeFileSync(profile, 'plugins:\n  score:\n    enabled: [{name: NoSuchPlugin, weight: 2}]\n');
    await assert.rejects(
      startControlPlane({
        etcdEndpoints: ['http://127.0.0.1:1'],
        stateDir: work,
        schedulerConfigFile: profile,
      }),
      (err: unknown) => err instanceof InvalidArgumentError && /NoSuchPlugin/.test(err.message),
    );
    writeFileSync(profile, 'plugins:\n  score:\n    enabled: [{name: ImageLocality, weight: -1}]\n');
    await assert.rejects(
      startControlPlane({
        etcdEndpoints: ['http://127.0.0.1:1'],
        stateDir: work,
        schedulerConfigFile: profile,
      }),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        /weight/.test(err.message) &&
        /ImageLocality|-1/.test(err.message),
    );
  });
});
