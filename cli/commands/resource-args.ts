/**
 * The objects a command line names, as kubectl reads them: `KIND[,KIND…] [NAME…]` or
 * `KIND/NAME…` (`deploy/web cm/cfg`).
 */
import { InvalidArgumentError } from '../../proto/errors.js';
import { resolveKind, type KindInfo } from '../../proto/kinds.js';

/** Kinds with the names asked for of each, in the order first given. */
export interface ResourceGroup {
  info: KindInfo;
  names: string[];
}

export interface ResourceArgs {
  groups: ResourceGroup[];
  /** Names were given (as `KIND NAME…` or `KIND/NAME…`). */
  named: boolean;
}

/**
 * The objects a command line names, as kubectl reads them: `KIND[,KIND…] [NAME…]`, or one or more
 * `KIND/NAME` (`deploy/web cm/cfg`), never both forms at once.
 */
export function parseResourceArgs(args: string[], verb: string): ResourceArgs {
  if (args.length === 0) return { groups: [], named: false };
  const groups: ResourceGroup[] = [];
  const groupOf = (info: KindInfo): ResourceGroup => {
    let group = groups.find((g) => g.info === info);
    if (group === undefined) groups.push((group = { info, names: [] }));
    return group;
  };
  if (args[0]!.includes('/')) {
    for (const arg of args) {
      const slash = arg.indexOf('/');
      const kind = arg.slice(0, slash);
      const name = arg.slice(slash + 1);
      if (slash <= 0 || name === '' || name.includes('/') || kind.includes(',')) {
        throw new InvalidArgumentError(
          `${verb} ${arg}: arguments in resource/name form must have a single resource and name (e.g. deploy/web)`,
          'name',
        );
      }
      groupOf(resolveKind(kind)).names.push(name);
    }
    return { groups, named: true };
  }
  const [kinds, ...names] = args as [string, ...string[]];
  for (const part of kinds.split(',')) {
    if (part.trim() === '')
      throw new InvalidArgumentError(`${verb} ${kinds}: empty kind in the list`, 'kind');
    groupOf(resolveKind(part));
  }
  const slashed = names.find((name) => name.includes('/'));
  if (slashed !== undefined) {
    throw new InvalidArgumentError(
      `${verb} ${kinds} ${slashed}: there is no need to give a kind as a separate argument when passing arguments in resource/name form (e.g. \`skiff ${verb} ${slashed}\`)`,
      'name',
    );
  }
  for (const group of groups) group.names.push(...names);
  return { groups, named: names.length > 0 };
}
