/**
 * `skiff wait --for=condition=NAME[=VALUE] | --for=delete | --for=jsonpath='{.path}'=VALUE
 *  KIND/NAME… | KIND NAME… | KIND -l SELECTOR | KIND --all [-n NS] [--timeout 30s]`, as kubectl's:
 * waits until every named object meets the condition, printing `deployment.apps/web condition met`
 * (or `pod/x deleted`) for each; after --timeout (default 30s; 0: check once) prints
 * `error: timed out waiting for the condition on deployments/web` and exits 1. A condition's value
 * compares without regard to case (True, true), as kubectl does.
 */
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import type { KindInfo } from '../../proto/kinds.js';
import { resourceName } from '../apply.js';
import { evaluatePath, parseJsonPath, resultText } from '../output/jsonpath.js';
import { namespaceFor, out, parseDurationOption, withClient } from './context.js';
import { parseResourceArgs } from './resource-args.js';

interface Flags {
  for: string;
  namespace?: string;
  selector?: string;
  all?: boolean;
  timeout?: number;
}

/** What an object must be for the wait to end; `undefined` object: it does not exist. */
type Check = (object: KubeObject | undefined) => boolean;

/** Reads --for: condition=NAME[=VALUE], delete, jsonpath='{…}'=VALUE. */
export function parseWaitFor(text: string): { check: Check; met: string } {
  if (text === 'delete') return { check: (object) => object === undefined, met: 'deleted' };
  const condition = /^condition=([^=]+)(?:=(.*))?$/.exec(text);
  if (condition) {
    const [, type, value = 'True'] = condition as unknown as [string, string, string | undefined];
    return {
      check: (object) => {
        const conditions = (
          object as { status?: { conditions?: { type: string; status: string }[] } } | undefined
        )?.status?.conditions;
        return (
          conditions?.some(
            (c) =>
              c.type.toLowerCase() === type.toLowerCase() && c.status.toLowerCase() === value.toLowerCase(),
          ) === true
        );
      },
      met: 'condition met',
    };
  }
  const jsonpath = /^jsonpath=(\{.*\})=(.*)$/.exec(text);
  if (jsonpath) {
    const path = parseJsonPath(jsonpath[1]!, '--for=jsonpath');
    const wanted = jsonpath[2]!;
    return {
      check: (object) =>
        object !== undefined && evaluatePath(path, object).some((value) => resultText(value) === wanted),
      met: 'condition met',
    };
  }
  throw new InvalidArgumentError(
    `wait: --for=${text}: expected condition=NAME[=VALUE], delete, or jsonpath='{.field}'=VALUE`,
    'for',
  );
}

async function current(
  api: ApiClient,
  info: KindInfo,
  namespace: string,
  name: string,
): Promise<KubeObject | undefined> {
  try {
    return await api.get(info.kind, namespace, name);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

export function registerWait(program: Command): void {
  program
    .command('wait')
    .description('wait until objects meet a condition, are deleted, or a field has a value')
    .argument('<resources...>', 'KIND/NAME…, KIND NAME…, or KIND with -l or --all')
    .requiredOption('--for <condition>', 'condition=NAME[=VALUE], delete, or jsonpath={.path}=VALUE')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-l, --selector <selector>', 'every object of KIND matching this label selector')
    .option('--all', 'every object of KIND in the namespace')
    .option(
      '--timeout <duration>',
      'how long to wait (default 30s; 0: look once)',
      parseDurationOption('--timeout'),
    )
    .action(async (args: string[], flags: Flags, cmd: Command) => {
      const { check, met } = parseWaitFor(flags.for);
      const parsed = parseResourceArgs(args, 'wait');
      const byName = parsed.named || parsed.groups.some((g) => g.names.length > 0);
      if (byName === (flags.selector !== undefined || flags.all === true))
        throw new InvalidArgumentError(
          'wait: name the objects, or give a KIND with -l or --all',
          'resources',
        );
      const timeoutMs = flags.timeout ?? 30_000;
      await withClient(cmd, async (api) => {
        const targets: { info: KindInfo; namespace: string; name: string }[] = [];
        for (const group of parsed.groups) {
          const namespace = namespaceFor(group.info, flags);
          if (byName) for (const name of group.names) targets.push({ info: group.info, namespace, name });
          else {
            const { items } = await api.list(group.info.kind, {
              ...(group.info.namespaced ? { namespace } : {}),
              ...(flags.selector !== undefined ? { labelSelector: flags.selector } : {}),
            });
            for (const item of items)
              targets.push({ info: group.info, namespace, name: item.metadata.name ?? '' });
          }
        }
        if (targets.length === 0) throw new NotFoundError('wait: no matching resources found');
        const deadline = Date.now() + timeoutMs;
        for (const t of targets) {
          for (;;) {
            const object = await current(api, t.info, t.namespace, t.name);
            if (object === undefined && met !== 'deleted')
              throw new NotFoundError(`wait: ${t.info.plural} "${t.name}" not found`);
            if (check(object)) {
              out(`${resourceName(t.info.kind, t.info.group, t.name)} ${met}`);
              break;
            }
            if (Date.now() >= deadline) {
              process.stderr.write(
                `error: timed out waiting for the condition on ${t.info.plural}/${t.name}\n`,
              );
              process.exitCode = 1;
              return;
            }
            await new Promise((resolve) =>
              setTimeout(resolve, Math.min(250, Math.max(0, deadline - Date.now()))),
            );
          }
        }
      });
    });
}
