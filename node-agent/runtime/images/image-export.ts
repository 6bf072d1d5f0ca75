/**
 * `save`: images out as one tar that is at once an OCI image layout (oci-layout, index.json,
 * blobs/sha256) and a `docker save` archive (manifest.json, repositories) — the dual format of
 * Docker ≥25, which `docker load`, containerd and skiff's own import all accept. Entries are
 * sorted with fixed times and owners, so the same images always give the same bytes. Written to
 * a temporary file and renamed: a failed save leaves no partial archive.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import {
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  errorMessage,
  isSkiffError,
} from '../../../proto/errors.js';
import type { ContentStore } from '../../../proto/oci/content-store.js';
import { digestHex, type Digest } from '../../../proto/oci/digest.js';
import type { ResolvedImage } from './image-store.js';
import { MediaType } from '../../../proto/oci/media-types.js';
import { familiarRepository, parseReference, repositoryOf } from '../../../proto/oci/reference.js';

const EPOCH = new Date(0);

function familiar(name: string): { repository: string; tag: string } {
  const ref = parseReference(name);
  return { repository: familiarRepository(repositoryOf(ref)), tag: ref.tag ?? 'latest' };
}

export async function exportArchive(
  out: string,
  images: { names: string[]; image: ResolvedImage }[],
  content: ContentStore,
): Promise<void> {
  const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] as unknown[] };
  const dockerManifest: unknown[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const blobs = new Map<Digest, number>();
  for (const { names, image } of images) {
    const manifestSize = (await content.info(image.manifestDigest)).size;
    blobs.set(image.manifestDigest, manifestSize);
    blobs.set(image.manifest.config.digest, image.manifest.config.size);
    for (const l of image.layers) blobs.set(l.digest, l.size);
    const descriptor = {
      mediaType: image.manifest.mediaType,
      digest: image.manifestDigest,
      size: manifestSize,
    };
    if (names.length === 0) index.manifests.push(descriptor);
    for (const name of names) {
      const { repository, tag } = familiar(name);
      index.manifests.push({
        ...descriptor,
        annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': tag },
      });
      (repositories[repository] ??= {})[tag] = digestHex(image.layers.at(-1)!.digest);
    }
    dockerManifest.push({
      Config: `blobs/sha256/${digestHex(image.manifest.config.digest)}`,
      RepoTags: names.map((n) => {
        const { repository, tag } = familiar(n);
        return `${repository}:${tag}`;
      }),
      Layers: image.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
    });
  }

  const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.tmp`);
  const tarball = pack();
  const written = pipeline(tarball, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
  // A file that cannot be created (no such directory) fails this before the entries below are
  // written, and an unhandled rejection ends the process on Node 24; the catch below reports it.
  written.catch(() => undefined);
  try {
    const header = (name: string, size: number, type: 'file' | 'directory' = 'file') => ({
      name,
      size,
      type,
      mode: type === 'directory' ? 0o755 : 0o644,
      mtime: EPOCH,
      uid: 0,
      gid: 0,
    });
    const addBuffer = (name: string, data: Buffer): Promise<void> =>
      new Promise((resolve, reject) =>
        tarball.entry(header(name, data.length), data, (err) => (err ? reject(err) : resolve())),
      );
    await new Promise<void>((resolve, reject) =>
      tarball.entry(header('blobs/', 0, 'directory'), (err) => (err ? reject(err) : resolve())),
    );
    await new Promise<void>((resolve, reject) =>
      tarball.entry(header('blobs/sha256/', 0, 'directory'), (err) => (err ? reject(err) : resolve())),
    );
    for (const digest of [...blobs.keys()].sort()) {
      const size = blobs.get(digest)!;
      const entry = tarball.entry(header(`blobs/sha256/${digestHex(digest)}`, size));
      await pipeline(await content.read(digest), entry);
    }
    await addBuffer('index.json', Buffer.from(JSON.stringify(index)));
    await addBuffer('manifest.json', Buffer.from(JSON.stringify(dockerManifest)));
    await addBuffer('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    await addBuffer('repositories', Buffer.from(JSON.stringify(repositories)));
    tarball.finalize();
    await written;
    await rename(tmp, out);
  } catch (err) {
    tarball.destroy();
    await written.catch(() => undefined);
    await rm(tmp, { force: true });
    if (isSkiffError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC')
      throw new ResourceExhaustedError(`save images to ${out}: the disk is full`, { cause: err });
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'EEXIST') {
      throw new InvalidArgumentError(`save images to ${out}: ${errorMessage(err)}`, 'output', { cause: err });
    }
    throw new InternalError(`save images to ${out}: ${errorMessage(err)}`, { cause: err });
  }
}
