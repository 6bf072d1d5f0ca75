/**
 * The API server end to end: a real control plane (real etcd and NATS from the test harness, the
 * gRPC server on a free port) driven through the typed client, as the CLI and agents use it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  GoneError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from '../../proto/errors.js';
import type { ConfigMap, Namespace, Pod } from '../../proto/gen/types.js';
import { connectApi, type ApiClient, type WatchEvent } from '../../proto/client.js';
import { generateToken, hashToken } from '../../controlplane/api/auth.js';
import { StoreTokenStore } from '../../controlplane/api/token-store.js';
import type { ControlPlane } from '../../controlplane/main.js';
import type { TestEtcd } from '../harness/servers.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';

const UNARY_TIMEOUT_MS = 3000;

function configMap(
  name: string,
  data: Record<string, string> = { a: '1' },
  namespace = 'default',
): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data };
}

function pod(name: string, extra: Partial<Pod['spec']> = {}, namespace = 'default'): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'web' } },
    spec: { containers: [{ name: 'main', image: 'busybox:1.36' }], ...extra },
  };
}

/** Collects events from a watch until `done` says so or the timeout passes. */
async function collect(
  events: AsyncIterable<WatchEvent>,
  done: (seen: WatchEvent[]) => boolean,
  timeoutMs = 5000,
): Promise<WatchEvent[]> {
  const seen: WatchEvent[] = [];
  const iterator = events[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  try {
    while (!done(seen)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`watch: timed out; saw ${JSON.stringify(seen.map((e) => e.type))}`);
      let timer: NodeJS.Timeout | undefined;
      const next = await Promise.race([
        iterator.next(),
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left))),
      ]);
      clearTimeout(timer);
      if (next === 'timeout') continue;
      if (next.done) break;
      seen.push(next.value);
    }
  } finally {
    void iterator.return?.();
  }
  return seen;
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

describe('API server', { timeout: 120_000 }, () => {
  let cluster: TestControlPlane | undefined;
  let etcd: TestEtcd;
  let controlPlane: ControlPlane;
  let token: string;
  let api: ApiClient;

  before(async () => {
    cluster = await launchTestControlPlane('api-test', {
      etcdTimeoutMs: 1000,
      bookmarkIntervalMs: 200,
      namespaceResyncMs: 200,
      maxWatchesPerToken: 4,
    });
    ({ etcd, controlPlane, adminToken: token } = cluster);
    api = connectApi({ server: controlPlane.apiAddress, token, timeoutMs: UNARY_TIMEOUT_MS });
  });

  after(async () => {
    api?.close();
    await cluster?.dispose();
  });

  test('the admin token file is 0600 and etcd holds only its hash', async () => {
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal((await stat(controlPlane.adminTokenFile)).mode & 0o777, 0o600);
    const stored = await controlPlane.store.list('tokens');
    assert.equal(stored.items.length, 1);
    const text = Buffer.from(stored.items[0]!.value).toString();
    assert.ok(text.includes(hashToken(token)));
    assert.ok(!text.includes(token));
  });

  test('the namespaces every Kubernetes cluster has exist from the first start', async () => {
    const names = (await api.list('Namespace')).items.map((ns) => ns.metadata.name);
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease'])
      assert.ok(names.includes(name), `${name} missing; namespaces: ${names.join(',')}`);
    assert.equal(((await api.get('Namespace', '', 'default')) as Namespace).status?.phase, 'Active');
  });

  test('create, get, list, update and delete through the client', async () => {
    const created = await api.create(configMap('crud'));
    assert.ok(created.metadata.uid);
    assert.ok(created.metadata.creationTimestamp);
    assert.match(created.metadata.resourceVersion ?? '', /^\d+$/);
    const got = await api.get('ConfigMap', 'default', 'crud');
    assert.equal((await api.get('configmaps', 'default', 'crud')).metadata.uid, created.metadata.uid);
    assert.deepEqual(got.data, { a: '1' });
    assert.equal(got.metadata.resourceVersion, created.metadata.resourceVersion);
    const listed = await api.list('cm', { namespace: 'default' });
    assert.ok(listed.items.some((cm) => cm.metadata.name === 'crud'));
    assert.ok(BigInt(listed.resourceVersion) >= BigInt(created.metadata.resourceVersion!));
    const updated = await api.update({ ...got, data: { a: '2' } });
    assert.deepEqual(updated.data, { a: '2' });
    assert.ok(BigInt(updated.metadata.resourceVersion!) > BigInt(got.metadata.resourceVersion!));
    await assert.rejects(api.create(configMap('crud')), AlreadyExistsError);
    const deleted = await api.delete('ConfigMap', 'default', 'crud');
    assert.equal(deleted.metadata.name, 'crud');
    await assert.rejects(api.get('ConfigMap', 'default', 'crud'), NotFoundError);
  });

  test('generation moves only when the spec changes; status is written only by updateStatus', async () => {
    // a scheduler no one runs: the scheduler would write the status of a pod it places
    const created = await api.create({
      ...pod('gen', { schedulerName: 'no-scheduler' }),
      status: { phase: 'Running' },
    });
    assert.equal(created.metadata.generation, 1);
    assert.deepEqual(
      created.status,
      { phase: 'Pending' },
      'the status sent on create is replaced: a pod starts Pending',
    );
    const relabelled = await api.update({
      ...created,
      metadata: { ...created.metadata, labels: { app: 'other' } },
    });
    assert.equal(relabelled.metadata.generation, 1);
    const withStatus = await api.updateStatus({ ...relabelled, status: { phase: 'Running' } });
    assert.equal(withStatus.metadata.generation, 1);
    assert.equal(withStatus.status?.phase, 'Running');
    const respecced = await api.update({
      ...withStatus,
      spec: { ...withStatus.spec, containers: [{ name: 'main', image: 'busybox:1.37' }] },
      status: { phase: 'Failed' },
    });
    assert.equal(respecced.metadata.generation, 2);
    assert.equal(respecced.status?.phase, 'Running', 'status is ignored on update');
    const statusOnly = await api.updateStatus({
      ...respecced,
      spec: { ...respecced.spec, containers: [{ name: 'main', image: 'ignored:1' }] },
      status: { phase: 'Succeeded' },
    });
    assert.equal(statusOnly.spec.containers?.[0]?.image, 'busybox:1.37', 'spec is ignored on updateStatus');
    assert.equal(statusOnly.metadata.generation, 2);
  });

  test('generateName gives distinct names with a random suffix', async () => {
    const template: ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { generateName: 'gen-', namespace: 'default' },
    };
    const a = await api.create(template);
    const b = await api.create(template);
    assert.match(a.metadata.name ?? '', /^gen-[a-z0-9]{5}$/);
    assert.notEqual(a.metadata.name, b.metadata.name);
  });

  test('an unknown field and a bad name are INVALID_ARGUMENT naming the field path', async () => {
    const bogus = pod('bogus') as unknown as { spec: { containers: Array<Record<string, unknown>> } };
    bogus.spec.containers[0]!.imagePullSecretz = 'x';
    await assert.rejects(api.create(bogus as unknown as Pod), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.equal(err.field, 'spec.containers[0].imagePullSecretz');
      return true;
    });
    await assert.rejects(api.create(configMap('Bad_Name')), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError, String(err));
      assert.equal(err.field, 'metadata.name');
      assert.match(err.message, /Bad_Name/);
      return true;
    });
  });

  test('creating in a missing namespace is NotFound naming it; an oversized object is INVALID_ARGUMENT', async () => {
    await assert.rejects(api.create(configMap('x', {}, 'nowhere')), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.match(err.message, /namespace "nowhere" not found/);
      return true;
    });
    await assert.rejects(
      api.create(configMap('huge', { blob: 'x'.repeat(2 * 1024 * 1024) })),
      (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, String(err));
        assert.equal(err.field, 'data');
        return true;
      },
    );
    // Within every field's own limit, over etcd's request size as a whole.
    const env = [
      { name: 'SMALL', value: 'y' },
      { name: 'BIG', value: 'x'.repeat(2 * 1024 * 1024) },
    ];
    await assert.rejects(
      api.create(pod('huge', { containers: [{ name: 'main', image: 'busybox:1.36', env }] })),
      (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError, String(err));
        assert.equal(err.field, 'spec.containers[0].env[1].value');
        assert.match(err.message, /over the limit of 1564672/);
        return true;
      },
    );
  });

  test('two updaters from one resourceVersion: exactly one wins, the other gets ConflictError', async () => {
    const base = await api.create(configMap('race'));
    const results = await Promise.allSettled([
      api.update({ ...base, data: { a: 'first' } }),
      api.update({ ...base, data: { a: 'second' } }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(won.length, 1);
    assert.equal(lost.length, 1);
    assert.ok(lost[0]!.reason instanceof ConflictError, String(lost[0]!.reason));
  });

  test('label and field selectors on list; pagination with limit and continue', async () => {
    await api.create({
      ...configMap('sel-a'),
      metadata: { name: 'sel-a', namespace: 'default', labels: { tier: 'front', page: 'yes' } },
    });
    await api.create({
      ...configMap('sel-b'),
      metadata: { name: 'sel-b', namespace: 'default', labels: { tier: 'back', page: 'yes' } },
    });
    await api.create({
      ...configMap('sel-c'),
      metadata: { name: 'sel-c', namespace: 'default', labels: { page: 'yes' } },
    });
    const names = async (opts: Parameters<ApiClient['list']>[1]): Promise<string[]> =>
      (await api.list('ConfigMap', opts)).items.map((cm) => cm.metadata.name!).sort();
    assert.deepEqual(await names({ labelSelector: 'tier=front' }), ['sel-a']);
    assert.deepEqual(await names({ labelSelector: 'page=yes,tier!=front' }), ['sel-b', 'sel-c']);
    assert.deepEqual(await names({ labelSelector: 'tier in (front,back)' }), ['sel-a', 'sel-b']);
    assert.deepEqual(await names({ fieldSelector: 'metadata.name=sel-c' }), ['sel-c']);
    const seen: string[] = [];
    let page = await api.list('ConfigMap', { labelSelector: 'page=yes', limit: 2 });
    seen.push(...page.items.map((cm) => cm.metadata.name!));
    assert.equal(page.items.length, 2);
    assert.ok(page.continue);
    page = await api.list('ConfigMap', { labelSelector: 'page=yes', limit: 2, continue: page.continue! });
    seen.push(...page.items.map((cm) => cm.metadata.name!));
    assert.deepEqual(seen.sort(), ['sel-a', 'sel-b', 'sel-c']);
  });

  test('watch resumes after a resourceVersion, with every later event in order', async () => {
    const start = (await api.list('ConfigMap', { namespace: 'default' })).resourceVersion;
    await api.create(configMap('w-1'));
    const second = await api.create(configMap('w-2'));
    await api.update({ ...second, data: { a: 'changed' } });
    await api.delete('ConfigMap', 'default', 'w-1');
    const all = await collect(
      api.watch('ConfigMap', { namespace: 'default', resourceVersion: start }),
      (s) => s.length >= 4,
    );
    assert.deepEqual(
      all.map((e) => `${e.type} ${e.object?.metadata.name}`),
      ['ADDED w-1', 'ADDED w-2', 'MODIFIED w-2', 'DELETED w-1'],
    );
    const fromSecond = await collect(
      api.watch('ConfigMap', { namespace: 'default', resourceVersion: all[1]!.resourceVersion }),
      (s) => s.length >= 2,
    );
    assert.deepEqual(
      fromSecond.map((e) => e.type),
      ['MODIFIED', 'DELETED'],
    );
  });

  test('a watch resumed mid-revision delivers every object of a group of creates that share it', async () => {
    const start = (await api.list('ConfigMap', { namespace: 'default' })).resourceVersion;
    // Creates arriving while one is in flight go to etcd as one transaction: one revision.
    const created = await Promise.all(
      Array.from({ length: 24 }, (_, i) => api.create(configMap(`grp-${i}`))),
    );
    const byRevision = new Map<string, string[]>();
    for (const object of created) {
      const names = byRevision.get(object.metadata.resourceVersion!) ?? [];
      names.push(object.metadata.name!);
      byRevision.set(object.metadata.resourceVersion!, names);
    }
    const [groupRevision, group] = [...byRevision].sort((a, b) => b[1].length - a[1].length)[0]!;
    assert.ok(group.length >= 2, `concurrent creates formed no group: ${JSON.stringify([...byRevision])}`);
    const isGrouped = (e: WatchEvent): boolean => e.object?.metadata.resourceVersion === groupRevision;

    const abort = new AbortController();
    const firstPart = await collect(
      api.watch('ConfigMap', { namespace: 'default', resourceVersion: start, signal: abort.signal }),
      (seen) => seen.some(isGrouped),
    );
    abort.abort();
    const lastReceived = firstPart.at(-1)!;
    assert.ok(isGrouped(lastReceived));

    const received = new Set(firstPart.filter(isGrouped).map((e) => e.object!.metadata.name!));
    const resumed = await collect(
      api.watch('ConfigMap', { namespace: 'default', resourceVersion: lastReceived.resourceVersion }),
      (seen) =>
        group.every((name) => received.has(name) || seen.some((e) => e.object?.metadata.name === name)),
    );
    for (const e of resumed) if (isGrouped(e)) received.add(e.object!.metadata.name!);
    assert.deepEqual([...received].sort(), [...group].sort());
    assert.equal(BigInt(lastReceived.resourceVersion), BigInt(groupRevision) - 1n);
    for (const object of created) await api.delete('ConfigMap', 'default', object.metadata.name!);
  });

  test('a selector over 4 KiB is INVALID_ARGUMENT naming it, on list and watch, before it is parsed', async () => {
    const hostile = `metadata.name=${' '.repeat(5000)}!`;
    const started = Date.now();
    await assert.rejects(
      api.list('Pod', { namespace: 'default', fieldSelector: hostile }),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.field === 'fieldSelector' && /4096/.test(err.message),
    );
    await assert.rejects(
      collect(
        api.watch('Pod', { namespace: 'default', labelSelector: `a in (${'b,'.repeat(3000)}c)` }),
        () => false,
      ),
      (err: unknown) => err instanceof InvalidArgumentError && err.field === 'labelSelector',
    );
    assert.ok(Date.now() - started < 1000, `refusing took ${Date.now() - started} ms`);
  });

  test('a selective watch reports objects leaving and entering the selection', async () => {
    const start = (await api.list('ConfigMap')).resourceVersion;
    const cm = await api.create({
      ...configMap('move'),
      metadata: { name: 'move', namespace: 'default', labels: { watch: 'in' } },
    });
    await api.update({ ...cm, metadata: { ...cm.metadata, labels: { watch: 'out' }, resourceVersion: '' } });
    const events = await collect(
      api.watch('ConfigMap', { labelSelector: 'watch=in', resourceVersion: start }),
      (s) => s.length >= 2,
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ['ADDED', 'DELETED'],
    );
  });

  test('watches and resourceVersion lists are answered by the watch cache: etcd sees no new watcher', async () => {
    const etcdWatchers = async (): Promise<number> => {
      const metrics = await (await fetch(`${etcd.endpoint}/metrics`)).text();
      return Number(/^etcd_debugging_mvcc_watcher_total (\d+)$/m.exec(metrics)![1]);
    };
    const before = await etcdWatchers();
    const start = (await api.list('ConfigMap', { namespace: 'default' })).resourceVersion;
    const controller = new AbortController();
    const watches = [
      api.watch('ConfigMap', { namespace: 'default', resourceVersion: start, signal: controller.signal }),
      api.watch('ConfigMap', {
        resourceVersion: start,
        labelSelector: 'cached=yes',
        signal: controller.signal,
      }),
      api.watch('ConfigMap', {
        resourceVersion: start,
        fieldSelector: 'metadata.name=cached-1',
        signal: controller.signal,
      }),
    ].map((events) => collect(events, (seen) => seen.some((e) => e.object?.metadata.name === 'cached-1')));
    await api.create({
      ...configMap('cached-1'),
      metadata: { name: 'cached-1', namespace: 'default', labels: { cached: 'yes' } },
    });
    for (const seen of await Promise.all(watches))
      assert.deepEqual(
        seen.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.object!.metadata.name}`),
        ['ADDED cached-1'],
      );
    controller.abort();
    assert.equal(await etcdWatchers(), before, 'three API watches, no new etcd watcher');

    const latest = await api.list('ConfigMap');
    await eventually(
      async () =>
        (await api.list('ConfigMap', { resourceVersion: latest.resourceVersion })).items.length ===
        latest.items.length,
      5000,
      'a not-older-than list from the cache',
    );
    const fromCache = await api.list('ConfigMap', { resourceVersion: '0', labelSelector: 'cached=yes' });
    assert.deepEqual(
      fromCache.items.map((cm) => cm.metadata.name),
      ['cached-1'],
    );
    await assert.rejects(
      api.list('ConfigMap', { resourceVersion: '0', limit: 1 }),
      (err: unknown) => err instanceof InvalidArgumentError && err.field === 'resourceVersion',
    );
    await assert.rejects(
      api.list('ConfigMap', { resourceVersion: 'latest' }),
      (err: unknown) => err instanceof InvalidArgumentError && /not a revision/.test(err.message),
    );
  });

  test("a node's pods by spec.nodeName: the watch and the resourceVersion list get only that node's", async () => {
    const start = (await api.list('Pod', { namespace: 'default' })).resourceVersion;
    const controller = new AbortController();
    const seen = collect(
      api.watch('Pod', {
        namespace: 'default',
        resourceVersion: start,
        fieldSelector: 'spec.nodeName=node-a',
        signal: controller.signal,
      }),
      (events) => events.filter((e) => e.type === 'DELETED').length === 1,
    );
    await api.create(pod('on-a', { nodeName: 'node-a' }));
    await api.create(pod('on-b', { nodeName: 'node-b' }));
    await api.delete('Pod', 'default', 'on-b', { gracePeriodSeconds: 0 });
    await api.delete('Pod', 'default', 'on-a', { gracePeriodSeconds: 0 });
    const events = (await seen).filter((e) => e.type !== 'BOOKMARK');
    controller.abort();
    assert.deepEqual(
      events
        .map((e) => `${e.type} ${e.object!.metadata.name}`)
        .filter((line, i, all) => all.indexOf(line) === i),
      ['ADDED on-a', ...(events.some((e) => e.type === 'MODIFIED') ? ['MODIFIED on-a'] : []), 'DELETED on-a'],
    );
    await api.create(pod('again-a', { nodeName: 'node-a' }));
    await api.create(pod('again-b', { nodeName: 'node-b' }));
    const latest = (await api.list('Pod', { namespace: 'default' })).resourceVersion;
    await eventually(
      async () =>
        (await api.list('Pod', { resourceVersion: latest, fieldSelector: 'spec.nodeName=node-a' })).items
          .length === 1,
      5000,
      'the cache has both pods',
    );
    const onA = await api.list('Pod', { resourceVersion: latest, fieldSelector: 'spec.nodeName=node-a' });
    assert.deepEqual(
      onA.items.map((p) => p.metadata.name),
      ['again-a'],
    );
  });

  test('bookmarks arrive periodically when asked for', async () => {
    const start = (await api.list('Secret')).resourceVersion;
    const events = await collect(
      api.watch('Secret', { resourceVersion: start, allowBookmarks: true }),
      (s) => s.length >= 1,
      3000,
    );
    assert.equal(events[0]!.type, 'BOOKMARK');
    assert.ok(BigInt(events[0]!.resourceVersion) >= BigInt(start));
    assert.equal(events[0]!.object, undefined);
  });

  test('a watch from a compacted resourceVersion fails with GoneError', async () => {
    const old = (await api.create(configMap('compact-1'))).metadata.resourceVersion!;
    await api.create(configMap('compact-2'));
    await api.create(configMap('compact-3'));
    const now = await controlPlane.store.currentRevision();
    await controlPlane.store.compact(now);
    await assert.rejects(
      collect(api.watch('ConfigMap', { resourceVersion: old }), () => false, 3000),
      (err: unknown) => {
        assert.ok(err instanceof GoneError, String(err));
        return true;
      },
    );
  });

  test('finalizers hold a deleted object until the last one is removed', async () => {
    await api.create({
      ...configMap('held'),
      metadata: { name: 'held', namespace: 'default', finalizers: ['example.com/hold'] },
    });
    const marked = await api.delete('ConfigMap', 'default', 'held');
    assert.ok(marked.metadata.deletionTimestamp);
    const still = await api.get('ConfigMap', 'default', 'held');
    assert.ok(still.metadata.deletionTimestamp);
    await api.update({ ...still, metadata: { ...still.metadata, finalizers: [] } });
    await assert.rejects(api.get('ConfigMap', 'default', 'held'), NotFoundError);
  });

  test('delete preconditions; bound pods get a grace period, unbound ones go at once', async () => {
    const cm = await api.create(configMap('pre'));
    await assert.rejects(
      api.delete('ConfigMap', 'default', 'pre', { preconditions: { uid: 'not-the-uid' } }),
      ConflictError,
    );
    await api.update({ ...cm, data: { a: 'newer' } });
    await assert.rejects(
      api.delete('ConfigMap', 'default', 'pre', {
        preconditions: { resourceVersion: cm.metadata.resourceVersion! },
      }),
      ConflictError,
    );
    await api.delete('ConfigMap', 'default', 'pre', { preconditions: { uid: cm.metadata.uid! } });

    await api.create(pod('unbound'));
    await api.delete('Pod', 'default', 'unbound');
    await assert.rejects(api.get('Pod', 'default', 'unbound'), NotFoundError);

    await api.create(pod('bound', { nodeName: 'node-1', terminationGracePeriodSeconds: 20 }));
    const terminating = await api.delete('Pod', 'default', 'bound');
    assert.ok(terminating.metadata.deletionTimestamp);
    assert.equal(terminating.metadata.deletionGracePeriodSeconds, 20);
    assert.ok((await api.get('Pod', 'default', 'bound')).metadata.deletionTimestamp);
    await api.delete('Pod', 'default', 'bound', { gracePeriodSeconds: 0 });
    await assert.rejects(api.get('Pod', 'default', 'bound'), NotFoundError);
  });

  test('deleting a namespace refuses new objects in it and deletes its contents, then itself', async () => {
    await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' }, spec: {} });
    await api.create(configMap('inside', {}, 'doomed'));
    await api.create(pod('inside', {}, 'doomed'));
    const marked = (await api.delete('Namespace', '', 'doomed')) as Namespace;
    assert.ok(marked.metadata.deletionTimestamp);
    assert.equal(marked.status?.phase, 'Terminating');
    await assert.rejects(api.create(configMap('late', {}, 'doomed')), (err: unknown) => {
      // The deleter may already have removed the namespace.
      assert.ok(err instanceof FailedPreconditionError || err instanceof NotFoundError, String(err));
      return true;
    });
    await eventually(
      async () => {
        try {
          await api.get('Namespace', '', 'doomed');
          return false;
        } catch (err) {
          if (err instanceof NotFoundError) return true;
          throw err;
        }
      },
      10_000,
      'namespace doomed to be deleted',
    );
    assert.equal((await api.list('ConfigMap', { namespace: 'doomed' })).items.length, 0);
    assert.equal((await api.list('Pod', { namespace: 'doomed' })).items.length, 0);
    await assert.rejects(api.delete('Namespace', '', 'default'), FailedPreconditionError);
  });

  test('no token or a wrong token is UNAUTHENTICATED; a view token may only read', async () => {
    const anonymous = connectApi({ server: controlPlane.apiAddress, token: '', timeoutMs: UNARY_TIMEOUT_MS });
    const wrong = connectApi({
      server: controlPlane.apiAddress,
      token: generateToken(),
      timeoutMs: UNARY_TIMEOUT_MS,
    });
    const viewToken = generateToken();
    await new StoreTokenStore(controlPlane.store).createIfAbsent({
      name: 'viewer',
      role: 'view',
      sha256: hashToken(viewToken),
      createdAt: new Date().toISOString(),
    });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const viewer = connectApi({
      server: controlPlane.apiAddress,
      token: viewToken,
      timeoutMs: UNARY_TIMEOUT_MS,
    });
    try {
      await assert.rejects(anonymous.list('Pod'), UnauthenticatedError);
      await assert.rejects(wrong.get('Namespace', '', 'default'), UnauthenticatedError);
      await assert.rejects(
        collect(wrong.watch('Pod'), () => false, 2000),
        UnauthenticatedError,
      );
      await viewer.list('Pod');
      await assert.rejects(viewer.create(configMap('by-viewer')), PermissionDeniedError);
    } finally {
      anonymous.close();
      wrong.close();
      viewer.close();
    }
  });

  test('one token may hold only maxWatchesPerToken watches: the next is RESOURCE_EXHAUSTED naming the limit', async () => {
    const watcherToken = generateToken();
    await new StoreTokenStore(controlPlane.store).createIfAbsent({
      name: 'watcher',
      role: 'view',
      sha256: hashToken(watcherToken),
      createdAt: new Date().toISOString(),
    });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const watcher = connectApi({
      server: controlPlane.apiAddress,
      token: watcherToken,
      timeoutMs: UNARY_TIMEOUT_MS,
    });
    const aborts = Array.from({ length: 4 }, () => new AbortController());
    try {
      const open = aborts.map((abort) =>
        watcher.watch('Pod', { allowBookmarks: true, signal: abort.signal })[Symbol.asyncIterator](),
      );
      // A bookmark proves the watch is established and counted.
      for (const iterator of open) assert.equal((await iterator.next()).value?.type, 'BOOKMARK');
      await assert.rejects(
        collect(watcher.watch('Pod'), () => false, 2000),
        (err: unknown) => err instanceof ResourceExhaustedError && /maxWatchesPerToken 4/.test(err.message),
      );
      // Another token is not held back by this one's watches.
      await collect(api.watch('Pod', { allowBookmarks: true }), (seen) => seen.length > 0);
      aborts[0]!.abort();
      await eventually(
        async () =>
          await collect(watcher.watch('Pod', { allowBookmarks: true }), (seen) => seen.length > 0).then(
            () => true,
            () => false,
          ),
        3000,
        'a watch slot to be freed',
      );
    } finally {
      for (const abort of aborts) abort.abort();
      watcher.close();
    }
  });

  test('/healthz, /readyz and /metrics', async () => {
    const base = `http://${controlPlane.httpAddress}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(
      metrics,
      /skiff_api_request_duration_seconds_count\{method="Create",kind="ConfigMap",code="OK"\} \d+/,
    );
    assert.match(metrics, /process_resident_memory_bytes/);
  });

  test('a write that etcd does not answer within the call deadline is UNAVAILABLE saying its outcome is unknown', async () => {
    const hurried = connectApi({ server: controlPlane.apiAddress, token, timeoutMs: 700 });
    const pid = etcd.process.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      await assert.rejects(hurried.create(configMap('maybe-written')), (err: unknown) => {
        assert.ok(err instanceof UnavailableError, String(err));
        assert.match(err.message, /outcome is unknown/);
        assert.match(err.message, /read the object again before retrying/);
        return true;
      });
    } finally {
      process.kill(pid, 'SIGCONT');
      hurried.close();
    }
    await eventually(
      async () => (await fetch(`http://${controlPlane.httpAddress}/readyz`)).status === 200,
      10_000,
      'etcd to answer again after SIGCONT',
    );
  });

  test('etcd down: calls fail within their deadline as UNAVAILABLE naming etcd and /readyz is 503; back up: all works, an open watch misses nothing', async () => {
    const start = (await api.list('ConfigMap', { namespace: 'default' })).resourceVersion;
    const watch = api
      .watch('ConfigMap', { namespace: 'default', resourceVersion: start })
      [Symbol.asyncIterator]();
    // an earlier test's write whose outcome was unknown ('maybe-written') may land meanwhile:
    // events for objects this test did not make are passed over
    const nextOf = async (name: string, timeoutMs: number, missing: string) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = deadline - Date.now();
        const event = await Promise.race([
          watch.next(),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(missing)), Math.max(0, left))),
        ]);
        if (event.done || event.value?.object?.metadata.name === name) return event;
        assert.ok(
          !['before-outage', 'after-outage'].includes(event.value?.object?.metadata.name ?? ''),
          `unexpected event ${event.value?.type} ${event.value?.object?.metadata.name}`,
        );
      }
    };
    await api.create(configMap('before-outage'));
    const first = await nextOf('before-outage', 5000, 'watch saw nothing before the outage');
    assert.equal(first.value?.object?.metadata.name, 'before-outage');

    await etcd.stop();
    try {
      const began = Date.now();
      await assert.rejects(api.get('ConfigMap', 'default', 'before-outage'), (err: unknown) => {
        assert.ok(err instanceof UnavailableError, String(err));
        assert.ok(err.endpoint?.includes(etcd.endpoint), `endpoint ${err.endpoint}`);
        return true;
      });
      assert.ok(Date.now() - began < UNARY_TIMEOUT_MS + 500, `took ${Date.now() - began} ms`);
      // Readiness is kept for 1 s, so it turns within about that.
      await eventually(
        async () => (await fetch(`http://${controlPlane.httpAddress}/readyz`)).status === 503,
        3000,
        '/readyz to turn 503 with etcd down',
      );
      const notReady = await fetch(`http://${controlPlane.httpAddress}/readyz?verbose`);
      assert.equal(notReady.status, 503);
      assert.match(await notReady.text(), /etcd failed: .+/);
    } finally {
      await etcd.start();
    }
    await eventually(
      async () => (await fetch(`http://${controlPlane.httpAddress}/readyz`)).status === 200,
      15_000,
      '/readyz to turn 200 after etcd returned',
    );
    await api.create(configMap('after-outage'));
    assert.equal((await api.get('ConfigMap', 'default', 'after-outage')).metadata.name, 'after-outage');
    const next = await nextOf('after-outage', 10_000, 'watch saw nothing after etcd returned');
    assert.equal(next.value?.type, 'ADDED');
    assert.equal(next.value?.object?.metadata.name, 'after-outage');
    await watch.return?.();
  });
});
