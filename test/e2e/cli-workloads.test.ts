/**
 * Workload controllers through the CLI against a real control plane (etcd, NATS, no agents): a
 * ReplicaSet keeps its replicas, and deleting it cascades as --cascade says (the garbage
 * collector). Pods stay unbound here; that the scheduler and agents run them is tested elsewhere.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCluster, type RunResult, type TestCluster } from './cli-harness.js';

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
  before(async () => {
    cluster = await startTestCluster('workloads');
  });
  after(async () => {
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
      /web\s+3\s+3\s+0/.test(ok(await cluster.skiff(['get', 'rs', 'web']), 'get rs')),
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
});
