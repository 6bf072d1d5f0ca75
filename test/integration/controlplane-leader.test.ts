/**
 * Two control planes on one etcd: both serve the API, one leads and runs the controllers; when it
 * stops the other takes over within the leader lease and the controllers run there.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../../controlplane/main.js';
import { NotFoundError } from '../../proto/errors.js';
import { decodeObject } from '../../proto/objects.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not so after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('two control planes, one leader', () => {
  let first: TestControlPlane;
  let second: ControlPlane | undefined;
  let secondDir: string;
  after(async () => {
    await second?.stop();
    await first?.dispose();
    if (secondDir) await rm(secondDir, { recursive: true, force: true });
  });

  test('one leads; the other takes over the controllers when it stops', async () => {
    first = await launchTestControlPlane('leader-a', { leaderLeaseSeconds: 2 });
    secondDir = await mkdtemp(join(tmpdir(), 'skiff-leader-b-'));
    second = await startControlPlane({
      etcdEndpoints: [first.etcd.endpoint],
      natsUrl: first.nats.endpoint,
      apiAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      stateDir: secondDir,
      // what every control plane of a cluster shares: the Secrets keys
      encryptionConfigFile: join(first.stateDir, 'encryption-config.yaml'),
      leaderLeaseSeconds: 2,
    });
    await until('a leader', () => first.controlPlane.isLeader || second!.isLeader || undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(
      [first.controlPlane.isLeader, second.isLeader].filter(Boolean).length,
      1,
      'exactly one leads',
    );
    const lease = decodeObject(
      'Lease',
      (await second.store.get({ resource: 'leases', namespace: 'kube-system', name: 'skiff-control-plane' }))
        .value,
    );
    assert.equal(lease.spec.leaseDurationSeconds, 2);
    assert.ok(lease.spec.holderIdentity);

    // the leader goes; the survivor must lead and its namespace controller finish a deletion
    const [leader, survivor] = first.controlPlane.isLeader
      ? [first.controlPlane, second]
      : [second, first.controlPlane];
    await leader.stop();
    if (leader === second) second = undefined;
    await until('the survivor leads', () => survivor.isLeader || undefined, 5_000);
    await survivor.handlers.create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'after-handover' },
      spec: {},
    });
    await survivor.handlers.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'after-handover' },
      data: { a: '1' },
    });
    await survivor.handlers.delete('Namespace', '', 'after-handover');
    await until('the namespace is gone', async () => {
      try {
        await survivor.handlers.get('Namespace', '', 'after-handover');
        return undefined;
      } catch (err) {
        if (err instanceof NotFoundError) return true;
        throw err;
      }
    });
  });
});
