/**
 * COPY and ADD as layer entries, with Docker's rules: a directory source copies what it holds; a
 * file lands in DEST/ when DEST ends with '/' or is a directory, else at DEST; several sources (or
 * a glob) need a directory DEST; files from the context are owned by root unless `--chown`, files
 * from a stage keep their owners; `--chmod` sets the mode of everything copied; missing parents of
 * DEST are created root 0755. ADD extracts a local tar archive (plain or gzip) into DEST.
 *
 * Sources are read through LayerStack: the context refuses any path or symlink leading out of it;
 * a stage's root resolves its symlinks inside itself. An archive's entries are checked here (no
 * absolute names after stripping '/', no '..', no device nodes) and then again by the runtime's
 * hardened unpacker when the layer is applied (parents that are symlinks, hard links leaving the
 * layer: images/unpack/README.md).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  createReadStream,
  openSync,
  readFileSync,
  readSync,
  readlinkSync,
} from 'node:fs';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { dockerfileError } from './dockerfile.js';
import type { CopyStep } from './build-plan.js';
import { DockerIgnore, cleanRelative, globMatcher, isGlob } from './dockerignore.js';
import { LayerStack, PathEscapeError, type Found } from './layer-stack.js';
import type { LayerEntry } from './layer-tar.js';

export interface CopySource {
  stack: LayerStack;
  /** 'refuse' for the build context, 'clamp' for a stage's or image's root. */
  escape: 'clamp' | 'refuse';
  /** Whether owners are kept (a root file system) or become root (the context). */
  keepOwners: boolean;
  ignore?: DockerIgnore;
  /** "the build context", "stage builder", … for errors. */
  what: string;
}

interface Owner {
  uid: number;
  gid: number;
}

/**
 * What ADD extracts from one local archive, held in memory until the layer is written: its bytes
 * (each entry's header counted as 512) and its entries. A 20 MB gzip of two million empty files
 * took 2.6 GB and three minutes; ten times that ended the process. Mutable for tests only.
 */
export const ARCHIVE_LIMITS = { bytes: 1024 * 1024 * 1024, entries: 500_000 };

/** The entries a COPY/ADD writes, given the source and the build's current root (`root`). */
export async function copyEntries(
  step: CopyStep,
  line: number,
  source: CopySource,
  root: LayerStack,
): Promise<LayerEntry[]> {
  const keyword = step.add ? 'ADD' : 'COPY';
  const fail = (message: string) => dockerfileError(line, `${keyword} ${message}`);
  const chown = step.chown !== undefined ? resolveChown(step.chown, root, fail) : undefined;
  const matched: { rel: string; found: Found }[] = [];
  for (const src of step.sources) {
    const found = findSources(src, source, fail);
    if (found.length === 0) throw fail(`${src}: no such file or directory in ${source.what}`);
    matched.push(...found);
  }
  const destIsDir = step.dest.endsWith('/');
  const destRel = cleanRelative(step.dest);
  let destTarget: string;
  try {
    // the destination resolves inside the image being built, as in its containers: a symlink
    // to a directory (/lib -> usr/lib) is copied into; one to a file is replaced
    const parent = destRel.includes('/') ? destRel.slice(0, destRel.lastIndexOf('/')) : '';
    const base = destRel.slice(destRel.lastIndexOf('/') + 1);
    destTarget = [root.resolve(parent, true, 'clamp'), base].filter(Boolean).join('/');
    const followed = root.resolve(destRel, true, 'clamp');
    if (followed !== destTarget && root.lookup(followed)?.stat.isDirectory()) destTarget = followed;
  } catch (err) {
    throw fail(`${step.dest}: ${(err as Error).message}`);
  }
  const existing = destTarget === '' ? root.lookup('') : root.lookup(destTarget);
  const intoDir =
    destIsDir ||
    destRel === '' ||
    matched.length > 1 ||
    step.sources.some(isGlob) ||
    existing?.stat.isDirectory() === true;
  if ((matched.length > 1 || step.sources.some(isGlob)) && !destIsDir && !existing?.stat.isDirectory())
    throw fail(`with more than one source the destination must be a directory ending in '/' (${step.dest}/)`);

  const entries = new Map<string, LayerEntry>();
  const put = (entry: LayerEntry) => entries.set(entry.path, entry);
  const owned = (st: { uid: number; gid: number }): Owner =>
    chown ?? (source.keepOwners ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
  const modeOf = (mode: number) => (step.chmod !== undefined ? step.chmod : mode & 0o7777);

  const dirEntry = (path: string, found: Found | undefined, fresh: boolean): void => {
    if (path === '') return;
    const st = found?.stat;
    if (fresh || !st)
      put({
        path,
        type: 'directory',
        mode: st ? modeOf(st.mode) : 0o755,
        ...(st ? owned(st) : (chown ?? { uid: 0, gid: 0 })),
      });
    else put({ path, type: 'directory', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
  };
  const copyTree = (rel: string, found: Found, to: string): void => {
    const st = found.stat;
    if (st.isDirectory()) {
      dirEntry(to, found, true);
      for (const name of source.stack.readdir(rel)) {
        const childRel = rel === '' ? name : `${rel}/${name}`;
        const child = source.stack.lookup(childRel);
        if (!child) continue;
        // an ignored directory is still walked when an exception may re-include something in it
        const ignored = source.ignore?.ignores(childRel) === true;
        if (ignored && !(child.stat.isDirectory() && source.ignore!.mayReinclude(childRel))) continue;
        copyTree(childRel, child, to === '' ? name : `${to}/${name}`);
      }
      return;
    }
    const owner = owned(st);
    if (st.isSymbolicLink()) {
      put({ path: to, type: 'symlink', mode: 0o777, ...owner, target: readlinkSync(found.hostPath, 'utf8') });
    } else if (st.isFile()) {
      const host = found.hostPath;
      put({
        path: to,
        type: 'file',
        mode: modeOf(st.mode),
        ...owner,
        size: st.size,
        open: () => createReadStream('', { fd: openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW) }),
      });
    } else if (st.isFIFO()) {
      put({ path: to, type: 'fifo', mode: modeOf(st.mode), ...owner });
    }
    // sockets and device nodes are not copied
  };

  if (intoDir) dirEntry(destTarget, existing, !existing);
  for (const { rel, found } of matched) {
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    const archive = step.add && found.stat.isFile() ? archiveKind(found.hostPath) : undefined;
    if (archive) {
      // an archive is extracted into DEST whether or not DEST ends with '/'
      for (const entry of await archiveEntries(found.hostPath, archive, destTarget, chown, modeOf, fail, rel))
        put(entry);
      continue;
    }
    const to = found.stat.isDirectory()
      ? destTarget
      : intoDir
        ? [destTarget, name].filter(Boolean).join('/')
        : destTarget;
    copyTree(rel, found, to);
  }
  // the destination's parents: kept as they are, created root 0755 when missing
  const parents = new Set<string>();
  for (const path of entries.keys()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join('/'));
  }
  for (const parent of parents) {
    if (entries.has(parent)) continue;
    const found = root.lookup(parent);
    if (found && !found.stat.isDirectory())
      throw fail(`${step.dest}: ${parent} exists in the image and is not a directory`);
    put(
      found
        ? {
            path: parent,
            type: 'directory',
            mode: found.stat.mode & 0o7777,
            uid: found.stat.uid,
            gid: found.stat.gid,
          }
        : { path: parent, type: 'directory', mode: 0o755, uid: 0, gid: 0 },
    );
  }
  return [...entries.values()];
}

/** The paths a COPY source names (a path, or a glob), resolved in the source. */
function findSources(
  src: string,
  source: CopySource,
  fail: (m: string) => Error,
): { rel: string; found: Found }[] {
  const cleaned = cleanRelative(src);
  if (source.escape === 'refuse' && escapes(src))
    throw fail(`${src}: forbidden path outside the build context`);
  const ignored = (rel: string) => source.ignore?.ignores(rel) === true;
  if (!isGlob(cleaned)) {
    let rel: string;
    try {
      rel = source.stack.resolve(cleaned, true, source.escape);
    } catch (err) {
      if (err instanceof PathEscapeError)
        throw fail(`${src}: ${err.message.replace('the root', source.what)}; refused`);
      throw err;
    }
    const found = source.stack.lookup(rel);
    if (!found) return [];
    if (rel !== '' && ignored(rel) && !found.stat.isDirectory())
      throw fail(`${src}: excluded by .dockerignore`);
    return [{ rel, found }];
  }
  // a glob: matched against the tree below its first component with glob syntax
  const parts = cleaned.split('/');
  const fixed = parts.slice(0, parts.findIndex(isGlob)).join('/');
  const pattern = globMatcher(cleaned);
  const out: { rel: string; found: Found }[] = [];
  const walk = (rel: string, depth: number): void => {
    for (const name of source.stack.readdir(rel)) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const found = source.stack.lookup(child);
      if (!found) continue;
      if (pattern.test(child) && !ignored(child)) out.push({ rel: child, found });
      else if (found.stat.isDirectory() && depth < parts.length) walk(child, depth + 1);
    }
  };
  let base: string;
  try {
    base = source.stack.resolve(fixed, true, source.escape);
  } catch (err) {
    if (err instanceof PathEscapeError) throw fail(`${src}: ${err.message}; refused`);
    throw err;
  }
  if (base !== fixed) throw fail(`${src}: a glob's directory may not go through a symlink`);
  if (source.stack.lookup(base)?.stat.isDirectory())
    walk(base, fixed === '' ? 1 : fixed.split('/').length + 1);
  for (const m of out) {
    if (m.found.stat.isSymbolicLink()) {
      // a matched symlink is copied as what it points to, inside the source
      try {
        const rel = source.stack.resolve(m.rel, true, source.escape);
        const target = source.stack.lookup(rel);
        if (target) m.found = target;
      } catch (err) {
        if (err instanceof PathEscapeError) throw fail(`${m.rel}: ${err.message}; refused`);
        throw err;
      }
    }
  }
  return out;
}

/** Whether a context path climbs above the context root with `..`. */
function escapes(path: string): boolean {
  let depth = 0;
  for (const part of path.split('/')) {
    if (part === '..') depth--;
    else if (part !== '' && part !== '.') depth++;
    if (depth < 0) return true;
  }
  return false;
}

/** `--chown` as numbers: names are looked up in the image's /etc/passwd and /etc/group. */
function resolveChown(text: string, root: LayerStack, fail: (m: string) => Error): Owner {
  const [user = '', group] = text.split(':');
  const table = (file: string): string[][] => {
    try {
      const rel = root.resolve(file, true, 'clamp');
      const found = root.lookup(rel);
      if (!found?.stat.isFile()) return [];
      return readFileSync(found.hostPath, 'utf8')
        .split('\n')
        .map((l) => l.split(':'));
    } catch {
      return [];
    }
  };
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(user)) {
    uid = Number(user);
    const row = table('etc/passwd').find((r) => r[2] === user);
    gid = row ? Number(row[3]) : uid;
  } else {
    const row = table('etc/passwd').find((r) => r[0] === user);
    if (!row) throw fail(`--chown=${text}: no user ${JSON.stringify(user)} in the image's /etc/passwd`);
    uid = Number(row[2]);
    gid = Number(row[3]);
  }
  if (group !== undefined) {
    if (/^\d+$/.test(group)) gid = Number(group);
    else {
      const row = table('etc/group').find((r) => r[0] === group);
      if (!row) throw fail(`--chown=${text}: no group ${JSON.stringify(group)} in the image's /etc/group`);
      gid = Number(row[2]);
    }
  }
  return { uid, gid: gid ?? uid };
}

/** A tar archive, plain or gzip, by its first bytes (ADD extracts these; anything else is copied). */
function archiveKind(path: string): 'gzip' | 'tar' | undefined {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const head = Buffer.alloc(512);
    const n = readSync(fd, head, 0, 512, 0);
    if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    return n >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar' ? 'tar' : undefined;
  } finally {
    closeSync(fd);
  }
}

/** The entries of a local archive, placed under `into`, checked as hostile input. */
async function archiveEntries(
  hostPath: string,
  kind: 'gzip' | 'tar',
  into: string,
  chown: Owner | undefined,
  modeOf: (mode: number) => number,
  fail: (m: string) => Error,
  rel: string,
): Promise<LayerEntry[]> {
  const out: LayerEntry[] = [];
  const file = createReadStream('', { fd: openSync(hostPath, constants.O_RDONLY | constants.O_NOFOLLOW) });
  const input: Readable = kind === 'gzip' ? file.pipe(createGunzip()) : file;
  const reader = extract();
  let total = 0;
  let count = 0;
  const tooBig = () =>
    fail(
      `${rel}: the archive holds more than ${ARCHIVE_LIMITS.entries} entries or ${ARCHIVE_LIMITS.bytes} bytes; extract it in a RUN step instead`,
    );
  const place = (name: string): string => {
    const parts = name.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..'))
      throw fail(`${rel}: archive entry ${JSON.stringify(name)} climbs out with '..'; refused`);
    return [into, ...parts].filter(Boolean).join('/');
  };
  const done = new Promise<void>((resolve, reject) => {
    reader.on('entry', (header, stream, next) => {
      total += 512 + header.name.length + (header.linkname?.length ?? 0);
      if (++count > ARCHIVE_LIMITS.entries || total > ARCHIVE_LIMITS.bytes) {
        reader.destroy(tooBig());
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (data: unknown) => {
        const c = data as Buffer;
        total += c.length;
        if (total > ARCHIVE_LIMITS.bytes) {
          reader.destroy(tooBig());
          return;
        }
        chunks.push(c);
      });
      stream.on('end', () => {
        try {
          const path = place(header.name);
          // '/' or '.' names DEST itself: only a directory may (a file there replaced DEST, or
          // was written as a nameless entry when DEST is the root)
          if (path === into && header.type !== 'directory')
            throw fail(
              `${rel}: archive entry ${JSON.stringify(header.name)} is not a directory but names the destination itself; refused`,
            );
          const owner = chown ?? { uid: header.uid ?? 0, gid: header.gid ?? 0 };
          const mode = modeOf(header.mode ?? 0o644);
          switch (header.type) {
            case 'file':
            case 'contiguous-file': {
              const data = Buffer.concat(chunks);
              out.push({ path, type: 'file', mode, ...owner, size: data.length, open: () => data });
              break;
            }
            case 'directory':
              if (path !== '') out.push({ path, type: 'directory', mode, ...owner });
              break;
            case 'symlink':
              out.push({ path, type: 'symlink', mode: 0o777, ...owner, target: header.linkname ?? '' });
              break;
            case 'link':
              out.push({ path, type: 'link', mode, ...owner, target: place(header.linkname ?? '') });
              break;
            case 'fifo':
              out.push({ path, type: 'fifo', mode, ...owner });
              break;
            case 'block-device':
            case 'character-device':
              throw fail(`${rel}: archive entry ${JSON.stringify(header.name)} is a device node; refused`);
            default:
              break;
          }
          next();
        } catch (err) {
          reader.destroy(err as Error);
        }
      });
      stream.on('error', reject);
    });
    reader.on('finish', resolve);
    reader.on('error', reject);
  });
  input.on('error', (err) => reader.destroy(err));
  input.pipe(reader);
  try {
    await done;
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('Dockerfile:')) throw err;
    throw fail(`${rel}: cannot read the archive: ${(err as Error).message}`);
  } finally {
    file.destroy();
  }
  return out;
}

/**
 * The checksum of what a COPY/ADD writes, for the cache: paths, types, modes, owners, link
 * targets and each file's content; never times.
 */
export async function entriesChecksum(entries: readonly LayerEntry[]): Promise<string> {
  const hash = createHash('sha256');
  for (const e of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const meta: unknown[] = [e.path, e.type];
    if ('mode' in e) meta.push(e.mode, e.uid, e.gid);
    if ('target' in e) meta.push(e.target);
    hash.update(`${JSON.stringify(meta)}\n`);
    if (e.type === 'file') {
      const body = e.open();
      if (Buffer.isBuffer(body)) hash.update(body);
      else for await (const chunk of body) hash.update(chunk as Buffer);
      hash.update('\n');
    }
  }
  return `sha256:${hash.digest('hex')}`;
}
