/**
 * apply's retry on a Conflict, against a real control plane: another writer updates the object
 * between apply's read and its write, so the first write is stale and is refused; apply re-reads,
 * merges again, and both changes survive.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiClient } from '../../proto/client.js';
import { parseManifestSource } from '../../cli/manifests.js';
import { applyObject, prepareDocument } from '../../cli/commands/apply.js';
import { connectCluster, startTestCluster, type TestCluster } from './cli-harness.js';

let cluster: TestCluster;
let api: ApiClient;

before(async () => {
  cluster = await startTestCluster('conflict');
  api = connectCluster(cluster);
});

after(async () => {
  api?.close();
  await cluster?.dispose();
});

const manifest = (value: string, name = 'raced') =>
  prepareDocument(
    parseManifestSource({
      name: 'cm.yaml',
      text: `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}}\ndata: {mine: "${value}"}\n`,
    })[0]!,
    undefined,
  );

test(
  'a write that lands between read and update makes apply retry, keeping both changes',
  { timeout: 120_000 },
  async () => {
    assert.equal((await applyObject(api, manifest('1'))).action, 'created');
    let interleaved = 0;
    let refused = 0;
    // The real client, with another writer's real update slipped in before apply's first write.
    const racing: ApiClient = {
      ...api,
      async update(object) {
        if (interleaved === 0) {
          interleaved++;
          const live = await api.get('ConfigMap', 'default', 'raced');
          live.data = { ...live.data, theirs: 'x' };
          await api.update(live);
        }
        try {
          return await api.update(object);
        } catch (err) {
          refused++;
          throw err;
        }
      },
    };
    assert.equal((await applyObject(racing, manifest('2'))).action, 'configured');
    assert.equal(refused, 1, 'the stale write was refused once');
    const live = await api.get('ConfigMap', 'default', 'raced');
    assert.deepEqual(live.data, { mine: '2', theirs: 'x' });
  },
);

test('twenty applies of one object at once all succeed, and the object holds one of them whole', async () => {
  const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
  const results = await Promise.allSettled(
    values.map((value) => applyObject(api, manifest(value, 'contended'))),
  );
  const failed = results.filter((result) => result.status === 'rejected');
  assert.deepEqual(
    failed.map((result) => String((result as PromiseRejectedResult).reason)),
    [],
    'no apply may fail because others wrote the same object',
  );
  const live = await api.get('ConfigMap', 'default', 'contended');
  assert.ok(values.includes(live.data?.mine ?? ''), `data.mine is ${live.data?.mine}`);
});
