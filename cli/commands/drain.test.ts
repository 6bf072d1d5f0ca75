import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pod } from '../../proto/gen/types.js';
import { drainBlocker } from './drain.js';

const pod = (extra: Partial<Pod['metadata']> = {}, spec: Partial<Pod['spec']> = {}, phase?: string): Pod =>
  ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'd', ...extra },
    spec: { containers: [], ...spec },
    ...(phase ? { status: { phase } } : {}),
  }) as Pod;
const owned = (kind: string) => ({
  ownerReferences: [{ apiVersion: 'apps/v1', kind, name: 'o', uid: 'u', controller: true }],
});

test("drain's rules: what blocks a pod, and the flag that lets it go", () => {
  assert.equal(drainBlocker(pod(owned('ReplicaSet')), {}), undefined);
  assert.equal(drainBlocker(pod(), {})?.flag, '--force');
  assert.equal(drainBlocker(pod(), { force: true }), undefined);
  assert.equal(drainBlocker(pod({}, {}, 'Succeeded'), {}), undefined, 'an ended pod needs no --force');
  assert.equal(drainBlocker(pod(owned('DaemonSet')), {})?.flag, '--ignore-daemonsets');
  assert.equal(drainBlocker(pod(owned('DaemonSet')), { ignoreDaemonsets: true }), undefined);
  assert.equal(
    drainBlocker(pod(owned('ReplicaSet'), { volumes: [{ name: 'tmp', emptyDir: {} }] }), {})?.flag,
    '--delete-emptydir-data',
  );
});
