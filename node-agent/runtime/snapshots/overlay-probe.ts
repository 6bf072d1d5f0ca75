/**
 * The one place in snapshots/ that mounts: a start-up check that the kernel accepts an overlay
 * mount with the snapshot root as upper (some file systems, e.g. NFS or an overlay root without
 * redirect support, refuse it). It lives at the edge so that the snapshotters themselves never
 * mount. Uses util-linux mount(8); to be folded into node-agent/runtime/sys/ once that edge has a
 * mount call.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type ProbeResult = { ok: true } | { ok: false; reason: string };

/** Mounts a two-layer overlay under `dir` (which must exist), reads through it, unmounts. */
export async function probeOverlay(dir: string): Promise<ProbeResult> {
  const base = await mkdtemp(join(dir, '.probe-'));
  const merged = join(base, 'merged');
  let mounted = false;
  try {
    for (const d of ['lower', 'upper', 'work', 'merged']) await mkdir(join(base, d));
    await writeFile(join(base, 'lower', 'probe'), 'lower');
    await run('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`,
      merged,
    ]);
    mounted = true;
    await writeFile(join(merged, 'probe'), 'upper');
    const lower = await readFile(join(base, 'lower', 'probe'), 'utf8');
    if (lower !== 'lower')
      return { ok: false, reason: 'a write through the overlay changed the lower layer' };
    return { ok: true };
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    return { ok: false, reason: stderr || (err as Error).message };
  } finally {
    if (mounted) await run('umount', [merged]).catch(() => run('umount', ['-l', merged]));
    await rm(base, { recursive: true, force: true });
  }
}
