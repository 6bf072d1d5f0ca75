import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Deployment, KubeObject, Pod } from '../../proto/gen/types.js';
import {
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
} from '../../proto/errors.js';
import { componentLogger } from '../../proto/support/logger.js';
import { decodeObject } from '../../proto/objects.js';
import { MemoryStore } from '../store/memory-store.js';
import type { GetOptions, ObjectKey } from '../store/store.js';
import { ApiHandlers } from './handlers.js';
import { kindInfoOf } from '../../proto/kinds.js';

const pod = (name: string): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default' },
  spec: { containers: [{ name: 'c', image: 'web:1' }] },
});

describe('ApiHandlers and the objects they are given', () => {
  const handlersOn = async (): Promise<{ handlers: ApiHandlers; store: MemoryStore }> => {
    const store = new MemoryStore();
    const handlers = new ApiHandlers({ store, log: componentLogger('handlers-test') });
    await handlers.ensureSystemObjects();
    return { handlers, store };
  };

  test('create and update leave the caller’s object as it was unless it is handed over', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const input = pod('kept');
      const before = structuredClone(input);
      const created = await handlers.create(input);
      assert.deepEqual(input, before);
      assert.equal((created.object as Pod).spec.restartPolicy, 'Always');

      const update: Deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'd', namespace: 'default' },
        spec: {
          selector: { matchLabels: { app: 'd' } },
          template: {
            metadata: { labels: { app: 'd' } },
            spec: { containers: [{ name: 'c', image: 'web:1', ports: [{ containerPort: 80 }] }] },
          },
        },
      };
      await handlers.create(structuredClone(update));
      const updateBefore = structuredClone(update);
      await handlers.update(update);
      assert.deepEqual(update, updateBefore);
    } finally {
      await store.close();
    }
  });

  test('bindPod sets nodeName and PodScheduled once; bound, deleting, re-created or missing pods are refused', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const created = (await handlers.create(pod('web'))).object as Pod;
      // a stale hint (the version before a label change) still binds: the write finds it changed and re-reads
      await handlers.update({ ...created, metadata: { ...created.metadata, labels: { a: 'b' } } });
      const bound = (
        await handlers.bindPod({
          namespace: 'default',
          name: 'web',
          uid: created.metadata.uid!,
          nodeName: 'n1',
          seenResourceVersion: created.metadata.resourceVersion!,
        })
      ).object as Pod;
      assert.equal(bound.spec.nodeName, 'n1');
      assert.deepEqual(bound.metadata.labels, { a: 'b' });
      const stored = (await handlers.get('Pod', 'default', 'web')).object as Pod;
      assert.equal(stored.spec.nodeName, 'n1');
      assert.equal(stored.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status, 'True');
      await assert.rejects(
        handlers.bindPod({ namespace: 'default', name: 'web', nodeName: 'n2' }),
        (err: unknown) => err instanceof ConflictError && /already assigned to node "n1"/.test(err.message),
      );

      const other = (await handlers.create(pod('other'))).object as Pod;
      await assert.rejects(
        handlers.bindPod({ namespace: 'default', name: 'other', uid: 'not-its-uid', nodeName: 'n1' }),
        (err: unknown) => err instanceof ConflictError && /deleted and re-created/.test(err.message),
      );
      await assert.rejects(
        handlers.bindPod({ namespace: 'default', name: 'other', nodeName: 'Not_A_Node' }),
        (err: unknown) => err instanceof InvalidArgumentError && /target\.name/.test(err.message),
      );
      await handlers.update({ ...other, metadata: { ...other.metadata, finalizers: ['example.com/hold'] } });
      await handlers.delete('Pod', 'default', 'other', { gracePeriodSeconds: 0 });
      await assert.rejects(
        handlers.bindPod({ namespace: 'default', name: 'other', nodeName: 'n1' }),
        (err: unknown) => err instanceof ConflictError && /being deleted/.test(err.message),
      );
      await assert.rejects(
        handlers.bindPod({ namespace: 'default', name: 'nobody', nodeName: 'n1' }),
        (err: unknown) => err instanceof NotFoundError,
      );
    } finally {
      await store.close();
    }
  });

  test('bindPods binds many in one transaction; a pod refused alone makes the others bind one by one, each with its own answer', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const pods = [];
      for (const name of ['a', 'b', 'c', 'd']) pods.push((await handlers.create(pod(name))).object as Pod);
      const binding = (p: Pod, nodeName: string) => ({
        namespace: 'default',
        name: p.metadata.name!,
        uid: p.metadata.uid!,
        nodeName,
        seenResourceVersion: p.metadata.resourceVersion!,
      });
      const revisionBefore = await store.currentRevision();
      const first = await handlers.bindPods([binding(pods[0]!, 'n1'), binding(pods[1]!, 'n2')]);
      assert.deepEqual(
        first.map((answer) =>
          answer instanceof Error ? answer.message : (answer.object as Pod).spec.nodeName,
        ),
        ['n1', 'n2'],
      );
      assert.equal(await store.currentRevision(), revisionBefore + 1n, 'one transaction');

      // b is bound already (its seen version is stale); c and d still bind, b's answer says why not
      const second = await handlers.bindPods([
        binding(pods[2]!, 'n1'),
        binding(pods[1]!, 'n3'),
        binding(pods[3]!, 'n2'),
        { namespace: 'default', name: 'nobody', nodeName: 'n1' },
      ]);
      assert.equal((second[0] as { object: Pod }).object.spec.nodeName, 'n1');
      assert.ok(
        second[1] instanceof ConflictError && /already assigned to node "n2"/.test(second[1].message),
      );
      assert.equal((second[2] as { object: Pod }).object.spec.nodeName, 'n2');
      assert.ok(second[3] instanceof NotFoundError);
      // a transaction refused as a whole (a pod changed between the check and the write): one by one
      const [e, f] = [
        (await handlers.create(pod('e'))).object as Pod,
        (await handlers.create(pod('f'))).object as Pod,
      ];
      const transact = store.transact.bind(store);
      let refusals = 0;
      store.transact = async (writes) => {
        if (refusals++ === 0) throw new ConflictError('the pod changed since');
        return transact(writes);
      };
      const third = await handlers.bindPods([binding(e, 'n3'), binding(f, 'n3')]);
      assert.deepEqual(
        third.map((answer) => (answer as { object: Pod }).object.spec.nodeName),
        ['n3', 'n3'],
      );
      assert.equal(refusals, 1);
      for (const [name, node] of [
        ['e', 'n3'],
        ['f', 'n3'],
        ['a', 'n1'],
        ['b', 'n2'],
        ['c', 'n1'],
        ['d', 'n2'],
      ])
        assert.equal(((await handlers.get('Pod', 'default', name)).object as Pod).spec.nodeName, node);
    } finally {
      await store.close();
    }
  });

  test("the leader election's Lease is read-only through the API; other Leases are not", async () => {
    const { handlers, store } = await handlersOn();
    try {
      const lease = (namespace: string, name: string) =>
        ({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: 'me' },
        }) as KubeObject;
      const refused = (err: unknown) =>
        err instanceof PermissionDeniedError && /leader election.*may be read, not written/.test(err.message);
      await assert.rejects(handlers.create(lease('kube-system', 'skiff-control-plane')), refused);
      await handlers.create(lease('kube-system', 'other'));
      await handlers.update(lease('kube-system', 'other'));
      await handlers.delete('Lease', 'kube-system', 'other');
      await assert.rejects(handlers.update(lease('kube-system', 'skiff-control-plane')), refused);
      await assert.rejects(handlers.delete('Lease', 'kube-system', 'skiff-control-plane'), refused);
    } finally {
      await store.close();
    }
  });

  test('an object handed over (inputOwned) is defaulted in place and stored the same', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const owned = pod('owned');
      const created = await handlers.create(owned, { inputOwned: true });
      assert.equal(owned.spec.restartPolicy, 'Always', 'defaulted in place');
      const copied = await handlers.create(pod('copied'));
      const shape = (p: Pod): unknown => p.spec;
      assert.deepEqual(shape(created.object as Pod), shape(copied.object as Pod));
    } finally {
      await store.close();
    }
  });

  test('a uid precondition that fails is said as such, at once, not as a stale resourceVersion', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const first = (await handlers.create(pod('recreated'))).object as Pod;
      await handlers.delete('Pod', 'default', 'recreated');
      await handlers.create(pod('recreated'));
      const stale = { ...first, metadata: { ...first.metadata, resourceVersion: undefined } };
      await assert.rejects(
        handlers.update(stale),
        (err: unknown) =>
          err instanceof ConflictError &&
          /precondition failed: metadata\.uid \S+ does not match/.test(err.message) &&
          !/resourceVersion/.test(err.message),
      );
      await assert.rejects(
        handlers.delete('Pod', 'default', 'recreated', { preconditions: { uid: first.metadata.uid! } }),
        (err: unknown) =>
          err instanceof ConflictError &&
          /precondition failed: uid is \S+, not \S+ \(the object was deleted and re-created\)/.test(
            err.message,
          ),
      );
    } finally {
      await store.close();
    }
  });

  test('a watch hands out bookmarks while it waits, then the event that was on its way, and ends when returned', async () => {
    const store = new MemoryStore();
    const handlers = new ApiHandlers({
      store,
      log: componentLogger('handlers-test'),
      bookmarkIntervalMs: 30,
    });
    await handlers.ensureSystemObjects();
    try {
      const watch = await handlers.watch('Pod', { namespace: 'default', allowBookmarks: true });
      const first = await watch.next();
      assert.equal(first.value?.type, 'BOOKMARK', 'nothing happened: a bookmark after the interval');
      const created = await handlers.create(pod('after-bookmark'));
      let next = await watch.next();
      while (next.value?.type === 'BOOKMARK') next = await watch.next();
      assert.equal(next.value?.type, 'ADDED');
      assert.equal(next.value?.object?.object.metadata.name, 'after-bookmark');
      assert.equal(next.value?.resourceVersion, created.object.metadata.resourceVersion);
      // a reader waiting when the watch is returned gets the end, and so does every later next()
      const waiting = watch.next();
      await watch.return!();
      const ended = await waiting;
      assert.ok(ended.done === true || ended.value?.type === 'BOOKMARK');
      assert.equal((await watch.next()).done, true);
    } finally {
      await store.close();
    }
  });

  test('a watch without bookmarks skips what its selector hides and ends when its signal aborts', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const abort = new AbortController();
      const watch = await handlers.watch('Pod', {
        namespace: 'default',
        fieldSelector: 'metadata.name=shown',
        signal: abort.signal,
      });
      await handlers.create(pod('hidden'));
      await handlers.create(pod('shown'));
      const next = await watch.next();
      assert.equal(next.value?.type, 'ADDED');
      assert.equal(next.value?.object?.object.metadata.name, 'shown');
      const waiting = watch.next();
      abort.abort();
      assert.equal((await waiting).done, true);
    } finally {
      await store.close();
    }
  });

  test('pod statuses are written in one transaction; a stale copy is read again and written alone', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const created = await Promise.all(
        ['a', 'b', 'c', 'd'].map(async (name) => {
          const p = pod(name);
          p.spec.nodeName = name === 'd' ? 'n2' : 'n1';
          return (await handlers.create(p)).object as Pod;
        }),
      );
      const running = { phase: 'Running', podIP: '10.244.0.5' };
      let transactions = 0;
      const transact = store.transact.bind(store);
      store.transact = async (writes) => {
        transactions++;
        return transact(writes);
      };
      const write = (p: Pod) => ({
        namespace: 'default',
        name: p.metadata.name!,
        uid: p.metadata.uid!,
        status: running,
        accept: (stored: Pod) => stored.spec.nodeName === 'n1',
      });
      const outcomes = await handlers.updatePodStatuses([
        ...created.map(write),
        { ...write(created[0]!), name: 'gone' },
        { ...write(created[1]!), uid: 'another-pod' },
      ]);
      assert.equal(transactions, 1, 'one transaction for the three writes');
      assert.ok(outcomes.slice(0, 3).every((o) => typeof o === 'object' && 'written' in o));
      assert.deepEqual(outcomes.slice(3), ['refused', 'gone', 'gone']);
      assert.equal(((await handlers.get('Pod', 'default', 'a')).object as Pod).status?.phase, 'Running');
      // refused: still as created
      assert.equal(((await handlers.get('Pod', 'default', 'd')).object as Pod).status?.phase, 'Pending');
      // the same status again: nothing to write
      assert.deepEqual(await handlers.updatePodStatuses([write(created[0]!)]), ['unchanged']);

      // a label changed since the copy the batch was prepared from: the batch fails, each is retried alone
      const get = store.get.bind(store);
      const stale = new Map<string, Awaited<ReturnType<MemoryStore['get']>>>();
      for (const name of ['a', 'b'])
        stale.set(name, await get({ resource: 'pods', namespace: 'default', name }));
      Object.assign(store, {
        get: async (key: ObjectKey, options?: GetOptions) =>
          options?.minRevision !== undefined ? stale.get(key.name)! : get(key),
      });
      const b = (await handlers.get('Pod', 'default', 'b')).object as Pod;
      await handlers.update({ ...b, metadata: { ...b.metadata, labels: { changed: 'yes' } } });
      transactions = 0;
      const failed = { phase: 'Failed' };
      const again = await handlers.updatePodStatuses(
        created.slice(0, 2).map((p) => ({ ...write(p), status: failed, minRevision: 0n })),
      );
      assert.equal(transactions, 1);
      assert.ok(
        again.every((o) => typeof o === 'object' && 'written' in o),
        JSON.stringify(again, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      );
      const stored = (await handlers.get('Pod', 'default', 'b')).object as Pod;
      assert.equal(stored.status?.phase, 'Failed');
      assert.equal(stored.metadata.labels?.['changed'], 'yes', 'the newer label kept');
    } finally {
      await store.close();
    }
  });

  test('a status write changes the status alone: metadata and spec stay byte for byte, the status is validated, the same status writes nothing', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const p = pod('s');
      p.metadata.labels = { app: 'web', tier: 'front' };
      p.spec.nodeName = 'n1';
      const created = (await handlers.create(p)).object as Pod;
      const key = { resource: 'pods', namespace: 'default', name: 's' };
      const partsOf = async () => {
        const message = kindInfoOf('Pod').message.decode((await store.get(key)).value);
        return { metadata: message['metadata'], spec: message['spec'] };
      };
      const before = await partsOf();
      const running = {
        phase: 'Running',
        podIP: '10.244.0.9',
        conditions: [{ type: 'Ready', status: 'True' }],
      };
      // the gRPC UpdateStatus path: what the caller sends besides the status is not taken
      const updated = await handlers.updateStatus({
        ...created,
        metadata: { ...created.metadata, labels: { changed: 'yes' } },
        spec: { ...created.spec, nodeName: 'elsewhere' },
        status: running,
      } as Pod);
      assert.deepEqual(await partsOf(), before);
      assert.deepEqual((updated.object as Pod).status, running);
      const written = (await store.get(key)).modRevision;
      assert.equal(updated.resourceVersion, String(written));
      // the batch path (what agents report): the same status again writes nothing
      const write = { namespace: 'default', name: 's', uid: created.metadata.uid!, status: running };
      assert.deepEqual(await handlers.updatePodStatuses([write]), ['unchanged']);
      const { resourceVersion: _rv, ...metadata } = created.metadata;
      assert.equal(
        (await handlers.updateStatus({ ...created, metadata, status: running } as Pod)).resourceVersion,
        String(written),
      );
      assert.equal((await store.get(key)).modRevision, written);
      // a status that is not valid is refused, naming the field; nothing is written
      const [refused] = await handlers.updatePodStatuses([{ ...write, status: { phase: 'Sleeping' } }]);
      assert.ok(refused instanceof InvalidArgumentError && refused.field === 'status.phase', String(refused));
      await assert.rejects(
        handlers.updateStatus({
          ...created,
          metadata,
          status: { phase: 'Running', podIP: '10.244.0.300' },
        } as Pod),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'status.podIP',
      );
      const [unknown] = await handlers.updatePodStatuses([
        { ...write, status: { phase: 'Running', podIp: 'x' } as never },
      ]);
      assert.ok(unknown instanceof InvalidArgumentError && unknown.field === 'status.podIp', String(unknown));
      assert.equal((await store.get(key)).modRevision, written);
    } finally {
      await store.close();
    }
  });

  test('the pod a status batch wrote is what a watch hands out at that revision, as decoding the stored bytes gives it, whichever comes first', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const created = (await handlers.create(pod('w'))).object as Pod;
      const watch = await handlers.watch('Pod', {
        namespace: 'default',
        resourceVersion: created.metadata.resourceVersion!,
      });
      const key = { resource: 'pods', namespace: 'default', name: 'w' };
      const transact = store.transact.bind(store);
      for (const [ready, watchFirst] of [
        ['False', false],
        ['True', true],
        ['False', true],
      ] as const) {
        const status = {
          phase: 'Running',
          conditions: [
            { type: 'Ready', status: ready, ...(ready === 'False' ? { reason: 'NotReady' } : {}) },
          ],
          containerStatuses: [],
        };
        let event: Awaited<ReturnType<typeof watch.next>> | undefined;
        // the watch has the written value before the transaction's answer is in (as it may under load)
        store.transact = async (writes) => {
          const stored = await transact(writes);
          if (watchFirst) event = await watch.next();
          return stored;
        };
        const [outcome] = await handlers.updatePodStatuses([
          { namespace: 'default', name: 'w', uid: created.metadata.uid!, status },
        ]);
        assert.ok(typeof outcome === 'object' && 'written' in outcome);
        event ??= await watch.next();
        assert.equal(event.value?.type, 'MODIFIED');
        const stored = await store.get(key);
        const decoded = decodeObject('Pod', stored.value);
        decoded.metadata.resourceVersion = String(stored.modRevision);
        assert.deepEqual(event.value?.object?.object, decoded);
        assert.equal(event.value?.resourceVersion, String(outcome.written));
      }
      await watch.return!();
    } finally {
      await store.close();
    }
  });

  test('a status whose encoding is what is stored (zero counts, which proto3 does not keep) writes nothing', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const deployment: Deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'z', namespace: 'default' },
        spec: {
          selector: { matchLabels: { app: 'z' } },
          template: {
            metadata: { labels: { app: 'z' } },
            spec: { containers: [{ name: 'c', image: 'web:1' }] },
          },
        },
      };
      const created = (await handlers.create(deployment)).object as Deployment;
      const { resourceVersion: _rv, ...metadata } = created.metadata;
      const first = await handlers.updateStatus({ ...created, metadata, status: { observedGeneration: 1 } });
      for (const status of [
        { observedGeneration: 1, replicas: 0, readyReplicas: 0, conditions: [] },
        { observedGeneration: 1 },
      ]) {
        const again = await handlers.updateStatus({ ...created, metadata, status } as Deployment);
        assert.equal(again.resourceVersion, first.resourceVersion, JSON.stringify(status));
      }
    } finally {
      await store.close();
    }
  });

  test('the next status batch offers the watch cache the pods the last one wrote, for while it lags', async () => {
    const { handlers, store } = await handlersOn();
    try {
      const created = await Promise.all(
        ['r1', 'r2'].map(async (name) => (await handlers.create(pod(name))).object as Pod),
      );
      const writes = (phase: string, minRevisions: (bigint | undefined)[]) =>
        created.map((p, i) => ({
          namespace: 'default',
          name: p.metadata.name!,
          uid: p.metadata.uid!,
          status: { phase },
          ...(minRevisions[i] !== undefined ? { minRevision: minRevisions[i] } : {}),
        }));
      const first = await handlers.updatePodStatuses(writes('Running', []));
      const revisions = first.map((o) => (typeof o === 'object' && 'written' in o ? o.written : undefined));
      const known: (bigint | undefined)[] = [];
      const get = store.get.bind(store);
      store.get = async (key: ObjectKey, options?: GetOptions) => {
        known.push(options?.known?.modRevision);
        return get(key);
      };
      const second = await handlers.updatePodStatuses(writes('Succeeded', revisions));
      // a cache that lags answers these instead of reading etcd (CachedStore's test)
      assert.deepEqual(known.sort(), [...revisions].sort(), 'each read offers the copy written last');
      assert.ok(second.every((o) => typeof o === 'object' && 'written' in o));
      store.get = get;
      for (const p of created)
        assert.equal(
          ((await handlers.get('Pod', 'default', p.metadata.name!)).object as Pod).status?.phase,
          'Succeeded',
        );
    } finally {
      await store.close();
    }
  });
});
