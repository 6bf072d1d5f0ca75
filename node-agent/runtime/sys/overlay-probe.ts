/**
 * A start-up check that the kernel accepts an overlay mount with an upper dir under the snapshot
 * root (some file systems, e.g. NFS, refuse it). The helper does the mounting (sys/ is the one
 * place that mounts) with the new mount API and never attaches the overlay anywhere: it lives as
 * long as the helper's descriptor, so a probe leaves no mount behind even when killed, and no
 * mount(8)/umount(8) process is spawned. Choosing a snapshotter from the result stays in
 * snapshots/open-snapshotter.ts.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../../proto/errors.js';
import { runHelper } from './helper.js';

export type ProbeResult = { ok: true } | { ok: false; reason: string };

/** Mounts a two-layer overlay under `dir` (which must exist), writes through it, cleans up. */
export async function probeOverlay(dir: string): Promise<ProbeResult> {
  let base: string | undefined;
  try {
    base = await mkdtemp(join(dir, '.probe-'));
    for (const d of ['lower', 'upper', 'work']) await mkdir(join(base, d));
    await writeFile(join(base, 'lower', 'probe'), 'lower');
    return await probeLayers(base);
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  } finally {
    if (base !== undefined) await rm(base, { recursive: true, force: true });
  }
}

/**
 * The probe itself, on `base`/lower (holding a file `probe` that reads "lower"), `base`/upper and
 * `base`/work: a write through the overlay must land in upper and leave lower as it was.
 */
export async function probeLayers(base: string): Promise<ProbeResult> {
  try {
    await runHelper(['probe-overlay', base], `probe overlay mounts in ${base}`);
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
  if ((await readFile(join(base, 'lower', 'probe'), 'utf8')) !== 'lower') {
    return { ok: false, reason: 'a write through the overlay changed the lower layer' };
  }
  const upper = await readFile(join(base, 'upper', 'probe'), 'utf8').catch(() => undefined);
  if (upper !== 'upper') {
    return { ok: false, reason: 'a write through the overlay did not reach the upper layer' };
  }
  return { ok: true };
}
