/**
 * One reconciler at a time through a leader's death mid-rollout (issue 13, item 7): two `skiff
 * controlplane` processes on one etcd and NATS (test/harness/control-plane-pair.ts), five hollow
 * nodes joined to the standby. A Deployment of 20 replicas (RollingUpdate maxSurge 2,
 * maxUnavailable 1, minReadySeconds 1 so that each step of the rollout takes a second) gets a new
 * template; once its new ReplicaSet has a few ready pods the leader is SIGKILLed, and the standby
 * must lead within the lease (2 s) plus a margin, and finish the rollout.
 *
 * A watch on the standby's API, from before the new template, follows every pod and ReplicaSet.
 * After each pod event (one change at one etcd revision, in order) it counts: never more than
 * replicas + maxSurge = 22 pods that are not terminating, never fewer than replicas −
 * maxUnavailable = 19 of them Ready; every pod's nodeName, once set, never changes; exactly one
 * ReplicaSet is added (the new one). Two leaders reconciling at once would show as pods beyond 22
 * (each ReplicaSet controller creating the replicas it finds missing, or each Deployment
 * controller surging), as a second ReplicaSet, or as a pod bound twice; and in the Lease the
 * standby must take over only after the leader's process is gone. The pods a second ReplicaSet
 * controller would create, written straight to etcd at the end, prove the count would have shown
 * them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rolloutState } from '../../cli/commands/rollout.js';
import { controllerReference } from '../../controlplane/controllers/support/claims.js';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import type { ApiClient } from '../../proto/client.js';
import { ConflictError } from '../../proto/errors.js';
import type { Deployment, Pod, PodTemplateSpec, ReplicaSet } from '../../proto/gen/types.js';
import { encodeObject } from '../../proto/objects.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';
import { startControlPlanePair, type ControlPlanePair } from '../harness/control-plane-pair.js';
import { spawnHollowAgent } from '../harness/hollow-agent.js';
import { launchTestEtcd, launchTestNats, type TestEtcd, type TestNats } from '../harness/servers.js';
import { until } from '../harness/until.js';

const REPLICAS = 20;
const MAX_SURGE = 2;
const MAX_UNAVAILABLE = 1;
const NODES = 5;
const LEASE_SECONDS = 2;
/** How long after the kill the standby may take to lead: the lease, then its watch and a create. */
const TAKEOVER_LIMIT_SECONDS = LEASE_SECONDS + 5;
const NAMESPACE = 'default';

function template(version: string): PodTemplateSpec {
  return {
    metadata: { labels: { app: 'web' } },
    spec: {
      containers: [
        { name: 'app', image: `registry.invalid/web:${version}`, resources: { requests: { cpu: '10m' } } },
      ],
    },
  } as PodTemplateSpec;
}

function isReady(pod: Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function isTerminating(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return pod.metadata.deletionTimestamp !== undefined || phase === 'Succeeded' || phase === 'Failed';
}

/** Every pod and ReplicaSet event from a revision on, and what the pods were after each. */
class RolloutSampler {
  readonly pods = new Map<string, Pod>();
  /** pod name → every nodeName it was seen with */
  readonly nodes = new Map<string, Set<string>>();
  readonly replicaSetsAdded: string[] = [];
  readonly violations: string[] = [];
  most = 0;
  fewestReady = Number.POSITIVE_INFINITY;
  private readonly stop = new AbortController();
  private readonly running: Promise<unknown>[] = [];

  constructor(
    private readonly api: ApiClient,
    initial: Pod[],
  ) {
    for (const pod of initial) this.saw(pod);
  }

  start(podRevision: string, replicaSetRevision: string): void {
    const { signal } = this.stop;
    const quietly = (err: unknown) => {
      if (!signal.aborted) throw err;
    };
    this.running.push(
      (async () => {
        for await (const event of this.api.watch('Pod', {
          namespace: NAMESPACE,
          labelSelector: 'app=web',
          resourceVersion: podRevision,
          signal,
        })) {
          const pod = event.object as Pod;
          if (event.type === 'DELETED') this.pods.delete(pod.metadata.name!);
          else if (event.type === 'ADDED' || event.type === 'MODIFIED') this.saw(pod);
          else continue;
          this.count(pod.metadata.resourceVersion!);
        }
      })().catch(quietly),
      (async () => {
        for await (const event of this.api.watch('ReplicaSet', {
          namespace: NAMESPACE,
          resourceVersion: replicaSetRevision,
          signal,
        }))
          if (event.type === 'ADDED') this.replicaSetsAdded.push((event.object as ReplicaSet).metadata.name!);
      })().catch(quietly),
    );
  }

  /** `probe`, failing at once (rather than at its timeout) when the counts broke a bound. */
  clean<T>(probe: () => T | undefined | Promise<T | undefined>): () => Promise<T | undefined> {
    return async () => {
      assert.deepEqual(this.violations, [], 'bounds broken while waiting');
      return probe();
    };
  }

  async close(): Promise<void> {
    this.stop.abort();
    await Promise.all(this.running);
  }

  private saw(pod: Pod): void {
    const name = pod.metadata.name!;
    this.pods.set(name, pod);
    const nodes = this.nodes.get(name) ?? new Set<string>();
    if (pod.spec.nodeName) nodes.add(pod.spec.nodeName);
    this.nodes.set(name, nodes);
  }

  private count(revision: string): void {
    const active = [...this.pods.values()].filter((pod) => !isTerminating(pod));
    const ready = active.filter(isReady).length;
    this.most = Math.max(this.most, active.length);
    this.fewestReady = Math.min(this.fewestReady, ready);
    if (active.length > REPLICAS + MAX_SURGE)
      this.violations.push(`revision ${revision}: ${active.length} pods not terminating`);
    if (ready < REPLICAS - MAX_UNAVAILABLE) this.violations.push(`revision ${revision}: ${ready} ready`);
  }
}

describe(
  'leader killed mid-rollout: the standby finishes it, one reconciler at a time',
  { timeout: 240_000 },
  () => {
    let etcd: TestEtcd;
    let nats: TestNats;
    let pair: ControlPlanePair | undefined;
    let agent: ChildProcess | undefined;
    let agentRoot: string | undefined;
    before(async () => {
      etcd = await launchTestEtcd();
      nats = await launchTestNats();
    });
    after(async () => {
      if (agent && agent.exitCode === null && agent.signalCode === null) {
        const exited = new Promise((resolve) => agent!.once('exit', resolve));
        agent.kill('SIGTERM');
        await exited;
      }
      await pair?.dispose();
      await nats?.dispose();
      await etcd?.dispose();
      if (agentRoot) await rm(agentRoot, { recursive: true, force: true });
    });

    test(`a rollout of ${REPLICAS} (maxSurge ${MAX_SURGE}, maxUnavailable ${MAX_UNAVAILABLE}) with the leader SIGKILLed in the middle`, async () => {
      pair = await startControlPlanePair(etcd, nats, { leaseSeconds: LEASE_SECONDS });
      const { leader, standby: survivor, api } = await pair.roles();
      agentRoot = await mkdtemp(join(tmpdir(), 'skiff-rollout-kill-hollow-'));
      agent = spawnHollowAgent(
        { server: survivor.api, token: pair.adminToken, caFile: pair.caFile, root: agentRoot },
        ['--count', String(NODES), '--node-name-prefix', 'hollow'],
      );
      await until(
        `${NODES} hollow nodes Ready`,
        async () => {
          const nodes = (await api.list('Node', {})).items;
          const ready = nodes.filter((n) =>
            n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
          );
          return ready.length === NODES ? true : undefined;
        },
        60_000,
        250,
      );

      await api.create({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: NAMESPACE },
        spec: {
          replicas: REPLICAS,
          minReadySeconds: 1,
          selector: { matchLabels: { app: 'web' } },
          strategy: {
            type: 'RollingUpdate',
            rollingUpdate: { maxSurge: MAX_SURGE, maxUnavailable: MAX_UNAVAILABLE },
          },
          template: template('1'),
        },
      } as Deployment);
      const deployment = async () => (await api.get('Deployment', NAMESPACE, 'web')) as Deployment;
      await until(
        'web v1 rolled out',
        async () => (rolloutState(await deployment()).done ? true : undefined),
        60_000,
        100,
      );

      const pods = await api.list('Pod', { namespace: NAMESPACE, labelSelector: 'app=web' });
      const replicaSets = await api.list('ReplicaSet', { namespace: NAMESPACE });
      const sampler = new RolloutSampler(api, pods.items as Pod[]);
      sampler.start(pods.resourceVersion, replicaSets.resourceVersion);
      try {
        for (;;) {
          const current = await deployment();
          current.spec.template = template('2');
          try {
            await api.update(current);
            break;
          } catch (err) {
            if (!(err instanceof ConflictError)) throw err;
          }
        }
        // mid-rollout: the new ReplicaSet has some ready pods, the old one most of them
        const readyNew = (): number =>
          [...sampler.pods.values()].filter(
            (pod) =>
              !isTerminating(pod) &&
              isReady(pod) &&
              pod.metadata.ownerReferences?.some((ref) => ref.name === sampler.replicaSetsAdded[0]),
          ).length;
        await until(
          'the new ReplicaSet with 4 ready pods',
          sampler.clean(() => (readyNew() >= 4 ? true : undefined)),
          60_000,
        );
        const readyNewAtKill = readyNew();
        assert.ok(
          readyNewAtKill < REPLICAS,
          `the rollout was not over at the kill (${readyNewAtKill} new ready)`,
        );
        const killedAt = Date.now();
        leader.child.kill('SIGKILL');
        await leader.exited;
        const exitedAt = Date.now();
        const ledAt = await until('the standby leads', () => survivor.ledAt(), 30_000);
        const takeoverSeconds = (ledAt - killedAt) / 1000;
        assert.ok(ledAt >= exitedAt - 50, 'the standby led before the leader was gone');
        assert.ok(
          takeoverSeconds <= TAKEOVER_LIMIT_SECONDS,
          `the standby led ${takeoverSeconds} s after the kill (limit ${TAKEOVER_LIMIT_SECONDS} s)`,
        );
        await until(
          'web v2 rolled out',
          sampler.clean(async () => (rolloutState(await deployment()).done ? true : undefined)),
          90_000,
          100,
        ).catch(async (err: unknown) => {
          // what a stuck rollout looked like, for whoever reads the failure
          const d = await deployment();
          const rs = (await api.list('ReplicaSet', { namespace: NAMESPACE })).items as ReplicaSet[];
          const nodes = (await api.list('Node', {})).items;
          const podsNow = (await api.list('Pod', { namespace: NAMESPACE })).items as Pod[];
          console.log(
            `# stuck: deployment ${JSON.stringify(d.status)} ${rolloutState(d).message}\n# replicasets ${JSON.stringify(rs.map((r) => [r.metadata.name, r.spec.replicas, r.status]))}\n# nodes ${JSON.stringify(nodes.map((n) => [n.metadata.name, n.spec?.taints, n.status?.conditions?.map((c) => `${c.type}=${c.status}`)]))}\n# pods ${JSON.stringify(podsNow.map((p) => [p.metadata.name, p.spec.nodeName, p.status?.phase, p.status?.conditions?.map((c) => `${c.type}=${c.status}`), !!p.metadata.deletionTimestamp]))}`,
          );
          throw err;
        });
        const doneAt = Date.now();
        // the last old pods' deletions reach the watch
        await until(
          `${REPLICAS} pods left`,
          sampler.clean(() => (sampler.pods.size === REPLICAS ? true : undefined)),
          30_000,
        );
        console.log(
          `# killed with ${readyNewAtKill} of ${REPLICAS} new pods ready; the standby led ${takeoverSeconds.toFixed(1)} s after (lease ${LEASE_SECONDS} s), the rollout was done ${((doneAt - killedAt) / 1000).toFixed(1)} s after; at most ${sampler.most} pods not terminating, at least ${sampler.fewestReady} ready`,
        );
        assert.deepEqual(sampler.violations, []);
        assert.equal(
          sampler.replicaSetsAdded.length,
          1,
          `ReplicaSets added: ${sampler.replicaSetsAdded.join(', ')}`,
        );
        const rebound = [...sampler.nodes].filter(([, nodes]) => nodes.size > 1).map(([name]) => name);
        assert.deepEqual(rebound, [], 'pods bound to more than one node');
        for (const pod of sampler.pods.values()) {
          assert.equal(pod.metadata.ownerReferences?.[0]?.name, sampler.replicaSetsAdded[0]);
          assert.ok(pod.spec.nodeName, `${pod.metadata.name} bound`);
        }

        // what a second ReplicaSet controller would add at once, behind the API: the count sees it
        const newReplicaSet = (await api.get(
          'ReplicaSet',
          NAMESPACE,
          sampler.replicaSetsAdded[0]!,
        )) as ReplicaSet;
        const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: '/skiff' });
        try {
          await store.transact(
            Array.from({ length: MAX_SURGE + 1 }, (_, i) => {
              const name = `web-second-reconciler-${i}`;
              const pod: Pod = {
                apiVersion: 'v1',
                kind: 'Pod',
                metadata: {
                  name,
                  namespace: NAMESPACE,
                  uid: randomUUID(),
                  creationTimestamp: rfc3339Seconds(new Date()),
                  labels: { ...newReplicaSet.spec.template!.metadata!.labels },
                  ownerReferences: [controllerReference(newReplicaSet)],
                },
                spec: newReplicaSet.spec.template!.spec!,
              };
              return {
                type: 'create',
                key: { resource: 'pods', namespace: NAMESPACE, name },
                value: encodeObject(pod),
              };
            }),
          );
        } finally {
          await store.close();
        }
        await until('the surplus seen', () => (sampler.violations.length > 0 ? true : undefined), 10_000);
        assert.match(
          sampler.violations[0]!,
          new RegExp(`: ${REPLICAS + MAX_SURGE + 1} pods not terminating$`),
        );
      } finally {
        await sampler.close();
      }
    });
  },
);
