import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../proto/informer/manual-clock.js';
import type { ClusterEvent } from './framework/types.js';
import { SchedulingQueue, type QueuedPod } from './queue.js';
import { makePod } from './testing.js';

const EVENTS: Record<string, ClusterEvent[]> = {
  NodeResourcesFit: ['NodeAdd', 'NodeUpdate:allocatable', 'PodDelete'],
  TaintToleration: ['NodeAdd', 'NodeUpdate:taints'],
};

function queue(clock = new ManualClock()): SchedulingQueue {
  return new SchedulingQueue({ clock, eventsOf: (plugin) => EVENTS[plugin] ?? [] });
}

/** Pops what is active now, without waiting. */
function drain(q: SchedulingQueue): QueuedPod[] {
  const out: QueuedPod[] = [];
  for (let next = q.tryPop(); next !== undefined; next = q.tryPop()) out.push(next);
  return out;
}

describe('SchedulingQueue', () => {
  test('higher priority first, then the earlier queued', () => {
    const clock = new ManualClock();
    const q = queue(clock);
    q.add(makePod('low', { priority: 0 }));
    clock.advance(1);
    q.add(makePod('high', { priority: 100 }));
    clock.advance(1);
    q.add(makePod('low-later', { priority: 0 }));
    clock.advance(1);
    q.add(makePod('mid', { priority: 10 }));
    assert.deepEqual(
      drain(q).map((p) => p.pod.metadata.name),
      ['high', 'mid', 'low', 'low-later'],
    );
  });

  test('pop waits for a pod; close answers undefined', async () => {
    const q = queue();
    const waiting = q.pop();
    q.add(makePod('p'));
    assert.equal((await waiting)?.pod.metadata.name, 'p');
    const never = q.pop();
    q.close();
    assert.equal(await never, undefined);
    assert.equal(await q.pop(), undefined);
  });

  test('a pod waits aside while it has scheduling gates, and comes once the last one goes', () => {
    const q = queue();
    const gated = makePod('p', { schedulingGates: ['example.com/quota'] });
    q.add(gated);
    assert.deepEqual(drain(q), []);
    assert.equal(q.lengths.gated, 1);
    q.update(gated, makePod('p'));
    assert.deepEqual(
      drain(q).map((p) => p.key),
      ['default/p'],
    );
  });

  test('an unschedulable pod costs nothing until an event its refusing plugin cares about', () => {
    const clock = new ManualClock();
    const q = queue(clock);
    q.add(makePod('big'));
    const [big] = drain(q);
    q.requeueUnschedulable(big!, ['NodeResourcesFit']);
    // Four minutes without a relevant change: no attempt at all.
    for (let minute = 0; minute < 4; minute++) {
      clock.advance(60_000);
      q.onClusterEvent('NodeUpdate:taints');
      q.onClusterEvent('NodeUpdate:labels');
      assert.deepEqual(drain(q), [], `no attempt after ${minute + 1} min`);
    }
    assert.equal(q.lengths.unschedulable, 1);
    q.onClusterEvent('PodDelete');
    const [again] = drain(q);
    assert.equal(again?.key, 'default/big');
    assert.equal(again?.attempts, 2);
  });

  test('moved by an event while backing off, a pod goes to backoffQ first (1 s, doubling, at most 10 s)', () => {
    const clock = new ManualClock();
    const q = queue(clock);
    q.add(makePod('p'));
    const expected = [1000, 2000, 4000, 8000, 10_000, 10_000];
    for (const backoff of expected) {
      const [popped] = drain(q);
      assert.ok(popped, `popped before a ${backoff} ms back-off`);
      q.requeueUnschedulable(popped, ['TaintToleration']);
      q.onClusterEvent('NodeAdd');
      assert.equal(q.lengths.backoff, 1);
      clock.advance(backoff - 1);
      assert.deepEqual(drain(q), [], `still backing off at ${backoff - 1} ms`);
      clock.advance(1);
    }
    assert.equal(drain(q).length, 1);
  });

  test('a pod refused by no plugin in particular moves on any event', () => {
    const clock = new ManualClock();
    const q = queue(clock);
    q.add(makePod('p'));
    q.requeueUnschedulable(drain(q)[0]!, []);
    clock.advance(2000);
    q.onClusterEvent('NodeAdd');
    assert.equal(drain(q).length, 1);
  });

  test('unschedulable for over 5 minutes, a pod is retried anyway (the safety net)', () => {
    const clock = new ManualClock();
    const q = queue(clock);
    q.add(makePod('p'));
    q.requeueUnschedulable(drain(q)[0]!, ['NodeResourcesFit']);
    clock.advance(5 * 60_000);
    assert.deepEqual(drain(q), []);
    clock.advance(30_000);
    assert.equal(drain(q).length, 1);
  });

  test('an event that came while the pod was being scheduled is not lost', () => {
    const clock = new ManualClock();
    const q = queue(clock);
    q.add(makePod('p'));
    const [p] = drain(q);
    q.onClusterEvent('NodeAdd');
    q.requeueUnschedulable(p!, ['NodeResourcesFit']);
    assert.equal(q.lengths.unschedulable, 0);
    assert.equal(q.lengths.backoff, 1);
    clock.advance(1000);
    assert.equal(drain(q).length, 1);
  });

  test('an update of an unschedulable pod that changes its spec retries it; a status update does not', () => {
    const clock = new ManualClock();
    const q = queue(clock);
    const pod = makePod('p', { cpu: '64' });
    q.add(pod);
    q.requeueUnschedulable(drain(q)[0]!, ['NodeResourcesFit']);
    clock.advance(2000);
    q.update(pod, {
      ...pod,
      status: { ...pod.status, conditions: [{ type: 'PodScheduled', status: 'False' }] },
    });
    assert.deepEqual(drain(q), []);
    q.update(pod, makePod('p', { cpu: '1' }));
    const [again] = drain(q);
    assert.equal(again?.info.requests.milliCpu, 1000);
  });

  test('a failed bind comes back after its back-off; a pod deleted meanwhile does not', () => {
    const clock = new ManualClock();
    const q = queue(clock);
    q.add(makePod('a'));
    q.add(makePod('b'));
    const [a, b] = drain(q);
    q.binding(a!);
    q.binding(b!);
    assert.equal(q.lengths.binding, 2);
    q.delete(b!.pod);
    q.requeueAfterError(a!);
    q.requeueAfterError(b!);
    clock.advance(1000);
    assert.deepEqual(
      drain(q).map((p) => p.key),
      ['default/a'],
    );
    assert.equal(q.has('default/b'), false);
  });

  test('done removes a placed pod; deleted pods leave from anywhere', () => {
    const q = queue();
    q.add(makePod('a'));
    q.add(makePod('b'));
    const a = q.tryPop()!;
    assert.equal(a.key, 'default/a');
    q.done(a);
    assert.equal(q.has('default/a'), false);
    q.delete('default/b');
    assert.equal(q.has('default/b'), false);
    assert.deepEqual(q.lengths, {
      active: 0,
      backoff: 0,
      unschedulable: 0,
      gated: 0,
      inFlight: 0,
      binding: 0,
    });
  });
});
