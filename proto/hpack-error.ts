/**
 * A header block that cannot be decoded (RFC 7541: a decoding error). The HPACK state it leaves
 * is unknown, so the connection cannot go on: the caller ends it with COMPRESSION_ERROR.
 */
export class HpackError extends Error {
  override readonly name = 'HpackError';
}
