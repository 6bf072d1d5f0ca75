/**
 * Orders strings by their UTF-16 code units, as `<` does: for ids, timestamps and names that are
 * ASCII. Not `localeCompare`, whose first call loads ICU's collation data (~3 MB that a node agent,
 * sorting records, would keep for good) and which orders by language rules nobody here wants.
 */
export function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
