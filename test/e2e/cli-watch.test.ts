/**
 * `skiff get -w` through the built binary against a real cluster, when the watch's history is
 * compacted under it: it lists again, prints only what changed, and keeps watching.
 *
 * A live etcd watch is never cancelled by compaction; one that resumes from a compacted
 * revision is. So the control plane is paused (SIGSTOP) while etcd is restarted, objects are
 * changed straight in etcd and history is compacted; resumed, the control plane's watch
 * reconnects into compacted history and the CLI's watch ends with GoneError.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive } from '../../cli/up/process-support.js';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import { skiffArgv, startTestCluster, type RunResult, type TestCluster } from './cli-harness.js';

interface ClusterRecordFile {
  etcd: { pid: number; endpoint: string };
  controlplane: { pid: number };
}

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

const configMaps = (...names: string[]): string =>
  names
    .map((name) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}}\ndata: {v: "1"}\n`)
    .join('---\n');

async function until(
  what: string,
  check: () => boolean,
  timeoutMs = 30_000,
  explain: () => string = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${explain()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function retry<T>(call: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

describe('skiff get -w', { timeout: 240_000 }, () => {
  let cluster: TestCluster;
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    cluster = await startTestCluster('watch');
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await cluster?.dispose();
  });

  test('a watch whose history is compacted lists again, prints only what changed, and watches on', async () => {
    ok(await cluster.skiff(['apply', '-f', '-'], { input: configMaps('a', 'b', 'c') }), 'apply a, b, c');
    const recordPath = join(cluster.stateDir, 'cluster.json');
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as ClusterRecordFile;

    const watcher: ChildProcess = spawn(process.execPath, [...skiffArgv, 'get', 'cm', '-o', 'name', '-w'], {
      env: cluster.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => {
      if (watcher.exitCode === null && watcher.signalCode === null) watcher.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    watcher.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    watcher.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = (): string[] => stdout.split('\n').filter((line) => line !== '');
    const exited = new Promise<number | null>((resolve) => watcher.once('exit', (code) => resolve(code)));
    const output = (): string =>
      `\nget -w exit: ${watcher.exitCode ?? watcher.signalCode ?? 'running'}\nstdout:\n${stdout}\nstderr:\n${stderr}`;
    await until('the first list printed', () => lines().length >= 3, 30_000, output);
    assert.deepEqual(lines(), ['configmap/a', 'configmap/b', 'configmap/c']);
    // A change printed proves the watch is open at the control plane before it is paused.
    ok(await cluster.skiff(['apply', '-f', '-'], { input: configMaps('ready') }), 'apply ready');
    await until('the watch delivered a change', () => lines().length >= 4, 30_000, output);
    assert.equal(lines()[3], 'configmap/ready');

    const controlplanePid = record.controlplane.pid;
    process.kill(controlplanePid, 'SIGSTOP');
    cleanups.push(() => {
      if (isAlive(controlplanePid)) process.kill(controlplanePid, 'SIGCONT');
    });
    const etcdArgv = readFileSync(`/proc/${record.etcd.pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
    process.kill(record.etcd.pid, 'SIGTERM');
    await until('etcd stopped', () => !isAlive(record.etcd.pid), 15_000);
    const logFd = openSync(join(cluster.stateDir, 'etcd-restarted.log'), 'a');
    const etcd = spawn(etcdArgv[0]!, etcdArgv.slice(1), { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    etcd.unref();
    const etcdPid = etcd.pid!;
    cleanups.push(() => {
      if (isAlive(etcdPid)) process.kill(etcdPid, 'SIGKILL');
    });
    // `skiff down` (in dispose) stops what cluster.json names.
    writeFileSync(
      recordPath,
      JSON.stringify({
        ...JSON.parse(readFileSync(recordPath, 'utf8')),
        etcd: { ...record.etcd, pid: etcdPid },
      }),
    );

    // etcd takes only clients with a certificate of its own CA: the control plane's
    const pki = join(cluster.stateDir, 'pki');
    const store = new EtcdStore({
      endpoints: [record.etcd.endpoint],
      timeoutMs: 1000,
      credentials: {
        rootCertificate: readFileSync(join(pki, 'etcd', 'ca.crt')),
        certChain: readFileSync(join(pki, 'etcd', 'controlplane-client.crt')),
        privateKey: readFileSync(join(pki, 'etcd', 'controlplane-client.key')),
      },
    });
    try {
      await retry(() => store.health());
      const a = await store.get({ resource: 'configmaps', namespace: 'default', name: 'a' });
      await store.update(a.key, a.value, a.modRevision);
      await store.delete({ resource: 'configmaps', namespace: 'default', name: 'b' });
      await store.compact(await store.currentRevision());
    } finally {
      await store.close();
    }
    process.kill(controlplanePid, 'SIGCONT');

    await until('the changes printed after the re-list', () => lines().length >= 6, 30_000, output);
    assert.deepEqual(
      lines().slice(4),
      ['configmap/a', 'configmap/b'],
      'modified a, deleted b; c and ready are unchanged',
    );
    // stderr is another pipe: its line may come a moment after stdout's
    await until(
      'the re-list said on stderr',
      () => /no longer in the history; listed again/.test(stderr),
      10_000,
      output,
    );
    assert.match(stderr, /no longer in the history; listed again/);

    ok(await cluster.skiff(['apply', '-f', '-'], { input: configMaps('d') }), 'apply d');
    await until('the watch goes on after the re-list', () => lines().length >= 7, 30_000, output);
    assert.equal(lines()[6], 'configmap/d');

    watcher.kill('SIGINT');
    assert.equal(await exited, 0, `get -w exit after Ctrl-C; stderr: ${stderr}`);
  });
});
