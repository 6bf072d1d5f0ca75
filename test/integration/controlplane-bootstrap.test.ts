/**
 * Several control planes on one etcd share the cluster CA and the Secrets' encryption keys through
 * etcd, sealed with the server token (controlplane/bootstrap/): the first makes them and the
 * token; a second, on an empty state dir and given the token, takes them from etcd; one without
 * it or with another is refused at start with one message and writes nothing; two first starts
 * at once make one CA. A join token made through one control plane joins a node through the other,
 * a Secret written through one reads through the other, before and after a key rotation.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../controlplane/main.js';
import { BOOTSTRAP_KEY, bootstrapCluster } from '../../controlplane/bootstrap/cluster-bootstrap.js';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import { obtainNodeCredentials } from '../../node-agent/agent/node-credentials.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { FailedPreconditionError } from '../../proto/errors.js';
import type { Secret } from '../../proto/gen/types.js';
import { parseJoinToken } from '../../proto/join-token.js';
import { launchTestEtcd, launchTestNats, type TestEtcd, type TestNats } from '../harness/servers.js';

/**
 * A TCP relay to etcd that, once a client sends bytes holding `marker`, passes them on and then
 * cuts that connection without passing etcd's answer back: a write applied whose answer is lost.
 * Later connections pass.
 */
async function startAnswerCuttingRelay(
  target: string,
  marker: string,
): Promise<{ address: string; readonly cut: boolean; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let cut = false;
  const server = createServer((client) => {
    const upstream = createConnection({ host: hostname, port: Number(port) });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => (client.destroy(), upstream.destroy()));
    }
    let cutting = false;
    let tail = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (cut) return;
      const seen = Buffer.concat([tail, chunk]);
      tail = seen.subarray(Math.max(0, seen.length - marker.length));
      if (!seen.includes(marker)) return;
      cut = cutting = true;
      // etcd applies the write meanwhile; its answer never reaches the client
      setTimeout(() => (client.destroy(), upstream.destroy()), 500);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!cutting) client.write(chunk);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get cut() {
      return cut;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('control planes sharing one etcd: the bootstrap data', () => {
  let etcd: TestEtcd;
  let nats: TestNats;
  let work: string;
  const started: ControlPlane[] = [];
  const clients: ApiClient[] = [];
  const quiet = pino({ level: 'silent' });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'skiff-cp-bootstrap-'));
    [etcd, nats] = await Promise.all([launchTestEtcd(), launchTestNats()]);
  });
  after(async () => {
    for (const client of clients) client.close();
    for (const controlPlane of started) await controlPlane.stop();
    await nats?.dispose();
    await etcd?.dispose();
    await rm(work, { recursive: true, force: true });
  });

  const start = async (name: string, options: Partial<ControlPlaneOptions> = {}): Promise<ControlPlane> => {
    const stateDir = join(work, name);
    const controlPlane = await startControlPlane({
      etcdEndpoints: [etcd.endpoint],
      natsUrl: nats.endpoint,
      apiAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      stateDir,
      clusterCaDir: join(stateDir, 'pki'),
      log: quiet,
      ...options,
    });
    started.push(controlPlane);
    return controlPlane;
  };
  const adminOf = async (controlPlane: ControlPlane, tokenFile: string): Promise<ApiClient> => {
    const client = connectApi({
      server: controlPlane.apiAddress,
      token: (await readFile(tokenFile, 'utf8')).trim(),
      tls: { ca: controlPlane.trust!.bundle },
    });
    clients.push(client);
    return client;
  };
  const rawBootstrap = async (prefix = '/skiff'): Promise<Buffer> => {
    const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix });
    try {
      return Buffer.from((await store.get(BOOTSTRAP_KEY)).value);
    } finally {
      await store.close();
    }
  };

  const secret = (name: string): Secret => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'default' },
    data: { password: Buffer.from(`value of ${name}`).toString('base64') },
  });
  /** Waits up to 10 s for `check` to stop throwing (keys rotated elsewhere arrive within moments). */
  const eventually = async (check: () => Promise<void>): Promise<void> => {
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        return await check();
      } catch (err) {
        if (Date.now() > until) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };

  let first: ControlPlane;
  let second: ControlPlane;

  test('the first control plane makes the CA and the server token; etcd holds them only sealed', async () => {
    first = await start('first');
    const tokenFile = join(work, 'first', 'server-token');
    assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
    const raw = (await rawBootstrap()).toString('utf8');
    const caKey = await readFile(join(work, 'first', 'pki', 'ca.key'), 'utf8');
    const encryptionConfig = await readFile(join(work, 'first', 'encryption-config.yaml'), 'utf8');
    const keySecret = /secret: (\S+)/.exec(encryptionConfig)![1]!;
    assert.ok(!raw.includes('PRIVATE KEY') && !raw.includes(caKey.split('\n')[1]!), 'the CA key is sealed');
    assert.ok(!raw.includes(keySecret), 'the Secrets key is sealed');
    assert.ok(!raw.includes((await readFile(tokenFile, 'utf8')).trim()), 'the token is not in etcd');
    assert.equal(JSON.parse(raw).caHash, first.trust!.bundleHash);
  });

  test('a second control plane without the server token is refused at start, and writes nothing', async () => {
    const stateDir = join(work, 'no-token');
    await assert.rejects(
      start('no-token'),
      (err) =>
        err instanceof FailedPreconditionError &&
        /holds the bootstrap data of a cluster/.test(err.message) &&
        err.message.includes(join(stateDir, 'server-token')),
    );
    assert.equal(existsSync(stateDir), false, 'no state dir');
  });

  test('one with another server token is refused at start, and writes nothing', async () => {
    const stateDir = join(work, 'wrong-token');
    const tokenDir = join(work, 'tokens');
    await mkdir(tokenDir, { recursive: true });
    const wrong = join(tokenDir, 'wrong');
    await writeFile(wrong, 'not-the-cluster-server-token-0123456789\n', { mode: 0o600 });
    await assert.rejects(
      start('wrong-token', { serverTokenFile: wrong }),
      (err) =>
        err instanceof FailedPreconditionError &&
        err.message.includes(`the server token in ${wrong} does not open it`),
    );
    assert.equal(existsSync(stateDir), false, 'no state dir');
    assert.deepEqual(await readdir(tokenDir), ['wrong']);
  });

  test('one on an empty state dir given the token takes the CA and the encryption keys from etcd', async () => {
    second = await start('second', { serverTokenFile: join(work, 'first', 'server-token') });
    assert.equal(second.trust!.bundleHash, first.trust!.bundleHash);
    assert.equal(
      await readFile(join(work, 'second', 'pki', 'ca.key'), 'utf8'),
      await readFile(join(work, 'first', 'pki', 'ca.key'), 'utf8'),
    );
    assert.equal((await stat(join(work, 'second', 'pki', 'ca.key'))).mode & 0o777, 0o600);
    assert.equal(
      await readFile(join(work, 'second', 'encryption-config.yaml'), 'utf8'),
      await readFile(join(work, 'first', 'encryption-config.yaml'), 'utf8'),
    );
  });

  test('a join token made through one control plane joins a node through the other', async () => {
    const admin1 = await adminOf(first, first.adminTokenFile);
    const { token } = await admin1.createToken({ role: 'join' });
    assert.equal(parseJoinToken(token).caHash, second.trust!.bundleHash);
    // a token unknown to a control plane makes it read the token records again, at most once a
    // second (auth.ts): the second one read them when it started, moments ago
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const credentials = await obtainNodeCredentials({
      server: second.apiAddress,
      joinToken: token,
      nodeName: 'joined-through-second',
      dir: join(work, 'node-pki'),
      log: quiet,
    });
    // the node's certificate opens the first control plane too
    const asNode = connectApi({ server: first.apiAddress, tls: credentials });
    clients.push(asNode);
    const version = await asNode.version();
    assert.ok(version.version);
    // what the agent programs its node with: the address plan and the cluster network's defaults
    assert.deepEqual(
      [
        version.clusterCIDR,
        version.serviceCIDR,
        version.networkBackend,
        version.clusterDNS,
        version.clusterDomain,
      ],
      ['10.244.0.0/16', '10.96.0.0/12', 'host-gw', '10.96.0.10', 'cluster.local'],
    );
  });

  test('Secrets written through one read through the other, also after a key rotation on one', async () => {
    const admin1 = await adminOf(first, first.adminTokenFile);
    // the admin token is the cluster's: the first control plane's file opens the second
    const admin2 = await adminOf(second, first.adminTokenFile);
    await admin1.create(secret('before-rotation'));
    const read = async (name: string) => ((await admin2.get('Secret', 'default', name)) as Secret).data;
    assert.deepEqual(await read('before-rotation'), secret('before-rotation').data);
    const rotation = await admin1.rotateEncryptionKey();
    await admin1.create(secret('after-rotation'));
    // the second follows the bootstrap data: the new key arrives within moments
    await eventually(async () =>
      assert.deepEqual(await read('after-rotation'), secret('after-rotation').data),
    );
    assert.match(
      await readFile(join(work, 'second', 'encryption-config.yaml'), 'utf8'),
      new RegExp(rotation.keyName),
    );
  });

  test('rotations on both control planes at once keep both keys everywhere: Secrets written under either read through both', async () => {
    const admin1 = await adminOf(first, first.adminTokenFile);
    const admin2 = await adminOf(second, first.adminTokenFile);
    const [rotation1, rotation2] = await Promise.all([
      admin1.rotateEncryptionKey(),
      admin2.rotateEncryptionKey(),
    ]);
    // each writes with its own new key; each reads the other's
    await admin1.create(secret('under-rotation-1'));
    await admin2.create(secret('under-rotation-2'));
    await eventually(async () => {
      for (const admin of [admin1, admin2])
        for (const name of ['under-rotation-1', 'under-rotation-2'])
          assert.deepEqual(((await admin.get('Secret', 'default', name)) as Secret).data, secret(name).data);
    });
    for (const name of ['first', 'second']) {
      const config = await readFile(join(work, name, 'encryption-config.yaml'), 'utf8');
      assert.ok(
        config.includes(rotation1.keyName) && config.includes(rotation2.keyName),
        `${name} holds both keys`,
      );
    }
  });

  test('two first starts at once on an empty etcd make one CA', async () => {
    const tokenFile = join(work, 'tokens', 'shared');
    await mkdir(join(work, 'tokens'), { recursive: true });
    await writeFile(tokenFile, 'a-token-both-control-planes-are-given\n', { mode: 0o600 });
    const [a, b] = await Promise.all(
      ['race-a', 'race-b'].map((name) => start(name, { etcdPrefix: '/race', serverTokenFile: tokenFile })),
    );
    assert.equal(a!.trust!.bundleHash, b!.trust!.bundleHash);
    assert.notEqual(a!.trust!.bundleHash, first.trust!.bundleHash);
    assert.equal(JSON.parse((await rawBootstrap('/race')).toString('utf8')).caHash, a!.trust!.bundleHash);
  });

  test('a first start whose create reached etcd but whose answer was cut keeps the record and its server token', async () => {
    const relay = await startAnswerCuttingRelay(etcd.endpoint, 'skiff-bootstrap-');
    const store = new EtcdStore({ endpoints: [relay.address], prefix: '/answer-lost', timeoutMs: 3000 });
    const dir = join(work, 'answer-lost');
    const files = {
      serverTokenFile: join(dir, 'server-token'),
      caDir: join(dir, 'pki'),
      encryptionConfigFile: join(dir, 'encryption-config.yaml'),
      generationFile: join(dir, 'bootstrap-generation'),
    };
    try {
      const started = await bootstrapCluster({
        store,
        etcd: relay.address,
        log: quiet,
        iterations: 100_000,
        ...files,
      });
      assert.ok(relay.cut, "the create's answer was cut");
      assert.equal(started.created, true);
      assert.equal((await readFile(files.serverTokenFile, 'utf8')).trim(), started.serverToken);
      // what etcd holds is this start's record: the next start opens it with the token kept
      const again = await bootstrapCluster({
        store,
        etcd: relay.address,
        log: quiet,
        iterations: 100_000,
        ...files,
      });
      assert.equal(again.created, false);
      assert.equal(again.ca.certificatePem, started.ca.certificatePem);
    } finally {
      await store.close();
      await relay.close();
    }
  });

  test('the record lost from etcd: a control plane on an empty state dir is refused; the first, restarted, stores it again', async () => {
    const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: '/skiff' });
    try {
      await store.delete(BOOTSTRAP_KEY);
    } finally {
      await store.close();
    }
    const tokenFile = join(work, 'first', 'server-token');
    await assert.rejects(
      start('after-loss', { serverTokenFile: tokenFile }),
      (err) =>
        err instanceof FailedPreconditionError &&
        err.message.includes(
          `etcd ${etcd.endpoint} (prefix /skiff) holds a cluster (its namespaces) but not its bootstrap data`,
        ) &&
        /Restore the record/.test(err.message),
    );
    assert.equal(existsSync(join(work, 'after-loss')), false, 'nothing written');
    // the second control plane, running meanwhile, still reads Secrets
    const admin2 = await adminOf(second, first.adminTokenFile);
    assert.deepEqual(
      ((await admin2.get('Secret', 'default', 'after-rotation')) as Secret).data,
      secret('after-rotation').data,
    );
    await first.stop();
    first = await start('first');
    const joined = await start('after-loss', { serverTokenFile: tokenFile });
    assert.equal(joined.trust!.bundleHash, second.trust!.bundleHash);
    const admin = await adminOf(joined, first.adminTokenFile);
    await eventually(async () =>
      assert.deepEqual(
        ((await admin.get('Secret', 'default', 'under-rotation-2')) as Secret).data,
        secret('under-rotation-2').data,
      ),
    );
  });
});
