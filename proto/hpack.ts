/**
 * HPACK (RFC 7541), as an HTTP/2 client needs it: an encoder for requests that sends every field
 * as a literal without indexing (no dynamic table to keep in step with the server, no Huffman:
 * requests are a few short fields once per call), and a complete decoder for what a server
 * sends: the static and dynamic tables, table size updates, every literal form, Huffman strings.
 *
 * Everything a server controls is bounded: integers (at most 2^31 - 1), string lengths (by the
 * block), the dynamic table (by the size we advertised), and the decoded header list (by the size
 * we advertised; past it the block is still decoded, so the table stays in step, but its fields are
 * dropped and `oversized` is set).
 */
import { HpackError } from './hpack-error.js';
import { decodeHuffman } from './hpack-huffman.js';

export { HpackError } from './hpack-error.js';

/** Header fields in the order received; a name may repeat. Names are lowercase octets. */
export type HeaderField = readonly [name: string, value: string];

/** RFC 7541 Appendix A. Index 1 is the first entry. */
// prettier-ignore
const STATIC_TABLE: readonly HeaderField[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'],
  [':path', '/index.html'], [':scheme', 'http'], [':scheme', 'https'], [':status', '200'],
  [':status', '204'], [':status', '206'], [':status', '304'], [':status', '400'],
  [':status', '404'], [':status', '500'], ['accept-charset', ''], ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''], ['accept-ranges', ''], ['accept', ''], ['access-control-allow-origin', ''],
  ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''],
  ['date', ''], ['etag', ''], ['expect', ''], ['expires', ''],
  ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''],
  ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''],
  ['retry-after', ''], ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''],
  ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** RFC 7541 4.1: an entry's size is its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32;
/** Integers past this are not sizes or indexes any peer needs: a decoding error, not a wrap. */
const MAX_INTEGER = 2 ** 31 - 1;

/** The octets of a header block (one HEADERS frame and its CONTINUATIONs) for `fields`. */
export function encodeHeaderBlock(fields: readonly HeaderField[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    parts.push(Buffer.of(0x00)); // literal without indexing, new name (6.2.2)
    pushString(parts, name);
    pushString(parts, value);
  }
  return Buffer.concat(parts);
}

function pushString(parts: Buffer[], text: string): void {
  const octets = Buffer.from(text, 'latin1');
  parts.push(encodeInteger(octets.length, 7, 0x00), octets);
}

/** RFC 7541 5.1: `value` with an N-bit prefix, the prefix's other bits set to `flags`. */
export function encodeInteger(value: number, prefixBits: number, flags: number): Buffer {
  const max = 2 ** prefixBits - 1;
  if (value < max) return Buffer.of(flags | value);
  const octets = [flags | max];
  let rest = value - max;
  while (rest >= 128) {
    octets.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  octets.push(rest);
  return Buffer.from(octets);
}

/** A decoded header block. */
export interface DecodedHeaderBlock {
  fields: HeaderField[];
  /** The list's size (RFC 9113 6.5.2: octets of names and values, plus 32 per field). */
  listSize: number;
  /** The list was larger than the limit: `fields` holds only those that fit. */
  oversized: boolean;
}

/** The decoding side of one connection: its dynamic table lives as long as the connection. */
export class HpackDecoder {
  /** Newest entry last; HPACK index 62 is the newest. */
  private readonly dynamic: HeaderField[] = [];
  private dynamicSize = 0;
  private maxDynamicSize: number;

  constructor(
    /** SETTINGS_HEADER_TABLE_SIZE we advertised: the most a size update may ask for. */
    private readonly tableSizeLimit: number,
    /** SETTINGS_MAX_HEADER_LIST_SIZE we advertised. */
    private readonly maxHeaderListSize: number,
  ) {
    this.maxDynamicSize = tableSizeLimit;
  }

  /** Decodes one whole header block. Throws HpackError: the connection must end (COMPRESSION_ERROR). */
  decode(block: Uint8Array): DecodedHeaderBlock {
    const fields: HeaderField[] = [];
    let listSize = 0;
    let oversized = false;
    const reader = new BlockReader(block);
    let fieldSeen = false;
    while (!reader.done()) {
      const first = reader.peek();
      let field: HeaderField;
      if (first & 0x80) {
        const index = reader.integer(7);
        if (index === 0) throw new HpackError('indexed field with index 0');
        field = this.entry(index);
      } else if (first & 0x40) {
        field = this.literal(reader, 6);
        this.insert(field);
      } else if (first & 0x20) {
        // 4.2: a size update is only allowed at the start of a block
        if (fieldSeen) throw new HpackError('a dynamic table size update after a header field');
        const size = reader.integer(5);
        if (size > this.tableSizeLimit)
          throw new HpackError(
            `a dynamic table size update to ${size}, above the ${this.tableSizeLimit} allowed`,
          );
        this.maxDynamicSize = size;
        this.evictTo(size);
        continue;
      } else {
        // without indexing (0000) or never indexed (0001): the same to a decoder
        field = this.literal(reader, 4);
      }
      fieldSeen = true;
      listSize += field[0].length + field[1].length + ENTRY_OVERHEAD;
      if (listSize > this.maxHeaderListSize) oversized = true;
      if (!oversized) fields.push(field);
    }
    return { fields, listSize, oversized };
  }

  private literal(reader: BlockReader, prefixBits: number): HeaderField {
    const index = reader.integer(prefixBits);
    const name = index === 0 ? reader.string() : this.entry(index)[0];
    return [name, reader.string()];
  }

  private entry(index: number): HeaderField {
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const fromNewest = index - STATIC_TABLE.length - 1;
    const entry = this.dynamic[this.dynamic.length - 1 - fromNewest];
    if (entry === undefined) throw new HpackError(`index ${index} is past the tables`);
    return entry;
  }

  private insert(field: HeaderField): void {
    const size = field[0].length + field[1].length + ENTRY_OVERHEAD;
    // 4.4: an entry larger than the table empties it and is not added
    this.evictTo(this.maxDynamicSize - size);
    if (size <= this.maxDynamicSize) {
      this.dynamic.push(field);
      this.dynamicSize += size;
    }
  }

  private evictTo(size: number): void {
    let evicted = 0;
    while (this.dynamicSize > Math.max(0, size) && evicted < this.dynamic.length) {
      const [name, value] = this.dynamic[evicted++]!;
      this.dynamicSize -= name.length + value.length + ENTRY_OVERHEAD;
    }
    if (evicted > 0) this.dynamic.splice(0, evicted);
  }

  /** The dynamic table, newest first, and its size: for tests (RFC 7541 Appendix C lists them). */
  dynamicTable(): { entries: HeaderField[]; size: number } {
    return { entries: [...this.dynamic].reverse(), size: this.dynamicSize };
  }
}

/** Reads integers and strings from a block, each bounded by what is left of it. */
class BlockReader {
  private at = 0;

  constructor(private readonly block: Uint8Array) {}

  done(): boolean {
    return this.at >= this.block.length;
  }

  peek(): number {
    return this.block[this.at]!;
  }

  private next(): number {
    if (this.at >= this.block.length) throw new HpackError('the header block ends inside a field');
    return this.block[this.at++]!;
  }

  /** RFC 7541 5.1, at most MAX_INTEGER. */
  integer(prefixBits: number): number {
    const max = 2 ** prefixBits - 1;
    let value = this.next() & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      const octet = this.next();
      value += (octet & 0x7f) * 2 ** shift;
      shift += 7;
      if (value > MAX_INTEGER) throw new HpackError('an integer larger than 2^31 - 1');
      if ((octet & 0x80) === 0) return value;
      // a run of 0x80 octets adds nothing while it goes on: bound it by the shift too
      if (shift > 28) throw new HpackError('an integer encoded in more than 5 octets');
    }
  }

  /** RFC 7541 5.2: octets as a latin1 string (one char per octet, as HTTP field values are). */
  string(): string {
    const huffman = (this.peek() & 0x80) !== 0;
    const length = this.integer(7);
    if (length > this.block.length - this.at) throw new HpackError('a string longer than the header block');
    const octets = this.block.subarray(this.at, this.at + length);
    this.at += length;
    const bytes = huffman ? decodeHuffman(octets) : octets;
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  }
}
