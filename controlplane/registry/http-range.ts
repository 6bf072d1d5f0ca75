/**
 * Byte ranges, parsed strictly and without I/O:
 *
 * - `Range: bytes=a-b | a- | -n` on a blob GET (RFC 9110 §14). One range only; a header that is
 *   not one well-formed byte range is ignored (the whole blob is sent, as the RFC allows); a
 *   range that starts past the end, or ends before it starts, is unsatisfiable (416).
 * - `Content-Range: a-b` on an upload PATCH or PUT (the distribution spec's form; `bytes a-b/*`
 *   and `bytes a-b/total` are accepted too), inclusive on both ends.
 *
 * Numbers are digits only, at most 15 of them (below 2^53), so arithmetic on them is exact.
 */

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export type RangeRequest =
  { kind: 'whole' } | { kind: 'partial'; range: ByteRange } | { kind: 'unsatisfiable' };

const NUMBER = '(\\d{1,15})';
const RANGE = new RegExp(`^bytes=${NUMBER}?-${NUMBER}?$`, 'i');

/** What a GET's Range header asks of a blob of `size` bytes. */
export function parseRangeHeader(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'whole' };
  const match = RANGE.exec(header.trim());
  if (!match || (match[1] === undefined && match[2] === undefined)) return { kind: 'whole' };
  if (match[1] === undefined) {
    // suffix: the last n bytes
    const n = Number(match[2]);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(0, size - n), end: size - 1 } };
  }
  const start = Number(match[1]);
  const end = match[2] === undefined ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || (match[2] !== undefined && Number(match[2]) < start)) return { kind: 'unsatisfiable' };
  return { kind: 'partial', range: { start, end } };
}

const CONTENT_RANGE = new RegExp(`^(?:bytes )?${NUMBER}-${NUMBER}(?:/(?:\\*|\\d{1,15}))?$`, 'i');

/** An upload chunk's Content-Range; undefined when absent, 'invalid' when malformed or backwards. */
export function parseContentRange(header: string | undefined): ByteRange | undefined | 'invalid' {
  if (header === undefined) return undefined;
  const match = CONTENT_RANGE.exec(header.trim());
  if (!match) return 'invalid';
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) return 'invalid';
  return { start, end };
}

/** A Content-Length header as a byte count; undefined when absent, 'invalid' when not digits. */
export function parseContentLength(header: string | undefined): number | undefined | 'invalid' {
  if (header === undefined) return undefined;
  return /^\d{1,15}$/.test(header) ? Number(header) : 'invalid';
}
