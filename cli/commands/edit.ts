/**
 * `skiff edit KIND NAME… | KIND/NAME…`: opens the objects as YAML (or JSON with -o json) in
 * $SKIFF_EDITOR, $KUBE_EDITOR, $EDITOR or vi, and writes back what was changed, as kubectl edit:
 *
 * - lines starting with `#` are ignored; an empty file or an unchanged one cancels;
 * - an edit the client or the server refuses (a bad field, a changed name) re-opens the file with
 *   the errors as comments at the top; saving it unchanged again gives up, keeping a copy;
 * - each object is written with the resourceVersion it was read at: if someone changed it
 *   meanwhile, the edit fails and a copy of the file is kept, as kubectl does.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import {
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  errorMessage,
} from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import { kindInfoOf, type KindInfo } from '../../proto/kinds.js';
import { parseObject } from '../../proto/objects.js';
import { deepEqual, resourceName } from '../apply.js';
import { parseManifestSource } from '../manifests.js';
import { formatValue, listOf } from '../output/format.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { namespaceFor, notFoundLine, out, withClient } from './context.js';
import { parseResourceArgs } from './resource-args.js';
import { checkIdentity } from './update-object.js';

const HEADER = [
  "# Please edit the object below. Lines beginning with a '#' will be ignored,",
  '# and an empty file will abort the edit. If an error occurs while saving this file will be',
  '# reopened with the relevant failures.',
  '#',
];

/** The editor command: SKIFF_EDITOR, KUBE_EDITOR, EDITOR, else vi. */
export function editorCommand(env: NodeJS.ProcessEnv = process.env): string {
  return env.SKIFF_EDITOR || env.KUBE_EDITOR || env.EDITOR || 'vi';
}

/** The file's text without the comment lines (`#` in the first column; YAML content never starts so). */
export function stripComments(text: string): string {
  return text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n');
}

/** The buffer shown: the header, the errors of the last attempt as comments, the body. */
export function editBuffer(body: string, errors: string[]): string {
  const errorLines = errors.length
    ? [...errors.flatMap((e) => e.split('\n').map((line) => `# ${line}`.trimEnd())), '#']
    : [];
  return [...HEADER, ...errorLines, body].join('\n');
}

function runEditor(file: string): void {
  const editor = editorCommand();
  // Through the shell, as kubectl does, so "code --wait" or "emacs -nw" work as EDITOR.
  const result = spawnSync('/bin/sh', ['-c', `${editor} "$1"`, 'sh', file], { stdio: 'inherit' });
  if (result.error)
    throw new FailedPreconditionError(`edit: run editor "${editor}": ${errorMessage(result.error)}`);
  if (result.status !== 0) {
    throw new FailedPreconditionError(
      `edit: the editor "${editor}" exited with ${result.signal ? `signal ${result.signal}` : `status ${result.status}`}; nothing was changed`,
    );
  }
}

interface Original {
  info: KindInfo;
  object: KubeObject;
}

/** Reads the edited body back into objects matching the originals one for one. */
function readEdited(body: string, originals: Original[], file: string): KubeObject[] {
  const docs = parseManifestSource({ name: file, text: body });
  const objects: unknown[] = docs.map((d) => d.object);
  if (objects.length !== originals.length) {
    throw new InvalidArgumentError(
      `the edited file holds ${objects.length} object(s), not the ${originals.length} it was opened with: objects cannot be added or removed by edit`,
      'items',
    );
  }
  return objects.map((json, i) => {
    const original = originals[i]!;
    const where = `${original.info.resource} "${original.object.metadata.name}"`;
    try {
      const edited = parseObject(json);
      checkIdentity(original.object, edited);
      return edited;
    } catch (err) {
      if (err instanceof InvalidArgumentError) {
        const field = err.field && !err.message.includes(err.field) ? `${err.field}: ` : '';
        throw new InvalidArgumentError(`${where} was not valid:\n* ${field}${err.message}`, err.field, {
          cause: err,
        });
      }
      throw err;
    }
  });
}

async function writeBack(api: ApiClient, originals: Original[], edited: KubeObject[]): Promise<string[]> {
  const lines: string[] = [];
  for (const [i, object] of edited.entries()) {
    const original = originals[i]!;
    const name = resourceName(original.info.kind, original.info.group, original.object.metadata.name ?? '');
    if (deepEqual(object, original.object)) continue;
    object.metadata.resourceVersion ||= original.object.metadata.resourceVersion;
    try {
      await api.update(object);
    } catch (err) {
      if (err instanceof InvalidArgumentError) {
        const field = err.field && !err.message.includes(err.field) ? `${err.field}: ` : '';
        throw new InvalidArgumentError(
          `${original.info.resource} "${original.object.metadata.name}" was not valid:\n* ${field}${err.message}`,
          err.field,
          { cause: err },
        );
      }
      throw err;
    }
    lines.push(`${name} edited`);
  }
  return lines;
}

export async function runEdit(api: ApiClient, originals: Original[], format: 'yaml' | 'json'): Promise<void> {
  const value =
    originals.length === 1
      ? originals[0]!.object
      : listOf(originals.map((o) => o.object as unknown as ObjectJson));
  const original = formatValue(value, format);
  const dir = mkdtempSync(join(tmpdir(), 'skiff-edit-'));
  const file = join(dir, `${originals.length === 1 ? originals[0]!.info.singular : 'list'}-edit.${format}`);
  let keep = false;
  const keepCopy = (): string => {
    keep = true;
    return `A copy of your changes has been stored to "${file}"`;
  };
  try {
    let errors: string[] = [];
    let lastSaved: string | undefined;
    for (;;) {
      const shown = editBuffer(lastSaved ?? original, errors);
      writeFileSync(file, shown, { mode: 0o600 });
      runEditor(file);
      const body = stripComments(readFileSync(file, 'utf8'));
      if (body.trim() === '') {
        if (errors.length) throw new FailedPreconditionError('Edit cancelled, no valid changes were saved.');
        out('Edit cancelled, saved file was empty.');
        return;
      }
      if (body === original) {
        out('Edit cancelled, no changes made.');
        return;
      }
      if (errors.length && body === lastSaved) {
        throw new FailedPreconditionError(`Edit cancelled, no valid changes were saved.\n${keepCopy()}`);
      }
      lastSaved = body;
      try {
        const edited = readEdited(body, originals, file);
        const lines = await writeBack(api, originals, edited);
        if (lines.length === 0) out('Edit cancelled, no changes made.');
        else out(lines.join('\n'));
        return;
      } catch (err) {
        if (err instanceof InvalidArgumentError) {
          errors = [err.message];
          continue;
        }
        if (err instanceof ConflictError) {
          throw new ConflictError(
            `${errorMessage(err)}: the object has been modified; please apply your changes to the latest version and try again\n${keepCopy()}`,
            { cause: err },
          );
        }
        throw err;
      }
    }
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

export function registerEdit(program: Command): void {
  program
    .command('edit')
    .description(
      'edit live objects in $SKIFF_EDITOR, $KUBE_EDITOR or $EDITOR (default vi) and write back the changes',
    )
    .argument('<resources...>', 'KIND NAME… or KIND/NAME…')
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-o, --output <format>', 'yaml (default) or json: the format to edit in')
    .action(async (args: string[], opts: { namespace?: string; output?: string }, command: Command) => {
      const format = opts.output ?? 'yaml';
      if (format !== 'yaml' && format !== 'json')
        throw new InvalidArgumentError(`edit: -o ${format}: edit in yaml or json`, 'output');
      const { groups, named } = parseResourceArgs(args, 'edit');
      if (!named) throw new InvalidArgumentError('edit: name the objects: KIND NAME… or KIND/NAME…', 'name');
      await withClient(command, async (api) => {
        const originals: Original[] = [];
        const missing: string[] = [];
        for (const { info, names } of groups) {
          const namespace = namespaceFor(info, opts);
          for (const name of names) {
            try {
              originals.push({
                info: kindInfoOf(info.kind),
                object: await api.get(info.kind, namespace, name),
              });
            } catch (err) {
              if (!(err instanceof NotFoundError)) throw err;
              missing.push(notFoundLine(info, name, namespace));
            }
          }
        }
        for (const line of missing) process.stderr.write(`${line}\n`);
        if (originals.length) await runEdit(api, originals, format);
        if (missing.length) process.exitCode = 1;
      });
    });
}
