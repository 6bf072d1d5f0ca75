/**
 * RegistryStorage: repositories, manifests, tags and referrers on disk, over one content store
 * that holds every blob and manifest once, whatever number of repositories name it.
 *
 *   <root>/content/blobs/sha256/<hex>                  every blob and manifest (LocalContentStore)
 *   <root>/content/ingest/<random>                     monolithic uploads in progress
 *   <root>/uploads/<uuid>/                             chunked upload sessions (uploads.ts)
 *   <root>/repositories/<name…>/_layers/<hex>          empty: the repository holds this blob
 *   <root>/repositories/<name…>/_manifests/revisions/<hex>
 *                                                      {"mediaType", "subject"?}: it holds this manifest
 *   <root>/repositories/<name…>/_manifests/tags/<tag>  the digest the tag names
 *   <root>/repositories/<name…>/_referrers/<subject hex>/<hex>
 *                                                      the descriptor the referrers API lists
 *
 * Every file is written whole under a temporary name and renamed into place (fsynced, with its
 * directory), so a reader in this or any other process sees a link, a tag or a blob either
 * complete or not at all; blobs are committed before the links that name them, and revisions
 * before the tags that name them, so nothing visible ever points at content that is missing
 * because of a crash. Nothing is cached in memory: several control planes can serve one
 * directory, and each sees what another wrote as soon as its rename is done.
 *
 * Names reaching this class are checked again before they become paths (defence in depth: the
 * router checked them already); a component that is not a name component, a tag or a hex digest
 * never reaches the file system.
 */
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import {
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  isSkiffError,
} from '../../proto/errors.js';
import type { IngestResult } from '../../proto/oci/content-store.js';
import { digestHex, isDigest, sha256Digest, type Digest } from '../../proto/oci/digest.js';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import { MAX_MANIFEST_BYTES, type Descriptor, type PushedManifest } from '../../proto/oci/manifests.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import { RegistryError } from './errors.js';
import { checkName, checkTag, isName, isTag, type ManifestReference } from './names.js';

export interface RegistryStorageOptions {
  /** Largest blob accepted, in bytes (default: no limit but the disk). */
  maxBlobBytes?: number;
  /** Free space every upload must leave on the file system (default 256 MiB). */
  reserveBytes?: number;
  /** Free bytes of the file system (tests simulate a full disk). */
  freeBytes?: (dir: string) => Promise<number>;
}

/** A manifest as one repository holds it. */
export interface ManifestRecord {
  digest: Digest;
  mediaType: string;
  size: number;
  subject?: Digest;
}

interface RevisionLink {
  mediaType: string;
  subject?: Digest;
}

const HEX = /^[a-f0-9]{64}$/;
const SAFE_COMPONENT = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,254}$/;

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

async function readdirOrEmpty(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}

export class RegistryStorage {
  readonly content: LocalContentStore;
  readonly uploadsDir: string;
  readonly repositoriesDir: string;
  readonly maxBlobBytes: number;

  private constructor(
    readonly root: string,
    content: LocalContentStore,
    maxBlobBytes: number,
  ) {
    this.content = content;
    this.uploadsDir = join(root, 'uploads');
    this.repositoriesDir = join(root, 'repositories');
    this.maxBlobBytes = maxBlobBytes;
  }

  static async open(root: string, options: RegistryStorageOptions = {}): Promise<RegistryStorage> {
    await mkdir(root, { recursive: true, mode: 0o700 });
    const content = await LocalContentStore.open(join(root, 'content'), {
      ...(options.reserveBytes !== undefined ? { reserveBytes: options.reserveBytes } : {}),
      ...(options.freeBytes !== undefined ? { freeBytes: options.freeBytes } : {}),
    });
    const storage = new RegistryStorage(root, content, options.maxBlobBytes ?? Infinity);
    await mkdir(storage.uploadsDir, { recursive: true, mode: 0o700 });
    await mkdir(storage.repositoriesDir, { recursive: true, mode: 0o700 });
    return storage;
  }

  /** `<root>/repositories/<name…>/<parts…>`, every component checked. */
  private repoPath(name: string, ...parts: string[]): string {
    checkName(name);
    for (const part of parts) {
      if (!SAFE_COMPONENT.test(part) || part === '.' || part === '..') {
        throw new InternalError(`registry path component ${JSON.stringify(part)} is not safe`);
      }
    }
    return join(this.repositoriesDir, ...name.split('/'), ...parts);
  }

  private layerLink(name: string, digest: Digest): string {
    return this.repoPath(name, '_layers', hexOf(digest));
  }

  private revisionLink(name: string, digest: Digest): string {
    return this.repoPath(name, '_manifests', 'revisions', hexOf(digest));
  }

  private tagLink(name: string, tag: string): string {
    return this.repoPath(name, '_manifests', 'tags', checkTag(tag));
  }

  private async writeLink(path: string, data: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, data, { mode: 0o600 });
  }

  /** A repository exists once it holds a blob or a manifest. */
  async repositoryExists(name: string): Promise<boolean> {
    return (
      (await exists(this.repoPath(name, '_manifests'))) || (await exists(this.repoPath(name, '_layers')))
    );
  }

  // ── blobs ──────────────────────────────────────────────────────────────────────────────────

  /** The size of a blob the repository holds; undefined when it holds none of that digest. */
  async blobSize(name: string, digest: Digest): Promise<number | undefined> {
    if (!(await exists(this.layerLink(name, digest)))) return undefined;
    try {
      return (await stat(this.content.blobPath(digest))).size;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  /** The repository's blob opened for reading (manifests too: they are content); BLOB_UNKNOWN otherwise. */
  async openBlob(name: string, digest: Digest): Promise<{ handle: FileHandle; size: number }> {
    const linked =
      (await exists(this.layerLink(name, digest))) || (await exists(this.revisionLink(name, digest)));
    if (linked) {
      try {
        return await this.content.openBlob(digest);
      } catch (err) {
        if (!isSkiffError(err) || err.code !== 'NotFound') throw err;
      }
    }
    throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${name}`, {
      detail: { digest },
    });
  }

  /** Records that the repository holds a stored blob (idempotent). */
  async linkBlob(name: string, digest: Digest): Promise<void> {
    const link = this.layerLink(name, digest);
    if (await exists(link)) return;
    await this.writeLink(link, '');
  }

  /** Removes the repository's link to a blob; false when it had none. The bytes go at GC. */
  async unlinkBlob(name: string, digest: Digest): Promise<boolean> {
    const link = this.layerLink(name, digest);
    if (!(await exists(link))) return false;
    await rm(link, { force: true });
    return true;
  }

  /**
   * A whole blob from one request body: streamed to disk, hashed as it arrives, refused
   * (DIGEST_INVALID, SIZE_INVALID, 413 over the limit) with nothing stored, then linked.
   */
  async ingestBlob(
    name: string,
    source: AsyncIterable<Buffer>,
    expected: { digest: Digest; size?: number },
  ): Promise<IngestResult> {
    checkName(name);
    if (expected.size !== undefined && expected.size > this.maxBlobBytes)
      throw this.overLimit(expected.digest);
    const limit = this.maxBlobBytes;
    const tooLarge = (): RegistryError => this.overLimit(expected.digest);
    async function* bounded(): AsyncIterable<Buffer> {
      let total = 0;
      for await (const chunk of source) {
        total += chunk.length;
        if (total > limit) throw tooLarge();
        yield chunk;
      }
    }
    let result: IngestResult;
    try {
      result = await this.content.ingest(bounded(), {
        digest: expected.digest,
        ...(expected.size !== undefined ? { size: expected.size } : {}),
      });
    } catch (err) {
      throw ingestError(err, expected.digest);
    }
    // an old unreferenced blob uploaded again: its garbage-collection grace starts over
    if (!result.written) await this.content.touch(result.digest);
    await this.linkBlob(name, result.digest);
    return result;
  }

  /** Links `from`'s blob into `name` when `from` holds it; false otherwise (the client uploads it). */
  async mountBlob(name: string, from: string, digest: Digest): Promise<boolean> {
    if (!isName(from)) return false;
    if ((await this.blobSize(from, digest)) === undefined) return false;
    await this.content.touch(digest);
    await this.linkBlob(name, digest);
    return true;
  }

  overLimit(what: string): RegistryError {
    return new RegistryError(
      'SIZE_INVALID',
      `upload ${what}: more than the registry's limit of ${this.maxBlobBytes} bytes per blob`,
      { status: 413, detail: { limit: this.maxBlobBytes } },
    );
  }

  // ── manifests ──────────────────────────────────────────────────────────────────────────────

  /**
   * Stores a manifest exactly as pushed and names it in the repository: the bytes (content
   * store), its revision link, its referrer entry, then its tags. The caller checked it.
   */
  async putManifest(name: string, body: Buffer, manifest: PushedManifest, tags: string[]): Promise<Digest> {
    checkName(name);
    const digest = sha256Digest(body);
    await this.content.ingest(
      (async function* () {
        yield body;
      })(),
      { digest, size: body.length },
    );
    const link: RevisionLink = { mediaType: manifest.mediaType };
    if (manifest.subject) link.subject = manifest.subject.digest;
    await this.writeLink(this.revisionLink(name, digest), JSON.stringify(link));
    if (manifest.subject) {
      const descriptor: Descriptor = { mediaType: manifest.mediaType, digest, size: body.length };
      const artifactType =
        manifest.artifactType ?? (manifest.kind === 'manifest' ? manifest.configMediaType : undefined);
      if (artifactType !== undefined && artifactType !== '') descriptor.artifactType = artifactType;
      if (manifest.annotations) descriptor.annotations = manifest.annotations;
      await this.writeLink(
        this.repoPath(name, '_referrers', hexOf(manifest.subject.digest), hexOf(digest)),
        JSON.stringify(descriptor),
      );
    }
    for (const tag of tags) await this.writeLink(this.tagLink(name, tag), digest);
    return digest;
  }

  /** The manifest the repository holds under this digest, or undefined. */
  async manifest(name: string, digest: Digest): Promise<ManifestRecord | undefined> {
    let link: RevisionLink;
    try {
      link = parseRevisionLink(await readFile(this.revisionLink(name, digest), 'utf8'));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    let size: number;
    try {
      size = (await stat(this.content.blobPath(digest))).size;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    return { digest, mediaType: link.mediaType, size, ...(link.subject ? { subject: link.subject } : {}) };
  }

  /** The digest a tag names, or undefined. */
  async tagTarget(name: string, tag: string): Promise<Digest | undefined> {
    try {
      const text = (await readFile(this.tagLink(name, tag), 'utf8')).trim();
      return isDigest(text) ? text : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  /** The manifest a tag or digest names in the repository; MANIFEST_UNKNOWN otherwise. */
  async resolveManifest(name: string, reference: ManifestReference): Promise<ManifestRecord> {
    const digest = reference.digest ?? (await this.tagTarget(name, reference.tag!));
    const record = digest === undefined ? undefined : await this.manifest(name, digest);
    if (!record) {
      const what = reference.digest ?? `tag ${reference.tag!}`;
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${what} is not in repository ${name}`, {
        detail: reference.digest !== undefined ? { digest: reference.digest } : { tag: reference.tag },
      });
    }
    return record;
  }

  /** The manifest's bytes, exactly as pushed. */
  async readManifest(record: ManifestRecord): Promise<Buffer> {
    return this.content.readAll(record.digest, MAX_MANIFEST_BYTES);
  }

  /** Removes a manifest from the repository: its tags, its referrer entry, then its revision. */
  async deleteManifest(name: string, digest: Digest): Promise<void> {
    const record = await this.manifest(name, digest);
    if (!record) {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in repository ${name}`, {
        detail: { digest },
      });
    }
    for (const tag of await this.tags(name)) {
      if ((await this.tagTarget(name, tag)) === digest) await rm(this.tagLink(name, tag), { force: true });
    }
    if (record.subject) {
      await rm(this.repoPath(name, '_referrers', hexOf(record.subject), hexOf(digest)), { force: true });
    }
    await rm(this.revisionLink(name, digest), { force: true });
  }

  /** Removes a tag (the manifest stays, by digest); MANIFEST_UNKNOWN when there is no such tag. */
  async deleteTag(name: string, tag: string): Promise<void> {
    const link = this.tagLink(name, tag);
    if (!(await exists(link))) {
      throw new RegistryError('MANIFEST_UNKNOWN', `tag ${tag} is not in repository ${name}`, {
        detail: { tag },
      });
    }
    await rm(link, { force: true });
  }

  private async tags(name: string): Promise<string[]> {
    return (await readdirOrEmpty(this.repoPath(name, '_manifests', 'tags'))).filter(isTag).sort();
  }

  /** The repository's tags in ASCII order; NAME_UNKNOWN when there is no such repository. */
  async listTags(name: string): Promise<string[]> {
    if (!(await this.repositoryExists(name))) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not in the registry`, {
        detail: { name },
      });
    }
    return this.tags(name);
  }

  /** Every repository name, in ASCII order. */
  async listRepositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string, depth: number): Promise<void> => {
      const entries = await readdirOrEmpty(dir);
      if (prefix !== '' && (entries.includes('_manifests') || entries.includes('_layers'))) out.push(prefix);
      // a name is under 256 characters, so under 128 components
      if (depth >= 128) return;
      for (const entry of entries) {
        if (entry.startsWith('_')) continue;
        const name = prefix === '' ? entry : `${prefix}/${entry}`;
        if (!isName(name)) continue;
        await walk(join(dir, entry), name, depth + 1);
      }
    };
    await walk(this.repositoriesDir, '', 0);
    return out.sort();
  }

  /** Descriptors of the repository's manifests whose subject is `digest`, by digest. */
  async referrers(name: string, digest: Digest): Promise<Descriptor[]> {
    const dir = this.repoPath(name, '_referrers', hexOf(digest));
    const out: Descriptor[] = [];
    for (const entry of (await readdirOrEmpty(dir)).filter((e) => HEX.test(e)).sort()) {
      try {
        out.push(JSON.parse(await readFile(join(dir, entry), 'utf8')) as Descriptor);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
    return out;
  }

  /** Every manifest of every repository (for garbage collection). */
  async *manifestRevisions(): AsyncIterable<{ name: string; digest: Digest }> {
    for (const name of await this.listRepositories()) {
      const dir = this.repoPath(name, '_manifests', 'revisions');
      for (const entry of await readdirOrEmpty(dir)) {
        if (HEX.test(entry)) yield { name, digest: `sha256:${entry}` };
      }
    }
  }

  /** Every blob link of every repository (for garbage collection). */
  async *blobLinks(): AsyncIterable<{ name: string; digest: Digest }> {
    for (const name of await this.listRepositories()) {
      for (const entry of await readdirOrEmpty(this.repoPath(name, '_layers'))) {
        if (HEX.test(entry)) yield { name, digest: `sha256:${entry}` };
      }
    }
  }
}

function hexOf(digest: Digest): string {
  const hex = digestHex(digest);
  if (!HEX.test(hex)) throw new InternalError(`digest ${JSON.stringify(digest)} is not sha256`);
  return hex;
}

function parseRevisionLink(text: string): RevisionLink {
  const value = JSON.parse(text) as Partial<RevisionLink>;
  if (typeof value.mediaType !== 'string') throw new InternalError('revision link without a mediaType');
  return {
    mediaType: value.mediaType,
    ...(typeof value.subject === 'string' && isDigest(value.subject) ? { subject: value.subject } : {}),
  };
}

/** The client's share of a failed ingest (the content store's errors, by kind and field). */
function ingestError(err: unknown, digest: Digest): unknown {
  if (err instanceof RegistryError) return err;
  if (err instanceof InvalidArgumentError && err.field === 'digest') {
    return new RegistryError('DIGEST_INVALID', `upload ${digest}: ${err.message}`, {
      detail: { digest },
      cause: err,
    });
  }
  if (err instanceof InvalidArgumentError && err.field === 'size') {
    return new RegistryError('SIZE_INVALID', `upload ${digest}: ${err.message}`, {
      detail: { digest },
      cause: err,
    });
  }
  if (err instanceof ResourceExhaustedError) {
    return new RegistryError('SIZE_INVALID', `upload ${digest}: the registry's disk is full`, {
      status: 507,
      cause: err,
    });
  }
  return err;
}
