/**
 * A node that comes back after it was Ready=Unknown is asked, and only it, to report every pod
 * again: while it was away the node lifecycle controller wrote its pods not Ready, and an agent
 * reports only what changed since its own last report. A node group whose members all return in
 * one heartbeat is asked once. A failed write of a returning node's status is written again at
 * the next heartbeat. Real NATS, the API handlers on a memory store, the status ingest and the
 * agents' resync subscriptions.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'nats';
import type { Node } from '../../proto/gen/types.js';
import {
  groupResyncSubject,
  heartbeatSubject,
  nodeResyncSubject,
  type NodeGroupHeartbeat,
  type NodeHeartbeat,
} from '../../proto/node-reports.js';
import { NODE_GROUP_LABEL, nodeGroupHeartbeatSubject, nodeGroupMember } from '../../proto/node-group.js';
import { componentLogger } from '../../proto/support/logger.js';
import { ApiHandlers } from '../../controlplane/api/handlers.js';
import { MemoryStore } from '../../controlplane/store/memory-store.js';
import { StatusIngest } from '../../controlplane/status/status-ingest.js';
import { onResync } from '../../node-agent/agent/agent.js';
import { withNats } from '../harness/servers.js';
import { waitFor } from '../harness/lab.js';

const log = componentLogger('status-ingest-resync-test');

const READY = [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }];

async function storeNode(
  handlers: ApiHandlers,
  name: string,
  ready: string,
  labels?: Record<string, string>,
) {
  await handlers.create({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: {},
  } as Node);
  const node = (await handlers.get('Node', '', name)).object as Node;
  await handlers.updateStatus({
    ...node,
    status: { conditions: [{ type: 'Ready', status: ready, lastTransitionTime: '2026-01-01T00:00:00Z' }] },
  } as Node);
}

const readyOf = async (handlers: ApiHandlers, name: string) =>
  ((await handlers.get('Node', '', name)).object as Node).status?.conditions?.find((c) => c.type === 'Ready')
    ?.status;

describe('status ingest: a returning node is asked to resync', () => {
  const nats = withNats();

  test('the heartbeat of a node stored Ready=Unknown asks that node alone; a group returning together is asked once', async () => {
    const nc = await connect({ servers: nats().endpoint });
    const handlers = new ApiHandlers({ store: new MemoryStore(), log });
    await handlers.ensureSystemObjects();
    await storeNode(handlers, 'away', 'Unknown');
    await storeNode(handlers, 'steady', 'True');
    const members = Array.from({ length: 20 }, (_, i) => nodeGroupMember('rack', i));
    for (const member of members)
      await storeNode(handlers, member, 'Unknown', { [NODE_GROUP_LABEL]: 'rack' });
    const answered = { away: 0, steady: 0, rack: 0 };
    const agents = [
      onResync(nc, log, nodeResyncSubject('away'), () => answered.away++),
      onResync(nc, log, nodeResyncSubject('steady'), () => answered.steady++),
      onResync(nc, log, groupResyncSubject('rack'), () => answered.rack++),
    ];
    const ingest = new StatusIngest({ nats: nc, handlers, log, flushMs: 10 });
    ingest.start();
    try {
      await waitFor('every agent answered the start-up resync', async () =>
        Object.values(answered).every((n) => n === 1),
      );
      const beat = (node: string): NodeHeartbeat => ({
        node,
        seq: Date.now() * 1000,
        time: new Date().toISOString(),
        conditions: READY,
      });
      for (const node of ['steady', 'away']) nc.publish(heartbeatSubject(node), JSON.stringify(beat(node)));
      const group: NodeGroupHeartbeat = {
        seq: Date.now() * 1000,
        time: new Date().toISOString(),
        nodes: members,
        conditions: READY,
      };
      nc.publish(nodeGroupHeartbeatSubject('rack'), JSON.stringify(group));
      await waitFor('the returning node asked', async () => answered.away === 2, 10_000);
      await waitFor('every member stored Ready', async () => {
        for (const member of members) if ((await readyOf(handlers, member)) !== 'True') return false;
        return true;
      });
      await nc.flush();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(answered.rack, 2, 'the group was asked once for its 20 members');
      assert.equal(answered.steady, 1, 'a node that never left was not asked');
      assert.equal(await readyOf(handlers, 'away'), 'True');
    } finally {
      await ingest.stop();
      for (const agent of agents) agent.unsubscribe();
      await nc.close();
    }
  });

  test("a returning node's status write that fails is written again at its next heartbeat", async () => {
    const nc = await connect({ servers: nats().endpoint });
    const handlers = new ApiHandlers({ store: new MemoryStore(), log });
    await handlers.ensureSystemObjects();
    await storeNode(handlers, 'away', 'Unknown');
    const real = handlers.updateStatus.bind(handlers);
    let failures = 0;
    handlers.updateStatus = async (input) => {
      if (input.kind === 'Node' && failures++ === 0) throw new Error('etcdserver: request timed out');
      return real(input);
    };
    const ingest = new StatusIngest({ nats: nc, handlers, log, flushMs: 10 });
    ingest.start();
    try {
      for (let i = 0; i < 5; i++) {
        const beat: NodeHeartbeat = {
          node: 'away',
          seq: Date.now() * 1000 + i,
          time: new Date().toISOString(),
          conditions: READY,
        };
        nc.publish(heartbeatSubject('away'), JSON.stringify(beat));
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(failures >= 2, 'written again after the failure');
      assert.equal(await readyOf(handlers, 'away'), 'True');
    } finally {
      await ingest.stop();
      await nc.close();
    }
  });
});
