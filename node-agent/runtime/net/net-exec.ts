/**
 * The only code of the pod network that touches the system: iproute2's `ip` and `bridge`, `nft` and
 * `sysctl`,
 * run as child processes in a network namespace. Everything they are told is decided before, as
 * text (ip-scripts.ts, nft-ruleset.ts), so this file only runs and reports.
 *
 * A namespace is named by a path (`/proc/<pid>/ns/net`, `/run/netns/<name>`) and entered with
 * `nsenter --net=<path>` (iproute2's `-n` takes only names under /run/netns); absent, the command
 * runs in this process's own namespace. `ip -batch -` reads many commands from one process and
 * stops at the first that fails; `nft -f -` applies its whole script as one transaction.
 */
import { spawn } from 'node:child_process';
import { InternalError } from '../../../proto/errors.js';

/** A command that exited non-zero: what it was, and what it said. */
export class NetCommandError extends InternalError {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${command}: ${stderr.trim().split('\n').slice(-3).join('; ') || `exit code ${exitCode}`}`,
      options,
    );
  }
}

export interface NetExec {
  /** `ip -batch -` with `script` (a command per line); rejects with the first failing command's error. */
  ip(netns: string | undefined, script: string): Promise<void>;
  /** `ip -j ARGS…` parsed; `undefined` when it exits non-zero (e.g. the device it names does not exist). */
  ipJson<T>(netns: string | undefined, args: string[]): Promise<T | undefined>;
  /** `bridge -batch -` with `script` (forwarding database entries: a VXLAN device's). */
  bridge(netns: string | undefined, script: string): Promise<void>;
  /** `bridge -j ARGS…` parsed, as ipJson. */
  bridgeJson<T>(netns: string | undefined, args: string[]): Promise<T | undefined>;
  /** `nft -f -` with `script`: one transaction. */
  nft(netns: string | undefined, script: string): Promise<void>;
  /** `sysctl -n KEY`, trimmed. */
  readSysctl(netns: string | undefined, key: string): Promise<string>;
  /** `sysctl -w KEY=VALUE` for each. */
  writeSysctls(netns: string | undefined, values: Record<string, string>): Promise<void>;
}

/** How long one command may take before it is killed: they take milliseconds. */
const COMMAND_TIMEOUT_MS = 30_000;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], input: string | undefined): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: COMMAND_TIMEOUT_MS,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) =>
      reject(new NetCommandError(argv.join(' '), null, `cannot run ${argv[0]}: ${e.message}`, { cause: e })),
    );
    child.on('close', (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    if (input !== undefined) {
      child.stdin!.on('error', () => {}); // a command that exits early: its status says why
      child.stdin!.end(input);
    }
  });
}

/** `argv` run in `netns`. */
function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns === undefined ? argv : ['nsenter', `--net=${netns}`, '--', ...argv];
}

async function runOk(netns: string | undefined, argv: string[], input?: string): Promise<string> {
  const full = inNetns(netns, argv);
  const ran = await run(full, input);
  if (ran.code !== 0) {
    const shown = `${argv.join(' ')}${netns !== undefined ? ` in ${netns}` : ''}`;
    const firstLines =
      input !== undefined ? ` (input: ${input.trim().split('\n').slice(0, 2).join('; ')}…)` : '';
    throw new NetCommandError(shown, ran.code, ran.stderr + (ran.stderr.trim() ? '' : firstLines));
  }
  return ran.stdout;
}

async function runBatch(netns: string | undefined, tool: 'ip' | 'bridge', script: string): Promise<void> {
  if (script.trim() === '') return;
  await runOk(netns, [tool, '-batch', '-'], script);
}

async function runJson<T>(netns: string | undefined, tool: 'ip' | 'bridge', args: string[]) {
  const ran = await run(inNetns(netns, [tool, '-j', ...args]), undefined);
  if (ran.code !== 0) return undefined;
  return JSON.parse(ran.stdout || 'null') as T;
}

/** The commands as child processes (the agent's). */
export const commandNetExec: NetExec = {
  ip: (netns, script) => runBatch(netns, 'ip', script),
  ipJson: (netns, args) => runJson(netns, 'ip', args),
  bridge: (netns, script) => runBatch(netns, 'bridge', script),
  bridgeJson: (netns, args) => runJson(netns, 'bridge', args),
  async nft(netns, script) {
    await runOk(netns, ['nft', '-f', '-'], script);
  },
  async readSysctl(netns, key) {
    return (await runOk(netns, ['sysctl', '-n', key])).trim();
  },
  async writeSysctls(netns, values) {
    const pairs = Object.entries(values).map(([k, v]) => `${k}=${v}`);
    if (pairs.length > 0) await runOk(netns, ['sysctl', '-q', '-w', ...pairs]);
  },
};
