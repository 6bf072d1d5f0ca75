/**
 * `skiff get KIND[,KIND…] [NAME…]` or `skiff get KIND/NAME…` with kubectl's flags: -n, -A, -l,
 * --field-selector, -o wide|json|yaml|name|jsonpath=…|custom-columns=…, --sort-by, --show-labels,
 * -L, -w (print rows as objects change, until Ctrl-C).
 */
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import type { KindInfo } from '../../proto/kinds.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { customColumnsTable } from '../output/custom-columns.js';
import { formatNames, formatObjects, parseOutput, type OutputSpec } from '../output/format.js';
import { executeJsonPath } from '../output/jsonpath.js';
import { parseSortBy, printGroups, sortObjects, type PrintGroup } from '../output/printer.js';
import { columnWidths, printerFor, renderRow, rowFor, tableFor, type TableOptions } from '../output/table.js';
import { collect, DEFAULT_NAMESPACE, namespaceFor, notFoundLine, out, withClient, write } from './context.js';
import { parseResourceArgs, type ResourceGroup } from './resource-args.js';

export interface GetOptions {
  namespace?: string;
  allNamespaces?: boolean;
  selector?: string;
  fieldSelector?: string;
  output?: string;
  watch?: boolean;
  sortBy?: string;
  showLabels?: boolean;
  labelColumns?: string[];
}

/** `not found` errors are reported and skipped, as kubectl does, so the rest still prints. */
async function fetchObjects(
  api: ApiClient,
  group: ResourceGroup,
  opts: GetOptions,
  missing: string[],
): Promise<KubeObject[]> {
  const { info, names } = group;
  const namespace = namespaceFor(info, opts);
  if (names.length === 0) {
    const result = await api.list(info.kind, {
      namespace,
      labelSelector: opts.selector,
      fieldSelector: opts.fieldSelector,
    });
    return result.items;
  }
  if (opts.allNamespaces)
    throw new InvalidArgumentError(
      'get: a name cannot be combined with -A: name the namespace with -n',
      'allNamespaces',
    );
  if (opts.selector) throw new InvalidArgumentError('get: give names or -l, not both', 'selector');
  const found: KubeObject[] = [];
  for (const name of names) {
    try {
      found.push(await api.get(info.kind, namespace, name));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      missing.push(notFoundLine(info, name, namespace));
    }
  }
  return found;
}

/** `get`'s arguments: `deploy,cm [NAME…]` or `deploy/web cm/cfg`. */
export function resolveGetArgs(args: string[]): ResourceGroup[] {
  if (args.length === 0) {
    throw new InvalidArgumentError(
      'get: say what to get: KIND [NAME…] or KIND/NAME… (see `skiff api-resources` for the kinds)',
      'kind',
    );
  }
  return parseResourceArgs(args, 'get').groups;
}

export async function runGet(api: ApiClient, args: string[], opts: GetOptions): Promise<number> {
  const output = parseOutput(opts.output);
  const sortBy = opts.sortBy ? parseSortBy(opts.sortBy) : undefined;
  const groups = resolveGetArgs(args);
  const named = groups.some((g) => g.names.length > 0);
  if (opts.watch) {
    if (groups.length !== 1) throw new InvalidArgumentError('get -w: watch one kind at a time', 'watch');
    return watchKind(api, groups[0]!.info, groups[0]!.names, opts, output);
  }
  const missing: string[] = [];
  const perKind: PrintGroup[] = [];
  for (const group of groups) {
    let objects = (await fetchObjects(api, group, opts, missing)) as unknown as ObjectJson[];
    if (sortBy) objects = sortObjects(objects, sortBy, opts.sortBy!);
    perKind.push({ info: group.info, objects });
  }
  const total = perKind.reduce((n, g) => n + g.objects.length, 0);
  const single = named && groups.length === 1 && groups[0]!.names.length === 1;
  const text = printGroups(perKind, {
    output,
    single,
    withNamespace: opts.allNamespaces,
    showLabels: opts.showLabels,
    labelColumns: opts.labelColumns,
  });
  const tabular = output.type === 'table' || output.type === 'wide' || output.type === 'custom-columns';
  if (output.type === 'jsonpath') write(text);
  else if (text !== '') out(text);
  if (total === 0 && missing.length === 0 && !named && tabular)
    process.stderr.write(
      `${noResourcesMessage(
        groups.map((g) => g.info),
        opts,
      )}\n`,
    );
  for (const line of missing) process.stderr.write(`${line}\n`);
  return missing.length ? 1 : 0;
}

function noResourcesMessage(kinds: KindInfo[], opts: GetOptions): string {
  if (opts.allNamespaces || kinds.every((k) => !k.namespaced)) return 'No resources found';
  return `No resources found in ${opts.namespace || DEFAULT_NAMESPACE} namespace.`;
}

/**
 * Lists, prints, then prints each change until Ctrl-C, following the kind with the informer every
 * skiff process uses (proto/informer): when the watch's history has been compacted it lists again
 * and prints only what changed meanwhile, as kubectl does. Table widths are fixed by the first
 * list: rows stream, so later ones cannot reflow the table.
 */
async function watchKind(
  api: ApiClient,
  info: KindInfo,
  names: string[],
  opts: GetOptions,
  output: OutputSpec,
): Promise<number> {
  if (names.length > 1) throw new InvalidArgumentError('get -w: watch takes at most one name', 'watch');
  const fieldSelector = [opts.fieldSelector, names.length === 1 ? `metadata.name=${names[0]}` : undefined]
    .filter(Boolean)
    .join(',');
  // Loaded here, not with the module: only a watch needs them (and the logger's start-up cost).
  const [{ Informer }, { apiSource }, { componentLogger }] = await Promise.all([
    import('../../proto/informer/informer.js'),
    import('../../proto/informer/api-source.js'),
    import('../../proto/support/logger.js'),
  ]);
  const abort = new AbortController();
  const informer = new Informer<KubeObject>({
    source: apiSource({
      api,
      kind: info.kind,
      namespace: namespaceFor(info, opts),
      ...(opts.selector ? { labelSelector: opts.selector } : {}),
      ...(fieldSelector ? { fieldSelector } : {}),
    }),
    // Only what a person must act on (an object the CLI cannot read); the rest is said below.
    logger: componentLogger('get-watch').child({}, { level: 'error' }),
    onRelist: ({ reason, fromRevision, revision }) =>
      process.stderr.write(
        reason === 'compacted'
          ? `watch: resourceVersion ${fromRevision} is no longer in the history; listed again at ${revision}\n`
          : `watch: the watch failed; listed again at ${revision}\n`,
      ),
  });
  const tableOptions: TableOptions = {
    wide: output.type === 'wide',
    withNamespace: !!opts.allNamespaces && info.namespaced,
    labelColumns: opts.labelColumns,
    showLabels: opts.showLabels,
  };
  const printer = printerFor(info.kind);
  const table = (objects: ObjectJson[]): { headers: string[]; rows: string[][] } =>
    output.type === 'custom-columns'
      ? customColumnsTable(output.columns, objects)
      : tableFor(info.kind, objects, tableOptions, Date.now());
  let widths: number[] = [];
  let headerPrinted = false;
  const print = (objects: ObjectJson[]): void => {
    if (output.type === 'json' || output.type === 'yaml') {
      for (const obj of objects) out(formatObjects([obj], output.type, false));
    } else if (output.type === 'name') {
      if (objects.length) out(formatNames(objects, info.kind, info.group));
    } else if (output.type === 'jsonpath') {
      for (const obj of objects) write(executeJsonPath(output.template, obj));
    } else {
      const rows =
        output.type === 'custom-columns'
          ? table(objects).rows
          : objects.map((obj) => rowFor(printer, obj, tableOptions, Date.now()));
      const lines = rows.map((row) => renderRow(row, widths));
      if (lines.length && !headerPrinted) {
        lines.unshift(renderRow(table([]).headers, widths));
        headerPrinted = true;
      }
      if (lines.length) out(lines.join('\n'));
    }
  };
  // Changes are printed once the first list is; the list shows the state they led to.
  let listed = false;
  informer.onChange((key, change, lastKnown) => {
    if (!listed || change === 'resync') return;
    const object = change === 'deleted' ? lastKnown?.object : informer.get(key)?.object;
    if (object !== undefined) print([object as unknown as ObjectJson]);
  });
  const stop = (): void => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  informer.start();
  try {
    await informer.waitForSync();
    const first = informer.list().map((cached) => cached.object as unknown as ObjectJson);
    const { headers, rows } = table(first);
    widths = columnWidths(headers, rows).map((w) => Math.max(w, 10));
    print(first);
    listed = true;
    if (!abort.signal.aborted)
      await new Promise((resolve) => abort.signal.addEventListener('abort', resolve));
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await informer.stop();
  }
  return 0;
}

export function registerGet(program: Command): void {
  program
    .command('get')
    .description('list objects of one or more kinds (deploy,cm), or named ones (deploy/web)')
    .argument('<resources...>', 'KIND[,KIND…] [NAME…], or KIND/NAME… (kind, plural or short name)')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-A, --all-namespaces', 'every namespace')
    .option('-l, --selector <selector>', 'label selector, e.g. app=web,tier!=db')
    .option('--field-selector <selector>', 'field selector, e.g. status.phase=Running')
    .option(
      '-o, --output <format>',
      'wide, json, yaml, name, jsonpath=TEMPLATE, jsonpath-file=FILE, custom-columns=SPEC or custom-columns-file=FILE',
    )
    .option('--sort-by <jsonpath>', 'order by a field, e.g. .metadata.name or {.metadata.creationTimestamp}')
    .option('--show-labels', 'a last LABELS column with every label')
    .option(
      '-L, --label-columns <key>',
      'a column with the value of this label (repeatable, or comma-separated)',
      collectLabelKeys,
    )
    .option('-w, --watch', 'after listing, print changes as they happen (Ctrl-C to stop)')
    .action(async (args: string[], opts: GetOptions, command: Command) => {
      const code = await withClient(command, (api) => runGet(api, args, opts));
      if (code !== 0) process.exitCode = code;
    });
}

function collectLabelKeys(value: string, previous: string[] | undefined): string[] {
  const keys = value.split(',').map((k) => k.trim());
  if (keys.some((k) => k === ''))
    throw new InvalidArgumentError(`-L ${value}: empty label key`, 'labelColumns');
  return collect(keys.join(','), previous).flatMap((v) => v.split(','));
}
