/**
 * TCP connections opened in a network namespace: this process's own (`directDialer`, net.connect),
 * or another one (`NetnsDialer`), as the node agent needs to reach its pods where the node's
 * network is itself a namespace (PodNetwork's `hostNetns`: `skiff up`, the integration tests).
 *
 * A socket belongs to the namespace it was created in, whoever uses it afterwards, and Node cannot
 * enter a namespace; so NetnsDialer keeps one small process in it, skiff-helper's `dialer` mode
 * (skiff-helper.c run_dialer), which connects there and hands each connected socket back over
 * Node's own IPC channel the way Node passes a net.Socket between its processes. The caller gets
 * an ordinary net.Socket: nothing is relayed, and a connection costs this process a line written to
 * a pipe and a message read from the channel (the helper does the connect, with its timeout).
 *
 * Probes need less than a socket: a TCP probe only whether a connection can be made (`check`), an
 * HTTP probe only the head of one answer (`exchange`). The helper does those whole and answers with
 * a line, which costs the caller a fraction of a socket's setup, an HTTP client's and their
 * callbacks (test/bench/probe-cost.ts); so a NetnsDialer is worth having for the caller's own
 * namespace too (`new NetnsDialer()`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Socket, connect as netConnect } from 'node:net';
import { constants } from 'node:os';
import type { Socket as NetSocket } from 'node:net';
import type { Writable } from 'node:stream';
import { UnavailableError } from '../../../proto/errors.js';
import { helperPath } from './helper.js';

/** Why a connection could not be made: the errno's code (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH…). */
export class DialError extends Error {
  constructor(
    readonly code: string,
    readonly address: string,
    readonly port: number,
  ) {
    super(`dial tcp ${hostPort(address, port)}: ${describeCode(code)}`);
    this.name = 'DialError';
  }
}

/** `ip:port`, IPv6 in brackets. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Go's wording (what kubelet's probe messages say), for the errors a connect meets. */
function describeCode(code: string): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connect: connection refused';
    case 'ETIMEDOUT':
      return 'i/o timeout';
    case 'EHOSTUNREACH':
      return 'connect: no route to host';
    case 'ENETUNREACH':
      return 'connect: network is unreachable';
    case 'ECONNRESET':
      return 'connect: connection reset by peer';
    default:
      return `connect: ${code}`;
  }
}

function codeOf(errno: number): string {
  for (const [name, n] of Object.entries(constants.errno)) if (n === errno) return name;
  return `errno ${errno}`;
}

/** Where an exchange failed: making the connection, sending the request, or awaiting the answer. */
export type ExchangePhase = 'connect' | 'write' | 'read';

/** An exchange that failed after the connection was made (or could not be made: `phase` connect). */
export class ExchangeError extends DialError {
  constructor(
    code: string,
    address: string,
    port: number,
    readonly phase: ExchangePhase,
  ) {
    super(code, address, port);
    this.name = 'ExchangeError';
    if (phase !== 'connect')
      this.message = `${phase} tcp ${hostPort(address, port)}: ${code === 'ETIMEDOUT' ? 'i/o timeout' : describeCode(code).replace(/^connect: /, '')}`;
  }
}

/** Opens TCP connections to IP addresses (names are resolved by the caller). */
export interface Dialer {
  /** A connected socket to `address:port` within `timeoutMs`; rejects with a DialError. */
  dial(address: string, port: number, timeoutMs: number): Promise<NetSocket>;
  /** Resolves once a connection to `address:port` was made (and closed) within `timeoutMs`. */
  check?(address: string, port: number, timeoutMs: number): Promise<void>;
  /**
   * Sends `request` on a new connection and resolves with the head of the answer (up to its blank
   * line, at most 4 KiB; empty when the peer closed without a word), having read at most 10 KiB of
   * what follows, all within `timeoutMs`; rejects with an ExchangeError.
   */
  exchange?(address: string, port: number, request: Buffer, timeoutMs: number): Promise<Buffer>;
  /** Stops whatever the dialer keeps (a helper process); dials after it start it again. */
  close(): void;
}

/** Connections from this process's own network namespace. */
export const directDialer: Dialer = {
  dial(address, port, timeoutMs) {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: address, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new DialError('ETIMEDOUT', address, port));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new DialError(err.code ?? 'EIO', address, port));
      });
    });
  },
  close() {},
};

interface Answer {
  id: number;
  errno?: number;
  phase?: ExchangePhase;
  ok?: number;
  head?: string;
}

interface Waiting {
  address: string;
  port: number;
  resolve(answer: { socket?: NetSocket; head?: Buffer }): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** How long past a dial's own timeout its answer is awaited before the dial fails anyway. */
const ANSWER_MARGIN_MS = 2000;
/** setTimeout's longest delay (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Connections from the network namespace at `netnsPath` (`/run/netns/NAME`, `/proc/PID/ns/net`),
 * or, without one, from this process's own.
 */
export class NetnsDialer implements Dialer {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;

  constructor(readonly netnsPath?: string) {}

  private get where(): string {
    return this.netnsPath ? `network namespace ${this.netnsPath}` : 'this network namespace';
  }

  async dial(address: string, port: number, timeoutMs: number): Promise<NetSocket> {
    return (await this.request('C', address, port, timeoutMs)).socket!;
  }

  async check(address: string, port: number, timeoutMs: number): Promise<void> {
    await this.request('T', address, port, timeoutMs);
  }

  async exchange(address: string, port: number, request: Buffer, timeoutMs: number): Promise<Buffer> {
    return (await this.request('H', address, port, timeoutMs, request)).head!;
  }

  private async request(
    kind: 'C' | 'T' | 'H',
    address: string,
    port: number,
    timeoutMs: number,
    body?: Buffer,
  ): Promise<{ socket?: NetSocket; head?: Buffer }> {
    const child = this.child ?? this.spawn();
    await this.ready;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.answer(id, undefined, new DialError('ETIMEDOUT', address, port)),
        Math.min(timeoutMs + ANSWER_MARGIN_MS, MAX_TIMER_MS),
      );
      timer.unref();
      this.waiting.set(id, { address, port, resolve, reject, timer });
      child.channel?.ref();
      const ms = Math.max(0, Math.round(timeoutMs));
      (child.stdin as Writable).write(
        `${id}\t${kind}\t${address}\t${port}\t${ms}${body ? `\t${body.toString('hex')}` : ''}\n`,
      );
    });
  }

  close(): void {
    const child = this.child;
    this.child = undefined;
    this.ready = undefined;
    this.fail(new UnavailableError('dial: the dialer was closed'));
    if (child && child.exitCode === null) {
      child.stdin?.end();
      child.kill('SIGKILL');
    }
  }

  private spawn(): ChildProcess {
    const child = spawn(helperPath(), ['dialer', this.netnsPath ?? '-'], {
      stdio: ['pipe', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    child.unref();
    child.channel?.unref();
    (child.stdin as unknown as Socket).unref?.();
    let complaint = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => (complaint = (complaint + chunk).slice(-512)));
    (child.stderr as unknown as Socket).unref?.();
    child.stdin!.on('error', () => {}); // a dialer that died: 'exit' answers every waiting dial
    this.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (message: { ready?: number; error?: string }): void => {
        if (message.ready) resolve();
        else if (message.error) reject(new UnavailableError(`dial from ${this.where}: ${message.error}`));
      };
      child.once('message', onMessage);
      child.once('exit', (code, signal) =>
        reject(
          new UnavailableError(
            `dial from ${this.where}: skiff-helper dialer exited (${signal ?? code})${complaint.trim() ? `: ${complaint.trim()}` : ''}`,
          ),
        ),
      );
    });
    this.ready.catch(() => {
      if (this.child === child) {
        this.child = undefined;
        this.ready = undefined;
      }
    });
    child.on('message', (message: Answer, handle?: NetSocket) => {
      if (typeof message.id !== 'number') return;
      const w = this.waiting.get(message.id);
      if (!w) {
        handle?.destroy(); // its dial gave up meanwhile
        return;
      }
      if (handle) this.answer(message.id, { socket: handle });
      else if (message.ok) this.answer(message.id, {});
      else if (typeof message.head === 'string')
        this.answer(message.id, { head: Buffer.from(message.head, 'hex') });
      else {
        const code = codeOf(message.errno ?? 5);
        const phase = message.phase ?? 'connect';
        this.answer(
          message.id,
          undefined,
          phase === 'connect'
            ? new DialError(code, w.address, w.port)
            : new ExchangeError(code, w.address, w.port, phase),
        );
      }
    });
    child.on('exit', () => {
      if (this.child !== child) return;
      this.child = undefined;
      this.ready = undefined;
      this.fail(
        new UnavailableError(`dial from network namespace ${this.netnsPath}: skiff-helper dialer exited`),
      );
    });
    child.on('error', () => {}); // spawn failures show as 'exit' too
    return child;
  }

  private answer(id: number, result: { socket?: NetSocket; head?: Buffer } | undefined, err?: Error): void {
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    if (this.waiting.size === 0) this.child?.channel?.unref();
    if (result) w.resolve(result);
    else w.reject(err!);
  }

  private fail(err: Error): void {
    for (const id of [...this.waiting.keys()]) this.answer(id, undefined, err);
  }
}
