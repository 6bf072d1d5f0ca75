/**
 * The `-o` formats and the machine-readable ones: `-o json` (the object, or a v1 List of them,
 * indented by four as kubectl's), `-o yaml` (the same, keys sorted and lists not indented under
 * their key, as kubectl writes it), `-o name` (`deployment.apps/web`), `-o jsonpath=TEMPLATE`,
 * `-o custom-columns=SPEC` and their `-file=` forms.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, errorMessage } from '../../proto/errors.js';
import { yaml } from '../lazy-yaml.js';
import { resourceName } from '../apply.js';
import { name, type ObjectJson } from '../../proto/printing/fields.js';
import { parseCustomColumns, parseCustomColumnsFile, type CustomColumn } from './custom-columns.js';
import { parseJsonPathTemplate, type JsonPathTemplate } from './jsonpath.js';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml' | 'name';

export type OutputSpec =
  | { type: OutputFormat }
  | { type: 'jsonpath'; template: JsonPathTemplate }
  | { type: 'custom-columns'; columns: CustomColumn[] };

const FORMATS: OutputFormat[] = ['wide', 'json', 'yaml', 'name'];
const TEMPLATE_FORMATS = [
  'jsonpath=TEMPLATE',
  'jsonpath-file=FILE',
  'custom-columns=SPEC',
  'custom-columns-file=FILE',
];

function unknownFormat(value: string, allowed: string[]): InvalidArgumentError {
  return new InvalidArgumentError(
    `unknown output format "${value}" for -o: use one of ${allowed.join(', ')}`,
    'output',
  );
}

/** The simple formats (table, wide, json, yaml, name). */
export function parseOutputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === '') return 'table';
  if ((FORMATS as string[]).includes(value)) return value as OutputFormat;
  throw unknownFormat(value, [...FORMATS, ...TEMPLATE_FORMATS]);
}

function readTemplateFile(path: string, format: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`-o ${format}=${path}: ${errorMessage(err)}`, 'output', { cause: err });
  }
}

/**
 * Every `-o` value `get` takes. `allowed` narrows it for verbs that print what they wrote
 * (create, apply, patch…: no table).
 */
export function parseOutput(
  value: string | undefined,
  allowed: readonly string[] = [...FORMATS, 'jsonpath', 'custom-columns'],
): OutputSpec {
  if (value === undefined || value === '') return { type: 'table' };
  const eq = value.indexOf('=');
  const format = eq < 0 ? value : value.slice(0, eq);
  const argument = eq < 0 ? undefined : value.slice(eq + 1);
  const listed = [
    ...FORMATS.filter((f) => allowed.includes(f)),
    ...TEMPLATE_FORMATS.filter((f) => allowed.includes(f.replace(/(-file)?=.*$/, ''))),
  ];
  const base = format.replace(/-file$/, '');
  if (!allowed.includes(base)) throw unknownFormat(value, listed);
  if ((FORMATS as string[]).includes(format)) {
    if (argument !== undefined) throw unknownFormat(value, listed);
    return { type: format as OutputFormat };
  }
  if (format === 'jsonpath' || format === 'jsonpath-file') {
    if (!argument)
      throw new InvalidArgumentError(
        `-o ${format}: template format specified but no template given`,
        'output',
      );
    const text = format === 'jsonpath' ? argument : readTemplateFile(argument, format);
    return { type: 'jsonpath', template: parseJsonPathTemplate(text) };
  }
  if (format === 'custom-columns' || format === 'custom-columns-file') {
    if (!argument)
      throw new InvalidArgumentError(
        `-o ${format}: custom-columns format specified but no custom columns given`,
        'output',
      );
    const columns =
      format === 'custom-columns'
        ? parseCustomColumns(argument)
        : parseCustomColumnsFile(readTemplateFile(argument, format), argument);
    return { type: 'custom-columns', columns };
  }
  throw unknownFormat(value, listed);
}

/** A v1 List of objects, as kubectl wraps several. */
export function listOf(objects: ObjectJson[]): ObjectJson {
  return { apiVersion: 'v1', items: objects, kind: 'List', metadata: { resourceVersion: '' } };
}

/** One object as printed for `get KIND NAME -o json|yaml`, or several as a List. */
export function formatObjects(objects: ObjectJson[], format: 'json' | 'yaml', asList: boolean): string {
  return formatValue(asList ? listOf(objects) : objects[0], format);
}

/** Any value as kubectl prints JSON (four-space indent) or YAML. */
export function formatValue(value: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return `${JSON.stringify(value, jsonReplacer, 4)}\n`;
  // YAML 1.1, as kubectl writes it: a string such as "yes", "0644" or a timestamp is quoted, so the
  // output applies back unchanged (manifests are read as 1.1: cli/manifests.ts). Keys sorted and
  // lists at their key's indent, as sigs.k8s.io/yaml writes them.
  return yaml().stringify(value, {
    aliasDuplicateObjects: false,
    lineWidth: 0,
    version: '1.1',
    sortMapEntries: true,
    indentSeq: false,
  });
}

/** BigInt (int64 fields from protobuf) print as numbers, as in Kubernetes JSON. */
function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value;
}

export function formatNames(objects: ObjectJson[], kind: string, group: string): string {
  return objects.map((obj) => `${resourceName(kind, group, name(obj))}\n`).join('');
}
