/**
 * Workload controllers at scale (issue 13): a `skiff controlplane` process (its leader's Deployment
 * and ReplicaSet controllers, the scheduler, the GC) and `skiff agent --hollow --count 1000`.
 * 1. A Deployment scaled from 0 to 3,000 replicas: seconds until all are Running (the Deployment's
 *    availableReplicas), pods created per second (an API watch's ADDED events), beside the raw API
 *    create rate of the same run: the bench creating 3,000 pods of the same template itself, 64 in
 *    flight, as the controller's are made (the scheduler binding them and the hollow nodes running
 *    them while they come: what the controller's creates share the CPU with), the goal's
 *    reference (≥ 0.5×); and once more bound to a node that does not exist, so that nothing else
 *    acts on them (the create path alone). Each set deleted before the next.
 * 2. A rolling update of those replicas (maxSurge 25%): time until `skiff rollout status` would say
 *    it is done (its rolloutState).
 * 3. Idle cost: 1,000 Deployments of 1 replica at steady state: the control plane's CPU over 60 s
 *    (/proc/<pid>/stat) as % of a core. Goal < 5 %.
 *
 *   node dist/test/bench/workloads.js [--nodes 1000] [--replicas 3000] [--deployments 1000] [--seconds 60]
 *   (BENCH_CPU_PROF=DIR profiles the control plane)
 */
import { parseArgs } from 'node:util';
import type { Deployment, Pod, PodTemplateSpec } from '../../proto/gen/types.js';
import { ConflictError } from '../../proto/errors.js';
import type { ApiClient } from '../../proto/client.js';
import { rolloutState } from '../../cli/commands/rollout.js';
import {
  cpuSeconds,
  inParallel,
  startBenchCluster,
  until,
  uptime,
  waitForReadyNodes,
} from './hollow-cluster.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    replicas: { type: 'string', default: '3000' },
    deployments: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '60' },
  },
});
const NODES = Number(values.nodes);
const REPLICAS = Number(values.replicas);
const DEPLOYMENTS = Number(values.deployments);
const IDLE_SECONDS = Number(values.seconds);
const NAMESPACE = 'default';

const cluster = await startBenchCluster(['--node-monitor-grace-period', '10m']);
const api = cluster.api;
try {
  cluster.hollow(['--count', String(NODES), '--node-name-prefix', 'hollow', '--pods', '110']);
  await waitForReadyNodes(api, NODES);

  // references: the raw API create rate of the same pods through the same control plane, 64 in
  // flight: first with nothing else acting (bound to a node that does not exist), then as the
  // controller's pods are made, with the scheduler binding them and the hollow nodes reporting them
  // Running while they are created (what the controller's creates compete with for the CPU)
  const rawRate = await rawCreateRate('raw', 'bench-no-such-node');
  console.log(`raw API creates, nothing else acting: ${REPLICAS} pods at ${rawRate.toFixed(0)}/s`);
  const rawScheduledRate = await rawCreateRate('raw-scheduled', undefined);
  console.log(
    `raw API creates, scheduled and run as they come: ${REPLICAS} pods at ${rawScheduledRate.toFixed(0)}/s`,
  );

  // 1. scale 0 → REPLICAS
  await api.create(deployment('web', 0, '1'));
  await until('web observed', 60_000, async () => rolloutState(await getDeployment(api, 'web')).done);
  let added = 0;
  let lastAddedAt = 0;
  const watchStop = new AbortController();
  const watching = (async () => {
    for await (const event of api.watch('Pod', {
      namespace: NAMESPACE,
      labelSelector: 'app=web',
      signal: watchStop.signal,
    }))
      if (event.type === 'ADDED' && ++added <= REPLICAS) lastAddedAt = performance.now();
  })();
  await new Promise((resolve) => setTimeout(resolve, 500)); // the watch is open
  const scaleBegan = performance.now();
  await updateDeployment(api, 'web', (d) => (d.spec.replicas = REPLICAS));
  await until(
    `${REPLICAS} replicas available`,
    1_800_000,
    async () => ((await getDeployment(api, 'web')).status?.availableReplicas ?? 0) >= REPLICAS,
  );
  const scaleSeconds = (performance.now() - scaleBegan) / 1000;
  await until(`${REPLICAS} pod ADDED events`, 60_000, async () => added >= REPLICAS);
  watchStop.abort();
  await watching.catch(() => {});
  const createRate = REPLICAS / ((lastAddedAt - scaleBegan) / 1000);
  console.log(
    `scale 0 → ${REPLICAS}: all Running in ${scaleSeconds.toFixed(1)} s, pods created at ${createRate.toFixed(0)}/s`,
  );

  // 2. rolling update (maxSurge 25%, maxUnavailable 25%)
  const rollBegan = performance.now();
  await updateDeployment(api, 'web', (d) => (d.spec.template = podTemplate('2')));
  await until('rollout complete', 1_800_000, async () => rolloutState(await getDeployment(api, 'web')).done);
  const rollSeconds = (performance.now() - rollBegan) / 1000;
  console.log(`rolling update of ${REPLICAS}: complete in ${rollSeconds.toFixed(1)} s`);
  await api.delete('Deployment', NAMESPACE, 'web');
  await until(
    'web pods gone',
    900_000,
    async () =>
      (await api.list('Pod', { namespace: NAMESPACE, resourceVersion: '0', labelSelector: 'app=web' })).items
        .length === 0,
    2000,
  );

  // 3. idle cost of DEPLOYMENTS Deployments of 1 replica
  const idleBegan = performance.now();
  await inParallel(DEPLOYMENTS, 16, (i) =>
    api.create(deployment(`idle-${i}`, 1, '1'), { discardAnswer: true }),
  );
  await until(
    `${DEPLOYMENTS} deployments available`,
    1_800_000,
    async () =>
      (await api.list('Deployment', { namespace: NAMESPACE, resourceVersion: '0' })).items.filter(
        (d) => (d.status?.availableReplicas ?? 0) >= 1,
      ).length >= DEPLOYMENTS,
    2000,
  );
  console.log(
    `${DEPLOYMENTS} deployments of 1 replica available in ${((performance.now() - idleBegan) / 1000).toFixed(1)} s`,
  );
  await new Promise((resolve) => setTimeout(resolve, 15_000)); // settled: the last status writes done
  const cpuBefore = cpuSeconds(cluster.pid);
  const idleWindowBegan = performance.now();
  await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
  const idleCpu = cpuSeconds(cluster.pid) - cpuBefore;
  const idlePercent = (idleCpu / ((performance.now() - idleWindowBegan) / 1000)) * 100;

  console.log('');
  console.log(`workload controllers, ${NODES} hollow nodes:`);
  console.log(
    `  scale 0 → ${REPLICAS}: all Running in ${scaleSeconds.toFixed(1)} s; pods created ${createRate.toFixed(0)}/s`,
  );
  console.log(
    `    raw API creates of the same pods scheduled and run: ${rawScheduledRate.toFixed(0)}/s   ratio ${(createRate / rawScheduledRate).toFixed(2)}×   goal ≥ 0.5×`,
  );
  console.log(
    `    raw API creates with nothing else acting: ${rawRate.toFixed(0)}/s   ratio ${(createRate / rawRate).toFixed(2)}×`,
  );
  console.log(`  rolling update of ${REPLICAS} (maxSurge 25%): complete in ${rollSeconds.toFixed(1)} s`);
  console.log(
    `  idle, ${DEPLOYMENTS} deployments of 1 replica: control plane ${idlePercent.toFixed(1)} % of a core over ${IDLE_SECONDS} s   goal < 5 %`,
  );
  console.log(`  ${uptime()}`);
} finally {
  await cluster.dispose();
}

/**
 * Creates REPLICAS pods of the Deployment's template through the API (64 in flight) and returns
 * the rate; then deletes them and waits until they are gone. `nodeName`: bound to it at create
 * (a node that does not exist: nothing else acts on them), or left to the scheduler.
 */
async function rawCreateRate(prefix: string, nodeName: string | undefined): Promise<number> {
  const began = performance.now();
  await inParallel(REPLICAS, 64, (i) =>
    api.create(
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `${prefix}-${i}`, namespace: NAMESPACE, labels: { bench: prefix } },
        spec: { ...podTemplate('1').spec!, ...(nodeName !== undefined ? { nodeName } : {}) },
      } as Pod,
      { discardAnswer: true },
    ),
  );
  const rate = REPLICAS / ((performance.now() - began) / 1000);
  await inParallel(REPLICAS, 64, (i) =>
    api.delete('Pod', NAMESPACE, `${prefix}-${i}`, { gracePeriodSeconds: 0 }),
  );
  await until(
    `${prefix} pods gone`,
    300_000,
    async () =>
      (
        await api.list('Pod', {
          namespace: NAMESPACE,
          resourceVersion: '0',
          labelSelector: `bench=${prefix}`,
        })
      ).items.length === 0,
    1000,
  );
  return rate;
}

function podTemplate(version: string): PodTemplateSpec {
  return {
    metadata: { labels: { app: 'web' } },
    spec: {
      containers: [
        { name: 'app', image: `registry.invalid/app:${version}`, resources: { requests: { cpu: '10m' } } },
      ],
    },
  } as PodTemplateSpec;
}

function deployment(name: string, replicas: number, version: string): Deployment {
  const template = { ...podTemplate(version), metadata: { labels: { app: name } } };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      template,
    },
  } as Deployment;
}

async function getDeployment(client: ApiClient, name: string): Promise<Deployment> {
  return (await client.get('Deployment', NAMESPACE, name)) as Deployment;
}

/** Read, change, write; a conflict (the controller wrote status meanwhile) reads again. */
async function updateDeployment(
  client: ApiClient,
  name: string,
  change: (d: Deployment) => void,
): Promise<void> {
  for (;;) {
    const d = await getDeployment(client, name);
    change(d);
    try {
      await client.update(d);
      return;
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
    }
  }
}
