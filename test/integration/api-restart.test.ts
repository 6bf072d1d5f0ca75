/**
 * The control plane across a restart: the admin token survives (not re-created), objects are
 * still there, and a namespace deletion left half-done is finished by the next control plane.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotFoundError, UnavailableError } from '../../proto/errors.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../controlplane/main.js';
import { launchTestEtcd, type TestEtcd } from '../harness/servers.js';

describe('control plane restart', { timeout: 120_000 }, () => {
  let etcd: TestEtcd;
  let stateDir: string;
  let running: ControlPlane | undefined;
  let options: ControlPlaneOptions;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'skiff-api-restart-'));
    etcd = await launchTestEtcd();
    options = {
      etcdEndpoints: [etcd.endpoint],
      apiAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      stateDir,
      namespaceResyncMs: 200,
      bookmarkIntervalMs: 100,
    };
  });

  after(async () => {
    await running?.stop();
    await etcd?.dispose();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  test('keeps the token and objects, and finishes a namespace deletion begun before it', async () => {
    running = await startControlPlane(options);
    const token = (await readFile(running.adminTokenFile, 'utf8')).trim();
    let api: ApiClient = connectApi({ server: running.apiAddress, token, timeoutMs: 3000 });
    await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'held' }, spec: {} });
    await api.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'keep', namespace: 'held', finalizers: ['example.com/hold'] },
    });
    await api.delete('Namespace', '', 'held');
    // The finalizer keeps the namespace Terminating; the control plane stops in the middle.
    assert.ok((await api.get('Namespace', '', 'held')).metadata.deletionTimestamp);
    const watch = api.watch('ConfigMap', { namespace: 'held', allowBookmarks: true })[Symbol.asyncIterator]();
    // A first event (the deleter's mark, or a bookmark) proves the watch is established.
    assert.equal((await watch.next()).done, false);
    // read on until it ends: bookmarks (every 100 ms) may come before the stop does
    const ended = (async (): Promise<unknown> => {
      try {
        while (!(await watch.next()).done);
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    await running.stop();
    const end = await ended;
    assert.ok(
      end instanceof UnavailableError,
      `an open watch ends with UNAVAILABLE when the control plane stops; it ended with ${end === undefined ? 'no error' : String(end)}`,
    );
    api.close();
    running = undefined;

    running = await startControlPlane(options);
    assert.equal(
      (await readFile(running.adminTokenFile, 'utf8')).trim(),
      token,
      'the admin token is not re-created',
    );
    api = connectApi({ server: running.apiAddress, token, timeoutMs: 3000 });
    try {
      const kept = await api.get('ConfigMap', 'held', 'keep');
      assert.ok(kept.metadata.deletionTimestamp, 'the namespace controller marked the object');
      await api.update({ ...kept, metadata: { ...kept.metadata, finalizers: [] } });
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await api.get('Namespace', '', 'held');
        } catch (err) {
          if (err instanceof NotFoundError) break;
          throw err;
        }
        if (Date.now() > deadline)
          assert.fail('the restarted control plane did not finish deleting namespace held');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      api.close();
    }
  });
});
