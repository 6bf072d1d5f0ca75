/**
 * Two control planes of one cluster on two hosts (test/harness/lab.ts `controlPlanes: 2`): cp with
 * etcd and NATS, cp2 started on an empty state dir with cp's server token, and an agent on n1
 * given both (`--server cp,cp2`), which joins through cp and keeps its tunnel there (the scheduler
 * places the pod on it, the one node). Driven
 * through the built CLI: cp2 holds the cluster CA it took from etcd; `skiff logs` and `skiff exec`
 * through cp2 reach the pod on n1 (cp2 relays them to cp, which logs each); after cp is killed
 * (SIGKILL: no goodbye, its lease in etcd expires) the agent reconnects to cp2 and the same
 * commands work through it. The lab is removed after, whatever happened.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import type { Pod } from '../../proto/gen/types.js';
import { startLab, type Lab } from '../harness/lab.js';
import { leftovers } from '../harness/hosts.js';
import type { RunResult } from './cli-harness.js';

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

describe('two control planes: one CA through etcd, pod streams through either', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  const L = (): Lab => {
    if (!lab) throw new Error('the lab did not start');
    return lab;
  };
  /** The CLI against cp2 (the client config's CA and admin token, cp2's address). */
  const viaCp2 = (args: string[]) => L().skiff(['--server', L().cp2!.api, ...args]);

  before(async () => {
    lab = await startLab({ nodes: 1, controlPlanes: 2, prefix: 'mcp' });
  });
  after(async () => {
    const dir = lab?.hosts.dir;
    const id = lab?.hosts.id;
    await lab?.dispose();
    if (dir && id) assert.deepEqual(leftovers({ id, dir }), [], 'the lab left nothing behind');
  });

  test('cp2 took the cluster CA from etcd: the same CA, and the node joined through cp is Ready, read through cp2', async () => {
    assert.equal(readFileSync(join(L().cp2!.caDir, 'ca.crt'), 'utf8'), readFileSync(L().cp.caFile, 'utf8'));
    const out = ok(await viaCp2(['get', 'node', 'n1']), 'get node through cp2').stdout;
    assert.match(out, /\bn1\s+Ready\b/);
  });

  test('logs and exec through cp2 reach the pod on n1, whose tunnel cp holds; then cp is killed and the agent moves to cp2', async () => {
    const work = join(L().hosts.dir, 'cli');
    writeFileSync(join(L().hosts.dir, 'images.tar'), archiveTar(ociLayout([busyboxImage('busybox:1')])));
    const image = (...args: string[]) => L().skiff(['image', '--root', join(work, 'root'), ...args]);
    ok(await image('load', '-i', join(L().hosts.dir, 'images.tar')), 'image load');
    ok(await image('tag', 'busybox:1', 'talker:1'), 'image tag');
    ok(await image('push', 'talker:1'), 'image push');
    const manifest = join(L().hosts.dir, 'talker.yaml');
    writeFileSync(
      manifest,
      `apiVersion: v1
kind: Pod
metadata: {name: talker, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: talker:1
    command: [sh, -c, 'echo hello from n1; exec sleep 100000']
`,
    );
    ok(await L().skiff(['apply', '-f', manifest]), 'apply');
    await L().waitFor('pod talker Running', async () => {
      const pod = JSON.parse(
        ok(await L().skiff(['get', 'pod', 'talker', '-o', 'json']), 'get pod').stdout,
      ) as Pod;
      return pod.status?.phase === 'Running';
    });

    const streamsThroughCp2 = async (): Promise<void> => {
      assert.deepEqual(await viaCp2(['logs', 'talker']), { code: 0, stdout: 'hello from n1\n', stderr: '' });
      const exec = await viaCp2(['exec', 'talker', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
      assert.deepEqual(exec, { code: 7, stdout: 'out\n', stderr: 'err\n' });
    };
    await streamsThroughCp2();
    assert.match(
      readFileSync(L().cp.controlplane.logFile, 'utf8'),
      /"user":"admin".*pod stream relayed for another control plane|pod stream relayed for another control plane.*"user":"admin"/,
      'cp relayed the sessions cp2 took, and logged them with their user',
    );

    // cp dies without a word: the agent's connection fails, it dials cp2
    const killed = Date.now();
    L().cp.controlplane.kill('SIGKILL');
    await L().cp.controlplane.exited;
    await L().waitFor(
      'exec through cp2 after cp died',
      async () => (await viaCp2(['exec', 'talker', '--', 'true'])).code === 0,
      60_000,
    );
    const movedMs = Date.now() - killed;
    await streamsThroughCp2();
    console.log(`# streams through cp2 again ${(movedMs / 1000).toFixed(1)} s after cp was killed`);
  });
});
