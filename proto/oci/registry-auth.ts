/**
 * Registry authentication, as Docker's distribution does it
 * (distribution.github.io/distribution/spec/auth/token):
 *
 *   request ──► 401 + WWW-Authenticate: Bearer realm="…",service="…",scope="…"
 *      └─► GET realm?service=…&scope=repository:<name>:pull[,push]   (Basic auth when the client
 *          config has a user for that registry; anonymous otherwise, as public registries allow)
 *      └─► {"token"|"access_token", "expires_in"} ─► request again with Authorization: Bearer …
 *   or ──► 401 + WWW-Authenticate: Basic realm="…" ─► request again with the configured user
 *
 * What a registry asked for is remembered per host, so later requests (another repository,
 * another blob) get their token before they are sent, and tokens are reused per scope until
 * they expire. A token from the client config (`token`, the cluster registry's) is sent as it
 * is. Credentials never travel over plain HTTP to a host that is neither loopback nor marked
 * insecure.
 */
import { UnauthenticatedError, InvalidArgumentError } from '../errors.js';
import { isLoopbackHost, type RegistryLocation } from './registry-hosts.js';
import { registryError } from './registry-errors.js';
import type { HttpTransport } from './registry-transport.js';

export interface Challenge {
  /** Lowercase: `bearer`, `basic`. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * The challenges of WWW-Authenticate header values (RFC 7235: `Scheme k=v, k="quoted, v"`,
 * several challenges separated by commas, or several headers).
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) {
    let i = 0;
    let current: Challenge | undefined;
    const skip = () => {
      while (i < value.length && /[\s,]/.test(value[i]!)) i++;
    };
    while (i < value.length) {
      skip();
      const tokenMatch = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(value.slice(i));
      if (!tokenMatch) break;
      const token = tokenMatch[0];
      i += token.length;
      while (i < value.length && value[i] === ' ') i++;
      if (value[i] === '=' && current) {
        i++;
        while (i < value.length && value[i] === ' ') i++;
        let v = '';
        if (value[i] === '"') {
          i++;
          while (i < value.length && value[i] !== '"') {
            if (value[i] === '\\' && i + 1 < value.length) i++;
            v += value[i];
            i++;
          }
          i++;
        } else {
          const m = /^[^,\s]*/.exec(value.slice(i))!;
          v = m[0];
          i += v.length;
        }
        current.params[token.toLowerCase()] = v;
      } else {
        current = { scheme: token.toLowerCase(), params: {} };
        out.push(current);
      }
    }
  }
  return out;
}

/** Whether scope `have` (`repository:<name>:<actions>`) grants all that `wanted` asks. */
function covers(have: string, wanted: string): boolean {
  const split = (s: string) => {
    const at = s.lastIndexOf(':');
    return { resource: s.slice(0, at), actions: s.slice(at + 1).split(',') };
  };
  const h = split(have);
  const w = split(wanted);
  return h.resource === w.resource && w.actions.every((a) => h.actions.includes(a));
}

interface HostAuth {
  scheme: 'bearer' | 'basic';
  realm?: string;
  service?: string;
}

interface CachedToken {
  value: string;
  expiresAt: number;
}

/** Max bytes of a token server's answer. */
const MAX_TOKEN_BYTES = 1024 * 1024;

export class RegistryAuthenticator {
  private readonly hosts = new Map<string, HostAuth>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(
    private readonly transport: HttpTransport,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The Authorization header for a request to `location` needing `scope`, when one is known
   * without asking the registry first (undefined: send without and learn from a 401).
   */
  async authorization(
    location: RegistryLocation,
    scope: string,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    if (location.settings.token) return `Bearer ${location.settings.token}`;
    const known = this.hosts.get(location.host);
    if (!known) return undefined;
    if (known.scheme === 'basic') return this.basic(location, 'basic auth');
    return `Bearer ${await this.token(location, known, [scope], signal)}`;
  }

  /** Remembers what a registry asks for (a 401 to GET /v2/), so the first request is authorized. */
  learn(location: RegistryLocation, header: string | string[] | undefined): void {
    if (location.settings.token) return;
    const challenges = parseChallenges(header);
    if (this.rememberBearer(location, challenges) !== undefined) return;
    if (challenges.some((c) => c.scheme === 'basic') && location.settings.username) {
      this.hosts.set(location.host, { scheme: 'basic' });
    }
  }

  /**
   * Learns from a 401's challenges and returns the Authorization to retry with. Throws
   * UnauthenticatedError when nothing the client has can answer them.
   */
  async challenged(
    location: RegistryLocation,
    header: string | string[] | undefined,
    scope: string,
    action: string,
    signal?: AbortSignal,
  ): Promise<string> {
    if (location.settings.token) {
      throw new UnauthenticatedError(
        `${action}: ${location.displayName} refused the token of the client config${location.cluster ? ' (is it this cluster’s?)' : ''}`,
      );
    }
    const challenges = parseChallenges(header);
    const bearer = this.rememberBearer(location, challenges);
    if (bearer) {
      const { auth } = bearer;
      const scopes = [scope];
      const asked = bearer.params['scope'];
      if (asked)
        for (const s of asked.split(' ')) if (s && !covers(scope, s) && !scopes.includes(s)) scopes.push(s);
      // a token the registry refused is not asked for again from the cache
      this.tokens.delete(this.tokenKey(location, auth, scopes));
      return `Bearer ${await this.token(location, auth, scopes, signal)}`;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      this.hosts.set(location.host, { scheme: 'basic' });
      if (!location.settings.username) {
        throw new UnauthenticatedError(
          `${action}: ${location.displayName} wants a user name and password; add them to the client config (registries: ${location.host}: username, password)`,
        );
      }
      return this.basic(location, action);
    }
    throw new UnauthenticatedError(
      `${action}: ${location.displayName} answered 401 without a challenge skiff can answer (WWW-Authenticate: ${JSON.stringify(header ?? '')})`,
    );
  }

  /** A bearer challenge with a realm, kept as the host's way to authorize; undefined when none. */
  private rememberBearer(
    location: RegistryLocation,
    challenges: ReturnType<typeof parseChallenges>,
  ): { auth: HostAuth; params: Record<string, string | undefined> } | undefined {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer === undefined) return undefined;
    const auth: HostAuth = { scheme: 'bearer', realm: bearer.params.realm! };
    if (bearer.params.service !== undefined) auth.service = bearer.params.service;
    this.hosts.set(location.host, auth);
    return { auth, params: bearer.params };
  }

  private basic(location: RegistryLocation, action: string): string {
    const { username, password } = location.settings;
    if (!username) {
      throw new UnauthenticatedError(
        `${action}: ${location.displayName} wants a user name and password; add them to the client config`,
      );
    }
    return `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
  }

  private tokenKey(location: RegistryLocation, auth: HostAuth, scopes: string[]): string {
    return `${location.host} ${auth.realm} ${auth.service ?? ''} ${scopes.join(' ')}`;
  }

  private token(
    location: RegistryLocation,
    auth: HostAuth,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<string> {
    const key = this.tokenKey(location, auth, scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return Promise.resolve(cached.value);
    let pending = this.fetching.get(key);
    if (!pending) {
      pending = this.fetchToken(location, auth, scopes, signal).finally(() => this.fetching.delete(key));
      this.fetching.set(key, pending);
    }
    return pending;
  }

  private async fetchToken(
    location: RegistryLocation,
    auth: HostAuth,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<string> {
    const action = `get a token from ${auth.realm} for ${scopes.join(' ')}`;
    let url: URL;
    try {
      url = new URL(auth.realm!);
    } catch (err) {
      throw new InvalidArgumentError(`${action}: the realm is not a URL`, 'realm', { cause: err });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new InvalidArgumentError(`${action}: the realm is neither http:// nor https://`, 'realm');
    }
    if (url.protocol === 'http:' && !isLoopbackHost(url.host) && location.settings.insecure !== true) {
      throw new UnauthenticatedError(
        `${action}: the token server is plain HTTP on a host that is not loopback; refused (mark ${location.host} insecure in the client config to allow it)`,
      );
    }
    if (auth.service !== undefined) url.searchParams.set('service', auth.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (location.settings.username) headers.authorization = this.basic(location, action);
    const req = { method: 'GET' as const, url, headers, insecureTls: location.insecureTls };
    const res = await this.transport.send(signal ? { ...req, signal } : req);
    if (res.status !== 200) {
      const body = await res.read(64 * 1024, 'token error').catch(() => Buffer.alloc(0));
      const err = registryError(action, url.host, res.status, res.headers, body);
      if (res.status === 401 || res.status === 403) {
        throw new UnauthenticatedError(
          `${action}: refused${location.settings.username ? ` for user ${location.settings.username}` : ' (anonymous)'}: ${err.message.slice(action.length + 2)}`,
          { cause: err },
        );
      }
      throw err;
    }
    const body = await res.read(MAX_TOKEN_BYTES, 'token answer');
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch (err) {
      throw new UnauthenticatedError(`${action}: the answer is not JSON`, { cause: err });
    }
    const value =
      typeof doc.token === 'string' && doc.token
        ? doc.token
        : typeof doc.access_token === 'string'
          ? doc.access_token
          : '';
    if (!value || /[\r\n]/.test(value))
      throw new UnauthenticatedError(`${action}: the answer holds no token`);
    // the spec's default lifetime is 60 s; renew a little early
    const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    this.tokens.set(this.tokenKey(location, auth, scopes), {
      value,
      expiresAt: this.now() + Math.max(0, seconds - 10) * 1000,
    });
    return value;
  }
}
