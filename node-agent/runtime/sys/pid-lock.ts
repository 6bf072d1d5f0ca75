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
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { UnavailableError } from '../../../proto/errors.js';

export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/PID/stat, in clock ticks since boot, as the kernel prints it. */
  startTime: string;
}

/** The start time of a process, or undefined when it is gone (or a zombie). */
export async function processStartTime(pid: number): Promise<string | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // the command name may hold spaces and parentheses: fields start after the last ')'
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

/** True when `pid` runs and is the process that started at `startTime`. */
export async function isSameProcess(
  pid: number | undefined,
  startTime: string | undefined,
): Promise<boolean> {
  if (!pid || !startTime) return false;
  return (await processStartTime(pid)) === startTime;
}

let own: ProcessIdentity | undefined;

export async function ownIdentity(): Promise<ProcessIdentity> {
  if (!own) {
    const startTime = await processStartTime(process.pid);
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
    const me = formatIdentity(await ownIdentity());
    const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.new`;
    await writeFile(temp, me, { flag: 'wx', mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 8; attempt++) {
        try {
          await link(temp, path);
          return new PidLock(path, (await stat(temp)).ino);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        if (!(await removeIfStale(path, temp))) return undefined;
      }
      return undefined;
    } finally {
      await unlink(temp).catch(() => {});
    }
  }

  /** Waits (polling) for the lock up to `timeoutMs`; UnavailableError naming the holder after that. */
  static async acquire(path: string, opts: { timeoutMs: number; action: string }): Promise<PidLock> {
    const deadline = Date.now() + opts.timeoutMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
      const lock = await PidLock.tryAcquire(path);
      if (lock) return lock;
      if (Date.now() > deadline) {
        const holder = parseIdentity(await readFile(path, 'utf8').catch(() => ''));
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
    const st = await stat(this.path).catch(() => undefined);
    if (st?.ino === this.ino) await unlink(this.path).catch(() => {});
  }
}

/** The owner named by a lock file: alive, stale (gone, or unreadable content), or no file at all. */
async function ownerOf(path: string): Promise<{ ino: number; alive: boolean } | undefined> {
  try {
    const ino = (await stat(path)).ino;
    const owner = parseIdentity(await readFile(path, 'utf8'));
    return { ino, alive: owner !== undefined && (await isSameProcess(owner.pid, owner.startTime)) };
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
async function removeIfStale(path: string, temp: string): Promise<boolean> {
  const found = await ownerOf(path);
  if (found === undefined) return true;
  if (found.alive) return false;
  const guard = `${path}.takeover`;
  for (let attempt = 0; ; attempt++) {
    try {
      await link(temp, guard);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const taker = await ownerOf(guard);
    if ((taker && taker.alive) || attempt > 0) return false;
    // a taker that died mid-takeover: its guard is moved aside only if it is still that file
    if (taker) await renameAsideIfSame(guard, taker.ino);
  }
  const guardIno = (await stat(temp)).ino;
  try {
    const again = await ownerOf(path);
    if (again === undefined) return true;
    if (again.alive) return false;
    await unlink(path).catch(() => {});
    return true;
  } finally {
    if ((await stat(guard).catch(() => undefined))?.ino === guardIno) await unlink(guard).catch(() => {});
  }
}

/** Removes `path` if it is the file `ino`; a different file found there is linked back. */
async function renameAsideIfSame(path: string, ino: number): Promise<void> {
  const aside = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if ((await stat(aside)).ino !== ino) await link(aside, path).catch(() => {});
  await unlink(aside).catch(() => {});
}
