/**
 * Driving workloads, as kubectl does:
 *   skiff scale KIND/NAME… --replicas N [--current-replicas N]      deployments, replicasets
 *   skiff set image KIND/NAME… CONTAINER=IMAGE…                      deployments, replicasets, pods
 *   skiff rollout status|history|undo|restart|pause|resume deployment/NAME
 * Each change reads the live object and writes it with that resourceVersion (update-object.ts).
 * `rollout status` waits for the Deployment controller's status and exits 1 when the rollout
 * exceeded its progress deadline (or --timeout passed); `undo` copies the template of an older
 * revision's ReplicaSet into the Deployment, which the controller then rolls out as the newest.
 */
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import type { Deployment, ReplicaSet } from '../../proto/gen/types.js';
import { kindInfoOf, type KindInfo } from '../../proto/kinds.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { resourceName } from '../apply.js';
import {
  dryRunOf,
  dryRunSuffix,
  namespaceFor,
  out,
  parseDurationOption,
  parseNonNegativeInt,
  registerDryRun,
  withClient,
} from './context.js';
import { parseResourceArgs } from './resource-args.js';
import { updateObject } from './update-object.js';

const REVISION = 'deployment.kubernetes.io/revision';
const CHANGE_CAUSE = 'kubernetes.io/change-cause';
const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';
const POD_TEMPLATE_HASH = 'pod-template-hash';

interface Target {
  info: KindInfo;
  namespace: string;
  name: string;
}

function targetsOf(
  args: string[],
  verb: string,
  kinds: readonly string[],
  flags: { namespace?: string },
): Target[] {
  const parsed = parseResourceArgs(args, verb);
  const targets: Target[] = [];
  for (const group of parsed.groups) {
    if (!kinds.includes(group.info.kind))
      throw new InvalidArgumentError(
        `${verb}: ${group.info.plural} cannot be ${verb === 'scale' ? 'scaled' : 'changed this way'}; only ${kinds.map((k) => kindInfoOf(k).plural).join(', ')}`,
        'kind',
      );
    for (const name of group.names)
      targets.push({ info: group.info, namespace: namespaceFor(group.info, flags), name });
  }
  if (targets.length === 0)
    throw new InvalidArgumentError(`${verb}: name what to change (e.g. deployment/web)`, 'name');
  return targets;
}

const label = (t: Target) => resourceName(t.info.kind, t.info.group, t.name);

// -------------------------------------------------------------------------------------------------
// scale

export function registerScale(program: Command): void {
  const command = program
    .command('scale')
    .description('set the replicas of deployments and replicasets, the parallelism of jobs')
    .argument('<resources...>', 'KIND NAME… or KIND/NAME…')
    .requiredOption('--replicas <n>', 'the number of replicas', parseNonNegativeInt('--replicas'))
    .option(
      '--current-replicas <n>',
      'only if it has this many now',
      parseNonNegativeInt('--current-replicas'),
    )
    .option('-n, --namespace <ns>', 'namespace (default: default)');
  registerDryRun(command).action(
    async (
      args: string[],
      flags: { replicas: number; currentReplicas?: number; namespace?: string; dryRun?: string | boolean },
      cmd: Command,
    ) => {
      const dryRun = dryRunOf(flags.dryRun);
      const targets = targetsOf(args, 'scale', ['Deployment', 'ReplicaSet', 'Job'], flags);
      await withClient(cmd, async (api) => {
        for (const t of targets) {
          await updateObject(
            api,
            t.info,
            t.namespace,
            t.name,
            (live) => {
              const spec = { ...(live['spec'] as Record<string, unknown>) };
              // as kubectl: a Job's "replicas" are its parallelism
              const field = t.info.kind === 'Job' ? 'parallelism' : 'replicas';
              const current = (spec[field] as number | undefined) ?? 1;
              if (flags.currentReplicas !== undefined && current !== flags.currentReplicas)
                throw new FailedPreconditionError(
                  `scale ${label(t)}: expected ${flags.currentReplicas} ${field}, found ${current}`,
                );
              spec[field] = flags.replicas;
              return { ...live, spec };
            },
            dryRun,
            'scale',
          );
          out(`${label(t)} scaled${dryRunSuffix(dryRun)}`);
        }
      });
    },
  );
}

// -------------------------------------------------------------------------------------------------
// set image

export function registerSet(program: Command): void {
  const set = program.command('set').description('change one field of workloads');
  const command = set
    .command('image')
    .description("set containers' images of deployments, replicasets and pods")
    .argument('<args...>', 'KIND/NAME… CONTAINER=IMAGE… (CONTAINER * for every container)')
    .option('-n, --namespace <ns>', 'namespace (default: default)');
  registerDryRun(command).action(
    async (args: string[], flags: { namespace?: string; dryRun?: string | boolean }, cmd: Command) => {
      const dryRun = dryRunOf(flags.dryRun);
      const assignments = args.filter((arg) => arg.includes('='));
      const targets = targetsOf(
        args.filter((arg) => !arg.includes('=')),
        'set image',
        ['Deployment', 'ReplicaSet', 'DaemonSet', 'Pod'],
        flags,
      );
      if (assignments.length === 0)
        throw new InvalidArgumentError('set image: give at least one CONTAINER=IMAGE', 'image');
      const images = new Map<string, string>();
      for (const assignment of assignments) {
        const [container, image] = [
          assignment.slice(0, assignment.indexOf('=')),
          assignment.slice(assignment.indexOf('=') + 1),
        ];
        if (container === '' || image === '')
          throw new InvalidArgumentError(`set image: "${assignment}": expected CONTAINER=IMAGE`, 'image');
        images.set(container, image);
      }
      await withClient(cmd, async (api) => {
        for (const t of targets) {
          await updateObject(
            api,
            t.info,
            t.namespace,
            t.name,
            (live) => {
              const podSpecOf = (object: ObjectJson): Record<string, unknown> =>
                t.info.kind === 'Pod'
                  ? (object['spec'] as Record<string, unknown>)
                  : ((((object['spec'] as Record<string, unknown>)['template'] as Record<string, unknown>)[
                      'spec'
                    ] ?? {}) as Record<string, unknown>);
              const next = structuredClone(live);
              const podSpec = podSpecOf(next);
              const all = [
                ...((podSpec['initContainers'] as { name: string; image?: string }[] | undefined) ?? []),
                ...((podSpec['containers'] as { name: string; image?: string }[] | undefined) ?? []),
              ];
              for (const [container, image] of images) {
                const matching = container === '*' ? all : all.filter((c) => c.name === container);
                if (matching.length === 0)
                  throw new NotFoundError(
                    `set image ${label(t)}: no container named "${container}" (it has ${all.map((c) => c.name).join(', ')})`,
                  );
                for (const c of matching) c.image = image;
              }
              return next;
            },
            dryRun,
            'set image',
          );
          out(`${label(t)} image updated${dryRunSuffix(dryRun)}`);
        }
      });
    },
  );
}

// -------------------------------------------------------------------------------------------------
// rollout

async function ownedReplicaSets(api: ApiClient, deployment: Deployment): Promise<ReplicaSet[]> {
  const { items } = await api.list('ReplicaSet', { namespace: deployment.metadata.namespace ?? '' });
  return (items as ReplicaSet[])
    .filter((rs) =>
      rs.metadata.ownerReferences?.some((ref) => ref.controller && ref.uid === deployment.metadata.uid),
    )
    .sort((a, b) => revisionOf(a) - revisionOf(b));
}

function revisionOf(rs: ReplicaSet): number {
  return Number(rs.metadata.annotations?.[REVISION] ?? 0) || 0;
}

/** kubectl's words for where a rollout is; done when it finished, error when it cannot. */
export function rolloutState(d: Deployment): { done: boolean; message: string; failed?: boolean } {
  const name = d.metadata.name;
  if ((d.metadata.generation ?? 0) > (d.status?.observedGeneration ?? 0))
    return { done: false, message: 'Waiting for deployment spec update to be observed...' };
  const progressing = d.status?.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded')
    return { done: true, failed: true, message: `deployment "${name}" exceeded its progress deadline` };
  const replicas = d.spec.replicas ?? 1;
  const updated = d.status?.updatedReplicas ?? 0;
  const total = d.status?.replicas ?? 0;
  const available = d.status?.availableReplicas ?? 0;
  if (updated < replicas)
    return {
      done: false,
      message: `Waiting for deployment "${name}" rollout to finish: ${updated} out of ${replicas} new replicas have been updated...`,
    };
  if (total > updated)
    return {
      done: false,
      message: `Waiting for deployment "${name}" rollout to finish: ${total - updated} old replicas are pending termination...`,
    };
  if (available < updated)
    return {
      done: false,
      message: `Waiting for deployment "${name}" rollout to finish: ${available} of ${updated} updated replicas are available...`,
    };
  return { done: true, message: `deployment "${name}" successfully rolled out` };
}

function oneDeployment(args: string[], verb: string, flags: { namespace?: string }): Target {
  const targets = targetsOf(args, verb, ['Deployment'], flags);
  if (targets.length !== 1) throw new InvalidArgumentError(`${verb}: name one deployment`, 'name');
  return targets[0]!;
}

export function registerRollout(program: Command): void {
  const rollout = program.command('rollout').description("manage deployments' rollouts");
  const namespaced = (c: Command) => c.option('-n, --namespace <ns>', 'namespace (default: default)');

  namespaced(
    rollout
      .command('status')
      .description('wait for a rollout to finish; exit 1 if it exceeded its progress deadline')
      .argument('<deployment...>', 'deployment/NAME or deployment NAME')
      .option(
        '-w, --watch [bool]',
        'wait for the end (default true; false: print once)',
        (v: string) => v !== 'false',
      )
      .option(
        '--timeout <duration>',
        'give up after this long (e.g. 60s; default: no limit)',
        parseDurationOption('--timeout'),
      ),
  ).action(
    async (
      args: string[],
      flags: { namespace?: string; watch?: boolean; timeout?: number },
      cmd: Command,
    ) => {
      const t = oneDeployment(args, 'rollout status', flags);
      await withClient(cmd, async (api) => {
        const deadline = flags.timeout !== undefined ? Date.now() + flags.timeout : Infinity;
        let last = '';
        for (;;) {
          const state = rolloutState((await api.get('Deployment', t.namespace, t.name)) as Deployment);
          if (state.message !== last) {
            if (state.failed) process.stderr.write(`error: ${state.message}\n`);
            else out(state.message);
            last = state.message;
          }
          if (state.failed) {
            process.exitCode = 1;
            return;
          }
          if (state.done || flags.watch === false) return;
          if (Date.now() >= deadline) {
            process.stderr.write(`error: timed out waiting for the condition\n`);
            process.exitCode = 1;
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      });
    },
  );

  namespaced(
    rollout
      .command('history')
      .description("list a deployment's revisions")
      .argument('<deployment...>', 'deployment/NAME')
      .option('--revision <n>', 'show the template of this revision', parseNonNegativeInt('--revision')),
  ).action(async (args: string[], flags: { namespace?: string; revision?: number }, cmd: Command) => {
    const t = oneDeployment(args, 'rollout history', flags);
    await withClient(cmd, async (api) => {
      const d = (await api.get('Deployment', t.namespace, t.name)) as Deployment;
      const sets = await ownedReplicaSets(api, d);
      if (flags.revision !== undefined) {
        const rs = sets.find((s) => revisionOf(s) === flags.revision);
        if (rs === undefined)
          throw new NotFoundError(`rollout history ${label(t)}: no revision ${flags.revision}`);
        const { stringify } = await import('yaml');
        out(
          `${label(t)} with revision #${flags.revision}\nPod Template:\n${stringify(rs.spec.template).trimEnd()}`,
        );
        return;
      }
      out(`${label(t)}\nREVISION  CHANGE-CAUSE`);
      for (const rs of sets)
        out(`${String(revisionOf(rs)).padEnd(10)}${rs.metadata.annotations?.[CHANGE_CAUSE] ?? '<none>'}`);
    });
  });

  namespaced(
    registerDryRun(
      rollout
        .command('undo')
        .description('roll back to the previous revision, or to --to-revision')
        .argument('<deployment...>', 'deployment/NAME')
        .option(
          '--to-revision <n>',
          'the revision to go back to (default: the one before the current)',
          parseNonNegativeInt('--to-revision'),
        ),
    ),
  ).action(
    async (
      args: string[],
      flags: { namespace?: string; toRevision?: number; dryRun?: string | boolean },
      cmd: Command,
    ) => {
      const t = oneDeployment(args, 'rollout undo', flags);
      const dryRun = dryRunOf(flags.dryRun);
      await withClient(cmd, async (api) => {
        const d = (await api.get('Deployment', t.namespace, t.name)) as Deployment;
        const sets = await ownedReplicaSets(api, d);
        const current = Number(d.metadata.annotations?.[REVISION] ?? 0);
        const target =
          flags.toRevision !== undefined && flags.toRevision !== 0
            ? sets.find((rs) => revisionOf(rs) === flags.toRevision)
            : [...sets].reverse().find((rs) => revisionOf(rs) < current);
        if (target === undefined)
          throw new NotFoundError(
            flags.toRevision
              ? `rollout undo ${label(t)}: no revision ${flags.toRevision}`
              : `rollout undo ${label(t)}: no revision before ${current} to roll back to`,
          );
        const template = structuredClone(target.spec.template ?? {});
        if (template.metadata?.labels) delete template.metadata.labels[POD_TEMPLATE_HASH];
        const result = await updateObject(
          api,
          t.info,
          t.namespace,
          t.name,
          (live) => ({ ...live, spec: { ...(live['spec'] as Record<string, unknown>), template } }),
          dryRun,
          'rollout undo',
        );
        out(
          `${label(t)} ${result.changed ? 'rolled back' : 'skipped rollback (current template already matches revision ' + revisionOf(target) + ')'}${dryRunSuffix(dryRun)}`,
        );
      });
    },
  );

  const simple = (
    verb: 'restart' | 'pause' | 'resume',
    description: string,
    change: (spec: Record<string, unknown>) => void,
    done: string,
  ) =>
    namespaced(
      registerDryRun(
        rollout.command(verb).description(description).argument('<deployment...>', 'deployment/NAME'),
      ),
    ).action(
      async (args: string[], flags: { namespace?: string; dryRun?: string | boolean }, cmd: Command) => {
        const dryRun = dryRunOf(flags.dryRun);
        const targets = targetsOf(args, `rollout ${verb}`, ['Deployment'], flags);
        await withClient(cmd, async (api) => {
          for (const t of targets) {
            const result = await updateObject(
              api,
              t.info,
              t.namespace,
              t.name,
              (live) => {
                const spec = structuredClone(live['spec'] as Record<string, unknown>);
                change(spec);
                return { ...live, spec };
              },
              dryRun,
              `rollout ${verb}`,
            );
            out(
              `${label(t)} ${result.changed || verb === 'restart' ? done : `already ${done}`}${dryRunSuffix(dryRun)}`,
            );
          }
        });
      },
    );
  simple(
    'restart',
    'replace every pod, through a rollout',
    (spec) => {
      const template = (spec['template'] ??= {}) as Record<string, unknown>;
      const metadata = (template['metadata'] ??= {}) as Record<string, unknown>;
      metadata['annotations'] = {
        ...(metadata['annotations'] as object | undefined),
        [RESTARTED_AT]: new Date().toISOString(),
      };
    },
    'restarted',
  );
  simple('pause', 'stop rolling out template changes', (spec) => void (spec['paused'] = true), 'paused');
  simple('resume', 'roll out template changes again', (spec) => void delete spec['paused'], 'resumed');
}
