import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeObject } from '../../proto/gen/types.js';
import { parseWaitFor } from './wait.js';

const withConditions = (conditions: { type: string; status: string }[], phase = 'Running'): KubeObject =>
  ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p' },
    spec: {},
    status: { phase, conditions },
  }) as never;

describe('wait --for', () => {
  test('condition=NAME[=VALUE], case-insensitively, True by default', () => {
    const ready = parseWaitFor('condition=Ready');
    assert.equal(ready.check(withConditions([{ type: 'Ready', status: 'True' }])), true);
    assert.equal(ready.check(withConditions([{ type: 'Ready', status: 'False' }])), false);
    assert.equal(ready.check(undefined), false);
    assert.equal(
      parseWaitFor('condition=ready=false').check(withConditions([{ type: 'Ready', status: 'False' }])),
      true,
    );
    assert.equal(ready.met, 'condition met');
  });

  test('delete is met by absence; jsonpath by a value', () => {
    assert.equal(parseWaitFor('delete').check(undefined), true);
    assert.equal(parseWaitFor('delete').check(withConditions([])), false);
    const running = parseWaitFor('jsonpath={.status.phase}=Running');
    assert.equal(running.check(withConditions([])), true);
    assert.equal(running.check(withConditions([], 'Pending')), false);
  });

  test('anything else is refused, naming the flag and the forms it takes', () => {
    assert.throws(
      () => parseWaitFor('ready'),
      /--for=ready: expected condition=NAME\[=VALUE\], delete, or jsonpath/,
    );
  });
});
