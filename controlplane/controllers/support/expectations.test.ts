import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../proto/informer/manual-clock.js';
import { Expectations } from './expectations.js';

describe('Expectations', () => {
  test('unsatisfied until every creation and named deletion is seen', () => {
    const expectations = new Expectations(new ManualClock(0));
    assert.ok(expectations.satisfied('ns/rs'));
    expectations.expectCreations('ns/rs', 2);
    expectations.expectDeletions('ns/rs', ['ns/a']);
    assert.ok(!expectations.satisfied('ns/rs'));
    expectations.creationObserved('ns/rs');
    expectations.creationObserved('ns/rs');
    assert.ok(!expectations.satisfied('ns/rs'));
    expectations.deletionObserved('ns/rs', 'ns/other');
    assert.ok(!expectations.satisfied('ns/rs'), 'another pod going is not the one expected');
    expectations.deletionObserved('ns/rs', 'ns/a');
    assert.ok(expectations.satisfied('ns/rs'));
  });

  test('a lost event does not freeze an owner past the ttl; forget drops it', () => {
    const clock = new ManualClock(0);
    const expectations = new Expectations(clock, 1000);
    expectations.expectCreations('ns/rs', 1);
    clock.advance(999);
    assert.ok(!expectations.satisfied('ns/rs'));
    clock.advance(2);
    assert.ok(expectations.satisfied('ns/rs'));
    expectations.expectCreations('ns/b', 1);
    expectations.forget('ns/b');
    assert.ok(expectations.satisfied('ns/b'));
  });
});
