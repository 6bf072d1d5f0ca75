import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventQueue } from './event-queue.js';

const queue = (events = 10_000, bytes = 1_000_000): EventQueue<number> =>
  new EventQueue<number>(
    { events, bytes },
    () => 10,
    () => new Error('behind'),
  );

async function values(q: EventQueue<number>, count: number): Promise<number[]> {
  const taken: number[] = [];
  for (let i = 0; i < count; i++) {
    const next = await q.next();
    assert.equal(next.done, false);
    taken.push(next.value as number);
  }
  return taken;
}

describe('EventQueue', () => {
  test('hands items over in order, to a waiting reader at once, however long the reader stays behind', async () => {
    const q = queue();
    const waiting = q.next();
    q.push(0);
    assert.deepEqual(await waiting, { done: false, value: 0 });
    // a reader that stays a little behind for a long time: the queue never empties
    let pushed = 1;
    let expected = 1;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) q.push(pushed++);
      const taken = await values(q, 90);
      assert.deepEqual(
        taken,
        Array.from({ length: 90 }, (_, i) => expected + i),
      );
      expected += 90;
    }
    const left = pushed - expected;
    assert.deepEqual(
      await values(q, left),
      Array.from({ length: left }, (_, i) => expected + i),
    );
    const more = await Promise.race([
      q.next(),
      new Promise((resolve) => setImmediate(() => resolve('none'))),
    ]);
    assert.equal(more, 'none', 'nothing else was queued');
  });

  test('counts only what is not taken yet towards the limit, in events and in bytes', async () => {
    const q = queue(5, 1_000_000);
    for (let i = 0; i < 8; i++) q.push(i);
    await values(q, 4);
    assert.equal(q.failIfBehind(), false, '4 left of 8: within 5');
    q.push(8);
    q.push(9);
    assert.equal(q.failIfBehind(), true, '6 left: over 5');
    await assert.rejects(q.next(), /behind/);

    const bytes = queue(100, 45); // items of 10 bytes
    for (let i = 0; i < 6; i++) bytes.push(i);
    await values(bytes, 2);
    assert.equal(bytes.failIfBehind(), false, '40 bytes left');
    bytes.push(6);
    assert.equal(bytes.failIfBehind(), true, '50 bytes left');
  });

  test('end() drops what is queued and ends a waiting reader; fail() lets the reader take what is queued first', async () => {
    const ended = queue();
    ended.push(1);
    ended.end();
    assert.deepEqual(await ended.next(), { done: true, value: undefined });
    const waiting = queue();
    const pending = waiting.next();
    waiting.end();
    assert.deepEqual(await pending, { done: true, value: undefined });
    waiting.push(2);
    assert.deepEqual(
      await waiting.next(),
      { done: true, value: undefined },
      'nothing is taken after the end',
    );

    const failed = queue();
    failed.push(1);
    failed.fail(new Error('gone'));
    failed.push(2);
    assert.deepEqual(await failed.next(), { done: false, value: 1 });
    await assert.rejects(failed.next(), /gone/);
    const rejected = queue();
    const reading = rejected.next();
    rejected.fail(new Error('gone'));
    await assert.rejects(reading, /gone/);
  });
});
