/**
 * `skiff label` and `skiff annotate`: set (`KEY=VALUE`) or remove (`KEY-`) labels or annotations
 * of objects named (`KIND NAME…`, `KIND/NAME…`) or selected (`-l`, `--all`), as kubectl does: an
 * existing key keeps its value unless --overwrite. Each object is changed with its live
 * resourceVersion (update-object.ts). Prints `pod/web labeled` (or `unlabeled`, `not labeled`),
 * `pod/web annotated`.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../proto/errors.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { parseOutput } from '../output/format.js';
import { formatWritten, WRITTEN_FORMATS, type Written } from '../output/written.js';
import { dryRunOf, dryRunSuffix, namespaceFor, out, registerDryRun, withClient, write } from './context.js';
import { parseResourceArgs } from './resource-args.js';
import { updateObject } from './update-object.js';

type Field = 'labels' | 'annotations';

export interface MetadataChanges {
  set: [string, string][];
  remove: string[];
}

const NAME_PART = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A label or annotation key: `[prefix/]name` (Kubernetes' qualified name). */
export function checkKey(key: string, what: string): void {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const problems: string[] = [];
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)))
    problems.push('its prefix must be a DNS subdomain (lower-case letters, digits, - and .)');
  if (name.length === 0 || name.length > 63 || !NAME_PART.test(name))
    problems.push(
      "its name must be at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    );
  if (problems.length)
    throw new InvalidArgumentError(`invalid ${what} key "${key}": ${problems.join('; ')}`, what);
}

export function checkLabelValue(key: string, value: string): void {
  if (value !== '' && (value.length > 63 || !NAME_PART.test(value)))
    throw new InvalidArgumentError(
      `invalid label value "${value}" for ${key}: at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
      'labels',
    );
}

/** Splits kubectl-style arguments into the objects and the changes (`k=v`, `k-`). */
export function splitArguments(
  args: string[],
  field: Field,
): { resources: string[]; changes: MetadataChanges } {
  const resources: string[] = [];
  const changes: MetadataChanges = { set: [], remove: [] };
  const what = field === 'labels' ? 'label' : 'annotation';
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq >= 0) {
      const key = arg.slice(0, eq);
      const value = arg.slice(eq + 1);
      checkKey(key, what);
      if (field === 'labels') checkLabelValue(key, value);
      if (changes.set.some(([k]) => k === key) || changes.remove.includes(key))
        throw new InvalidArgumentError(`${key} is given more than once`, field);
      changes.set.push([key, value]);
    } else if (arg.endsWith('-') && resources.length > 0) {
      const key = arg.slice(0, -1);
      checkKey(key, what);
      if (changes.set.some(([k]) => k === key))
        throw new InvalidArgumentError(`${key} is both set and removed`, field);
      changes.remove.push(key);
    } else {
      if (changes.set.length || changes.remove.length)
        throw new InvalidArgumentError(
          `${arg}: objects come before the ${field} (e.g. \`skiff ${field === 'labels' ? 'label' : 'annotate'} deploy web app=web\`)`,
          field,
        );
      resources.push(arg);
    }
  }
  return { resources, changes };
}

/** The object with the changes made; throws for an existing key without overwrite. */
export function changeMetadata(
  obj: ObjectJson,
  field: Field,
  changes: MetadataChanges,
  overwrite: boolean,
  warn: (line: string) => void,
): ObjectJson {
  const metadata = (obj.metadata ?? {}) as Record<string, unknown>;
  const current = { ...((metadata[field] as Record<string, string> | undefined) ?? {}) };
  for (const [key, value] of changes.set) {
    if (Object.hasOwn(current, key) && current[key] !== value && !overwrite) {
      throw new InvalidArgumentError(
        `'${key}' already has a value (${current[key]}), and --overwrite is false`,
        'overwrite',
      );
    }
    current[key] = value;
  }
  for (const key of changes.remove) {
    if (!Object.hasOwn(current, key))
      warn(`${field === 'labels' ? 'label' : 'annotation'} "${key}" not found.`);
    delete current[key];
  }
  return { ...obj, metadata: { ...metadata, [field]: current } };
}

/** kubectl's verdict for a label change: labeled, unlabeled (only removals) or not labeled. */
export function labelVerdict(before: Record<string, string>, after: Record<string, string>): string {
  const same = JSON.stringify(Object.entries(before).sort()) === JSON.stringify(Object.entries(after).sort());
  if (same) return 'not labeled';
  return Object.keys(after).length < Object.keys(before).length ? 'unlabeled' : 'labeled';
}

interface Flags {
  namespace?: string;
  allNamespaces?: boolean;
  selector?: string;
  all?: boolean;
  overwrite?: boolean;
  list?: boolean;
  output?: string;
  dryRun?: string | boolean;
}

function register(program: Command, verb: 'label' | 'annotate', field: Field): void {
  const what = field === 'labels' ? 'label' : 'annotation';
  const command = program
    .command(verb)
    .description(`set (KEY=VALUE) or remove (KEY-) ${field} of objects`)
    .argument(
      '<args...>',
      `KIND NAME… or KIND/NAME… (or KIND with -l/--all), then KEY=VALUE or KEY- for each ${what}`,
    )
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-A, --all-namespaces', 'with -l or --all: in every namespace')
    .option('-l, --selector <selector>', 'every object of KIND matching this label selector')
    .option('--all', 'every object of KIND in the namespace')
    .option('--overwrite', `replace the value of a ${what} that is already set`)
    .option('-o, --output <format>', 'print the objects: json, yaml, name or jsonpath=TEMPLATE');
  if (verb === 'label') command.option('--list', 'print the labels of the objects instead');
  registerDryRun(
    command,
    'client: compute the change from the live object and write nothing; server: the server checks the update and stores nothing',
  ).action(async (args: string[], flags: Flags, cmd: Command) => {
    const dryRun = dryRunOf(flags.dryRun);
    const output = flags.output === undefined ? undefined : parseOutput(flags.output, WRITTEN_FORMATS);
    const { resources, changes } = splitArguments(args, field);
    if (!flags.list && changes.set.length === 0 && changes.remove.length === 0)
      throw new InvalidArgumentError(
        `${verb}: at least one ${what} update is required (KEY=VALUE or KEY-)`,
        field,
      );
    const { groups, named } = parseResourceArgs(resources, verb);
    if (groups.length === 0)
      throw new InvalidArgumentError(
        `${verb}: say which objects: KIND NAME…, KIND/NAME…, or KIND -l/--all`,
        'kind',
      );
    if (named && (flags.selector || flags.all))
      throw new InvalidArgumentError(`${verb}: give names or -l/--all, not both`, 'selector');
    if (!named && !flags.selector && !flags.all)
      throw new InvalidArgumentError(
        `${verb} ${resources.join(' ')}: name the objects, or select them with -l or --all`,
        'names',
      );
    await withClient(cmd, async (api) => {
      const targets: { info: Written['info']; namespace: string; name: string }[] = [];
      for (const { info, names } of groups) {
        if (named) {
          targets.push(...names.map((name) => ({ info, namespace: namespaceFor(info, flags), name })));
          continue;
        }
        const listed = await api.list(info.kind, {
          namespace: namespaceFor(info, flags),
          labelSelector: flags.selector,
        });
        targets.push(
          ...listed.items.map((o) => ({
            info,
            namespace: o.metadata.namespace ?? '',
            name: o.metadata.name ?? '',
          })),
        );
      }
      if (targets.length === 0) {
        out('No resources found');
        return;
      }
      if (flags.list) {
        for (const t of targets) {
          const obj = await api.get(t.info.kind, t.namespace, t.name);
          const labels = obj.metadata.labels ?? {};
          const lines = Object.keys(labels)
            .sort()
            .map((k) => `${k}=${labels[k]}`);
          if (targets.length > 1)
            lines.unshift(
              `Listing labels for ${t.info.kind}.${t.info.apiVersion.replace('/', '.')} ${t.namespace ? `${t.namespace}/` : ''}${t.name}:`,
            );
          if (lines.length) out(lines.join('\n'));
        }
        return;
      }
      const results: Written[] = [];
      for (const t of targets) {
        const result = await updateObject(
          api,
          t.info,
          t.namespace,
          t.name,
          (live) =>
            changeMetadata(live, field, changes, !!flags.overwrite, (line) =>
              process.stderr.write(`${line}\n`),
            ),
          dryRun,
          verb,
        );
        const action =
          field === 'labels'
            ? labelVerdict(result.before.metadata.labels ?? {}, result.after.metadata.labels ?? {})
            : 'annotated';
        results.push({ info: t.info, name: t.name, action, object: result.after as unknown as ObjectJson });
      }
      const text = formatWritten(results, output, dryRunSuffix(dryRun));
      if (output?.type === 'jsonpath') write(text);
      else if (text) out(text);
    });
  });
}

export function registerLabel(program: Command): void {
  register(program, 'label', 'labels');
}

export function registerAnnotate(program: Command): void {
  register(program, 'annotate', 'annotations');
}
