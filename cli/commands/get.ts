/**
 * `skiff get KIND[,KIND…] [NAME…]` with kubectl's flags: -n, -A, -l, --field-selector,
 * -o wide|json|yaml|name, -w (print rows as objects change, until Ctrl-C).
 */
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import { resolveKind, type KindInfo } from '../../proto/kinds.js';
import { resourceName } from '../apply.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { formatNames, formatObjects, parseOutputFormat, type OutputFormat } from '../output/format.js';

import {
  columnWidths,
  printerFor,
  renderRow,
  renderTable,
  rowFor,
  tableFor,
  type TableOptions,
} from '../output/table.js';
import { DEFAULT_NAMESPACE, notFoundLine, out, withClient } from './context.js';

export interface GetOptions {
  namespace?: string;
  allNamespaces?: boolean;
  selector?: string;
  fieldSelector?: string;
  output?: string;
  watch?: boolean;
}

/** `deploy,cm` → their kinds, each once, in the order given. */
export function resolveKinds(arg: string): KindInfo[] {
  const kinds: KindInfo[] = [];
  for (const part of arg.split(',')) {
    if (part.trim() === '') throw new InvalidArgumentError(`get ${arg}: empty kind in the list`, 'kind');
    const info = resolveKind(part);
    if (!kinds.includes(info)) kinds.push(info);
  }
  return kinds;
}

function namespaceFor(info: KindInfo, opts: GetOptions): string {
  if (!info.namespaced || opts.allNamespaces) return '';
  return opts.namespace || DEFAULT_NAMESPACE;
}

/** `not found` errors are reported and skipped, as kubectl does, so the rest still prints. */
async function fetchObjects(
  api: ApiClient,
  info: KindInfo,
  names: string[],
  opts: GetOptions,
  missing: string[],
): Promise<KubeObject[]> {
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

export async function runGet(
  api: ApiClient,
  kindArg: string,
  names: string[],
  opts: GetOptions,
): Promise<number> {
  const format = parseOutputFormat(opts.output);
  const kinds = resolveKinds(kindArg);
  if (opts.watch) {
    if (kinds.length !== 1) throw new InvalidArgumentError('get -w: watch one kind at a time', 'watch');
    return watchKind(api, kinds[0]!, names, opts, format);
  }
  const missing: string[] = [];
  const perKind: { info: KindInfo; objects: ObjectJson[] }[] = [];
  for (const info of kinds) {
    const objects = await fetchObjects(api, info, names, opts, missing);
    perKind.push({ info, objects: objects as unknown as ObjectJson[] });
  }
  const all = perKind.flatMap((k) => k.objects);
  const now = Date.now();
  if (format === 'json' || format === 'yaml') {
    const single = names.length === 1 && kinds.length === 1 && all.length === 1;
    if (all.length > 0 || names.length === 0) out(formatObjects(all, format, !single));
  } else if (format === 'name') {
    for (const { info, objects } of perKind)
      if (objects.length) out(formatNames(objects, info.kind, info.group));
  } else {
    const tables: string[] = [];
    for (const { info, objects } of perKind) {
      if (objects.length === 0) continue;
      const options: TableOptions = {
        wide: format === 'wide',
        withNamespace: !!opts.allNamespaces && info.namespaced,
        namePrefix: kinds.length > 1 ? resourceName(info.kind, info.group, '') : undefined,
      };
      const { headers, rows } = tableFor(info.kind, objects, options, now);
      tables.push(renderTable(headers, rows));
    }
    if (tables.length) out(tables.join('\n'));
    else if (missing.length === 0) process.stderr.write(`${noResourcesMessage(kinds, opts)}\n`);
  }
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
  format: OutputFormat,
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
    wide: format === 'wide',
    withNamespace: !!opts.allNamespaces && info.namespaced,
  };
  const printer = printerFor(info.kind);
  let widths: number[] = [];
  let headerPrinted = false;
  const print = (objects: ObjectJson[]): void => {
    if (format === 'json' || format === 'yaml') {
      for (const obj of objects) out(formatObjects([obj], format, false));
    } else if (format === 'name') {
      if (objects.length) out(formatNames(objects, info.kind, info.group));
    } else {
      const lines = objects.map((obj) => renderRow(rowFor(printer, obj, tableOptions, Date.now()), widths));
      if (lines.length && !headerPrinted) {
        lines.unshift(renderRow(tableFor(info.kind, [], tableOptions, Date.now()).headers, widths));
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
    const { headers, rows } = tableFor(info.kind, first, tableOptions, Date.now());
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
    .description('list objects of one or more kinds (deploy,cm), or named ones')
    .argument('<kinds>', 'kind, plural or short name; several separated by commas')
    .argument('[names...]', 'names of the objects to show')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-A, --all-namespaces', 'every namespace')
    .option('-l, --selector <selector>', 'label selector, e.g. app=web,tier!=db')
    .option('--field-selector <selector>', 'field selector, e.g. status.phase=Running')
    .option('-o, --output <format>', 'wide, json, yaml or name')
    .option('-w, --watch', 'after listing, print changes as they happen (Ctrl-C to stop)')
    .action(async (kindArg: string, names: string[], opts: GetOptions, command: Command) => {
      const code = await withClient(command, (api) => runGet(api, kindArg, names, opts));
      if (code !== 0) process.exitCode = code;
    });
}
