/**
 * `skiff diff -f FILE|DIR|-`: what `apply` would change, as kubectl diff shows it: for each object
 * a unified diff between the live object and the server's dry run of what apply would write (the
 * three-way merge of the manifest into the live object; a dry-run create for a new one). Secret
 * values, and a Secret's last-applied copy of its manifest, are masked (`***`, or `*** (before)` /
 * `*** (after)` where they change).
 *
 * Exit status as kubectl's: 0 no differences, 1 differences, 2 an error.
 */
import { CommanderError, type Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { errorMessage, NotFoundError } from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { LAST_APPLIED_ANNOTATION } from '../apply.js';
import { formatValue } from '../output/format.js';
import { unifiedDiff } from '../output/unified-diff.js';
import { applyObject, checkNamespaces, loadManifests, type PreparedObject } from './apply.js';
import { withClient, write } from './context.js';

/** kubectl's file name of an object in a diff: `apps.v1.Deployment.default.web`. */
export function diffName(p: { info: PreparedObject['info']; namespace: string; name: string }): string {
  return [p.info.group, 'v1', p.info.kind, p.namespace, p.name].filter((part) => part !== '').join('.');
}

/** Secret data replaced by `***`, marked before/after where the two sides differ. */
export function maskSecrets(
  live: ObjectJson | undefined,
  merged: ObjectJson | undefined,
): [ObjectJson | undefined, ObjectJson | undefined] {
  const isSecret = (o: ObjectJson | undefined) => o?.kind === 'Secret';
  if (!isSecret(live) && !isSecret(merged)) return [live, merged];
  const data = (o: ObjectJson | undefined) => (o?.data ?? {}) as Record<string, string>;
  const before = data(live);
  const after = data(merged);
  const mask = (own: Record<string, string>, other: Record<string, string>, label: string) =>
    Object.fromEntries(
      Object.keys(own).map((key) => [
        key,
        Object.hasOwn(other, key) && other[key] !== own[key] ? `*** (${label})` : '***',
      ]),
    );
  // apply's copy of the manifest holds the values too (stringData in the clear).
  const lastApplied = (o: ObjectJson | undefined) =>
    (
      (o?.metadata as Record<string, unknown> | undefined)?.annotations as Record<string, string> | undefined
    )?.[LAST_APPLIED_ANNOTATION];
  const masked = (
    o: ObjectJson | undefined,
    own: Record<string, string>,
    other: Record<string, string>,
    label: string,
  ) => {
    if (o === undefined) return o;
    const copy = structuredClone(o);
    if (copy.data !== undefined) copy.data = mask(own, other, label);
    const mine = lastApplied(o);
    if (mine !== undefined) {
      const theirs = lastApplied(o === live ? merged : live);
      const annotations = (copy.metadata as { annotations: Record<string, string> }).annotations;
      annotations[LAST_APPLIED_ANNOTATION] =
        theirs !== undefined && theirs !== mine ? `*** (${label})` : '***';
    }
    return copy;
  };
  return [masked(live, before, after, 'before'), masked(merged, after, before, 'after')];
}

async function diffOne(api: ApiClient, p: PreparedObject, createdNamespaces: Set<string>): Promise<string> {
  let live: KubeObject | undefined;
  try {
    live = await api.get(p.info.kind, p.namespace, p.name);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  let merged: KubeObject;
  try {
    merged = (await applyObject(api, p, { dryRun: true })).object;
  } catch (err) {
    // Its namespace is created by the same manifests: the server cannot judge it yet.
    if (!(err instanceof NotFoundError && createdNamespaces.has(p.namespace))) throw err;
    merged = (await applyObject(api, p, { plan: true })).object;
  }
  const [before, after] = maskSecrets(
    live as unknown as ObjectJson | undefined,
    merged as unknown as ObjectJson,
  );
  const name = diffName(p);
  return unifiedDiff(
    before === undefined ? '' : formatValue(before, 'yaml'),
    formatValue(after, 'yaml'),
    `LIVE/${name}`,
    `MERGED/${name}`,
  );
}

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description(
      'show what apply would change: live objects against the server dry run of the apply (exit 1 when they differ)',
    )
    .requiredOption(
      '-f, --filename <path...>',
      'manifest file, directory of *.yaml/*.yml/*.json, or - for stdin',
    )
    .option('-n, --namespace <ns>', 'namespace for objects that do not name one')
    // kubectl diff: exit status 1 means "differences"; every error is 2 or more.
    .exitOverride((err) => {
      throw err.exitCode === 0 ? err : new CommanderError(2, err.code, err.message);
    })
    .action(async (opts: { filename: string[]; namespace?: string }, command: Command) => {
      try {
        const prepared = await loadManifests(opts.filename, opts.namespace);
        const createdNamespaces = new Set(
          prepared.filter((p) => p.info.kind === 'Namespace').map((p) => p.name),
        );
        const ordered = [
          ...prepared.filter((p) => p.info.kind === 'Namespace'),
          ...prepared.filter((p) => p.info.kind !== 'Namespace'),
        ];
        let differ = false;
        await withClient(command, async (api) => {
          await checkNamespaces(api, ordered);
          for (const p of ordered) {
            const text = await diffOne(api, p, createdNamespaces);
            if (text !== '') {
              differ = true;
              write(text);
            }
          }
        });
        if (differ) process.exitCode = 1;
      } catch (err) {
        process.stderr.write(`error: ${errorMessage(err)}\n`);
        process.exitCode = 2;
      }
    });
}
