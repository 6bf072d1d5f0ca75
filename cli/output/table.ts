/**
 * Plain-text tables as kubectl prints them: upper-case headers, left-aligned columns separated by
 * at least three spaces (and at least six wide, as kubectl's tabwriter), no trailing padding on
 * the last column, `<none>` for empty cells.
 */
import { kindInfoOf } from '../../proto/kinds.js';
import { age } from '../../proto/printing/age.js';
import type { KindPrinter } from '../../proto/printing/columns.js';
import { name, record, str, type ObjectJson } from '../../proto/printing/fields.js';

const COLUMN_GAP = 3;
/** kubectl's tabwriter minimum cell width, padding included. */
const MIN_CELL = 6;

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
    .map((cell, col) =>
      col === row.length - 1 ? cell : cell.padEnd(Math.max((widths[col] ?? 0) + COLUMN_GAP, MIN_CELL)),
    )
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
  /** `-L KEY`: a column per label key, headed by its last path segment in capitals. */
  labelColumns?: string[];
  /** `--show-labels`: every label, as `k=v,…`, in a last LABELS column. */
  showLabels?: boolean;
}

/** `-L app.kubernetes.io/name` → `NAME`, as kubectl heads label columns. */
export function labelColumnHeader(key: string): string {
  return (key.split('/').pop() ?? key).toUpperCase();
}

/** Labels as kubectl's labels.FormatLabels prints them: sorted `k=v`, or `<none>`. */
export function formatLabels(labels: Record<string, unknown>): string {
  const keys = Object.keys(labels).sort();
  return keys.length ? keys.map((k) => `${k}=${String(labels[k])}`).join(',') : '<none>';
}

function labelCells(obj: ObjectJson, options: TableOptions): string[] {
  const labels = record(obj, 'metadata', 'labels');
  return [
    ...(options.labelColumns ?? []).map((key) => (Object.hasOwn(labels, key) ? String(labels[key]) : '')),
    ...(options.showLabels ? [formatLabels(labels)] : []),
  ];
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
    ...(options.labelColumns ?? []).map(labelColumnHeader),
    ...(options.showLabels ? ['LABELS'] : []),
  ];
  const rows = objects.map((obj) => rowFor(printer, obj, options, now));
  return { headers, rows };
}

export function rowFor(printer: KindPrinter, obj: ObjectJson, options: TableOptions, now: number): string[] {
  return [
    ...(options.withNamespace ? [str(obj, 'metadata', 'namespace') ?? ''] : []),
    ...(printer.nameless ? [] : [`${options.namePrefix ?? ''}${name(obj)}`]),
    ...printer.cells(obj, now, options.wide),
    ...(printer.nameless ? [] : [age(str(obj, 'metadata', 'creationTimestamp'), now)]),
    ...(printer.afterAge?.cells(obj) ?? []),
    ...(options.wide ? printer.wideCells(obj) : []),
    ...labelCells(obj, options),
  ];
}
