/**
 * Leases (containerd's, for the one kind of client we have: a process bringing blobs in, an
 * import or a pull). A lease is a file under DIR/images/leases/ naming its process (pid + start
 * time), when it began, and the digests it holds:
 *
 *   DIR/images/leases/<pid>-<random>.json   { pid, startTime, since, digests }
 *
 * Garbage collection (image-gc.ts) spares what live leases hold: the digests listed, and every
 * blob committed after the oldest live lease began (an import learns some digests only once the
 * blob is written). A lease whose process is gone holds nothing; whoever reads it removes it.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../proto/support/atomic-file.js';
import { isSameProcess, ownIdentity, type ProcessIdentity } from '../../../proto/support/pid-lock.js';
import type { Digest } from '../../../proto/oci/digest.js';

/** One lease file: its process, when it began (ms since the epoch), the blobs it holds. */
interface LeaseRecord extends ProcessIdentity {
  since: number;
  digests: Digest[];
}

/** What the live leases hold together. */
export interface HeldBlobs {
  digests: Set<Digest>;
  /** When the oldest live lease began (ms since the epoch); blobs committed since are spared. */
  oldestSince?: number;
}

/** One lease of this process, until released. */
export interface Lease {
  /** Its file: `live(lease.path)` leaves it out. */
  readonly path: string;
  /** Adds `digest` to what the lease holds (once per digest). */
  hold(digest: Digest): Promise<void>;
  /** Ends the lease: what it held is collectable again unless an image references it. */
  release(): Promise<void>;
}

/**
 * Serialises a change to a lease with garbage collection: a hold written under the lock is
 * either seen by a concurrent collection or comes after it (the holder then finds the blob
 * missing and writes it).
 */
export type Locked = <T>(fn: () => Promise<T>) => Promise<T>;

export class ImageLeases {
  /** `dir` is DIR/images/leases; `locked` runs under the images lock (image-store.ts). */
  constructor(
    private readonly dir: string,
    private readonly locked: Locked,
  ) {}

  async take(): Promise<Lease> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = join(this.dir, `${process.pid}-${randomBytes(6).toString('hex')}.json`);
    const record: LeaseRecord = { ...ownIdentity(), since: Date.now(), digests: [] };
    const held = new Set<Digest>();
    /** Holds asked for before the write that records them began, and that write. */
    let batch: { digests: Digest[]; written: Promise<void> } | undefined;
    const writing = new Map<Digest, Promise<void>>();
    await writeFile(path, JSON.stringify(record), { flag: 'wx', mode: 0o600 });
    return {
      path,
      // holds asked for together (a pull holds every blob of an image at once) are written
      // together: one lock and one write instead of one each
      hold: (digest) => {
        if (held.has(digest)) return Promise.resolve();
        const pending = writing.get(digest);
        if (pending) return pending;
        if (!batch) {
          const digests: Digest[] = [];
          const written = this.locked(async () => {
            batch = undefined;
            for (const d of digests) held.add(d);
            // not durable: a lease names a live process, so none outlives a reboot (and an fsync
            // per hold made a pull of n layers wait for 2n disk flushes before its first byte)
            await writeFileAtomic(path, JSON.stringify({ ...record, digests: [...held] }), {
              durable: false,
            });
          }).finally(() => {
            for (const d of digests) writing.delete(d);
          });
          batch = { digests, written };
        }
        batch.digests.push(digest);
        writing.set(digest, batch.written);
        return batch.written;
      },
      release: () => rm(path, { force: true }),
    };
  }

  /**
   * What the leases of live processes hold (dead ones' files are removed). `except` leaves out
   * one lease (the caller's own).
   */
  async live(except?: string): Promise<HeldBlobs> {
    const out: HeldBlobs = { digests: new Set() };
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return out;
    }
    for (const name of names) {
      const path = join(this.dir, name);
      if (path === except || !name.endsWith('.json')) continue;
      let lease: LeaseRecord | undefined;
      try {
        lease = JSON.parse(await readFile(path, 'utf8')) as LeaseRecord;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        // a lease cut short (a crash or a full disk while it was created) holds nothing
      }
      if (!lease || !isSameProcess(lease.pid, lease.startTime)) {
        await rm(path, { force: true });
        continue;
      }
      for (const d of lease.digests) out.digests.add(d);
      if (out.oldestSince === undefined || lease.since < out.oldestSince) out.oldestSince = lease.since;
    }
    return out;
  }
}
