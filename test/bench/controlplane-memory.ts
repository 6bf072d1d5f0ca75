/**
 * Control-plane memory at scale (issue 12): 5,000 hollow nodes (`skiff agent --hollow`) and 50,000
 * pods bound to them, reported Running, all stored in etcd and held in the control plane's watch
 * cache: the `skiff controlplane` process's RSS (VmRSS), beside its RSS when empty and etcd's in the
 * same run. Goal < 1.5 GiB (a kube-apiserver at that size uses several GiB).
 *
 *   node dist/test/bench/controlplane-memory.js [--nodes 5000] [--pods 50000]
 */
import { parseArgs } from 'node:util';
import {
  createRunningPods,
  rssBytes,
  startBenchCluster,
  uptime,
  waitForReadyNodes,
} from './hollow-cluster.js';

const { values } = parseArgs({
  options: { nodes: { type: 'string', default: '5000' }, pods: { type: 'string', default: '50000' } },
});
const NODES = Number(values.nodes);
const PODS = Number(values.pods);
const GROUP = 'hollow';
const MiB = 2 ** 20;

const cluster = await startBenchCluster(['--node-monitor-grace-period', '10m']);
try {
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const empty = rssBytes(cluster.pid);
  cluster.hollow(['--count', String(NODES), '--node-name-prefix', GROUP, '--pods', '110']);
  await waitForReadyNodes(cluster.api, NODES);
  await createRunningPods(cluster.api, PODS, GROUP, NODES);
  await new Promise((resolve) => setTimeout(resolve, 15_000)); // settled: writes done, heartbeats only
  const full = rssBytes(cluster.pid);
  const etcd = rssBytes(cluster.etcd.process.pid);
  console.log('');
  console.log(`control-plane memory with ${NODES} nodes and ${PODS} pods stored and cached:`);
  console.log(
    `  RSS ${(full / MiB).toFixed(0)} MiB   goal < 1536 MiB   ratio to goal ${(full / (1536 * MiB)).toFixed(2)}`,
  );
  console.log(
    `  reference: empty ${(empty / MiB).toFixed(0)} MiB; etcd ${(etcd / MiB).toFixed(0)} MiB in the same run`,
  );
  console.log(`  ${uptime()}`);
} finally {
  await cluster.dispose();
}
