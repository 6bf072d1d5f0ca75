/**
 * The protobuf wire format, writing: what the generated encoders (proto/gen/messages.ts) call.
 * One growing buffer; a nested message's length is written in front of it once it is encoded (a
 * byte is kept for it, and the body moved up in the rare case the length needs more), so the
 * output is the canonical encoding protobufjs and protoc give, byte for byte.
 *
 * Values are in the shape the codecs read and write (see message-type.ts): int64 as a number,
 * bytes as base64 text or a Uint8Array. A nested message may be given as its encoding already
 * (a Uint8Array), which is copied in as it is.
 */
import type { WireMessage } from './message-type.js';

/** Writes a message's fields: a generated encoder. */
export type Encoder = (message: WireMessage, writer: Writer) => void;

const INITIAL_BYTES = 1024;
/** A shared buffer grown beyond this is let go after the encode that needed it. */
const KEPT_BYTES = 1024 * 1024;

function varintLength(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

function typeError(expected: string, value: unknown): TypeError {
  return new TypeError(`encode: expected ${expected}, got ${value === null ? 'null' : typeof value}`);
}

export class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(initialBytes = INITIAL_BYTES) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** The bytes written so far, copied out; the writer is empty again. */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    this.pos = 0;
    if (this.buf.length > KEPT_BYTES) this.buf = Buffer.allocUnsafe(INITIAL_BYTES);
    return out;
  }

  /** Forgets what was written (after an encode that threw). */
  reset(): void {
    this.pos = 0;
  }

  private reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + bytes));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /** An unsigned 32-bit varint: a tag or a length. */
  varint(value: number): void {
    this.reserve(5);
    const buf = this.buf;
    let pos = this.pos;
    let rest = value >>> 0;
    while (rest >= 0x80) {
      buf[pos++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    buf[pos++] = rest;
    this.pos = pos;
  }

  /** A 64-bit varint given as its low and high 32 bits. */
  private varint64(low: number, high: number): void {
    this.reserve(10);
    const buf = this.buf;
    let pos = this.pos;
    let lo = low >>> 0;
    let hi = high >>> 0;
    while (hi !== 0) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo >= 0x80) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  private boolValue(value: unknown): void {
    if (typeof value !== 'boolean') throw typeError('a boolean', value);
    this.varint(value ? 1 : 0);
  }

  private int32Value(value: unknown): void {
    if (typeof value !== 'number') throw typeError('an int32 number', value);
    // negative int32 is sign-extended to ten bytes, as the wire format says
    if (value < 0) this.varint64(value, -1);
    else this.varint(value);
  }

  private uint32Value(value: unknown): void {
    if (typeof value !== 'number') throw typeError('a uint32 number', value);
    // its low 32 bits, as protobufjs writes a uint32
    this.varint(value >>> 0);
  }

  private int64Value(value: unknown): void {
    if (typeof value !== 'number') throw typeError('an int64 number', value);
    // two's complement of the integer part, as protobufjs's LongBits.fromNumber
    const magnitude = Math.abs(value);
    let lo = magnitude >>> 0;
    let hi = ((magnitude - lo) / 4294967296) >>> 0;
    if (value < 0) {
      hi = ~hi >>> 0;
      lo = ~lo >>> 0;
      if (++lo > 0xffffffff) {
        lo = 0;
        if (++hi > 0xffffffff) hi = 0;
      }
    }
    this.varint64(lo, hi);
  }

  private stringValue(value: unknown): void {
    if (typeof value !== 'string') throw typeError('a string', value);
    const length = value.length;
    // up to 42 UTF-16 units are at most 126 UTF-8 bytes: a one-byte length, set once written
    if (length <= 42) {
      this.reserve(1 + 3 * length);
      const buf = this.buf;
      const start = this.pos + 1;
      let pos = start;
      for (let i = 0; i < length; i++) {
        const unit = value.charCodeAt(i);
        if (unit >= 0x80) {
          pos = start + buf.write(value, start);
          break;
        }
        buf[pos++] = unit;
      }
      buf[start - 1] = pos - start;
      this.pos = pos;
      return;
    }
    const bytes = Buffer.byteLength(value);
    this.varint(bytes);
    this.reserve(bytes);
    this.pos += this.buf.write(value, this.pos);
  }

  private bytesValue(value: unknown): void {
    if (typeof value === 'string') {
      // decoded first: Buffer.byteLength(text, 'base64') is an estimate, which text that is not
      // canonical base64 (whitespace, padding inside) exceeds
      const bytes = Buffer.from(value, 'base64');
      this.varint(bytes.length);
      this.raw(bytes);
    } else if (value instanceof Uint8Array) {
      this.varint(value.length);
      this.raw(value);
    } else {
      throw typeError('base64 text or a Uint8Array', value);
    }
  }

  private raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Keeps a byte for the length of what follows; `end` writes it there. */
  private begin(): number {
    this.reserve(1);
    return ++this.pos;
  }

  /** Puts the varint length of what was written since `begin` in front of it. */
  private end(start: number): void {
    const length = this.pos - start;
    if (length < 0x80) {
      this.buf[start - 1] = length;
      return;
    }
    const extra = varintLength(length) - 1;
    this.reserve(extra);
    this.buf.copyWithin(start + extra, start, this.pos);
    const end = this.pos + extra;
    this.pos = start - 1;
    this.varint(length);
    this.pos = end;
  }

  string(tag: number, value: unknown): void {
    this.varint(tag);
    this.stringValue(value);
  }

  bool(tag: number, value: unknown): void {
    if (typeof value !== 'boolean') throw typeError('a boolean', value);
    this.varint(tag);
    this.varint(value ? 1 : 0);
  }

  int32(tag: number, value: unknown): void {
    this.varint(tag);
    this.int32Value(value);
  }

  uint32(tag: number, value: unknown): void {
    this.varint(tag);
    this.uint32Value(value);
  }

  int64(tag: number, value: unknown): void {
    this.varint(tag);
    this.int64Value(value);
  }

  bytes(tag: number, value: unknown): void {
    this.varint(tag);
    this.bytesValue(value);
  }

  /** A nested message, encoded by `encode`, or its encoding given as a Uint8Array. */
  message(tag: number, value: unknown, encode: Encoder): void {
    this.varint(tag);
    if (value instanceof Uint8Array) {
      this.varint(value.length);
      this.raw(value);
    } else if (typeof value === 'object' && value !== null) {
      const start = this.begin();
      encode(value as WireMessage, this);
      this.end(start);
    } else {
      throw typeError('a message', value);
    }
  }

  /** A repeated message field: each item as `message` writes it. */
  messages(tag: number, list: unknown, encode: Encoder): void {
    for (const item of asList(list)) this.message(tag, item, encode);
  }

  strings(tag: number, list: unknown): void {
    for (const item of asList(list)) this.string(tag, item);
  }

  repeatedBytes(tag: number, list: unknown): void {
    for (const item of asList(list)) this.bytes(tag, item);
  }

  /** A packed repeated field (proto3's default for varints): one length-delimited run of values. */
  private packed(tag: number, list: unknown, writeValue: (this: Writer, value: unknown) => void): void {
    const items = asList(list);
    if (items.length === 0) return;
    this.varint(tag);
    const start = this.begin();
    for (const item of items) writeValue.call(this, item);
    this.end(start);
  }

  packedInt32(tag: number, list: unknown): void {
    this.packed(tag, list, this.int32Value);
  }

  packedUint32(tag: number, list: unknown): void {
    this.packed(tag, list, this.uint32Value);
  }

  packedInt64(tag: number, list: unknown): void {
    this.packed(tag, list, this.int64Value);
  }

  packedBool(tag: number, list: unknown): void {
    this.packed(tag, list, this.boolValue);
  }

  /** map<string, string>: an entry message (key = 1, value = 2) per key, both always written. */
  stringMap(tag: number, map: unknown): void {
    const entries = asMap(map);
    for (const key of Object.keys(entries)) {
      this.varint(tag);
      const start = this.begin();
      this.string(0x0a, key);
      this.string(0x12, entries[key]);
      this.end(start);
    }
  }

  /** map<string, bytes>, as stringMap. */
  bytesMap(tag: number, map: unknown): void {
    const entries = asMap(map);
    for (const key of Object.keys(entries)) {
      this.varint(tag);
      const start = this.begin();
      this.string(0x0a, key);
      this.bytes(0x12, entries[key]);
      this.end(start);
    }
  }

  /** map<string, message>, as stringMap. */
  messageMap(tag: number, map: unknown, encode: Encoder): void {
    const entries = asMap(map);
    for (const key of Object.keys(entries)) {
      this.varint(tag);
      const start = this.begin();
      this.string(0x0a, key);
      this.message(0x12, entries[key], encode);
      this.end(start);
    }
  }
}

function asList(value: unknown): readonly unknown[] {
  if (!Array.isArray(value)) throw typeError('a list', value);
  return value;
}

function asMap(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw typeError('a map', value);
  return value as Record<string, unknown>;
}
