/**
 * `skiff cordon NODE…` and `skiff uncordon NODE…` (or `-l SELECTOR`): a node the scheduler may
 * not place new pods on (spec.unschedulable), as kubectl's; pods already there keep running.
 * `get nodes` then shows `Ready,SchedulingDisabled`. Prints `node/n1 cordoned` (or `already
 * cordoned`, `uncordoned`, `already uncordoned`); each node changes with its live resourceVersion
 * (update-object.ts).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../proto/errors.js';
import { kindInfoOf } from '../../proto/kinds.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { dryRunOf, dryRunSuffix, out, registerDryRun, withClient } from './context.js';
import { updateObject } from './update-object.js';

interface Flags {
  selector?: string;
  dryRun?: string | boolean;
}

function register(program: Command, verb: 'cordon' | 'uncordon'): void {
  const unschedulable = verb === 'cordon';
  const command = program
    .command(verb)
    .description(
      unschedulable
        ? 'mark nodes unschedulable: no new pod is placed on them; those there keep running'
        : 'mark nodes schedulable again',
    )
    .argument('[nodes...]', 'node names')
    .option('-l, --selector <selector>', 'every node matching this label selector');
  registerDryRun(command).action(async (names: string[], flags: Flags, cmd: Command) => {
    if (names.length > 0 && flags.selector !== undefined)
      throw new InvalidArgumentError(`${verb}: give node names or -l, not both`, 'selector');
    if (names.length === 0 && flags.selector === undefined)
      throw new InvalidArgumentError(`${verb}: name the nodes, or select them with -l`, 'nodes');
    const dryRun = dryRunOf(flags.dryRun);
    const info = kindInfoOf('Node');
    await withClient(cmd, async (api) => {
      const targets =
        flags.selector === undefined
          ? names
          : (await api.list('Node', { labelSelector: flags.selector })).items.map(
              (n) => n.metadata.name ?? '',
            );
      if (targets.length === 0) {
        out('No resources found');
        return;
      }
      for (const name of targets) {
        const result = await updateObject(
          api,
          info,
          '',
          name,
          (live) => {
            const spec = { ...((live['spec'] as Record<string, unknown> | undefined) ?? {}) };
            if (unschedulable) spec['unschedulable'] = true;
            else delete spec['unschedulable'];
            return { ...live, spec } as ObjectJson;
          },
          dryRun,
          verb,
        );
        out(`node/${name} ${result.changed ? '' : 'already '}${verb}ed${dryRunSuffix(dryRun)}`);
      }
    });
  });
}

export function registerCordon(program: Command): void {
  register(program, 'cordon');
}

export function registerUncordon(program: Command): void {
  register(program, 'uncordon');
}
