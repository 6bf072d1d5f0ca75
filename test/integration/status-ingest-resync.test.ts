/**
 * A node that comes back after it was Ready=Unknown is asked, and only it, to report every pod
 * again: while it was away the node lifecycle controller wrote its pods not Ready, and an agent
 * reports only what changed since its own last report. Real NATS, the API handlers on a memory
 * store, the status ingest and the agent's resync subscription.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'nats';
import type { Node } from '../../proto/gen/types.js';
import { RESYNC_SUBJECT, heartbeatSubject, type NodeHeartbeat } from '../../proto/node-reports.js';
import { componentLogger } from '../../proto/support/logger.js';
import { ApiHandlers } from '../../controlplane/api/handlers.js';
import { MemoryStore } from '../../controlplane/store/memory-store.js';
import { StatusIngest } from '../../controlplane/status/status-ingest.js';
import { onResync } from '../../node-agent/agent/agent.js';
import { withNats } from '../harness/servers.js';
import { waitFor } from '../harness/lab.js';

const log = componentLogger('status-ingest-resync-test');

describe('status ingest: a returning node is asked to resync', () => {
  const nats = withNats();

  test('the heartbeat of a node stored Ready=Unknown asks that node alone; agents answer only requests for them', async () => {
    const nc = await connect({ servers: nats().endpoint });
    const store = new MemoryStore();
    const handlers = new ApiHandlers({ store, log });
    await handlers.ensureSystemObjects();
    for (const [name, status] of [
      ['away', 'Unknown'],
      ['steady', 'True'],
    ] as const) {
      await handlers.create({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: {} } as Node);
      const node = (await handlers.get('Node', '', name)).object as Node;
      await handlers.updateStatus({
        ...node,
        status: { conditions: [{ type: 'Ready', status, lastTransitionTime: '2026-01-01T00:00:00Z' }] },
      } as Node);
    }
    const requests: string[] = [];
    const resyncs = nc.subscribe(RESYNC_SUBJECT, {
      callback: (_err, message) => requests.push(new TextDecoder().decode(message.data)),
    });
    const answered = { away: 0, steady: 0 };
    const agents = (['away', 'steady'] as const).map((name) =>
      onResync(
        nc,
        log,
        (node) => node === name,
        () => answered[name]++,
      ),
    );
    const ingest = new StatusIngest({ nats: nc, handlers, log, flushMs: 10 });
    ingest.start();
    try {
      await nc.flush();
      await waitFor('the start-up resync (every agent)', async () => requests.length === 1);
      assert.deepEqual(JSON.parse(requests[0]!), {});
      await waitFor('both agents answered it', async () => answered.away === 1 && answered.steady === 1);

      const beat = (node: string): NodeHeartbeat => ({
        node,
        seq: Date.now() * 1000,
        time: new Date().toISOString(),
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
      });
      for (const node of ['steady', 'away']) nc.publish(heartbeatSubject(node), JSON.stringify(beat(node)));
      await waitFor('a resync for the returning node', async () => requests.length === 2, 10_000);
      assert.deepEqual(JSON.parse(requests[1]!), { nodes: ['away'] });
      await waitFor('its agent answered', async () => answered.away === 2);
      await nc.flush();
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(answered.steady, 1, 'the other agent was not asked');
      const away = (await handlers.get('Node', '', 'away')).object as Node;
      assert.equal(away.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    } finally {
      await ingest.stop();
      resyncs.unsubscribe();
      for (const agent of agents) agent.unsubscribe();
      await nc.close();
    }
  });
});
