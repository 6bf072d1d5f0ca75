#!/usr/bin/env node
/**
 * The one `skiff` binary: CLI verbs, `skiff up`/`down`, `skiff controlplane`, `skiff agent` and
 * `skiff runtime`. Each area registers its commands from cli/commands/<area>.ts.
 */
import { Command, CommanderError } from 'commander';
import { errorMessage } from '../proto/errors.js';
import { registerVersion } from './commands/version.js';

const program = new Command('skiff')
  .description('skiff: a Kubernetes-style cluster orchestrator with its own container runtime')
  .showHelpAfterError()
  .exitOverride();

registerVersion(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`error: ${errorMessage(err)}\n`);
  process.exit(1);
}
