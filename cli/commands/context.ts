/**
 * What every verb that talks to the cluster shares: the global `--server`/`--token` flags, the
 * client built from them and the config file, and the namespace flags.
 */
// Commander reports this as `error: option '…' argument '…' is invalid. <message>`.
import { InvalidArgumentError as InvalidOptionValue, type Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import type { ClientConfig } from '../config.js';
import type { KindInfo } from '../../proto/kinds.js';

export const DEFAULT_NAMESPACE = 'default';

export function registerGlobalOptions(program: Command): void {
  program
    .option('--server <host:port>', 'API server address (overrides the client config)')
    .option('--token <token>', 'bearer token (overrides the client config)')
    .option(
      '--request-timeout <ms>',
      'deadline of each API call in milliseconds',
      parsePositiveInt('--request-timeout'),
    );
}

interface GlobalOptions {
  server?: string;
  token?: string;
  requestTimeout?: number;
}

/** Runs `fn` with a connected client and always closes it. */
export async function withClient<T>(
  command: Command,
  fn: (api: ApiClient, config: ClientConfig) => Promise<T>,
): Promise<T> {
  const opts = command.optsWithGlobals<GlobalOptions>();
  // Loaded here, not at the top, so that verbs which never call the API (version --client, help)
  // load neither the config's YAML parser nor gRPC.
  const [{ resolveClientConfig }, { connectApi }] = await Promise.all([
    import('../config.js'),
    import('../../proto/client.js'),
  ]);
  const config = resolveClientConfig({ server: opts.server, token: opts.token });
  const api = connectApi({ server: config.server, token: config.token, timeoutMs: opts.requestTimeout });
  try {
    return await fn(api, config);
  } finally {
    api.close();
  }
}

export function parsePositiveInt(flag: string): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value) || Number(value) <= 0) {
      throw new InvalidOptionValue(`${flag} must be a positive integer, got "${value}"`);
    }
    return Number(value);
  };
}

export function parseNonNegativeInt(flag: string): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value))
      throw new InvalidOptionValue(`${flag} must be a non-negative integer, got "${value}"`);
    return Number(value);
  };
}

/** Lines printed to stdout, one write per call so piped output is never interleaved mid-line. */
export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** kubectl's line for a named object that is not there, so get and describe say it alike. */
export function notFoundLine(info: KindInfo, name: string, namespace: string): string {
  return `Error from server (NotFound): ${info.resource} "${name}" not found${info.namespaced ? ` in namespace "${namespace}"` : ''}`;
}
