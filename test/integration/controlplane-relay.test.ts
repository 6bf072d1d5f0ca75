/**
 * Pod streams through any control plane: two control planes on one etcd and NATS (the second on an
 * empty state dir, given the first's server token), a node agent in this process (as root, its pod
 * network in a namespace of the test's own) given both addresses, first the first's, which keeps
 * its tunnel there, and the CLI binary pointed at the second. The second relays logs and exec (stdout, stderr,
 * stdin, exit codes, errors) to the first over skiff.v1.ControlPlanes RelaySession; the first logs
 * each relayed session with the user it was for. RelaySession refuses every caller without a
 * control-plane certificate of the cluster CA: an admin token, a node's certificate, a
 * control-plane certificate of another CA. When the first stops, the agent moves to the second and
 * the registry in etcd follows.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { startControlPlane, type ControlPlane } from '../../controlplane/main.js';
import { RELAY_SESSION_PATH } from '../../controlplane/streams/peer-relay.js';
import { removeAgentNode, startAgent, type RunningAgent } from '../../node-agent/agent/main.js';
import { obtainNodeCredentials } from '../../node-agent/agent/node-credentials.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { Pod } from '../../proto/gen/types.js';
import { messages } from '../../proto/gen/messages.js';
import { GRPC_CODE } from '../../proto/grpc-status.js';
import { GrpcCallError, WireChannel } from '../../proto/grpc-wire-client.js';
import type { Http2TlsOptions } from '../../proto/http2-connection.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { CertificateAuthority, privateKeyToPem, readCertificateAuthority } from '../../proto/support/pki.js';
import { componentLogger } from '../../proto/support/logger.js';
import { busyboxImage } from '../fixtures/images.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';
import {
  openImageRuntimeWith,
  removeScratch,
  requireRootAndBusybox,
  scratchDir,
} from './runtime-containers-fixture.js';

const HOST_NETNS = `skiff-relay-${process.pid}`;
const NODE = 'relay-node';

describe('pod streams through any control plane', { timeout: 180_000 }, () => {
  let cluster: TestControlPlane;
  let second: ControlPlane;
  let api: ApiClient;
  let work: string;
  let root: string;
  let caFile: string;
  let agent: RunningAgent | undefined;
  const firstLog: string[] = [];
  const secondLog: string[] = [];
  /** Whether the second control plane logged a session of the admin's to the pod, `via` matching. */
  const secondLogged = (via: RegExp): boolean =>
    secondLog.some(
      (line) =>
        line.includes('"msg":"pod stream started"') &&
        line.includes('"user":"admin"') &&
        line.includes('"pod":"default/talker"') &&
        via.test(line),
    );

  const eventually = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
    const until = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        if (await check()) return;
      } catch (err) {
        last = err;
      }
      if (Date.now() > until) assert.fail(`${what}: not within ${timeoutMs} ms (${String(last)})`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  /** The CLI against the second control plane, over TLS with the admin token. */
  const skiff = (args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> => {
    const child = spawn(
      process.execPath,
      [
        ...skiffEntryArgv(),
        '--server', second.apiAddress,
        '--certificate-authority', caFile,
        '--token', cluster.adminToken,
        ...args,
      ], // prettier-ignore
      { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: work } },
    );
    child.stdin.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  };

  before(async () => {
    requireRootAndBusybox();
    cluster = await launchTestControlPlane('relay', {
      tls: true,
      nodeGraceMs: 60_000,
      log: pino({ level: 'info' }, { write: (line: string) => void firstLog.push(line) }),
    });
    work = await scratchDir('skiff-relay-');
    second = await startControlPlane({
      etcdEndpoints: [cluster.etcd.endpoint],
      natsUrl: cluster.nats.endpoint,
      apiAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      stateDir: join(work, 'second'),
      clusterCaDir: join(work, 'second', 'pki'),
      serverTokenFile: join(cluster.stateDir, 'server-token'),
      nodeGraceMs: 60_000,
      log: pino({ level: 'info' }, { write: (line: string) => void secondLog.push(line) }),
    });
    caFile = join(work, 'ca.crt');
    await writeFile(caFile, cluster.ca!);
    api = connectApi({
      server: cluster.controlPlane.apiAddress,
      token: cluster.adminToken,
      tls: { ca: cluster.ca! },
    });
    root = join(work, 'root');
    await openImageRuntimeWith(root, join(work, 'images.tar'), [busyboxImage('busybox:1')]);
    execFileSync('ip', ['netns', 'add', HOST_NETNS]);
    execFileSync('ip', ['-n', HOST_NETNS, 'link', 'set', 'lo', 'up']);
    // the first control plane first: the agent's tunnel is there
    agent = await startAgent({
      server: `${cluster.controlPlane.apiAddress},${second.apiAddress}`,
      // an API token over TLS: the test's NATS has no TLS, which a node certificate would need
      token: cluster.adminToken,
      ca: cluster.ca!,
      nodeName: NODE,
      root,
      nodeIP: '127.0.0.1',
      hostNetns: `/run/netns/${HOST_NETNS}`,
      heartbeatMs: 500,
      log: componentLogger('relay-test'),
    });
    await eventually('the tunnel on the first control plane', async () =>
      cluster.controlPlane.podStreams.tunnels.nodes().includes(NODE),
    );
    await api.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'talker', namespace: 'default' },
      spec: {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'main',
            image: 'busybox:1',
            command: ['sh', '-c', 'echo hello through the relay; sleep 1000'],
          },
        ],
      },
    } as Pod);
    await eventually('the pod running', async () => {
      const pod = (await api.get('Pod', 'default', 'talker')) as Pod;
      return pod.status?.phase === 'Running';
    });
  });

  after(async () => {
    await agent?.stop().catch(() => {});
    if (root) await removeAgentNode(root, { hostNetns: `/run/netns/${HOST_NETNS}` }).catch(() => []);
    try {
      execFileSync('ip', ['netns', 'del', HOST_NETNS]);
    } catch {
      // never made
    }
    api?.close();
    await second?.stop();
    await cluster?.dispose();
    if (work) await removeScratch(work);
  });

  test('the second control plane has no tunnel of the node; logs and exec through it work (the CLI)', async () => {
    assert.deepEqual(second.podStreams.tunnels.nodes(), []);
    await eventually('the log through the second control plane', async () => {
      const logs = await skiff(['logs', 'talker']);
      return logs.code === 0 && logs.stdout === 'hello through the relay\n';
    });
    const exec = await skiff(['exec', 'talker', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual(exec, { code: 3, stdout: 'out\n', stderr: 'err\n' });
    const stdin = await skiff(['exec', '-i', 'talker', '--', 'cat'], 'typed in\n');
    assert.deepEqual(stdin, { code: 0, stdout: 'typed in\n', stderr: '' });
    // an error the agent ends the session with reaches the user as it would without the relay
    const missing = await skiff(['exec', 'talker', '--', '/no/such/command']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no\/such\/command/);
    // the holder audits each relayed session with the user it was for, and so does the control
    // plane the user called
    assert.ok(
      firstLog.some(
        (line) =>
          line.includes('pod stream relayed for another control plane') && line.includes('"user":"admin"'),
      ),
      'the first control plane logged the relayed session',
    );
    assert.ok(
      secondLogged(/"via":"(?!tunnel")/),
      'the second control plane logged the relayed session with its user',
    );
  });

  test('64 MiB of exec output arrive whole through the relay; its rate beside the direct one', async () => {
    const bytes = 64 * 1024 * 1024;
    /** `skiff exec` of `head -c` through `server`: the bytes that came, and MB/s. */
    const pull = async (server: string): Promise<{ bytes: number; rate: number }> => {
      const started = performance.now();
      const child = spawn(
        process.execPath,
        [
          ...skiffEntryArgv(),
          '--server', server,
          '--certificate-authority', caFile,
          '--token', cluster.adminToken,
          'exec', 'talker', '--', 'sh', '-c', `head -c ${bytes} /dev/zero`,
        ], // prettier-ignore
        { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, HOME: work } },
      );
      let got = 0;
      child.stdout.on('data', (d: Buffer) => (got += d.length));
      const [code] = (await once(child, 'close')) as [number];
      assert.equal(code, 0);
      return { bytes: got, rate: bytes / 1e6 / ((performance.now() - started) / 1000) };
    };
    const rates: string[] = [];
    for (let round = 0; round < 2; round++) {
      const direct = await pull(cluster.controlPlane.apiAddress);
      const relayed = await pull(second.apiAddress);
      assert.equal(relayed.bytes, bytes);
      assert.equal(direct.bytes, bytes);
      rates.push(`${relayed.rate.toFixed(0)} vs ${direct.rate.toFixed(0)} MB/s`);
    }
    // a figure to read, not a limit: the machine's load varies
    console.log(`# exec output through the relay vs direct, per round: ${rates.join('; ')}`);
  });

  describe('RelaySession is for control planes only', () => {
    const open = () =>
      messages.RelaySessionOpen.encode({
        node: 'nowhere',
        session: { kind: 'logs', namespace: 'default', pod: 'talker' },
        user: 'mallory',
      });
    /** RelaySession on the first control plane as `tls` and `metadata`: how the call ended. */
    const relayAs = async (tls: Http2TlsOptions, metadata: Record<string, string> = {}) => {
      const channel = new WireChannel(cluster.controlPlane.apiAddress, {
        maxReceiveBytes: 1 << 20,
        keepaliveMs: 30_000,
        keepaliveTimeoutMs: 10_000,
        tls,
      });
      try {
        const call = channel.duplex(RELAY_SESSION_PATH, { metadata });
        await call.send(open());
        call.end();
        try {
          for await (const message of call) assert.fail(`a message came back: ${message.length} bytes`);
        } catch (err) {
          // the iteration throws the call's error; `ended` has it too
          if (!(err instanceof GrpcCallError)) throw err;
        }
        const ended = await call.ended;
        assert.ok(ended instanceof GrpcCallError, 'the call failed');
        return ended;
      } finally {
        channel.close();
      }
    };
    const controlPlaneCertificate = (ca: CertificateAuthority) => {
      const pair = ca.issueKeyPair({
        commonName: 'system:controlplane:test',
        organizations: ['system:controlplanes'],
        usages: ['client auth'],
      });
      return { cert: pair.certificate.toString(), key: privateKeyToPem(pair.privateKey) };
    };

    test('an admin token is refused', async () => {
      const ended = await relayAs({ ca: cluster.ca! }, { authorization: `Bearer ${cluster.adminToken}` });
      assert.equal(ended.code, GRPC_CODE.UNAUTHENTICATED);
      assert.match(ended.details, /only a control plane of this cluster/);
    });

    test("a node's certificate is refused", async () => {
      const node = await obtainNodeCredentials({
        server: cluster.controlPlane.apiAddress,
        joinToken: (await api.createToken({ role: 'join' })).token,
        nodeName: NODE,
        dir: join(work, 'node-pki'),
        log: pino({ level: 'silent' }),
      });
      const ended = await relayAs({ ca: cluster.ca!, cert: node.cert, key: node.key });
      assert.equal(ended.code, GRPC_CODE.UNAUTHENTICATED);
    });

    test('a control-plane certificate of another CA is refused', async () => {
      const foreign = controlPlaneCertificate(CertificateAuthority.create({ commonName: 'another-ca' }));
      // the server asks for a certificate without requiring one, and counts one that does not verify as none
      const ended = await relayAs({ ca: cluster.ca!, ...foreign });
      assert.equal(ended.code, GRPC_CODE.UNAUTHENTICATED);
    });

    test("the cluster CA's control-plane certificate is let in (and told the node has no tunnel here)", async () => {
      const ca = await readCertificateAuthority(join(cluster.stateDir, 'pki'));
      const ended = await relayAs({ ca: cluster.ca!, ...controlPlaneCertificate(ca) });
      assert.equal(ended.code, GRPC_CODE.UNAVAILABLE);
      assert.match(ended.details, /node nowhere has no agent connected to this control plane/);
      assert.ok(
        firstLog.some((line) => line.includes('relay session refused')),
        'the refusals above were logged',
      );
    });
  });

  test('when the first control plane stops, the agent moves to the second, and streams follow', async () => {
    await cluster.controlPlane.stop();
    await eventually('the tunnel on the second control plane', async () =>
      second.podStreams.tunnels.nodes().includes(NODE),
    );
    const logs = await skiff(['logs', 'talker']);
    assert.deepEqual(logs, { code: 0, stdout: 'hello through the relay\n', stderr: '' });
    const exec = await skiff(['exec', 'talker', '--', 'echo', 'after the move']);
    assert.deepEqual(exec, { code: 0, stdout: 'after the move\n', stderr: '' });
    assert.ok(secondLogged(/"via":"tunnel"/), 'a session on its own tunnel is logged with its user too');
  });
});
