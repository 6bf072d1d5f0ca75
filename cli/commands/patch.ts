/**
 * `skiff patch KIND NAME | KIND/NAME | -f FILE -p PATCH [--type strategic|merge|json]`: changes
 * part of a live object, as kubectl patch. The patch (JSON or YAML, or `--patch-file`) is applied
 * on the client against the live object (patches.ts) and written back with the live
 * resourceVersion; a conflict reads again and re-applies. Prints `deployment.apps/web patched`, or
 * `patched (no change)`.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError, errorMessage } from '../../proto/errors.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { parseOutput } from '../output/format.js';
import { formatWritten, WRITTEN_FORMATS, type Written } from '../output/written.js';
import { loadManifests } from './apply.js';
import { dryRunOf, dryRunSuffix, namespaceFor, out, registerDryRun, withClient, write } from './context.js';
import { parseResourceArgs } from './resource-args.js';
import { applyPatch, type Json, type PatchType } from './patches.js';
import { updateObject } from './update-object.js';

interface PatchFlags {
  patch?: string;
  patchFile?: string;
  type: string;
  filename?: string[];
  namespace?: string;
  output?: string;
  dryRun?: string | boolean;
}

/** The patch text as JSON or YAML (kubectl takes both). */
export function parsePatchText(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    try {
      return parseYaml(text);
    } catch (err) {
      throw new InvalidArgumentError(`${source}: not valid JSON or YAML: ${errorMessage(err)}`, 'patch');
    }
  }
}

export function registerPatch(program: Command): void {
  const command = program
    .command('patch')
    .description(
      'change fields of a live object with a strategic merge, JSON merge (RFC 7386) or JSON (RFC 6902) patch',
    )
    .argument('[resources...]', 'KIND NAME or KIND/NAME')
    .option('-p, --patch <patch>', 'the patch, JSON or YAML')
    .option('--patch-file <file>', 'a file holding the patch')
    .option('--type <type>', "strategic (kubectl's default), merge or json", 'strategic')
    .option('-f, --filename <path...>', 'patch the objects these manifests name')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-o, --output <format>', 'print the object: json, yaml, name or jsonpath=TEMPLATE');
  registerDryRun(
    command,
    'client: compute the change from the live object and write nothing; server: the server checks the update and stores nothing',
  ).action(async (args: string[], flags: PatchFlags, cmd: Command) => {
    const dryRun = dryRunOf(flags.dryRun);
    const output = flags.output === undefined ? undefined : parseOutput(flags.output, WRITTEN_FORMATS);
    if (!['strategic', 'merge', 'json'].includes(flags.type))
      throw new InvalidArgumentError(`--type ${flags.type}: use strategic, merge or json`, 'type');
    if ((flags.patch === undefined) === (flags.patchFile === undefined))
      throw new InvalidArgumentError(
        'patch: give the patch with -p PATCH or --patch-file FILE (one of them)',
        'patch',
      );
    let text = flags.patch;
    if (flags.patchFile !== undefined) {
      try {
        text = readFileSync(flags.patchFile, 'utf8');
      } catch (err) {
        throw new InvalidArgumentError(`--patch-file ${flags.patchFile}: ${errorMessage(err)}`, 'patchFile', {
          cause: err,
        });
      }
    }
    const patch = parsePatchText(text!, flags.patchFile ? `--patch-file ${flags.patchFile}` : '-p');
    let targets: { info: Written['info']; namespace: string; name: string }[];
    if (flags.filename) {
      if (args.length)
        throw new InvalidArgumentError('patch: -f cannot be combined with KIND NAME', 'filename');
      targets = (await loadManifests(flags.filename, flags.namespace)).map((p) => ({
        info: p.info,
        namespace: p.namespace,
        name: p.name,
      }));
    } else {
      const { groups, named } = parseResourceArgs(args, 'patch');
      if (!named)
        throw new InvalidArgumentError('patch: name the object: KIND NAME, KIND/NAME or -f FILE', 'name');
      targets = groups.flatMap(({ info, names }) =>
        names.map((name) => ({ info, namespace: namespaceFor(info, flags), name })),
      );
    }
    await withClient(cmd, async (api) => {
      const results: Written[] = [];
      for (const t of targets) {
        const result = await updateObject(
          api,
          t.info,
          t.namespace,
          t.name,
          (live) =>
            applyPatch(flags.type as PatchType, live as unknown as Json, patch) as unknown as ObjectJson,
          dryRun,
          'patch',
        );
        results.push({
          info: t.info,
          name: t.name,
          action: result.changed ? 'patched' : 'patched (no change)',
          object: result.after as unknown as ObjectJson,
        });
      }
      const text = formatWritten(results, output, dryRunSuffix(dryRun));
      if (output?.type === 'jsonpath') write(text);
      else if (text) out(text);
    });
  });
}
