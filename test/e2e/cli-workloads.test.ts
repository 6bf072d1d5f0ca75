/**
 * Workload controllers through the CLI against a real control plane (etcd, NATS, no agents): a
 * ReplicaSet keeps its replicas, and deleting it cascades as --cascade says (the garbage
 * collector), and a Deployment rolls through the rollout verbs. There are no agents here: a stand-in
 * in this process reports each new pod Ready (as an agent would once its readiness probe passed),
 * except pods labelled stuck=yes; that real agents run them is tested with the agents.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiClient } from '../../proto/client.js';
import type { Pod } from '../../proto/gen/types.js';
import {
  connectCluster,
  standIn,
  startTestCluster,
  type RunResult,
  type TestCluster,
} from './cli-harness.js';

function ok(result: RunResult, what: string): string {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result.stdout;
}

const replicaSet = (name: string, replicas: number) => `apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: ${name}, namespace: default}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      containers: [{name: web, image: 'web:1'}]
`;

describe('workload controllers through the CLI', () => {
  let cluster: TestCluster;
  let api: ApiClient;
  let agents: { stop(): Promise<void> } | undefined;
  before(async () => {
    cluster = await startTestCluster('workloads');
    api = connectCluster(cluster);
    const reportReady = async () => {
      const { items } = await api.list('Pod', { namespace: 'default' });
      for (const pod of items as Pod[]) {
        if (pod.metadata.labels?.['stuck'] === 'yes' || pod.metadata.deletionTimestamp) continue;
        if (pod.status?.conditions?.some((c) => c.type === 'Ready')) continue;
        await api
          .updateStatus({
            ...pod,
            status: {
              phase: 'Running',
              conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() }],
            },
          })
          .catch(() => {});
      }
    };
    agents = standIn(reportReady);
  });
  after(async () => {
    await agents?.stop();
    api?.close();
    await cluster?.dispose();
  });

  async function podNames(selector: string): Promise<string[]> {
    const out = ok(await cluster.skiff(['get', 'pods', '-l', selector, '-o', 'name']), 'get pods');
    return out.split('\n').filter(Boolean).sort();
  }

  async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  test('a ReplicaSet keeps its replicas: created, replaced when one is deleted, fewer when scaled down', async () => {
    ok(await cluster.skiff(['apply', '-f', '-'], { input: replicaSet('web', 3) }), 'apply');
    await until('3 pods', async () => (await podNames('app=web')).length === 3);
    const table = ok(await cluster.skiff(['get', 'rs', 'web']), 'get rs');
    assert.match(table, /^NAME\s+DESIRED\s+CURRENT\s+READY/m);
    await until('status current 3', async () =>
      /web\s+3\s+3\s+3/.test(ok(await cluster.skiff(['get', 'rs', 'web']), 'get rs')),
    );
    const [victim] = await podNames('app=web');
    ok(await cluster.skiff(['delete', victim!]), 'delete a pod');
    await until('replaced', async () => {
      const names = await podNames('app=web');
      return names.length === 3 && !names.includes(victim!);
    });
    ok(await cluster.skiff(['apply', '-f', '-'], { input: replicaSet('web', 1) }), 'apply 1 replica');
    await until('1 pod', async () => (await podNames('app=web')).length === 1);
  });

  test('delete cascades: background removes the pods, orphan keeps them without an owner', async () => {
    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input: replicaSet('gone', 2) + '---\n' + replicaSet('kept', 2),
      }),
      'apply',
    );
    await until('4 pods', async () => (await podNames('app in (gone,kept)')).length === 4);

    ok(await cluster.skiff(['delete', 'rs', 'gone']), 'delete rs gone');
    await until('its pods collected', async () => (await podNames('app=gone')).length === 0);

    ok(await cluster.skiff(['delete', 'rs', 'kept', '--cascade=orphan']), 'delete rs kept --cascade=orphan');
    await until('the ReplicaSet gone', async () => (await cluster.skiff(['get', 'rs', 'kept'])).code !== 0);
    const pods = await podNames('app=kept');
    assert.equal(pods.length, 2, 'orphaned pods stay');
    const yaml = ok(await cluster.skiff(['get', pods[0]!, '-o', 'yaml']), 'get pod');
    assert.doesNotMatch(yaml, /ownerReferences/);

    const bad = await cluster.skiff(['delete', 'pods', '-l', 'app=kept', '--cascade=sideways']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--cascade=sideways: must be background, foreground or orphan/);
    assert.equal((await podNames('app=kept')).length, 2, 'nothing deleted by a refused command');
  });

  test('a Deployment scales, rolls a new image, reports it done, lists and undoes revisions, pauses and resumes', async () => {
    const images = async () =>
      ((await api.list('Pod', { namespace: 'default', labelSelector: 'app=shop' })).items as Pod[])
        .filter((p) => !p.metadata.deletionTimestamp)
        .map((p) => p.spec.containers?.[0]?.image)
        .sort();
    ok(
      await cluster.skiff(['create', 'deployment', 'shop', '--image=shop:1', '--replicas=2']),
      'create deployment',
    );
    ok(await cluster.skiff(['rollout', 'status', 'deployment/shop', '--timeout', '60s']), 'rollout status');
    assert.match(
      ok(await cluster.skiff(['scale', 'deploy/shop', '--replicas', '4']), 'scale'),
      /^deployment\.apps\/shop scaled$/m,
    );
    await until('4 pods', async () => (await images()).length === 4);
    const table = ok(await cluster.skiff(['get', 'deploy', 'shop']), 'get deploy');
    assert.match(table, /^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE/m);

    assert.match(
      ok(await cluster.skiff(['set', 'image', 'deploy/shop', 'shop=shop:2']), 'set image'),
      /deployment\.apps\/shop image updated/,
    );
    const status = ok(
      await cluster.skiff(['rollout', 'status', 'deploy/shop', '--timeout', '60s']),
      'rollout status',
    );
    assert.match(status, /deployment "shop" successfully rolled out/);
    assert.deepEqual(await images(), ['shop:2', 'shop:2', 'shop:2', 'shop:2']);
    const history = ok(await cluster.skiff(['rollout', 'history', 'deploy/shop']), 'history');
    assert.match(history, /^REVISION\s+CHANGE-CAUSE\n1\s+<none>\n2\s+<none>$/m);

    assert.match(
      ok(await cluster.skiff(['rollout', 'undo', 'deploy/shop']), 'undo'),
      /deployment\.apps\/shop rolled back/,
    );
    ok(
      await cluster.skiff(['rollout', 'status', 'deploy/shop', '--timeout', '60s']),
      'rollout status after undo',
    );
    await until('back on shop:1', async () => (await images()).join() === 'shop:1,shop:1,shop:1,shop:1');
    assert.match(
      ok(await cluster.skiff(['rollout', 'history', 'deploy/shop']), 'history'),
      /^2\s+<none>\n3\s+<none>$/m,
    );

    ok(await cluster.skiff(['rollout', 'pause', 'deploy/shop']), 'pause');
    ok(await cluster.skiff(['set', 'image', 'deploy/shop', '*=shop:3']), 'set image while paused');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(await images(), ['shop:1', 'shop:1', 'shop:1', 'shop:1'], 'nothing rolls while paused');
    ok(await cluster.skiff(['rollout', 'resume', 'deploy/shop']), 'resume');
    ok(
      await cluster.skiff(['rollout', 'status', 'deploy/shop', '--timeout', '60s']),
      'rollout status after resume',
    );
    await until('on shop:3', async () => (await images()).join() === 'shop:3,shop:3,shop:3,shop:3');

    const before = (
      (await api.list('Pod', { namespace: 'default', labelSelector: 'app=shop' })).items as Pod[]
    ).map((p) => p.metadata.name);
    assert.match(ok(await cluster.skiff(['rollout', 'restart', 'deploy/shop']), 'restart'), /restarted/);
    ok(
      await cluster.skiff(['rollout', 'status', 'deploy/shop', '--timeout', '60s']),
      'rollout status after restart',
    );
    await until('every pod replaced', async () => {
      const now = (
        (await api.list('Pod', { namespace: 'default', labelSelector: 'app=shop' })).items as Pod[]
      ).filter((p) => !p.metadata.deletionTimestamp);
      return now.length === 4 && now.every((p) => !before.includes(p.metadata.name));
    });
    assert.equal(
      ok(
        await cluster.skiff(['wait', '--for=condition=Available', 'deployment/shop', '--timeout=60s']),
        'wait',
      ),
      'deployment.apps/shop condition met\n',
    );
    const running = ok(
      await cluster.skiff([
        'wait',
        '--for=jsonpath={.status.phase}=Running',
        'pods',
        '-l',
        'app=shop',
        '--timeout=30s',
      ]),
      'wait -l',
    );
    assert.equal(running.split('\n').filter(Boolean).length, 4);
    ok(await cluster.skiff(['delete', 'deploy', 'shop']), 'delete deployment');
    await until('its ReplicaSets and pods collected', async () => (await images()).length === 0);
    ok(await cluster.skiff(['wait', '--for=delete', 'deployment/shop', '--timeout=30s']), 'wait for delete');
  });

  test('rollout status exits 1 once the progress deadline passes; bad arguments are refused by name', async () => {
    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input: `apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck, namespace: default}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck, stuck: 'yes'}}
    spec: {containers: [{name: c, image: 'never:1'}]}
`,
      }),
      'apply stuck',
    );
    const stuck = await cluster.skiff(['rollout', 'status', 'deploy/stuck', '--timeout', '60s']);
    assert.equal(stuck.code, 1, stuck.stdout + stuck.stderr);
    assert.match(stuck.stderr, /error: deployment "stuck" exceeded its progress deadline/);

    const notAvailable = await cluster.skiff([
      'wait',
      '--for=condition=Available',
      'deploy/stuck',
      '--timeout=1s',
    ]);
    assert.equal(notAvailable.code, 1);
    assert.match(notAvailable.stderr, /error: timed out waiting for the condition on deployments\/stuck/);

    const noReplicas = await cluster.skiff(['scale', 'deploy/stuck']);
    assert.notEqual(noReplicas.code, 0);
    assert.match(noReplicas.stderr, /--replicas/);
    const wrongKind = await cluster.skiff(['scale', 'configmap/x', '--replicas', '1']);
    assert.notEqual(wrongKind.code, 0);
    assert.match(wrongKind.stderr, /configmaps cannot be scaled; only deployments, replicasets/);
    const noContainer = await cluster.skiff(['set', 'image', 'deploy/stuck', 'nosuch=x:1']);
    assert.notEqual(noContainer.code, 0);
    assert.match(noContainer.stderr, /no container named "nosuch" \(it has c\)/);
    const stale = await cluster.skiff([
      'scale',
      'deploy/stuck',
      '--replicas',
      '3',
      '--current-replicas',
      '5',
    ]);
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /expected 5 replicas, found 1/);
  });

  test('a pod deleted after its node went is not left Terminating: the pod garbage collector removes it', async () => {
    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input: `apiVersion: v1
kind: Pod
metadata: {name: stranded, namespace: default, labels: {stuck: 'yes'}}
spec:
  nodeName: gone-node
  terminationGracePeriodSeconds: 30
  containers: [{name: c, image: 'x:1'}]
`,
      }),
      'apply',
    );
    ok(await cluster.skiff(['delete', 'pod', 'stranded']), 'delete');
    assert.match(ok(await cluster.skiff(['get', 'pod', 'stranded']), 'get'), /Terminating/);
    ok(
      await cluster.skiff(['wait', '--for=delete', 'pod/stranded', '--timeout=70s'], { timeoutMs: 80_000 }),
      'collected',
    );
  });
});
