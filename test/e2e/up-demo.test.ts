/**
 * What `npm start` shows: `skiff up` in the foreground on a fresh state dir runs one node, builds
 * the demo image with skiff's own builder, pushes it to the cluster registry, and the demo pod
 * runs it on that node and serves the demo's page; Ctrl-C then removes the node's pods, network
 * and namespace, the nodes' switch and the machine's veth, along with every process.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidRunning, prepareTestCluster, skiffArgv } from './cli-harness.js';

describe('npm start: skiff up with its demo', { timeout: 240_000 }, () => {
  const cluster = prepareTestCluster('demo');
  after(() => cluster.dispose());

  test('the demo pod runs the image up built and pushed, serves its page, and Ctrl-C leaves nothing', async () => {
    const child = spawn(process.execPath, [...skiffArgv, 'up', '--state', cluster.stateDir], {
      env: cluster.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      const deadline = Date.now() + 150_000;
      while (!/press Ctrl-C/.test(output)) {
        assert.ok(Date.now() < deadline, `skiff up did not become ready:\n${output}`);
        assert.equal(child.exitCode, null, `skiff up exited early:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.match(output, /demo: skiff image .* build .* -t demo\/web:1/);
      assert.match(output, /demo: pod\/hello created/);
      assert.match(output, /skiff get pods -n demo -o wide/, 'it says how to look');
      let wide = '';
      for (const until = Date.now() + 60_000; Date.now() < until;) {
        wide = (await cluster.skiff(['get', 'pods', '-n', 'demo', '-o', 'wide'])).stdout;
        if (/^hello\s+1\/1\s+Running/m.test(wide)) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      assert.match(wide, /^hello\s+1\/1\s+Running\s.*\s10\.244\.\d+\.\d+\s/m, wide);
      const record = JSON.parse(readFileSync(join(cluster.stateDir, 'cluster.json'), 'utf8')) as {
        agents: { pid: number; netns: string }[];
        network: { switchNamespace: string; machineVeth: string };
      };
      const ip = (
        await cluster.skiff(['get', 'pod', 'hello', '-n', 'demo', '-o', 'jsonpath={.status.podIP}'])
      ).stdout.trim();
      const page = execFileSync('ip', [
        'netns',
        'exec',
        record.agents[0]!.netns,
        '/bin/busybox',
        'wget',
        '-qO-',
        `http://${ip}:8080/`,
      ]).toString();
      assert.match(page, /Hello from skiff/);

      child.kill('SIGINT');
      const [code] = await exited;
      assert.equal(code, 0, `skiff up exit after Ctrl-C:\n${output}`);
      assert.ok(!pidRunning(record.agents[0]!.pid), 'the agent stopped');
      const namespaces = execFileSync('ip', ['netns', 'list']).toString();
      assert.ok(!namespaces.includes(record.agents[0]!.netns), 'the node namespace is gone');
      assert.ok(!namespaces.includes(record.network.switchNamespace), 'the switch is gone');
      assert.ok(!existsSync(`/sys/class/net/${record.network.machineVeth}`), "the machine's veth is gone");
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
