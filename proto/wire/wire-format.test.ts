// What the generated codecs do not reach with skiff's own messages (proto/codegen/render-messages.test.ts
// covers those): the rest of the Writer and Reader, against protobufjs's.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import { Reader } from './reader.js';
import { Writer } from './writer.js';
import type { WireMessage } from './message-type.js';

function written(write: (w: Writer) => void): Buffer {
  const w = new Writer(4);
  write(w);
  return w.finish();
}

const encodeName = (m: WireMessage, w: Writer): void => w.string(10, m['name']);
const decodeName = (r: Reader, m: WireMessage = {}): WireMessage => {
  while (r.pos < r.limit) {
    const tag = r.uint32();
    if (tag === 10) m['name'] = r.string();
    else r.skip(tag);
  }
  return m;
};

describe('Writer', () => {
  test('packed bools, repeated bytes and maps of messages are written as protobufjs writes them', () => {
    const expected = protobuf.Writer.create();
    expected.uint32(10).fork().bool(true).bool(false).bool(true).ldelim();
    expected.uint32(18).bytes(Buffer.from('ab')).uint32(18).bytes(Buffer.from([]));
    expected
      .uint32(26)
      .fork()
      .uint32(10)
      .string('k')
      .uint32(18)
      .fork()
      .uint32(10)
      .string('v')
      .ldelim()
      .ldelim();
    assert.deepEqual(
      written((w) => {
        w.packedBool(10, [true, false, true]);
        w.repeatedBytes(18, [Buffer.from('ab').toString('base64'), new Uint8Array(0)]);
        w.messageMap(26, { k: { name: 'v' } }, encodeName);
      }),
      Buffer.from(expected.finish()),
    );
  });

  test('uint32, single and packed, is written and read back as protobufjs does (no field of skiff.v1 is a repeated one)', () => {
    const values = [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 - 1];
    const expected = protobuf.Writer.create();
    expected.uint32(8).uint32(2 ** 32 - 1);
    expected.uint32(18).fork();
    for (const value of values) expected.uint32(value);
    expected.ldelim();
    const bytes = written((w) => {
      w.uint32(8, 2 ** 32 - 1);
      w.packedUint32(18, values);
    });
    assert.deepEqual(bytes, Buffer.from(expected.finish()));
    const r = new Reader(bytes);
    assert.equal(r.uint32(), 8);
    assert.equal(r.uint32(), 2 ** 32 - 1);
    assert.equal(r.uint32(), 18);
    const list: unknown[] = [];
    r.packedUint32(list);
    assert.deepEqual(list, values);
  });

  test('bytes given as base64 text are written as what it decodes to, canonical or not', () => {
    for (const text of ['aGk=', 'aGk', 'aG k=', 'aGk=aGk=']) {
      const expected = protobuf.Writer.create().uint32(10).bytes(Buffer.from(text, 'base64')).finish();
      assert.ok(written((w) => w.bytes(10, text)).equals(expected), text);
    }
  });

  test('a lone surrogate is written as U+FFFD, in short strings and long ones', () => {
    for (const text of ['a\ud800b', `${'x'.repeat(50)}\udc00`]) {
      const bytes = written((w) => w.string(10, text));
      assert.equal(new Reader(bytes).uint32(), 10);
      assert.equal(decodeName(new Reader(bytes))['name'], text.replace(/[\ud800-\udfff]/, '\ufffd'));
    }
  });

  test('a nested message of any size gets its length in front, the buffer growing as it needs', () => {
    for (const size of [0, 127, 128, 16_383, 16_384, 2_097_152]) {
      const name = 'n'.repeat(size);
      const bytes = written((w) => w.message(18, { name }, encodeName));
      const expected = protobuf.Writer.create().uint32(18).fork().uint32(10).string(name).ldelim().finish();
      assert.ok(bytes.equals(expected), `size ${size}`);
    }
  });
});

describe('Reader', () => {
  test('skips unknown groups, and refuses field number 0, a wrong end group and wire types 6 and 7', () => {
    const group = protobuf.Writer.create()
      .uint32((5 << 3) | 3)
      .uint32((6 << 3) | 3)
      .uint32(8)
      .uint32(1)
      .uint32((6 << 3) | 4)
      .uint32((5 << 3) | 4)
      .uint32(10)
      .string('after')
      .finish();
    assert.deepEqual(decodeName(new Reader(group)), { name: 'after' });
    assert.throws(() => decodeName(new Reader(Uint8Array.from([0, 1]))), /field number 0/);
    assert.throws(() => decodeName(new Reader(Uint8Array.from([(5 << 3) | 3, (6 << 3) | 4]))), /end group/);
    assert.throws(() => decodeName(new Reader(Uint8Array.from([(5 << 3) | 6]))), /invalid wire type 6/);
    assert.throws(() => decodeName(new Reader(Uint8Array.from([(5 << 3) | 7]))), /invalid wire type 7/);
  });

  test('a length past the end of its message is refused, not read into what follows', () => {
    // an outer message of 3 bytes whose string claims 5
    const bytes = Uint8Array.from([18, 3, 10, 5, 0x61, 0x62, 0x63, 0x64]);
    const r = new Reader(bytes);
    assert.equal(r.uint32(), 18);
    assert.throws(() => r.message(decodeName), RangeError);
    assert.throws(() => new Reader(Uint8Array.from([0x80, 0x80])).uint32(), RangeError);
    assert.throws(
      () =>
        new Reader(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1])).int64(),
      /invalid varint/,
    );
  });

  test('packed bools, repeated bytes and maps of messages are read as protobufjs writes them', () => {
    const bytes = protobuf.Writer.create()
      .uint32(10)
      .fork()
      .bool(true)
      .bool(false)
      .ldelim()
      .uint32(26)
      .fork()
      .uint32(10)
      .string('k')
      .uint32(18)
      .fork()
      .uint32(10)
      .string('v')
      .ldelim()
      .ldelim()
      .uint32(26)
      .fork()
      .uint32(10)
      .string('empty')
      .ldelim()
      .finish();
    const r = new Reader(bytes);
    const bools: unknown[] = [];
    const map: Record<string, unknown> = {};
    assert.equal(r.uint32(), 10);
    r.packedBool(bools);
    assert.equal(r.uint32(), 26);
    r.messageEntry(map, decodeName);
    assert.equal(r.uint32(), 26);
    r.messageEntry(map, decodeName);
    assert.deepEqual(bools, [true, false]);
    assert.deepEqual(map, { k: { name: 'v' }, empty: {} });
  });
});
