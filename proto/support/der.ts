/**
 * The slice of ASN.1 DER (ITU-T X.690) that X.509 certificates need: an encoder that builds each
 * value from its parts, and a reader that splits an encoding into elements. Node's crypto parses
 * certificates but cannot build one, so proto/support/pki.ts writes them with this.
 *
 * Every encoder returns the complete encoding (tag, length, content) as a Buffer, so values nest
 * by passing one encoding into another: `derSequence(derOid('2.5.4.3'), derUtf8String('etcd'))`.
 * Only low tag numbers (0–30) are supported, which is all X.509 uses.
 *
 * The reader is strict where a lax one would let a hostile encoding lie about its size: it
 * refuses indefinite and non-minimal lengths, lengths past the end of the input and high tag
 * numbers. It does not check that the content of each type is valid; callers that care read it
 * with the type they expect (and certificates are parsed by Node first).
 */
import { InvalidArgumentError } from '../errors.js';

/** Universal tags, and the class and constructed bits, as the first octet of an encoding. */
export const DerTag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OBJECT_IDENTIFIER: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
  CONTEXT_SPECIFIC: 0x80,
  CONSTRUCTED: 0x20,
} as const;

/** The length octets: one octet below 128, else 0x80 + the count of big-endian length octets. */
export function derLength(length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`DER length ${length} is not a non-negative integer`);
  }
  if (length < 0x80) return Buffer.from([length]);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Buffer.from([0x80 | octets.length, ...octets]);
}

/** One element: tag, length, content. */
export function derElement(tag: number, content: Uint8Array): Buffer {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff || (tag & 0x1f) === 0x1f) {
    throw new RangeError(`DER tag ${tag} is not a single-octet low tag number`);
  }
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

export function derSequence(...elements: Uint8Array[]): Buffer {
  return derElement(DerTag.SEQUENCE, Buffer.concat(elements));
}

/** A SET OF: DER orders its elements by their encodings (X.690 11.6), whatever order they come in. */
export function derSetOf(...elements: Uint8Array[]): Buffer {
  const sorted = elements.map((element) => Buffer.from(element)).sort(Buffer.compare);
  return derElement(DerTag.SET, Buffer.concat(sorted));
}

export function derBoolean(value: boolean): Buffer {
  return derElement(DerTag.BOOLEAN, Buffer.from([value ? 0xff : 0x00]));
}

export function derNull(): Buffer {
  return derElement(DerTag.NULL, Buffer.alloc(0));
}

/**
 * A non-negative INTEGER, from a number, a bigint or big-endian magnitude bytes (a serial number).
 * The content is minimal two's complement: leading zero octets are dropped, and a 0x00 is put in
 * front when the top bit is set, or a reader would take the value for negative.
 */
export function derInteger(value: number | bigint | Uint8Array): Buffer {
  let magnitude: Buffer;
  if (value instanceof Uint8Array) {
    magnitude = Buffer.from(value);
  } else {
    const big = BigInt(value);
    if (big < 0n) throw new RangeError(`DER INTEGER ${big}: only non-negative integers are encoded here`);
    const hex = big.toString(16);
    magnitude = Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
  }
  let start = 0;
  while (start < magnitude.length && magnitude[start] === 0) start++;
  const significant = magnitude.subarray(start);
  if (significant.length === 0) return derElement(DerTag.INTEGER, Buffer.from([0]));
  const content = significant[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), significant]) : significant;
  return derElement(DerTag.INTEGER, content);
}

/**
 * An OBJECT IDENTIFIER from its dotted form. The first two arcs share one subidentifier
 * (40 × first + second); each subidentifier is base 128, high bit set on all but its last octet.
 */
export function derOid(dotted: string): Buffer {
  if (!/^\d+(\.\d+)+$/.test(dotted)) {
    throw new RangeError(`OID "${dotted}" is not dotted decimal with at least two arcs`);
  }
  const arcs = dotted.split('.').map((arc) => BigInt(arc));
  const [first, second] = arcs as [bigint, bigint];
  if (first > 2n || (first < 2n && second >= 40n)) {
    throw new RangeError(
      `OID "${dotted}": the first arc is 0, 1 or 2, and the second below 40 unless the first is 2`,
    );
  }
  const octets: number[] = [];
  for (const subidentifier of [first * 40n + second, ...arcs.slice(2)]) {
    const base128: number[] = [Number(subidentifier & 0x7fn)];
    for (let rest = subidentifier >> 7n; rest > 0n; rest >>= 7n) base128.unshift(Number(rest & 0x7fn) | 0x80);
    octets.push(...base128);
  }
  return derElement(DerTag.OBJECT_IDENTIFIER, Buffer.from(octets));
}

/** A BIT STRING of whole octets (a key, a signature): the leading octet says no bits are unused. */
export function derBitString(bytes: Uint8Array): Buffer {
  return derElement(DerTag.BIT_STRING, Buffer.concat([Buffer.from([0]), bytes]));
}

/**
 * A BIT STRING of named bits (keyUsage), bit 0 being the most significant bit of the first octet.
 * DER drops trailing zero bits (X.690 11.2.2), so the length and the unused-bit count depend on
 * the highest bit set.
 */
export function derNamedBitString(bits: readonly number[]): Buffer {
  if (bits.length === 0) return derElement(DerTag.BIT_STRING, Buffer.from([0]));
  for (const bit of bits) {
    if (!Number.isInteger(bit) || bit < 0 || bit > 1023)
      throw new RangeError(`named bit ${bit} is out of range`);
  }
  const highest = Math.max(...bits);
  const octets = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) octets[bit >> 3]! |= 0x80 >> (bit & 7);
  const unused = 7 - (highest & 7);
  return derElement(DerTag.BIT_STRING, Buffer.concat([Buffer.from([unused]), octets]));
}

export function derOctetString(bytes: Uint8Array): Buffer {
  return derElement(DerTag.OCTET_STRING, bytes);
}

export function derUtf8String(text: string): Buffer {
  return derElement(DerTag.UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** An IA5String (ASCII): the caller has checked that `text` is ASCII. */
export function derIa5String(text: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(text)) throw new RangeError(`IA5String "${text}" is not ASCII`);
  return derElement(DerTag.IA5_STRING, Buffer.from(text, 'ascii'));
}

/**
 * An X.509 Time (RFC 5280 4.1.2.5): UTCTime (two-digit year) for 1950 through 2049,
 * GeneralizedTime (four-digit year) otherwise; always UTC, whole seconds, "Z". Fractions of a
 * second are dropped, as the profile forbids them.
 */
export function derTime(date: Date): Buffer {
  const millis = date.getTime();
  if (Number.isNaN(millis)) throw new RangeError('X.509 time: the date is invalid');
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`X.509 time: year ${year} is outside 0000-9999`);
  const pad = (value: number, width = 2): string => String(value).padStart(width, '0');
  const rest =
    pad(date.getUTCMonth() + 1) +
    pad(date.getUTCDate()) +
    pad(date.getUTCHours()) +
    pad(date.getUTCMinutes()) +
    pad(date.getUTCSeconds()) +
    'Z';
  if (year >= 1950 && year <= 2049)
    return derElement(DerTag.UTC_TIME, Buffer.from(pad(year % 100) + rest, 'ascii'));
  return derElement(DerTag.GENERALIZED_TIME, Buffer.from(pad(year, 4) + rest, 'ascii'));
}

/** `[number] EXPLICIT`: the whole inner encoding wrapped in a constructed context-specific tag. */
export function derExplicit(tagNumber: number, inner: Uint8Array): Buffer {
  return derElement(DerTag.CONTEXT_SPECIFIC | DerTag.CONSTRUCTED | contextTagNumber(tagNumber), inner);
}

/**
 * `[number] IMPLICIT`: the content of the underlying type under a context-specific tag
 * (constructed when the underlying type is, e.g. a SEQUENCE).
 */
export function derImplicit(tagNumber: number, content: Uint8Array, constructed = false): Buffer {
  const tag = DerTag.CONTEXT_SPECIFIC | (constructed ? DerTag.CONSTRUCTED : 0) | contextTagNumber(tagNumber);
  return derElement(tag, content);
}

function contextTagNumber(tagNumber: number): number {
  if (!Number.isInteger(tagNumber) || tagNumber < 0 || tagNumber > 30) {
    throw new RangeError(`context tag [${tagNumber}] is not a low tag number (0-30)`);
  }
  return tagNumber;
}

/** One element read from an encoding. `encoded` is the whole element, `content` what follows its length. */
export interface DerElement {
  tag: number;
  content: Buffer;
  encoded: Buffer;
}

/**
 * The element that starts at `offset`. Throws InvalidArgumentError (field `what`) for an encoding
 * that is cut short, uses a form DER forbids, or whose length runs past the input.
 */
export function readDerElement(input: Buffer, offset = 0, what = 'DER'): DerElement {
  const fail = (reason: string): never => {
    throw new InvalidArgumentError(`read ${what} at offset ${offset}: ${reason}`, what);
  };
  if (offset >= input.length) fail('the input ends before the element');
  const tag = input[offset]!;
  if ((tag & 0x1f) === 0x1f) fail(`high tag numbers (tag octet 0x${tag.toString(16)}) are not supported`);
  if (offset + 1 >= input.length) fail('the input ends inside the length');
  const first = input[offset + 1]!;
  let length: number;
  let headerLength: number;
  if (first < 0x80) {
    length = first;
    headerLength = 2;
  } else {
    const count = first & 0x7f;
    if (count === 0) fail('indefinite lengths are not DER');
    if (count > 4) fail(`a ${count}-octet length is larger than any certificate`);
    if (offset + 2 + count > input.length) fail('the input ends inside the length');
    length = 0;
    for (let index = 0; index < count; index++) length = length * 256 + input[offset + 2 + index]!;
    if (length < 0x80 || input[offset + 2] === 0) fail('the length is not in its shortest form');
    headerLength = 2 + count;
  }
  const end = offset + headerLength + length;
  if (end > input.length) fail(`the length ${length} runs past the end of the input`);
  return {
    tag,
    content: input.subarray(offset + headerLength, end),
    encoded: input.subarray(offset, end),
  };
}

/** The elements that make up `content` (of a SEQUENCE, a SET, an EXPLICIT tag), in order. */
export function readDerChildren(content: Buffer, what = 'DER'): DerElement[] {
  const children: DerElement[] = [];
  for (let offset = 0; offset < content.length;) {
    const child = readDerElement(content, offset, what);
    children.push(child);
    offset += child.encoded.length;
  }
  return children;
}

/** The dotted form of an OBJECT IDENTIFIER's content (the reverse of derOid). */
export function readDerOid(content: Buffer, what = 'OID'): string {
  const subidentifiers: bigint[] = [];
  let current = 0n;
  for (let index = 0; index < content.length; index++) {
    const octet = content[index]!;
    if (current === 0n && octet === 0x80) {
      throw new InvalidArgumentError(`read ${what}: a subidentifier has a leading 0x80 octet`, what);
    }
    current = (current << 7n) | BigInt(octet & 0x7f);
    if ((octet & 0x80) === 0) {
      subidentifiers.push(current);
      current = 0n;
    } else if (index === content.length - 1) {
      throw new InvalidArgumentError(`read ${what}: the last subidentifier is cut short`, what);
    }
  }
  if (subidentifiers.length === 0) throw new InvalidArgumentError(`read ${what}: it is empty`, what);
  const [combined, ...rest] = subidentifiers as [bigint, ...bigint[]];
  const first = combined < 80n ? combined / 40n : 2n;
  return [first, combined - first * 40n, ...rest].join('.');
}
