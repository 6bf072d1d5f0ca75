/** `skiff config view` and `skiff cluster-info`: what the client config says, and where the cluster is. */
import type { Command } from 'commander';
import { stringify as stringifyYaml } from 'yaml';
import { FailedPreconditionError } from '../../proto/errors.js';
import { defaultConfigPath, readConfigFile, redactConfig } from '../config.js';
import { out, withClient } from './context.js';

export function registerConfig(program: Command): void {
  const config = program.command('config').description('show the client config');
  config
    .command('view')
    .description(`print the client config ($SKIFF_CONFIG, default ~/.skiff/config); the token is redacted`)
    .option('--raw', 'print the token too')
    .option('-o, --output <format>', 'yaml (default) or json')
    .action((opts: { raw?: boolean; output?: string }) => {
      const path = defaultConfigPath();
      const file = readConfigFile(path);
      if (file === undefined) {
        throw new FailedPreconditionError(
          `read client config ${path}: no such file: run \`skiff up\` or pass --server/--token`,
        );
      }
      const shown = opts.raw ? file : redactConfig(file);
      out(opts.output === 'json' ? JSON.stringify(shown, null, 2) : stringifyYaml(shown));
    });
}

export function registerClusterInfo(program: Command): void {
  program
    .command('cluster-info')
    .description('the API address and the HTTP address (/healthz, /readyz, /metrics)')
    .option('-o, --output <format>', 'json')
    .action(async (opts: { output?: string }, command: Command) => {
      await withClient(command, async (api, config) => {
        // Says "running" only after the server answered.
        await api.version();
        if (opts.output === 'json') {
          out(JSON.stringify({ api: config.server, http: config.http ?? null }));
          return;
        }
        out(`skiff control plane is running at ${config.server}`);
        out(
          config.http
            ? `Health (/healthz, /readyz) and metrics (/metrics) at ${config.http}`
            : 'HTTP address unknown: not recorded in the client config (written by `skiff up`)',
        );
      });
    });
}
