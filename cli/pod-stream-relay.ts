/**
 * What `skiff exec` and `skiff attach` share: the pod named on the command line, and the relay
 * between this process's stdio and a pod stream (proto/client.ts PodStream).
 *
 * Input is read only as fast as the stream takes it (stdin paused while a send waits), output
 * written only as fast as stdout drains (the stream is not read meanwhile, so the control plane
 * and the agent stop the process's output in turn). With a terminal, this one is raw while the
 * stream lasts (cli/terminal.ts) and its size follows the window. Ctrl-C without a terminal ends
 * the stream (the process in the pod is killed) and the CLI exits 130, as kubectl's; with one it
 * is a byte for the remote terminal.
 */
import type { Readable, Writable } from 'node:stream';
import type { PodStream } from '../proto/client.js';
import { InvalidArgumentError } from '../proto/errors.js';
import { rawTerminal, type RawTerminal } from './terminal.js';

/** A pod as exec, attach, logs and port-forward name it: `NAME`, `pod/NAME` (also `po/`, `pods/`). */
export function podName(arg: string, verb: string): string {
  const slash = arg.indexOf('/');
  if (slash < 0) return arg;
  const kind = arg.slice(0, slash).toLowerCase();
  const name = arg.slice(slash + 1);
  if (!['pod', 'pods', 'po'].includes(kind) || name === '' || name.includes('/'))
    throw new InvalidArgumentError(`${verb} ${arg}: name a pod (NAME or pod/NAME)`, 'pod');
  return name;
}

export interface RelayOptions {
  /** Sent to the stream (-i); its end closes the process's stdin. */
  stdin?: Readable;
  stdout: Writable;
  stderr: Writable;
  /** A terminal: raw mode while the stream lasts, and its resizes sent. */
  tty: boolean;
}

/** Waits until `stream` may take more (or is gone); its listeners go either way. */
export function drained(stream: Writable): Promise<void> {
  if (!stream.writableNeedDrain) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/**
 * Relays until the stream ends; resolves with its exit code (exec: the process's; attach: the
 * container's when it ended, else 0), or 130 after Ctrl-C. Throws the stream's SkiffError.
 */
export async function relayPodStream(stream: PodStream, options: RelayOptions): Promise<number> {
  const { stdin, stdout, stderr, tty } = options;
  let raw: RawTerminal | undefined;
  let interrupted = false;
  const interrupt = (): void => {
    interrupted = true;
    stream.cancel();
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, interrupt);
  stdout.on('error', () => stream.cancel()); // the reader went away (EPIPE)
  let pumping: Promise<void> | undefined;
  try {
    if (tty) raw = rawTerminal((size) => void stream.resize(size));
    if (stdin) {
      pumping = (async () => {
        for await (const chunk of stdin) {
          if (!(await stream.sendStdin(chunk as Buffer))) return;
        }
        await stream.closeStdin();
      })().catch(() => undefined);
    }
    let exitCode = 0;
    for await (const frame of stream) {
      if (frame.stdout?.length) {
        stdout.write(frame.stdout);
        await drained(stdout);
      }
      if (frame.stderr?.length) {
        stderr.write(frame.stderr);
        await drained(stderr);
      }
      if (frame.end?.exitCode !== undefined) exitCode = frame.end.exitCode;
    }
    return exitCode;
  } catch (err) {
    if (interrupted) return 130;
    throw err;
  } finally {
    raw?.restore();
    for (const signal of signals) process.off(signal, interrupt);
    // nothing more is read from a terminal or pipe the stream no longer wants
    if (stdin) stdin.destroy();
    void pumping;
  }
}
