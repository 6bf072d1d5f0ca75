import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap } from './heap.js';

interface Item {
  key: string;
  value: number;
}

function heap(): Heap<Item> {
  return new Heap<Item>(
    (item) => item.key,
    (a, b) => a.value < b.value,
  );
}

describe('Heap', () => {
  test('pops in order; peeks without taking', () => {
    const h = heap();
    for (const [key, value] of [
      ['c', 3],
      ['a', 1],
      ['d', 4],
      ['b', 2],
    ] as const)
      h.push({ key, value });
    assert.equal(h.peek()?.key, 'a');
    assert.deepEqual(
      [h.pop(), h.pop(), h.pop(), h.pop(), h.pop()].map((i) => i?.key),
      ['a', 'b', 'c', 'd', undefined],
    );
  });

  test('removes any item by key and re-orders an item pushed again', () => {
    const h = heap();
    for (let i = 0; i < 20; i++) h.push({ key: `k${i}`, value: (i * 7) % 20 });
    h.delete('k0');
    h.push({ key: 'k5', value: -1 });
    assert.equal(h.size, 19);
    assert.equal(h.has('k0'), false);
    const out: number[] = [];
    for (let item = h.pop(); item !== undefined; item = h.pop()) out.push(item.value);
    assert.deepEqual(
      out,
      [...out].sort((a, b) => a - b),
    );
    assert.equal(out[0], -1);
  });
});
