/**
 * One scheduler at a time, and no pod bound twice (issue 12, item 7): two `skiff controlplane`
 * processes on one etcd and NATS, 20 nodes registered through the API and no agents, 500 pods
 * created while the leader schedules; the leader is SIGKILLed mid-run (its etcd lease expires
 * after --leader-elect-lease-duration 2s) and the other takes over. Every version of every pod is
 * followed through a watch on the survivor's API from before the first pod: each pod must end
 * bound, and its nodeName, once set, must never change. A canary rebind written straight to etcd
 * at the end proves the watch would have shown a double bind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeNode, makePod } from '../../controlplane/scheduler/testing.js';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { Pod } from '../../proto/gen/types.js';
import { decodeObject, encodeObject } from '../../proto/objects.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { launchTestEtcd, launchTestNats, type TestEtcd, type TestNats } from '../harness/servers.js';
import { registerNode, userPod } from '../harness/registered-nodes.js';
import { until } from '../harness/until.js';

const PODS = 500;
const NODES = 20;
const LEASE_SECONDS = 2;

interface ControlPlaneProcess {
  name: string;
  child: ChildProcess;
  api: string;
  exited: Promise<void>;
  /** When the process logged that it leads (ms since the epoch), if it did. */
  ledAt(): number | undefined;
}

/** Starts `skiff controlplane` and resolves once it logs that it is ready. */
async function startControlPlaneProcess(name: string, args: string[]): Promise<ControlPlaneProcess> {
  const child = spawn(process.execPath, [...skiffEntryArgv(), 'controlplane', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SKIFF_LOG_LEVEL: 'info' },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let led: number | undefined;
  let log = '';
  const api = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not ready after 30 s:\n${log}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${log}`)));
    let pending = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const entry = JSON.parse(line) as { msg?: string; api?: string; time?: number };
        if (entry.msg === 'leading') led = entry.time ?? Date.now();
        if (entry.msg?.startsWith('control plane ready') && entry.api) {
          clearTimeout(timer);
          resolve(entry.api);
        }
      }
    });
  });
  return { name, child, api, exited, ledAt: () => led };
}

describe('leader killed mid-run: another schedules, no pod bound twice', { timeout: 180_000 }, () => {
  let etcd: TestEtcd;
  let nats: TestNats;
  let dirs: string[] = [];
  const processes: ControlPlaneProcess[] = [];
  before(async () => {
    etcd = await launchTestEtcd();
    nats = await launchTestNats();
  });
  after(async () => {
    for (const each of processes) {
      if (each.child.exitCode === null && each.child.signalCode === null) each.child.kill('SIGTERM');
      await each.exited;
    }
    await nats?.dispose();
    await etcd?.dispose();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test(`${PODS} pods, the leader SIGKILLed while they are created and bound: every pod bound exactly once`, async () => {
    const [dirA, dirB] = [
      await mkdtemp(join(tmpdir(), 'skiff-kill-a-')),
      await mkdtemp(join(tmpdir(), 'skiff-kill-b-')),
    ];
    dirs = [dirA, dirB];
    const common = [
      '--etcd', etcd.endpoint,
      '--nats', nats.endpoint,
      '--api-addr', '127.0.0.1:0',
      '--http-addr', '127.0.0.1:0',
      '--leader-elect-lease-duration', `${LEASE_SECONDS}s`,
      '--node-monitor-grace-period', '10m',
    ]; // prettier-ignore
    processes.push(await startControlPlaneProcess('a', [...common, '--state-dir', dirA]));
    processes.push(
      await startControlPlaneProcess('b', [
        ...common,
        '--state-dir', dirB,
        // the cluster's bootstrap data (CA, encryption keys) is sealed with a's server token
        '--server-token-file', join(dirA, 'server-token'),
      ]), // prettier-ignore
    );
    const leader = await until(
      'a leader',
      () => processes.find((each) => each.ledAt() !== undefined),
      15_000,
    );
    const survivor = processes.find((each) => each !== leader)!;
    const ca = await readFile(join(dirA, 'pki', 'ca.crt'), 'utf8');
    const token = (await readFile(join(dirA, 'admin-token'), 'utf8')).trim();
    const api: ApiClient = connectApi({ server: survivor.api, token, tls: { ca } });

    for (let i = 0; i < NODES; i++)
      await registerNode(api, makeNode(`node-${i}`, { cpu: '8', memory: '32Gi' }));
    // every version of every pod, from before the first was created
    const start = await api.list('Pod', { namespace: 'default' });
    const versions = new Map<string, { nodeName: string; revision: bigint }[]>();
    const watching = new AbortController();
    const watched = (async () => {
      for await (const event of api.watch('Pod', {
        namespace: 'default',
        resourceVersion: start.resourceVersion,
        signal: watching.signal,
      })) {
        if (event.type !== 'ADDED' && event.type !== 'MODIFIED') continue;
        const pod = event.object as Pod;
        const list = versions.get(pod.metadata.name!) ?? [];
        list.push({ nodeName: pod.spec.nodeName ?? '', revision: BigInt(pod.metadata.resourceVersion!) });
        versions.set(pod.metadata.name!, list);
      }
    })().catch((err: unknown) => {
      if (!watching.signal.aborted) throw err;
    });
    const boundCount = (): number =>
      [...versions.values()].filter((list) => list.some((v) => v.nodeName !== '')).length;

    const create = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i += 25) {
        await Promise.all(
          Array.from({ length: Math.min(25, to - i) }, (_, j) =>
            api.create(userPod(makePod(`pod-${i + j}`, { cpu: '10m', memory: '16Mi' }))),
          ),
        );
      }
    };
    // mid-run: pods still being created, some bound by the leader, others queued or being bound
    const creating = create(0, PODS);
    await until('the leader binding', () => (boundCount() >= 100 ? true : undefined), 30_000);
    const killedAt = Date.now();
    const boundBeforeKill = boundCount();
    const createdBeforeKill = versions.size;
    leader.child.kill('SIGKILL');
    await leader.exited;
    await creating;
    const ledAt = await until('the survivor leads', () => survivor.ledAt(), 20_000);
    await until(`all ${PODS} pods bound`, () => (boundCount() === PODS ? true : undefined), 60_000);
    const allBoundAt = Date.now();
    const takeoverSeconds = (ledAt - killedAt) / 1000;
    console.log(
      `# ${createdBeforeKill} pods created and ${boundBeforeKill} bound before the kill; the survivor led ${takeoverSeconds.toFixed(1)} s after it (lease ${LEASE_SECONDS} s); all ${PODS} bound ${((allBoundAt - killedAt) / 1000).toFixed(1)} s after it`,
    );
    assert.ok(takeoverSeconds < LEASE_SECONDS + 5, `took over ${takeoverSeconds} s after the kill`);

    // a rebind written behind the API's back must show in the same check
    const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: '/skiff' });
    try {
      const key = { resource: 'pods', namespace: 'default', name: 'pod-0' };
      const stored = await store.get(key);
      const pod = decodeObject('Pod', stored.value);
      const other = pod.spec.nodeName === 'node-0' ? 'node-1' : 'node-0';
      await store.update(
        key,
        encodeObject({ ...pod, spec: { ...pod.spec, nodeName: other } }),
        stored.modRevision,
      );
      await until(
        'the canary rebind seen',
        () => (versions.get('pod-0')!.some((v) => v.nodeName === other) ? true : undefined),
        10_000,
      );
    } finally {
      await store.close();
    }
    watching.abort();
    await watched;

    const rebound: string[] = [];
    for (const [name, list] of versions) {
      const nodes = new Set(list.map((v) => v.nodeName).filter((n) => n !== ''));
      if (nodes.size > 1) rebound.push(`${name}: ${[...nodes].join(' → ')}`);
    }
    assert.deepEqual(rebound.length, 1, `only the canary changed node: ${rebound.join('; ')}`);
    assert.match(rebound[0]!, /^pod-0: /);
    assert.equal(versions.size, PODS);
  });
});
