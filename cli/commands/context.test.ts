import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { lineBatcher } from './context.js';

test('lineBatcher writes the lines of one turn of the event loop in one write, and flush() what is pending', async (t) => {
  const writes: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  // the test runner reports through stdout too, in Buffers: those pass
  t.mock.method(process.stdout, 'write', (chunk: string | Uint8Array, ...rest: never[]) => {
    if (typeof chunk !== 'string') return original(chunk, ...rest);
    writes.push(chunk);
    return true;
  });
  const lines = lineBatcher();
  lines.print('configmap/a created');
  lines.print('configmap/b created\n');
  assert.deepEqual(writes, [], 'nothing is written within the turn');
  await nextTurn();
  assert.deepEqual(writes, ['configmap/a created\nconfigmap/b created\n']);
  lines.print('configmap/c created');
  lines.flush();
  assert.deepEqual(writes.slice(1), ['configmap/c created\n']);
  lines.flush();
  await nextTurn();
  assert.equal(writes.length, 2, 'nothing pending, nothing written');
});
