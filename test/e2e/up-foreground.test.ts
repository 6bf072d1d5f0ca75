/**
 * `skiff up` in the foreground (what `npm start` runs) through the built binary: it serves until
 * Ctrl-C, then stops every process it started; and when the default ports are taken it picks free
 * ones instead of failing.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { DEFAULT_PORTS } from '../../cli/up/cluster.js';
import { pidRunning, prepareTestCluster, skiffArgv } from './cli-harness.js';

interface Record {
  etcd: { pid: number; clientPort: number };
  nats: { pid: number; port: number };
  controlplane: { pid: number; apiPort: number; httpPort: number };
}

/** Holds `port` on loopback; undefined when something else already holds it (taken either way). */
async function holdPort(port: number): Promise<Server | undefined> {
  const server = createServer();
  try {
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    return server;
  } catch {
    server.close();
    return undefined;
  }
}

describe('skiff up in the foreground', { timeout: 180_000 }, () => {
  const cluster = prepareTestCluster('foreground');
  const held: Server[] = [];
  after(async () => {
    for (const server of held) server.close();
    await cluster.dispose();
  });

  test('with the default ports taken it serves on free ones, and Ctrl-C stops everything', async () => {
    for (const port of [
      DEFAULT_PORTS.api,
      DEFAULT_PORTS.http,
      DEFAULT_PORTS.etcdClient,
      DEFAULT_PORTS.nats,
    ]) {
      const server = await holdPort(port);
      if (server) held.push(server);
    }
    const child = spawn(
      process.execPath,
      [...skiffArgv, 'up', '--agents', '0', '--no-demo', '--state', cluster.stateDir],
      { env: cluster.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      const deadline = Date.now() + 90_000;
      while (!/cluster ready/.test(output)) {
        assert.ok(Date.now() < deadline, `skiff up did not become ready:\n${output}`);
        assert.equal(child.exitCode, null, `skiff up exited early:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const record = JSON.parse(readFileSync(join(cluster.stateDir, 'cluster.json'), 'utf8')) as Record;
      assert.notEqual(record.controlplane.apiPort, DEFAULT_PORTS.api);
      assert.notEqual(record.controlplane.httpPort, DEFAULT_PORTS.http);
      assert.notEqual(record.etcd.clientPort, DEFAULT_PORTS.etcdClient);
      assert.notEqual(record.nats.port, DEFAULT_PORTS.nats);
      const ns = await cluster.skiff(['get', 'ns', '-o', 'name']);
      assert.equal(ns.code, 0, ns.stderr);
      assert.match(ns.stdout, /namespace\/default/);

      child.kill('SIGINT');
      const [code] = await exited;
      assert.equal(code, 0, `skiff up exit after Ctrl-C:\n${output}`);
      for (const part of ['etcd', 'nats', 'controlplane'] as const) {
        assert.equal(pidRunning(record[part].pid), false, `${part} (pid ${record[part].pid}) still runs`);
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
