import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundError } from './errors.js';
import type { Event, KubeObject } from './gen/types.js';
import { componentLogger } from './support/logger.js';
import { EventRecorder, type EventSink } from './events.js';

/** An Event store in memory that answers after a turn of the event loop, as the API would. */
function memorySink() {
  const events = new Map<string, Event>();
  const calls: string[] = [];
  let version = 0;
  const sink: EventSink = {
    create: async (object: KubeObject) => {
      await new Promise((r) => setImmediate(r));
      const event = {
        ...(object as Event),
        metadata: { ...object.metadata, resourceVersion: String(++version) },
      };
      events.set(event.metadata.name!, event);
      calls.push(`create ${event.reason}`);
      return event;
    },
    update: async (object: KubeObject) => {
      await new Promise((r) => setImmediate(r));
      if (!events.has(object.metadata.name!))
        throw new NotFoundError(`event ${object.metadata.name} not found`);
      const event = {
        ...(object as Event),
        metadata: { ...object.metadata, resourceVersion: String(++version) },
      };
      events.set(event.metadata.name!, event);
      calls.push(`update ${event.reason} ${event.count}`);
      return event;
    },
  } as unknown as EventSink;
  return { sink, events, calls };
}

const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'default', uid: 'u1' },
  spec: { containers: [] },
} as KubeObject;
const log = componentLogger('events-test');

test('repeats fold into one Event with a count; flush waits for every write, in order', async () => {
  const { sink, events, calls } = memorySink();
  let clock = Date.parse('2026-12-07T05:00:00Z');
  const recorder = new EventRecorder({
    sink,
    component: 'skiff-agent',
    host: 'n1',
    log,
    now: () => new Date(clock),
  });
  recorder.record(pod, 'Normal', 'Pulling', 'Pulling image "web:1"');
  recorder.record(pod, 'Warning', 'BackOff', 'Back-off restarting failed container');
  clock += 10_000;
  recorder.record(pod, 'Warning', 'BackOff', 'Back-off restarting failed container');
  recorder.record(pod, 'Warning', 'BackOff', 'Back-off restarting failed container');
  await recorder.flush();
  assert.deepEqual(calls, ['create Pulling', 'create BackOff', 'update BackOff 2', 'update BackOff 3']);
  const backOff = [...events.values()].find((e) => e.reason === 'BackOff')!;
  assert.equal(backOff.count, 3);
  assert.equal(backOff.firstTimestamp, '2026-12-07T05:00:00Z');
  assert.equal(backOff.lastTimestamp, '2026-12-07T05:00:10Z');
  assert.deepEqual(backOff.involvedObject, {
    kind: 'Pod',
    apiVersion: 'v1',
    name: 'web',
    namespace: 'default',
    uid: 'u1',
  });
  await recorder.flush(); // nothing due: resolves at once
});

test('an Event deleted meanwhile is recorded anew; past the fold window a repeat is a new Event', async () => {
  const { sink, events } = memorySink();
  let clock = Date.parse('2026-12-07T05:00:00Z');
  const recorder = new EventRecorder({
    sink,
    component: 'c',
    host: 'h',
    log,
    now: () => new Date(clock),
    foldWindowMs: 60_000,
  });
  recorder.record(pod, 'Normal', 'Started', 'Started container main');
  await recorder.flush();
  events.clear();
  recorder.record(pod, 'Normal', 'Started', 'Started container main');
  await recorder.flush();
  assert.equal(events.size, 1);
  clock += 61_000;
  recorder.record(pod, 'Normal', 'Started', 'Started container main');
  await recorder.flush();
  assert.equal(events.size, 2);
  assert.deepEqual(
    [...events.values()].map((e) => e.count),
    [1, 1],
  );
});

test('at most maxPending wait; the rest are dropped, never thrown at the caller', async () => {
  const { sink, events } = memorySink();
  const recorder = new EventRecorder({ sink, component: 'c', host: 'h', log, maxPending: 3, maxInFlight: 1 });
  for (let i = 0; i < 10; i++) recorder.record(pod, 'Normal', `R${i}`, 'm');
  await recorder.flush();
  // the first went out at once; three waited
  assert.deepEqual([...events.values()].map((e) => e.reason).sort(), ['R0', 'R1', 'R2', 'R3']);
});

test('up to maxInFlight writes at once, never two of one folding key', async () => {
  const { sink, calls } = memorySink();
  let inFlight = 0;
  let most = 0;
  const counted = {
    create: async (object: KubeObject) => {
      most = Math.max(most, ++inFlight);
      try {
        return await sink.create(object);
      } finally {
        inFlight--;
      }
    },
    update: sink.update,
  } as EventSink;
  const recorder = new EventRecorder({ sink: counted, component: 'c', host: 'h', log, maxInFlight: 4 });
  for (let i = 0; i < 10; i++) recorder.record(pod, 'Normal', `R${i}`, 'm');
  for (let i = 0; i < 3; i++) recorder.record(pod, 'Normal', 'Again', 'm');
  await recorder.flush();
  assert.equal(most, 4);
  // the repeats folded: each waited for the write before it
  assert.deepEqual(
    calls.filter((call) => call.includes('Again')),
    ['create Again', 'update Again 2', 'update Again 3'],
  );
  assert.equal(calls.filter((call) => call.startsWith('create R')).length, 10);
});

test('perObjectLimit: a burst per object, then one per refill; other objects keep their own', async () => {
  const { sink, events } = memorySink();
  let clock = Date.parse('2026-12-07T05:00:00Z');
  const recorder = new EventRecorder({
    sink,
    component: 'replicaset-controller',
    host: 'h',
    log,
    now: () => new Date(clock),
    perObjectLimit: { burst: 3, refillPerSecond: 1 / 60 },
  });
  const other = { ...pod, metadata: { ...pod.metadata, name: 'db', uid: 'u2' } } as KubeObject;
  for (let i = 0; i < 10; i++) recorder.record(pod, 'Normal', 'SuccessfulCreate', `Created pod: web-${i}`);
  recorder.record(other, 'Normal', 'SuccessfulCreate', 'Created pod: db-0');
  clock += 30_000; // half a token
  recorder.record(pod, 'Normal', 'SuccessfulCreate', 'Created pod: web-10');
  clock += 30_000; // a whole one
  recorder.record(pod, 'Normal', 'SuccessfulCreate', 'Created pod: web-11');
  await recorder.flush();
  assert.deepEqual([...events.values()].map((e) => e.message).sort(), [
    'Created pod: db-0',
    'Created pod: web-0',
    'Created pod: web-1',
    'Created pod: web-11',
    'Created pod: web-2',
  ]);
});
