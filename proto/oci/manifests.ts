/**
 * Strict parsing of OCI / Docker schema 2 documents: descriptors, image indexes, image manifests,
 * image configs. Pure functions over bytes; every refusal names the document and the field.
 *
 * CVE-2021-41190: a document carrying both `manifests` (index) and `layers`/`config` (manifest)
 * could be read as either; it is refused outright, as are documents whose mediaType contradicts
 * the descriptor that pointed at them.
 */
import { InvalidArgumentError } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';
import {
  CONFIG_TYPES,
  INDEX_TYPES,
  MANIFEST_TYPES,
  MediaType,
  SCHEMA1_TYPES,
  layerCompression,
} from './media-types.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  /** Where a non-distributable (foreign) layer may be fetched from instead. */
  urls?: string[];
  /** The type of the artifact a manifest descriptor points at (image spec v1.1). */
  artifactType?: string;
}

export interface ImageIndex {
  mediaType: string;
  manifests: Descriptor[];
}

export interface ImageManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageConfig {
  created?: string;
  os: string;
  architecture: string;
  diffIds: Digest[];
  /** The runtime part (Env, Cmd, Entrypoint, WorkingDir, User, ...), passed on untouched. */
  config: Record<string, unknown>;
}

/** Manifests and indexes above this are refused (the distribution spec requires 4 MB support). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

type Json = Record<string, unknown>;

function fail(what: string, field: string, why: string): never {
  throw new InvalidArgumentError(`parse ${what}: ${field ? `${field} ` : ''}${why}`, field || undefined);
}

export function parseJsonObject(bytes: Buffer, what: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    fail(what, '', `is not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail(what, '', 'is not a JSON object');
  return value as Json;
}

function stringMap(value: unknown, what: string, field: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) fail(what, field, 'must be an object of strings');
  for (const [k, v] of Object.entries(value as Json)) {
    if (typeof v !== 'string') fail(what, `${field}.${k}`, 'must be a string');
  }
  return value as Record<string, string>;
}

export function parseDescriptor(value: unknown, what: string, field: string): Descriptor {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail(what, field, 'must be a descriptor object');
  const d = value as Json;
  if (typeof d.mediaType !== 'string' || d.mediaType.length === 0)
    fail(what, `${field}.mediaType`, 'must be a non-empty string');
  let digest: Digest;
  try {
    digest = parseDigest(d.digest, `${field}.digest`);
  } catch (err) {
    fail(what, `${field}.digest`, (err as Error).message.replace(/^parse digest /, ''));
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    fail(what, `${field}.size`, 'must be a non-negative integer');
  }
  const out: Descriptor = { mediaType: d.mediaType, digest, size: d.size };
  const annotations = stringMap(d.annotations, what, `${field}.annotations`);
  if (annotations) out.annotations = annotations;
  if (d.platform !== undefined) {
    const p = d.platform as Json;
    if (
      typeof p !== 'object' ||
      p === null ||
      typeof p.os !== 'string' ||
      typeof p.architecture !== 'string'
    ) {
      fail(what, `${field}.platform`, 'must have string os and architecture');
    }
    out.platform = { os: p.os, architecture: p.architecture };
    if (typeof p.variant === 'string') out.platform.variant = p.variant;
  }
  if (d.urls !== undefined) {
    if (!Array.isArray(d.urls) || !d.urls.every((u) => typeof u === 'string'))
      fail(what, `${field}.urls`, 'must be an array of strings');
    out.urls = d.urls as string[];
  }
  if (d.artifactType !== undefined) {
    if (typeof d.artifactType !== 'string') fail(what, `${field}.artifactType`, 'must be a string');
    out.artifactType = d.artifactType;
  }
  return out;
}

function checkCommon(
  doc: Json,
  what: string,
  expectedMediaType: string | undefined,
  allowed: ReadonlySet<string>,
): string {
  if ('manifests' in doc && ('layers' in doc || 'config' in doc)) {
    fail(what, '', 'has both "manifests" and "layers"/"config": ambiguous document refused (CVE-2021-41190)');
  }
  if (doc.schemaVersion !== 2)
    fail(what, 'schemaVersion', `must be 2 (got ${JSON.stringify(doc.schemaVersion)})`);
  const mediaType = doc.mediaType;
  if (mediaType !== undefined && (typeof mediaType !== 'string' || !allowed.has(mediaType))) {
    fail(what, 'mediaType', `${JSON.stringify(mediaType)} is not one of ${[...allowed].join(', ')}`);
  }
  if (expectedMediaType !== undefined && mediaType !== undefined && mediaType !== expectedMediaType) {
    fail(
      what,
      'mediaType',
      `${JSON.stringify(mediaType)} contradicts the descriptor's ${JSON.stringify(expectedMediaType)}`,
    );
  }
  return (mediaType as string | undefined) ?? expectedMediaType ?? [...allowed][0]!;
}

/** `expectedMediaType` is the type the referring descriptor declared (undefined for index.json). */
export function parseIndex(bytes: Buffer, what: string, expectedMediaType?: string): ImageIndex {
  const doc = parseJsonObject(bytes, what);
  const mediaType = checkCommon(doc, what, expectedMediaType, INDEX_TYPES);
  if (!Array.isArray(doc.manifests)) fail(what, 'manifests', 'must be an array');
  return { mediaType, manifests: doc.manifests.map((m, i) => parseDescriptor(m, what, `manifests[${i}]`)) };
}

export function parseManifest(bytes: Buffer, what: string, expectedMediaType?: string): ImageManifest {
  const doc = parseJsonObject(bytes, what);
  const mediaType = checkCommon(doc, what, expectedMediaType, MANIFEST_TYPES);
  const config = parseDescriptor(doc.config, what, 'config');
  if (!CONFIG_TYPES.has(config.mediaType)) {
    fail(
      what,
      'config.mediaType',
      `${JSON.stringify(config.mediaType)} is not a container image config (an artifact?)`,
    );
  }
  if (!Array.isArray(doc.layers)) fail(what, 'layers', 'must be an array');
  const layers = doc.layers.map((l, i) => parseDescriptor(l, what, `layers[${i}]`));
  layers.forEach((l, i) => {
    if (layerCompression(l.mediaType) === undefined) {
      fail(
        what,
        `layers[${i}].mediaType`,
        `${JSON.stringify(l.mediaType)} is not a layer type skiff can unpack`,
      );
    }
  });
  return { mediaType, config, layers };
}

export function parseConfig(bytes: Buffer, what: string): ImageConfig {
  const doc = parseJsonObject(bytes, what);
  const rootfs = doc.rootfs as Json | undefined;
  if (typeof rootfs !== 'object' || rootfs === null) fail(what, 'rootfs', 'is missing');
  if (rootfs.type !== 'layers')
    fail(what, 'rootfs.type', `must be "layers" (got ${JSON.stringify(rootfs.type)})`);
  if (!Array.isArray(rootfs.diff_ids)) fail(what, 'rootfs.diff_ids', 'must be an array');
  const diffIds = rootfs.diff_ids.map((d, i) => {
    try {
      return parseDigest(d, `rootfs.diff_ids[${i}]`);
    } catch (err) {
      fail(what, `rootfs.diff_ids[${i}]`, (err as Error).message.replace(/^parse digest /, ''));
    }
  });
  if (typeof doc.os !== 'string') fail(what, 'os', 'must be a string');
  if (typeof doc.architecture !== 'string') fail(what, 'architecture', 'must be a string');
  const config = doc.config ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    fail(what, 'config', 'must be an object');
  const out: ImageConfig = { os: doc.os, architecture: doc.architecture, diffIds, config: config as Json };
  if (typeof doc.created === 'string') out.created = doc.created;
  return out;
}

/**
 * What a registry needs to know of a manifest pushed to it. Any of the four schema 2 / OCI
 * document types, artifacts included: the image spec says an unknown config or layer media type
 * MUST NOT fail storing or copying, so unlike parseManifest this accepts any descriptor types.
 */
export interface PushedManifest {
  /** One of INDEX_TYPES or MANIFEST_TYPES: the type it is stored and served as. */
  mediaType: string;
  kind: 'index' | 'manifest';
  /** An image manifest's config then its layers: blobs that must be in the repository. */
  blobs: Descriptor[];
  /** An index's manifests: manifests that must be in the repository. */
  manifests: Descriptor[];
  /** The manifest this one refers to (image spec v1.1), which need not exist. */
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** An image manifest's config media type (the referrers API's artifactType fallback). */
  configMediaType?: string;
}

/** `type/subtype` of a Content-Type header, lower case, parameters dropped. */
export function bareMediaType(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const bare = header.split(';')[0]!.trim().toLowerCase();
  return bare === '' ? undefined : bare;
}

/** Content types that say nothing about which manifest a body is; the body then decides. */
const GENERIC_TYPES: ReadonlySet<string> = new Set(['application/json', 'application/octet-stream']);

/**
 * Parses the body of a manifest PUT. The type is the body's `mediaType`, or the request's
 * Content-Type when the body has none, or (Content-Type absent or generic) what the body's fields
 * say (`manifests`: an OCI index; `config`: an OCI manifest). Refused (InvalidArgumentError naming
 * the field): schema 1, a type that is none of the four, a Content-Type that contradicts the
 * body's mediaType, a body with both `manifests` and `layers`/`config` (CVE-2021-41190), bad
 * descriptors.
 */
export function parsePushedManifest(
  bytes: Buffer,
  contentType: string | undefined,
  what: string,
): PushedManifest {
  const declared = bareMediaType(contentType);
  if (declared !== undefined && SCHEMA1_TYPES.has(declared)) {
    fail(what, '', `is ${declared}: Docker schema 1 manifests are not supported; push schema 2 or OCI`);
  }
  const doc = parseJsonObject(bytes, what);
  if (doc.schemaVersion === 1) {
    fail(what, 'schemaVersion', 'is 1: Docker schema 1 manifests are not supported; push schema 2 or OCI');
  }
  if ('manifests' in doc && ('layers' in doc || 'config' in doc)) {
    fail(what, '', 'has both "manifests" and "layers"/"config": ambiguous document refused (CVE-2021-41190)');
  }
  if (doc.schemaVersion !== 2)
    fail(what, 'schemaVersion', `must be 2 (got ${JSON.stringify(doc.schemaVersion)})`);
  const known = (t: string): boolean => INDEX_TYPES.has(t) || MANIFEST_TYPES.has(t);
  let mediaType: string;
  if (doc.mediaType !== undefined) {
    if (typeof doc.mediaType !== 'string' || !known(doc.mediaType)) {
      fail(
        what,
        'mediaType',
        `${JSON.stringify(doc.mediaType)} is not an image manifest or index type (${[...MANIFEST_TYPES, ...INDEX_TYPES].join(', ')})`,
      );
    }
    if (declared !== undefined && !GENERIC_TYPES.has(declared) && declared !== doc.mediaType) {
      fail(what, 'mediaType', `${JSON.stringify(doc.mediaType)} contradicts the Content-Type ${declared}`);
    }
    mediaType = doc.mediaType;
  } else if (declared !== undefined && !GENERIC_TYPES.has(declared)) {
    if (!known(declared)) {
      fail(what, '', `has Content-Type ${declared}, which is not an image manifest or index type`);
    }
    mediaType = declared;
  } else if ('manifests' in doc) {
    mediaType = MediaType.ociIndex;
  } else if ('config' in doc) {
    mediaType = MediaType.ociManifest;
  } else {
    fail(what, 'mediaType', 'is missing, and the body is neither an index nor a manifest');
  }
  const out: PushedManifest = {
    mediaType,
    kind: INDEX_TYPES.has(mediaType) ? 'index' : 'manifest',
    blobs: [],
    manifests: [],
  };
  if (out.kind === 'index') {
    if ('layers' in doc || 'config' in doc)
      fail(what, '', `is an index (${mediaType}) with layers or config`);
    if (!Array.isArray(doc.manifests)) fail(what, 'manifests', 'must be an array');
    out.manifests = doc.manifests.map((m, i) => parseDescriptor(m, what, `manifests[${i}]`));
  } else {
    if ('manifests' in doc) fail(what, '', `is an image manifest (${mediaType}) with manifests`);
    const config = parseDescriptor(doc.config, what, 'config');
    if (!Array.isArray(doc.layers)) fail(what, 'layers', 'must be an array');
    const layers = doc.layers.map((l, i) => parseDescriptor(l, what, `layers[${i}]`));
    out.blobs = [config, ...layers];
    out.configMediaType = config.mediaType;
  }
  if (doc.subject !== undefined) out.subject = parseDescriptor(doc.subject, what, 'subject');
  if (doc.artifactType !== undefined) {
    if (typeof doc.artifactType !== 'string') fail(what, 'artifactType', 'must be a string');
    out.artifactType = doc.artifactType;
  }
  const annotations = stringMap(doc.annotations, what, 'annotations');
  if (annotations) out.annotations = annotations;
  return out;
}

/** overlayfs stacks at most this many lower layers (OVL_MAX_STACK); deeper images cannot run. */
export const MAX_LAYERS = 500;

/** The image's layers must line up with the config's diff_ids one for one. */
export function checkLayersMatchConfig(manifest: ImageManifest, config: ImageConfig, what: string): void {
  checkLayerCount(manifest.layers.length, 'the manifest', config, what);
}

/**
 * The same check for a layer list that is not an OCI manifest (a legacy `docker save` entry):
 * `count` layers listed by `listedBy`, at most MAX_LAYERS, as many as the config's diff_ids.
 */
export function checkLayerCount(count: number, listedBy: string, config: ImageConfig, what: string): void {
  if (count > MAX_LAYERS) {
    fail(what, 'layers', `has ${count} layers, more than the ${MAX_LAYERS} overlayfs can stack`);
  }
  if (count !== config.diffIds.length) {
    fail(what, 'rootfs.diff_ids', `has ${config.diffIds.length} entries but ${listedBy} has ${count} layers`);
  }
}

/** ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: Digest[], sha256: (s: string) => Digest): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]!} ${d}`));
  return out;
}

/** The platform of this machine in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'arm',
    ia32: '386',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
  };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

export { MediaType };
