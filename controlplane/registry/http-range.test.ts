import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseContentLength, parseContentRange, parseRangeHeader } from './http-range.js';

test('Range: the forms the conformance suite sends, against a 2,000-byte blob', () => {
  const size = 2000;
  assert.deepEqual(parseRangeHeader(undefined, size), { kind: 'whole' });
  assert.deepEqual(parseRangeHeader('bytes=500-1499', size), {
    kind: 'partial',
    range: { start: 500, end: 1499 },
  });
  assert.deepEqual(parseRangeHeader('bytes=500-', size), {
    kind: 'partial',
    range: { start: 500, end: 1999 },
  });
  assert.deepEqual(parseRangeHeader('bytes=-500', size), {
    kind: 'partial',
    range: { start: 1500, end: 1999 },
  });
  assert.deepEqual(parseRangeHeader('bytes=-5000', size), {
    kind: 'partial',
    range: { start: 0, end: 1999 },
  });
  assert.deepEqual(parseRangeHeader('bytes=1000-5000', size), {
    kind: 'partial',
    range: { start: 1000, end: 1999 },
  });
  assert.deepEqual(parseRangeHeader('bytes=500-0', size), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRangeHeader('bytes=5000-10000', size), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRangeHeader('bytes=2000-', size), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRangeHeader('bytes=-0', size), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRangeHeader('bytes=0-', 0), { kind: 'unsatisfiable' });
});

test('Range: anything but one well-formed byte range is ignored (the whole blob is sent)', () => {
  for (const header of [
    'bytes=0-1,5-6',
    'items=0-1',
    'bytes=a-b',
    'bytes=-',
    `bytes=${'9'.repeat(16)}-`,
    'bytes 0-1',
    ' ',
  ]) {
    assert.deepEqual(parseRangeHeader(header, 100), { kind: 'whole' }, header);
  }
});

test('Content-Range of an upload chunk', () => {
  assert.equal(parseContentRange(undefined), undefined);
  assert.deepEqual(parseContentRange('0-99'), { start: 0, end: 99 });
  assert.deepEqual(parseContentRange('bytes 100-199/*'), { start: 100, end: 199 });
  assert.deepEqual(parseContentRange('bytes 100-199/1000'), { start: 100, end: 199 });
  for (const bad of ['99-0', '-1', '0-', 'bytes=0-1', '0-1/x', `0-${'9'.repeat(16)}`, '0 - 1']) {
    assert.equal(parseContentRange(bad), 'invalid', bad);
  }
  assert.equal(parseContentLength(undefined), undefined);
  assert.equal(parseContentLength('42'), 42);
  assert.equal(parseContentLength('-1'), 'invalid');
  assert.equal(parseContentLength('1e3'), 'invalid');
});
