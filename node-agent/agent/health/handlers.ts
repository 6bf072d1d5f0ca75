/**
 * What a probe or a lifecycle hook does, as the kubelet does it (pkg/probe/{exec,http,tcp,grpc},
 * pkg/kubelet/lifecycle/handlers.go): run a command in the container, GET a URL, connect to a port,
 * call grpc.health.v1.Health/Check, or sleep. The I/O edge of the health code: commands through
 * the runtime's exec, connections through a Dialer (the pod network may be in another namespace
 * than the agent's), messages worded as the kubelet's so that events read the same.
 */
import type * as Http from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { lookup } from 'node:dns/promises';
import { connect as tlsConnect } from 'node:tls';
import type {
  Container,
  HTTPGetAction,
  IntOrString,
  LifecycleHandler,
  Probe,
} from '../../../proto/gen/types.js';
import { NotFoundError, PermissionDeniedError, errorMessage } from '../../../proto/errors.js';
import { DialError, ExchangeError, hostPort, type Dialer } from '../../runtime/runtime.js';
import type { ContainerRuntime } from '../../runtime/containers/container-runtime.js';
import {
  GRPC_DEADLINE_EXCEEDED,
  GRPC_UNIMPLEMENTED,
  GrpcCallError,
  SERVING_STATUS,
  grpcHealthCheck,
} from './grpc-health.js';
import type { ProbeOutcome } from './probe-worker.js';

// Not `import … from 'node:http'`: an ES module import of it builds the module's namespace, whose
// WebSocket, CloseEvent and MessageEvent exports load undici, ~12 MB of an agent that never uses it
// (as ../../../proto/oci/registry-transport.ts says); getBuiltinModule reads only what is used.
const http: typeof Http = process.getBuiltinModule('node:http');

/** How much of a command's output or a response's body is kept (the kubelet's 10 KiB). */
export const MAX_OUTPUT_BYTES = 10 * 1024;
/** Redirects an HTTP probe follows on the same host (Go's http.Client). */
const MAX_REDIRECTS = 10;

/** Where a handler acts: the container, the pod's address, and how to reach it. */
export interface HandlerTarget {
  /** The runtime container (exec). */
  containerId: string;
  /** The pod's IP: the default host of httpGet and tcpSocket, and grpc's. */
  podIP: string;
  /** The container's spec: its named ports. */
  container: Container;
}

export interface HandlerContext {
  /** The runtime's exec to the end, output captured (its exec server). */
  execCapture: ContainerRuntime['execCapture'];
  dialer: Dialer;
  /** `kube-probe/1.2` (probes), `kube-lifecycle/1.2` (hooks). */
  userAgent: string;
}

/** A probe or hook that could not be run (a port name the container lacks…), as opposed to one that failed. */
export class HandlerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HandlerError';
  }
}

/** A port as a number: a number, a port name of the container, or a number written as a string (kubelet's extractPort). */
export function resolvePort(port: IntOrString, container: Container): number {
  let n: number;
  if (typeof port === 'number') n = port;
  else {
    const named = (container.ports ?? []).find((p) => p.name === port);
    if (named) n = named.containerPort;
    else if (/^\d+$/.test(port)) n = Number(port);
    else throw new HandlerError(`couldn't find port "${port}" in container ${container.name}`);
  }
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new HandlerError(`invalid port number: ${n}`);
  return n;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

// ------------------------------------------------------------------ exec

export interface ExecResult {
  exitCode: number;
  /** stdout and stderr as they came, at most MAX_OUTPUT_BYTES. */
  output: string;
  timedOut: boolean;
}

/**
 * Runs `argv` in the container to its end; it is killed after `timeoutMs` (Infinity: never).
 * When `signal` aborts (the container is being stopped, which ends the process too) the wait ends
 * at once, as a failure.
 */
export async function execIn(
  ctx: HandlerContext,
  containerId: string,
  argv: string[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ExecResult> {
  const ran = ctx.execCapture(containerId, {
    argv,
    timeoutMs: Number.isFinite(timeoutMs) ? Math.max(1, timeoutMs) : 0,
  });
  if (!signal) return asResult(await ran);
  ran.catch(() => {});
  return new Promise<ExecResult>((resolve, reject) => {
    const abort = (): void => reject(new Error('the container is being stopped'));
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    ran.then(
      (r) => {
        signal.removeEventListener('abort', abort);
        resolve(asResult(r));
      },
      (err: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

function asResult(r: { exitCode: number; output: Buffer; timedOut: boolean }): ExecResult {
  return { exitCode: r.exitCode, output: r.output.toString('utf8'), timedOut: r.timedOut };
}

// ------------------------------------------------------------------ connections

/** An IP to connect to: the host itself, or what its name resolves to. */
async function addressOf(host: string): Promise<string> {
  if (host === '') throw new HandlerError('the pod has no IP address yet');
  if (isIP(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch (err) {
    throw new Error(`dial tcp: lookup ${host}: ${errorMessage(err)}`, { cause: err });
  }
}

/** A deadline shared by the steps of one probe. */
class Deadline {
  readonly at: number;
  constructor(ms: number) {
    this.at = Date.now() + ms;
  }
  get left(): number {
    return Math.max(1, this.at - Date.now());
  }
}

// ------------------------------------------------------------------ HTTP

interface HttpAnswer {
  status: number;
  location?: string;
}

/** A header the request line may carry: a token name, a value without control line breaks. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[^\r\n\0]*$/;

/** The head of an HTTP answer: its status, and where it redirects. */
export function parseHttpHead(head: Buffer): HttpAnswer {
  const text = head.toString('latin1');
  if (text === '') throw new Error('EOF');
  const [statusLine = '', ...lines] = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
  if (!m) throw new Error(`malformed HTTP response ${JSON.stringify(statusLine.slice(0, 80))}`);
  const location = lines
    .find((l) => /^location:/i.test(l))
    ?.slice('location:'.length)
    .trim();
  return { status: Number(m[1]), ...(location ? { location } : {}) };
}

/**
 * One GET made whole by the dialer (the kubelet's probe, without an HTTP client here): the request
 * written out, the answer's head parsed.
 */
async function getByExchange(
  exchange: NonNullable<Dialer['exchange']>,
  url: URL,
  headers: Record<string, string>,
  deadline: Deadline,
): Promise<HttpAnswer> {
  let text = `GET ${url.pathname}${url.search} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value))
      throw new HandlerError(`invalid HTTP header ${JSON.stringify(name)}`);
    text += `${name}: ${value}\r\n`;
  }
  const port = Number(url.port) || 80;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const address = await addressOf(host);
  try {
    return parseHttpHead(await exchange(address, port, Buffer.from(`${text}\r\n`, 'latin1'), deadline.left));
  } catch (err) {
    if (err instanceof ExchangeError && err.code === 'ETIMEDOUT')
      throw new Error('context deadline exceeded (Client.Timeout exceeded while awaiting headers)');
    throw err;
  }
}

/** One GET on a fresh connection (no keep-alive, as the kubelet's probes); the body read up to 10 KiB. */
async function get(
  ctx: HandlerContext,
  url: URL,
  headers: Record<string, string>,
  deadline: Deadline,
  signal?: AbortSignal,
): Promise<HttpAnswer> {
  // plain HTTP through a dialer that makes the exchange itself: no socket here at all
  if (url.protocol === 'http:' && ctx.dialer.exchange && !signal)
    return getByExchange(ctx.dialer.exchange.bind(ctx.dialer), url, headers, deadline);
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let socket: Socket = await ctx.dialer.dial(await addressOf(host), port, deadline.left);
  if (url.protocol === 'https:') {
    // as the kubelet: TLS without verifying the certificate
    const tls = tlsConnect({
      socket,
      rejectUnauthorized: false,
      ...(isIP(host) ? {} : { servername: host }),
    });
    socket = tls;
  }
  return new Promise<HttpAnswer>((resolve, reject) => {
    let done = false;
    let req: ClientRequest | undefined;
    const finish = (err: Error | undefined, answer?: HttpAnswer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      req?.destroy();
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(
      () => finish(new Error('context deadline exceeded (Client.Timeout exceeded while awaiting headers)')),
      deadline.left,
    );
    const abort = (): void => finish(new Error('context canceled'));
    signal?.addEventListener('abort', abort, { once: true });
    try {
      req = http.request({
        createConnection: () => socket,
        method: 'GET',
        path: `${url.pathname}${url.search}`,
        headers,
        setHost: false,
      });
    } catch (err) {
      // a header Node refuses (a line break in a value)
      return finish(new HandlerError(errorMessage(err)));
    }
    req.on('error', (err) => finish(err));
    req.on('response', (res: IncomingMessage) => {
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size >= MAX_OUTPUT_BYTES) finish(undefined, { status: res.statusCode ?? 0, ...locationOf(res) });
      });
      res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, ...locationOf(res) }));
      res.on('error', (err) => finish(err));
    });
    req.end();
  });
}

function locationOf(res: IncomingMessage): { location?: string } {
  const location = res.headers.location;
  return location ? { location } : {};
}

/** The URL an httpGet names (host: its own, else the pod's IP). */
export function httpGetUrl(action: HTTPGetAction, target: HandlerTarget): URL {
  const port = resolvePort(action.port, target.container);
  const scheme = (action.scheme ?? 'HTTP').toLowerCase();
  const host = action.host || target.podIP;
  if (host === '') throw new HandlerError('the pod has no IP address yet');
  const path = action.path ? (action.path.startsWith('/') ? action.path : `/${action.path}`) : '/';
  return new URL(`${scheme}://${hostPort(host, port)}${path}`);
}

/** The request headers: the user's (a Host among them replaces the host), then the kubelet's defaults. */
function httpHeaders(action: HTTPGetAction, url: URL, userAgent: string): Record<string, string> {
  const headers: Record<string, string> = {
    Host: url.host,
    'User-Agent': userAgent,
    Accept: '*/*',
    Connection: 'close',
  };
  for (const h of action.httpHeaders ?? []) {
    const known = Object.keys(headers).find((k) => k.toLowerCase() === h.name.toLowerCase());
    if (known) delete headers[known];
    headers[h.name] = h.value ?? '';
  }
  return headers;
}

/**
 * An HTTP GET as the kubelet's probe: success for 200–399; redirects followed on the same host (a
 * redirect elsewhere is not followed and counts as success, as the kubelet's "Probe terminated
 * redirects" warning).
 */
export async function httpProbe(
  ctx: HandlerContext,
  action: HTTPGetAction,
  target: HandlerTarget,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  let url = httpGetUrl(action, target);
  const first = url;
  const deadline = new Deadline(timeoutMs);
  for (let redirects = 0; ; redirects++) {
    let answer: HttpAnswer;
    try {
      answer = await get(ctx, url, httpHeaders(action, url, ctx.userAgent), deadline);
    } catch (err) {
      return { result: 'failure', message: `Get "${url.href}": ${errorMessage(err)}` };
    }
    const { status, location } = answer;
    if (status >= 300 && status < 400 && location) {
      const next = new URL(location, url);
      if (next.host !== first.host || next.protocol !== first.protocol)
        return { result: 'success', message: `Probe terminated redirects, Response status: ${status}` };
      if (redirects >= MAX_REDIRECTS)
        return { result: 'failure', message: `Get "${next.href}": stopped after ${MAX_REDIRECTS} redirects` };
      url = next;
      continue;
    }
    if (status >= 200 && status < 400) return { result: 'success', message: '' };
    return { result: 'failure', message: `HTTP probe failed with statuscode: ${status}` };
  }
}

// ------------------------------------------------------------------ the probe

/** Runs one probe once; never rejects (what could not be run is an 'error' outcome). */
export async function runProbe(
  ctx: HandlerContext,
  probe: Probe,
  target: HandlerTarget,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  try {
    if (probe.exec) {
      const argv = probe.exec.command ?? [];
      let ran: ExecResult;
      try {
        ran = await execIn(ctx, target.containerId, argv, timeoutMs);
      } catch (err) {
        // a command the container lacks (or may not run) fails the probe, as with runc's exec;
        // a container that is not running any more is not probed (an error)
        if (err instanceof NotFoundError || err instanceof PermissionDeniedError)
          return { result: 'failure', message: errorMessage(err) };
        throw err;
      }
      if (ran.timedOut) return { result: 'failure', message: `command "${argv.join(' ')}" timed out` };
      return ran.exitCode === 0
        ? { result: 'success', message: ran.output }
        : { result: 'failure', message: ran.output };
    }
    if (probe.httpGet) return await httpProbe(ctx, probe.httpGet, target, timeoutMs);
    if (probe.tcpSocket) {
      const port = resolvePort(probe.tcpSocket.port, target.container);
      const host = probe.tcpSocket.host || target.podIP;
      const address = await addressOf(host);
      try {
        if (ctx.dialer.check) await ctx.dialer.check(address, port, timeoutMs);
        else (await ctx.dialer.dial(address, port, timeoutMs)).destroy();
        return { result: 'success', message: '' };
      } catch (err) {
        return { result: 'failure', message: errorMessage(err) };
      }
    }
    if (probe.grpc) return await grpcProbe(ctx, probe.grpc.port, probe.grpc.service ?? '', target, timeoutMs);
    throw new HandlerError('the probe names no handler (exec, httpGet, tcpSocket or grpc)');
  } catch (err) {
    return { result: 'error', message: errorMessage(err) };
  }
}

async function grpcProbe(
  ctx: HandlerContext,
  port: number,
  service: string,
  target: HandlerTarget,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  if (target.podIP === '') throw new HandlerError('the pod has no IP address yet');
  const authority = hostPort(target.podIP, port);
  const deadline = new Deadline(timeoutMs);
  let socket: Socket;
  try {
    socket = await ctx.dialer.dial(target.podIP, port, deadline.left);
  } catch (err) {
    const timedOut = err instanceof DialError && err.code === 'ETIMEDOUT';
    return {
      result: 'failure',
      message: timedOut
        ? `timeout: failed to connect service "${authority}" within ${timeoutMs / 1000}s: context deadline exceeded`
        : `error: failed to connect service at "${authority}": ${errorMessage(err)}`,
    };
  }
  try {
    const status = await grpcHealthCheck(socket, {
      authority,
      service,
      timeoutMs: deadline.left,
      userAgent: ctx.userAgent,
    });
    if (SERVING_STATUS[status] === 'SERVING') return { result: 'success', message: 'service healthy' };
    return {
      result: 'failure',
      message: `service unhealthy (responded with "${SERVING_STATUS[status] ?? status}")`,
    };
  } catch (err) {
    if (err instanceof GrpcCallError && err.code === GRPC_UNIMPLEMENTED)
      return {
        result: 'failure',
        message: `this server does not implement the grpc health protocol (grpc.health.v1.Health): ${err.details}`,
      };
    if (err instanceof GrpcCallError && err.code === GRPC_DEADLINE_EXCEEDED)
      return {
        result: 'failure',
        message: `timeout: health rpc did not complete within ${timeoutMs / 1000}s`,
      };
    return { result: 'failure', message: `error: health rpc probe failed: ${errorMessage(err)}` };
  }
}

// ------------------------------------------------------------------ lifecycle hooks

/**
 * Runs a postStart or preStop hook; resolves when it succeeded, rejects with why it failed (the
 * kubelet's message). exec fails on a non-zero exit, httpGet only when no answer came (any status
 * is an answer, as the kubelet's), sleep always succeeds (cut short when `signal` aborts, which ends
 * the others too). tcpSocket is accepted by the API but, as in Kubernetes, fails when run.
 */
export async function runHook(
  ctx: HandlerContext,
  handler: LifecycleHandler,
  target: HandlerTarget,
  podName: string,
  signal?: AbortSignal,
): Promise<void> {
  if (handler.exec) {
    const argv = handler.exec.command ?? [];
    let ran: ExecResult;
    try {
      ran = await execIn(ctx, target.containerId, argv, Infinity, signal);
    } catch (err) {
      throw new HandlerError(
        `Exec lifecycle hook (${JSON.stringify(argv)}) for Container "${target.container.name}" in Pod "${podName}" failed - error: ${errorMessage(err)}`,
      );
    }
    if (ran.exitCode !== 0)
      throw new HandlerError(
        `Exec lifecycle hook (${JSON.stringify(argv)}) for Container "${target.container.name}" in Pod "${podName}" failed - error: command '${argv.join(' ')}' exited with ${ran.exitCode}: ${ran.output}, message: ${JSON.stringify(ran.output)}`,
      );
    return;
  }
  if (handler.httpGet) {
    const url = httpGetUrl(handler.httpGet, target);
    try {
      await get(
        ctx,
        url,
        httpHeaders(handler.httpGet, url, ctx.userAgent),
        new Deadline(2 ** 31 - 1),
        signal,
      );
    } catch (err) {
      throw new HandlerError(
        `HTTP lifecycle hook (${url.pathname}) for Container "${target.container.name}" in Pod "${podName}" failed - error: Get "${url.href}": ${errorMessage(err)}`,
      );
    }
    return;
  }
  if (handler.sleep) {
    await sleep(Math.max(0, handler.sleep.seconds ?? 0) * 1000, signal);
    return;
  }
  if (handler.tcpSocket)
    throw new HandlerError(
      `Container "${target.container.name}" in Pod "${podName}": tcpSocket is not supported as a lifecycle hook (use exec, httpGet or sleep)`,
    );
  throw new HandlerError('the hook names no handler (exec, httpGet or sleep)');
}
