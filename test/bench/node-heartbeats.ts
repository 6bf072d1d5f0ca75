/**
 * What heartbeats cost the control plane (issue 12): 5,000 hollow nodes (`skiff agent --hollow
 * --count 5000`, one process, a heartbeat every 10 s) registered with a `skiff controlplane`
 * process; its CPU (user + system, /proc/<pid>/stat) as % of one core over 60 s:
 *
 *   group beats    the hollow nodes heartbeating (their group's messages, 2,000 nodes a message)
 *   node beats     the hollow process stopped (SIGSTOP), and 5,000 heartbeats every 10 s published
 *                  by this bench on each node's own subject (skiff.node.<n>.heartbeat), as 5,000
 *                  real agents send them (one message each, spread over the interval)
 *   reference      no heartbeat at all: the control plane with 5,000 Nodes, idle
 *
 * Measured after a settling minute: registering 5,000 nodes leaves work behind (pod CIDRs written,
 * each Node's first heartbeat compared with what is stored).
 *
 * Goal: < 10 % of a core. The grace before a silent node is marked is 10 min here, so the stops
 * mark nothing.
 *
 *   node dist/test/bench/node-heartbeats.js [--nodes 5000] [--seconds 60]
 */
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import type { Condition } from '../../proto/gen/types.js';
import { nodeGroupMember } from '../../proto/node-group.js';
import { heartbeatSubject, reportSequence, type NodeHeartbeat } from '../../proto/node-reports.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';
import { cpuSeconds, startBenchCluster, uptime, waitForReadyNodes } from './hollow-cluster.js';

const { values } = parseArgs({
  options: { nodes: { type: 'string', default: '5000' }, seconds: { type: 'string', default: '60' } },
});
const NODES = Number(values.nodes);
const SECONDS = Number(values.seconds);
const GROUP = 'hollow';

const cluster = await startBenchCluster(['--node-monitor-grace-period', '10m']);
const nats = await connect({ servers: cluster.nats.endpoint });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The control plane's CPU over `seconds`, as % of one core. */
const cpuOver = async (seconds: number): Promise<number> => {
  const before = cpuSeconds(cluster.pid);
  const began = performance.now();
  await sleep(seconds * 1000);
  return ((cpuSeconds(cluster.pid) - before) / ((performance.now() - began) / 1000)) * 100;
};
try {
  const hollow = cluster.hollow(['--count', String(NODES), '--node-name-prefix', GROUP]);
  await waitForReadyNodes(cluster.api, NODES);
  await sleep(60_000); // the first heartbeats, and what the node IPAM controller still writes

  // two windows: the first may still hold what registration left behind
  const groupedFirst = await cpuOver(SECONDS);
  const grouped = await cpuOver(SECONDS);
  console.log(
    `group heartbeats of ${NODES} hollow nodes: ${groupedFirst.toFixed(2)} %, then ${grouped.toFixed(2)} % of a core over ${SECONDS} s`,
  );

  hollow.kill('SIGSTOP');
  const nextSeq = reportSequence();
  const names = Array.from({ length: NODES }, (_, i) => nodeGroupMember(GROUP, i));
  let beating = true;
  let sent = 0;
  // each node every 10 s, a tenth of them each second, as agents started at different times
  const beats = (async () => {
    for (let tick = 0; beating; tick++) {
      const now = rfc3339Seconds(new Date());
      const conditions: Condition[] = [
        { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', message: 'node has sufficient memory available', lastHeartbeatTime: now },
        { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'node has sufficient disk space available', lastHeartbeatTime: now },
        { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', message: 'node has sufficient PIDs available', lastHeartbeatTime: now },
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'skiff agent is posting ready status', lastHeartbeatTime: now },
      ]; // prettier-ignore
      for (let i = tick % 10; i < NODES; i += 10) {
        const beat: NodeHeartbeat = { node: names[i]!, seq: nextSeq(), time: now, conditions };
        nats.publish(heartbeatSubject(names[i]!), JSON.stringify(beat));
        sent++;
      }
      await sleep(1000);
    }
  })();
  await sleep(12_000);
  const sentBefore = sent;
  const perNode = await cpuOver(SECONDS);
  beating = false;
  await beats;
  console.log(
    `node heartbeats of ${NODES} nodes (${((sent - sentBefore) / SECONDS).toFixed(0)} messages/s): ${perNode.toFixed(2)} % of a core over ${SECONDS} s`,
  );
  await sleep(2000);
  const idle = await cpuOver(SECONDS);
  console.log(`reference, ${NODES} Nodes and no heartbeat: ${idle.toFixed(2)} % of a core over ${SECONDS} s`);
  hollow.kill('SIGCONT');

  console.log('');
  console.log(`heartbeats of ${NODES} nodes, control-plane CPU (% of one core over ${SECONDS} s):`);
  console.log(
    `  group heartbeats (hollow)      ${grouped.toFixed(2)} % (the window before: ${groupedFirst.toFixed(2)} %)   goal < 10 %   ratio to goal ${(grouped / 10).toFixed(2)}`,
  );
  console.log(
    `  one message per node (agents)  ${perNode.toFixed(2)} %   goal < 10 %   ratio to goal ${(perNode / 10).toFixed(2)}`,
  );
  console.log(`  reference: no heartbeats       ${idle.toFixed(2)} %`);
  console.log(`  ${uptime()}`);
} finally {
  await nats.close();
  await cluster.dispose();
}
