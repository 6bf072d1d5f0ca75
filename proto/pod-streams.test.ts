import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailedPreconditionError, InvalidArgumentError } from './errors.js';
import {
  dataFrameParts,
  decodeFrame,
  encodeFrame,
  endOfError,
  errorOfEnd,
  isEndFrame,
} from './pod-streams.js';

test('a data frame made of parts is the frame protobuf encodes, and decodes to a view of its bytes', () => {
  for (const size of [1, 127, 128, 16_383, 16_384, 65_536, 200_000]) {
    for (const field of ['stdin', 'stdout', 'stderr'] as const) {
      const data = Buffer.alloc(size, size % 251);
      const parts = Buffer.concat(dataFrameParts(field, data));
      assert.deepEqual(parts, encodeFrame({ [field]: data }), `${field} of ${size}`);
      const decoded = decodeFrame(parts);
      assert.deepEqual(Object.keys(decoded), [field]);
      assert.ok(decoded[field]!.equals(data));
    }
  }
  // frames of several fields go through protobuf's decoder
  assert.deepEqual(decodeFrame(encodeFrame({ stdin: Buffer.from('x'), stdinClose: true })), {
    stdin: Buffer.from('x'),
    stdinClose: true,
  });
  assert.deepEqual(decodeFrame(encodeFrame({ resize: { rows: 3, cols: 4 } })).resize, { rows: 3, cols: 4 });
});

test('the end frame is told by its first byte; errors cross it as skiff’s vocabulary', () => {
  const end = encodeFrame({ end: { exitCode: 0 } });
  assert.equal(isEndFrame(end), true);
  assert.equal(decodeFrame(end).end?.exitCode, 0, 'an exit code of 0 is sent, not dropped');
  assert.equal(isEndFrame(encodeFrame({ stdout: Buffer.from('x') })), false);
  const failed = errorOfEnd(endOfError(new InvalidArgumentError('exec: no command', 'open.command')));
  assert.ok(failed instanceof InvalidArgumentError);
  assert.equal(failed.field, 'open.command');
  assert.ok(errorOfEnd(endOfError(new FailedPreconditionError('x'))) instanceof FailedPreconditionError);
  // what is not skiff's error says nothing of itself
  assert.match(errorOfEnd(endOfError(new Error('/etc/shadow: secret')))!.message, /^internal error/);
  assert.equal(errorOfEnd({ exitCode: 3 }), undefined);
});
