/**
 * The root a sandbox's process runs in: skiff-pause (./pause) and the mount points the helper
 * mounts on, nothing else. Every sandbox binds it read-only, so it is made once per runtime root
 * and per pause binary: named by the binary's digest, complete before it appears (made aside,
 * then renamed into place), and never changed or removed afterwards. Removing a directory that is
 * a running sandbox's root would detach the mounts inside it (/proc, /dev) from that sandbox.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nativeBinary } from '../sys/native-binary.js';
import { ETC_FILES_ALWAYS_MOUNTED } from './defaults.js';

/** What a sandbox's process runs, inside that root. */
export const PAUSE_COMMAND = ['/pause'];

/** The pause binary: $SKIFF_PAUSE, else dist/native/skiff-pause of this package. */
function pausePath(): string {
  return nativeBinary('skiff-pause', 'SKIFF_PAUSE');
}

/** The digest of each pause binary as last read, to find its root without reading it again. */
const digests = new Map<string, string>();

/**
 * The /etc files a sandbox's process may have mounted: hosts and hostname always, resolv.conf on
 * the host network or when the sandbox has its own (start-plan.ts). A root's name carries the layout's version, so a root made
 * before a mount point was added is never taken for one that has it (old ones stay, unused once
 * their sandboxes are gone).
 */
const ETC_MOUNT_POINTS = [...ETC_FILES_ALWAYS_MOUNTED, 'resolv.conf'];
const LAYOUT = 2;

function rootfsDir(runtimeRoot: string, digest: string): string {
  return join(runtimeRoot, 'sandboxes', `rootfs-${LAYOUT}-${digest.slice(0, 16)}`);
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** `<runtime root>/sandboxes/rootfs-<digest prefix>`, made if missing. */
export async function pauseRootfs(runtimeRoot: string): Promise<string> {
  const binary = pausePath();
  const known = digests.get(binary);
  // a root made from a binary since rebuilt is still a whole root of that binary
  if (known !== undefined && (await exists(rootfsDir(runtimeRoot, known))))
    return rootfsDir(runtimeRoot, known);
  const bytes = await readFile(binary);
  const digest = createHash('sha256').update(bytes).digest('hex');
  digests.set(binary, digest);
  const dir = rootfsDir(runtimeRoot, digest);
  if (await exists(dir)) return dir;
  const making = `${dir}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    for (const sub of ['proc', 'sys', 'dev', 'etc'])
      await mkdir(join(making, sub), { recursive: true, mode: 0o755 });
    // bind targets: the root is read-only, so the helper cannot create them at start
    for (const name of ETC_MOUNT_POINTS) await writeFile(join(making, 'etc', name), '', { mode: 0o644 });
    // the bytes hashed above, so the root holds the binary its name says
    await writeFile(join(making, PAUSE_COMMAND[0]!), bytes);
    // whatever the umask: the process runs as uid 65535, which must reach and run it
    for (const path of [making, join(making, PAUSE_COMMAND[0]!)]) await chmod(path, 0o755);
    await rename(making, dir);
  } catch (err) {
    await rm(making, { recursive: true, force: true });
    // another process made it meanwhile: theirs is the same
    if (
      (err as NodeJS.ErrnoException).code === 'ENOTEMPTY' ||
      (err as NodeJS.ErrnoException).code === 'EEXIST'
    )
      return dir;
    throw err;
  }
  return dir;
}
