/**
 * The control plane's HTTP port: `/healthz` (the process is alive), `/readyz` (every readiness
 * check passes right now; 503 with the failing check's reason otherwise) and `/metrics`
 * (Prometheus text format from the given registry). Later components (dashboard, OCI registry)
 * mount their handlers with `route(prefix, handler)`.
 *
 * /readyz needs no token, so a request must not cost an etcd round trip: the result is kept for
 * `readinessCacheMs` (1 s) and one evaluation runs at a time, whatever the request rate. It still
 * turns false while etcd is unreachable and true again when it returns, without a restart. The
 * failing check's reason (raw error text, endpoints) is shown only with `?verbose`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { errorMessage } from '../../proto/errors.js';
import { formatHostPort, listenAddresses, parseHostPort } from './host-port.js';
import type { Logger } from '../../proto/support/logger.js';

/** One readiness gate: resolves when ready, rejects (or times out) with the reason otherwise. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface HttpServerOptions {
  /** `host:port`, or several comma-separated (host-port.ts listenAddresses); port 0 picks a free one. */
  address: string;
  readinessChecks: ReadinessCheck[];
  metrics: Registry;
  log: Logger;
  /** How long one readiness check may take before it counts as failed. */
  readinessTimeoutMs?: number;
  /** How long a readiness result is served before it is evaluated again; default 1000 ms. */
  readinessCacheMs?: number;
  /**
   * A connection silent this long (no byte in or out) is closed; default 120 s. There is no
   * deadline for a whole request: a registry upload or download of a large layer takes minutes,
   * so requests are bounded by silence instead (and headers by Node's headersTimeout, 60 s).
   */
  idleTimeoutMs?: number;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Array<{ name: string; ok: boolean; reason?: string }>;
}

async function withTimeout(check: ReadinessCheck, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check.check(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function evaluateReadiness(
  checks: ReadinessCheck[],
  timeoutMs: number,
): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (c) => {
      try {
        await withTimeout(c, timeoutMs);
        return { name: c.name, ok: true };
      } catch (err) {
        return { name: c.name, ok: false, reason: errorMessage(err) };
      }
    }),
  );
  return { ready: results.every((r) => r.ok), checks: results };
}

/**
 * Readiness as of at most `maxAgeMs` ago: callers within that time share one result, and
 * callers while an evaluation runs share that evaluation.
 */
export function cachedReadiness(
  evaluate: () => Promise<ReadinessReport>,
  maxAgeMs: number,
  now: () => number = Date.now,
): () => Promise<ReadinessReport> {
  let last: { report: ReadinessReport; at: number } | undefined;
  let running: Promise<ReadinessReport> | undefined;
  return () => {
    if (last !== undefined && now() - last.at < maxAgeMs) return Promise.resolve(last.report);
    running ??= evaluate().then(
      (report) => {
        last = { report, at: now() };
        running = undefined;
        return report;
      },
      (err: unknown) => {
        running = undefined;
        throw err;
      },
    );
    return running;
  };
}

export class HttpServer {
  /** One per listen address, all serving the same routes. */
  private readonly servers: Server[];
  private readonly routes: Array<{ prefix: string; handler: RouteHandler }> = [];

  constructor(private readonly options: HttpServerOptions) {
    this.servers = listenAddresses(options.address, '--http-addr').map(() => {
      const server = createServer({ requestTimeout: 0 }, (req, res) => {
        this.handle(req, res).catch((err: unknown) => {
          options.log.error({ err, url: req.url }, 'http handler failed');
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('internal error\n');
        });
      });
      server.timeout = options.idleTimeoutMs ?? 120_000;
      return server;
    });
    this.route('/healthz', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    });
    const readiness = cachedReadiness(
      () => evaluateReadiness(options.readinessChecks, options.readinessTimeoutMs ?? 2000),
      options.readinessCacheMs ?? 1000,
    );
    this.route('/readyz', async (req, res) => {
      const verbose = new URL(req.url ?? '/', 'http://localhost').searchParams.has('verbose');
      const report = await readiness();
      const lines = report.checks.map((c) =>
        c.ok ? `[+] ${c.name} ok` : `[-] ${c.name} failed${verbose ? `: ${c.reason}` : ''}`,
      );
      lines.push(report.ready ? 'ready' : 'not ready');
      res.writeHead(report.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(lines.join('\n') + '\n');
    });
    this.route('/metrics', async (_req, res) => {
      const body = await options.metrics.metrics();
      res.writeHead(200, { 'content-type': options.metrics.contentType }).end(body);
    });
  }

  /** Serve `prefix` (an exact path, or a subtree when it ends with '/') with `handler`. */
  route(prefix: string, handler: RouteHandler): void {
    this.routes.push({ prefix, handler });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Routed on the path as sent, the same text every handler reads: a URL parser would resolve
    // `/v2/../metrics` to `/metrics` and hand the metrics route a request whose handler-visible
    // path says otherwise (and throws on some inputs). A dotted path matches no exact route, and
    // prefix routes (the registry) refuse dot segments themselves.
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const route = this.routes.find((r) =>
      r.prefix.endsWith('/') ? path.startsWith(r.prefix) : path === r.prefix,
    );
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no handler for ${path}\n`);
      return;
    }
    await route.handler(req, res);
  }

  /** Starts listening on every address; resolves with the first one's bound `host:port`. */
  async listen(): Promise<string> {
    const bound: string[] = [];
    for (const [i, address] of listenAddresses(this.options.address, '--http-addr').entries()) {
      const server = this.servers[i]!;
      const { host, port } = parseHostPort(address, '--http-addr');
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      bound.push(formatHostPort(host, (server.address() as AddressInfo).port));
    }
    return bound[0]!;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.servers.map((server) => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      }),
    );
  }
}
