/**
 * The registry client's HTTP: the only code of the client that touches sockets. One keep-alive
 * agent per scheme (and per TLS strictness), requests with an idle timeout (no byte for that long
 * in either direction fails the request), cancellation by AbortSignal, and bodies read with a
 * limit. Failures of the network are UnavailableError naming the endpoint, with the socket's
 * error as `cause`; what the registry answers is the caller's to judge.
 */
import type * as Http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type https from 'node:https';
import type { Readable } from 'node:stream';
import { ResourceExhaustedError, UnavailableError, errorMessage } from '../errors.js';

// Not `import … from 'node:http'`: an ES module import of it reads every export to build the
// module's namespace, and its WebSocket, CloseEvent and MessageEvent exports load undici then —
// about 200 million instructions (~60 ms) that each `skiff image pull` paid for nothing
// (registry-client.test.ts checks that none is loaded). getBuiltinModule reads only what is used.
const http: typeof Http = process.getBuiltinModule('node:http');

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A body sent once, streamed: its length is announced (Content-Length). */
export interface StreamBody {
  length: number;
  stream: Readable;
}

export interface TransportRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string>;
  body?: Buffer | StreamBody;
  /** HTTPS without certificate checks (insecure registries only). */
  insecureTls?: boolean;
  signal?: AbortSignal;
  /** No byte for this long (connecting, waiting for the answer, reading it) fails it. Default 60 s. */
  idleTimeoutMs?: number;
}

export interface TransportResponse {
  status: number;
  headers: IncomingHttpHeaders;
  url: URL;
  /** The body, to be read to its end or discarded. */
  body: IncomingMessage;
  /** The whole body, refused (ResourceExhaustedError naming `what`) above `maxBytes`. */
  read(maxBytes: number, what: string): Promise<Buffer>;
  /** Drops the body (and the connection, unless it is already read). */
  discard(): void;
}

export interface HttpTransportOptions {
  /** Connections per host (default 16). */
  maxSockets?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export class HttpTransport {
  private readonly common: Http.AgentOptions;
  private readonly httpAgent: Http.Agent;
  /** Made (and node:https, which loads TLS, imported) at the first HTTPS request. */
  private tls: { module: typeof https; strict: https.Agent; insecure: https.Agent } | undefined;

  constructor(options: HttpTransportOptions = {}) {
    this.common = { keepAlive: true, maxSockets: options.maxSockets ?? 16, scheduling: 'lifo' };
    this.httpAgent = new http.Agent(this.common);
  }

  private tlsSide(): NonNullable<HttpTransport['tls']> {
    if (!this.tls) {
      const module = process.getBuiltinModule('node:https');
      this.tls = {
        module,
        strict: new module.Agent(this.common),
        insecure: new module.Agent({ ...this.common, rejectUnauthorized: false }),
      };
    }
    return this.tls;
  }

  send(req: TransportRequest): Promise<TransportResponse> {
    const { url } = req;
    const tls = url.protocol === 'https:' ? this.tlsSide() : undefined;
    const agent = tls ? (req.insecureTls ? tls.insecure : tls.strict) : this.httpAgent;
    const request = tls ? tls.module.request : http.request;
    const idle = req.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    const headers: Record<string, string> = { 'user-agent': 'skiff', ...req.headers };
    const body = req.body;
    if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
    else if (body) headers['content-length'] = String(body.length);
    const where = `${req.method} ${url.origin}${url.pathname}`;
    return new Promise<TransportResponse>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        reject(networkError(where, url, err));
      };
      const r = request(url, { method: req.method, headers, agent, signal: req.signal }, (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        // a failure while the body is read surfaces through the body (its iterator throws)
        res.on('error', () => undefined);
        resolve(wrapResponse(res, url, where, () => r.destroy()));
      });
      r.setTimeout(idle, () => {
        r.destroy(new UnavailableError(`${where}: no data for ${idle / 1000} s`, url.origin));
      });
      r.on('error', fail);
      if (Buffer.isBuffer(body)) {
        r.end(body);
      } else if (body) {
        body.stream.on('error', (err) => r.destroy(err));
        body.stream.pipe(r);
      } else {
        r.end();
      }
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.tls?.strict.destroy();
    this.tls?.insecure.destroy();
  }
}

function wrapResponse(res: IncomingMessage, url: URL, where: string, destroy: () => void): TransportResponse {
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    url,
    body: res,
    async read(maxBytes: number, what: string): Promise<Buffer> {
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        destroy();
        throw new ResourceExhaustedError(
          `read ${what}: ${url.host} announces ${declared} bytes, over the limit of ${maxBytes}`,
        );
      }
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const chunk of res) {
          size += (chunk as Buffer).length;
          if (size > maxBytes) {
            destroy();
            throw new ResourceExhaustedError(
              `read ${what}: ${url.host} sent more than the limit of ${maxBytes} bytes`,
            );
          }
          chunks.push(chunk as Buffer);
        }
      } catch (err) {
        if (err instanceof ResourceExhaustedError) throw err;
        throw networkError(where, url, err);
      }
      return Buffer.concat(chunks, size);
    },
    discard(): void {
      // read to its end, the connection goes back to the pool (a paused answer would hold it until
      // the idle timeout); a body of unknown or more than 64 KiB is cut off with the connection
      res.resume();
      const length = Number(res.headers['content-length']);
      if (!res.complete && !(Number.isFinite(length) && length <= 64 * 1024)) destroy();
    },
  };
}

/** The socket's failure as an UnavailableError naming where (an UnavailableError passes as it is). */
export function networkError(where: string, url: URL, err: unknown): UnavailableError {
  if (err instanceof UnavailableError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === 'ECONNREFUSED'
      ? 'connection refused'
      : code === 'ECONNRESET'
        ? 'connection reset (the registry closed it)'
        : code === 'ABORT_ERR'
          ? 'cancelled'
          : errorMessage(err);
  return new UnavailableError(`${where}: ${reason}`, url.origin, { cause: err });
}

/**
 * Whether a failed HTTPS attempt met a server that does not speak TLS (a plain HTTP registry):
 * only then does a registry that allows plain HTTP fall back to it.
 */
export function isNotTls(err: unknown): boolean {
  const cause = err instanceof UnavailableError ? err.cause : err;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? '';
  const message = errorMessage(cause);
  return (
    code === 'EPROTO' ||
    code.startsWith('ERR_SSL_') ||
    /wrong version number|packet length too long|unknown protocol/i.test(message)
  );
}

/**
 * Whether a failed plain-HTTP attempt met a server that does not speak it (a TLS server closing
 * the connection on a request that is no handshake): only then is HTTPS tried next.
 */
export function isNotHttp(err: unknown): boolean {
  const cause = err instanceof UnavailableError ? err.cause : err;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? '';
  return (
    code === 'ECONNRESET' ||
    code.startsWith('HPE_') ||
    /socket hang up|parse error/i.test(errorMessage(cause))
  );
}
