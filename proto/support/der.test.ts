import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../errors.js';
import {
  derBitString,
  derBoolean,
  derElement,
  derExplicit,
  derImplicit,
  derInteger,
  derLength,
  derNamedBitString,
  derNull,
  derOid,
  derSequence,
  derSetOf,
  derTime,
  derUtf8String,
  readDerChildren,
  readDerElement,
  readDerOid,
} from './der.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe('DER lengths', () => {
  test('below 128 is one octet; from 128 on, 0x80 + the count of length octets, then the octets', () => {
    assert.equal(hex(derLength(0)), '00');
    assert.equal(hex(derLength(127)), '7f');
    assert.equal(hex(derLength(128)), '8180');
    assert.equal(hex(derLength(255)), '81ff');
    assert.equal(hex(derLength(256)), '820100');
    assert.equal(hex(derLength(65535)), '82ffff');
    assert.equal(hex(derLength(65536)), '83010000');
    assert.throws(() => derLength(-1), RangeError);
  });

  test('elements of 127, 128, 255, 256 and 70000 content octets read back whole', () => {
    for (const [size, header] of [
      [127, '047f'],
      [128, '048180'],
      [255, '0481ff'],
      [256, '04820100'],
      [70000, '0483011170'],
    ] as const) {
      const content = Buffer.alloc(size, 0xab);
      const encoded = derElement(0x04, content);
      assert.equal(hex(encoded.subarray(0, header.length / 2)), header, `header for ${size}`);
      assert.equal(encoded.length, header.length / 2 + size);
      const read = readDerElement(Buffer.concat([encoded, Buffer.from([0x05, 0x00])]));
      assert.equal(read.tag, 0x04);
      assert.ok(read.content.equals(content));
      assert.ok(read.encoded.equals(encoded));
    }
  });
});

describe('DER INTEGER', () => {
  test("is minimal two's complement: a 0x00 goes in front of a set top bit, leading zeros go", () => {
    assert.equal(hex(derInteger(0)), '020100');
    assert.equal(hex(derInteger(2)), '020102');
    assert.equal(hex(derInteger(127)), '02017f');
    assert.equal(hex(derInteger(128)), '02020080');
    assert.equal(hex(derInteger(255)), '020200ff');
    assert.equal(hex(derInteger(256)), '02020100');
    assert.equal(hex(derInteger(2n ** 64n)), '0209010000000000000000');
    assert.equal(hex(derInteger(Buffer.from([0x00, 0x00, 0x7f]))), '02017f');
    assert.equal(hex(derInteger(Buffer.from([0x00, 0x80]))), '02020080');
    assert.equal(hex(derInteger(Buffer.alloc(0))), '020100');
    assert.equal(hex(derInteger(Buffer.alloc(3))), '020100');
    assert.throws(() => derInteger(-1), RangeError);
  });

  test('a 16-byte serial with its top bit set becomes 17 content octets, and stays positive', () => {
    const serial = Buffer.alloc(16, 0xff);
    const encoded = derInteger(serial);
    assert.equal(hex(encoded.subarray(0, 3)), '021100');
    assert.ok(encoded.subarray(3).equals(serial));
    const low = Buffer.alloc(16, 0x7f);
    assert.equal(hex(derInteger(low).subarray(0, 2)), '0210');
  });
});

describe('DER OBJECT IDENTIFIER', () => {
  test('encodes the first two arcs together and the rest in base 128', () => {
    assert.equal(hex(derOid('2.5.29.19')), '0603551d13');
    assert.equal(hex(derOid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
    assert.equal(hex(derOid('1.3.6.1.5.5.7.3.1')), '06082b06010505070301');
    assert.equal(hex(derOid('1.2.840.10045.3.1.7')), '06082a8648ce3d030107');
    // X.690 8.19.5's example: the second arc of 2 may exceed 39
    assert.equal(hex(derOid('2.999.3')), '0603883703');
  });

  test('reads back, arcs beyond 2^64 included', () => {
    for (const oid of [
      '2.5.4.3',
      '1.2.840.113549.1.1.11',
      '2.999.3',
      '0.39',
      '2.25.329800735698586629295641978511506172918',
    ]) {
      assert.equal(readDerOid(readDerElement(derOid(oid)).content), oid);
    }
  });

  test('refuses what is not an OID', () => {
    for (const bad of ['1', '3.1', '1.40', '0.40', 'a.b', '1..2', '1.2.', '']) {
      assert.throws(() => derOid(bad), RangeError, bad);
    }
    assert.throws(() => readDerOid(Buffer.from([0x2a, 0x86])), InvalidArgumentError);
    assert.throws(() => readDerOid(Buffer.from([0x2a, 0x80, 0x01])), InvalidArgumentError);
  });
});

describe('X.509 times', () => {
  test('UTCTime through 2049, GeneralizedTime from 2050 (and before 1950), whole seconds, Z', () => {
    const time = (iso: string): string => {
      const encoded = derTime(new Date(iso));
      return `${hex(encoded.subarray(0, 2))} ${encoded.subarray(2).toString('ascii')}`;
    };
    assert.equal(time('2049-12-31T23:59:59.999Z'), '170d 491231235959Z');
    assert.equal(time('2050-01-01T00:00:00Z'), '180f 20500101000000Z');
    assert.equal(time('1950-01-01T00:00:00Z'), '170d 500101000000Z');
    assert.equal(time('1949-12-31T23:59:59Z'), '180f 19491231235959Z');
    assert.equal(time('2026-03-04T05:06:07Z'), '170d 260304050607Z');
    assert.equal(time('9999-12-31T23:59:59Z'), '180f 99991231235959Z');
    assert.throws(() => derTime(new Date('nope')), RangeError);
  });
});

describe('other DER types', () => {
  test('named bits drop trailing zero bits and count the unused ones', () => {
    assert.equal(hex(derNamedBitString([0])), '03020780'); // keyUsage digitalSignature
    assert.equal(hex(derNamedBitString([0, 2])), '030205a0'); // + keyEncipherment
    assert.equal(hex(derNamedBitString([5, 6])), '03020106'); // keyCertSign, cRLSign
    assert.equal(hex(derNamedBitString([7])), '03020001');
    assert.equal(hex(derNamedBitString([8])), '0303070080');
    assert.equal(hex(derNamedBitString([])), '030100');
  });

  test('booleans, null, strings, bit strings and context tags', () => {
    assert.equal(hex(derBoolean(true)), '0101ff');
    assert.equal(hex(derBoolean(false)), '010100');
    assert.equal(hex(derNull()), '0500');
    assert.equal(hex(derUtf8String('é')), '0c02c3a9');
    assert.equal(hex(derBitString(Buffer.from([0xab]))), '030200ab');
    assert.equal(hex(derExplicit(0, derInteger(2))), 'a003020102');
    assert.equal(hex(derImplicit(2, Buffer.from('a'))), '820161');
    assert.equal(hex(derImplicit(1, Buffer.alloc(0), true)), 'a100');
    assert.throws(() => derExplicit(31, Buffer.alloc(0)), RangeError);
  });

  test('a SET OF is ordered by encoding, whatever order it was given in', () => {
    const [a, b] = [derInteger(1), derInteger(2)];
    assert.equal(hex(derSetOf(b, a)), hex(derSetOf(a, b)));
    assert.equal(hex(derSetOf(b, a)), '3106020101020102');
  });

  test('nested sequences read back element by element', () => {
    const encoded = derSequence(derInteger(1), derSequence(derOid('2.5.4.3'), derUtf8String('x')), derNull());
    const children = readDerChildren(readDerElement(encoded).content);
    assert.deepEqual(
      children.map((child) => child.tag),
      [0x02, 0x30, 0x05],
    );
    const [oid, value] = readDerChildren(children[1]!.content);
    assert.equal(readDerOid(oid!.content), '2.5.4.3');
    assert.equal(value!.content.toString('utf8'), 'x');
  });
});

describe('reading DER', () => {
  test('refuses encodings that lie about their size or use forms DER forbids', () => {
    const cases: Array<[string, string]> = [
      ['', 'ends before the element'],
      ['30', 'ends inside the length'],
      ['3080', 'indefinite'],
      ['30810100', 'shortest form'], // 1 needs no long form
      ['3082000100', 'shortest form'], // a leading zero length octet
      ['3004020101', 'runs past the end'],
      ['308501000000000000', 'larger than any certificate'],
      ['1f0100', 'high tag numbers'],
      ['3082ff', 'ends inside the length'],
    ];
    for (const [input, reason] of cases) {
      assert.throws(
        () => readDerElement(Buffer.from(input, 'hex')),
        (err: unknown) => err instanceof InvalidArgumentError && err.message.includes(reason),
        `${input}: ${reason}`,
      );
    }
  });
});
