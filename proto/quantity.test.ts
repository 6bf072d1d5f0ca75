import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from './errors.js';
import {
  canonicalQuantity,
  compareQuantities,
  formatQuantity,
  isQuantity,
  milliValue,
  parseQuantity,
  wholeValue,
} from './quantity.js';

describe('parseQuantity', () => {
  // text, milli-units, whole units (rounded up), canonical form
  const table: [string, bigint, number, string][] = [
    ['0', 0n, 0, '0'],
    ['500m', 500n, 1, '500m'],
    ['0.5', 500n, 1, '500m'],
    ['.5', 500n, 1, '500m'],
    ['1.', 1000n, 1, '1'],
    ['2', 2000n, 2, '2'],
    ['1500m', 1500n, 2, '1500m'],
    ['0.1m', 1n, 1, '1m'],
    ['1k', 1000_000n, 1000, '1k'],
    ['1000', 1000_000n, 1000, '1k'],
    ['1.5k', 1500_000n, 1500, '1500'],
    ['1M', 10n ** 9n, 1_000_000, '1M'],
    ['2G', 2n * 10n ** 12n, 2e9, '2G'],
    ['1T', 10n ** 15n, 1e12, '1T'],
    ['1P', 10n ** 18n, 1e15, '1P'],
    ['1E', 10n ** 21n, 1e18, '1E'],
    ['1e3', 1000_000n, 1000, '1e3'],
    ['1E3', 1000_000n, 1000, '1e3'],
    ['1e-3', 1n, 1, '1e-3'],
    ['12e6', 12n * 10n ** 9n, 12e6, '12e6'],
    ['1Ki', 1024_000n, 1024, '1Ki'],
    ['128Mi', 128n * 1024n * 1024n * 1000n, 134217728, '128Mi'],
    ['1Gi', 1024n ** 3n * 1000n, 1073741824, '1Gi'],
    ['1.5Gi', 1536n * 1024n ** 2n * 1000n, 1610612736, '1536Mi'],
    ['1Ti', 1024n ** 4n * 1000n, 1024 ** 4, '1Ti'],
    ['1Pi', 1024n ** 5n * 1000n, 1024 ** 5, '1Pi'],
    ['1Ei', 1024n ** 6n * 1000n, 1024 ** 6, '1Ei'],
    ['0.5Ki', 512_000n, 512, '512'],
    ['+3', 3000n, 3, '3'],
    ['-2', -2000n, -2, '-2'],
    ['-1.5m', -2n, -1, '-2m'],
  ];
  for (const [text, milli, whole, canonical] of table) {
    test(`${text} = ${milli}m, ${whole} units, canonical ${canonical}`, () => {
      const quantity = parseQuantity(text);
      assert.equal(quantity.milli, milli);
      assert.equal(wholeValue(text), whole);
      assert.equal(milliValue(text), Number(milli));
      assert.equal(formatQuantity(quantity), canonical);
      assert.equal(parseQuantity(canonical).milli, milli, 'the canonical form parses back to the same value');
    });
  }

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['abc', /a quantity is a number with an optional suffix/],
    ['1 Gi', /optional suffix/],
    ['1gi', /optional suffix/],
    ['1KB', /optional suffix/],
    ['Mi', /optional suffix/],
    ['1.2.3', /optional suffix/],
    ['1e', /optional suffix/],
    ['1e1.5', /optional suffix/],
    ['--1', /optional suffix/],
    ['1Gi ', /optional suffix/],
    ['1e99', /exponent 99 is out of range/],
    ['99999999999E', /too large/],
    ['1'.repeat(65), /longer than 64/],
  ];
  for (const [text, message] of bad) {
    test(`${JSON.stringify(text)} is rejected`, () => {
      assert.equal(isQuantity(text), false);
      assert.throws(
        () => parseQuantity(text, 'spec.containers[0].resources.limits[cpu]'),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'spec.containers[0].resources.limits[cpu]' &&
          message.test(err.message) &&
          err.message.includes('in spec.containers[0].resources.limits[cpu]'),
      );
    });
  }
});

describe('compareQuantities', () => {
  const table: [string, string, number][] = [
    ['1Gi', '1G', 1],
    ['1000m', '1', 0],
    ['500m', '0.5', 0],
    ['128Mi', '134217728', 0],
    ['100m', '0.2', -1],
    ['1e3', '1k', 0],
    ['-1', '0', -1],
  ];
  for (const [a, b, expected] of table) {
    test(`${a} vs ${b} → ${expected}`, () => {
      assert.equal(compareQuantities(a, b), expected);
      assert.equal(compareQuantities(b, a), -expected || 0);
    });
  }
  test('a quantity parsed again is the same value, and cannot be changed through either result', () => {
    const first = parseQuantity('1536Mi');
    const again = parseQuantity('1536Mi');
    assert.deepEqual(again, { milli: 1536n * 1024n * 1024n * 1000n, format: 'BinarySI' });
    assert.ok(Object.isFrozen(first) && Object.isFrozen(again));
    assert.throws(() => {
      (first as { milli: bigint }).milli = 0n;
    }, TypeError);
    assert.equal(parseQuantity('1536Mi').milli, 1536n * 1024n * 1024n * 1000n);
  });

  test('a quantity refused twice names the field of each parse', () => {
    for (const field of ['spec.a', 'spec.b']) {
      assert.throws(
        () => parseQuantity('12xyz', field),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.field === field && err.message.includes(field),
      );
    }
  });

  test('parses stay right across the clearing of remembered quantities', () => {
    for (let i = 0; i < 5000; i++) assert.equal(parseQuantity(`${i}m`).milli, BigInt(i));
    assert.equal(parseQuantity('7m').milli, 7n);
  });

  test('canonicalQuantity keeps the format family', () => {
    assert.equal(canonicalQuantity('2048Ki'), '2Mi');
    assert.equal(canonicalQuantity('2000k'), '2M');
    assert.equal(canonicalQuantity('2000e3'), '2e6');
  });
});
