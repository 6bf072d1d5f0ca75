/**
 * Requests to one repository of one registry with one set of rights (`pull` or `pull,push`):
 * picks the endpoint (HTTPS, or plain HTTP where registry-hosts.ts allows it and the registry
 * does not speak TLS), authenticates (registry-auth.ts: answers a 401 once, then remembers),
 * follows redirects of GET and HEAD (never carrying Authorization to another origin), and turns
 * unexpected answers into skiff errors (registry-errors.ts).
 */
import { UnavailableError } from '../errors.js';
import type { RegistryAuthenticator } from './registry-auth.js';
import { registryError, MAX_ERROR_BODY_BYTES } from './registry-errors.js';
import type { RegistryLocation } from './registry-hosts.js';
import {
  isNotHttp,
  isNotTls,
  type HttpMethod,
  type HttpTransport,
  type StreamBody,
  type TransportResponse,
} from './registry-transport.js';

export interface SessionRequest {
  method: HttpMethod;
  /** A path under the registry's base URL (`v2/<name>/manifests/<ref>`)… */
  path?: string;
  /** …or a URL the registry gave (an upload's Location). */
  url?: URL;
  headers?: Record<string, string>;
  /** Made anew for each attempt (an authentication challenge sends the request again). */
  body?: () => Buffer | StreamBody | Promise<Buffer | StreamBody>;
  signal?: AbortSignal;
  /** For messages: `pull 127.0.0.1:5000/app:1`. */
  action: string;
  idleTimeoutMs?: number;
}

/**
 * The endpoint each registry host answered on, shared by a client's sessions: the first request
 * to a host probes it (GET /v2/, as docker does) and the others wait for that answer.
 */
export type EndpointChoices = Map<string, Promise<URL>>;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

export class RegistrySession {
  constructor(
    readonly location: RegistryLocation,
    /** `repository:<name>:pull` or `…:pull,push`. */
    readonly scope: string,
    private readonly transport: HttpTransport,
    private readonly auth: RegistryAuthenticator,
    private readonly endpoints: EndpointChoices,
  ) {}

  /** The URL of `path` on the endpoint in use. */
  urlOf(path: string, base: URL): URL {
    return new URL(path, base);
  }

  /** Sends `req`; the answer whatever its status (after authentication and redirects). */
  async send(req: SessionRequest): Promise<TransportResponse> {
    const url = req.url ?? this.urlOf(req.path!, await this.endpoint(req));
    let authorization = await this.auth.authorization(this.location, this.scope, req.signal);
    let challenged = false;
    for (;;) {
      const res = await this.follow(req, url, authorization);
      if (res.status !== 401 || challenged) return res;
      const header = res.headers['www-authenticate'];
      res.discard();
      challenged = true;
      authorization = await this.auth.challenged(this.location, header, this.scope, req.action, req.signal);
    }
  }

  /** Probes the registry and gets credentials now, so that the first real request needs neither. */
  async warm(signal?: AbortSignal): Promise<void> {
    await this.endpoint({ method: 'GET', path: 'v2/', action: 'probe', ...(signal ? { signal } : {}) });
    await this.auth.authorization(this.location, this.scope, signal);
  }

  /**
   * The URL and headers a GET of `path` would be sent with (endpoint probed, credentials known
   * so far), for a request made elsewhere (a worker thread): it gets no challenge answered.
   */
  async prepare(path: string, signal?: AbortSignal): Promise<{ url: URL; headers: Record<string, string> }> {
    const base = await this.endpoint({ method: 'GET', path, action: 'probe', ...(signal ? { signal } : {}) });
    const authorization = await this.auth.authorization(this.location, this.scope, signal);
    return { url: this.urlOf(path, base), headers: authorization ? { authorization } : {} };
  }

  /** Sends `req` and returns the answer if its status is one of `ok`; otherwise the registry's error. */
  async expect(req: SessionRequest, ok: readonly number[]): Promise<TransportResponse> {
    const res = await this.send(req);
    if (ok.includes(res.status)) return res;
    throw await this.errorOf(req.action, res);
  }

  /** The error an unexpected answer stands for (its body read, bounded). */
  async errorOf(action: string, res: TransportResponse): Promise<Error> {
    const body = await res.read(MAX_ERROR_BODY_BYTES, 'error answer').catch(() => Buffer.alloc(0));
    return registryError(action, this.location.displayName, res.status, res.headers, body);
  }

  /** The base URL of the registry: probed once per host and client (see EndpointChoices). */
  private endpoint(req: SessionRequest): Promise<URL> {
    let chosen = this.endpoints.get(this.location.host);
    if (!chosen) {
      chosen = this.probe(req);
      this.endpoints.set(this.location.host, chosen);
      // a failed probe is not remembered: the next request probes again
      chosen.catch(() => this.endpoints.delete(this.location.host));
    }
    return chosen;
  }

  /**
   * GET /v2/ on each candidate endpoint until one answers over HTTP (any status): HTTPS first,
   * plain HTTP only where allowed and only when the other end does not speak TLS. A 401 tells
   * the authenticator what the registry wants before the first real request.
   */
  private async probe(req: SessionRequest): Promise<URL> {
    const candidates = this.location.endpoints;
    for (let i = 0; ; i++) {
      const base = candidates[i]!;
      try {
        const res = await this.transport.send({
          method: 'GET',
          url: this.urlOf('v2/', base),
          insecureTls: this.location.insecureTls,
          ...(req.signal ? { signal: req.signal } : {}),
          ...(this.location.settings.token
            ? { headers: { authorization: `Bearer ${this.location.settings.token}` } }
            : {}),
        });
        if (i + 1 < candidates.length && base.protocol === 'http:' && res.status === 400) {
          // a TLS server answering a plain request (Go's: "Client sent an HTTP request to an
          // HTTPS server"): the next candidate is HTTPS
          const body = await res.read(4096, 'probe answer').catch(() => Buffer.alloc(0));
          if (/https/i.test(body.toString('latin1'))) continue;
          return base;
        }
        if (res.status === 401) this.auth.learn(this.location, res.headers['www-authenticate']);
        res.discard();
        return base;
      } catch (err) {
        if (i + 1 < candidates.length && (base.protocol === 'https:' ? isNotTls(err) : isNotHttp(err)))
          continue;
        throw err;
      }
    }
  }

  private async follow(
    req: SessionRequest,
    first: URL,
    authorization: string | undefined,
  ): Promise<TransportResponse> {
    let url = first;
    const origin = first.origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { ...req.headers };
      // credentials go to the registry's own origin only (distribution spec: redirects)
      if (authorization && url.origin === origin) headers.authorization = authorization;
      const body = req.body ? await req.body() : undefined;
      const res = await this.transport.send({
        method: req.method,
        url,
        headers,
        ...(body !== undefined ? { body } : {}),
        insecureTls: this.location.insecureTls,
        ...(req.signal ? { signal: req.signal } : {}),
        ...(req.idleTimeoutMs !== undefined ? { idleTimeoutMs: req.idleTimeoutMs } : {}),
      });
      const location = res.headers.location;
      if (!REDIRECTS.has(res.status) || !location || (req.method !== 'GET' && req.method !== 'HEAD'))
        return res;
      res.discard();
      if (hop >= MAX_REDIRECTS) {
        throw new UnavailableError(
          `${req.action}: more than ${MAX_REDIRECTS} redirects from ${origin}`,
          origin,
        );
      }
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new UnavailableError(`${req.action}: redirected to ${next.protocol} URL`, origin);
      }
      if (
        url.protocol === 'https:' &&
        next.protocol === 'http:' &&
        !this.location.endpoints.some((e) => e.protocol === 'http:')
      ) {
        throw new UnavailableError(
          `${req.action}: redirected from HTTPS to plain HTTP (${next.origin}); refused`,
          origin,
        );
      }
      url = next;
    }
  }
}
