/** `skiff --version` (the client's version) and `skiff version` (client, and server when reachable). */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { errorMessage } from '../../proto/errors.js';
import { out, withClient } from './context.js';

/** The package's version, read from package.json beside dist/ (built) or the source tree (tsx). */
export function packageVersion(): string {
  const candidates = [
    new URL('../../../package.json', import.meta.url),
    new URL('../../package.json', import.meta.url),
  ];
  const path = candidates.find((url) => existsSync(url)) ?? candidates[0]!;
  const pkg = JSON.parse(readFileSync(path, 'utf8')) as { version: string };
  return pkg.version;
}

export function registerVersion(program: Command): void {
  program.version(packageVersion(), '--version');
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
        out(JSON.stringify({ clientVersion: client, ...(server ? { serverVersion: server } : {}) }, null, 2));
      } else {
        out(`Client Version: ${client}`);
        if (server) out(`Server Version: ${server}`);
      }
      if (problem) process.stderr.write(`server version unavailable: ${problem}\n`);
    });
}
