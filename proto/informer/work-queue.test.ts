import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from './manual-clock.js';
import { WorkQueue, runWorkers } from './work-queue.js';

/** Takes whatever is queued right now, without waiting. */
async function drain(queue: WorkQueue): Promise<string[]> {
  const keys: string[] = [];
  while (queue.length > 0) keys.push((await queue.get())!);
  return keys;
}

describe('WorkQueue', () => {
  test('a key is queued once however often it is added, in the order first added', async () => {
    const queue = new WorkQueue();
    for (const key of ['a', 'b', 'a', 'c', 'b', 'a']) queue.add(key);
    assert.equal(queue.length, 3);
    assert.deepEqual(await drain(queue), ['a', 'b', 'c']);
  });

  test('a key added while a worker holds it waits for done, then comes out once', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const held = await queue.get();
    assert.equal(held, 'a');
    queue.add('a');
    queue.add('a');
    assert.equal(queue.length, 0, 'not handed to a second worker while the first holds it');
    queue.done('a');
    assert.deepEqual(await drain(queue), ['a']);
    queue.done('a');
    assert.equal(queue.length, 0);
  });

  test('a waiting worker gets a key as soon as it is added', async () => {
    const queue = new WorkQueue();
    const next = queue.get();
    queue.add('x');
    assert.equal(await next, 'x');
  });

  test('failing keys back off exponentially, per key, capped; forget starts again', () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 100, ratePerSecond: 1e6, burst: 1e6, clock });
    assert.deepEqual(
      Array.from({ length: 6 }, () => queue.addRateLimited('a')),
      [10, 20, 40, 80, 100, 100],
    );
    assert.equal(queue.addRateLimited('b'), 10, 'another key has its own count');
    assert.equal(queue.failuresOf('a'), 6);
    queue.forget('a');
    assert.equal(queue.addRateLimited('a'), 10);
  });

  test('a delayed key comes out when its delay is over; the earlier of two delays wins', async () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock });
    queue.addAfter('a', 100);
    queue.addAfter('a', 500);
    queue.addAfter('b', 50);
    clock.advance(49);
    assert.equal(queue.length, 0);
    clock.advance(1);
    assert.deepEqual(await drain(queue), ['b']);
    clock.advance(50);
    assert.deepEqual(await drain(queue), ['a']);
    clock.advance(1000);
    assert.equal(queue.length, 0, 'the later delay was dropped');
  });

  test('the overall token bucket spaces out rate-limited adds beyond its burst', () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ baseDelayMs: 1, ratePerSecond: 10, burst: 2, clock });
    const delays = ['a', 'b', 'c', 'd'].map((key) => queue.addRateLimited(key));
    assert.deepEqual(delays, [1, 1, 100, 200]);
    clock.advance(1000);
    assert.equal(queue.addRateLimited('e'), 1, 'the bucket refills');
  });

  test('shutDown: adds are ignored, waiting workers end, drained waits for the one still working', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const held = await queue.get();
    const idle = queue.get();
    queue.shutDown();
    assert.equal(await idle, undefined);
    queue.add('b');
    assert.equal(await queue.get(), undefined);
    let drained = false;
    const done = queue.drained().then(() => (drained = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(drained, false);
    queue.done(held!);
    await done;
  });
});

describe('runWorkers', () => {
  test('reconciles every key, never one key in two workers at once, retries failures, requeues on request', async () => {
    const queue = new WorkQueue({ baseDelayMs: 1, ratePerSecond: 1e6, burst: 1e6 });
    const active = new Set<string>();
    const runs = new Map<string, number>();
    const errors: string[] = [];
    let overlap = false;
    const reconcile = async (key: string): Promise<void | { requeueAfterMs: number }> => {
      if (active.has(key)) overlap = true;
      active.add(key);
      runs.set(key, (runs.get(key) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, 2));
      // added again while running: must run again afterwards, not alongside
      if (key === 'busy' && runs.get(key) === 1) queue.add('busy');
      active.delete(key);
      if (key === 'flaky' && runs.get(key)! < 3) throw new Error('not yet');
      if (key === 'again' && runs.get(key) === 1) return { requeueAfterMs: 5 };
      return undefined;
    };
    const running = runWorkers(queue, 4, reconcile, (key, err) => errors.push(`${key}: ${String(err)}`));
    for (const key of ['busy', 'flaky', 'again', 'plain']) queue.add(key);
    const deadline = Date.now() + 5000;
    while (!(
      runs.get('busy') === 2 &&
      runs.get('flaky') === 3 &&
      runs.get('again') === 2 &&
      runs.get('plain') === 1
    )) {
      assert.ok(Date.now() < deadline, `runs so far: ${JSON.stringify([...runs])}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    queue.shutDown();
    await running;
    assert.equal(overlap, false, 'a key ran in two workers at once');
    assert.deepEqual(errors, ['flaky: Error: not yet', 'flaky: Error: not yet']);
    assert.equal(queue.failuresOf('flaky'), 0, 'success forgets the failures');
  });
});
