/**
 * Termination messages (terminationMessagePath, terminationMessagePolicy), as the kubelet keeps
 * them: each container attempt gets an empty host file, bind-mounted read-write at its
 * terminationMessagePath (default /dev/termination-log); once the attempt exited the file is read
 * (at most 4 KiB) and becomes state.terminated.message, then lastState's. With
 * FallbackToLogsOnError a container that failed (exit code not 0) and left the file empty gets the
 * end of its log instead: the last 80 lines, at most their last 2 KiB.
 *
 * A bind-mounted host file rather than the container's writable layer: the default path is in
 * /dev, a tmpfs of the container's own that vanishes with it (and the layer is read-only with
 * readOnlyRootFilesystem); a host file outlives the container and is read without the runtime.
 * The files are `<pod dir>/containers/<container>/<attempt>`, so a restarted agent finds an
 * attempt's file from its labels alone; they go with the pod's directory.
 */
import { mkdir, open, readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Container } from '../../../proto/gen/types.js';

export const DEFAULT_TERMINATION_MESSAGE_PATH = '/dev/termination-log';
/** The kubelet's limits. */
export const MAX_TERMINATION_MESSAGE_BYTES = 4096;
export const FALLBACK_LOG_LINES = 80;
export const FALLBACK_LOG_BYTES = 2048;

/** The host file of one attempt of a container. */
export function terminationLogFile(podDir: string, container: string, attempt: number): string {
  return join(podDir, 'containers', container, String(attempt));
}

/**
 * Makes the attempt's empty file (writable by any user the container runs as: it is that
 * container's alone) and removes those of attempts older than the one before it (the runtime keeps
 * two). Returns the bind mount for the runtime.
 */
export async function prepareTerminationLog(
  podDir: string,
  container: Container,
  attempt: number,
): Promise<{ source: string; target: string; readonly: false }> {
  const dir = join(podDir, 'containers', container.name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const source = terminationLogFile(podDir, container.name, attempt);
  await writeFile(source, '', { mode: 0o666 });
  const fd = await open(source, 'r');
  try {
    await fd.chmod(0o666); // whatever the umask made of it
  } finally {
    await fd.close();
  }
  for (const name of await readdir(dir).catch(() => [] as string[]))
    if (/^\d+$/.test(name) && Number(name) < attempt - 1) await unlink(join(dir, name)).catch(() => {});
  return {
    source,
    target: container.terminationMessagePath || DEFAULT_TERMINATION_MESSAGE_PATH,
    readonly: false,
  };
}

/** The file's message: at most 4 KiB (undefined when there is no file). */
export async function readTerminationLog(path: string): Promise<string | undefined> {
  let fd;
  try {
    fd = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(MAX_TERMINATION_MESSAGE_BYTES);
    const { bytesRead } = await fd.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fd.close();
  }
}

/** The end of a log for FallbackToLogsOnError: its last lines, at most their last 2 KiB. */
export function logTail(lines: string[]): string {
  const text = lines.slice(-FALLBACK_LOG_LINES).join('\n') + (lines.length ? '\n' : '');
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= FALLBACK_LOG_BYTES
    ? text
    : bytes.subarray(bytes.length - FALLBACK_LOG_BYTES).toString('utf8');
}

/**
 * The message of an attempt that exited: its file's, or with FallbackToLogsOnError, when the file
 * is empty and the exit code is not 0, the end of its log (`tail` gives its last lines).
 */
export async function terminationMessage(
  container: Container,
  file: string,
  exitCode: number,
  tail: (lines: number) => Promise<string[]>,
): Promise<string> {
  const message = (await readTerminationLog(file)) ?? '';
  if (message !== '' || container.terminationMessagePolicy !== 'FallbackToLogsOnError' || exitCode === 0)
    return message;
  return logTail(await tail(FALLBACK_LOG_LINES));
}
