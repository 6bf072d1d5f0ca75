/**
 * What every verb that talks to the cluster shares: the global `--context`/`--server`/`--token`/
 * `--request-timeout` flags, the client built from them and the config file, the namespace flags
 * and `--dry-run`. (`KIND NAME…` arguments are in resource-args.ts: they need the kind registry,
 * which `skiff version --client` must not load.)
 */
// Commander reports this as `error: option '…' argument '…' is invalid. <message>`.
import { InvalidArgumentError as InvalidOptionValue, type Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { isUnixAddress } from '../../proto/api-address.js';
import { readFileSync } from 'node:fs';
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../../proto/errors.js';
import type { ClientConfig } from '../config.js';
import type { KindInfo } from '../../proto/kinds.js';

export const DEFAULT_NAMESPACE = 'default';

export function registerGlobalOptions(program: Command): void {
  program
    .option('--context <name>', 'the client config context to use (default: its current context)')
    .option(
      '--server <address>',
      "the API's address, host:port (TLS with the cluster CA) or unix:///path (the control plane's socket); overrides the context",
    )
    .option('--token <token>', 'bearer token (overrides the context)')
    .option(
      '--certificate-authority <file>',
      "the cluster CA's certificate (PEM) to verify a TLS API server with (overrides the context)",
    )
    .option(
      '--request-timeout <duration>',
      'deadline of each API call: 1s, 500ms, 2m (a bare number is milliseconds; 0: none)',
      parseDurationOption('--request-timeout'),
    );
}

interface GlobalOptions {
  context?: string;
  server?: string;
  token?: string;
  certificateAuthority?: string;
  requestTimeout?: number;
}

/** The global options as given to `command` or any of its parents. */
export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

/** Runs `fn` with a connected client and always closes it. */
export async function withClient<T>(
  command: Command,
  fn: (api: ApiClient, config: ClientConfig) => Promise<T>,
): Promise<T> {
  const opts = globalOptions(command);
  // Loaded here, not at the top, so that verbs which never call the API (version --client, help)
  // load neither the config's YAML parser nor gRPC.
  const [{ resolveClientConfig }, { connectApi }] = await Promise.all([
    import('../config.js'),
    import('../../proto/client.js'),
  ]);
  const config = resolveClientConfig({
    server: opts.server,
    token: opts.token,
    context: opts.context,
    ca: opts.certificateAuthority,
  });
  const timeoutMs = opts.requestTimeout === 0 ? Infinity : opts.requestTimeout;
  // The control plane's socket carries no TLS: its CA is for the cluster's TCP address.
  const tls = config.ca && !isUnixAddress(config.server);
  const api = connectApi({
    server: config.server,
    token: config.token,
    timeoutMs,
    ...(tls ? { tls: { ca: readCertificateAuthority(config.ca!) } } : {}),
  });
  try {
    return await fn(api, config);
  } finally {
    api.close();
  }
}

/** The PEM of a certificate-authority file; FailedPreconditionError naming it when unreadable. */
export function readCertificateAuthority(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FailedPreconditionError(
      `read certificate-authority ${path}: ${errorMessage(err)}; it is the cluster CA (<state-dir>/pki/ca.crt of \`skiff up\`)`,
      { cause: err },
    );
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new FailedPreconditionError(`read certificate-authority ${path}: it holds no PEM certificate`);
  return pem;
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * A duration in milliseconds: Go's syntax as kubectl takes it (`1s`, `500ms`, `1m30s`, `1.5h`), a
 * bare number of milliseconds (what skiff always took), or 0 for none. Throws InvalidArgumentError.
 */
export function parseDuration(value: string, flag: string): number {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let match = part.exec(text); match !== null; match = part.exec(text)) {
    total += Number(match[1]) * DURATION_UNITS[match[2]!]!;
    at = part.lastIndex;
  }
  if (text === '' || at !== text.length) {
    throw new InvalidArgumentError(
      `${flag} must be a duration such as 1s, 500ms or 2m (or a number of milliseconds), got "${value}"`,
      flag.replace(/^--/, ''),
    );
  }
  return Math.round(total);
}

export function parseDurationOption(flag: string): (value: string) => number {
  return (value: string) => {
    try {
      return parseDuration(value, flag);
    } catch (err) {
      throw new InvalidOptionValue((err as Error).message);
    }
  };
}

/** A duration (`10s`, `1m`) given in whole seconds, at least `minSeconds`: the number of seconds. */
export function parseSecondsOption(flag: string, minSeconds: number): (value: string) => number {
  const duration = parseDurationOption(flag);
  return (value: string) => {
    const ms = duration(value);
    if (ms % 1000 !== 0 || ms < minSeconds * 1000)
      throw new InvalidOptionValue(`${flag} must be whole seconds, at least ${minSeconds}s, got "${value}"`);
    return ms / 1000;
  };
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

/** A decimal number from 0 to `max` (a rate per second, a fraction). */
export function parseNonNegativeNumber(flag: string, max = Infinity): (value: string) => number {
  return (value: string) => {
    const number = Number(value);
    if (!/^(\d+(\.\d*)?|\.\d+)$/.test(value) || number > max)
      throw new InvalidOptionValue(
        `${flag} must be a number from 0${max === Infinity ? '' : ` to ${max}`}, got "${value}"`,
      );
    return number;
  };
}

/** A port range `min-max` (Kubernetes' --service-node-port-range), both within 1-65535. */
export function parsePortRange(flag: string): (value: string) => { min: number; max: number } {
  return (value: string) => {
    const match = /^(\d{1,5})-(\d{1,5})$/.exec(value.trim());
    const min = Number(match?.[1]);
    const max = Number(match?.[2]);
    if (!match || min < 1 || max > 65535 || min > max)
      throw new InvalidOptionValue(`${flag} must be a port range such as 30000-32767, got "${value}"`);
    return { min, max };
  };
}

/** Collects a repeatable option's values (`--from-literal a=1 --from-literal b=2`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export type DryRun = 'none' | 'client' | 'server';

/** `--dry-run[=client|server|none]`: kubectl's strategies; bare `--dry-run` is client. */
export function registerDryRun(
  command: Command,
  what = 'client: print what would be sent and send nothing; server: the server checks every write and stores nothing',
): Command {
  return command.option(`--dry-run [strategy]`, `${what}; none (bare --dry-run: client)`, (value: string) => {
    if (value !== 'none' && value !== 'client' && value !== 'server')
      throw new InvalidOptionValue(`--dry-run must be "none", "client" or "server", got "${value}"`);
    return value;
  });
}

export function dryRunOf(value: string | boolean | undefined): DryRun {
  if (value === undefined || value === false) return 'none';
  if (value === true) return 'client';
  return value as DryRun;
}

/** The suffix kubectl adds to what a dry run would have done: `configmap/x created (dry run)`. */
export function dryRunSuffix(dryRun: DryRun): string {
  return dryRun === 'client' ? ' (dry run)' : dryRun === 'server' ? ' (server dry run)' : '';
}

/** Lines printed to stdout, one write per call so piped output is never interleaved mid-line. */
export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * out() for a verb that prints a line per object as each is done (apply of a whole manifest): the
 * lines printed in one turn of the event loop go out in one write. stdout to a pipe or a file is
 * written synchronously, a system call per write, and 2,000 lines one by one took ~60 ms of the
 * CLI's time. Call flush() before the verb returns or fails: it writes what is pending.
 */
export function lineBatcher(): { print(line: string): void; flush(): void } {
  let pending: string[] = [];
  let scheduled: NodeJS.Immediate | undefined;
  const flush = (): void => {
    if (scheduled !== undefined) clearImmediate(scheduled);
    scheduled = undefined;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    process.stdout.write(text);
  };
  return {
    print(line) {
      pending.push(line.endsWith('\n') ? line : `${line}\n`);
      scheduled ??= setImmediate(flush);
    },
    flush,
  };
}

/** Text printed to stdout exactly as it is (jsonpath output ends where its template ends). */
export function write(text: string): void {
  if (text !== '') process.stdout.write(text);
}

/** kubectl's line for a named object that is not there, so get and describe say it alike. */
export function notFoundLine(info: KindInfo, name: string, namespace: string): string {
  return `Error from server (NotFound): ${info.resource} "${name}" not found${info.namespaced ? ` in namespace "${namespace}"` : ''}`;
}

/** The namespace a kind lives in for these flags: '' for cluster-scoped kinds and -A. */
export function namespaceFor(info: KindInfo, flags: { namespace?: string; allNamespaces?: boolean }): string {
  if (!info.namespaced || flags.allNamespaces) return '';
  return flags.namespace || DEFAULT_NAMESPACE;
}
