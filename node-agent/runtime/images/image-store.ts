/**
 * ImageStore — the images of one runtime root: names → manifests, backed by the content store
 * (blobs) and a snapshotter (unpacked layers).
 *
 *   DIR/images/images.json   { images: { "<normalised name>": ImageRecord } }, written atomically
 *   DIR/images/leases/       what imports and pulls in progress hold (image-leases.ts)
 *
 * What garbage collection keeps, and how, is image-gc.ts; `prune` runs it.
 *
 * Names: every image has at least one; an image imported without a name is recorded under its
 * manifest digest ("dangling", shown as <none>) until it is named or removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  isSkiffError,
} from '../../../proto/errors.js';
import type { Logger } from '../../../proto/support/logger.js';
import { CachedFiles } from '../../../proto/support/cached-file.js';
import { writeFileAtomic } from '../../../proto/support/atomic-file.js';
import type { ContentStore } from '../../../proto/oci/content-store.js';
import { isDigest, sha256Digest, type Digest } from '../../../proto/oci/digest.js';
import type { Snapshotter } from '../snapshots/snapshotter.js';
import { INIT_LAYER_FILES, initLayerKey } from './init-layer.js';
import { makeInitLayer } from '../sys/helper.js';
// the tar code (unpack, import, export) loads when first used: a pull, a push or a listing of
// images needs none of it
import type { ImportLease, ImportOptions, ImportResult } from './image-import.js';
import { PidLock } from '../../../proto/support/pid-lock.js';
import { ImageLeases } from './image-leases.js';
import { ImageGarbageCollector, type PruneOptions, type PruneResult } from './image-gc.js';
import type { ImagePuller } from '../pod-runtime.js';
import { layerCompression } from '../../../proto/oci/media-types.js';
import {
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  chainIds,
  checkLayersMatchConfig,
  parseConfig,
  parseManifest,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
} from '../../../proto/oci/manifests.js';
import {
  familiarRepository,
  parseReference,
  repositoryOf,
  formatReference,
} from '../../../proto/oci/reference.js';
import { compareCodePoints } from '../../../proto/support/code-point-order.js';

export interface ImageRecord {
  /** The manifest. */
  target: Descriptor;
  /** ISO 8601: when this name was set. */
  recordedAt: string;
}

export interface LayerInfo {
  /** Blob digest (compressed as stored). */
  digest: Digest;
  mediaType: string;
  size: number;
  diffId: Digest;
  /** Snapshot name of the layer stack up to and including this layer. */
  chainId: Digest;
}

export interface ResolvedImage {
  /** Names pointing at this manifest (normalised), possibly empty for a dangling image. */
  names: string[];
  manifestDigest: Digest;
  manifest: ImageManifest;
  /** The image ID, as docker shows it: the config digest. */
  id: Digest;
  config: ImageConfig;
  layers: LayerInfo[];
}

export interface ImageSummary {
  /** Normalised name, or the manifest digest for a dangling image. */
  name: string;
  /** Familiar repository (busybox) or "<none>". */
  repository: string;
  tag: string;
  id: Digest;
  manifestDigest: Digest;
  created?: string;
  /** Bytes of the image's blobs (manifest, config, layers as stored). */
  size: number;
  layers: number;
}

export interface UnpackOptions {
  /**
   * Also ensure the image's init layer (init-layer.ts) where layers stack (overlay), for
   * containers to be prepared on. Not for snapshots that become image layers (a build step):
   * the mount points would end up in the image.
   */
  initLayer?: boolean;
}

export interface UnpackResult {
  /** The top layer's ChainID. */
  chainId: Digest;
  /**
   * The snapshot to prepare a container on: the init layer's key when one was asked for and the
   * snapshotter stacks layers, else `chainId`.
   */
  containerParent: string;
  /** Whether this call made the init layer (false when it existed or was not asked for). */
  initLayerCreated: boolean;
  layersUnpacked: number;
  layersReused: number;
  bytesWritten: number;
}

export interface DiskUsageReport {
  images: { name: string; id: Digest; size: number; sharedSize: number; uniqueSize: number }[];
  /** Every blob once, however many images name it. */
  content: { blobs: number; bytes: number };
  /** `reclaimableBytes`: removed snapshots whose storage is being deleted in the background. */
  snapshots: { count: number; bytes: number; reclaimableBytes: number };
  /** content + snapshots (reclaimable included): shared layers counted once. */
  totalBytes: number;
}

export interface ImageStoreOptions {
  content: ContentStore;
  snapshotter: Snapshotter;
  logger?: Logger;
  /** Refuse a layer whose files add up to more than this (default: the free disk space minus 256 MiB). */
  maxLayerBytes?: number;
  /** Free space an unpack must leave on the snapshot file system (default 256 MiB). */
  reserveBytes?: number;
  /** Free bytes of a directory, for the unpack limit; a parameter so tests can simulate a full disk. */
  freeBytes?: (dir: string) => Promise<number>;
  /** The layer unpacker's memory ceiling (default 1 GiB, DEFAULT_UNPACK_MAX_MEMORY_BYTES). */
  unpackMaxMemoryBytes?: number;
}

interface ImagesFile {
  images: Record<string, ImageRecord>;
}

const RESERVE_BYTES = 256 * 1024 * 1024;

/**
 * The record of `name`, own properties only: a name such as `__proto__` or `constructor` must find
 * nothing rather than Object.prototype's members.
 */
function recordNamed(images: Record<string, ImageRecord>, name: string): ImageRecord | undefined {
  return Object.hasOwn(images, name) ? images[name] : undefined;
}

/** Parsed images kept in memory (a few KiB each). */
const PARSED_IMAGES_KEPT = 256;

export class ImageStore {
  readonly content: ContentStore;
  readonly snapshotter: Snapshotter;
  private readonly file: string;
  private readonly leases: ImageLeases;
  private readonly gc: ImageGarbageCollector;
  private readonly logger: Logger | undefined;
  private readonly options: ImageStoreOptions;
  /** Layer unpacks (by ChainID) and init layers (by their key) in progress in this process. */
  private readonly unpacking = new Map<string, Promise<unknown>>();
  /** Serialises read-modify-write of images.json within this process. */
  private writing: Promise<unknown> = Promise.resolve();
  /**
   * Parsed manifests and configs by manifest digest: content-addressed, so they never change, and
   * a container start need not re-read and re-parse two blobs. Names are looked up afresh.
   */
  private readonly parsed = new Map<Digest, Omit<ResolvedImage, 'names'>>();
  /** images.json is only ever replaced by rename (writeFileAtomic): see CachedFiles. */
  private readonly files = new CachedFiles(1);

  private constructor(dir: string, options: ImageStoreOptions) {
    this.file = join(dir, 'images.json');
    this.content = options.content;
    this.snapshotter = options.snapshotter;
    this.logger = options.logger;
    this.options = options;
    const locked = <T>(fn: () => Promise<T>) => this.locked(fn);
    this.leases = new ImageLeases(join(dir, 'leases'), locked);
    this.gc = new ImageGarbageCollector(
      {
        read: async () => (await this.readRecords()).images,
        layers: async (target) => (await this.parse(target)).layers,
        removeNames: async (names) => {
          if (names.length === 0) return;
          await this.update((file) => {
            for (const name of names) delete file.images[name];
          });
        },
        locked,
      },
      this.content,
      this.snapshotter,
      this.leases,
      this.logger,
    );
  }

  /** `dir` is DIR/images. */
  static async open(dir: string, options: ImageStoreOptions): Promise<ImageStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new ImageStore(dir, options);
  }

  // ------------------------------------------------------------------ records

  private async readRecords(): Promise<ImagesFile> {
    try {
      const parsed = JSON.parse(this.files.read(this.file)) as ImagesFile;
      return { images: parsed.images ?? {} };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { images: {} };
      throw err;
    }
  }

  /** Runs `fn` holding the images lock (images.json.lock), serialised within this process too. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.writing.then(async () => {
      const lock = await PidLock.acquire(`${this.file}.lock`, {
        timeoutMs: 30_000,
        action: 'update image records',
      });
      try {
        return await fn();
      } finally {
        await lock.release();
      }
    });
    this.writing = next.catch(() => undefined);
    return next;
  }

  /** Read-modify-write of images.json under the images lock. */
  private update<T>(fn: (file: ImagesFile) => T | Promise<T>): Promise<T> {
    return this.locked(async () => {
      const file = await this.readRecords();
      const result = await fn(file);
      await writeFileAtomic(this.file, JSON.stringify(file, null, 1));
      return result;
    });
  }

  /** Points `name` at `target` (a manifest already in the content store). Replaces an existing tag. */
  async tag(name: string, target: Descriptor): Promise<void> {
    const key = isDigest(name) ? name : formatReference(parseReference(name));
    await this.update((file) => {
      file.images[key] = { target, recordedAt: new Date().toISOString() };
      // a dangling record of the same manifest is superseded by a name
      if (key !== target.digest) delete file.images[target.digest];
    });
  }

  // ------------------------------------------------------------------ import / export

  /** Imports every image of an OCI layout (dir or tar) or `docker save` archive. */
  async import(path: string, options: ImportOptions = {}): Promise<ImportResult> {
    // the blobs of an import in progress are referenced by no image yet: the lease keeps a
    // concurrent prune (another process) from collecting them before the names are recorded
    const lease = await this.takeLease();
    let result: ImportResult;
    try {
      const { importArchive } = await import('./image-import.js');
      result = await importArchive(path, this.content, options, lease);
      for (const image of result.images) {
        const names = image.names.length > 0 ? image.names : [image.manifest.digest];
        for (const name of names) await this.tag(name, image.manifest);
      }
    } finally {
      await lease.release();
    }
    this.logger?.info(
      {
        source: path,
        images: result.images.length,
        bytesWritten: result.bytesWritten,
        bytesSkipped: result.bytesSkipped,
      },
      'images imported',
    );
    return result;
  }

  /**
   * Runs `puller` for `ref` into this store: the blobs it holds stay out of garbage collection
   * until it returns, and it names the image with `tag` (see image-pull.ts for who calls it).
   */
  async pull(ref: string, puller: ImagePuller): Promise<void> {
    const lease = await this.leases.take();
    try {
      await puller.pull(ref, {
        content: this.content,
        hold: (digest) => lease.hold(digest),
        tag: (name, manifest) => this.tag(name, manifest),
      });
    } finally {
      await lease.release();
    }
    this.logger?.info({ ref }, 'image pulled');
  }

  /** Writes the images to `out` as a tar that `docker load` and `skiff runtime import` accept. */
  async save(refs: string[], out: string): Promise<void> {
    if (refs.length === 0) throw new InvalidArgumentError('save images: name at least one image', 'images');
    const images: { names: string[]; image: ResolvedImage }[] = [];
    for (const ref of refs) {
      const image = await this.resolve(ref);
      const asked = this.nameFor(ref);
      images.push({ names: asked ? [asked] : image.names.filter((n) => !isDigest(n)), image });
    }
    const { exportArchive } = await import('./image-export.js');
    await exportArchive(out, images, this.content);
  }

  private nameFor(ref: string): string | undefined {
    try {
      const parsed = parseReference(ref);
      return parsed.digest === undefined ? formatReference(parsed) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A lease of this store: what it holds stays out of garbage collection until released (the
   * blobs an image build writes before the image names them).
   */
  lease(): Promise<{ hold(digest: Digest): Promise<void>; release(): Promise<void> }> {
    return this.leases.take();
  }

  /** The lease of one import (see `import` and ImportLease). */
  private async takeLease(): Promise<ImportLease & { release(): Promise<void> }> {
    const lease = await this.leases.take();
    return {
      hold: (digest) => lease.hold(digest),
      discard: (written) => this.locked(() => this.gc.discard(written, lease.path)),
      release: () => lease.release(),
    };
  }

  // ------------------------------------------------------------------ queries

  /**
   * Finds an image by name (`busybox`, `busybox:1`, `docker.io/library/busybox:1`), by digest
   * (`busybox@sha256:…` or `sha256:…` of the manifest) or by image ID (config digest, or an
   * unambiguous hex prefix of it as docker allows).
   */
  async resolve(ref: string): Promise<ResolvedImage> {
    const { images } = await this.readRecords();
    const target = await this.findTarget(ref, images);
    return this.load(target, images);
  }

  private async findTarget(ref: string, images: Record<string, ImageRecord>): Promise<Descriptor> {
    if (typeof ref !== 'string' || ref.length === 0)
      throw new InvalidArgumentError('resolve image: empty reference', 'image');
    const direct = recordNamed(images, ref);
    if (direct) return direct.target;
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch (err) {
      if (!/^(sha256:)?[a-f0-9]{4,64}$/.test(ref)) throw err;
    }
    if (parsed) {
      if (parsed.digest !== undefined) {
        const repo = repositoryOf(parsed);
        const hit = Object.entries(images).find(
          ([name, r]) =>
            r.target.digest === parsed.digest &&
            (isDigest(name) || name.startsWith(`${repo}:`) || name.startsWith(`${repo}@`)),
        );
        if (hit) return hit[1].target;
        const anyName = Object.values(images).find((r) => r.target.digest === parsed.digest);
        if (anyName) return anyName.target;
      } else {
        const hit = recordNamed(images, formatReference(parsed));
        if (hit) return hit.target;
      }
    }
    const hex = ref.startsWith('sha256:') ? ref.slice(7) : ref;
    if (/^[a-f0-9]{4,64}$/.test(hex)) {
      const matches = new Map<string, Descriptor>();
      for (const record of Object.values(images)) {
        if (record.target.digest.slice(7).startsWith(hex)) matches.set(record.target.digest, record.target);
        const id = await this.configDigestOf(record.target).catch(() => undefined);
        if (id?.slice(7).startsWith(hex)) matches.set(record.target.digest, record.target);
      }
      if (matches.size === 1) return [...matches.values()][0]!;
      if (matches.size > 1) {
        throw new InvalidArgumentError(
          `resolve image ${JSON.stringify(ref)}: the ID prefix matches ${matches.size} images; give more digits`,
          'image',
        );
      }
    }
    throw new NotFoundError(
      `resolve image ${JSON.stringify(ref)}: no such image; see \`skiff runtime images\` or import it first`,
    );
  }

  private async configDigestOf(target: Descriptor): Promise<Digest> {
    const manifest = parseManifest(
      await this.content.readAll(target.digest, MAX_MANIFEST_BYTES),
      `manifest ${target.digest}`,
      target.mediaType,
    );
    return manifest.config.digest;
  }

  private async load(target: Descriptor, images: Record<string, ImageRecord>): Promise<ResolvedImage> {
    const names = Object.entries(images)
      .filter(([, r]) => r.target.digest === target.digest)
      .map(([n]) => n)
      .sort();
    return { names, ...(await this.parse(target)) };
  }

  private async parse(target: Descriptor): Promise<Omit<ResolvedImage, 'names'>> {
    const cached = this.parsed.get(target.digest);
    if (cached) return cached;
    const manifest = parseManifest(
      await this.content.readAll(target.digest, MAX_MANIFEST_BYTES),
      `manifest ${target.digest}`,
      target.mediaType,
    );
    const config = parseConfig(
      await this.content.readAll(manifest.config.digest, MAX_CONFIG_BYTES),
      `config ${manifest.config.digest}`,
    );
    checkLayersMatchConfig(manifest, config, `config ${manifest.config.digest}`);
    const chains = chainIds(config.diffIds, sha256Digest);
    const layers = manifest.layers.map((l, i) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
      diffId: config.diffIds[i]!,
      chainId: chains[i]!,
    }));
    const image = { manifestDigest: target.digest, manifest, id: manifest.config.digest, config, layers };
    if (this.parsed.size >= PARSED_IMAGES_KEPT) this.parsed.delete(this.parsed.keys().next().value!);
    this.parsed.set(target.digest, image);
    return image;
  }

  async list(): Promise<ImageSummary[]> {
    const { images } = await this.readRecords();
    const out: ImageSummary[] = [];
    for (const [name, record] of Object.entries(images)) {
      const image = await this.load(record.target, images);
      let repository = '<none>';
      let tag = '<none>';
      if (!isDigest(name)) {
        const ref = parseReference(name);
        repository = familiarRepository(repositoryOf(ref));
        tag = ref.tag ?? '<none>';
      }
      const summary: ImageSummary = {
        name,
        repository,
        tag,
        id: image.id,
        manifestDigest: image.manifestDigest,
        size: record.target.size + image.manifest.config.size + image.layers.reduce((s, l) => s + l.size, 0),
        layers: image.layers.length,
      };
      if (image.config.created !== undefined) summary.created = image.config.created;
      out.push(summary);
    }
    return out.sort((a, b) => compareCodePoints(a.name, b.name));
  }

  /**
   * Removes a name. Given a digest or ID, removes every name of that image. The blobs and
   * snapshots stay until `prune` (they may be shared, or used by a container).
   */
  async remove(ref: string): Promise<string[]> {
    return this.update(async (file) => {
      const target = await this.findTarget(ref, file.images);
      const byName = this.nameFor(ref);
      const names =
        byName && recordNamed(file.images, byName)
          ? [byName]
          : Object.keys(file.images).filter((n) => file.images[n]!.target.digest === target.digest);
      for (const n of names) delete file.images[n];
      return names;
    });
  }

  // ------------------------------------------------------------------ unpack

  /**
   * Ensures a committed snapshot per layer, keyed by ChainID, unpacking only the layers no
   * snapshot holds yet (layers shared with other images are unpacked once), and with
   * `initLayer` the image's init layer on top. `snapshotter.prepare(containerKey,
   * containerParent)` gives a container root.
   */
  async unpack(ref: string | ResolvedImage, options: UnpackOptions = {}): Promise<UnpackResult> {
    const image = typeof ref === 'string' ? await this.resolve(ref) : ref;
    if (image.layers.length === 0) {
      throw new FailedPreconditionError(
        `unpack image ${image.names[0] ?? image.manifestDigest}: it has no layers`,
      );
    }
    const top = image.layers[image.layers.length - 1]!.chainId;
    // with the copy snapshotter an init layer would be a second full copy of the image
    const withInit = options.initLayer === true && this.snapshotter.layersStack;
    // a committed snapshot's parents cannot be removed before it: the init layer vouches for
    // every layer below, so a start on an unpacked image checks one snapshot, not one per layer
    if (withInit && (await this.committed(initLayerKey(top)))) {
      return {
        chainId: top,
        containerParent: initLayerKey(top),
        initLayerCreated: false,
        layersUnpacked: 0,
        layersReused: image.layers.length,
        bytesWritten: 0,
      };
    }
    const { unpacked, reused, bytesWritten } = await this.unpackLayers(image.layers);
    const initLayerCreated =
      withInit &&
      (await this.ensureInitLayer(top, {
        key: initLayerKey(top),
        files: INIT_LAYER_FILES,
        what: `make the init layer of image ${image.names[0] ?? image.manifestDigest}`,
      }));
    return {
      chainId: top,
      containerParent: withInit ? initLayerKey(top) : top,
      initLayerCreated,
      layersUnpacked: unpacked,
      layersReused: reused,
      bytesWritten,
    };
  }

  /**
   * Ensures a committed snapshot per layer of a stack (bottom first), keyed by ChainID, unpacking
   * only those no snapshot holds yet; what `unpack` does for an image, and what the image builder
   * does for the layers it has written so far.
   */
  async unpackLayers(
    layers: readonly LayerInfo[],
  ): Promise<{ unpacked: number; reused: number; bytesWritten: number }> {
    let parent: Digest | undefined;
    let unpacked = 0;
    let reused = 0;
    let bytesWritten = 0;
    for (const layer of layers) {
      const inflight = this.unpacking.get(layer.chainId);
      if (inflight) {
        // the same layer is being unpacked for another image in this process: share that work
        await inflight;
        reused++;
      } else {
        // registered before the first await, so a concurrent unpack of the same layer finds it
        const layerParent = parent;
        const work = (async () =>
          (await this.committed(layer.chainId)) ? undefined : this.unpackLayer(layer, layerParent))();
        this.unpacking.set(layer.chainId, work);
        try {
          const written = await work;
          if (written === undefined) {
            reused++;
          } else {
            bytesWritten += written;
            unpacked++;
          }
        } finally {
          this.unpacking.delete(layer.chainId);
        }
      }
      parent = layer.chainId;
    }
    return { unpacked, reused, bytesWritten };
  }

  /**
   * Makes an init layer (the mount points of `files`, init-layer.ts) named `key` on the committed
   * snapshot `top` unless it exists; whether this call made it. An image's init layer, or a build
   * step's (which also holds /etc/resolv.conf, so that no RUN step's layer gains one).
   */
  async ensureInitLayer(top: Digest, spec: { key: string; files: string[]; what: string }): Promise<boolean> {
    const key = spec.key;
    const inflight = this.unpacking.get(key);
    if (inflight) {
      await inflight;
      return false;
    }
    const work = (async () => !(await this.committed(key)) && this.makeInitLayer(top, spec))();
    this.unpacking.set(key, work);
    try {
      return await work;
    } finally {
      this.unpacking.delete(key);
    }
  }

  /** Whether the layer committed is this call's (not another process's, made meanwhile). */
  private async makeInitLayer(
    top: Digest,
    spec: { key: string; files: string[]; what: string },
  ): Promise<boolean> {
    const name = spec.key;
    const key = `${name}-tmp-${randomBytes(6).toString('hex')}`;
    const action = spec.what;
    const mounts = await this.snapshotter.prepare(key, top, { labels: { 'skiff.io/unpacking': name } });
    try {
      if (mounts.length !== 1) {
        throw new FailedPreconditionError(
          `${action}: the snapshotter returned ${mounts.length} mounts; one root mount is supported`,
        );
      }
      await makeInitLayer(mounts[0]!, spec.files, action);
      try {
        await this.snapshotter.commit(name, key);
      } catch (err) {
        // another process made it meanwhile: theirs is as good as ours
        if (!(err instanceof AlreadyExistsError)) throw err;
        await this.snapshotter.remove(key);
        return false;
      }
      this.logger?.debug({ top, snapshot: name }, 'init layer made');
      return true;
    } catch (err) {
      await this.snapshotter.remove(key).catch(() => undefined);
      throw err;
    }
  }

  private async committed(key: string): Promise<boolean> {
    try {
      return (await this.snapshotter.stat(key)).kind === 'committed';
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  private async unpackLayer(layer: LayerInfo, parent: Digest | undefined): Promise<number> {
    const compression = layerCompression(layer.mediaType);
    if (compression === undefined) {
      throw new InvalidArgumentError(
        `unpack layer ${layer.digest}: media type ${layer.mediaType} is not a layer`,
        'mediaType',
      );
    }
    const key = `extract-${randomBytes(6).toString('hex')}-${layer.chainId}`;
    await this.snapshotter.prepare(key, parent, { labels: { 'skiff.io/unpacking': layer.chainId } });
    try {
      const { dir, whiteouts, lowers } = await this.snapshotter.writableLayer(key);
      const free = await (this.options.freeBytes ?? defaultFreeBytes)(dir);
      const fs = await statfs(dir);
      // file systems without an inode count (btrfs) report 0 files: no limit there
      const maxEntries = fs.files > 0 ? Math.max(0, fs.ffree - 1024) : undefined;
      const maxBytes = Math.min(
        this.options.maxLayerBytes ?? Infinity,
        Math.max(0, free - (this.options.reserveBytes ?? RESERVE_BYTES)),
      );
      const { applyLayer } = await import('./layer-unpack.js');
      const stats = await applyLayer(await this.content.read(layer.digest), {
        dir,
        whiteouts,
        digest: layer.digest,
        diffId: layer.diffId,
        compression,
        maxBytes,
        ...(maxEntries === undefined ? {} : { maxEntries }),
        lowers,
        ...(this.options.unpackMaxMemoryBytes === undefined
          ? {}
          : { maxMemoryBytes: this.options.unpackMaxMemoryBytes }),
      });
      try {
        await this.snapshotter.commit(layer.chainId, key);
      } catch (err) {
        // another process unpacked the same layer meanwhile: theirs is as good as ours
        if (!(err instanceof AlreadyExistsError)) throw err;
        await this.snapshotter.remove(key);
      }
      this.logger?.debug({ layer: layer.digest, chainId: layer.chainId, ...stats }, 'layer unpacked');
      return stats.bytes;
    } catch (err) {
      await this.snapshotter.remove(key).catch(() => undefined);
      throw err;
    }
  }

  // ------------------------------------------------------------------ garbage collection

  /** Removes blobs and snapshots nothing uses (image-gc.ts). */
  prune(options: PruneOptions = {}): Promise<PruneResult> {
    return this.gc.prune(options);
  }

  /** Disk usage with shared layers counted once (`skiff runtime df`). */
  async df(): Promise<DiskUsageReport> {
    const { images } = await this.readRecords();
    const blobs = await this.content.list();
    const sizeOf = new Map(blobs.map((b) => [b.digest, b.size]));
    const users = new Map<Digest, number>();
    const perImage: { name: string; image: ResolvedImage; digests: Digest[] }[] = [];
    for (const [name, record] of Object.entries(images)) {
      const image = await this.load(record.target, images);
      const digests = [
        record.target.digest,
        image.manifest.config.digest,
        ...image.layers.map((l) => l.digest),
      ];
      perImage.push({ name, image, digests });
    }
    // an image with several names is one image: count users per distinct manifest
    const seenManifest = new Set<string>();
    for (const { image, digests } of perImage) {
      if (seenManifest.has(image.manifestDigest)) continue;
      seenManifest.add(image.manifestDigest);
      for (const d of new Set(digests)) users.set(d, (users.get(d) ?? 0) + 1);
    }
    const report: DiskUsageReport = {
      images: perImage.map(({ name, image, digests }) => {
        let size = 0;
        let sharedSize = 0;
        for (const d of new Set(digests)) {
          const s = sizeOf.get(d) ?? 0;
          size += s;
          if ((users.get(d) ?? 0) > 1) sharedSize += s;
        }
        return { name, id: image.id, size, sharedSize, uniqueSize: size - sharedSize };
      }),
      content: { blobs: blobs.length, bytes: blobs.reduce((s, b) => s + b.size, 0) },
      snapshots: { count: 0, bytes: 0, reclaimableBytes: (await this.snapshotter.reclaimable()).size },
      totalBytes: 0,
    };
    const keys: string[] = [];
    await this.snapshotter.walk((info) => {
      keys.push(info.key);
    });
    for (const key of keys) {
      try {
        report.snapshots.bytes += (await this.snapshotter.usage(key)).size;
        report.snapshots.count++;
      } catch (err) {
        if (!(isSkiffError(err) && err instanceof NotFoundError)) throw err;
      }
    }
    report.totalBytes = report.content.bytes + report.snapshots.bytes + report.snapshots.reclaimableBytes;
    return report;
  }
}

async function defaultFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}
