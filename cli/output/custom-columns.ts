/**
 * `-o custom-columns=HEADER:PATH,…` and `-o custom-columns-file=FILE`, as kubectl prints them: one
 * row per object, each cell the values PATH (kubectl's JSONPath, braces optional) selects, joined
 * by commas and printed as Go's %v does (`map[a:b]`, `[x y]`), `<none>` when there are none.
 */
import { InvalidArgumentError } from '../../proto/errors.js';
import { evaluatePath, goNumber, parseJsonPath, type JsonPath } from './jsonpath.js';

export interface CustomColumn {
  header: string;
  path: JsonPath;
}

/** Splits on commas outside brackets, parentheses and quotes (a path may hold `[0,1]`). */
function splitTopLevel(spec: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '(' || c === '{') depth++;
    else if (c === ']' || c === ')' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(spec.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(spec.slice(start));
  return parts;
}

/** `NAME:.metadata.name,IMAGE:.spec.containers[*].image` */
export function parseCustomColumns(spec: string): CustomColumn[] {
  if (spec.trim() === '')
    throw new InvalidArgumentError('custom-columns format specified but no custom columns given', 'output');
  return splitTopLevel(spec).map((part) => {
    const colon = part.indexOf(':');
    if (colon <= 0 || colon === part.length - 1) {
      throw new InvalidArgumentError(
        `unexpected custom-columns spec: ${part}, expected <header>:<json-path-expr>`,
        'output',
      );
    }
    return { header: part.slice(0, colon), path: parseJsonPath(part.slice(colon + 1), 'custom-columns') };
  });
}

/** A custom-columns file: the headers on the first line, the paths on the second, by whitespace. */
export function parseCustomColumnsFile(text: string, source: string): CustomColumn[] {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  if (lines.length !== 2) {
    throw new InvalidArgumentError(
      `custom-columns-file ${source}: expected two lines (headers, then paths), found ${lines.length}`,
      'output',
    );
  }
  const headers = lines[0]!.trim().split(/\s+/);
  const paths = lines[1]!.trim().split(/\s+/);
  if (headers.length !== paths.length) {
    throw new InvalidArgumentError(
      `custom-columns-file ${source}: ${headers.length} headers but ${paths.length} paths`,
      'output',
    );
  }
  return headers.map((header, i) => ({ header, path: parseJsonPath(paths[i]!, 'custom-columns') }));
}

/** A value as Go's fmt prints it with %v: kubectl formats custom-columns cells so. */
export function goValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '<nil>';
  if (typeof value === 'number') return goNumber(value);
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(goValue).join(' ')}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  return `map[${entries.map(([k, v]) => `${k}:${goValue(v)}`).join(' ')}]`;
}

export function customColumnsTable(
  columns: CustomColumn[],
  objects: unknown[],
): { headers: string[]; rows: string[][] } {
  return {
    headers: columns.map((c) => c.header),
    rows: objects.map((obj) =>
      columns.map((c) => {
        const values = evaluatePath(c.path, obj);
        return values.length === 0 ? '<none>' : values.map(goValue).join(',');
      }),
    ),
  };
}
