/**
 * The build cache, keyed as Docker's classic builder keys it: the state a step starts from (its
 * layer chain and config, as one digest), the instruction after substitution, and what else the
 * step depends on — the ARG values a RUN sees, the checksum of what a COPY/ADD copies (content,
 * names, modes, owners after --chown; never times), the build's epoch (it sets every mtime).
 * A RUN is never looked into: the same command on the same state is the same step.
 *
 *   <root>/build-cache/<key hex>.json   the state after the step (BuildState), written atomically
 *
 * An entry is used only while the content store still holds its layers (a prune may have taken
 * them); it is a hint, never the only copy of anything.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../proto/support/atomic-file.js';
import { sha256Digest, digestHex, type Digest } from '../../../proto/oci/digest.js';
import type { RuntimeConfig } from './build-plan.js';

export interface BuiltLayer {
  digest: Digest;
  diffId: Digest;
  size: number;
  mediaType: string;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
  [other: string]: unknown;
}

/** Where a build stands after a step: what the image would be if it ended there. */
export interface BuildState {
  os: string;
  architecture: string;
  variant?: string;
  layers: BuiltLayer[];
  config: RuntimeConfig;
  history: HistoryEntry[];
}

/** JSON with object keys sorted, so equal values always give the same text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

/** The identity of a state: its layers (by DiffID), config and history, as Docker's parent image ID. */
export function stateId(state: BuildState): Digest {
  return sha256Digest(
    canonicalJson({
      os: state.os,
      architecture: state.architecture,
      variant: state.variant ?? '',
      diffIds: state.layers.map((l) => l.diffId),
      config: state.config,
      history: state.history,
    }),
  );
}

/** The cache key of a step: parent state + instruction + what else it depends on. Pure. */
export function cacheKey(parent: BuildState, description: string, extra: readonly string[]): Digest {
  // as JSON, not joined by newlines: a build arg may hold one and pass for two
  return sha256Digest(JSON.stringify([stateId(parent), description, ...extra]));
}

export class BuildCache {
  constructor(private readonly dir: string) {}

  private path(key: Digest): string {
    return join(this.dir, `${digestHex(key)}.json`);
  }

  /** The state a step with `key` led to, if recorded and its layers are still there. */
  async get(key: Digest, has: (digest: Digest) => Promise<boolean>): Promise<BuildState | undefined> {
    let state: BuildState;
    try {
      state = JSON.parse(await readFile(this.path(key), 'utf8')) as BuildState;
    } catch {
      return undefined;
    }
    if (!Array.isArray(state.layers) || !Array.isArray(state.history) || typeof state.config !== 'object')
      return undefined;
    for (const layer of state.layers) if (!(await has(layer.digest))) return undefined;
    return state;
  }

  async put(key: Digest, state: BuildState): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.path(key), JSON.stringify(state));
  }
}
