/**
 * Import of image archives into the content store:
 *   - OCI image layouts, directory or tar (index.json → [index →] manifest → config, layers);
 *   - `docker save` of Docker ≥25, which is an OCI layout plus manifest.json (names from either);
 *   - legacy `docker save` (manifest.json → <config>.json, <id>/layer.tar), for which an OCI
 *     manifest is made here so that every image in the store has one.
 *
 * Order of work, so that bad input is refused before anything is written and nothing is left
 * half-imported: (1) read and check every small document (index, manifests, configs: digests,
 * sizes, media types, CVE-2021-41190, diff_ids count); (2) check the declared size of every blob
 * not yet stored against the disk budget; (3) copy layers (each hashed twice: the blob digest and
 * the DiffID), then configs, then manifests. A failure removes the blobs this import wrote that
 * no existing image uses.
 */
import { FailedPreconditionError, InvalidArgumentError } from '../../../proto/errors.js';
import type { ContentStore } from '../../../proto/oci/content-store.js';
import { digestHex, parseDigest, sha256Digest, type Digest } from '../../../proto/oci/digest.js';
import { openImageArchive, type ImageArchive } from './image-archive.js';
import { withDiffId } from './layer-digests.js';
import {
  INDEX_TYPES,
  MANIFEST_TYPES,
  MediaType,
  layerCompression,
  ociLayerMediaType,
} from '../../../proto/oci/media-types.js';
import {
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  checkLayerCount,
  checkLayersMatchConfig,
  hostPlatform,
  parseConfig,
  parseIndex,
  parseManifest,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
} from '../../../proto/oci/manifests.js';
import { formatReference, parseReference } from '../../../proto/oci/reference.js';

export const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';

export interface ImportOptions {
  /** Name for images the archive leaves unnamed. */
  name?: string;
  /** Per-blob size limit in bytes. */
  maxBlobBytes?: number;
  /** Progress of blob copies: the blob (digest or archive path) and bytes read so far of `total`. */
  onProgress?: (event: { blob: string; bytes: number; total: number }) => void;
}

/**
 * What a running import holds (containerd's leases): the store keeps a held blob from prune and
 * from the failure clean-up of any other import, so blobs shared by concurrent imports survive.
 */
export interface ImportLease {
  /** Records that the import uses `digest`; called before the blob is looked for or written. */
  hold(digest: Digest): Promise<void>;
  /** After a failure: deletes those of `written` that no image and no other import holds. */
  discard(written: Digest[]): Promise<void>;
}

export interface ImportedImage {
  names: string[];
  manifest: Descriptor;
  configDigest: Digest;
  layers: number;
}

export interface ImportResult {
  images: ImportedImage[];
  /** Blobs (layers, configs, manifests) newly written, and their bytes. */
  blobsWritten: number;
  bytesWritten: number;
  /** Blobs already in the store (shared with images imported before): not written again. */
  blobsSkipped: number;
  bytesSkipped: number;
}

interface OciPlan {
  kind: 'oci';
  names: Set<string>;
  manifestDescriptor: Descriptor;
  manifestBytes: Buffer;
  manifest: ImageManifest;
  configBytes: Buffer;
  config: ImageConfig;
}

interface LegacyPlan {
  kind: 'legacy';
  names: Set<string>;
  configBytes: Buffer;
  config: ImageConfig;
  layerPaths: string[];
  layerSizes: number[];
}

type Plan = OciPlan | LegacyPlan;

function blobPath(digest: Digest): string {
  return `blobs/sha256/${digestHex(digest)}`;
}

function normalizeName(value: string, where: string): string {
  return formatReference(parseReference(value, where));
}

/** Names from index.json annotations: a full reference, or a ref.name that is more than a tag. */
function annotationNames(desc: Descriptor, where: string): string[] {
  const a = desc.annotations ?? {};
  const full = a['io.containerd.image.name'];
  if (full) return [normalizeName(full, `${where}.annotations["io.containerd.image.name"]`)];
  const refName = a['org.opencontainers.image.ref.name'];
  if (refName && /[/:]/.test(refName))
    return [normalizeName(refName, `${where}.annotations["org.opencontainers.image.ref.name"]`)];
  return [];
}

/**
 * Reads and checks an archive's documents. An index, a manifest list or manifest.json may name one
 * document any number of times (hostile: 400 copies of a 4 MB manifest and its 8 MB config took
 * 19 s), so each blob is read and hashed once (by digest, or by path for manifest.json's config
 * files), each document parsed once (by digest and the media type its descriptor claims, on which
 * the verdict depends), and a manifest seen again under the same descriptor only adds its names.
 */
class Planner {
  readonly plans: Plan[] = [];
  private readonly verified = new Map<Digest, Buffer>();
  private readonly parsed = new Map<string, unknown>();
  /** OCI plans by `digest mediaType size` of their manifest descriptor. */
  private readonly planOf = new Map<string, OciPlan>();
  /** Legacy plans by their manifest.json entry's config path and layer paths. */
  private readonly legacyPlanOf = new Map<string, LegacyPlan>();
  /** manifest.json's config files by path, with their digests. */
  private readonly configFiles = new Map<string, { bytes: Buffer; digest: Digest }>();

  constructor(
    private readonly archive: ImageArchive,
    private readonly source: string,
  ) {}

  private parseOnce<T>(key: string, parse: () => T): T {
    if (this.parsed.has(key)) return this.parsed.get(key) as T;
    const value = parse();
    this.parsed.set(key, value);
    return value;
  }

  /** A small blob of the archive, checked against its descriptor's size and digest. */
  private async readBlob(desc: Descriptor, maxBytes: number, what: string): Promise<Buffer> {
    const path = blobPath(desc.digest);
    if (!(await this.archive.has(path))) {
      throw new InvalidArgumentError(
        `import ${this.source}: ${what} ${desc.digest} is missing from the archive (${path})`,
        path,
      );
    }
    const size = await this.archive.size(path);
    if (size !== desc.size) {
      throw new InvalidArgumentError(
        `import ${this.source}: ${what} ${desc.digest} is ${size} bytes in the archive but its descriptor says ${desc.size}`,
        path,
      );
    }
    const known = this.verified.get(desc.digest);
    // over the limit, readSmall refuses it with its own message
    if (known !== undefined && known.length <= maxBytes) return known;
    const bytes = await this.archive.readSmall(path, maxBytes);
    const actual = sha256Digest(bytes);
    if (actual !== desc.digest) {
      throw new InvalidArgumentError(
        `import ${this.source}: ${what} content does not match its digest (expected ${desc.digest}, actual ${actual})`,
        path,
      );
    }
    this.verified.set(desc.digest, bytes);
    return bytes;
  }

  async planOci(): Promise<void> {
    const where = `index.json of ${this.source}`;
    const index = parseIndex(await this.archive.readSmall('index.json', MAX_MANIFEST_BYTES), where);
    for (const [i, desc] of index.manifests.entries()) {
      await this.collect(
        desc,
        new Set(annotationNames(desc, `index.json manifests[${i}]`)),
        `index.json manifests[${i}]`,
        0,
      );
    }
  }

  private async collect(desc: Descriptor, names: Set<string>, where: string, depth: number): Promise<void> {
    if (INDEX_TYPES.has(desc.mediaType)) {
      if (depth >= 4)
        throw new InvalidArgumentError(
          `import ${this.source}: ${where}: indexes nested more than 4 deep`,
          where,
        );
      const bytes = await this.readBlob(desc, MAX_MANIFEST_BYTES, 'index');
      const index = this.parseOnce(`${desc.digest} ${desc.mediaType}`, () =>
        parseIndex(bytes, `index ${desc.digest}`, desc.mediaType),
      );
      const host = hostPlatform();
      const manifests = index.manifests.filter(
        (m) => MANIFEST_TYPES.has(m.mediaType) || INDEX_TYPES.has(m.mediaType),
      );
      const matching = manifests.filter(
        (m) =>
          m.platform === undefined ||
          (m.platform.os === host.os && m.platform.architecture === host.architecture),
      );
      if (matching.length === 0) {
        const available = manifests
          .map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}` : '?'))
          .join(', ');
        throw new FailedPreconditionError(
          `import ${this.source}: index ${desc.digest} has no image for ${host.os}/${host.architecture} (available: ${available || 'none'})`,
        );
      }
      // one image per name: the first match (the platform-specific one when a variant-less index repeats)
      await this.collect(matching[0]!, names, `index ${desc.digest} manifests[0]`, depth + 1);
      return;
    }
    if (!MANIFEST_TYPES.has(desc.mediaType)) return; // unknown types must not fail an import (image-layout spec)
    const planKey = `${desc.digest} ${desc.mediaType} ${desc.size}`;
    const planned = this.planOf.get(planKey);
    if (planned) {
      // the same bytes under the same claims: every check below would pass as it did
      for (const n of names) planned.names.add(n);
      return;
    }
    const manifestBytes = await this.readBlob(desc, MAX_MANIFEST_BYTES, 'manifest');
    const manifest = parseManifest(manifestBytes, `manifest ${desc.digest}`, desc.mediaType);
    const configBytes = await this.readBlob(manifest.config, MAX_CONFIG_BYTES, 'config');
    const config = this.parseOnce(`config ${manifest.config.digest}`, () =>
      parseConfig(configBytes, `config ${manifest.config.digest}`),
    );
    checkLayersMatchConfig(manifest, config, `config ${manifest.config.digest}`);
    // the same manifest under another (also valid) media type: one image
    const existing = this.plans.find(
      (p): p is OciPlan => p.kind === 'oci' && p.manifestDescriptor.digest === desc.digest,
    );
    if (existing) {
      for (const n of names) existing.names.add(n);
      this.planOf.set(planKey, existing);
      return;
    }
    const plan: OciPlan = {
      kind: 'oci',
      names,
      manifestDescriptor: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size },
      manifestBytes,
      manifest,
      configBytes,
      config,
    };
    this.plans.push(plan);
    this.planOf.set(planKey, plan);
  }

  private async readDockerManifest(): Promise<{ Config: string; RepoTags: string[]; Layers: string[] }[]> {
    const bytes = await this.archive.readSmall('manifest.json', MAX_MANIFEST_BYTES);
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new InvalidArgumentError(
        `import ${this.source}: manifest.json is not valid JSON (${(err as Error).message})`,
        'manifest.json',
      );
    }
    if (!Array.isArray(parsed))
      throw new InvalidArgumentError(
        `import ${this.source}: manifest.json must be an array`,
        'manifest.json',
      );
    return parsed.map((e: unknown, i) => {
      const entry = e as Record<string, unknown>;
      const field = `manifest.json[${i}]`;
      if (typeof entry !== 'object' || entry === null || typeof entry.Config !== 'string') {
        throw new InvalidArgumentError(
          `import ${this.source}: ${field}.Config must be a path`,
          `${field}.Config`,
        );
      }
      const tags = entry.RepoTags ?? [];
      if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
        throw new InvalidArgumentError(
          `import ${this.source}: ${field}.RepoTags must be a list of names`,
          `${field}.RepoTags`,
        );
      }
      if (!Array.isArray(entry.Layers) || entry.Layers.some((l) => typeof l !== 'string')) {
        throw new InvalidArgumentError(
          `import ${this.source}: ${field}.Layers must be a list of paths`,
          `${field}.Layers`,
        );
      }
      return { Config: entry.Config, RepoTags: tags as string[], Layers: entry.Layers as string[] };
    });
  }

  /** Docker ≥25 archives: names from manifest.json's RepoTags, matched by config digest. */
  async addDockerNames(): Promise<void> {
    const entries = await this.readDockerManifest();
    for (const [i, entry] of entries.entries()) {
      const configDigest = (await this.configFile(entry.Config)).digest;
      const plan = this.plans.find((p) => p.kind === 'oci' && p.manifest.config.digest === configDigest);
      if (!plan) continue;
      for (const t of entry.RepoTags) plan.names.add(normalizeName(t, `manifest.json[${i}].RepoTags`));
    }
  }

  async planLegacy(): Promise<void> {
    const entries = await this.readDockerManifest();
    for (const [i, entry] of entries.entries()) {
      const field = `manifest.json[${i}]`;
      const planKey = JSON.stringify([entry.Config, entry.Layers]);
      const planned = this.legacyPlanOf.get(planKey);
      if (planned) {
        for (const t of entry.RepoTags) planned.names.add(normalizeName(t, `${field}.RepoTags`));
        continue;
      }
      if (!(await this.archive.has(entry.Config))) {
        throw new InvalidArgumentError(
          `import ${this.source}: ${field}.Config ${entry.Config} is missing from the archive`,
          `${field}.Config`,
        );
      }
      const configBytes = (await this.configFile(entry.Config)).bytes;
      const config = this.parseOnce(`config file ${entry.Config}`, () =>
        parseConfig(configBytes, `config ${entry.Config}`),
      );
      checkLayerCount(entry.Layers.length, `${field}.Layers`, config, `config ${entry.Config}`);
      const layerSizes: number[] = [];
      for (const [j, path] of entry.Layers.entries()) {
        if (!(await this.archive.has(path))) {
          throw new InvalidArgumentError(
            `import ${this.source}: ${field}.Layers[${j}] ${path} is missing from the archive`,
            `${field}.Layers[${j}]`,
          );
        }
        layerSizes.push(await this.archive.size(path));
      }
      const plan: LegacyPlan = {
        kind: 'legacy',
        names: new Set(entry.RepoTags.map((t) => normalizeName(t, `${field}.RepoTags`))),
        configBytes,
        config,
        layerPaths: entry.Layers,
        layerSizes,
      };
      this.plans.push(plan);
      this.legacyPlanOf.set(planKey, plan);
    }
  }

  /** A config file manifest.json names, read and hashed once however many entries name it. */
  private async configFile(path: string): Promise<{ bytes: Buffer; digest: Digest }> {
    let known = this.configFiles.get(path);
    if (known === undefined) {
      const bytes = await this.archive.readSmall(path, MAX_CONFIG_BYTES);
      known = { bytes, digest: sha256Digest(bytes) };
      this.configFiles.set(path, known);
    }
    return known;
  }
}

export async function importArchive(
  path: string,
  content: ContentStore,
  options: ImportOptions,
  lease: ImportLease,
): Promise<ImportResult> {
  const defaultName = options.name === undefined ? undefined : normalizeName(options.name, 'name');
  const archive = await openImageArchive(path);
  const written: Digest[] = [];
  const result: ImportResult = {
    images: [],
    blobsWritten: 0,
    bytesWritten: 0,
    blobsSkipped: 0,
    bytesSkipped: 0,
  };
  try {
    const planner = new Planner(archive, path);
    if (await archive.has('index.json')) {
      await planner.planOci();
      if (await archive.has('manifest.json')) await planner.addDockerNames();
    } else if (await archive.has('manifest.json')) {
      await planner.planLegacy();
    } else {
      throw new InvalidArgumentError(
        `import ${path}: neither index.json (OCI image layout) nor manifest.json (docker save) found`,
        'path',
      );
    }
    const plans = planner.plans;
    if (plans.length === 0)
      throw new InvalidArgumentError(`import ${path}: the archive holds no container image`, 'path');
    if (defaultName !== undefined) {
      for (const p of plans) if (p.names.size === 0) p.names.add(defaultName);
    }

    // (2) the declared size of everything not yet stored, before writing anything
    let missing = 0;
    const counted = new Set<string>();
    for (const p of plans) {
      const blobs: [string, number][] =
        p.kind === 'oci'
          ? [
              [p.manifestDescriptor.digest, p.manifestDescriptor.size],
              [p.manifest.config.digest, p.manifest.config.size],
              ...p.manifest.layers.map((l): [string, number] => [l.digest, l.size]),
            ]
          : p.layerPaths.map((l, i): [string, number] => [`legacy:${l}`, p.layerSizes[i]!]);
      for (const [id, size] of blobs) {
        if (counted.has(id)) continue;
        counted.add(id);
        if (!id.startsWith('legacy:') && (await content.has(id as Digest))) continue;
        missing += size;
      }
    }
    await content.checkSpace(missing, `import ${path}`);

    // (3) copy: layers, then config, then manifest
    const account = (r: { written: boolean; size: number; digest: Digest }): void => {
      if (r.written) {
        written.push(r.digest);
        result.blobsWritten++;
        result.bytesWritten += r.size;
      } else {
        result.blobsSkipped++;
        result.bytesSkipped += r.size;
      }
    };
    const ingestLayer = async (
      source: string,
      expected: { digest?: Digest; size: number; mediaType?: string },
      diffId: Digest,
      what: string,
    ): Promise<{ digest: Digest; mediaType: string }> => {
      if (expected.digest !== undefined) await lease.hold(expected.digest);
      if (expected.digest !== undefined && (await content.has(expected.digest))) {
        const stored = await storedDiffId(content, expected.digest, expected.mediaType!, what);
        if (stored !== diffId) throw diffIdMismatch(what, diffId, stored);
        account({ written: false, size: expected.size, digest: expected.digest });
        return { digest: expected.digest, mediaType: expected.mediaType! };
      }
      const declared = expected.mediaType === undefined ? 'auto' : layerCompression(expected.mediaType)!;
      const { stream, probe } = withDiffId(await archive.open(source), declared, what);
      const ingestOptions: Parameters<ContentStore['ingest']>[1] = {
        size: expected.size,
        onProgress: (bytes) =>
          options.onProgress?.({ blob: expected.digest ?? source, bytes, total: expected.size }),
      };
      if (expected.digest !== undefined) ingestOptions.digest = expected.digest;
      if (options.maxBlobBytes !== undefined) ingestOptions.maxBytes = options.maxBlobBytes;
      const r = await content.ingest(stream, ingestOptions);
      if (expected.digest === undefined) {
        // a legacy layer's digest is known only now: a blob found already stored may have been
        // removed by another import's failure before this hold, so it is then written again
        await lease.hold(r.digest);
        if (!r.written && !(await content.has(r.digest))) return ingestLayer(source, expected, diffId, what);
      }
      account(r);
      const actual = probe.diffId();
      if (actual !== diffId) throw diffIdMismatch(what, diffId, actual);
      await content.setLabels(r.digest, { [UNCOMPRESSED_LABEL]: actual });
      const mediaType = expected.mediaType ?? ociLayerMediaType(probe.compression());
      return { digest: r.digest, mediaType };
    };
    const ingestBytes = async (bytes: Buffer, declared?: Digest): Promise<Digest> => {
      const digest = declared ?? sha256Digest(bytes);
      await lease.hold(digest);
      const r = await content.ingest([bytes], { digest, size: bytes.length });
      account(r);
      return r.digest;
    };

    for (const p of plans) {
      let manifestDescriptor: Descriptor;
      if (p.kind === 'oci') {
        for (const [i, layer] of p.manifest.layers.entries()) {
          await ingestLayer(
            blobPath(layer.digest),
            { digest: layer.digest, size: layer.size, mediaType: layer.mediaType },
            p.config.diffIds[i]!,
            `import ${path}: layer ${layer.digest}`,
          );
        }
        await ingestBytes(p.configBytes, p.manifest.config.digest);
        await ingestBytes(p.manifestBytes, p.manifestDescriptor.digest);
        manifestDescriptor = p.manifestDescriptor;
      } else {
        const layers: Descriptor[] = [];
        for (const [i, layerPath] of p.layerPaths.entries()) {
          const { digest, mediaType } = await ingestLayer(
            layerPath,
            { size: p.layerSizes[i]! },
            p.config.diffIds[i]!,
            `import ${path}: layer ${layerPath}`,
          );
          layers.push({ mediaType, digest, size: p.layerSizes[i]! });
        }
        const configDigest = await ingestBytes(p.configBytes);
        const manifestBytes = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MediaType.ociManifest,
            config: { mediaType: MediaType.ociConfig, digest: configDigest, size: p.configBytes.length },
            layers,
          }),
        );
        const manifestDigest = await ingestBytes(manifestBytes);
        manifestDescriptor = {
          mediaType: MediaType.ociManifest,
          digest: manifestDigest,
          size: manifestBytes.length,
        };
      }
      result.images.push({
        names: [...p.names].sort(),
        manifest: manifestDescriptor,
        configDigest: p.kind === 'oci' ? p.manifest.config.digest : sha256Digest(p.configBytes),
        layers: p.kind === 'oci' ? p.manifest.layers.length : p.layerPaths.length,
      });
    }
    return result;
  } catch (err) {
    await lease.discard(written);
    throw err;
  } finally {
    await archive.close();
  }
}

function diffIdMismatch(what: string, expected: Digest, actual: Digest): InvalidArgumentError {
  return new InvalidArgumentError(
    `${what}: uncompressed content does not match the config's diff_id (expected ${expected}, actual ${actual})`,
    'rootfs.diff_ids',
  );
}

/** The DiffID of a stored layer blob: its label, or (for blobs stored without one) a hashing pass. */
async function storedDiffId(
  content: ContentStore,
  digest: Digest,
  mediaType: string,
  what: string,
): Promise<Digest> {
  const label = (await content.info(digest)).labels[UNCOMPRESSED_LABEL];
  if (label !== undefined) return parseDigest(label, UNCOMPRESSED_LABEL);
  const { stream, probe } = withDiffId(
    await content.read(digest),
    layerCompression(mediaType) ?? 'auto',
    what,
  );
  for await (const _chunk of stream); // the probe hashes while the stream is drained
  const diffId = probe.diffId();
  await content.setLabels(digest, { [UNCOMPRESSED_LABEL]: diffId });
  return diffId;
}
