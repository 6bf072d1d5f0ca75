/**
 * Container logs in the CRI format the shim writes, one entry a line:
 *   2026-11-29T10:00:00.123456789Z stdout F hello
 * (P instead of F marks a part of a line longer than the shim's buffer). Rotated files are
 * `container.log.1` (older) … and `container.log` (current).
 *
 * A follower knows the file it reads by its inode and birth time, not the inode alone: with two
 * files kept, the file it read is deleted at the second rotation and the new current file may get
 * its inode number (tmpfs and ext4 reuse them), which made a follower that had fallen behind take
 * the new file for the old one, read nothing past its old offset, and end early. A follower more
 * than one rotation behind loses what was deleted (as the kubelet's does): it goes on with the
 * whole of `.1`, never with `.1` at the old file's offset.
 */
import type { Stats } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { InvalidArgumentError } from '../../../proto/errors.js';

export interface LogEntry {
  time: string;
  stream: 'stdout' | 'stderr';
  partial: boolean;
  text: string;
}

export function parseCriLine(line: string): LogEntry | undefined {
  const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/s.exec(line);
  if (!m) return undefined;
  return { time: m[1]!, stream: m[2] as 'stdout' | 'stderr', partial: m[3] === 'P', text: m[4]! };
}

export function formatCriLine(e: LogEntry): string {
  return `${e.time} ${e.stream} ${e.partial ? 'P' : 'F'} ${e.text}`;
}

export interface ReadLogsOptions {
  /** Only the last N entries of what exists now (then new ones when following). */
  tail?: number;
  follow?: boolean;
  /** Tells a follower that the writer is gone, so the end of the file is the end. */
  finished?: () => Promise<boolean>;
  pollMs?: number;
  signal?: AbortSignal;
}

async function readOr(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

/** Entries of a log (rotated files first), optionally following the current file. */
export async function* readLogs(
  path: string,
  maxFiles: number,
  opts: ReadLogsOptions = {},
): AsyncGenerator<LogEntry> {
  if (opts.tail !== undefined && (!Number.isInteger(opts.tail) || opts.tail < 0)) {
    throw new InvalidArgumentError(`read logs: tail must be a whole number >= 0, got ${opts.tail}`, 'tail');
  }
  let text = '';
  for (let i = maxFiles - 1; i >= 1; i--) text += await readOr(`${path}.${i}`);
  let reading: string | undefined;
  let offset = 0;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      reading = fileIdentity(st);
      const buf = Buffer.alloc(st.size);
      const { bytesRead } = await fh.read(buf, 0, st.size, 0);
      offset = bytesRead;
      text += buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    // not written yet
  }
  // only whole lines: a line being written is picked up by the follower
  const lastNl = text.lastIndexOf('\n');
  const complete = lastNl >= 0 ? text.slice(0, lastNl) : '';
  const pendingBytes = Buffer.byteLength(text.slice(lastNl + 1));
  offset -= pendingBytes;
  let lines = complete ? complete.split('\n') : [];
  if (opts.tail !== undefined) lines = opts.tail === 0 ? [] : lines.slice(-opts.tail);
  for (const l of lines) {
    const e = parseCriLine(l);
    if (e) yield e;
  }
  if (!opts.follow) return;

  const pollMs = opts.pollMs ?? 50;
  let carry = '';
  for (;;) {
    if (opts.signal?.aborted) return;
    const done = opts.finished ? await opts.finished() : false;
    // Size and inode from the handle that is read: a stat of the path could describe a file that
    // is rotated away before it is opened.
    const fh = await openIfPresent(path);
    if (fh !== undefined) {
      try {
        const st = await fh.stat();
        // a log only grows: one shorter than what was read is another file (where birth times
        // are not kept, an inode number reused looks like the same file)
        if (fileIdentity(st) !== reading || st.size < offset) {
          // rotated: the rest of the old file now sits in .1 (or, two rotations on, is gone)
          if (reading !== undefined) carry += await restOfRotated(`${path}.1`, reading, offset);
          reading = fileIdentity(st);
          offset = 0;
        }
        if (st.size > offset) {
          const buf = Buffer.alloc(st.size - offset);
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          offset += bytesRead;
          carry += buf.subarray(0, bytesRead).toString('utf8');
        }
      } finally {
        await fh.close();
      }
    }
    const nl = carry.lastIndexOf('\n');
    if (nl >= 0) {
      for (const l of carry.slice(0, nl).split('\n')) {
        const e = parseCriLine(l);
        if (e) yield e;
      }
      carry = carry.slice(nl + 1);
    }
    if (done) {
      // the writer finished before this read, so everything it wrote has been read
      return;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** A file as a follower knows it: inode and birth time (an inode number alone is reused). */
function fileIdentity(st: Stats): string {
  return `${st.ino}:${st.birthtimeMs}`;
}

/** What `rotated` holds past `offset` if it is the file last read, else all of it. */
async function restOfRotated(rotated: string, reading: string, offset: number): Promise<string> {
  const fh = await openIfPresent(rotated);
  if (fh === undefined) return '';
  try {
    const st = await fh.stat();
    const from = fileIdentity(st) === reading ? offset : 0;
    if (st.size <= from) return '';
    const buf = Buffer.alloc(st.size - from);
    const { bytesRead } = await fh.read(buf, 0, buf.length, from);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/** The open file, or undefined between a rotation's rename and the new file's creation. */
async function openIfPresent(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
