/**
 * Where the pod network keeps its state: `<stateDir>/leases.json` (ipam.ts's LeaseState) and
 * `<stateDir>/node.json` (what node set-up changed that removal puts back). Both are replaced
 * whole, temp + rename, without fsync: like the container records they must outlive the agent
 * (rename is atomic in the page cache), not a reboot, which no sandbox outlives either; after one,
 * the agent's start-up reconcile releases every lease (releaseExcept of the sandboxes left: none).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../proto/support/atomic-file.js';
import { readTextOr, unlinkIfPresent } from '../../../proto/support/small-files.js';
import { parseLeaseState, type LeaseState } from './ipam.js';

/** What node set-up changed on the host beyond what it made: sysctls and the values they had. */
export interface NodeRecord {
  /** sysctl key → its value before skiff set it (put back by removeNode). */
  restore: Record<string, string>;
}

export class LeaseFile {
  readonly leasesPath: string;
  readonly nodePath: string;

  constructor(readonly dir: string) {
    this.leasesPath = join(dir, 'leases.json');
    this.nodePath = join(dir, 'node.json');
  }

  /** The saved state; undefined when there is none. */
  load(): LeaseState | undefined {
    const text = readTextOr(this.leasesPath, undefined);
    return text === undefined ? undefined : parseLeaseState(text, this.leasesPath);
  }

  async save(state: LeaseState): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.leasesPath, JSON.stringify(state, null, 1) + '\n', {
      mode: 0o600,
      durable: false,
    });
  }

  loadNode(): NodeRecord {
    const text = readTextOr(this.nodePath, undefined);
    if (text === undefined) return { restore: {} };
    try {
      const parsed = JSON.parse(text) as Partial<NodeRecord>;
      return { restore: typeof parsed.restore === 'object' && parsed.restore !== null ? parsed.restore : {} };
    } catch {
      return { restore: {} };
    }
  }

  async saveNode(record: NodeRecord): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.nodePath, JSON.stringify(record) + '\n', { mode: 0o600, durable: false });
  }

  /** Both files gone (the node's network was removed). */
  clear(): void {
    unlinkIfPresent(this.leasesPath);
    unlinkIfPresent(this.nodePath);
  }
}
