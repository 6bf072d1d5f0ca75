import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stopSignalOf } from './runtime.js';

test("an image's STOPSIGNAL becomes the signal stop sends first, by name or number; junk is ignored", () => {
  assert.equal(stopSignalOf('SIGQUIT'), 'SIGQUIT');
  assert.equal(stopSignalOf('quit'), 'SIGQUIT');
  assert.equal(stopSignalOf('3'), 'SIGQUIT');
  assert.equal(stopSignalOf('SIGWINCH'), 'SIGWINCH');
  assert.equal(stopSignalOf('SIGNOPE'), undefined);
  assert.equal(stopSignalOf(''), undefined);
  assert.equal(stopSignalOf(15), undefined);
});
