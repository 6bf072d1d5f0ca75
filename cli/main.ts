/**
 * The one `skiff` binary: CLI verbs, `skiff up`/`down`, `skiff controlplane`, `skiff agent` and
 * `skiff runtime`. Each area registers its commands from cli/commands/<area>.ts; program.ts loads
 * only the ones a command line needs. The installed binary starts here through cli/launcher.cts
 * (Node.js version check, compile cache).
 */
import { CommanderError } from 'commander';
import { errorMessage } from '../proto/errors.js';
import { buildProgram } from './program.js';

try {
  const program = await buildProgram(process.argv.slice(2));
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`error: ${errorMessage(err)}\n`);
  process.exit(1);
}
