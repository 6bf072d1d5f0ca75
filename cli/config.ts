/**
 * The client config: where the CLI finds its clusters. It lives at `$SKIFF_CONFIG` (default
 * `~/.skiff/config`), YAML or JSON, mode 0600 because it holds bearer tokens. It is shaped like
 * kubectl's kubeconfig: named clusters, users and contexts, and the current context.
 *
 *   apiVersion: v1
 *   kind: Config
 *   clusters:
 *   - name: /var/lib/skiff
 *     cluster:
 *       server: unix:///var/lib/skiff/api.sock   # the gRPC API the CLI calls: the control plane's
 *                                       # Unix socket (no TLS), or host:port (TLS with the CA below)
 *       tls-server: 127.0.0.1:7440      # the API's TLS address, when server is the socket: what
 *                                       # other machines and node agents use (`token create --role join`)
 *       http: http://127.0.0.1:7441     # /healthz, /readyz, /metrics, the registry (written by `skiff up`)
 *       certificate-authority: /var/lib/skiff/pki/ca.crt   # cluster CA: verifies the TLS addresses
 *                                       # (written by `skiff up`; relative: to this file's folder)
 *   users:
 *   - name: /var/lib/skiff
 *     user:
 *       token: <admin token>            # bearer token sent with every call
 *   contexts:
 *   - name: /var/lib/skiff
 *     context:
 *       cluster: /var/lib/skiff
 *       user: /var/lib/skiff
 *   current-context: /var/lib/skiff
 *
 * `skiff up` adds or updates the context named after its state dir (upsertContext); `skiff config
 * use-context` switches. The flat form older versions wrote (`server`, `token`, `http`, `ca` at the
 * top) still reads, as one context named `default`; the first write of a context converts the file.
 *
 * `--context` picks another context for one invocation; `--server` and `--token` override the
 * context's; with both given (and no --context) no file is needed. A `--server host:port` over a
 * context whose server is the socket is called over TLS with the context's certificate-authority;
 * `--server unix:///path` is called over that socket.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { yaml } from './lazy-yaml.js';
import { writeFileAtomic } from '../proto/support/atomic-file.js';
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../proto/errors.js';
import { apiAddressProblem, isUnixAddress } from '../proto/api-address.js';

/** What one invocation connects with: a context's cluster and user, flags on top. */
export interface ClientConfig {
  /** gRPC API address: `host:port`, or the control plane's socket, `unix:///path`. */
  server: string;
  token: string;
  /** HTTP address of the control plane (`http://host:port`), when known. */
  http?: string;
  /** Path of the cluster CA certificate (PEM): TLS to a `host:port` server, and to tlsServer. */
  ca?: string;
  /** The API's TLS address (`host:port`) beside a socket `server`: for other machines and nodes. */
  tlsServer?: string;
}

export interface ConfigOverrides {
  server?: string;
  token?: string;
  /** `--certificate-authority`: the CA file to verify the server with (TLS). */
  ca?: string;
  /** `--context`: a context other than the current one. */
  context?: string;
}

export interface ClusterEntry {
  server: string;
  http?: string;
  /** kubeconfig's `certificate-authority`: the cluster CA's path. */
  ca?: string;
  /** `tls-server`: the API's TLS address when `server` is its Unix socket. */
  tlsServer?: string;
}

export interface ContextEntry {
  cluster: string;
  user: string;
}

/** The whole file, kubeconfig-shaped. Entries keep the file's order. */
export interface ConfigDocument {
  clusters: { name: string; cluster: ClusterEntry }[];
  users: { name: string; user: { token: string } }[];
  contexts: { name: string; context: ContextEntry }[];
  /** '' when none is set. */
  currentContext: string;
  /** The file is the flat pre-context form; its one context is LEGACY_CONTEXT. */
  legacy: boolean;
  /** Per-registry credentials and settings (skiff image, skiff runtime run), by host[:port]. */
  registries?: Record<string, RegistryEntry>;
}

/** The name the one context of a flat (pre-context) config file goes by. */
export const LEGACY_CONTEXT = 'default';

const FLAT_FIELDS = new Set(['server', 'token', 'http', 'ca']);

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SKIFF_CONFIG || join(homedir(), '.skiff', 'config');
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Parses and validates config text; `source` names the file in errors. */
export function parseConfigDocument(text: string, source: string): ConfigDocument {
  let raw: unknown = parsePlainConfig(text) ?? parsePlainBlocks(text);
  if (raw === undefined) raw = parseWithYaml(text, source);
  if (raw === null || raw === undefined) return emptyDocument();
  if (!isRecord(raw)) {
    throw new InvalidArgumentError(
      `read client config ${source}: expected a mapping (clusters, users, contexts, current-context)`,
    );
  }
  const keys = Object.keys(raw);
  if (keys.length > 0 && keys.every((key) => FLAT_FIELDS.has(key))) return legacyDocument(raw, source);
  return readDocument(raw, source);
}

/**
 * The flat view of the current context (server, token, http, ca), as `parseConfig` has always
 * returned it; `{}` when the file names no current context.
 */
export function parseConfig(text: string, source: string): Partial<ClientConfig> {
  return flatten(parseConfigDocument(text, source), undefined, source, false);
}

function emptyDocument(): ConfigDocument {
  return { clusters: [], users: [], contexts: [], currentContext: '', legacy: false };
}

function legacyDocument(raw: Record<string, unknown>, source: string): ConfigDocument {
  const flat: Partial<ClientConfig> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') {
      throw new InvalidArgumentError(`read client config ${source}: field "${key}" must be a string`, key);
    }
    flat[key as keyof ClientConfig] = value;
  }
  if (flat.server !== undefined) validateServer(flat.server, `client config ${source}`, 'server');
  const cluster: ClusterEntry = { server: flat.server ?? '' };
  if (flat.http !== undefined) cluster.http = flat.http;
  if (flat.ca !== undefined) cluster.ca = flat.ca;
  return {
    clusters: [{ name: LEGACY_CONTEXT, cluster }],
    users: [{ name: LEGACY_CONTEXT, user: { token: flat.token ?? '' } }],
    contexts: [{ name: LEGACY_CONTEXT, context: { cluster: LEGACY_CONTEXT, user: LEGACY_CONTEXT } }],
    currentContext: LEGACY_CONTEXT,
    legacy: true,
  };
}

const TOP_FIELDS = ['apiVersion', 'kind', 'clusters', 'users', 'contexts', 'current-context', 'registries'];

function readDocument(raw: Record<string, unknown>, source: string): ConfigDocument {
  const fail = (field: string, reason: string): never => {
    throw new InvalidArgumentError(`read client config ${source}: ${field}: ${reason}`, field);
  };
  const flatForm = Object.keys(raw).some((key) => FLAT_FIELDS.has(key));
  for (const key of Object.keys(raw)) {
    if (TOP_FIELDS.includes(key)) continue;
    if (FLAT_FIELDS.has(key) && Object.keys(raw).some((k) => TOP_FIELDS.includes(k)))
      fail(key, 'the flat fields server, token, http and ca cannot be mixed with contexts');
    throw new InvalidArgumentError(
      `read client config ${source}: unknown field "${key}" (known: ${flatForm ? 'server, token, http, ca' : TOP_FIELDS.join(', ')})`,
      key,
    );
  }
  if (raw.apiVersion !== undefined && raw.apiVersion !== 'v1') fail('apiVersion', 'must be "v1"');
  if (raw.kind !== undefined && raw.kind !== 'Config') fail('kind', 'must be "Config"');
  const current = raw['current-context'] ?? '';
  if (typeof current !== 'string') fail('current-context', 'must be a string');

  const entries = (list: string, inner: string, fields: Record<string, boolean>) => {
    const value = raw[list] ?? [];
    if (!Array.isArray(value)) fail(list, 'must be a list');
    const seen = new Set<string>();
    return (value as unknown[]).map((item, i) => {
      const at = `${list}[${i}]`;
      if (!isRecord(item)) fail(at, 'must be a mapping with name and ' + inner);
      const entry = item as Record<string, unknown>;
      for (const key of Object.keys(entry))
        if (key !== 'name' && key !== inner) fail(`${at}.${key}`, `unknown field (known: name, ${inner})`);
      if (typeof entry.name !== 'string' || entry.name === '')
        fail(`${at}.name`, 'must be a non-empty string');
      const name = entry.name as string;
      if (seen.has(name)) fail(`${at}.name`, `"${name}" is listed twice`);
      seen.add(name);
      const body = entry[inner] ?? {};
      if (!isRecord(body)) fail(`${at}.${inner}`, 'must be a mapping');
      const out: Record<string, string> = {};
      for (const [key, v] of Object.entries(body as Record<string, unknown>)) {
        if (!(key in fields))
          fail(`${at}.${inner}.${key}`, `unknown field (known: ${Object.keys(fields).join(', ')})`);
        if (typeof v !== 'string') fail(`${at}.${inner}.${key}`, 'must be a string');
        out[key] = v as string;
      }
      for (const [key, required] of Object.entries(fields))
        if (required && !out[key]) fail(`${at}.${inner}.${key}`, 'is required');
      return { name, body: out };
    });
  };

  const clusters = entries('clusters', 'cluster', {
    server: true,
    'tls-server': false,
    http: false,
    'certificate-authority': false,
  }).map(({ name, body }, i) => {
    validateServer(body.server!, `client config ${source}`, `clusters[${i}].cluster.server`);
    const cluster: ClusterEntry = { server: body.server! };
    if (body['tls-server'] !== undefined) {
      validateTlsServer(body['tls-server'], `client config ${source}`, `clusters[${i}].cluster.tls-server`);
      cluster.tlsServer = body['tls-server'];
    }
    if (body.http !== undefined) cluster.http = body.http;
    if (body['certificate-authority'] !== undefined) cluster.ca = body['certificate-authority'];
    return { name, cluster };
  });
  const users = entries('users', 'user', { token: true }).map(({ name, body }) => ({
    name,
    user: { token: body.token! },
  }));
  const contexts = entries('contexts', 'context', { cluster: true, user: true }).map(({ name, body }) => ({
    name,
    context: { cluster: body.cluster!, user: body.user! },
  }));
  const doc: ConfigDocument = { clusters, users, contexts, currentContext: current as string, legacy: false };
  if (raw.registries !== undefined) doc.registries = readRegistries(raw.registries, source);
  return doc;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// a value may hold ':' but not end with it ("x:" would be a nested mapping)
const PLAIN_VALUE = '[A-Za-z0-9_./](?:[A-Za-z0-9_./:@+=~-]*[A-Za-z0-9_./@+=~-])?';
const PLAIN_LINE = new RegExp(`^([a-z]+): (${PLAIN_VALUE})$`);

/** Plain scalars that YAML 1.2's core schema reads as numbers, booleans or null, not strings. */
const CORE_SCHEMA_NON_STRING =
  /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|~|null|Null|NULL|true|True|TRUE|false|False|FALSE)$/;

/**
 * The flat config as older `skiff up` wrote it, `key: value` lines whose values YAML reads as that
 * very string, read without the YAML parser (its cold start is a few milliseconds of every command
 * that calls the API). Anything else (comments, quotes, JSON, duplicate keys, CRLF, nesting)
 * returns undefined. config.test.ts checks the two agree.
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

type Block = string | Block[] | { [key: string]: Block };

// a key: a field name, or a registry's host[:port] (`registries:`), bare or quoted (quotes as JSON
// writes them; no character in them that YAML would unescape)
const HOST_KEY = '[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?';
const BLOCK_KEY = `[a-z][A-Za-z-]*|${HOST_KEY}|"[A-Za-z0-9.:-]+"|'[A-Za-z0-9.:-]+'`;
const BLOCK_LINE = new RegExp(`^( *)(- )?(${BLOCK_KEY}):(?: (${PLAIN_VALUE}|\\[\\]|\\{\\}))?$`);

/**
 * The contexts file as upsertContext writes it, and the `registries` a user adds to it, read
 * without the YAML parser (its load and first parse are ~20 ms of every `skiff image pull` or
 * push): block mappings and sequences of mappings (`key: value`, `key:`, `- key: value`, `[]`,
 * `{}`), indented by spaces, whose keys and scalars YAML reads as those very strings. Anything else
 * returns undefined and goes to the YAML parser, which also gives the errors.
 * config-contexts.test.ts checks the two agree.
 */
export function parsePlainBlocks(text: string): Record<string, Block> | undefined {
  const lines: { indent: number; item: boolean; key: string; value: string | undefined }[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const match = BLOCK_LINE.exec(line);
    if (match === null) return undefined;
    const value = match[4];
    if (value !== undefined && CORE_SCHEMA_NON_STRING.test(value)) return undefined;
    let key = match[3]!;
    if (key.startsWith('"') || key.startsWith("'")) key = key.slice(1, -1);
    else if (CORE_SCHEMA_NON_STRING.test(key)) return undefined;
    lines.push({ indent: match[1]!.length, item: match[2] !== undefined, key, value });
  }
  let at = 0;
  /** A mapping whose keys sit at column `indent`; the first line may be a `- ` item's. */
  const mapping = (indent: number, first: boolean): Record<string, Block> | undefined => {
    const map: Record<string, Block> = {};
    while (at < lines.length) {
      const line = lines[at]!;
      const keyColumn = line.indent + (line.item ? 2 : 0);
      if (keyColumn !== indent || (line.item && !(first && Object.keys(map).length === 0))) break;
      if (Object.hasOwn(map, line.key)) return undefined;
      at++;
      if (line.value === '[]') map[line.key] = [];
      else if (line.value === '{}') map[line.key] = {};
      else if (line.value !== undefined) map[line.key] = line.value;
      else {
        const next = lines[at];
        if (next === undefined) return undefined;
        let child: Block | undefined;
        if (next.item && next.indent >= line.indent + (line.item ? 2 : 0) && next.indent <= indent + 2)
          child = sequence(next.indent);
        else if (!next.item && next.indent > indent) child = mapping(next.indent, false);
        if (child === undefined) return undefined;
        map[line.key] = child;
      }
    }
    return map;
  };
  const sequence = (indent: number): Block[] | undefined => {
    const items: Block[] = [];
    while (at < lines.length && lines[at]!.item && lines[at]!.indent === indent) {
      const item = mapping(indent + 2, true);
      if (item === undefined) return undefined;
      items.push(item);
    }
    return items;
  };
  const top = mapping(0, false);
  return top !== undefined && at === lines.length ? top : undefined;
}

function parseWithYaml(text: string, source: string): unknown {
  try {
    return yaml().parse(text);
  } catch (err) {
    throw new InvalidArgumentError(
      `read client config ${source}: not valid YAML or JSON: ${errorMessage(err)}`,
    );
  }
}

/** `host:port` or `unix:///absolute/path`. */
function validateServer(server: string, where: string, field = 'server'): void {
  const problem = apiAddressProblem(server);
  if (problem !== undefined)
    throw new InvalidArgumentError(
      `read ${where}: ${field === 'server' ? '' : `${field}: `}${problem}`,
      field,
    );
}

/** `host:port` only: the address TLS is spoken at. */
function validateTlsServer(server: string, where: string, field: string): void {
  const problem = isUnixAddress(server)
    ? `tls-server "${server}" is a Unix socket: it is the API's TLS address, host:port (e.g. 127.0.0.1:7440)`
    : apiAddressProblem(server);
  if (problem !== undefined) throw new InvalidArgumentError(`read ${where}: ${field}: ${problem}`, field);
}

/** The whole config file, or undefined when there is no file. */
export function readConfigDocument(path: string): ConfigDocument | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FailedPreconditionError(`read client config ${path}: ${errorMessage(err)}`, { cause: err });
  }
  return parseConfigDocument(text, path);
}

/** The current context's server, token, http and ca, or undefined when there is no file. */
export function readConfigFile(path: string): Partial<ClientConfig> | undefined {
  const doc = readConfigDocument(path);
  return doc === undefined ? undefined : flatten(doc, undefined, path, false);
}

/**
 * The cluster and user of context `name` (default: the current one) as one flat config. With
 * `strict`, a context that is not there, or names a cluster or user that is not, is an error;
 * otherwise what is missing is left out.
 */
function flatten(
  doc: ConfigDocument,
  name: string | undefined,
  path: string,
  strict: boolean,
): Partial<ClientConfig> {
  const wanted = name ?? doc.currentContext;
  if (wanted === '') return {};
  const context = doc.contexts.find((c) => c.name === wanted)?.context;
  if (context === undefined) {
    if (!strict) return {};
    const known = doc.contexts.length ? doc.contexts.map((c) => c.name).join(', ') : 'none';
    throw name !== undefined
      ? new InvalidArgumentError(
          `--context ${name}: no context "${name}" in ${path} (contexts: ${known})`,
          'context',
        )
      : new FailedPreconditionError(
          `current context "${wanted}" is not in ${path} (contexts: ${known}): run \`skiff config use-context NAME\``,
        );
  }
  const cluster = doc.clusters.find((c) => c.name === context.cluster)?.cluster;
  const user = doc.users.find((u) => u.name === context.user)?.user;
  if (strict && cluster === undefined)
    throw new FailedPreconditionError(
      `context "${wanted}" in ${path} names cluster "${context.cluster}", which is not in the file`,
    );
  if (strict && user === undefined)
    throw new FailedPreconditionError(
      `context "${wanted}" in ${path} names user "${context.user}", which is not in the file`,
    );
  const flat: Partial<ClientConfig> = {};
  if (cluster?.server) flat.server = cluster.server;
  if (user?.token) flat.token = user.token;
  if (cluster?.http !== undefined) flat.http = cluster.http;
  if (cluster?.ca !== undefined) flat.ca = cluster.ca;
  if (cluster?.tlsServer !== undefined) flat.tlsServer = cluster.tlsServer;
  return flat;
}

/**
 * The config the CLI connects with: the chosen context (`--context`, else the current one), then
 * the flags on top. Throws FailedPreconditionError telling the user what to do when server or
 * token is missing.
 */
export function resolveClientConfig(
  overrides: ConfigOverrides,
  path: string = defaultConfigPath(),
): ClientConfig {
  const needFile = overrides.context !== undefined || !(overrides.server && overrides.token);
  const doc = needFile ? readConfigDocument(path) : undefined;
  if (overrides.context !== undefined && doc === undefined) {
    throw new InvalidArgumentError(
      `--context ${overrides.context}: there is no client config at ${path}: run \`skiff up\``,
      'context',
    );
  }
  const fromFile = doc ? flatten(doc, overrides.context, path, true) : {};
  // kubeconfig's rule: a relative certificate-authority is relative to the file that names it
  if (fromFile.ca !== undefined && fromFile.ca !== '' && !isAbsolute(fromFile.ca))
    fromFile.ca = join(dirname(path), fromFile.ca);
  const merged = { ...fromFile, ...definedOnly(overrides) };
  if (!merged.server || !merged.token) {
    const missing =
      !merged.server && !merged.token ? 'server and token' : !merged.server ? 'server' : 'token';
    if (doc && doc.currentContext === '' && overrides.context === undefined && doc.contexts.length > 0) {
      throw new FailedPreconditionError(
        `no current context in ${path} (contexts: ${doc.contexts.map((c) => c.name).join(', ')}): run \`skiff config use-context NAME\`, or pass --context NAME or --server/--token`,
      );
    }
    throw new FailedPreconditionError(
      `no cluster configured (${missing} missing in ${path}): run \`skiff up\` or pass --server/--token`,
    );
  }
  if (overrides.server) validateServer(overrides.server, '--server');
  return merged as ClientConfig;
}

function definedOnly(overrides: ConfigOverrides): Partial<ClientConfig> {
  const out: Partial<ClientConfig> = {};
  if (overrides.server) out.server = overrides.server;
  if (overrides.token) out.token = overrides.token;
  if (overrides.ca) out.ca = overrides.ca;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Writes a flat config atomically and durably with mode 0600 (the pre-context form). */
export async function writeConfigFile(path: string, config: ClientConfig): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, yaml().stringify(config), { mode: 0o600, durable: true });
}

/** The file's YAML, in kubeconfig's layout (lists not indented under their key). */
export function formatConfigDocument(doc: ConfigDocument): string {
  const body = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: doc.clusters.map(({ name, cluster }) => ({
      name,
      cluster: {
        server: cluster.server,
        ...(cluster.tlsServer !== undefined ? { 'tls-server': cluster.tlsServer } : {}),
        ...(cluster.http !== undefined ? { http: cluster.http } : {}),
        ...(cluster.ca !== undefined ? { 'certificate-authority': cluster.ca } : {}),
      },
    })),
    users: doc.users.map(({ name, user }) => ({ name, user: { token: user.token } })),
    contexts: doc.contexts.map(({ name, context }) => ({
      name,
      context: { cluster: context.cluster, user: context.user },
    })),
    'current-context': doc.currentContext,
    ...(doc.registries && Object.keys(doc.registries).length > 0 ? { registries: doc.registries } : {}),
  };
  return yaml().stringify(body, { indentSeq: false, lineWidth: 0 });
}

/**
 * Reads, changes and writes the config under a lock (`PATH.lock`), so two `skiff up`s in one HOME
 * never lose each other's context. The file is replaced atomically, mode 0600.
 */
export async function updateConfigDocument<T>(path: string, change: (doc: ConfigDocument) => T): Promise<T> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const { PidLock } = await import('../proto/support/pid-lock.js');
  const lock = await PidLock.acquire(`${path}.lock`, { timeoutMs: 10_000, action: 'update client config' });
  try {
    const doc = readConfigDocument(path) ?? emptyDocument();
    const result = change(doc);
    await writeFileAtomic(path, formatConfigDocument({ ...doc, legacy: false }), {
      mode: 0o600,
      durable: true,
    });
    return result;
  } finally {
    await lock.release();
  }
}

export interface UpsertResult {
  /** True when the current context changed to this one from another cluster's. */
  switched: boolean;
  /** The current context before ('' when none). */
  previous: string;
  /** True when the context was not in the file before. */
  created: boolean;
}

/**
 * Adds or updates context `name` with a cluster and a user of the same name, and makes it the
 * current context when `makeCurrent` (or when there was none). A flat (pre-context) file is
 * converted first: its context stays as `default` unless it points at the same server, which this
 * context now describes.
 */
export async function upsertContext(
  name: string,
  cluster: ClusterEntry & { token: string },
  options: { makeCurrent: boolean; path?: string },
): Promise<UpsertResult> {
  if (name === '') throw new InvalidArgumentError('write client config: the context name is empty', 'name');
  validateServer(cluster.server, `context ${name}`);
  if (cluster.tlsServer !== undefined) validateTlsServer(cluster.tlsServer, `context ${name}`, 'tls-server');
  return updateConfigDocument(options.path ?? defaultConfigPath(), (doc) => {
    const previous = doc.currentContext;
    const legacyServer = doc.clusters[0]?.cluster.server;
    const legacyUsable = legacyServer !== '' && doc.users[0]?.user.token !== '';
    const sameServer = legacyServer === cluster.server || legacyServer === cluster.tlsServer;
    // The flat file described this very cluster (or nothing usable): the named context replaces it.
    const replaced = doc.legacy && (!legacyUsable || sameServer) && name !== LEGACY_CONTEXT;
    if (replaced) {
      doc.clusters = [];
      doc.users = [];
      doc.contexts = [];
      doc.currentContext = '';
    }
    const entry: ClusterEntry = { server: cluster.server };
    if (cluster.tlsServer !== undefined) entry.tlsServer = cluster.tlsServer;
    if (cluster.http !== undefined) entry.http = cluster.http;
    if (cluster.ca !== undefined) entry.ca = cluster.ca;
    const put = <E extends { name: string }>(list: E[], value: E): void => {
      const i = list.findIndex((e) => e.name === value.name);
      if (i >= 0) list[i] = value;
      else list.push(value);
    };
    const created = !doc.contexts.some((c) => c.name === name);
    put(doc.clusters, { name, cluster: entry });
    put(doc.users, { name, user: { token: cluster.token } });
    put(doc.contexts, { name, context: { cluster: name, user: name } });
    if (options.makeCurrent || doc.currentContext === '') doc.currentContext = name;
    const switched = doc.currentContext !== previous && previous !== '' && !replaced;
    return { switched, previous, created };
  });
}

/** Makes `name` the current context; InvalidArgumentError when there is no such context. */
export async function useContext(name: string, path: string = defaultConfigPath()): Promise<void> {
  await updateConfigDocument(path, (doc) => {
    if (!doc.contexts.some((c) => c.name === name)) throw noSuchContext(name, doc, path);
    doc.currentContext = name;
  });
}

/**
 * Removes context `name` and the cluster and user only it used. Returns whether it was the
 * current one (then no context is current).
 */
export async function deleteContext(name: string, path: string = defaultConfigPath()): Promise<boolean> {
  if (readConfigDocument(path) === undefined)
    throw new InvalidArgumentError(`delete context ${name}: there is no client config at ${path}`, 'name');
  return updateConfigDocument(path, (doc) => {
    const gone = doc.contexts.find((c) => c.name === name);
    if (gone === undefined) throw noSuchContext(name, doc, path);
    doc.contexts = doc.contexts.filter((c) => c !== gone);
    if (!doc.contexts.some((c) => c.context.cluster === gone.context.cluster))
      doc.clusters = doc.clusters.filter((c) => c.name !== gone.context.cluster);
    if (!doc.contexts.some((c) => c.context.user === gone.context.user))
      doc.users = doc.users.filter((u) => u.name !== gone.context.user);
    const wasCurrent = doc.currentContext === name;
    if (wasCurrent) doc.currentContext = '';
    return wasCurrent;
  });
}

function noSuchContext(name: string, doc: ConfigDocument, path: string): InvalidArgumentError {
  const known = doc.contexts.length ? doc.contexts.map((c) => c.name).join(', ') : 'none';
  return new InvalidArgumentError(`no context "${name}" in ${path} (contexts: ${known})`, 'name');
}

/** The name `skiff up` gives the context of a state dir: its absolute path, unique per cluster. */
export function contextNameForStateDir(stateDir: string): string {
  return stateDir;
}

/**
 * What `skiff up` records: the context of its state dir (absolute), made current. Returns the line
 * it reports, which says when the current context switched away from another cluster's.
 */
export async function writeClusterContext(
  path: string,
  stateDir: string,
  cluster: ClusterEntry & { token: string },
): Promise<string> {
  const name = contextNameForStateDir(stateDir);
  const { switched, previous } = await upsertContext(name, cluster, { makeCurrent: true, path });
  const written = `context "${name}" written to ${path}`;
  return switched
    ? `${written}; switched the current context from "${previous}" to it (\`skiff config use-context ${previous}\` switches back)`
    : written;
}

/** The config as `config view` shows it: the token is never printed. */
export function redactConfig(config: Partial<ClientConfig>): Partial<ClientConfig> {
  return config.token ? { ...config, token: 'REDACTED' } : { ...config };
}

/** The document with every token replaced by REDACTED. */
export function redactDocument(doc: ConfigDocument): ConfigDocument {
  const redacted: ConfigDocument = {
    ...doc,
    users: doc.users.map((u) => ({ name: u.name, user: { token: 'REDACTED' } })),
  };
  if (doc.registries) redacted.registries = redactRegistries(doc.registries);
  return redacted;
}

// ---------------------------------------------------------------------------------------------
// Registries: what `skiff image` and `skiff runtime run` pull from and push to
//
//   registries:
//     registry.example.com:5000:     # host[:port] as image references spell it
//       username: alice              # basic auth, or the user the token flow logs in as
//       password: s3cret
//     10.0.0.7:5000:
//       insecure: true               # plain HTTP (or TLS unchecked) although not loopback
//     ghcr.example:
//       token: <bearer token>        # sent as it is
//
// Short names (`web:1`) go to the cluster registry: the current context's `http` address, under
// /v2/, with its user's token.

/** One registry's entry under `registries`. */
export interface RegistryEntry {
  username?: string;
  password?: string;
  token?: string;
  insecure?: boolean;
}

const REGISTRY_HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?$/;

function readRegistries(value: unknown, source: string): Record<string, RegistryEntry> {
  const fail = (field: string, reason: string): never => {
    throw new InvalidArgumentError(`read client config ${source}: ${field}: ${reason}`, field);
  };
  if (!isRecord(value)) fail('registries', 'must be a mapping of host[:port] to settings');
  const out: Record<string, RegistryEntry> = {};
  for (const [host, raw] of Object.entries(value as Record<string, unknown>)) {
    const at = `registries.${host}`;
    if (!REGISTRY_HOST.test(host)) fail(at, 'the key must be a registry host[:port], e.g. 127.0.0.1:5000');
    if (!isRecord(raw)) fail(at, 'must be a mapping (username, password, token, insecure)');
    const entry: RegistryEntry = {};
    for (const [key, v] of Object.entries(raw as Record<string, unknown>)) {
      if (key === 'insecure') {
        if (typeof v !== 'boolean') fail(`${at}.insecure`, 'must be true or false');
        entry.insecure = v as boolean;
      } else if (key === 'username' || key === 'password' || key === 'token') {
        if (typeof v !== 'string') fail(`${at}.${key}`, 'must be a string');
        entry[key] = v as string;
      } else {
        fail(`${at}.${key}`, 'unknown field (known: username, password, token, insecure)');
      }
    }
    if (entry.password !== undefined && entry.username === undefined)
      fail(`${at}.password`, 'needs a username');
    out[host] = entry;
  }
  return out;
}

function redactRegistries(registries: Record<string, RegistryEntry>): Record<string, RegistryEntry> {
  return Object.fromEntries(
    Object.entries(registries).map(([host, e]) => [
      host,
      {
        ...e,
        ...(e.password !== undefined ? { password: 'REDACTED' } : {}),
        ...(e.token !== undefined ? { token: 'REDACTED' } : {}),
      },
    ]),
  );
}

/** What the registry client needs of the client config. */
export interface RegistrySettings {
  /** The cluster registry (the context's HTTP address and token), when the context has one. */
  cluster?: { url: string; token?: string };
  registries: Record<string, RegistryEntry>;
}

/**
 * The registry settings of the chosen context (`--context`, else the current one; `--token` on
 * top). No config file is no error: references that name their registry need none.
 */
export function resolveRegistrySettings(
  overrides: ConfigOverrides,
  path: string = defaultConfigPath(),
): RegistrySettings {
  const doc = readConfigDocument(path);
  const flat = doc ? flatten(doc, overrides.context, path, overrides.context !== undefined) : {};
  const settings: RegistrySettings = { registries: doc?.registries ?? {} };
  const token = overrides.token || flat.token;
  if (flat.http) settings.cluster = { url: flat.http, ...(token ? { token } : {}) };
  return settings;
}
