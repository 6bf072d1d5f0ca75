/**
 * The API on the control plane's Unix socket (controlplane/api/api-socket.ts) against a real
 * control plane (etcd, NATS, the TLS API beside it): calls over the socket are authenticated and
 * authorized exactly as over TLS; the socket is 0600 in a 0700 directory, removed at stop, a stale
 * one replaced at start and a served one refused; a symbolic link or an open directory is refused;
 * a user who may not use the socket is told so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../../controlplane/main.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { unixAddress } from '../../proto/api-address.js';
import type { Namespace } from '../../proto/gen/types.js';
import { runSkiff } from '../e2e/cli-harness.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';

/** What a call came to: "ok", or the error's class and message. */
async function outcome(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => 'ok',
    (err: unknown) => `${(err as Error).constructor.name}: ${(err as Error).message}`,
  );
}

describe('the API on a Unix socket', { timeout: 240_000 }, () => {
  let cluster: TestControlPlane;
  let work: string;
  before(async () => {
    cluster = await launchTestControlPlane('api-socket', { tls: true, socket: true });
    work = mkdtempSync(join(tmpdir(), 'skiff-api-socket-work-'));
  });
  after(async () => {
    await cluster?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  const socketPath = (): string => join(cluster.stateDir, 'api.sock');
  const overSocket = (token?: string): ApiClient =>
    connectApi({ server: cluster.controlPlane.apiSocketAddress!, ...(token !== undefined ? { token } : {}) });
  const overTls = (token?: string): ApiClient =>
    connectApi({
      server: cluster.controlPlane.apiAddress,
      ...(token !== undefined ? { token } : {}),
      tls: { ca: cluster.ca! },
    });
  /** Another control plane on the same etcd, CA and tokens, serving `apiSocket`. */
  const startAnother = (name: string, apiSocket: string): Promise<ControlPlane> =>
    startControlPlane({
      etcdEndpoints: [cluster.etcd.endpoint],
      apiAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      stateDir: join(work, name),
      clusterCaDir: join(cluster.stateDir, 'pki'),
      apiSocket,
    });

  test('the socket is the control plane user’s, mode 0600, in a 0700 directory', () => {
    assert.equal(cluster.controlPlane.apiSocketAddress, unixAddress(socketPath()));
    const socket = lstatSync(socketPath());
    assert.ok(socket.isSocket());
    assert.equal(socket.mode & 0o777, 0o600);
    assert.equal(socket.uid, process.getuid!());
    assert.equal(lstatSync(dirname(socketPath())).mode & 0o777, 0o700);
  });

  test('calls over the socket are authenticated and authorized exactly as over TLS', async () => {
    const admin = overSocket(cluster.adminToken);
    const view = (await admin.createToken({ role: 'view', name: 'socket-viewer' })).token;
    // K10<CA hash>::<secret>: a node sends the secret as its bearer token
    const join = (
      await admin.createToken({ role: 'join', name: 'socket-join', ttlSeconds: 3600 })
    ).token.split('::')[1];
    admin.close();
    const namespace: Namespace = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'by-socket' },
      spec: {},
    };
    const cases: [string, string | undefined, (api: ApiClient) => Promise<unknown>, RegExp][] = [
      ['no token', undefined, (api) => api.list('Namespace'), /^UnauthenticatedError: /],
      ['a wrong token', 'not-a-token', (api) => api.list('Namespace'), /^UnauthenticatedError: /],
      ['view lists', view, (api) => api.list('Namespace'), /^ok$/],
      [
        'view creates',
        view,
        (api) => api.create(namespace, { dryRun: true }),
        /^PermissionDeniedError: .*role view/,
      ],
      ['view lists tokens', view, (api) => api.listTokens(), /^PermissionDeniedError: /],
      ['join lists', join, (api) => api.list('Namespace'), /^PermissionDeniedError: /],
      ['admin creates', cluster.adminToken, (api) => api.create(namespace, { dryRun: true }), /^ok$/],
      ['admin lists tokens', cluster.adminToken, (api) => api.listTokens(), /^ok$/],
    ];
    for (const [what, token, call, expected] of cases) {
      const socketClient = overSocket(token);
      const tlsClient = overTls(token);
      try {
        const bySocket = await outcome(call(socketClient));
        assert.match(bySocket, expected, what);
        assert.equal(bySocket, await outcome(call(tlsClient)), `${what}: the socket and TLS differ`);
      } finally {
        socketClient.close();
        tlsClient.close();
      }
    }
  });

  test('a watch over the socket sees what is written over TLS', async () => {
    const watcher = overSocket(cluster.adminToken);
    const writer = overTls(cluster.adminToken);
    const abort = new AbortController();
    try {
      const { resourceVersion } = await watcher.list('Namespace');
      const events = watcher.watch('Namespace', { resourceVersion, signal: abort.signal });
      await writer.create({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'seen-over-socket' },
        spec: {},
      });
      for await (const event of events) {
        if (event.object?.metadata?.name === 'seen-over-socket') {
          assert.equal(event.type, 'ADDED');
          break;
        }
      }
    } finally {
      abort.abort();
      watcher.close();
      writer.close();
    }
  });

  test('a stale socket (its server killed) is replaced at start, a served one refused, and stop removes it', async () => {
    const dir = mkdtempSync(join(work, 'stale-'));
    const path = join(dir, 'api.sock');
    // a server that dies without removing its socket, as a control plane killed with SIGKILL
    const child = spawn(
      process.execPath,
      ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await once(child.stdout, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.ok(lstatSync(path).isSocket(), 'the killed server left its socket');
    const second = await startAnother('second', path);
    try {
      const api = connectApi({ server: unixAddress(path), token: cluster.adminToken });
      assert.ok((await api.version()).version);
      api.close();
      assert.equal(lstatSync(path).mode & 0o777, 0o600);
      await assert.rejects(
        startAnother('third', path),
        /serve the API on .*api\.sock: another process serves that socket \(a control plane still running\?\)/,
      );
      assert.ok(lstatSync(path).isSocket(), 'the refused start left the served socket alone');
    } finally {
      await second.stop();
    }
    assert.ok(!existsSync(path), 'stop removed the socket');
  });

  test('a symbolic link at the path is refused and left as it is, never followed', async () => {
    const dir = mkdtempSync(join(work, 'link-'));
    const path = join(dir, 'api.sock');
    const target = join(dir, 'elsewhere.sock');
    symlinkSync(target, path);
    await assert.rejects(
      startAnother('linked', path),
      /serve the API on .*api\.sock: it is a symbolic link; refusing to follow or replace it/,
    );
    assert.ok(lstatSync(path).isSymbolicLink());
    assert.equal(readlinkSync(path), target);
    assert.ok(!existsSync(target), 'nothing was bound through the link');
  });

  test('a directory others may enter is refused, and left as it is', async () => {
    const dir = mkdtempSync(join(work, 'open-'));
    chmodSync(dir, 0o755);
    await assert.rejects(
      startAnother('open', join(dir, 'api.sock')),
      new RegExp(
        `its directory ${dir} is mode 0755; it must be uid ${process.getuid!()}'s with mode 0700, so that no one else can reach the socket or put another in its place`,
      ),
    );
    assert.equal(lstatSync(dir).mode & 0o777, 0o755);
    assert.ok(!existsSync(join(dir, 'api.sock')));
  });

  test(
    'a user who may not use the socket is told so, naming it and what to do',
    { skip: process.getuid?.() !== 0 && 'acting as another user needs root' },
    async () => {
      const nobody = 65534;
      const result = await runSkiff(
        ['get', 'ns', '--server', unixAddress(socketPath()), '--token', cluster.adminToken],
        {
          env: {
            PATH: process.env.PATH,
            HOME: '/nonexistent',
            SKIFF_CONFIG: '/nonexistent/config',
            NODE_DISABLE_COMPILE_CACHE: '1',
          },
          uid: nobody,
          gid: nobody,
        },
      );
      assert.equal(result.code, 1, result.stderr);
      assert.equal(
        result.stderr,
        `error: cannot reach the control plane at ${unixAddress(socketPath())}: permission denied: the socket is only for uid ${process.getuid!()}, who runs the control plane (mode 0600 in a 0700 directory); run skiff as that user (e.g. with sudo), or call the API over TLS: --server with the cluster's tls-server address and --certificate-authority with its CA (\`skiff config view\` shows both), with a token of your own\n`,
      );
    },
  );
});
