/**
 * Plain-text tables as kubectl prints them: upper-case headers, left-aligned columns separated by
 * at least three spaces, no trailing padding on the last column, `<none>` for empty cells.
 */
import { kindInfoOf } from '../../proto/kinds.js';
import { age } from '../../proto/printing/age.js';
import type { KindPrinter } from '../../proto/printing/columns.js';
import { name, str, type ObjectJson } from '../../proto/printing/fields.js';

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

export interface TableOptions {
  wide: boolean;
  /** Adds NAMESPACE first (`-A`). */
  withNamespace: boolean;
  /** Prefixes names with `kind.group/` (kubectl does so when several kinds are printed). */
  namePrefix?: string;
}

/** The printer of `kind` (proto/kinds.ts names one for every kind). */
export function printerFor(kind: string): KindPrinter {
  return kindInfoOf(kind).printer;
}

/** Headers and rows for objects of one kind. */
export function tableFor(
  kind: string,
  objects: ObjectJson[],
  options: TableOptions,
  now: number,
): { headers: string[]; rows: string[][] } {
  const printer = printerFor(kind);
  const headers = [
    ...(options.withNamespace ? ['NAMESPACE'] : []),
    ...(printer.nameless ? [] : ['NAME']),
    ...printer.columns,
    ...(printer.nameless ? [] : ['AGE']),
    ...(printer.afterAge?.columns ?? []),
    ...(options.wide ? printer.wideColumns : []),
  ];
  const rows = objects.map((obj) => rowFor(printer, obj, options, now));
  return { headers, rows };
}

export function rowFor(printer: KindPrinter, obj: ObjectJson, options: TableOptions, now: number): string[] {
  return [
    ...(options.withNamespace ? [str(obj, 'metadata', 'namespace') ?? ''] : []),
    ...(printer.nameless ? [] : [`${options.namePrefix ?? ''}${name(obj)}`]),
    ...printer.cells(obj, now),
    ...(printer.nameless ? [] : [age(str(obj, 'metadata', 'creationTimestamp'), now)]),
    ...(printer.afterAge?.cells(obj) ?? []),
    ...(options.wide ? printer.wideCells(obj) : []),
  ];
}
