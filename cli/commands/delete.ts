/**
 * `skiff delete KIND NAME…`, `skiff delete -f FILE|DIR|-`, `skiff delete KIND -l SELECTOR`, with
 * `--grace-period` and `--ignore-not-found`. Prints `deployment.apps "web" deleted` per object.
 */
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import { resolveKind, type KindInfo } from '../../proto/kinds.js';
import { loadManifests } from './apply.js';
import { DEFAULT_NAMESPACE, out, parseNonNegativeInt, withClient } from './context.js';

interface DeleteFlags {
  filename?: string[];
  namespace?: string;
  selector?: string;
  allNamespaces?: boolean;
  gracePeriod?: number;
  ignoreNotFound?: boolean;
}

interface Target {
  info: KindInfo;
  namespace: string;
  name: string;
}

function displayName(info: KindInfo): string {
  return `${info.singular}${info.group ? `.${info.group}` : ''}`;
}

async function deleteTargets(api: ApiClient, targets: Target[], flags: DeleteFlags): Promise<number> {
  let failures = 0;
  for (const t of targets) {
    try {
      const options = flags.gracePeriod === undefined ? {} : { gracePeriodSeconds: flags.gracePeriod };
      await api.delete(t.info.kind, t.namespace, t.name, options);
      out(`${displayName(t.info)} "${t.name}" deleted`);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      if (flags.ignoreNotFound) continue;
      failures++;
      process.stderr.write(
        `Error from server (NotFound): ${t.info.resource} "${t.name}" not found${t.info.namespaced ? ` in namespace "${t.namespace}"` : ''}\n`,
      );
    }
  }
  return failures ? 1 : 0;
}

export function registerDelete(program: Command): void {
  program
    .command('delete')
    .description('delete objects by name, by label selector, or as listed in manifests (-f)')
    .argument('[kind]', 'kind, plural or short name')
    .argument('[names...]', 'names of the objects')
    .option('-f, --filename <path...>', 'delete the objects these manifests describe')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-l, --selector <selector>', 'delete every object of KIND matching this label selector')
    .option('-A, --all-namespaces', 'with -l: in every namespace')
    .option(
      '--grace-period <seconds>',
      'seconds a pod gets to stop (0: at once)',
      parseNonNegativeInt('--grace-period'),
    )
    .option('--ignore-not-found', 'treat a missing object as deleted')
    .action(async (kindArg: string | undefined, names: string[], flags: DeleteFlags, command: Command) => {
      let targets: Target[] | undefined;
      if (flags.filename) {
        if (kindArg || flags.selector)
          throw new InvalidArgumentError(
            'delete: -f cannot be combined with a kind, names or -l',
            'filename',
          );
        const prepared = await loadManifests(flags.filename, flags.namespace);
        // Namespaces last: deleting one removes its contents, which would then be "not found".
        const ordered = [
          ...prepared.filter((p) => p.info.kind !== 'Namespace'),
          ...prepared.filter((p) => p.info.kind === 'Namespace'),
        ];
        targets = ordered.map((p) => ({ info: p.info, namespace: p.namespace, name: p.name }));
      } else if (!kindArg) {
        throw new InvalidArgumentError(
          'delete: say what to delete: KIND NAME…, KIND -l SELECTOR, or -f FILE',
          'kind',
        );
      }
      await withClient(command, async (api) => {
        if (targets === undefined) {
          const info = resolveKind(kindArg!);
          const namespace = info.namespaced ? flags.namespace || DEFAULT_NAMESPACE : '';
          if (names.length && flags.selector)
            throw new InvalidArgumentError('delete: give names or -l, not both', 'selector');
          if (names.length) {
            targets = names.map((name) => ({ info, namespace, name }));
          } else if (flags.selector) {
            const listed = await api.list(info.kind, {
              namespace: flags.allNamespaces ? '' : namespace,
              labelSelector: flags.selector,
            });
            targets = listed.items.map((obj) => ({
              info,
              namespace: obj.metadata.namespace ?? '',
              name: obj.metadata.name ?? '',
            }));
            if (targets.length === 0) process.stderr.write('No resources found\n');
          } else {
            throw new InvalidArgumentError(
              `delete ${kindArg}: name the objects, or select them with -l`,
              'names',
            );
          }
        }
        const code = await deleteTargets(api, targets, flags);
        if (code !== 0) process.exitCode = code;
      });
    });
}
