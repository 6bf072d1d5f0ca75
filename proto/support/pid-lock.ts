/**
 * Process identity and lock files held by a process, the one place the runtime decides whether
 * another process is still alive.
 *
 * A process is identified by its pid AND its start time (field 22 of /proc/PID/stat): a pid alone
 * is reused by the kernel, so `kill(pid, 0)` can call a long-dead owner alive (or a recycled pid
 * the owner of a lock).
 *
 * A lock file holds "PID STARTTIME\n". It is written complete to a temporary file and link()ed
 * into place, so a lock file is never seen empty or half-written, and two creators cannot both
 * succeed. A lock whose owner is gone is taken over by renaming it to a unique name and checking
 * that the renamed file is the very one found stale (same inode, same content); anything else was
 * a fresh lock taken meanwhile and is linked back. Only then is the place free for link() again.
 * A lock file that does not parse (left by an older format, or cut short by a full disk) counts
 * as stale, so it never blocks forever.
 *
 * Every step is a synchronous call: they are a few microseconds of /proc and page-cache work each,
 * on every container start and exit, where a trip through Node's thread pool costs ~80 µs.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { UnavailableError } from '../errors.js';
import { readTextOr, unlinkIfPresent } from './small-files.js';

export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/PID/stat, in clock ticks since boot, as the kernel prints it. */
  startTime: string;
}

/** The start time of a process, or undefined when it is gone (or a zombie). */
export function processStartTime(pid: number): string | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may hold spaces and parentheses: fields start after the last ')'
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

/** True when `pid` runs and is the process that started at `startTime`. */
export function isSameProcess(pid: number | undefined, startTime: string | undefined): boolean {
  if (!pid || !startTime) return false;
  return processStartTime(pid) === startTime;
}

let own: ProcessIdentity | undefined;

export function ownIdentity(): ProcessIdentity {
  if (!own) {
    const startTime = processStartTime(process.pid);
    if (startTime === undefined)
      throw new UnavailableError('read /proc/self/stat: is /proc mounted?', '/proc');
    own = { pid: process.pid, startTime };
  }
  return own;
}

/** "PID STARTTIME" of a lock or lease file; undefined when it does not parse. */
export function parseIdentity(text: string): ProcessIdentity | undefined {
  const m = /^(\d+) (\d+)\n?$/.exec(text);
  if (!m) return undefined;
  return { pid: Number(m[1]), startTime: m[2]! };
}

export function formatIdentity(id: ProcessIdentity): string {
  return `${id.pid} ${id.startTime}\n`;
}

export class PidLock {
  private constructor(
    readonly path: string,
    private readonly ino: number,
  ) {}

  /** Takes the lock at `path` if it is free or its owner is gone; undefined while a live process holds it. */
  static async tryAcquire(path: string): Promise<PidLock | undefined> {
    const me = formatIdentity(ownIdentity());
    const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.new`;
    writeFileSync(temp, me, { flag: 'wx', mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 8; attempt++) {
        try {
          linkSync(temp, path);
          return new PidLock(path, statSync(temp).ino);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        if (!removeIfStale(path, temp)) return undefined;
      }
      return undefined;
    } finally {
      unlinkIfPresent(temp);
    }
  }

  /** Waits (polling) for the lock up to `timeoutMs`; UnavailableError naming the holder after that. */
  static async acquire(path: string, opts: { timeoutMs: number; action: string }): Promise<PidLock> {
    const deadline = Date.now() + opts.timeoutMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
      const lock = await PidLock.tryAcquire(path);
      if (lock) return lock;
      if (Date.now() > deadline) {
        const holder = parseIdentity(readTextOr(path, ''));
        throw new UnavailableError(
          `${opts.action}: ${path} is held by process ${holder?.pid ?? '?'} for more than ${opts.timeoutMs / 1000} s; wait for it or stop that process`,
          path,
        );
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** Removes the lock if it is still this one (a lock taken over after this process was judged gone stays). */
  async release(): Promise<void> {
    if (statSync(this.path, { throwIfNoEntry: false })?.ino === this.ino) unlinkIfPresent(this.path);
  }
}

/** The owner named by a lock file: alive, stale (gone, or unreadable content), or no file at all. */
function ownerOf(path: string): { ino: number; alive: boolean } | undefined {
  try {
    const ino = statSync(path).ino;
    const owner = parseIdentity(readFileSync(path, 'utf8'));
    return { ino, alive: owner !== undefined && isSameProcess(owner.pid, owner.startTime) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * False while a live owner holds `path` (or another process is taking it over); true once the
 * place is free. A stale lock is removed only under `path.takeover`, a second lock: a fresh lock
 * cannot appear while the stale one is in place (link fails), and every remover holds the
 * takeover lock, so the file found stale there is still the one removed.
 */
function removeIfStale(path: string, temp: string): boolean {
  const found = ownerOf(path);
  if (found === undefined) return true;
  if (found.alive) return false;
  const guard = `${path}.takeover`;
  for (let attempt = 0; ; attempt++) {
    try {
      linkSync(temp, guard);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const taker = ownerOf(guard);
    if ((taker && taker.alive) || attempt > 0) return false;
    // a taker that died mid-takeover: its guard is moved aside only if it is still that file
    if (taker) renameAsideIfSame(guard, taker.ino);
  }
  const guardIno = statSync(temp).ino;
  try {
    const again = ownerOf(path);
    if (again === undefined) return true;
    if (again.alive) return false;
    unlinkIfPresent(path);
    return true;
  } finally {
    if (statSync(guard, { throwIfNoEntry: false })?.ino === guardIno) unlinkIfPresent(guard);
  }
}

/** Removes `path` if it is the file `ino`; a different file found there is linked back. */
function renameAsideIfSame(path: string, ino: number): void {
  const aside = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (statSync(aside).ino !== ino) {
    try {
      linkSync(aside, path);
    } catch {
      // a newer lock took the place: it stays
    }
  }
  unlinkIfPresent(aside);
}
