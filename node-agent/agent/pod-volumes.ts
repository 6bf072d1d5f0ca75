/**
 * A pod's volumes on this node, under `<agent root>/pods/<uid>/volumes/<name>`:
 *
 *   emptyDir               a directory (medium: Memory → a tmpfs, sizeLimit its size), gone with the pod
 *   hostPath               the host's path, only under a prefix the node allows (--allow-host-path)
 *   configMap, secret,     files written as the kubelet's atomic writer does: a fresh `..data_<n>`
 *   downwardAPI, projected directory, then the `..data` symlink swapped to it, so a container sees the
 *                          old set or the new one, never a mix; updated in place when the objects change
 *
 * Each container gets bind mounts (runtime VolumeSpec) for its volumeMounts, with subPath and
 * readOnly. A volume this node cannot provide is a PodConfigError naming it.
 */
import { execFile } from 'node:child_process';
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  realpath,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import type { Container, KeyToPath, Pod, Volume } from '../../proto/gen/types.js';
import { wholeValue } from '../../proto/quantity.js';
import {
  PodConfigError,
  podField,
  resourceField,
  secretData,
  type PodPlacement,
  type PodReferences,
} from './container-plan.js';

const run = promisify(execFile);

export interface BindMount {
  source: string;
  target: string;
  readonly: boolean;
}

export interface VolumeOptions {
  /** `<agent root>/pods/<uid>`. */
  podDir: string;
  /** Host path prefixes hostPath volumes may name; none: hostPath refused. */
  allowedHostPaths: readonly string[];
}

const UNSUPPORTED = [
  'persistentVolumeClaim',
  'nfs',
  'csi',
  'iscsi',
  'rbd',
  'cephfs',
  'ephemeral',
  'image',
  'gitRepo',
] as const;

/** Makes every volume of the pod ready (idempotent; file volumes re-rendered when their content changed). */
export async function prepareVolumes(
  pod: Pod,
  refs: PodReferences,
  placement: PodPlacement,
  options: VolumeOptions,
): Promise<Map<string, string>> {
  const paths = new Map<string, string>();
  const volumes = pod.spec.volumes ?? [];
  for (let i = 0; i < volumes.length; i++) {
    const volume = volumes[i]!;
    paths.set(volume.name, await prepareVolume(pod, volume, refs, placement, options, `spec.volumes[${i}]`));
  }
  return paths;
}

async function prepareVolume(
  pod: Pod,
  volume: Volume,
  refs: PodReferences,
  placement: PodPlacement,
  options: VolumeOptions,
  at: string,
): Promise<string> {
  const dir = join(options.podDir, 'volumes', volume.name);
  if (volume.hostPath) return hostPath(volume.hostPath.path, volume.hostPath.type, options, `${at}.hostPath`);
  if (volume.emptyDir) {
    await mkdir(dir, { recursive: true, mode: 0o777 });
    await chmod(dir, 0o777);
    if (volume.emptyDir.medium === 'Memory')
      await ensureTmpfs(dir, volume.emptyDir.sizeLimit, `${at}.emptyDir`);
    else if (volume.emptyDir.medium && volume.emptyDir.medium !== '')
      throw new PodConfigError(
        `emptyDir medium "${volume.emptyDir.medium}" is not supported (use "" or Memory)`,
        `${at}.emptyDir.medium`,
      );
    return dir;
  }
  const files = fileVolume(pod, volume, refs, placement, at);
  if (files === undefined) {
    const kind = UNSUPPORTED.find((k) => (volume as unknown as Record<string, unknown>)[k] !== undefined);
    throw new PodConfigError(
      kind
        ? `volume "${volume.name}": ${kind} volumes are not supported by skiff nodes`
        : `volume "${volume.name}" names no volume source this node knows`,
      kind ? `${at}.${kind}` : at,
    );
  }
  await writeAtomically(dir, files);
  return dir;
}

async function hostPath(
  path: string,
  type: string | undefined,
  options: VolumeOptions,
  at: string,
): Promise<string> {
  if (!isAbsolute(path)) throw new PodConfigError(`hostPath "${path}" is not absolute`, `${at}.path`);
  const clean = normalize(path);
  const allowed = options.allowedHostPaths.some((prefix) => {
    const rel = relative(normalize(prefix), clean);
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  });
  if (!allowed)
    throw new PodConfigError(
      `hostPath "${path}" is outside what this node allows (${options.allowedHostPaths.length ? options.allowedHostPaths.join(', ') : 'none; start the agent with --allow-host-path'})`,
      `${at}.path`,
    );
  if (type === 'DirectoryOrCreate') await mkdir(clean, { recursive: true, mode: 0o755 });
  else if (type === 'Directory' || type === 'File') {
    const st = await lstat(clean).catch(() => undefined);
    if (!st || (type === 'Directory' ? !st.isDirectory() : !st.isFile()))
      throw new PodConfigError(
        `hostPath "${path}" is not an existing ${type === 'Directory' ? 'directory' : 'file'}`,
        `${at}.type`,
      );
  }
  return clean;
}

async function ensureTmpfs(dir: string, sizeLimit: string | undefined, at: string): Promise<void> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  if (mounts.split('\n').some((line) => line.split(' ')[4] === dir)) return;
  const size = sizeLimit ? wholeValue(sizeLimit) : undefined;
  if (size !== undefined && size <= 0)
    throw new PodConfigError(`sizeLimit must be above 0`, `${at}.sizeLimit`);
  await run('mount', ['-t', 'tmpfs', '-o', `mode=1777${size ? `,size=${size}` : ''}`, 'skiff-emptydir', dir]);
}

/** Unmounts what prepareVolumes mounted and removes the pod's directory. */
export async function removePodDir(podDir: string): Promise<void> {
  const volumes = join(podDir, 'volumes');
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of mounts.split('\n')) {
    const point = line.split(' ')[4];
    if (point && (point === volumes || point.startsWith(volumes + sep)))
      await run('umount', ['-l', point]).catch(() => undefined);
  }
  await rm(podDir, { recursive: true, force: true });
}

type FileSet = Map<string, { content: Buffer; mode: number }>;

function fileVolume(
  pod: Pod,
  volume: Volume,
  refs: PodReferences,
  placement: PodPlacement,
  at: string,
): FileSet | undefined {
  const files: FileSet = new Map();
  if (volume.configMap) {
    const source = volume.configMap;
    addObjectFiles(
      files,
      'configmap',
      source.name ?? '',
      refs.configMaps.get(source.name ?? ''),
      source.items,
      source.defaultMode ?? 0o644,
      source.optional,
      `${at}.configMap`,
    );
    return files;
  }
  if (volume.secret) {
    const source = volume.secret;
    addObjectFiles(
      files,
      'secret',
      source.secretName ?? '',
      refs.secrets.get(source.secretName ?? ''),
      source.items,
      source.defaultMode ?? 0o644,
      source.optional,
      `${at}.secret`,
    );
    return files;
  }
  if (volume.downwardAPI) {
    addDownward(
      files,
      pod,
      placement,
      volume.downwardAPI.items ?? [],
      volume.downwardAPI.defaultMode ?? 0o644,
      `${at}.downwardAPI`,
    );
    return files;
  }
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    (volume.projected.sources ?? []).forEach((source, i) => {
      const sat = `${at}.projected.sources[${i}]`;
      if (source.configMap)
        addObjectFiles(
          files,
          'configmap',
          source.configMap.name ?? '',
          refs.configMaps.get(source.configMap.name ?? ''),
          source.configMap.items,
          mode,
          source.configMap.optional,
          `${sat}.configMap`,
        );
      else if (source.secret)
        addObjectFiles(
          files,
          'secret',
          source.secret.name ?? '',
          refs.secrets.get(source.secret.name ?? ''),
          source.secret.items,
          mode,
          source.secret.optional,
          `${sat}.secret`,
        );
      else if (source.downwardAPI)
        addDownward(files, pod, placement, source.downwardAPI.items ?? [], mode, `${sat}.downwardAPI`);
      else throw new PodConfigError(`this projected source is not supported by skiff nodes yet`, sat);
    });
    return files;
  }
  return undefined;
}

function addObjectFiles(
  files: FileSet,
  kind: 'configmap' | 'secret',
  name: string,
  object:
    | Parameters<typeof secretData>[0]
    | { data?: Record<string, string>; binaryData?: Record<string, string> }
    | undefined,
  items: KeyToPath[] | undefined,
  mode: number,
  optional: boolean | undefined,
  at: string,
): void {
  if (!object) {
    if (optional) return;
    throw new PodConfigError(`${kind} "${name}" not found`, at);
  }
  const values: Record<string, Buffer> = {};
  if (kind === 'secret') Object.assign(values, secretData(object as Parameters<typeof secretData>[0]));
  else {
    const cm = object as { data?: Record<string, string>; binaryData?: Record<string, string> };
    for (const [k, v] of Object.entries(cm.data ?? {})) values[k] = Buffer.from(v, 'utf8');
    for (const [k, v] of Object.entries(cm.binaryData ?? {}))
      values[k] = typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v as Uint8Array);
  }
  if (items === undefined || items.length === 0) {
    for (const [k, v] of Object.entries(values)) addFile(files, k, v, mode, at);
    return;
  }
  items.forEach((item, i) => {
    const value = values[item.key];
    if (value === undefined) {
      if (optional) return;
      throw new PodConfigError(`${kind} "${name}" has no key "${item.key}"`, `${at}.items[${i}].key`);
    }
    addFile(files, item.path, value, item.mode ?? mode, `${at}.items[${i}].path`);
  });
}

function addDownward(
  files: FileSet,
  pod: Pod,
  placement: PodPlacement,
  items: NonNullable<NonNullable<Volume['downwardAPI']>['items']>,
  mode: number,
  at: string,
): void {
  items.forEach((item, i) => {
    const iat = `${at}.items[${i}]`;
    let value: string;
    if (item.fieldRef) value = podField(pod, placement, item.fieldRef.fieldPath, `${iat}.fieldRef`);
    else if (item.resourceFieldRef) {
      const container = (pod.spec.containers ?? []).find(
        (c) => c.name === item.resourceFieldRef!.containerName,
      ) as Container | undefined;
      if (!container)
        throw new PodConfigError(
          `no container named "${item.resourceFieldRef.containerName}"`,
          `${iat}.resourceFieldRef.containerName`,
        );
      value = resourceField(container, item.resourceFieldRef.resource, item.resourceFieldRef.divisor, iat);
    } else throw new PodConfigError('names neither fieldRef nor resourceFieldRef', iat);
    addFile(files, item.path, Buffer.from(value, 'utf8'), item.mode ?? mode, `${iat}.path`);
  });
}

/** A relative path without `..`, as the API validates; checked again here because these bytes land on the host. */
function addFile(files: FileSet, path: string, content: Buffer, mode: number, at: string): void {
  const clean = normalize(path);
  if (path === '' || isAbsolute(path) || clean.split(sep).includes('..') || clean.startsWith('..'))
    throw new PodConfigError(`file path "${path}" must be relative and must not contain ".."`, at);
  files.set(clean, { content, mode: mode & 0o777 });
}

/**
 * The kubelet's atomic writer: `..data_<time>/` holds the files, `..data` points at it, and each
 * top-level name is a symlink through `..data`. Nothing is rewritten when the content is the same.
 */
export async function writeAtomically(dir: string, files: FileSet): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const current = await readlink(join(dir, '..data')).catch(() => undefined);
  if (current !== undefined && (await sameContent(join(dir, current), files))) return;
  const fresh = `..data_${Date.now()}_${process.hrtime.bigint() % 1000000n}`;
  const target = join(dir, fresh);
  await mkdir(target, { mode: 0o755 });
  for (const [path, file] of files) {
    const at = join(target, path);
    await mkdir(join(at, '..'), { recursive: true, mode: 0o755 });
    await writeFile(at, file.content, { mode: file.mode });
    await chmod(at, file.mode);
  }
  const link = join(dir, `..data_tmp`);
  await rm(link, { force: true });
  await symlink(fresh, link);
  await rename(link, join(dir, '..data'));
  const tops = new Set([...files.keys()].map((p) => p.split(sep)[0]!));
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('..')) {
      if (entry.startsWith('..data_') && entry !== fresh && entry !== '..data_tmp')
        await rm(join(dir, entry), { recursive: true, force: true });
      continue;
    }
    if (!tops.has(entry)) await rm(join(dir, entry), { recursive: true, force: true });
  }
  for (const top of tops) {
    const at = join(dir, top);
    const existing = await readlink(at).catch(() => undefined);
    if (existing === join('..data', top)) continue;
    await rm(at, { recursive: true, force: true });
    await symlink(join('..data', top), at);
  }
}

async function sameContent(dir: string, files: FileSet): Promise<boolean> {
  for (const [path, file] of files) {
    const content = await readFile(join(dir, path)).catch(() => undefined);
    if (!content || !content.equals(file.content)) return false;
    const st = await lstat(join(dir, path));
    if ((st.mode & 0o777) !== file.mode) return false;
  }
  const count = async (d: string): Promise<number> => {
    let n = 0;
    for (const e of await readdir(d, { withFileTypes: true }))
      n += e.isDirectory() ? await count(join(d, e.name)) : 1;
    return n;
  };
  return (await count(dir)) === files.size;
}

/**
 * The bind mounts of one container: its volumeMounts with subPath and readOnly. A subPath is
 * resolved on the host and must stay inside its volume: a container may have planted a symlink
 * there pointing anywhere on the host (CVE-2017-1002101), so the resolved path is what is mounted.
 */
export async function containerMounts(
  container: Container,
  volumePaths: ReadonlyMap<string, string>,
  field: string,
): Promise<BindMount[]> {
  const mounts: BindMount[] = [];
  for (const [i, mount] of (container.volumeMounts ?? []).entries()) {
    const at = `${field}.volumeMounts[${i}]`;
    const base = volumePaths.get(mount.name);
    if (base === undefined)
      throw new PodConfigError(`volume "${mount.name}" is not a volume of the pod`, `${at}.name`);
    let source = base;
    if (mount.subPath) {
      const clean = normalize(mount.subPath);
      if (isAbsolute(mount.subPath) || clean.split(sep).includes('..'))
        throw new PodConfigError(
          `subPath "${mount.subPath}" must be relative and must not contain ".."`,
          `${at}.subPath`,
        );
      const wanted = join(base, clean);
      if (!(await lstat(wanted).catch(() => undefined)))
        await mkdir(wanted, { recursive: true, mode: 0o755 });
      const [realBase, realSource] = [await realpath(base), await realpath(wanted)];
      const rel = relative(realBase, realSource);
      if (rel.startsWith('..') || isAbsolute(rel))
        throw new PodConfigError(
          `subPath "${mount.subPath}" resolves outside volume "${mount.name}"`,
          `${at}.subPath`,
        );
      source = realSource;
    }
    mounts.push({ source, target: mount.mountPath, readonly: mount.readOnly === true });
  }
  return mounts;
}
