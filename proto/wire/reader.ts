/**
 * The protobuf wire format, reading: what the generated decoders (proto/gen/messages.ts) call.
 * Every read stays within `limit`, the end of the message being decoded, so bytes that are not
 * a message (truncated, a length past the end, a bad wire type) throw a RangeError rather than
 * read into the next field. Values come out in the codecs' shape (see message-type.ts): int64
 * as the nearest number, bytes as base64 text.
 */
import type { WireMessage } from './message-type.js';

/** Reads a message's fields into `into` (merging, as protobuf does with a repeated message field): a generated decoder. */
export type Decoder = (reader: Reader, into?: WireMessage) => WireMessage;

/** How deep unknown groups may nest before the bytes are refused (the schema's messages nest far less). */
const MAX_GROUP_DEPTH = 100;

/** Strings up to this many bytes are decoded in JavaScript when they are ASCII (cheaper than a call into C++). */
const SHORT_STRING = 16;

const INT32 = 0;
const INT64 = 1;
const BOOL = 2;
const UINT32 = 3;
type Varint = typeof INT32 | typeof INT64 | typeof BOOL | typeof UINT32;

const STRING = 0;
const BYTES = 1;
const MESSAGE = 2;
type MapValue = typeof STRING | typeof BYTES | typeof MESSAGE;

export class Reader {
  readonly buf: Buffer;
  pos = 0;
  /** Where the message being read ends. */
  limit: number;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.limit = bytes.length;
  }

  private outOfRange(length = 1): RangeError {
    return new RangeError(`index out of range: ${this.pos} + ${length} > ${this.limit}`);
  }

  /** A varint's low 32 bits, unsigned: a tag, a length, a uint32. */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos < this.limit) {
      const first = buf[pos]!;
      if (first < 0x80) {
        this.pos = pos + 1;
        return first;
      }
    }
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (pos >= this.limit) throw this.outOfRange();
      const byte = buf[pos++]!;
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    // bits above 32 are dropped, as protobuf does for a 32-bit field; at most ten bytes in all
    for (let i = 5; i < 10; i++) {
      if (pos >= this.limit) throw this.outOfRange();
      if (buf[pos++]! < 0x80) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    throw new RangeError(`invalid varint encoding at ${this.pos}`);
  }

  int32(): number {
    return this.uint32() | 0;
  }

  /** A 64-bit varint as the nearest number (exact up to 2^53), two's complement for negatives. */
  int64(): number {
    const buf = this.buf;
    let pos = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= this.limit) throw this.outOfRange();
      const byte = buf[pos++]!;
      if (i < 4) lo |= (byte & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (byte & 0x7f) << 28;
        hi |= (byte & 0x7f) >> 4;
      } else hi |= (byte & 0x7f) << (7 * i - 32);
      if (byte < 0x80) {
        this.pos = pos;
        lo >>>= 0;
        hi >>>= 0;
        if (hi >>> 31 === 0) return hi * 4294967296 + lo;
        // negative: the magnitude is the two's complement
        lo = (~lo + 1) >>> 0;
        hi = ~hi >>> 0;
        if (lo === 0) hi = (hi + 1) >>> 0;
        return -(hi * 4294967296 + lo);
      }
    }
    throw new RangeError(`invalid varint encoding at ${this.pos}`);
  }

  /** A varint's low 32 bits are not zero (as protobufjs reads a bool). */
  bool(): boolean {
    return this.uint32() !== 0;
  }

  /** The end of a length-delimited value that starts here, checked to lie within the message. */
  private delimitedEnd(): number {
    const length = this.uint32();
    const end = this.pos + length;
    if (end > this.limit) throw this.outOfRange(length);
    return end;
  }

  string(): string {
    const end = this.delimitedEnd();
    const buf = this.buf;
    const start = this.pos;
    this.pos = end;
    if (end - start <= SHORT_STRING) {
      let text = '';
      for (let i = start; i < end; i++) {
        const byte = buf[i]!;
        if (byte >= 0x80) return buf.toString('utf8', start, end);
        text += String.fromCharCode(byte);
      }
      return text;
    }
    return buf.toString('utf8', start, end);
  }

  /** bytes, as base64 text. */
  bytes(): string {
    const end = this.delimitedEnd();
    const start = this.pos;
    this.pos = end;
    return this.buf.toString('base64', start, end);
  }

  /** A nested message: `decode` reads it into `into` (or a new object) up to its end. */
  message(decode: Decoder, into?: WireMessage): WireMessage {
    const end = this.delimitedEnd();
    const outer = this.limit;
    this.limit = end;
    const message = decode(this, into);
    this.limit = outer;
    return message;
  }

  /** A run of packed varints of one kind into `list`. */
  private packed(list: unknown[], kind: Varint): void {
    const end = this.delimitedEnd();
    const outer = this.limit;
    this.limit = end;
    while (this.pos < end)
      list.push(
        kind === INT32
          ? this.int32()
          : kind === INT64
            ? this.int64()
            : kind === UINT32
              ? this.uint32()
              : this.bool(),
      );
    this.limit = outer;
  }

  packedInt32(list: unknown[]): void {
    this.packed(list, INT32);
  }

  packedUint32(list: unknown[]): void {
    this.packed(list, UINT32);
  }

  packedInt64(list: unknown[]): void {
    this.packed(list, INT64);
  }

  packedBool(list: unknown[]): void {
    this.packed(list, BOOL);
  }

  /**
   * One entry of a map<string, V> field into `map`: key = 1, value = 2 (both length-delimited),
   * either absent meaning its zero value ('' or the empty message). A "__proto__" key is defined
   * as an own property, never the prototype.
   */
  private entry(map: Record<string, unknown>, kind: MapValue, decode?: Decoder): void {
    const end = this.delimitedEnd();
    const outer = this.limit;
    this.limit = end;
    let key = '';
    let value: unknown;
    while (this.pos < end) {
      const tag = this.uint32();
      if (tag === 0x0a) key = this.string();
      else if (tag === 0x12)
        value = kind === STRING ? this.string() : kind === BYTES ? this.bytes() : this.message(decode!);
      else this.skip(tag);
    }
    this.limit = outer;
    value ??= kind === MESSAGE ? {} : '';
    if (key === '__proto__') {
      Object.defineProperty(map, key, { value, enumerable: true, configurable: true, writable: true });
    } else {
      map[key] = value;
    }
  }

  stringEntry(map: Record<string, unknown>): void {
    this.entry(map, STRING);
  }

  bytesEntry(map: Record<string, unknown>): void {
    this.entry(map, BYTES);
  }

  messageEntry(map: Record<string, unknown>, decode: Decoder): void {
    this.entry(map, MESSAGE, decode);
  }

  /** Skips the value of a field this decoder does not know (`tag` already read). */
  skip(tag: number, depth = 0): void {
    if (tag >>> 3 === 0) throw new RangeError(`illegal tag: field number 0 at ${this.pos}`);
    switch (tag & 7) {
      case 0:
        this.int64();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.pos = this.delimitedEnd();
        return;
      case 3: {
        if (depth >= MAX_GROUP_DEPTH) throw new RangeError(`groups nested over ${MAX_GROUP_DEPTH} deep`);
        for (;;) {
          const inner = this.uint32();
          if ((inner & 7) === 4) {
            if (inner >>> 3 !== tag >>> 3) throw new RangeError(`invalid end group tag at ${this.pos}`);
            return;
          }
          this.skip(inner, depth + 1);
        }
      }
      case 5:
        this.advance(4);
        return;
      default:
        throw new RangeError(`invalid wire type ${tag & 7} at ${this.pos}`);
    }
  }

  private advance(bytes: number): void {
    if (this.pos + bytes > this.limit) throw this.outOfRange(bytes);
    this.pos += bytes;
  }
}
