/**
 * Prints objects in any `-o` format, as kubectl does: tables per kind (with `-L` and
 * `--show-labels` columns), one custom-columns table, `-o name` lines, or the object (one named)
 * or a v1 List (several) as JSON, YAML or through a JSONPath template. `--sort-by` orders each
 * kind's objects by a JSONPath field. Pure: returns the text.
 */
import { InvalidArgumentError } from '../../proto/errors.js';
import type { KindInfo } from '../../proto/kinds.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { resourceName } from '../apply.js';
import { customColumnsTable } from './custom-columns.js';
import { formatNames, formatObjects, listOf, type OutputSpec } from './format.js';
import { evaluatePath, executeJsonPath, parseJsonPath, type JsonPath } from './jsonpath.js';
import { renderTable, tableFor, type TableOptions } from './table.js';

export interface PrintGroup {
  info: KindInfo;
  objects: ObjectJson[];
}

export interface PrintOptions {
  output: OutputSpec;
  /** One object was asked for by name: JSON, YAML and JSONPath print it bare, not in a List. */
  single: boolean;
  withNamespace?: boolean;
  showLabels?: boolean;
  labelColumns?: string[];
  now?: number;
}

/** The text to print (possibly empty: the caller says "No resources found"). */
export function printGroups(groups: PrintGroup[], options: PrintOptions): string {
  const output = options.output;
  const all = groups.flatMap((g) => g.objects);
  switch (output.type) {
    case 'json':
    case 'yaml':
      if (all.length === 0 && options.single) return '';
      return formatObjects(all, output.type, !(options.single && all.length === 1));
    case 'jsonpath':
      if (all.length === 0 && options.single) return '';
      return executeJsonPath(output.template, options.single && all.length === 1 ? all[0] : listOf(all));
    case 'name':
      return groups.map((g) => formatNames(g.objects, g.info.kind, g.info.group)).join('');
    case 'custom-columns': {
      if (all.length === 0) return '';
      const { headers, rows } = customColumnsTable(output.columns, all);
      return renderTable(headers, rows);
    }
    default: {
      const kinds = groups.filter((g) => g.objects.length > 0);
      const tables = kinds.map(({ info, objects }) => {
        const tableOptions: TableOptions = {
          wide: output.type === 'wide',
          withNamespace: !!options.withNamespace && info.namespaced,
          namePrefix: groups.length > 1 ? resourceName(info.kind, info.group, '') : undefined,
          labelColumns: options.labelColumns,
          showLabels: options.showLabels,
        };
        const { headers, rows } = tableFor(info.kind, objects, tableOptions, options.now ?? Date.now());
        return renderTable(headers, rows);
      });
      return tables.join('\n');
    }
  }
}

/** `--sort-by .metadata.name` or `{.metadata.name}`: parsed once, applied per kind. */
export function parseSortBy(value: string): JsonPath {
  return parseJsonPath(value, '--sort-by');
}

/**
 * The objects ordered by the field `path` selects: numbers by value, strings in natural order
 * (`web-2` before `web-10`), objects without the field first, as kubectl sorts. A field no
 * object has is an error.
 */
export function sortObjects(objects: ObjectJson[], path: JsonPath, source: string): ObjectJson[] {
  const keyed = objects.map((obj, index) => ({ obj, index, key: evaluatePath(path, obj)[0] }));
  if (objects.length > 1 && keyed.every((k) => k.key === undefined)) {
    throw new InvalidArgumentError(
      `--sort-by ${source}: couldn't find any field with path "${source}" in the list of objects`,
      'sortBy',
    );
  }
  keyed.sort((a, b) => compareValues(a.key, b.key) || a.index - b.index);
  return keyed.map((k) => k.obj);
}

function compareValues(a: unknown, b: unknown): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  const sa = typeof a === 'string' ? a : JSON.stringify(a);
  const sb = typeof b === 'string' ? b : JSON.stringify(b);
  return naturalCompare(sa, sb);
}

/** Natural order: runs of digits compare as numbers, the rest byte by byte. */
export function naturalCompare(a: string, b: string): number {
  const chunks = (s: string) => s.match(/\d+|\D+/g) ?? [];
  const ca = chunks(a);
  const cb = chunks(b);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i]!;
    const y = cb[i]!;
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const nx = BigInt(x);
      const ny = BigInt(y);
      if (nx !== ny) return nx < ny ? -1 : 1;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return ca.length - cb.length;
}
