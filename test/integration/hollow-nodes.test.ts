/**
 * Hollow nodes end to end (issue 12, item 6): a control plane with a cluster CA, etcd, and NATS as
 * `skiff up` runs it (TLS, client certificates mapped to users); `skiff agent --hollow --count 50`
 * as a real process (the CLI binary) joining with a join token as one node group. The nodes go
 * Ready in `skiff get nodes`, 200 pods bound to them by nodeName go Running with addresses from
 * their node's pod CIDR, deleted pods go away, the group's certificate is refused anything outside
 * its members, and killing the process makes the nodes NotReady after the grace.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { pino } from 'pino';
import { ensureClusterPki } from '../../cli/up/cluster-pki.js';
import { writeNatsConfig } from '../../cli/up/cluster.js';
import { startNats, type NatsProcess } from '../../cli/up/nats-process.js';
import { startControlPlane, type ControlPlane } from '../../controlplane/main.js';
import { readNodeCredentials } from '../../node-agent/agent/node-credentials.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { PermissionDeniedError } from '../../proto/errors.js';
import type { Node, Pod } from '../../proto/gen/types.js';
import { cidrContains, parseCidr, parseIPv4 } from '../../proto/cidr.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { launchTestEtcd, type TestEtcd } from '../harness/servers.js';
import { waitFor } from '../harness/lab.js';
import { runSkiff } from '../e2e/cli-harness.js';
import { readFile } from 'node:fs/promises';

const COUNT = 50;
const PODS = 200;
const GRACE_MS = 5000;

describe('hollow nodes: skiff agent --hollow --count 50', () => {
  let work: string;
  let etcd: TestEtcd;
  let nats: NatsProcess;
  let controlPlane: ControlPlane;
  let admin: ApiClient;
  let adminToken: string;
  let caFile: string;
  let hollow: ChildProcess | undefined;
  let hollowOutput = '';

  const skiff = (args: string[]) =>
    runSkiff(
      [
        '--server',
        controlPlane.apiAddress,
        '--certificate-authority',
        caFile,
        '--token',
        adminToken,
        ...args,
      ],
      { env: { ...process.env, HOME: work } },
    );

  /** waitFor, failing with the hollow process's last output. */
  const eventually = (what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> =>
    waitFor(what, check, timeoutMs).catch((err: Error) =>
      assert.fail(`${err.message}\nhollow output:\n${hollowOutput.slice(-3000)}`),
    );

  /** STATUS of every hollow node in `skiff get nodes`. */
  const nodeStatuses = async (): Promise<string[]> => {
    const { code, stdout, stderr } = await skiff(['get', 'nodes']);
    assert.equal(code, 0, stderr);
    return stdout
      .split('\n')
      .filter((line) => line.startsWith('hollow-'))
      .map((line) => line.split(/\s+/)[1]!);
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'skiff-hollow-'));
    etcd = await launchTestEtcd();
    const pki = await ensureClusterPki(work, ['127.0.0.1']);
    const natsConfig = await writeNatsConfig(work, pki);
    nats = await startNats({ storeDir: join(work, 'nats'), configFile: natsConfig.configFile, output: {} });
    controlPlane = await startControlPlane({
      etcdEndpoints: [etcd.endpoint],
      natsUrl: nats.endpoint,
      natsTls: pki.controlplaneNatsClient,
      natsAuthorization: { file: natsConfig.authorizationFile, pidFile: natsConfig.pidFile },
      apiAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      stateDir: work,
      clusterCaDir: pki.dir,
      nodeGraceMs: GRACE_MS,
      log: pino({ level: 'silent' }),
    });
    adminToken = (await readFile(controlPlane.adminTokenFile, 'utf8')).trim();
    caFile = join(work, 'ca.crt');
    await writeFile(caFile, controlPlane.trust!.bundle);
    admin = connectApi({
      server: controlPlane.apiAddress,
      token: adminToken,
      tls: { ca: controlPlane.trust!.bundle },
    });
  });

  after(async () => {
    if (hollow && hollow.exitCode === null) hollow.kill('SIGKILL');
    admin?.close();
    await controlPlane?.stop();
    await nats?.stop();
    await etcd?.dispose();
    await rm(work, { recursive: true, force: true });
  });

  test('50 hollow nodes join as one group and go Ready in get nodes', async () => {
    const join_ = await admin.createToken({ role: 'join' });
    hollow = spawn(
      process.execPath,
      [
        ...skiffEntryArgv(), 'agent', '--hollow', '--count', String(COUNT), '--node-name-prefix', 'hollow',
        '--zones', '3', '--cpu', '8', '--memory', '32Gi', '--pods', '20', '--labels', 'tier=bench',
        '--server', controlPlane.apiAddress, '--token', join_.token, '--root', join(work, 'hollow-root'),
        '--node-ip', '127.0.0.1', '--node-status-update-frequency', '1s',
      ], // prettier-ignore
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: work } },
    );
    hollow.stdout!.on('data', (d) => (hollowOutput += d));
    hollow.stderr!.on('data', (d) => (hollowOutput += d));
    await eventually('50 hollow nodes Ready', 60_000, async () => {
      const statuses = await nodeStatuses();
      return statuses.length === COUNT && statuses.every((s) => s === 'Ready');
    });
    const node = await admin.get('Node', '', 'hollow-0004');
    assert.equal(node.metadata.labels?.['topology.kubernetes.io/zone'], 'zone-1');
    assert.equal(node.metadata.labels?.['tier'], 'bench');
    assert.equal(node.metadata.labels?.['skiff.io/node-group'], 'hollow');
    assert.equal(node.status?.capacity?.['cpu'], '8');
    assert.equal(node.status?.allocatable?.['pods'], '20');
  });

  test('200 pods bound by nodeName go Running with addresses from their node', async () => {
    const names = Array.from({ length: PODS }, (_, i) => `web-${i}`);
    for (let at = 0; at < names.length; at += 20) {
      await Promise.all(
        names.slice(at, at + 20).map((name, i) =>
          admin.create({
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name, namespace: 'default' },
            spec: {
              nodeName: `hollow-${String((at + i) % COUNT).padStart(4, '0')}`,
              containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
            },
          } as Pod),
        ),
      );
    }
    let pods: Pod[] = [];
    await eventually('200 pods Running', 60_000, async () => {
      pods = (await admin.list('Pod', { namespace: 'default' })).items as Pod[];
      return pods.length === PODS && pods.every((p) => p.status?.phase === 'Running');
    });
    const cidrs = new Map<string, string>();
    for (const node of (await admin.list('Node')).items as Node[])
      cidrs.set(node.metadata.name!, node.spec.podCIDR!);
    const addresses = new Set<string>();
    for (const pod of pods) {
      assert.ok(pod.status?.podIP, `${pod.metadata.name} has a podIP`);
      assert.ok(cidrContains(parseCidr(cidrs.get(pod.spec.nodeName!)!), parseIPv4(pod.status.podIP)));
      addresses.add(pod.status.podIP);
      assert.equal(pod.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
      assert.equal(pod.status.containerStatuses?.[0]?.ready, true);
      assert.ok(pod.status.containerStatuses?.[0]?.state?.running);
    }
    assert.equal(addresses.size, PODS, 'every pod has its own address');
    const { stdout } = await skiff(['get', 'pods']);
    assert.equal(stdout.split('\n').filter((line) => /\sRunning\s/.test(line)).length, PODS);
  });

  test('deleted pods go away (the hollow nodes finish their graceful deletion)', async () => {
    const pods = (await admin.list('Pod', { namespace: 'default' })).items;
    for (let at = 0; at < pods.length; at += 20)
      await Promise.all(pods.slice(at, at + 20).map((p) => admin.delete('Pod', 'default', p.metadata.name!)));
    await eventually('every pod gone', 30_000, async () => (await admin.list('Pod')).items.length === 0);
  });

  test("the group's certificate touches nothing outside its members, on the API and on NATS", async () => {
    const credentials = await readNodeCredentials(
      join(work, 'hollow-root', 'pki'),
      'hollow',
      new Date(),
      'hollow',
    );
    assert.ok(credentials, 'the group joined with a certificate of its own');
    // a real node, and a node named like a member that the group did not register
    for (const name of ['real-1', 'hollow-0099']) {
      await admin.create({ apiVersion: 'v1', kind: 'Node', metadata: { name } } as Node);
      await admin.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `on-${name}`, namespace: 'default' },
        spec: { nodeName: name, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
      } as Pod);
    }
    const asGroup = connectApi({ server: controlPlane.apiAddress, tls: credentials });
    try {
      for (const name of ['real-1', 'hollow-0099']) {
        const node = await asGroup.get('Node', '', name); // reading Nodes is allowed, as for any node
        await assert.rejects(
          asGroup.updateStatus({ ...node, status: { conditions: [{ type: 'Ready', status: 'True' }] } }),
          (err) => err instanceof PermissionDeniedError && /node group "hollow"/.test(err.message),
        );
        await assert.rejects(asGroup.delete('Pod', 'default', `on-${name}`), PermissionDeniedError);
      }
      await assert.rejects(
        asGroup.list('Pod', { fieldSelector: 'spec.nodeName=real-1' }),
        (err) => err instanceof PermissionDeniedError && /spec.nodeGroup=hollow/.test(err.message),
      );
      await assert.rejects(asGroup.get('Secret', 'default', 'any'), PermissionDeniedError);
    } finally {
      asGroup.close();
    }
    // NATS: its own group's subjects only, not a node's
    const nc = await connect({ servers: nats.endpoint, tls: credentials, reconnect: false });
    const errors: string[] = [];
    void (async () => {
      for await (const status of nc.status()) if (status.type === 'error') errors.push(String(status.data));
    })();
    try {
      nc.publish('skiff.node.real-1.pods', JSON.stringify({ node: 'real-1', reports: [] }));
      await nc.flush();
      await eventually('a permissions violation', 5000, async () =>
        /PERMISSIONS_VIOLATION/.test(errors.join('\n')),
      );
    } finally {
      await nc.close();
    }
    const real = (await admin.get('Node', '', 'real-1')) as Node;
    assert.equal(real.status?.conditions, undefined, 'the real node was not written');
  });

  test('killing the hollow process makes its nodes NotReady after the grace', async () => {
    hollow!.kill('SIGKILL');
    await new Promise((resolve) => hollow!.once('exit', resolve));
    const killed = Date.now();
    await eventually('50 hollow nodes NotReady', 30_000, async () => {
      const statuses = (await nodeStatuses()).slice(0, COUNT);
      return statuses.length === COUNT && statuses.every((s) => s === 'NotReady');
    });
    assert.ok(Date.now() - killed >= GRACE_MS - 1500, 'not before the grace');
  });
});
