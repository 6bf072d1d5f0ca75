/**
 * `skiff drain NODE`: cordon the node, then evict its pods, as kubectl's drain. Pods are deleted
 * with their grace period (or --grace-period) and the command waits until they are gone (or
 * --timeout passes). Like kubectl it refuses, before evicting anything, when the node holds:
 *   - DaemonSet pods without --ignore-daemonsets (with it they are left running: their controller
 *     would put them back at once),
 *   - pods no controller manages without --force (nothing would start them again),
 *   - pods with emptyDir volumes without --delete-emptydir-data (that data goes with them).
 * Pods that already ended (Succeeded, Failed) are deleted without needing --force.
 */
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import { kindInfoOf } from '../../proto/kinds.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { out, parseNonNegativeInt, withClient } from './context.js';
import { updateObject } from './update-object.js';

interface Flags {
  ignoreDaemonsets?: boolean;
  force?: boolean;
  deleteEmptydirData?: boolean;
  gracePeriod?: number;
  timeout?: string;
}

function parseTimeout(text: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(text);
  if (!m)
    throw new InvalidArgumentError(
      `drain: --timeout "${text}" is not a duration (30s, 5m, 0 for ever)`,
      'timeout',
    );
  const n = Number(m[1]);
  return n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as Record<string, number>)[m[2] ?? 's']!;
}

/** Why a pod stops the drain (with the flag that would let it go), or undefined. */
export function drainBlocker(pod: Pod, flags: Flags): { reason: string; flag: string } | undefined {
  const terminal = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
  const owner = (pod.metadata.ownerReferences ?? []).find((o) => o.controller);
  if (owner?.kind === 'DaemonSet' && !flags.ignoreDaemonsets)
    return { reason: 'DaemonSet-managed', flag: '--ignore-daemonsets' };
  if (!owner && !terminal && !flags.force)
    return { reason: 'not managed by a controller (ReplicaSet, Job, …)', flag: '--force' };
  if ((pod.spec.volumes ?? []).some((v) => v.emptyDir) && !flags.deleteEmptydirData && !terminal)
    return { reason: 'using emptyDir volumes (their data would be lost)', flag: '--delete-emptydir-data' };
  return undefined;
}

export function registerDrain(program: Command): void {
  program
    .command('drain')
    .description('cordon a node and evict its pods (waits until they are gone)')
    .argument('<node>', 'node name')
    .option('--ignore-daemonsets', 'leave DaemonSet pods running instead of refusing')
    .option('--force', 'also delete pods no controller manages')
    .option('--delete-emptydir-data', 'also delete pods with emptyDir volumes (their data is lost)')
    .option(
      '--grace-period <seconds>',
      "each pod's grace period instead of its own",
      parseNonNegativeInt('--grace-period'),
    )
    .option('--timeout <duration>', 'give up waiting after this long (default 0: wait for ever)', '0')
    .action(async (node: string, flags: Flags, cmd: Command) => {
      const timeoutMs = parseTimeout(flags.timeout ?? '0');
      await withClient(cmd, async (api) => {
        try {
          await api.get('Node', '', node);
        } catch (err) {
          if (err instanceof NotFoundError) throw new NotFoundError(`drain: node "${node}" not found`);
          throw err;
        }
        const cordon = await updateObject(
          api,
          kindInfoOf('Node'),
          '',
          node,
          (live) =>
            ({
              ...live,
              spec: { ...((live['spec'] as object | undefined) ?? {}), unschedulable: true },
            }) as ObjectJson,
          'none',
          'cordon',
        );
        out(`node/${node} ${cordon.changed ? '' : 'already '}cordoned`);
        const pods = (await api.list('Pod', { fieldSelector: `spec.nodeName=${node}` })).items as Pod[];
        const blocked = pods
          .map((pod) => ({ pod, blocker: drainBlocker(pod, flags) }))
          .filter((b) => b.blocker && !(b.blocker.flag === '--ignore-daemonsets' && flags.ignoreDaemonsets));
        if (blocked.length) {
          const lines = blocked.map(
            ({ pod, blocker }) =>
              `  ${pod.metadata.namespace}/${pod.metadata.name}: ${blocker!.reason} (use ${blocker!.flag})`,
          );
          throw new FailedPreconditionError(
            `drain node/${node}: cannot evict these pods:\n${lines.join('\n')}\nnothing was evicted; the node stays cordoned`,
          );
        }
        const evict = pods.filter((pod) => {
          const owner = (pod.metadata.ownerReferences ?? []).find((o) => o.controller);
          return !(owner?.kind === 'DaemonSet');
        });
        for (const pod of pods.filter((p) => !evict.includes(p)))
          process.stderr.write(
            `Warning: ignoring DaemonSet-managed pod: ${pod.metadata.namespace}/${pod.metadata.name}\n`,
          );
        for (const pod of evict) {
          out(`evicting pod ${pod.metadata.namespace}/${pod.metadata.name}`);
          await api
            .delete('Pod', pod.metadata.namespace!, pod.metadata.name!, {
              ...(flags.gracePeriod !== undefined ? { gracePeriodSeconds: flags.gracePeriod } : {}),
              preconditions: { uid: pod.metadata.uid! },
            })
            .catch((err) => {
              if (!(err instanceof NotFoundError)) throw err;
            });
        }
        await waitGone(api, evict, timeoutMs, node);
        for (const pod of evict) out(`pod/${pod.metadata.name} evicted`);
        out(`node/${node} drained`);
      });
    });
}

async function waitGone(api: ApiClient, pods: Pod[], timeoutMs: number, node: string): Promise<void> {
  const until = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  let left = pods;
  while (left.length) {
    const still: Pod[] = [];
    for (const pod of left) {
      try {
        const current = (await api.get('Pod', pod.metadata.namespace!, pod.metadata.name!)) as Pod;
        if (current.metadata.uid === pod.metadata.uid) still.push(pod);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    left = still;
    if (!left.length) return;
    if (Date.now() > until)
      throw new FailedPreconditionError(
        `drain node/${node}: ${left.length} pod(s) still terminating after --timeout: ${left.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).join(', ')}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}
