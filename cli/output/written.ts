/**
 * What a verb that writes objects (create, apply, patch, label, annotate, edit) prints, as kubectl
 * does: `deployment.apps/web created` per object (`(dry run)` / `(server dry run)` added), or with
 * `-o` the objects themselves: JSON objects one after another, YAML documents separated by `---`,
 * a JSONPath template run per object, or `kind.group/name`.
 */
import type { KindInfo } from '../../proto/kinds.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { resourceName } from '../apply.js';
import { formatValue, type OutputSpec } from './format.js';
import { executeJsonPath } from './jsonpath.js';

export interface Written {
  info: KindInfo;
  name: string;
  /** created, configured, unchanged, patched, labeled… */
  action: string;
  /** The object as the server returned it (or as it would be sent, for a client dry run). */
  object: ObjectJson;
}

/** The formats these verbs take with -o. */
export const WRITTEN_FORMATS = ['json', 'yaml', 'name', 'jsonpath'] as const;

export function formatWritten(results: Written[], output: OutputSpec | undefined, suffix: string): string {
  if (output === undefined || output.type === 'table' || output.type === 'wide')
    return results
      .map((r) => `${resourceName(r.info.kind, r.info.group, r.name)} ${r.action}${suffix}\n`)
      .join('');
  switch (output.type) {
    case 'name':
      return results.map((r) => `${resourceName(r.info.kind, r.info.group, r.name)}\n`).join('');
    case 'json':
      return results.map((r) => formatValue(r.object, 'json')).join('');
    case 'yaml':
      return results.map((r) => formatValue(r.object, 'yaml')).join('---\n');
    case 'jsonpath':
      return results.map((r) => executeJsonPath(output.template, r.object)).join('');
    default:
      return results
        .map((r) => `${resourceName(r.info.kind, r.info.group, r.name)} ${r.action}${suffix}\n`)
        .join('');
  }
}
