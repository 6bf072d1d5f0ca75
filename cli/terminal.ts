/**
 * The caller's terminal during `exec -t`, `attach -t` and `runtime run|exec -t`: raw mode while a
 * remote terminal is in use (every key, Ctrl-C and Ctrl-D included, goes to it as a byte; its
 * echo and line editing are the remote terminal's), restored however the command ends (normal
 * end, error, signal), and the window's size followed (SIGWINCH → the remote terminal's size).
 */
import type { ReadStream, WriteStream } from 'node:tty';

export interface TerminalSize {
  rows: number;
  cols: number;
}

/** The size of the terminal on stdout (else stdin), or undefined when neither is one. */
export function terminalSize(): TerminalSize | undefined {
  for (const stream of [process.stdout, process.stderr]) {
    const tty = stream as Partial<WriteStream>;
    if (tty.isTTY && tty.rows && tty.columns) return { rows: tty.rows, cols: tty.columns };
  }
  return undefined;
}

/** Whether stdin is a terminal (kubectl refuses -t for input from a file or pipe, with a warning). */
export function stdinIsTerminal(): boolean {
  return (process.stdin as Partial<ReadStream>).isTTY === true;
}

export interface RawTerminal {
  /** Puts the terminal back as it was and stops following its size. Idempotent. */
  restore(): void;
}

/**
 * Raw mode on stdin (when it is a terminal) until restore(); `onResize` gets every new size of
 * the window. The mode is restored on process exit too, so an error or an uncaught signal never
 * leaves the user's shell in raw mode.
 */
export function rawTerminal(onResize?: (size: TerminalSize) => void): RawTerminal {
  const stdin = process.stdin as ReadStream;
  const wasRaw = stdin.isTTY ? stdin.isRaw : false;
  if (stdin.isTTY) stdin.setRawMode(true);
  const resized = (): void => {
    const size = terminalSize();
    if (size) onResize?.(size);
  };
  if (onResize) process.on('SIGWINCH', resized);
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    process.off('SIGWINCH', resized);
    process.off('exit', restore);
    if (stdin.isTTY) stdin.setRawMode(wasRaw);
  };
  process.on('exit', restore);
  return { restore };
}
