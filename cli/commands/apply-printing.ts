/**
 * `skiff apply` with `--dry-run` or `-o`: each object's action and the object itself, printed as
 * kubectl prints them (`deployment.apps/web configured (server dry run)`, or the objects with -o).
 *
 * - `--dry-run=client` reads the live objects and computes the merge, and sends nothing: the
 *   objects printed are the ones apply would send.
 * - `--dry-run=server` sends every create and update as a server dry run (defaulted, validated
 *   and admitted as the real write, nothing stored): the objects printed are the server's answers.
 * - no dry run, with -o: applies as applyAll does (a dry run of every document first, then the
 *   writes, several at a time) and prints what the server stored, in document order.
 */
import type { ApiClient } from '../../proto/client.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import type { OutputSpec } from '../output/format.js';
import { formatWritten, type Written } from '../output/written.js';
import { applyEvery, dryRunOutcomes, type Applied, type PreparedObject } from './apply.js';
import { dryRunSuffix, out, write, type DryRun } from './context.js';

export async function applyPrinting(
  api: ApiClient,
  prepared: PreparedObject[],
  dryRun: DryRun,
  output: OutputSpec | undefined,
): Promise<void> {
  let outcomes: Map<PreparedObject, Applied>;
  if (dryRun === 'none') {
    outcomes = new Map();
    await applyEvery(api, prepared, (p, applied) => outcomes.set(p, applied), { keepAnswers: true });
  } else {
    outcomes = await dryRunOutcomes(api, prepared, dryRun === 'client');
  }
  const results: Written[] = prepared.map((p) => {
    const result = outcomes.get(p)!;
    return {
      info: p.info,
      name: p.name,
      action: result.action,
      object: result.object as unknown as ObjectJson,
    };
  });
  const text = formatWritten(results, output, dryRunSuffix(dryRun));
  if (output?.type === 'jsonpath') write(text);
  else if (text) out(text);
}
