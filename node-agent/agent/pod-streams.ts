/**
 * The agent's side of pod streams (logs, exec, attach, port-forward). The agent listens on no
 * port: it keeps one tunnel to the control plane (skiff.v1.Nodes AgentTunnel, with its own
 * credentials), and answers each session the control plane asks for over it with a stream of its
 * own (SessionStream, carrying the session's id and one-time secret), served from the runtime:
 *
 *   tunnel ─► SessionRequest ─► SessionStream ─► logs:   the attempt's log file (tail, since, follow)
 *                                           ├─► exec:   runtime exec (pipes, or a terminal of the
 *                                           │           container's own), its exit code last
 *                                           ├─► attach: the main process's output (its log, from
 *                                           │           now) and, with stdin: true, its stdin
 *                                           └─► port-forward: a connection made in the pod's
 *                                                       network namespace (skiff-helper)
 *
 * Flow control: output waits for the stream (each send resolves once the call takes more), so a
 * slow reader stops the process's pipe, the log reader or the connection; input is written to the
 * process only as fast as it drains. A session that goes away (the user left, the control plane
 * cancelled it) kills its exec'd process and closes its connection. Errors reach the user as the
 * end frame (pod-streams.ts: skiff's error code and message).
 */
import { Writable } from 'node:stream';
import type { AgentSessionRequest, AgentTunnel, ApiClient } from '../../proto/client.js';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  SkiffError,
  errorMessage,
} from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import type { WireDuplex } from '../../proto/grpc-wire-client.js';
import {
  DATA_CHUNK_BYTES,
  chunks,
  dataFrameParts,
  decodeFrame,
  encodeFrame,
  endOfError,
  type PodLogsOptions,
  type PodStreamEnd,
  type PodStreamFrame,
} from '../../proto/pod-streams.js';
import type { Logger } from '../../proto/support/logger.js';
import type { ContainerInfo, Runtime } from '../runtime/runtime.js';
import { relayExec } from '../runtime/sys/helper.js';
import { LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_UID } from './pod-sync.js';

export interface PodStreamServerOptions {
  api: Pick<ApiClient, 'agentTunnel' | 'sessionStream'>;
  runtime: Runtime;
  nodeName: string;
  version: string;
  /** The pod as the agent's informer holds it (a container's stdinOnce). */
  podOf: (key: string) => Pod | undefined;
  log: Logger;
  /** Waits between tunnel attempts: from `minMs`, doubling to `maxMs`. */
  reconnect?: { minMs: number; maxMs: number };
}

/** A terminal's size when the client gave none (docker's). */
const DEFAULT_TERMINAL = { rows: 24, cols: 80 };

/** Output of one session: frames of at most DATA_CHUNK_BYTES, each sent as the call takes more. */
class SessionOutput {
  private sending: Promise<boolean> = Promise.resolve(true);
  /** False once the call ended (the user went away): what is written is dropped. */
  open = true;

  constructor(private readonly call: WireDuplex) {}

  /** Resolves once the frame's bytes are taken (false: the session is gone). */
  send(frame: PodStreamFrame): Promise<boolean> {
    return this.sendParts([encodeFrame(frame)]);
  }

  /** One frame given as parts (a data frame's head and its payload, not copied). */
  private sendParts(parts: readonly Buffer[]): Promise<boolean> {
    this.sending = this.sending.then(async (ok) => {
      if (!ok || !this.open) return false;
      const sent = await this.call.sendParts(parts);
      if (!sent) this.open = false;
      return sent;
    });
    return this.sending;
  }

  async data(stream: 'stdout' | 'stderr', data: Buffer): Promise<boolean> {
    let ok = true;
    for (const chunk of chunks(data)) ok = await this.sendParts(dataFrameParts(stream, chunk));
    return ok;
  }

  /** A Writable whose writes become frames of `stream` (for pipes: backpressure included). */
  writable(stream: 'stdout' | 'stderr'): Writable {
    return new Writable({
      highWaterMark: DATA_CHUNK_BYTES,
      write: (chunk: Buffer, _encoding, callback) => {
        void this.data(stream, chunk).then(() => callback());
      },
    });
  }

  /** The last frame; then this side of the call ends. */
  async end(end: PodStreamEnd): Promise<void> {
    await this.send({ end });
    this.call.end();
  }
}

/** The input frames of a session, decoded; ends (or throws) when the session does. */
async function* inputFrames(incoming: AsyncIterator<Buffer>): AsyncGenerator<PodStreamFrame> {
  for (let next = await incoming.next(); !next.done; next = await incoming.next())
    yield decodeFrame(next.value);
}

/** How long a session stream waits for the control plane to take it (its first, empty message). */
const ACCEPT_TIMEOUT_MS = 10_000;

/** A session's stream, and its incoming messages (one iterator for the whole session). */
interface SessionCall {
  call: WireDuplex;
  incoming: AsyncIterator<Buffer>;
}

/** Resolves once `stream` drained or closed (its listeners removed either way). */
export function drained(stream: Writable): Promise<void> {
  if (stream.destroyed || !stream.writableNeedDrain) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/** An entry's time in milliseconds (CRI times carry nanoseconds; Date.parse reads milliseconds). */
function entryMs(time: string): number {
  return Date.parse(time.replace(/(\.\d{3})\d+Z$/, '$1Z'));
}

export class PodStreamServer {
  private stopped = false;
  private tunnel: AgentTunnel | undefined;
  private readonly sessions = new Set<WireDuplex>();
  /** Sessions by id, for the control plane's cancels. */
  private readonly byId = new Map<string, WireDuplex>();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: PodStreamServerOptions) {}

  /** Keeps the tunnel open (reconnecting with back-off) until stop(). */
  start(): void {
    this.loop ??= this.keepTunnel();
  }

  /** Closes the tunnel and ends every session (their processes and connections). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.tunnel?.close();
    this.wake?.();
    for (const call of this.sessions) call.cancel();
    await this.loop;
  }

  /** Sessions being served now. */
  get active(): number {
    return this.sessions.size;
  }

  private async keepTunnel(): Promise<void> {
    const { api, nodeName, version, log } = this.options;
    const { minMs, maxMs } = this.options.reconnect ?? { minMs: 1000, maxMs: 30_000 };
    let delay = minMs;
    while (!this.stopped) {
      const tunnel = api.agentTunnel(nodeName, version);
      this.tunnel = tunnel;
      tunnel.ready.then(
        () => {
          delay = minMs;
          log.info({ node: nodeName }, 'tunnel to the control plane open');
        },
        () => undefined,
      );
      try {
        for await (const event of tunnel) {
          if ('open' in event) void this.serve(event.open);
          else this.byId.get(event.cancel)?.cancel();
        }
      } catch (err) {
        if (this.stopped) break;
        log.warn(
          { err: errorMessage(err), retryInMs: delay },
          'tunnel to the control plane ended; opening it again',
        );
      }
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay * (0.8 + 0.4 * Math.random()));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      delay = Math.min(delay * 2, maxMs);
    }
  }

  /** One session, from its stream's opening to its end frame. */
  async serve(request: AgentSessionRequest): Promise<void> {
    const { log } = this.options;
    const call = this.options.api.sessionStream(request.id, request.secret);
    this.sessions.add(call);
    this.byId.set(request.id, call);
    const output = new SessionOutput(call);
    const what = `${request.kind} pod ${request.namespace}/${request.pod}`;
    const session: SessionCall = { call, incoming: call[Symbol.asyncIterator]() };
    // Nothing runs until the control plane took the stream (its first message, empty): a session
    // it refuses (the user left meanwhile, a secret that does not match) must not exec anything.
    let timer: NodeJS.Timeout | undefined;
    try {
      const accepted = await Promise.race([
        session.incoming.next(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('not accepted in time')), ACCEPT_TIMEOUT_MS);
        }),
      ]);
      if (accepted.done) throw new Error('the control plane ended the session stream');
    } catch (err) {
      log.debug({ session: what, err: errorMessage(err) }, 'session not taken by the control plane');
      call.cancel();
      this.sessions.delete(call);
      this.byId.delete(request.id);
      return;
    } finally {
      clearTimeout(timer);
    }
    try {
      let end: PodStreamEnd;
      switch (request.kind) {
        case 'logs':
          end = await this.logs(request, call, output, what);
          break;
        case 'exec':
          end = await this.exec(request, session, output, what);
          break;
        case 'attach':
          end = await this.attach(request, session, output, what);
          break;
        case 'port-forward':
          end = await this.portForward(request, session, output, what);
          break;
        default:
          throw new InvalidArgumentError(`session: unknown kind "${String(request.kind)}"`, 'kind');
      }
      await output.end(end);
    } catch (err) {
      if (!(err instanceof SkiffError)) log.error({ err, session: what }, 'pod stream failed');
      await output.end(endOfError(err)).catch(() => undefined);
    } finally {
      // the control plane ends the call once it has the end frame; what it sent meanwhile and
      // nobody read is let go then (a cancel sooner could drop the end frame still queued)
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        call.ended,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, ACCEPT_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      call.cancel();
      this.sessions.delete(call);
      this.byId.delete(request.id);
    }
  }

  /** The attempts of the pod's container, newest first. */
  private async attempts(request: AgentSessionRequest): Promise<ContainerInfo[]> {
    const list = await this.options.runtime.containers.list({
      all: true,
      labels: { [LABEL_UID]: request.podUid, [LABEL_CONTAINER]: request.container },
    });
    return list.sort(
      (a, b) => Number(b.config.labels[LABEL_ATTEMPT] ?? 0) - Number(a.config.labels[LABEL_ATTEMPT] ?? 0),
    );
  }

  /** The container's current attempt, which must be running. */
  private async runningAttempt(request: AgentSessionRequest, what: string): Promise<ContainerInfo> {
    const current = (await this.attempts(request))[0];
    if (current === undefined)
      throw new FailedPreconditionError(`${what}: container ${request.container} has not started yet`);
    if (current.state.status !== 'running')
      throw new FailedPreconditionError(
        `${what}: container ${request.container} is not running (${current.state.status === 'exited' ? `exited with ${current.state.exitCode}` : current.state.status})`,
      );
    return current;
  }

  private async logs(
    request: AgentSessionRequest,
    call: WireDuplex,
    output: SessionOutput,
    what: string,
  ): Promise<PodStreamEnd> {
    const options: PodLogsOptions = request.logs ?? { namespace: request.namespace, name: request.pod };
    const attempts = await this.attempts(request);
    const attempt = options.previous ? attempts[1] : attempts[0];
    if (attempt === undefined) {
      if (options.previous)
        throw new NotFoundError(
          `${what}: previous terminated container "${request.container}" in pod "${request.pod}" not found`,
        );
      throw new FailedPreconditionError(
        `${what}: container "${request.container}" in pod "${request.pod}" is waiting to start`,
      );
    }
    const sinceMs = options.sinceTime
      ? Date.parse(options.sinceTime)
      : options.sinceSeconds
        ? Date.now() - options.sinceSeconds * 1000
        : undefined;
    if (sinceMs !== undefined && Number.isNaN(sinceMs))
      throw new InvalidArgumentError(
        `${what}: sinceTime "${options.sinceTime}" is not an RFC 3339 time`,
        'sinceTime',
      );
    if (options.tailLines !== undefined && (!Number.isInteger(options.tailLines) || options.tailLines < 0))
      throw new InvalidArgumentError(`${what}: tailLines must be a whole number >= 0`, 'tailLines');
    let left = options.limitBytes && options.limitBytes > 0 ? options.limitBytes : Infinity;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (): Promise<boolean> => {
      if (pendingBytes === 0) return true;
      const data = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      return output.data('stdout', data);
    };
    const abort = new AbortController();
    // a follower idle on its file stops when the user goes away, not at the next line
    void call.ended.then(() => abort.abort());
    // with follow, lines that come while nothing else does go out at once (a timer, not per line)
    let timer: NodeJS.Timeout | undefined;
    try {
      for await (const entry of this.options.runtime.containers.logs(attempt.id, {
        follow: options.follow === true && !options.previous,
        ...(options.tailLines !== undefined ? { tail: options.tailLines } : {}),
        signal: abort.signal,
      })) {
        if (!output.open) break;
        if (sinceMs !== undefined && entryMs(entry.time) < sinceMs) continue;
        let line = Buffer.from(
          `${options.timestamps ? `${entry.time} ` : ''}${entry.text}${entry.partial ? '' : '\n'}`,
        );
        if (line.length > left) line = line.subarray(0, left);
        left -= line.length;
        pending.push(line);
        pendingBytes += line.length;
        if (pendingBytes >= DATA_CHUNK_BYTES) {
          clearTimeout(timer);
          timer = undefined;
          if (!(await flush())) break;
        } else
          timer ??= setTimeout(() => {
            timer = undefined;
            void flush();
          }, 5);
        if (left <= 0) break;
      }
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    await flush();
    return {};
  }

  private async exec(
    request: AgentSessionRequest,
    { call, incoming }: SessionCall,
    output: SessionOutput,
    what: string,
  ): Promise<PodStreamEnd> {
    const open = request.stream!;
    const container = await this.runningAttempt(request, what);
    const handle = await this.options.runtime.containers.exec(container.id, {
      argv: open.command ?? [],
      stdio: [open.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      ...(open.tty ? { terminal: sizeOf(open.terminalSize) } : {}),
    });
    const stdin = handle.child.stdin;
    stdin?.on('error', () => undefined);
    const kill = (): void => {
      // the helper has not reaped it yet, so the pid is still the exec'd process
      if (handle.child.exitCode === null && handle.child.signalCode === null) {
        try {
          process.kill(handle.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    };
    // the session's end (the user left, the control plane stopped) ends the process, even while
    // input waits for it to read or output for the stream to take more
    void call.ended.then((error) => {
      if (error === undefined) return;
      output.open = false;
      kill();
    });
    const input = (async () => {
      try {
        for await (const frame of inputFrames(incoming)) {
          if (frame.stdin?.length && stdin && !stdin.destroyed && !stdin.write(frame.stdin))
            await drained(stdin);
          if (frame.stdinClose) stdin?.end();
          if (frame.resize) handle.resize(frame.resize.rows, frame.resize.cols);
        }
      } catch {
        // the session went away: so does the process
        output.open = false;
        kill();
      }
    })();
    const stdout = output.writable('stdout');
    const stderr = output.writable('stderr');
    const exitCode = await relayExec(handle, { stdout, stderr });
    if (!output.open) kill();
    // what the writables still buffer goes out before the end frame
    await Promise.all([stdout, stderr].map((w) => new Promise<void>((resolve) => w.end(resolve))));
    void input;
    return { exitCode };
  }

  private async attach(
    request: AgentSessionRequest,
    { call, incoming }: SessionCall,
    output: SessionOutput,
    what: string,
  ): Promise<PodStreamEnd> {
    const open = request.stream!;
    const container = await this.runningAttempt(request, what);
    const spec = this.options
      .podOf(`${request.namespace}/${request.pod}`)
      ?.spec.containers?.find((c) => c.name === request.container);
    if (open.stdin && !container.config.openStdin)
      throw new FailedPreconditionError(
        `${what}: container ${request.container} was not made with stdin: true, so its input is closed; attach without -i`,
      );
    const input =
      open.stdin || container.config.terminal
        ? await this.options.runtime.containers.openInput(container.id)
        : undefined;
    // the attaching terminal's size, as kubectl's attach sets it
    if (open.tty && open.terminalSize && open.terminalSize.rows > 0 && open.terminalSize.cols > 0)
      input?.resize(open.terminalSize.rows, open.terminalSize.cols);
    const stdinOnce = spec?.stdinOnce === true;
    const abort = new AbortController();
    void call.ended.then(() => abort.abort());
    let gotInput = false;
    const inputDone = (async () => {
      try {
        for await (const frame of inputFrames(incoming)) {
          const stdin = input?.stdin;
          if (frame.stdin?.length && open.stdin && stdin && !stdin.destroyed) {
            gotInput = true;
            if (!stdin.write(frame.stdin)) await drained(stdin);
          }
          if (frame.stdinClose && open.stdin && stdinOnce) input?.closeStdin();
          if (frame.resize) input?.resize(frame.resize.rows, frame.resize.cols);
        }
      } catch {
        output.open = false;
        abort.abort();
      }
    })();
    try {
      // the main process's output from now on: its log, followed until it exits
      for await (const entry of this.options.runtime.containers.logs(container.id, {
        follow: true,
        tail: 0,
        signal: abort.signal,
      })) {
        // the newline the log split its lines at (a terminal's lines keep their \r)
        const data = entry.partial ? entry.text : `${entry.text}\n`;
        if (!(await output.data(entry.stream, Buffer.from(data)))) break;
      }
    } finally {
      abort.abort();
      // Kubernetes' stdinOnce: the container's stdin closes after the first attach that used it
      if (stdinOnce && open.stdin && gotInput) input?.closeStdin();
      input?.close();
    }
    void inputDone;
    const after = await this.options.runtime.containers.inspect(container.id);
    return after.exit ? { exitCode: after.exit.exitCode } : {};
  }

  private async portForward(
    request: AgentSessionRequest,
    { call, incoming }: SessionCall,
    output: SessionOutput,
    what: string,
  ): Promise<PodStreamEnd> {
    const port = request.stream?.port ?? 0;
    const sandbox = (
      await this.options.runtime.containers.listSandboxes({ labels: { [LABEL_UID]: request.podUid } })
    ).find((s) => s.state === 'ready');
    if (sandbox === undefined)
      throw new FailedPreconditionError(
        `${what}: the pod has no running sandbox on node ${this.options.nodeName}`,
      );
    const connection = await this.options.runtime.containers.portForward(sandbox.id, port);
    connection.input.on('error', () => undefined);
    void call.ended.then((error) => {
      if (error === undefined) return;
      output.open = false;
      connection.close();
    });
    const input = (async () => {
      try {
        for await (const frame of inputFrames(incoming)) {
          const to = connection.input;
          if (frame.stdin?.length && !to.destroyed && !to.write(frame.stdin)) await drained(to);
          if (frame.stdinClose) to.end();
        }
      } catch {
        output.open = false;
        connection.close();
      }
    })();
    try {
      for await (const chunk of connection.output) {
        if (!(await output.data('stdout', chunk as Buffer))) break;
      }
    } finally {
      if (!output.open) connection.close();
    }
    const code = await connection.exited;
    void input;
    if (code !== 0 && output.open)
      throw new FailedPreconditionError(`${what}: the connection to port ${port} in the pod was reset`);
    return {};
  }
}

function sizeOf(size: { rows: number; cols: number } | undefined): { rows: number; cols: number } {
  return size && size.rows > 0 && size.cols > 0 ? size : DEFAULT_TERMINAL;
}
