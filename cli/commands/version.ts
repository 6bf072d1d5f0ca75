/** `skiff --version` (the client's version) and `skiff version` (client, and server when reachable). */
import type { Command } from 'commander';
import { errorMessage } from '../../proto/errors.js';
import { packageVersion } from '../../proto/package-info.js';
import { out, withClient } from './context.js';

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description("print the client's version, and the server's when it is reachable")
    .option('--client', 'client version only; do not contact the server')
    .option('-o, --output <format>', 'json')
    .action(async (opts: { client?: boolean; output?: string }, command: Command) => {
      const client = packageVersion();
      let server: string | undefined;
      let problem: string | undefined;
      if (!opts.client) {
        try {
          server = await withClient(command, async (api) => (await api.version()).version);
        } catch (err) {
          problem = errorMessage(err);
        }
      }
      if (opts.output === 'json') {
        const versions = { clientVersion: client, nodeVersion: process.version };
        out(JSON.stringify({ ...versions, ...(server ? { serverVersion: server } : {}) }, null, 2));
      } else {
        out(`Client Version: ${client}`);
        out(`Node.js Version: ${process.version}`);
        if (server) out(`Server Version: ${server}`);
      }
      if (problem) process.stderr.write(`server version unavailable: ${problem}\n`);
    });
}
