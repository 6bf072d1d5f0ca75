/**
 * What the etcd and NATS launchers share: finding a system binary, choosing loopback ports,
 * spawning a server with its output in a log file or a pipe, waiting for readiness, and stopping
 * a process by pid (SIGTERM, then SIGKILL after a bound, always waiting for the exit).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
  errorMessage,
} from '../../proto/errors.js';
import { processStartTime } from '../../proto/support/pid-lock.js';

const SYSTEM_BIN_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];

/**
 * The absolute path of `command`, searched on PATH and then in the system bin directories
 * (nats-server lives in /usr/sbin, which is not on a non-root PATH). Throws
 * FailedPreconditionError naming the apt package when it is missing.
 */
export function findBinary(command: string, aptPackage: string): string {
  const pathDirs = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '');
  for (const dir of [...pathDirs, ...SYSTEM_BIN_DIRS]) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory; keep looking
    }
  }
  throw new FailedPreconditionError(
    `find ${command}: not on PATH nor in ${SYSTEM_BIN_DIRS.join(', ')}; install it with: apt-get install -y ${aptPackage}`,
  );
}

/** How to choose a port: `exact` must be free, `preferred` is tried first, neither = any free port. */
export interface PortRequest {
  exact?: number;
  preferred?: number;
}

function listenOn(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Resolves each request to a port that is free on `host` right now, all distinct. The ports are
 * held until every request is resolved, so two requests never get the same port; there is still
 * a short window before the server binds them, which the launchers report if it is lost.
 */
export async function choosePorts(
  host: string,
  requests: Record<string, PortRequest>,
): Promise<Record<string, number>> {
  const held: Server[] = [];
  const chosen: Record<string, number> = {};
  try {
    for (const [label, request] of Object.entries(requests)) {
      for (const port of [request.exact, request.preferred]) {
        if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
          throw new InvalidArgumentError(`choose ${label}: ${port} is not a TCP port (1-65535)`, label);
        }
      }
      const wanted = request.exact ?? request.preferred;
      let server: Server | undefined;
      if (wanted !== undefined) {
        try {
          server = await listenOn(host, wanted);
        } catch (err) {
          if (request.exact !== undefined) {
            throw new FailedPreconditionError(
              `choose ${label}: ${host}:${wanted} is not available (${errorMessage(err)}); stop what uses it, or ask for a preferred port so a free one is picked instead`,
              { cause: err },
            );
          }
        }
      }
      server ??= await listenOn(host, 0);
      held.push(server);
      const address = server.address();
      if (address === null || typeof address === 'string') {
        throw new UnavailableError(`choose ${label}: no TCP address on ${host}`, host);
      }
      chosen[label] = address.port;
    }
    return chosen;
  } finally {
    await Promise.all(held.map(closeServer));
  }
}

/** Where a server's stdout and stderr go. */
export type OutputTarget =
  | { logFile: string }
  /** A pipe the caller reads; the launcher also keeps the last lines for its error messages. */
  | { onOutput?: (chunk: Buffer) => void };

const KEPT_OUTPUT_BYTES = 16 * 1024;

const attachedChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function killWithThisProcess(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const attached of attachedChildren) attached.kill('SIGKILL');
    });
  }
  attachedChildren.add(child);
}

/** A spawned server: the child, and where to read its recent output from. */
export interface SpawnedServer {
  child: ChildProcess;
  /** Resolves with the exit code or signal once the process has exited (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  lastOutput(lines?: number): string;
}

/**
 * Starts `binary`. Detached children get their own session, write only to the log file and are
 * unref'd, so they survive this process (`skiff up --detach`); attached children are killed when
 * this process exits, so a crashed parent (a failed test run) leaves no servers behind.
 */
export function spawnServer(
  binary: string,
  args: string[],
  output: OutputTarget,
  detached: boolean,
): SpawnedServer {
  let logFd: number | undefined;
  let kept = '';
  if ('logFile' in output) {
    logFd = openSync(output.logFile, 'a');
  } else if (detached) {
    throw new InvalidArgumentError(
      `start ${binary}: a detached server needs a log file (its output cannot go to a pipe of a process that exits)`,
      'logFile',
    );
  }
  const child = spawn(binary, args, {
    detached,
    stdio: logFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', logFd, logFd],
  });
  if (logFd !== undefined) closeSync(logFd);
  if (logFd === undefined && !('logFile' in output)) {
    const onChunk = (chunk: Buffer): void => {
      kept = (kept + chunk.toString('utf8')).slice(-KEPT_OUTPUT_BYTES);
      output.onOutput?.(chunk);
    };
    child.stdout?.on('data', onChunk);
    child.stderr?.on('data', onChunk);
  }
  if (detached) child.unref();
  else killWithThisProcess(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', () => resolve({ code: null, signal: null }));
    child.once('exit', (code, signal) => {
      attachedChildren.delete(child);
      resolve({ code, signal });
    });
  });
  const logFile = 'logFile' in output ? output.logFile : undefined;
  return {
    child,
    exited,
    lastOutput: (lines = 20) => lastLines(logFile === undefined ? kept : readTail(logFile), lines),
  };
}

function readTail(path: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const length = Math.min(size, KEPT_OUTPUT_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } catch (err) {
    return `(cannot read ${path}: ${errorMessage(err)})`;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

/**
 * Polls `probe` every `intervalMs` until it returns true. Fails fast when the server exits, and
 * after `timeoutMs` otherwise; both errors end with the server's last output lines.
 */
export async function waitUntilReady(
  what: string,
  server: SpawnedServer,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<void> {
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void server.exited.then((result) => (exit = result));
  const startError = new Promise<Error>((resolve) => server.child.once('error', (err) => resolve(err)));
  let spawnError: Error | undefined;
  void startError.then((err) => (spawnError = err));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError !== undefined) {
      throw new UnavailableError(`start ${what}: cannot run it: ${spawnError.message}`, undefined, {
        cause: spawnError,
      });
    }
    if (exit !== undefined) {
      throw new UnavailableError(
        `start ${what}: it exited (${exit.signal ?? `code ${exit.code}`}) before it was ready; last output:\n${server.lastOutput()}`,
      );
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() >= deadline) {
      throw new UnavailableError(
        `start ${what}: not ready after ${timeoutMs} ms; last output:\n${server.lastOutput()}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** True when an HTTP GET of `url` answers 2xx within `timeoutMs` and `accept(body)` holds. */
export async function httpProbe(
  url: string,
  accept: (body: string) => boolean,
  timeoutMs = 1000,
  /** For an https URL that wants a client certificate (fetch cannot present one). */
  clientTls?: { caFile: string; certFile: string; keyFile: string },
): Promise<boolean> {
  if (clientTls === undefined) {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await response.text();
    return response.ok && accept(body);
  }
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        ca: readFileSync(clientTls.caFile),
        cert: readFileSync(clientTls.certFile),
        key: readFileSync(clientTls.keyFile),
        timeout: timeoutMs,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
  return status >= 200 && status < 300 && accept(body);
}

/**
 * True when process `pid` holds a listening TCP socket on `port`: its open sockets (/proc/PID/fd)
 * against the kernel's table of listening sockets of its network namespace (/proc/PID/net/tcp,
 * tcp6), which need not be this process's. A readiness probe alone cannot tell the server it
 * started from another one that took the port meanwhile.
 */
export function listensOn(pid: number, port: number): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  const sockets = new Set<string>();
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith('socket:[')) sockets.add(target.slice('socket:['.length, -1));
    } catch {
      // closed meanwhile
    }
  }
  const localPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const LISTEN = '0A';
  for (const table of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    let lines: string[];
    try {
      lines = readFileSync(table, 'utf8').split('\n').slice(1);
    } catch {
      continue; // no IPv6 on this machine
    }
    for (const line of lines) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      if (fields[3] === LISTEN && fields[1]?.endsWith(localPort) && sockets.has(fields[9] ?? '')) return true;
    }
  }
  return false;
}

/** `probe`, and then that process `pid` itself listens on every one of `ports`. */
export function ownReadiness(pid: number | undefined, ports: number[], probe: () => Promise<boolean>) {
  return async (): Promise<boolean> =>
    pid !== undefined && (await probe()) && ports.every((port) => listensOn(pid, port));
}

/**
 * Runs `start` again (up to `attempts` times) when the server lost a port between choosePorts
 * and its own bind: another process may take a just-freed port in that window.
 */
export async function retryLostPortRace<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      const message = errorMessage(err);
      if (attempt >= attempts || !/address already in use|EADDRINUSE/.test(message)) throw err;
    }
  }
}

/**
 * True while `pid` is a process that has not exited. A zombie (exited, not yet reaped by its
 * parent) counts as exited, which kill(pid, 0) cannot tell: a detached server whose parent is gone
 * stays a zombie until init reaps it, seconds here.
 */
export function isAlive(pid: number): boolean {
  return processStartTime(pid) !== undefined;
}

/** Resolves true when `promise` settles within `ms`, false otherwise; leaves no timer behind. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Stops a process by pid: SIGTERM, then SIGKILL when it is still running after `graceMs`, and
 * returns once it has exited (isAlive: a zombie has exited). `exited` (when this process spawned
 * it) is awaited instead of polling. No timer outlives the call, so a CLI that has stopped
 * everything exits at once. `what` names the process in the error.
 */
export async function stopProcess(
  pid: number,
  options: { graceMs?: number; exited?: Promise<unknown>; what?: string } = {},
): Promise<void> {
  const graceMs = options.graceMs ?? 5000;
  const what = options.what ?? `process ${pid}`;
  const signal = (name: NodeJS.Signals): boolean => {
    try {
      process.kill(pid, name);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw err;
    }
  };
  const waitForExit = async (ms: number): Promise<boolean> => {
    if (options.exited !== undefined) return settlesWithin(options.exited, ms);
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (!isAlive(pid)) return true;
      await sleep(20);
    }
    return !isAlive(pid);
  };
  if (!signal('SIGTERM')) {
    if (options.exited !== undefined) await options.exited;
    return;
  }
  if (await waitForExit(graceMs)) return;
  signal('SIGKILL');
  if (!(await waitForExit(graceMs))) {
    throw new UnavailableError(`stop ${what}: still running after SIGKILL`);
  }
}

/** What spawnManagedServer needs to know about one kind of server. */
export interface ManagedServerSpec<Port extends string> {
  /** The command and the apt package that provides it (named when it is missing). */
  command: string;
  aptPackage: string;
  host: string;
  /** The ports to choose, by label (the label names the port in errors). */
  ports: Record<Port, PortRequest>;
  /** Made (0700) before the start: the server's data or store directory. */
  dataDir: string;
  args(ports: Record<Port, number>): string[];
  /** Names the server in readiness errors, e.g. `etcd http://127.0.0.1:2379 (data /x)`. */
  describe(ports: Record<Port, number>): string;
  /** Resolves true once the server answers. */
  ready(ports: Record<Port, number>): Promise<boolean>;
  readyTimeoutMs: number;
  output: OutputTarget;
  detached: boolean;
  stopGraceMs?: number;
  /**
   * A network namespace to run the server in (its path, e.g. /run/netns/NAME), entered with
   * `nsenter --net` and nothing else (the mounts, cgroups and pids stay this machine's). Every port
   * must then be `exact`: a port free here says nothing of that namespace. The readiness probe
   * still runs here, so the server's address must be reachable from this process.
   */
  netns?: string;
}

export interface ManagedServer<Port extends string> {
  pid: number;
  ports: Record<Port, number>;
  exited: SpawnedServer['exited'];
  /** SIGTERM, SIGKILL after the grace period, and resolves once the server has exited. */
  stop(): Promise<void>;
}

/**
 * Chooses the ports, starts the server and waits until it is ready; a server that fails to get
 * ready is stopped before the error is thrown, and a start that lost a chosen port to another
 * process (between choosePorts and the server's bind) is tried again with new ports.
 */
export function spawnManagedServer<Port extends string>(
  spec: ManagedServerSpec<Port>,
): Promise<ManagedServer<Port>> {
  return retryLostPortRace(async () => {
    const binary = findBinary(spec.command, spec.aptPackage);
    const ports = (
      spec.netns === undefined ? await choosePorts(spec.host, spec.ports) : exactPorts(spec.ports, spec.netns)
    ) as Record<Port, number>;
    mkdirSync(spec.dataDir, { recursive: true, mode: 0o700 });
    const server =
      spec.netns === undefined
        ? spawnServer(binary, spec.args(ports), spec.output, spec.detached)
        : spawnServer(
            findBinary('nsenter', 'util-linux'),
            [`--net=${spec.netns}`, '--', binary, ...spec.args(ports)],
            spec.output,
            spec.detached,
          );
    const pid = server.child.pid;
    const stop = (): Promise<void> =>
      pid === undefined
        ? Promise.resolve()
        : stopProcess(pid, { graceMs: spec.stopGraceMs, exited: server.exited });
    try {
      await waitUntilReady(
        spec.describe(ports),
        server,
        ownReadiness(pid, Object.values<number>(ports), () => spec.ready(ports)),
        spec.readyTimeoutMs,
      );
    } catch (err) {
      await stop();
      throw err;
    }
    return { pid: pid!, ports, exited: server.exited, stop };
  });
}

/** The ports of a server in another network namespace: each must be given exactly. */
function exactPorts(requests: Record<string, PortRequest>, netns: string): Record<string, number> {
  const ports: Record<string, number> = {};
  for (const [label, request] of Object.entries(requests)) {
    const port = request.exact;
    if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new InvalidArgumentError(
        `choose ${label}: a server in network namespace ${netns} needs an exact port (1-65535): ports free here say nothing of that namespace`,
        label,
      );
    }
    ports[label] = port;
  }
  return ports;
}
