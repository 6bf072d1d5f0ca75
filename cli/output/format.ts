/**
 * Machine-readable output for `get`: `-o json` (the object, or a v1 List of them), `-o yaml`
 * (the same shape), `-o name` (`deployment.apps/web`).
 */
import { stringify as stringifyYaml } from 'yaml';
import { InvalidArgumentError } from '../../proto/errors.js';
import { resourceName } from '../apply.js';
import { name, type ObjectJson } from '../../proto/printing/fields.js';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml' | 'name';

const FORMATS: OutputFormat[] = ['wide', 'json', 'yaml', 'name'];

export function parseOutputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === '') return 'table';
  if ((FORMATS as string[]).includes(value)) return value as OutputFormat;
  throw new InvalidArgumentError(
    `unknown output format "${value}" for -o: use one of ${FORMATS.join(', ')}`,
    'output',
  );
}

/** One object as printed for `get KIND NAME -o json|yaml`, or several as a List. */
export function formatObjects(objects: ObjectJson[], format: 'json' | 'yaml', asList: boolean): string {
  const value = asList
    ? { apiVersion: 'v1', kind: 'List', items: objects, metadata: { resourceVersion: '' } }
    : objects[0];
  if (format === 'json') return `${JSON.stringify(value, jsonReplacer, 2)}\n`;
  // YAML 1.1, as kubectl writes it: a string such as "yes", "0644" or a timestamp is quoted, so the
  // output applies back unchanged (manifests are read as 1.1: cli/manifests.ts).
  return stringifyYaml(value, { aliasDuplicateObjects: false, lineWidth: 0, version: '1.1' });
}

/** BigInt (int64 fields from protobuf) print as numbers, as in Kubernetes JSON. */
function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value;
}

export function formatNames(objects: ObjectJson[], kind: string, group: string): string {
  return objects.map((obj) => `${resourceName(kind, group, name(obj))}\n`).join('');
}
