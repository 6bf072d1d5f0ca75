#!/usr/bin/env node
/**
 * The one `skiff` binary: CLI verbs, `skiff up`/`down`, `skiff controlplane`, `skiff agent` and
 * `skiff runtime`. Each area registers its commands from cli/commands/<area>.ts.
 */
import { Command, CommanderError } from 'commander';
import { errorMessage } from '../proto/errors.js';
import { registerApiResources } from './commands/api-resources.js';
import { registerApply } from './commands/apply.js';
import { registerClusterInfo, registerConfig } from './commands/config.js';
import { registerControlPlane } from './commands/controlplane.js';
import { registerGlobalOptions } from './commands/context.js';
import { registerDelete } from './commands/delete.js';
import { registerDescribe } from './commands/describe.js';
import { registerGet } from './commands/get.js';
import { registerRuntime } from './commands/runtime.js';
import { registerDown, registerUp } from './commands/up.js';
import { registerVersion } from './commands/version.js';

const program = new Command('skiff')
  .description('skiff: a Kubernetes-style cluster orchestrator with its own container runtime')
  .showHelpAfterError()
  .exitOverride();

registerGlobalOptions(program);
registerVersion(program);
registerApply(program);
registerGet(program);
registerDescribe(program);
registerDelete(program);
registerApiResources(program);
registerConfig(program);
registerClusterInfo(program);
registerUp(program);
registerDown(program);
registerControlPlane(program);
registerRuntime(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`error: ${errorMessage(err)}\n`);
  process.exit(1);
}
