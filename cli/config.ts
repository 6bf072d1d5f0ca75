/**
 * The client config: where the CLI finds its cluster. It lives at `$SKIFF_CONFIG` (default
 * `~/.skiff/config`), YAML or JSON, mode 0600 because it holds a bearer token:
 *
 *   server: 127.0.0.1:7440          # gRPC API, host:port
 *   token: <admin token>            # bearer token sent with every call
 *   http: http://127.0.0.1:7441     # dashboard, /metrics, registry (written by `skiff up`)
 *   ca: /var/lib/skiff/ca.crt       # cluster CA, for when the API speaks TLS
 *
 * `--server` and `--token` override the file per invocation; with both given no file is needed.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { writeFileAtomic } from '../proto/support/atomic-file.js';
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../proto/errors.js';

export interface ClientConfig {
  /** gRPC API address, `host:port`. */
  server: string;
  token: string;
  /** HTTP address of the control plane (`http://host:port`), when known. */
  http?: string;
  /** Path of the cluster CA certificate (PEM), for TLS. */
  ca?: string;
}

export interface ConfigOverrides {
  server?: string;
  token?: string;
}

const KNOWN_FIELDS = new Set(['server', 'token', 'http', 'ca']);

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SKIFF_CONFIG || join(homedir(), '.skiff', 'config');
}

/** Parses and validates config text; `source` names the file in errors. */
export function parseConfig(text: string, source: string): Partial<ClientConfig> {
  let raw: unknown = parsePlainConfig(text);
  if (raw === undefined) raw = parseWithYaml(text, source);
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidArgumentError(
      `read client config ${source}: expected a mapping of server, token, http, ca`,
    );
  }
  const config: Partial<ClientConfig> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!KNOWN_FIELDS.has(key)) {
      throw new InvalidArgumentError(
        `read client config ${source}: unknown field "${key}" (known: server, token, http, ca)`,
        key,
      );
    }
    if (typeof value !== 'string') {
      throw new InvalidArgumentError(`read client config ${source}: field "${key}" must be a string`, key);
    }
    config[key as keyof ClientConfig] = value;
  }
  if (config.server !== undefined) validateServer(config.server, `client config ${source}`);
  return config;
}

// a value may hold ':' but not end with it ("x:" would be a nested mapping)
const PLAIN_LINE = /^([a-z]+): ([A-Za-z0-9_./](?:[A-Za-z0-9_./:@+=~-]*[A-Za-z0-9_./@+=~-])?)$/;

/** Plain scalars that YAML 1.2's core schema reads as numbers, booleans or null, not strings. */
const CORE_SCHEMA_NON_STRING =
  /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|~|null|Null|NULL|true|True|TRUE|false|False|FALSE)$/;

/**
 * The config as `skiff up` writes it, `key: value` lines whose values YAML reads as that very
 * string, read without the YAML parser (its cold start is a few milliseconds of every command
 * that calls the API). Anything else (comments, quotes, JSON, duplicate keys, CRLF) returns
 * undefined and goes to the YAML parser, which also gives the errors. config.test.ts checks the
 * two agree.
 */
export function parsePlainConfig(text: string): Record<string, string> | undefined {
  const parsed: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const match = PLAIN_LINE.exec(line);
    if (match === null) return undefined;
    const [, key, value] = match as unknown as [string, string, string];
    if (Object.hasOwn(parsed, key) || CORE_SCHEMA_NON_STRING.test(value)) return undefined;
    parsed[key] = value;
  }
  return parsed;
}

function parseWithYaml(text: string, source: string): unknown {
  try {
    return parseYaml(text);
  } catch (err) {
    throw new InvalidArgumentError(
      `read client config ${source}: not valid YAML or JSON: ${errorMessage(err)}`,
    );
  }
}

function validateServer(server: string, where: string): void {
  if (!/^[^\s/:]+:\d{1,5}$/.test(server) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(server)) {
    throw new InvalidArgumentError(
      `read ${where}: server "${server}" is not host:port (e.g. 127.0.0.1:7440)`,
      'server',
    );
  }
}

/** The config file's contents, or undefined when there is no file. */
export function readConfigFile(path: string): Partial<ClientConfig> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FailedPreconditionError(`read client config ${path}: ${errorMessage(err)}`, { cause: err });
  }
  return parseConfig(text, path);
}

/**
 * The config the CLI connects with: the file, then the flags on top. Throws
 * FailedPreconditionError telling the user what to do when server or token is missing.
 */
export function resolveClientConfig(
  overrides: ConfigOverrides,
  path: string = defaultConfigPath(),
): ClientConfig {
  const fromFile = overrides.server && overrides.token ? {} : (readConfigFile(path) ?? {});
  const merged = { ...fromFile, ...definedOnly(overrides) };
  if (!merged.server || !merged.token) {
    const missing =
      !merged.server && !merged.token ? 'server and token' : !merged.server ? 'server' : 'token';
    throw new FailedPreconditionError(
      `no cluster configured (${missing} missing in ${path}): run \`skiff up\` or pass --server/--token`,
    );
  }
  if (overrides.server) validateServer(overrides.server, '--server');
  return merged as ClientConfig;
}

function definedOnly(overrides: ConfigOverrides): ConfigOverrides {
  const out: ConfigOverrides = {};
  if (overrides.server) out.server = overrides.server;
  if (overrides.token) out.token = overrides.token;
  return out;
}

/** Writes the config atomically and durably with mode 0600 (see writeFileAtomic). */
export async function writeConfigFile(path: string, config: ClientConfig): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, stringifyYaml(config), { mode: 0o600, durable: true });
}

/** The config as `config view` shows it: the token is never printed. */
export function redactConfig(config: Partial<ClientConfig>): Partial<ClientConfig> {
  return config.token ? { ...config, token: 'REDACTED' } : { ...config };
}
