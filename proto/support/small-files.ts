/**
 * The runtime's small state files (records, locks, cgroup and /proc files) are read and removed
 * with synchronous calls on the container paths (see containers/state.ts): these are the two
 * forms every caller wants, a missing or unreadable file being an answer, not an error.
 */
import { readFileSync, unlinkSync } from 'node:fs';

/** The file's text, or `missing` when it cannot be read (gone, or never there). */
export function readTextOr<T>(path: string, missing: T): string | T {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return missing;
  }
}

/** Removes the file if it is there. */
export function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}
