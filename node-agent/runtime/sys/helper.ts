/**
 * Runs skiff-helper (the C executor of helper specs) and turns its fd-3 report into a pid or a
 * precise error. The only place that spawns the helper.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { constants } from 'node:os';
import type { Socket } from 'node:net';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { isatty } from 'node:tty';
import {
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  UnavailableError,
  type SkiffError,
} from '../../../proto/errors.js';
import { parseHelperReport, type HelperReport, type RootMount } from './helper-spec.js';
import { nativeBinary } from './native-binary.js';

/** The helper binary: $SKIFF_HELPER, else dist/native/skiff-helper of this package. */
export function helperPath(): string {
  return nativeBinary('skiff-helper', 'SKIFF_HELPER');
}

/** A failed setup step reported by the helper, as the error vocabulary. */
export class HelperStepError extends Error {
  constructor(
    readonly step: string,
    readonly path: string,
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export function helperError(action: string, report: Extract<HelperReport, { ok: false }>): SkiffError {
  const where = report.path ? ` ${report.path}` : '';
  const message = `${action}: ${report.step}${where}: ${report.message}`;
  const cause = new HelperStepError(report.step, report.path, report.errno, report.message);
  if (report.step === 'exec' && report.errno === 2) return new NotFoundError(message, { cause });
  if (report.step === 'exec' && report.errno === 13) return new PermissionDeniedError(message, { cause });
  if (report.step === 'chdir' || report.step === 'usage')
    return new InvalidArgumentError(message, report.step, { cause });
  return new FailedPreconditionError(message, { cause });
}

async function readReport(
  stream: Readable,
  child: ChildProcess,
  action: string,
): Promise<HelperReport & { ok: true }> {
  let text = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream) {
    text += chunk as string;
    if (text.includes('\n')) break;
  }
  const report = parseHelperReport(text);
  if (!report) {
    const code = await new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', (c) => resolve(c));
    });
    throw new InternalError(
      `${action}: skiff-helper exited (${code}) without a report${text ? `: ${text.trim()}` : ''}`,
    );
  }
  if (!report.ok) throw helperError(action, report);
  return report;
}

/**
 * A long-lived helper mode spoken to in lines (the launcher, the exec server): requests
 * "ID\t…" go to its stdin, answers "ID\t…\n" come back on its stdout in whatever order they
 * finish, so requests run concurrently. Started on first use; it does not keep Node alive while
 * nothing is due, exits when Node goes away (EOF on its stdin), and is started again if it died,
 * failing whatever was waiting with what it wrote to stderr last.
 */
class HelperLineChild {
  private child: ChildProcess | undefined;
  private readonly waiting = new Map<string, (answer: string | Error) => void>();
  private nextId = 1;
  private buffered = '';

  constructor(
    private readonly args: string[],
    /** What the error says when the child is gone, from how it ended and its last words on stderr. */
    private readonly describeGone: (how: string, complaint: string) => string,
  ) {}

  /**
   * Sends "ID\t" + `request` (which carries its own terminator) and resolves with the answer
   * after "ID\t", without its newline. With `timeout`, the wait ends with that error instead, and an
   * answer that comes later is dropped.
   */
  ask(request: string, timeout?: { ms: number; error: (pid: number | undefined) => Error }): Promise<string> {
    const child = this.child ?? this.spawn();
    const id = String(this.nextId++);
    return new Promise<string>((resolve, reject) => {
      const timer =
        timeout &&
        setTimeout(() => {
          this.waiting.delete(id);
          if (this.waiting.size === 0) (child.stdout as Socket).unref();
          reject(timeout.error(child.pid));
        }, timeout.ms);
      timer?.unref();
      this.waiting.set(id, (answer) => {
        clearTimeout(timer);
        if (answer instanceof Error) reject(answer);
        else resolve(answer);
      });
      // while an answer is due the child's pipe keeps Node alive; idle, it does not
      (child.stdout as Socket).ref();
      child.stdin!.write(`${id}\t${request}`);
    });
  }

  private spawn(): ChildProcess {
    const child = spawn(helperPath(), this.args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.unref();
    (child.stdin as Socket).unref();
    let complaint = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => (complaint = (complaint + chunk).slice(-1024)));
    (child.stderr as Socket).unref();
    // a child that died shows as 'exit' below, which answers everything waiting
    child.stdin!.on('error', () => {});
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const tab = line.indexOf('\t');
        const answer = this.waiting.get(line.slice(0, tab));
        this.waiting.delete(line.slice(0, tab));
        answer?.(line.slice(tab + 1));
      }
      if (this.waiting.size === 0) (child.stdout as Socket).unref();
    });
    (child.stdout as Socket).unref();
    const gone = (how: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      this.buffered = '';
      const waiting = [...this.waiting.values()];
      this.waiting.clear();
      const error = new UnavailableError(this.describeGone(how, complaint.trim()), 'skiff-helper');
      for (const answer of waiting) answer(error);
    };
    child.on('error', (err) => gone(`failed: ${err.message}`));
    child.on('exit', (code, signal) => {
      const answer = () => gone(`exited (${signal ?? code})`);
      // its last words may still be in the pipe ('exit' can come first); nothing else holds it
      if (child.stderr!.readableEnded) answer();
      else {
        child.stderr!.once('close', answer);
        setTimeout(answer, 200).unref();
      }
    });
    return child;
  }
}

/**
 * The helper's launcher mode: one small process per Node process that forks the shims. Forking
 * Node itself for every container cost 1-3 ms, growing with the agent's memory; the launcher's
 * fork of a static binary costs ~0.1 ms. A request is "SPEC\0", the answer the shim's report line,
 * so starts run concurrently. The shims it forks are detached.
 */
class ShimLauncher {
  private readonly child: HelperLineChild;

  constructor(
    args: string[],
    private readonly timeoutMs: number,
  ) {
    // the launcher writes to stderr only why it could not run (its sealed copy failed)
    this.child = new HelperLineChild(['launcher', ...args], (how, complaint) => {
      const why = complaint.split('\t').pop();
      return `skiff-helper launcher ${how} before the shim reported${why ? `: ${why}` : ''}`;
    });
  }

  launch(specPath: string, action: string): Promise<string> {
    // A shim stuck before its report (a hung mount, a cgroup write that never returns) would
    // otherwise leave the start waiting forever.
    return this.child.ask(`${specPath}\0`, {
      ms: this.timeoutMs,
      error: (pid) =>
        new UnavailableError(
          `${action}: the shim did not report within ${this.timeoutMs / 1000} s; check for a hung mount or cgroup write (ps -ef | grep skiff-helper, dmesg) and the skiff-helper launcher ${pid}`,
          'skiff-helper',
        ),
    });
  }
}

/**
 * Warm starts (cgroup v1 and hybrid): the launcher keeps `count` shims whose container process
 * already sits in empty cgroups under `cgroupParents` (`<hierarchy>/skiff`), so a start does not
 * wait for the kernel's RCU grace period that moving a process into a v1 cgroup costs (~10 ms,
 * on about half of back-to-back starts). The spec's cgroup dirs must be children of those parents.
 */
export interface WarmShims {
  count: number;
  cgroupParents: string[];
}

/** One launcher per warm configuration, start deadline and helper binary (and one for cold starts). */
const launchers = new Map<string, ShimLauncher>();

/** How long a start waits for the shim's report before it fails. */
export const SHIM_START_TIMEOUT_MS = 30_000;

function launcherFor(warm: WarmShims | undefined, timeoutMs: number): ShimLauncher {
  const args = warm && warm.count > 0 ? [String(warm.count), ...warm.cgroupParents] : [];
  const key = [timeoutMs, helperPath(), ...args].join('\0');
  let launcher = launchers.get(key);
  if (!launcher) launchers.set(key, (launcher = new ShimLauncher(args, timeoutMs)));
  return launcher;
}

/**
 * Starts the detached shim for one container. Resolves once the container process has exec'd,
 * with its host pid and the shim's pid; the shim outlives this process.
 */
export async function startShim(
  specPath: string,
  action: string,
  warm?: WarmShims,
  timeoutMs = SHIM_START_TIMEOUT_MS,
): Promise<{ pid: number; shimPid: number }> {
  const line = await launcherFor(warm, timeoutMs).launch(specPath, action);
  const report = parseHelperReport(line);
  if (!report) throw new InternalError(`${action}: skiff-helper answered ${JSON.stringify(line.trim())}`);
  if (!report.ok) throw helperError(action, report);
  return { pid: report.pid, shimPid: report.helperPid };
}

/**
 * Runs a helper mode that reports once and exits (probe-overlay, init-layer); resolves after it
 * exited, so nothing it set up outlives the call.
 */
export async function runHelper(args: string[], action: string): Promise<void> {
  const child = spawn(helperPath(), args, { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const reportStream = child.stdio[3] as Readable;
  try {
    await readReport(reportStream, child, action);
  } finally {
    reportStream.destroy();
    await exited;
  }
}

/**
 * Creates, through the prepared snapshot `root` (mounted only inside the helper, in a private
 * mount namespace), the mount points every container gets: /proc, /sys, /dev and the files in
 * `files` (bind targets), with the code that otherwise creates them in each container's root.
 * Resolves once the helper has exited, so the mount is gone and the snapshot can be committed.
 */
export async function makeInitLayer(root: RootMount, files: string[], action: string): Promise<void> {
  // "--" ends the options on the command line; no mount option is ever that
  if (root.options.includes('--')) {
    throw new InvalidArgumentError(`${action}: a root mount option is "--"`, 'options');
  }
  await runHelper(['init-layer', root.type, root.source, ...root.options, '--', ...files], action);
}

export interface ExecHandle {
  /** The exec'd process, as seen from the host. */
  pid: number;
  /**
   * The helper process: its stdio is the exec'd process's (with 'pipe', child.stdin is the
   * process's stdin; read its output from `stdout` and `stderr` below); it exits with its status;
   * a signal sent to it is passed on to the process.
   */
  child: ChildProcess;
  /**
   * With 'pipe': the process's output, buffered from the start. Node drains and drops a child's
   * unread stdout and stderr when it exits, and a short command exits before the caller gets
   * the handle: child.stdout read then had lost it (about one exec in five here).
   */
  stdout: Readable | null;
  stderr: Readable | null;
  /** Exit code of the exec'd process (128+signal when killed). */
  exited: Promise<number>;
  /**
   * With a terminal: sets its size (the process gets SIGWINCH). A no-op without one, or once the
   * process is gone.
   */
  resize(rows: number, cols: number): void;
}

/**
 * The fd a stdio entry hands to the child ('inherit' hands the caller's own), if it is one.
 */
function stdioFd(entry: unknown, index: number): number | undefined {
  if (entry === 'inherit') return index;
  if (typeof entry === 'number') return entry;
  if (entry && typeof entry === 'object' && 'fd' in entry && typeof entry.fd === 'number') return entry.fd;
  return undefined;
}

/**
 * Starts a process in a running container (the helper's exec mode). `stdio` (0-2) becomes the
 * process's own stdio, so a terminal is refused (InvalidArgumentError): the container could read
 * and drive it, and inject input into the caller's shell with TIOCSTI (bubblewrap's CVE-2017-5226);
 * pass 'pipe' and relay (relayExec), as docker exec without -t does. The helper runs in a session
 * of its own, so a terminal's Ctrl-C reaches only the caller, which decides what to pass on.
 *
 * `terminal`: the spec gives the process a new pseudo-terminal of the container's devpts (its
 * master kept by the helper, which copies stdin to it and it to stdout); stdio 1 must then be
 * 'pipe', stderr is the terminal's too (2 is ignored), and fd 4 carries resizes (handle.resize).
 */
export async function startExec(
  specPath: string,
  stdio: StdioOptions,
  action: string,
  terminal = false,
): Promise<ExecHandle> {
  const base = Array.isArray(stdio) ? stdio.slice(0, 3) : [stdio, stdio, stdio];
  base.forEach((entry, index) => {
    const fd = stdioFd(entry, index);
    if (fd !== undefined && isatty(fd)) {
      throw new InvalidArgumentError(
        `${action}: stdio ${index} is a terminal (fd ${fd}), which the container would control; pass 'pipe' and relay it`,
        'stdio',
      );
    }
  });
  if (terminal) {
    if (base[1] !== 'pipe')
      throw new InvalidArgumentError(
        `${action}: a terminal's output is relayed: stdio 1 must be 'pipe'`,
        'stdio',
      );
    base[2] = 'ignore';
  }
  const child = spawn(helperPath(), ['exec', specPath], {
    stdio: [...base, 'pipe', ...(terminal ? ['pipe'] : [])] as StdioOptions,
    detached: true,
  });
  const control = terminal ? (child.stdio[4] as Writable) : undefined;
  control?.on('error', () => {});
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)));
  });
  exited.catch(() => {});
  const stdout = child.stdout ? child.stdout.pipe(new PassThrough()) : null;
  const stderr = child.stderr ? child.stderr.pipe(new PassThrough()) : null;
  const reportStream = child.stdio[3] as Readable;
  try {
    const report = await readReport(reportStream, child, action);
    return {
      pid: report.pid,
      child,
      exited,
      stdout,
      stderr,
      resize: (rows, cols) => {
        if (control && !control.destroyed && child.exitCode === null)
          control.write(`resize ${Math.trunc(rows)} ${Math.trunc(cols)}\n`);
      },
    };
  } finally {
    reportStream.destroy();
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return (constants.signals as Record<string, number>)[signal] ?? 0;
}

/** How long an exec's output is still relayed once the process exited (see relayExec). */
export const EXEC_OUTPUT_DRAIN_MS = 1000;

/** Where relayExec copies an exec's stdio from and to. */
export interface ExecStreams {
  /** Copied to the process's stdin (started with 'pipe'); its end closes the process's stdin. */
  stdin?: Readable;
  stdout: Writable;
  stderr: Writable;
}

/**
 * Relays the stdio of an exec started with ['pipe' | 'ignore', 'pipe', 'pipe'] between the
 * process and the caller's streams, as docker exec -i without -t: so the container only ever
 * holds pipes, never the caller's terminal or files. Resolves with the process's exit code once
 * it exited and its output ended, or EXEC_OUTPUT_DRAIN_MS after the exit (a process left behind
 * in the container may hold the pipes open); then stops relaying in both directions. A
 * destination that fails (EPIPE: the reader went away) is dropped and its output discarded.
 */
export async function relayExec(handle: ExecHandle, io: ExecStreams): Promise<number> {
  const { child } = handle;
  const outputs: [Readable | null, Writable][] = [
    [handle.stdout, io.stdout],
    [handle.stderr, io.stderr],
  ];
  const cleanups: (() => void)[] = [];
  const ended = outputs.map(([from, to]) => {
    if (!from) return Promise.resolve();
    const drop = () => {
      from.unpipe(to);
      from.resume();
    };
    to.on('error', drop);
    cleanups.push(() => {
      to.off('error', drop);
      from.unpipe(to);
      from.destroy();
    });
    from.pipe(to, { end: false });
    return new Promise<void>((resolve) => {
      from.once('end', resolve);
      from.once('close', resolve);
    });
  });
  const { stdin } = io;
  const input = child.stdin;
  if (stdin && input) {
    // the process closed its stdin or exited: what the caller still sends is dropped
    input.on('error', () => {});
    stdin.pipe(input);
    cleanups.push(() => {
      stdin.unpipe(input);
      input.destroy();
    });
  }
  try {
    const code = await handle.exited;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(ended),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, EXEC_OUTPUT_DRAIN_MS))),
    ]);
    clearTimeout(timer);
    return code;
  } finally {
    for (const cleanup of cleanups) cleanup();
    // the pipes themselves, which a process left in the container may hold open
    child.stdout?.destroy();
    child.stderr?.destroy();
    (child.stdio[4] as Writable | null | undefined)?.destroy();
  }
}

/** A TCP connection inside a pod's network namespace (startPortForward). */
export interface PortForwardHandle {
  /** What is written goes to the connection; its end shuts the connection's write side. */
  input: Writable;
  /** What the connection sends; it ends when the connection's read side does. */
  output: Readable;
  /** The helper's exit: 0 when both directions ended, 1 when the connection failed. */
  exited: Promise<number>;
  /** Ends the connection now. */
  close(): void;
}

/**
 * Connects to 127.0.0.1:`port` (else [::1]) inside the network namespace of `pid` (the process
 * with that /proc start time, never another that took its pid): the helper's port-forward mode,
 * which relays the connection over its stdin and stdout. Rejects with the step that failed
 * (connect: ECONNREFUSED when nothing listens).
 */
export async function startPortForward(
  pid: number,
  startTime: string,
  port: number,
  action: string,
): Promise<PortForwardHandle> {
  const child = spawn(helperPath(), ['port-forward', String(pid), startTime, String(port)], {
    stdio: ['pipe', 'pipe', 'ignore', 'pipe'],
  });
  const exited = new Promise<number>((resolve) => {
    child.once('error', () => resolve(1));
    child.once('exit', (code) => resolve(code ?? 1));
  });
  child.stdin!.on('error', () => {});
  const reportStream = child.stdio[3] as Readable;
  try {
    await readReport(reportStream, child, action);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    reportStream.destroy();
  }
  return {
    input: child.stdin!,
    output: child.stdout!,
    exited,
    close: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** What a captured exec came to (ExecServer). */
export interface CapturedExec {
  /** 128+signal when killed (137 after a timeout). */
  exitCode: number;
  /** stdout and stderr as they came, at most 10 KiB. */
  output: Buffer;
  timedOut: boolean;
}

/**
 * The helper's exec-server mode: one long-lived process (run from its sealed copy) that runs exec
 * specs and answers with their exit code and output, forking a worker per spec. An exec through it
 * costs this process a line each way, where `startExec` forks this whole process (1–3 ms and
 * growing with its memory) and the helper copies itself into a sealed memfd again. Requests
 * "ID\tSPEC\tMS\n" go to its stdin; answers come on its stdout as they finish:
 * "ID\tok\tCODE\tTIMEDOUT\tHEX" or "ID\t" + an error report. Started on first use; it does not keep
 * Node alive while idle, exits when Node goes away (EOF), and is started again if it died.
 */
class ExecServer {
  private readonly child = new HelperLineChild(
    ['exec-server'],
    (how, complaint) => `skiff-helper exec-server ${how}${complaint ? `: ${complaint}` : ''}`,
  );

  async run(specPath: string, timeoutMs: number, action: string): Promise<CapturedExec> {
    const answer = await this.child.ask(`${specPath}\t${Math.max(0, Math.round(timeoutMs))}\n`);
    const fields = answer.split('\t');
    if (fields[0] === 'ok')
      return {
        exitCode: Number(fields[1]),
        timedOut: fields[2] === '1',
        output: Buffer.from(fields[3] ?? '', 'hex'),
      };
    const report = parseHelperReport(answer);
    if (report && !report.ok) throw helperError(action, report);
    throw new InternalError(
      `${action}: skiff-helper exec-server answered ${JSON.stringify(answer.slice(0, 200))}`,
    );
  }
}

let execServer: ExecServer | undefined;

/** Runs the exec spec at `specPath` to its end through the helper's exec server. */
export function runCapturedExec(specPath: string, timeoutMs: number, action: string): Promise<CapturedExec> {
  execServer ??= new ExecServer();
  return execServer.run(specPath, timeoutMs, action);
}
