/**
 * Small files read on every container start that rarely change (images.json, snapshot records):
 * the text is kept with the file's identity (inode, size, mtime in ns), and a read whose stat(2)
 * finds the same identity returns it — one system call instead of four (open, fstat, read,
 * close). The calls are synchronous: microseconds each, where a trip through Node's thread pool
 * costs ~80 µs here.
 *
 * Sound for files that are only ever replaced by rename(2) or link(2) of a new file (a new inode:
 * writeFileAtomic, SnapshotRecords.create/replace) or unlinked: a changed file never has the
 * identity of the text kept for it. Errors are readFile's (ENOENT for a missing file).
 */
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';

interface Entry {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  text: string;
}

export class CachedFiles {
  private readonly entries = new Map<string, Entry>();

  /** `max`: files kept; the oldest goes first. */
  constructor(private readonly max = 4096) {}

  read(path: string): string {
    const kept = this.entries.get(path);
    if (kept) {
      let st;
      try {
        st = statSync(path, { bigint: true });
      } catch (err) {
        this.entries.delete(path);
        throw err;
      }
      if (st.ino === kept.ino && st.size === kept.size && st.mtimeNs === kept.mtimeNs) return kept.text;
    }
    const fd = openSync(path, 'r');
    try {
      // the identity of what is read: from the open file, not from the path again
      const st = fstatSync(fd, { bigint: true });
      const text = readFileSync(fd, 'utf8');
      this.entries.delete(path);
      if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(path, { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, text });
      return text;
    } catch (err) {
      this.entries.delete(path);
      throw err;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Keeps `text` as the content of `path` with the identity of the file it was written to (its
   * handle's stat after the last write): for a file this process links into place, which keeps
   * the inode, size and mtime.
   */
  remember(path: string, identity: { ino: bigint; size: bigint; mtimeNs: bigint }, text: string): void {
    this.entries.delete(path);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(path, { ino: identity.ino, size: identity.size, mtimeNs: identity.mtimeNs, text });
  }

  /** After this process removed or replaced the file: nothing is kept for it. */
  forget(path: string): void {
    this.entries.delete(path);
  }
}
