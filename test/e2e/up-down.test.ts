/**
 * `skiff up --detach` / `skiff down` through the built binary: a cluster in a temp state dir,
 * stopped by pid, started again on the same data with every object still there.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigFile } from '../../cli/config.js';
import { listensOn } from '../../cli/up/process-support.js';
import { pidRunning, prepareTestCluster, skiffArgv, type RunResult } from './cli-harness.js';

async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

interface Record {
  etcd: { pid: number };
  nats: { pid: number };
  controlplane: { pid: number; api: string; http: string; apiSocket?: string };
}

/** Runs the built skiff in a network namespace of its own: no TCP to this machine's servers. */
function skiffWithoutNetwork(args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve) =>
    execFile(
      'unshare',
      ['--net', process.execPath, ...skiffArgv, ...args],
      { env, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

describe('skiff up / down', { timeout: 240_000 }, () => {
  const cluster = prepareTestCluster('updown');
  after(() => cluster.dispose());
  const recordPath = join(cluster.stateDir, 'cluster.json');
  const manifest = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: survivor}\ndata: {kept: "yes"}\n';

  test('up --detach starts etcd, NATS and the control plane and writes the client config', async () => {
    const up = ok(await cluster.up(), 'up --detach');
    const socket = join(cluster.stateDir, 'api.sock');
    assert.match(
      up.stdout,
      new RegExp(`cluster ready: API unix://${socket} \\(this machine\\), 127\\.0\\.0\\.1:\\d+ \\(TLS\\)`),
    );
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as Record;
    for (const part of ['etcd', 'nats', 'controlplane'] as const)
      assert.ok(pidRunning(record[part].pid), `${part} runs`);
    const config = readConfigFile(cluster.configPath)!;
    // the CLI calls the socket; the TLS address and its CA stay beside it
    assert.equal(config.server, `unix://${socket}`);
    assert.equal(record.controlplane.apiSocket, config.server);
    assert.equal(config.tlsServer, record.controlplane.api);
    assert.equal(config.ca, join(cluster.stateDir, 'pki', 'ca.crt'));
    assert.equal(config.http, record.controlplane.http);
    assert.equal(statSync(cluster.configPath).mode & 0o777, 0o600);
    assert.equal((await fetch(`${record.controlplane.http}/readyz`)).status, 200);
  });

  test('skiff get ns calls the socket: 0600 in the 0700 state dir, and TCP out of reach changes nothing', async () => {
    const socket = join(cluster.stateDir, 'api.sock');
    assert.ok(lstatSync(socket).isSocket());
    assert.equal(lstatSync(socket).mode & 0o777, 0o600);
    assert.equal(statSync(cluster.stateDir).mode & 0o777, 0o700);
    const local = ok(await cluster.skiff(['get', 'ns']), 'get ns');
    assert.match(local.stdout, /^default\s+Active\s/m);
    if (process.getuid?.() !== 0) return; // a network namespace of its own needs root
    // in a network namespace of its own the TCP address cannot be reached, the socket still can
    const config = readConfigFile(cluster.configPath)!;
    const noTcp = ok(await skiffWithoutNetwork(['get', 'ns'], cluster.env), 'get ns without TCP');
    assert.equal(noTcp.stdout, local.stdout);
    const overTls = await skiffWithoutNetwork(
      ['get', 'ns', '--server', config.tlsServer!, '--request-timeout', '2s'],
      cluster.env,
    );
    assert.notEqual(overTls.code, 0, 'the namespace really has no way to the TLS address');
    assert.match(overTls.stderr, new RegExp(`cannot reach the control plane at ${config.tlsServer}`));
  });

  test('etcd takes only the control plane: TLS, and a client certificate of the cluster CA', async () => {
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as Record & { etcd: { endpoint: string } };
    assert.match(record.etcd.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    const pki = join(cluster.stateDir, 'pki');
    assert.equal(statSync(pki).mode & 0o777, 0o700);
    for (const name of readdirSync(pki)) assert.equal(statSync(join(pki, name)).mode & 0o777, 0o600, name);
    const etcdctl = (...args: string[]) =>
      new Promise<{ code: number; output: string }>((resolve) =>
        execFile(
          'etcdctl',
          ['--endpoints', record.etcd.endpoint, '--dial-timeout=2s', '--command-timeout=3s', ...args],
          { env: { ...process.env, ETCDCTL_API: '3' } },
          (err, stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
        ),
      );
    const ca = ['--cacert', join(pki, 'ca.crt')];
    const refused = await etcdctl(...ca, 'get', '--prefix', '/skiff/tokens/');
    assert.notEqual(refused.code, 0, `without a client certificate etcd must refuse: ${refused.output}`);
    const withCert = await etcdctl(
      ...ca,
      '--cert', join(pki, 'controlplane-etcd-client.crt'),
      '--key', join(pki, 'controlplane-etcd-client.key'),
      'get', '--prefix', '--keys-only', '/skiff/tokens/',
    ); // prettier-ignore
    assert.equal(withCert.code, 0, withCert.output);
    assert.match(withCert.output, /\/skiff\/tokens\//);
    const plain = await fetch(record.etcd.endpoint.replace('https:', 'http:') + '/health').catch(
      (err: Error) => err,
    );
    assert.ok(plain instanceof Error || plain.status !== 200, 'plain http is not served');
  });

  test('up on a running state dir fails and says so', async () => {
    const again = await cluster.up();
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already running/);
  });

  test('two ups racing on one fresh state dir: one starts it, the other is refused', async () => {
    const other = prepareTestCluster('race');
    try {
      const results = await Promise.all([other.up(), other.up()]);
      const codes = results.map((r) => r.code).sort();
      assert.deepEqual(codes, [0, 1], results.map((r) => r.stderr).join('\n'));
      const refused = results.find((r) => r.code !== 0)!;
      assert.match(refused.stderr, /is starting it|already running/);
    } finally {
      await other.dispose();
    }
  });

  test('three ups at once on fresh state dirs: each control plane serves on ports of its own, and each config reaches its own cluster', async () => {
    const clusters = ['trio-a', 'trio-b', 'trio-c'].map((name) => prepareTestCluster(name));
    try {
      const results = await Promise.all(clusters.map((each) => each.up()));
      results.forEach((result, i) => ok(result, `up ${i}`));
      const records = clusters.map(
        (each) => JSON.parse(readFileSync(join(each.stateDir, 'cluster.json'), 'utf8')) as Record,
      );
      const addresses = records.flatMap((record) => [record.controlplane.api, record.controlplane.http]);
      assert.equal(new Set(addresses).size, addresses.length, `distinct addresses: ${addresses.join(' ')}`);
      for (const [i, each] of clusters.entries()) {
        const port = Number(records[i]!.controlplane.api.split(':')[1]);
        assert.ok(
          listensOn(records[i]!.controlplane.pid, port),
          `control plane ${i} listens on ${port} itself`,
        );
        ok(await each.skiff(['create', 'namespace', `only-in-${i}`]), `create in ${i}`);
      }
      for (const [i, each] of clusters.entries()) {
        const names = ok(await each.skiff(['get', 'ns', '-o', 'name']), `get ns ${i}`).stdout;
        for (let j = 0; j < clusters.length; j++)
          assert.equal(
            names.includes(`namespace/only-in-${j}\n`),
            i === j,
            `cluster ${i} sees only its own: ${names}`,
          );
      }
    } finally {
      await Promise.all(clusters.map((each) => each.dispose()));
    }
  });

  test('down stops every process and keeps the data; up again finds the objects', async () => {
    ok(await cluster.skiff(['apply', '-f', '-'], { input: manifest }), 'apply');
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as Record;
    const down = ok(await cluster.down(), 'down');
    assert.match(down.stdout, /stopped controlplane .*nats .*etcd/);
    for (const part of ['etcd', 'nats', 'controlplane'] as const)
      assert.ok(!pidRunning(record[part].pid), `${part} stopped`);
    assert.equal(existsSync(recordPath), false);
    assert.ok(existsSync(join(cluster.stateDir, 'etcd')), 'etcd data kept');
    assert.ok(!existsSync(join(cluster.stateDir, 'api.sock')), 'the control plane removed its socket');

    const cmd = await cluster.skiff(['get', 'cm', 'survivor']);
    assert.notEqual(cmd.code, 0, 'the API is down');

    ok(await cluster.up(), 'second up');
    const json = JSON.parse(
      ok(await cluster.skiff(['get', 'cm', 'survivor', '-o', 'json']), 'get after restart').stdout,
    );
    assert.equal(json.data.kept, 'yes');
    assert.equal(
      ok(await cluster.skiff(['apply', '-f', '-'], { input: manifest }), 're-apply').stdout,
      'configmap/survivor unchanged\n',
    );
  });

  test('with etcd dead, up keeps what runs and starts etcd again on its port; nothing is lost', async () => {
    const before = JSON.parse(readFileSync(recordPath, 'utf8')) as Record & { etcd: { endpoint: string } };
    process.kill(before.etcd.pid, 'SIGKILL');
    await waitUntil(() => !pidRunning(before.etcd.pid), 'etcd to die');
    const up = ok(await cluster.up(), 'up with etcd dead');
    assert.match(up.stderr, /etcd was not running: started again/);
    assert.match(
      up.stderr,
      new RegExp(`control plane is running \\(pid ${before.controlplane.pid}\\): kept`),
    );
    assert.doesNotMatch(up.stderr + up.stdout, /already running/);
    const after = JSON.parse(readFileSync(recordPath, 'utf8')) as Record & { etcd: { endpoint: string } };
    assert.notEqual(after.etcd.pid, before.etcd.pid);
    assert.equal(
      after.etcd.endpoint,
      before.etcd.endpoint,
      'the same port, so the kept control plane finds it',
    );
    assert.equal(after.controlplane.pid, before.controlplane.pid);
    await waitUntil(
      async () => (await cluster.skiff(['get', 'cm', 'survivor'])).code === 0,
      'the API to read again',
    );
  });

  test('down also stops an etcd restarted by hand on the same data, and says so', async () => {
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as Record;
    const cmdline = readFileSync(`/proc/${record.etcd.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    process.kill(record.etcd.pid, 'SIGKILL');
    await waitUntil(() => !pidRunning(record.etcd.pid), 'etcd to die');
    // "by hand": the same command line, not started by skiff, so cluster.json does not know its pid
    const byHand = spawn(cmdline[0]!, cmdline.slice(1), { detached: true, stdio: 'ignore' });
    byHand.unref();
    await waitUntil(() => pidRunning(byHand.pid!), 'the hand-started etcd');
    try {
      const down = ok(await cluster.down(), 'down');
      assert.match(down.stdout, new RegExp(`etcd \\(pid ${byHand.pid}, not the one \`up\` started\\)`));
      await waitUntil(() => !pidRunning(byHand.pid!), 'the hand-started etcd to be stopped');
      for (const part of ['nats', 'controlplane'] as const)
        assert.ok(!pidRunning(record[part].pid), `${part} stopped`);
    } finally {
      if (pidRunning(byHand.pid!)) process.kill(byHand.pid!, 'SIGKILL');
    }
    ok(await cluster.up(), 'up after down');
  });

  test('down twice is harmless', async () => {
    ok(await cluster.down(), 'down');
    const again = ok(await cluster.down(), 'second down');
    assert.match(again.stdout, /nothing to stop/);
  });
});
