import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { Event, Pod } from '../../proto/gen/types.js';
import { EventRecorder } from '../../proto/events.js';
import { Informer } from '../../proto/informer/informer.js';
import { decodeObject } from '../../proto/objects.js';
import { ApiHandlers } from '../api/handlers.js';
import { makePod } from '../scheduler/testing.js';
import { MemoryStore } from '../store/memory-store.js';
import { storeSource } from '../store/store-source.js';
import { PodSchedulingReporter, withSchedulingStatus } from './pod-scheduling-reporter.js';

const NOW = '2026-12-07T10:00:00Z';

describe('the PodScheduled condition and nomination a refusal writes', () => {
  const pod = makePod('web');

  test('False with the reason and message; nothing when it says that already; the transition time kept', () => {
    const wanted = {
      uid: 'u',
      condition: { reason: 'Unschedulable' as const, message: '0/3 nodes are available' },
    };
    const refused = withSchedulingStatus(pod, wanted, NOW)!;
    assert.deepEqual(refused.status?.conditions, [
      {
        type: 'PodScheduled',
        status: 'False',
        reason: 'Unschedulable',
        message: '0/3 nodes are available',
        lastTransitionTime: NOW,
      },
    ]);
    assert.equal(withSchedulingStatus(refused, wanted, '2026-12-07T10:05:00Z'), undefined);
    const again = withSchedulingStatus(
      refused,
      { uid: 'u', condition: { reason: 'Unschedulable', message: '0/4 nodes are available' } },
      '2026-12-07T10:05:00Z',
    )!;
    assert.equal(again.status?.conditions?.[0]?.lastTransitionTime, NOW, 'still False since then');
  });

  test('a nomination is set and cleared; clearing none changes nothing', () => {
    const nominated = withSchedulingStatus(pod, { uid: 'u', nominatedNodeName: 'n1' }, NOW)!;
    assert.equal(nominated.status?.nominatedNodeName, 'n1');
    const cleared = withSchedulingStatus(nominated, { uid: 'u', nominatedNodeName: '' }, NOW)!;
    assert.equal(cleared.status?.nominatedNodeName, undefined);
    assert.equal(withSchedulingStatus(cleared, { uid: 'u', nominatedNodeName: '' }, NOW), undefined);
  });
});

describe('PodSchedulingReporter through the API handlers', () => {
  const setUp = async () => {
    const store = new MemoryStore();
    const log = pino({ level: 'silent' });
    const handlers = new ApiHandlers({ store, log });
    await handlers.ensureSystemObjects();
    const pods = new Informer<Pod>({
      source: storeSource({ store, resource: 'pods', decode: (bytes) => decodeObject('Pod', bytes) }),
      logger: log,
    });
    pods.start();
    const events = new EventRecorder({
      sink: {
        create: async (object) => (await handlers.create(object)).object as never,
        update: async (object) => (await handlers.update(object)).object as never,
      },
      component: 'default-scheduler',
      host: 'test',
      log,
    });
    const reporter = new PodSchedulingReporter({ handlers, pods, events, log });
    const create = async (name: string): Promise<Pod> => {
      const { uid: _uid, ...metadata } = makePod(name).metadata;
      const { priority: _priority, ...spec } = makePod(name).spec;
      const created = (await handlers.create({ ...makePod(name), metadata, spec })).object as Pod;
      while (pods.get(`default/${name}`) === undefined) await new Promise((r) => setTimeout(r, 5));
      return created;
    };
    const read = async (name: string): Promise<Pod> =>
      (await handlers.get('Pod', 'default', name)).object as Pod;
    const stop = async () => {
      await pods.stop();
      await store.close();
    };
    return { handlers, reporter, events, create, read, stop };
  };

  test('refusals in a row coalesce while one is written, the last wins; the same one again writes nothing; a bound pod is left alone', async () => {
    const { handlers, reporter, events, create, read, stop } = await setUp();
    try {
      const web = await create('web');
      reporter.unschedulable(web, 'first', {});
      reporter.unschedulable(web, 'second', { nominatedNodeName: 'n1' });
      reporter.unschedulable(web, 'third', {});
      await reporter.idle();
      const refused = await read('web');
      const condition = refused.status?.conditions?.find((c) => c.type === 'PodScheduled');
      assert.equal(condition?.message, 'third');
      assert.equal(refused.status?.nominatedNodeName, 'n1', 'the nomination asked for earlier stays');
      const version = refused.metadata.resourceVersion;
      reporter.unschedulable(web, 'third', {});
      await reporter.idle();
      assert.equal((await read('web')).metadata.resourceVersion, version, 'the same refusal writes nothing');

      const bound = await create('bound');
      await handlers.bindPod({ namespace: 'default', name: 'bound', nodeName: 'n2' });
      reporter.unschedulable(bound, 'late', {});
      await reporter.idle();
      assert.equal(
        (await read('bound')).status?.conditions?.find((c) => c.type === 'PodScheduled')?.status,
        'True',
        'a refusal that comes after the binding is not written',
      );
      await events.flush();
      const failed = (await handlers.list('Event')).items
        .map((item) => item.object as Event)
        .filter((e) => e.reason === 'FailedScheduling' && e.involvedObject?.name === 'web');
      assert.deepEqual(failed.map((e) => [e.message, e.count]).sort(), [
        ['first', 1],
        ['second', 1],
        ['third', 2],
      ]);
    } finally {
      await stop();
    }
  });

  test('closed, it writes nothing more', async () => {
    const { reporter, create, read, stop } = await setUp();
    try {
      const web = await create('web');
      reporter.close();
      reporter.unschedulable(web, 'after the term', {});
      await reporter.idle();
      assert.equal((await read('web')).status?.conditions, undefined);
    } finally {
      await stop();
    }
  });
});
