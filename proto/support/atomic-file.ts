/**
 * The one way a whole file is written so that it is never seen half-done: a temp file of a
 * random name in the same directory, created exclusively (never following a planted symlink or
 * reusing another file and its mode) with exactly `mode`, written, renamed over the target; the
 * temp file is removed on any failure.
 *
 * `durable` adds an fsync of the file before the rename and of the directory after it, so the
 * new content survives a power loss. Without it the write still survives the writer dying
 * (rename is atomic in the page cache: a reader sees the old file or the new one, never a torn
 * one), which is all that records no reboot outlives need.
 *
 * A write that is not durable is a handful of page-cache system calls of a few microseconds each:
 * it is made with synchronous calls, because each trip through Node's thread pool costs ~80 µs
 * here and container records are written on every start. A durable write waits for the disk
 * (1–8 ms per fsync), so it stays asynchronous and never stalls the event loop.
 */
import { closeSync, fchmodSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** Permission bits of the new file, exactly (the umask can only narrow the mode given at open, so it is set again). Default 0o644. */
  mode?: number;
  /** fsync the file and its directory (survives a power loss). Default true. */
  durable?: boolean;
}

export async function writeFileAtomic(
  path: string,
  data: string | Buffer,
  { mode = 0o644, durable = true }: AtomicWriteOptions = {},
): Promise<void> {
  // node:crypto loaded here, when a file is written: a CLI verb that only reads its config (every
  // `skiff get`) would otherwise load it for nothing (~4 ms of its start-up)
  const { randomBytes } = process.getBuiltinModule('node:crypto');
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  if (!durable) {
    writeAndRenameSync(tmp, path, data, mode);
    return;
  }
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.chmod(mode);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await syncDir(dirname(path));
}

function writeAndRenameSync(tmp: string, path: string, data: string | Buffer, mode: number): void {
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      fchmodSync(fd, mode);
      writeFileSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
