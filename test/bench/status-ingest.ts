/**
 * Status ingest at scale (issue 12): 1,000 hollow nodes (`skiff agent --hollow --count 1000`, one
 * process) hold 10,000 pods; rounds of status changes for every pod (readiness flipped) are
 * published as those nodes' reports, on the group's NATS subject in messages of 200, and the
 * `skiff controlplane` process writes them to etcd (batched transactions). Figure: pod status
 * updates per second into etcd (first report published → last write seen by an etcd watch), beside
 * what this etcd takes as single puts (64 in flight, 2 KiB values) and what this NATS moves
 * (small messages) in the same run. Goal ≥ 10,000 updates/s.
 *
 *   node dist/test/bench/status-ingest.js [--nodes 1000] [--pods 10000] [--rounds 3]
 */
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { connect } from 'nats';
import type { Pod, PodStatus } from '../../proto/gen/types.js';
import { nodeGroupPodsSubject } from '../../proto/node-group.js';
import type { PodStatusBatch, PodStatusReport } from '../../proto/node-reports.js';
import {
  createRunningPods,
  cpuSeconds,
  startBenchCluster,
  until,
  uptime,
  waitForReadyNodes,
} from './hollow-cluster.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    pods: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
  },
});
const NODES = Number(values.nodes);
const PODS = Number(values.pods);
const ROUNDS = Number(values.rounds);
const GROUP = 'hollow';

const cluster = await startBenchCluster();
const etcd = new Etcd3({ hosts: cluster.etcd.endpoint });
const nats = await connect({ servers: cluster.nats.endpoint });
try {
  cluster.hollow(['--count', String(NODES), '--node-name-prefix', GROUP, '--pods', '110']);
  await waitForReadyNodes(cluster.api, NODES);
  await createRunningPods(cluster.api, PODS, GROUP, NODES);

  // the measured rounds: every pod's readiness flipped, reported by its node
  const pods = (await cluster.api.list('Pod', { namespace: 'default' })).items as Pod[];
  let writes = 0;
  let lastWriteAt = 0;
  const watcher = await etcd.watch().prefix('/skiff/pods/').create();
  watcher.on('put', () => {
    writes++;
    lastWriteAt = performance.now();
  });
  const rates: number[] = [];
  const cpuBefore = cpuSeconds(cluster.pid);
  let busySeconds = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const ready = round % 2 === 0;
    const seqBase = (Date.now() + 60_000) * 1000;
    const reports: PodStatusReport[] = pods.map((pod, i) => ({
      namespace: 'default',
      name: pod.metadata.name!,
      uid: pod.metadata.uid!,
      seq: seqBase + i,
      node: pod.spec.nodeName!,
      status: flipped(pod.status!, ready),
    }));
    const messages = [];
    for (let at = 0; at < reports.length; at += 200)
      messages.push(
        JSON.stringify({ node: GROUP, reports: reports.slice(at, at + 200) } satisfies PodStatusBatch),
      );
    const startWrites = writes;
    const began = performance.now();
    for (const message of messages) nats.publish(nodeGroupPodsSubject(GROUP), message);
    await nats.flush();
    await until(`round ${round}: ${PODS} status writes`, 120_000, async () => writes - startWrites >= PODS);
    const seconds = (lastWriteAt - began) / 1000;
    busySeconds += seconds;
    rates.push(PODS / seconds);
    console.log(
      `round ${round}: ${PODS} status updates in ${seconds.toFixed(2)} s = ${(PODS / seconds).toFixed(0)}/s`,
    );
  }
  const cpu = cpuSeconds(cluster.pid) - cpuBefore;
  await watcher.cancel();

  // references, same run: raw etcd puts, NATS messages
  const value = 'x'.repeat(2048);
  let puts = 0;
  const putsBegan = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async (_, w) => {
      while (performance.now() - putsBegan < 5000) await etcd.put(`/bench/put-${w}-${puts++}`).value(value);
    }),
  );
  const putRate = puts / ((performance.now() - putsBegan) / 1000);
  await etcd.delete().prefix('/bench/');
  const receiver = await connect({ servers: cluster.nats.endpoint });
  const MESSAGES = 300_000;
  let received = 0;
  const done = new Promise<void>((resolve) =>
    receiver.subscribe('bench.msgs', { callback: () => ++received === MESSAGES && resolve() }),
  );
  await receiver.flush();
  const small = new Uint8Array(128);
  const natsBegan = performance.now();
  for (let i = 0; i < MESSAGES; i++) nats.publish('bench.msgs', small);
  await done;
  const natsRate = MESSAGES / ((performance.now() - natsBegan) / 1000);
  await receiver.close();

  const best = Math.max(...rates);
  const median = [...rates].sort((a, b) => a - b)[Math.floor(rates.length / 2)]!;
  console.log('');
  console.log(`status ingest, ${NODES} hollow nodes, ${PODS} pods, ${ROUNDS} rounds:`);
  console.log(
    `  pod status updates into etcd   median ${median.toFixed(0)}/s (rounds ${rates.map((r) => r.toFixed(0)).join(', ')})   goal ≥ 10,000/s`,
  );
  console.log(
    `  raw etcd puts (64 in flight)   ${putRate.toFixed(0)}/s   ratio ${(median / putRate).toFixed(2)}×`,
  );
  console.log(`  NATS small messages            ${natsRate.toFixed(0)}/s`);
  console.log(
    `  control plane CPU while ingesting: ${cpu.toFixed(1)} s over ${busySeconds.toFixed(1)} s (${((cpu / busySeconds) * 100).toFixed(0)} % of a core), best round ${best.toFixed(0)}/s`,
  );
  console.log(`  ${uptime()}`);
} finally {
  await nats.close();
  etcd.close();
  await cluster.dispose();
}

/** The status with readiness set to `ready` (a change the agent would report). */
function flipped(status: PodStatus, ready: boolean): PodStatus {
  const value = ready ? 'True' : 'False';
  return {
    ...status,
    conditions: (status.conditions ?? []).map((c) =>
      c.type === 'Ready' || c.type === 'ContainersReady'
        ? { ...c, status: value, ...(ready ? {} : { reason: 'ContainersNotReady' }) }
        : c,
    ),
    containerStatuses: (status.containerStatuses ?? []).map((c) => ({ ...c, ready })),
  };
}
