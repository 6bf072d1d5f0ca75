/**
 * The lock `skiff up` holds on a state directory while it starts a cluster: a file created
 * exclusively, holding the owner's pid and start time (so a reused pid is not taken for the
 * owner). A lock whose owner is gone is taken over by renaming it to a name of the taker's own
 * and re-checking what was moved: of two takers only the one that moved the stale lock itself
 * goes on, so two `skiff up` never both hold it (removing it and creating anew let both through).
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { FailedPreconditionError } from '../../proto/errors.js';
import { isAlive, processStartTime } from './process-support.js';

interface LockOwner {
  pid: number;
  startTime: string | undefined;
}

function ownerOf(text: string): LockOwner | undefined {
  const [pidText, startTime] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  return Number.isInteger(pid) && pid > 0 ? { pid, startTime } : undefined;
}

/** Alive and the same process: a lock without a start time (an older skiff's) goes by pid. */
function ownerRuns(owner: LockOwner | undefined): boolean {
  if (owner === undefined || !isAlive(owner.pid)) return false;
  return owner.startTime === undefined || processStartTime(owner.pid) === owner.startTime;
}

function readLock(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Takes the lock at `path` for this process, or throws FailedPreconditionError naming the
 * running owner (`what` says what the lock guards). Returns the release, which removes the lock
 * only while it is still this process's.
 */
export function acquireStartLock(path: string, what: string): () => void {
  const mine = `${process.pid} ${processStartTime(process.pid) ?? ''}`.trim();
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, mine, { flag: 'wx', mode: 0o600 });
      return () => {
        if (readLock(path) === mine) rmSync(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const seen = readLock(path);
    if (seen === undefined) continue;
    const owner = ownerOf(seen);
    if (ownerRuns(owner)) {
      throw new FailedPreconditionError(
        `${what}: another \`skiff up\` (pid ${owner!.pid}) is starting it (it holds ${path}); wait for it, or stop it`,
      );
    }
    const moved = `${path}.stale-${randomBytes(6).toString('hex')}`;
    try {
      renameSync(path, moved);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const took = readLock(moved);
    if (took !== seen && ownerRuns(ownerOf(took ?? ''))) {
      // Another taker replaced the stale lock with its own between our read and our rename:
      // put it back (link fails if a third one got in, which then holds the lock) and give way.
      try {
        linkSync(moved, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      rmSync(moved, { force: true });
      throw new FailedPreconditionError(
        `${what}: another \`skiff up\` (pid ${ownerOf(took!)!.pid}) is starting it (it holds ${path}); wait for it, or stop it`,
      );
    }
    rmSync(moved, { force: true });
  }
  throw new FailedPreconditionError(`${what}: cannot take ${path}; remove it if no \`skiff up\` runs`);
}
