/** `skiff describe KIND [NAME…]` or `KIND/NAME…`: the readable view of objects, with the Events about them. */
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import {
  InvalidArgumentError,
  NotFoundError,
  UnauthenticatedError,
  UnavailableError,
} from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import type { KindInfo } from '../../proto/kinds.js';
import { describeObject } from '../output/describe.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { DEFAULT_NAMESPACE, namespaceFor, notFoundLine, out, withClient } from './context.js';
import { parseResourceArgs } from './resource-args.js';

/**
 * The Events whose involvedObject is `obj`, or undefined when the server cannot list them that
 * way (then describe shows no Events section rather than a wrong `<none>`).
 */
async function eventsAbout(
  api: ApiClient,
  info: KindInfo,
  obj: KubeObject,
): Promise<ObjectJson[] | undefined> {
  const selector = [
    `involvedObject.kind=${info.kind}`,
    `involvedObject.name=${obj.metadata.name ?? ''}`,
    ...(info.namespaced ? [`involvedObject.namespace=${obj.metadata.namespace ?? ''}`] : []),
  ].join(',');
  try {
    const result = await api.list('Event', {
      namespace: info.namespaced ? (obj.metadata.namespace ?? '') : '',
      fieldSelector: selector,
    });
    return result.items as unknown as ObjectJson[];
  } catch (err) {
    if (err instanceof UnavailableError || err instanceof UnauthenticatedError) throw err;
    return undefined;
  }
}

export function registerDescribe(program: Command): void {
  program
    .command('describe')
    .description('show one or more objects in detail, with their events')
    .argument('<resources...>', 'KIND[,KIND…] [NAME…] or KIND/NAME… (no name: every object matching -l)')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-A, --all-namespaces', 'with no name: in every namespace')
    .option('-l, --selector <selector>', 'label selector, when no name is given')
    .action(
      async (
        args: string[],
        opts: { namespace?: string; allNamespaces?: boolean; selector?: string },
        command: Command,
      ) => {
        const { groups, named } = parseResourceArgs(args, 'describe');
        if (named && opts.selector)
          throw new InvalidArgumentError('describe: give names or -l, not both', 'selector');
        if (named && opts.allNamespaces)
          throw new InvalidArgumentError(
            'describe: a name cannot be combined with -A: name the namespace with -n',
            'allNamespaces',
          );
        await withClient(command, async (api) => {
          const missing: string[] = [];
          const objects: { info: KindInfo; obj: KubeObject }[] = [];
          for (const { info, names } of groups) {
            const namespace = namespaceFor(info, opts);
            if (names.length === 0) {
              const listed = await api.list(info.kind, { namespace, labelSelector: opts.selector });
              objects.push(...listed.items.map((obj) => ({ info, obj })));
            }
            for (const name of names) {
              try {
                objects.push({ info, obj: await api.get(info.kind, namespace, name) });
              } catch (err) {
                if (!(err instanceof NotFoundError)) throw err;
                missing.push(notFoundLine(info, name, namespace));
              }
            }
          }
          if (objects.length === 0 && missing.length === 0) {
            const namespaced = groups.some((g) => g.info.namespaced) && !opts.allNamespaces;
            process.stderr.write(
              `No resources found${namespaced ? ` in ${opts.namespace || DEFAULT_NAMESPACE} namespace` : ''}.\n`,
            );
            return;
          }
          const now = Date.now();
          const texts: string[] = [];
          for (const { info, obj } of objects) {
            const nodePods =
              info.kind === 'Node'
                ? ((await api.list('Pod', { fieldSelector: `spec.nodeName=${obj.metadata.name ?? ''}` }))
                    .items as unknown as ObjectJson[])
                : undefined;
            texts.push(
              describeObject(obj as unknown as ObjectJson, await eventsAbout(api, info, obj), now, nodePods),
            );
          }
          if (texts.length) out(texts.join('\n\n'));
          for (const line of missing) process.stderr.write(`${line}\n`);
          if (missing.length) process.exitCode = 1;
        });
      },
    );
}
