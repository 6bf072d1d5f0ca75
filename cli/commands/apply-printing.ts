/**
 * `skiff apply` with `--dry-run` or `-o`: each object's action and the object itself, printed as
 * kubectl prints them (`deployment.apps/web configured (server dry run)`, or the objects with -o).
 *
 * - `--dry-run=client` reads the live objects and computes the merge, and sends nothing: the
 *   objects printed are the ones apply would send.
 * - `--dry-run=server` sends every create and update as a server dry run (defaulted, validated
 *   and admitted as the real write, nothing stored): the objects printed are the server's answers.
 * - no dry run, with -o: applies (as applyAll, one object at a time) and prints what the server stored.
 */
import type { ApiClient } from '../../proto/client.js';
import { NotFoundError } from '../../proto/errors.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import type { OutputSpec } from '../output/format.js';
import { formatWritten, type Written } from '../output/written.js';
import { applyObject, checkNamespaces, dryRunAll, type Applied, type PreparedObject } from './apply.js';
import { dryRunSuffix, out, write, type DryRun } from './context.js';

export async function applyPrinting(
  api: ApiClient,
  prepared: PreparedObject[],
  dryRun: DryRun,
  output: OutputSpec | undefined,
): Promise<void> {
  await checkNamespaces(api, prepared);
  // A client dry run sends nothing, so the server judges nothing either.
  if (dryRun !== 'client') await dryRunAll(api, prepared);
  const createdNamespaces = new Set(prepared.filter((p) => p.info.kind === 'Namespace').map((p) => p.name));
  const results: Written[] = [];
  for (const p of prepared) {
    let result: Applied;
    try {
      result = await applyObject(api, p, { dryRun: dryRun === 'server', plan: dryRun === 'client' });
    } catch (err) {
      // A server dry run cannot create in a namespace this same apply only would create.
      if (!(dryRun === 'server' && err instanceof NotFoundError && createdNamespaces.has(p.namespace)))
        throw err;
      result = await applyObject(api, p, { plan: true });
    }
    results.push({
      info: p.info,
      name: p.name,
      action: result.action,
      object: result.object as unknown as ObjectJson,
    });
  }
  const text = formatWritten(results, output, dryRunSuffix(dryRun));
  if (output?.type === 'jsonpath') write(text);
  else if (text) out(text);
}
