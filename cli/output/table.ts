/**
 * Plain-text tables as kubectl prints them: upper-case headers, left-aligned columns separated by
 * at least three spaces, no trailing padding on the last column, `<none>` for empty cells.
 */
const COLUMN_GAP = 3;

export function renderTable(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  return all.map((row) => renderRow(row, widths)).join('\n') + '\n';
}

/**
 * One row padded to fixed widths, for `get -w`, which prints rows as they arrive and so cannot
 * measure them all first: widths come from the header and the first rows, and grow no further.
 */
export function renderRow(row: string[], widths: number[]): string {
  return row
    .map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd((widths[col] ?? 0) + COLUMN_GAP)))
    .join('')
    .trimEnd();
}

export function columnWidths(headers: string[], rows: string[][]): number[] {
  return headers.map((_, col) => Math.max(...[headers, ...rows].map((row) => (row[col] ?? '').length)));
}
