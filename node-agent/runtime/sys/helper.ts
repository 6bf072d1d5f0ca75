/**
 * Runs skiff-helper (the C executor of helper specs) and turns its fd-3 report into a pid or a
 * precise error. The only place that spawns the helper.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import {
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  type SkiffError,
} from '../../../proto/errors.js';
import { parseHelperReport, type HelperReport } from './helper-spec.js';

/** The helper binary: $SKIFF_HELPER, else dist/native/skiff-helper of this package. */
export function helperPath(): string {
  const fromEnv = process.env.SKIFF_HELPER;
  if (fromEnv) return fromEnv;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // Compiled code lives under dist/, so the package root may be one level above the found dir.
  const candidates = [join(dir, 'dist/native/skiff-helper'), join(dir, '../dist/native/skiff-helper')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new FailedPreconditionError(
      `find skiff-helper: not built (looked for ${candidates[0]}); run \`npm run build\` (needs apt gcc make libc6-dev)`,
    );
  }
  return found;
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
 * Starts the detached shim for one container. Resolves once the container process has exec'd,
 * with its host pid and the shim's pid; the shim outlives this process.
 */
export async function startShim(specPath: string, action: string): Promise<{ pid: number; shimPid: number }> {
  const child = spawn(helperPath(), ['shim', specPath], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  child.unref();
  const reportStream = child.stdio[3] as Readable;
  try {
    const report = await readReport(reportStream, child, action);
    return { pid: report.pid, shimPid: report.helperPid };
  } finally {
    reportStream.destroy();
  }
}

/**
 * Runs a helper mode that reports once and exits (probe-overlay); resolves after it exited, so
 * nothing it set up outlives the call.
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

export interface ExecHandle {
  /** The exec'd process, as seen from the host. */
  pid: number;
  /** The helper process: its stdio is the exec'd process's; it exits with its status. */
  child: ChildProcess;
  /** Exit code of the exec'd process (128+signal when killed). */
  exited: Promise<number>;
}

export async function startExec(specPath: string, stdio: StdioOptions, action: string): Promise<ExecHandle> {
  const base = Array.isArray(stdio) ? stdio.slice(0, 3) : [stdio, stdio, stdio];
  const child = spawn(helperPath(), ['exec', specPath], { stdio: [...base, 'pipe'] as StdioOptions });
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)));
  });
  exited.catch(() => {});
  const reportStream = child.stdio[3] as Readable;
  try {
    const report = await readReport(reportStream, child, action);
    return { pid: report.pid, child, exited };
  } finally {
    reportStream.destroy();
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return (constants.signals as Record<string, number>)[signal] ?? 0;
}
