/**
 * Helpers for the container runtime tests: a busybox root file system (Debian's busybox-static
 * plus its applet links), a scratch runtime root, and checks that nothing was left behind.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

/** Fails (never skips) when the machine lacks what the tests need, saying how to get it. */
export function requireRootAndBusybox(): void {
  if (process.getuid?.() !== 0) throw new Error('runtime tests need root: run them as root (CI does)');
  if (!existsSync(BUSYBOX))
    throw new Error('runtime tests need a static busybox: apt-get install -y busybox-static');
  const elf = readFileSync(BUSYBOX).subarray(0, 4096).toString('latin1');
  if (elf.includes('ld-linux')) {
    throw new Error(`${BUSYBOX} is dynamically linked: apt-get install -y busybox-static`);
  }
}

export async function makeBusyboxRootfs(dir: string): Promise<string> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc', 'root'])
    await mkdir(join(dir, d), { recursive: true });
  await copyFile(BUSYBOX, join(dir, 'bin/busybox'));
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') await symlink('busybox', join(dir, 'bin', a)).catch(() => {});
  return dir;
}

export async function scratchDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Mount points in this process's namespace at or under a path. */
export function mountsUnder(path: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === path || m.startsWith(path + '/'));
}

export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}
