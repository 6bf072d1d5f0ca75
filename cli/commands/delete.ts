/**
 * `skiff delete KIND NAME…`, `skiff delete KIND/NAME…`, `skiff delete -f FILE|DIR|-`,
 * `skiff delete KIND -l SELECTOR` and `skiff delete KIND --all`, with `--grace-period`,
 * `--ignore-not-found` and `--dry-run`. Prints `deployment.apps "web" deleted` per object, and
 * `No resources found` when a selector or --all matches nothing, as kubectl does.
 *
 * `--dry-run=server` sends each delete as a server dry run (every check, nothing removed);
 * `--dry-run=client` only reads each object.
 */
import type { Command } from 'commander';
import type { PropagationPolicy } from '../../proto/api-requests.js';
import type { ApiClient } from '../../proto/client.js';
import { InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import type { KindInfo } from '../../proto/kinds.js';
import { resourceName } from '../apply.js';
import { loadManifests } from './apply.js';
import {
  dryRunOf,
  dryRunSuffix,
  namespaceFor,
  notFoundLine,
  out,
  parseNonNegativeInt,
  registerDryRun,
  withClient,
  type DryRun,
} from './context.js';
import { parseResourceArgs } from './resource-args.js';

interface DeleteFlags {
  filename?: string[];
  namespace?: string;
  selector?: string;
  fieldSelector?: string;
  all?: boolean;
  allNamespaces?: boolean;
  gracePeriod?: number;
  /** true: --cascade without a value (commander does not call the parser then) */
  cascade?: PropagationPolicy | true;
  ignoreNotFound?: boolean;
  dryRun?: string | boolean;
  output?: string;
}

interface Target {
  info: KindInfo;
  namespace: string;
  name: string;
}

function displayName(info: KindInfo): string {
  return `${info.singular}${info.group ? `.${info.group}` : ''}`;
}

async function deleteTargets(
  api: ApiClient,
  targets: Target[],
  flags: DeleteFlags,
  dryRun: DryRun,
): Promise<number> {
  let failures = 0;
  for (const t of targets) {
    try {
      if (dryRun === 'client') {
        await api.get(t.info.kind, t.namespace, t.name);
      } else {
        await api.delete(t.info.kind, t.namespace, t.name, {
          ...(flags.gracePeriod === undefined ? {} : { gracePeriodSeconds: flags.gracePeriod }),
          ...(flags.cascade === undefined
            ? {}
            : { propagationPolicy: flags.cascade === true ? 'Background' : flags.cascade }),
          ...(dryRun === 'server' ? { dryRun: true } : {}),
        });
      }
      out(
        flags.output === 'name'
          ? resourceName(t.info.kind, t.info.group, t.name)
          : `${displayName(t.info)} "${t.name}" deleted${dryRunSuffix(dryRun)}`,
      );
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      if (flags.ignoreNotFound) continue;
      failures++;
      process.stderr.write(`${notFoundLine(t.info, t.name, t.namespace)}\n`);
    }
  }
  return failures ? 1 : 0;
}

/** kubectl's --cascade: background, foreground, orphan; true and false as its older spelling. */
function parseCascade(value: string | true): PropagationPolicy {
  const policy = (
    {
      true: 'Background',
      background: 'Background',
      foreground: 'Foreground',
      false: 'Orphan',
      orphan: 'Orphan',
    } as const
  )[String(value) as 'true'];
  if (policy === undefined)
    throw new InvalidArgumentError(
      `delete: --cascade=${value}: must be background, foreground or orphan`,
      'cascade',
    );
  return policy;
}

export function registerDelete(program: Command): void {
  const command = program
    .command('delete')
    .description('delete objects by name, by label selector, all of a kind, or as listed in manifests (-f)')
    .argument('[resources...]', 'KIND[,KIND…] NAME…, KIND/NAME…, or KIND with -l or --all')
    .option('-f, --filename <path...>', 'delete the objects these manifests describe')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-l, --selector <selector>', 'delete every object of KIND matching this label selector')
    .option('--field-selector <selector>', 'delete every object of KIND matching this field selector')
    .option('--all', 'delete every object of KIND in the namespace (with -A: in every namespace)')
    .option('-A, --all-namespaces', 'with -l, --field-selector or --all: in every namespace')
    .option(
      '--grace-period <seconds>',
      'seconds a pod gets to stop (0: at once)',
      parseNonNegativeInt('--grace-period'),
    )
    .option(
      '--cascade [strategy]',
      'what becomes of the objects it owns: background (default: deleted after it), foreground (deleted before it), orphan (kept)',
      parseCascade,
    )
    .option('--ignore-not-found', 'treat a missing object as deleted')
    .option('-o, --output <format>', 'name: print kind.group/name of each object deleted');
  registerDryRun(
    command,
    'client: say what would be deleted, delete nothing; server: the server checks each delete and removes nothing',
  ).action(async (args: string[], flags: DeleteFlags, cmd: Command) => {
    const dryRun = dryRunOf(flags.dryRun);
    if (flags.output !== undefined && flags.output !== 'name')
      throw new InvalidArgumentError(`delete: -o ${flags.output}: only -o name is supported`, 'output');
    let targets: Target[] | undefined;
    if (flags.filename) {
      if (args.length || flags.selector || flags.fieldSelector || flags.all)
        throw new InvalidArgumentError(
          'delete: -f cannot be combined with a kind, names, -l, --field-selector or --all',
          'filename',
        );
      const prepared = await loadManifests(flags.filename, flags.namespace);
      // Namespaces last: deleting one removes its contents, which would then be "not found".
      const ordered = [
        ...prepared.filter((p) => p.info.kind !== 'Namespace'),
        ...prepared.filter((p) => p.info.kind === 'Namespace'),
      ];
      targets = ordered.map((p) => ({ info: p.info, namespace: p.namespace, name: p.name }));
    } else if (args.length === 0) {
      throw new InvalidArgumentError(
        'delete: say what to delete: KIND NAME…, KIND/NAME…, KIND -l SELECTOR, KIND --all, or -f FILE',
        'kind',
      );
    }
    const parsed = targets === undefined ? parseResourceArgs(args, 'delete') : undefined;
    if (parsed) {
      const selecting = [
        flags.selector && '-l',
        flags.fieldSelector && '--field-selector',
        flags.all && '--all',
      ].filter(Boolean);
      if (parsed.named && selecting.length)
        throw new InvalidArgumentError(`delete: give names or ${selecting.join('/')}, not both`, 'selector');
      if (!parsed.named && selecting.length === 0) {
        throw new InvalidArgumentError(
          `delete ${args.join(' ')}: name the objects, select them with -l or --field-selector, or pass --all`,
          'names',
        );
      }
      if (parsed.named && flags.allNamespaces)
        throw new InvalidArgumentError(
          'delete: a name cannot be combined with -A: name the namespace with -n',
          'allNamespaces',
        );
    }
    await withClient(cmd, async (api) => {
      if (parsed?.named) {
        targets = parsed.groups.flatMap(({ info, names }) =>
          names.map((name) => ({ info, namespace: namespaceFor(info, flags), name })),
        );
      } else if (parsed) {
        targets = [];
        for (const { info } of parsed.groups) {
          const listed = await api.list(info.kind, {
            namespace: namespaceFor(info, flags),
            labelSelector: flags.selector,
            fieldSelector: flags.fieldSelector,
          });
          targets.push(
            ...listed.items.map((obj) => ({
              info,
              namespace: obj.metadata.namespace ?? '',
              name: obj.metadata.name ?? '',
            })),
          );
        }
        if (targets.length === 0) {
          out('No resources found');
          return;
        }
      }
      const code = await deleteTargets(api, targets!, flags, dryRun);
      if (code !== 0) process.exitCode = code;
    });
  });
}
