import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FailedPreconditionError } from '../../proto/errors.js';
import { stopProcess } from '../../cli/up/process-support.js';
import { startEtcd, type EtcdProcess } from '../../cli/up/etcd-process.js';

function listen(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => resolve(server));
  });
}

function portOf(server: Server): number {
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

describe('startEtcd', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-etcd-process-'));
  const started: EtcdProcess[] = [];
  const blockers: Server[] = [];
  after(async () => {
    await Promise.all(started.map((etcd) => etcd.stop()));
    await Promise.all(blockers.map((server) => new Promise((resolve) => server.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  test('starts on free ports, is ready for writes, logs to the given file and stops', async () => {
    const logFile = join(dir, 'etcd-a.log');
    const etcd = await startEtcd({ dataDir: join(dir, 'a'), output: { logFile } });
    started.push(etcd);
    assert.match(etcd.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${etcd.endpoint}/health`);
    assert.equal(health.status, 200);
    assert.match(readFileSync(logFile, 'utf8'), /starting an etcd server/);
    await etcd.stop();
    const exit = await etcd.exited;
    assert.ok(exit.signal === 'SIGTERM' || exit.code === 0, `exit ${JSON.stringify(exit)}`);
    await assert.rejects(fetch(`${etcd.endpoint}/health`));
    await etcd.stop();
  });

  test('an exact port that is taken is a clear error; a preferred one falls back', async () => {
    const blocker = await listen();
    blockers.push(blocker);
    const taken = portOf(blocker);
    await assert.rejects(
      startEtcd({ dataDir: join(dir, 'b'), clientPort: taken }),
      (err: unknown) =>
        err instanceof FailedPreconditionError && err.message.includes(`127.0.0.1:${taken} is not available`),
    );
    const etcd = await startEtcd({ dataDir: join(dir, 'b'), preferredClientPort: taken });
    started.push(etcd);
    assert.notEqual(etcd.clientPort, taken);
  });

  test('restarts on the same data dir and ports', async () => {
    const first = await startEtcd({ dataDir: join(dir, 'c') });
    started.push(first);
    await first.stop();
    const second = await startEtcd({
      dataDir: join(dir, 'c'),
      clientPort: first.clientPort,
      peerPort: first.peerPort,
    });
    started.push(second);
    assert.equal(second.endpoint, first.endpoint);
  });

  test('a detached etcd runs in its own session and still stops by pid', async () => {
    const etcd = await startEtcd({
      dataDir: join(dir, 'd'),
      detached: true,
      output: { logFile: join(dir, 'etcd-d.log') },
    });
    started.push(etcd);
    const stat = readFileSync(`/proc/${etcd.pid}/stat`, 'utf8');
    const sessionId = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
    assert.equal(sessionId, etcd.pid, 'a detached child leads its own session');
    await etcd.stop();
  });

  test('a detached etcd outlives the process that started it and is stopped by pid', async () => {
    const launcher = new URL('../../cli/up/etcd-process.js', import.meta.url).href;
    const script = `
      const { startEtcd } = await import(${JSON.stringify(launcher)});
      const etcd = await startEtcd({
        dataDir: ${JSON.stringify(join(dir, 'f'))},
        detached: true,
        output: { logFile: ${JSON.stringify(join(dir, 'etcd-f.log'))} },
      });
      process.stdout.write(JSON.stringify({ pid: etcd.pid, endpoint: etcd.endpoint }));
      process.exit(0);`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [...process.execArgv.filter((arg) => !arg.startsWith('--test')), '--input-type=module', '-e', script],
      { timeout: 30_000 },
    );
    const { pid, endpoint } = JSON.parse(stdout) as { pid: number; endpoint: string };
    try {
      assert.equal((await fetch(`${endpoint}/health`)).status, 200, 'still serving after its parent exited');
    } finally {
      await stopProcess(pid);
    }
    await assert.rejects(fetch(`${endpoint}/health`));
  });

  test('a server that exits during start-up is reported with its last output lines', async () => {
    await assert.rejects(
      startEtcd({ dataDir: join(dir, 'e'), autoCompactionRetention: 'garbage' }),
      (err: unknown) =>
        err instanceof Error && err.message.includes('exited') && err.message.includes('invalid duration'),
    );
  });
});
