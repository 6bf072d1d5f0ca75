/**
 * Helpers for the container runtime tests: a busybox root file system (Debian's busybox-static
 * plus its applet links), a scratch runtime root with the hooks that tear it down, and checks
 * that nothing was left behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type {
  ContainerRuntime,
  CreateContainerOptions,
} from '../../node-agent/runtime/containers/container-runtime.js';
import { openImageRuntime, type ImageRuntime } from '../../node-agent/runtime/runtime.js';
import { archiveTar, ociLayout, type FixtureImage } from '../fixtures/images.js';

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

/** What the teardown needs of a runtime: a LinuxContainerRuntime, or an ImageRuntime's `runtime.containers`. */
export type RemovableContainers = Pick<ContainerRuntime, 'list' | 'remove'>;

/**
 * Removes every container of a runtime, running or not, by force (processes killed, cgroups and
 * mounts gone). A removal that fails is not thrown here: what it left shows in `removeScratch`.
 */
export async function removeAllContainers(containers: RemovableContainers): Promise<void> {
  for (const c of await containers.list({ all: true })) {
    await containers.remove(c.id, { force: true }).catch(() => {});
  }
}

/**
 * Asserts nothing stays mounted under a scratch directory, then removes it. With a mount left the
 * tree is left too: a recursive removal would reach through the mount.
 */
export async function removeScratch(work: string): Promise<void> {
  assert.deepEqual(mountsUnder(work), [], 'nothing stays mounted');
  await removeTree(work);
}

/**
 * Registers the hooks of a test file (or of the describe block it is called in) whose tests run
 * containers in one runtime. `before` makes a scratch directory named from `prefix` and calls
 * `setUp` with it, which opens the runtime there and returns it. `after`, which node:test runs
 * even when a test or `setUp` failed, removes every container of that runtime by force, asserts
 * nothing stays mounted under the directory, and removes it.
 */
export function withScratchRuntime(
  prefix: string,
  setUp: (work: string) => Promise<RemovableContainers>,
): void {
  let work: string | undefined;
  let containers: RemovableContainers | undefined;
  before(async () => {
    work = await scratchDir(prefix);
    containers = await setUp(work);
  });
  after(async () => {
    if (containers) await removeAllContainers(containers);
    if (work) await removeScratch(work);
  });
}

/** Options for a container on a read-write bind of `rootfs`, running `argv`. */
export function onRootfs(
  rootfs: string,
  argv: string[],
  extra: Partial<CreateContainerOptions> = {},
): CreateContainerOptions {
  return { rootfs: { type: 'bind', source: rootfs, options: ['rbind', 'rw'] }, argv, ...extra };
}

/** Runs a container to its end; returns its exit and its output, and removes it. */
export async function runToEnd(rt: ContainerRuntime, options: CreateContainerOptions) {
  const c = await rt.create(options);
  try {
    await rt.start(c.id);
    const exit = await rt.wait(c.id, { timeoutMs: 30_000 });
    let stdout = '';
    let stderr = '';
    for await (const e of rt.logs(c.id)) {
      if (e.stream === 'stdout') stdout += e.text + '\n';
      else stderr += e.text + '\n';
    }
    return { exit, stdout, stderr, id: c.id };
  } finally {
    await rt.remove(c.id, { force: true });
  }
}

/** A container's log, a "STREAM TEXT" line per entry. */
export async function logText(rt: Pick<ContainerRuntime, 'logs'>, id: string): Promise<string> {
  let text = '';
  for await (const e of rt.logs(id)) text += `${e.stream} ${e.text}\n`;
  return text;
}

/** An ImageRuntime at `root` with `images` imported from an OCI layout archive written to `archive`. */
export async function openImageRuntimeWith(
  root: string,
  archive: string,
  images: FixtureImage[],
  snapshotter: 'overlay' | 'copy' = 'overlay',
): Promise<ImageRuntime> {
  await writeFile(archive, archiveTar(ociLayout(images)));
  const rt = await openImageRuntime(root, { snapshotter });
  await rt.images.import(archive);
  return rt;
}
