import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rfc3339Seconds } from './kube-time.js';

test('whole seconds in UTC, also for years past 9999', () => {
  assert.equal(rfc3339Seconds(new Date('2026-12-07T05:29:50.987+01:00')), '2026-12-07T04:29:50Z');
  assert.equal(rfc3339Seconds(new Date(Date.UTC(10000, 0, 1))), '+010000-01-01T00:00:00Z');
});
