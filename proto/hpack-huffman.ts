/**
 * HPACK's Huffman code (RFC 7541 Appendix B), decoding only: skiff's requests are sent as plain
 * literals, but servers (nghttp2 under Node and grpc-js among them) Huffman-code what they send.
 *
 * The RFC's code is canonical (within one length, codes count up in symbol order; each length
 * starts where the shorter ones ended, shifted), so its 257 code lengths define it whole: the
 * table below is the "len" column of Appendix B, and the codes are derived from it when first
 * needed. hpack.test.ts checks the derived codes against codes the RFC lists.
 */
import { HpackError } from './hpack-error.js';

/** Code length in bits of symbols 0..255 and of EOS (256), RFC 7541 Appendix B. */
// prettier-ignore
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;
const LONGEST_CODE = 30;

/** The canonical code as a decoder reads it: per length, the first code and where its symbols start. */
interface CanonicalCode {
  /** Symbols ordered by (length, symbol). */
  symbols: Uint16Array;
  /** Codes of each length. */
  count: Uint16Array;
  /** The smallest code of each length. */
  firstCode: Uint32Array;
  /** Index into `symbols` of the first symbol of each length. */
  firstIndex: Uint16Array;
}

let canonical: CanonicalCode | undefined;

function canonicalCode(): CanonicalCode {
  if (canonical !== undefined) return canonical;
  const count = new Uint16Array(LONGEST_CODE + 1);
  for (const length of CODE_LENGTHS) count[length]!++;
  const symbols = Uint16Array.from(CODE_LENGTHS.keys()).sort(
    (a, b) => CODE_LENGTHS[a]! - CODE_LENGTHS[b]! || a - b,
  );
  const firstCode = new Uint32Array(LONGEST_CODE + 1);
  const firstIndex = new Uint16Array(LONGEST_CODE + 1);
  let code = 0;
  let index = 0;
  for (let length = 1; length <= LONGEST_CODE; length++) {
    firstCode[length] = code;
    firstIndex[length] = index;
    code = (code + count[length]!) * 2;
    index += count[length]!;
  }
  canonical = { symbols, count, firstCode, firstIndex };
  return canonical;
}

/** The code of `symbol` (0..256) and its length: for tests that compare with the RFC's table. */
export function huffmanCodeOf(symbol: number): { code: number; bits: number } {
  const { symbols, firstCode, firstIndex } = canonicalCode();
  const bits = CODE_LENGTHS[symbol]!;
  const at = symbols.indexOf(symbol);
  return { code: firstCode[bits]! + (at - firstIndex[bits]!), bits };
}

/**
 * The octets a Huffman-coded string literal stands for. Errors (COMPRESSION_ERROR, RFC 7541 5.2):
 * EOS inside the string, padding longer than 7 bits, padding that is not the most significant
 * bits of EOS (all ones).
 */
export function decodeHuffman(input: Uint8Array): Buffer {
  const { symbols, count, firstCode, firstIndex } = canonicalCode();
  // the shortest code is 5 bits: at most 8/5 octets out per octet in
  const out = Buffer.allocUnsafe(Math.ceil((input.length * 8) / 5));
  let written = 0;
  let code = 0;
  let bits = 0;
  for (const octet of input) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((octet >> bit) & 1);
      bits++;
      const offset = code - firstCode[bits]!;
      if (offset >= 0 && offset < count[bits]!) {
        const symbol = symbols[firstIndex[bits]! + offset]!;
        if (symbol === EOS) throw new HpackError('a Huffman-coded string contains EOS');
        out[written++] = symbol;
        code = 0;
        bits = 0;
      } else if (bits === LONGEST_CODE) {
        // unreachable with the RFC's complete code; kept so a wrong table cannot loop on
        throw new HpackError('a Huffman-coded string holds no valid code');
      }
    }
  }
  if (bits > 7) throw new HpackError('a Huffman-coded string ends with more than 7 bits of padding');
  if (code !== 2 ** bits - 1) throw new HpackError('a Huffman-coded string is padded with other than EOS');
  return out.subarray(0, written);
}
