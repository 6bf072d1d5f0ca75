/**
 * `skiff registry gc [--dry-run] [-o json]`: the cluster registry's garbage collection, run by the
 * control plane (skiff.v1.Admin CollectRegistryGarbage; admin tokens only). What is deleted and
 * what is kept is controlplane/registry/gc.ts's rule: blobs no manifest references, older than the
 * grace period; untagged manifests keep their blobs.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../proto/errors.js';
import { humanSize } from '../../proto/printing/size.js';
import { out, withClient } from './context.js';

export function registerRegistry(program: Command): void {
  const registry = program.command('registry').description("operations on the cluster's image registry");
  registry
    .command('gc')
    .description(
      'delete blobs no manifest references (admin token); blobs a push may still name (younger than the grace period, an hour) stay',
    )
    .option('--dry-run', 'list what would be deleted; delete nothing')
    .option('-o, --output <format>', 'json')
    .action(async (opts: { dryRun?: boolean; output?: string }, command: Command) => {
      if (opts.output !== undefined && opts.output !== 'json') {
        throw new InvalidArgumentError(
          `skiff registry gc: output format ${JSON.stringify(opts.output)} is not supported; use -o json or no -o`,
          'output',
        );
      }
      await withClient(command, async (api) => {
        const result = await api.collectRegistryGarbage({ dryRun: opts.dryRun === true });
        if (opts.output === 'json') {
          out(JSON.stringify(result, null, 2));
          return;
        }
        const verb = result.dryRun ? 'would delete' : 'deleted';
        for (const blob of result.deleted) out(`${verb} ${blob.digest} (${humanSize(blob.size)})`);
        out(
          `${result.dryRun ? 'dry run: ' : ''}${result.deleted.length} blobs ${verb}, ` +
            `${result.deletedBytes} bytes (${humanSize(result.deletedBytes)}) ${result.dryRun ? 'would be ' : ''}freed; ` +
            `${result.manifests} manifests, ${result.referenced} blobs referenced; ` +
            `${result.young} unreferenced kept (younger than ${result.graceSeconds}s: a push may still name them)`,
        );
      });
    });
}
