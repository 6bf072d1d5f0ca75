/**
 * Push: an image of a content store to a registry, its manifest last.
 *
 *   manifest from the store (≤ 4 MiB, parsed: config and layers)
 *   config and layers, `concurrency` at a time, each:
 *       HEAD /v2/<name>/blobs/<digest> ─ 200: the registry has it, skip
 *       known in another repository of this registry (blob-sources.ts)?
 *         POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo> ─ 201: mounted, nothing sent;
 *         202: an upload as below, at that Location
 *       POST /v2/<name>/blobs/uploads/ ─ 202 Location
 *       PUT <Location>&digest=<digest>  with the blob (one request; the spec's monolithic upload)
 *       ─ 201, its Docker-Content-Digest checked; a failed attempt starts a new upload
 *   PUT /v2/<name>/manifests/<tag|digest> with the manifest's exact bytes and its media type
 *       ─ 201, Docker-Content-Digest must be the manifest's digest
 *
 * The exact bytes stored locally are what is sent, so the registry's manifest digest is the
 * local one (`skopeo inspect` shows the same). Once the manifest is in, every blob is recorded as
 * held by this repository (blob-sources.ts), for a later push to another repository to mount.
 */
import { Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { blobSources, recordBlobSources } from './blob-sources.js';
import type { ContentReader } from './content-store.js';
import type { Digest } from './digest.js';
import { sha256Digest } from './digest.js';
import { InvalidArgumentError, errorMessage } from '../errors.js';
import { MAX_MANIFEST_BYTES, parseIndex, parseManifest, type Descriptor } from './manifests.js';
import { INDEX_TYPES } from './media-types.js';
import { isTransient } from './registry-errors.js';
import { throttledProgress, type PlannedBlob, type TransferListener } from './registry-events.js';
import { describeLocation } from './registry-hosts.js';
import { inPool } from './registry-pull.js';
import type { RegistrySession } from './registry-session.js';
import type { TransportResponse } from './registry-transport.js';

/** What a push reads: the local store and the manifest to push. */
export interface PushSource {
  content: ContentReader;
  manifest: Descriptor;
}

export interface PushOptions {
  concurrency: number;
  attempts: number;
  retryDelayMs: number;
  onEvent?: TransferListener;
  signal?: AbortSignal;
}

export interface PushedBlob {
  digest: Digest;
  size: number;
  /** The registry had it already: nothing sent. */
  existed: boolean;
  /** The registry mounted it from this repository of its own: nothing sent. */
  mountedFrom?: string;
}

export interface PushResult {
  /** `host/repo:tag` as pushed. */
  ref: string;
  manifest: Descriptor;
  blobs: PushedBlob[];
  bytesSent: number;
}

export async function pushImage(
  session: RegistrySession,
  from: PushSource,
  options: PushOptions,
): Promise<PushResult> {
  const location = session.location;
  const action = `push ${describeLocation(location)}`;
  const emit = options.onEvent ?? (() => undefined);
  const bytes = await from.content.readAll(from.manifest.digest, MAX_MANIFEST_BYTES);
  if (sha256Digest(bytes) !== from.manifest.digest) {
    throw new InvalidArgumentError(
      `${action}: the local manifest ${from.manifest.digest} does not match its digest`,
    );
  }
  if (INDEX_TYPES.has(from.manifest.mediaType)) {
    parseIndex(bytes, `manifest ${from.manifest.digest}`, from.manifest.mediaType);
    throw new InvalidArgumentError(
      `${action}: pushing an image index is not supported; push a platform's image`,
    );
  }
  const manifest = parseManifest(bytes, `manifest ${from.manifest.digest}`, from.manifest.mediaType);
  const plan: PlannedBlob[] = [
    {
      digest: manifest.config.digest,
      size: manifest.config.size,
      mediaType: manifest.config.mediaType,
      role: 'config',
    },
    ...manifest.layers.map((l): PlannedBlob => ({
      digest: l.digest,
      size: l.size,
      mediaType: l.mediaType,
      role: 'layer',
    })),
  ];
  const unique = [...new Map(plan.map((b) => [b.digest, b])).values()];
  emit({
    type: 'resolved',
    direction: 'push',
    ref: location.localName,
    manifest: from.manifest.digest,
    blobs: plan,
  });
  for (const b of unique) {
    emit({
      type: 'blob',
      direction: 'push',
      digest: b.digest,
      size: b.size,
      role: b.role,
      state: 'waiting',
      bytes: 0,
    });
  }

  const results = new Map<Digest, PushedBlob>();
  let bytesSent = 0;
  await inPool(
    unique,
    options.concurrency,
    async (blob, signal) => {
      const sent = await pushBlob(session, from.content, blob, action, { ...options, signal });
      bytesSent += sent.bytesSent;
      results.set(blob.digest, {
        digest: blob.digest,
        size: blob.size,
        existed: sent.existed,
        ...(sent.mountedFrom !== undefined ? { mountedFrom: sent.mountedFrom } : {}),
      });
    },
    options.signal,
  );

  const reference = location.tag ?? location.digest ?? 'latest';
  if (location.digest && location.digest !== from.manifest.digest) {
    throw new InvalidArgumentError(
      `${action}: the reference names digest ${location.digest}, the image's manifest is ${from.manifest.digest}`,
    );
  }
  const res = await session.expect(
    {
      method: 'PUT',
      path: `v2/${location.repository}/manifests/${reference}`,
      headers: { 'content-type': from.manifest.mediaType },
      body: () => bytes,
      action: `${action}: manifest`,
      ...(options.signal ? { signal: options.signal } : {}),
    },
    [200, 201, 202],
  );
  res.discard();
  const claimed = res.headers['docker-content-digest'];
  if (typeof claimed === 'string' && claimed.startsWith('sha256:') && claimed !== from.manifest.digest) {
    throw new InvalidArgumentError(
      `${action}: the registry stored the manifest as ${claimed}, not ${from.manifest.digest} (it changed the bytes)`,
    );
  }
  bytesSent += bytes.length;
  await recordBlobSources(
    from.content,
    unique.map((b) => b.digest),
    location.host,
    location.repository,
  );
  emit({
    type: 'manifest',
    direction: 'push',
    digest: from.manifest.digest,
    size: bytes.length,
    tagged: reference,
  });
  return {
    ref: describeLocation(location),
    manifest: { mediaType: from.manifest.mediaType, digest: from.manifest.digest, size: bytes.length },
    blobs: plan.map((b) => results.get(b.digest)!),
    bytesSent,
  };
}

async function pushBlob(
  session: RegistrySession,
  content: ContentReader,
  blob: PlannedBlob,
  action: string,
  options: PushOptions,
): Promise<{ existed: boolean; bytesSent: number; mountedFrom?: string }> {
  const emit = options.onEvent ?? (() => undefined);
  const base = {
    type: 'blob' as const,
    direction: 'push' as const,
    digest: blob.digest,
    size: blob.size,
    role: blob.role,
  };
  const what = `${action}: blob ${blob.digest}`;
  const repo = session.location.repository;
  const signal = options.signal ? { signal: options.signal } : {};
  try {
    const head = await session.send({
      method: 'HEAD',
      path: `v2/${repo}/blobs/${blob.digest}`,
      action: what,
      ...signal,
    });
    head.discard();
    if (head.status === 200) {
      emit({ ...base, state: 'exists', bytes: blob.size });
      return { existed: true, bytesSent: 0 };
    }
    if (head.status !== 404) throw await session.errorOf(what, head);
    const mount = await tryMount(session, content, blob, what, options.signal);
    if (mount.mountedFrom !== undefined) {
      emit({ ...base, state: 'exists', bytes: blob.size, mountedFrom: mount.mountedFrom });
      return { existed: false, bytesSent: 0, mountedFrom: mount.mountedFrom };
    }
    let openedUpload = mount.upload;
    emit({ ...base, state: 'started', bytes: 0 });
    const progress = throttledProgress(blob.size, (bytes) => emit({ ...base, state: 'progress', bytes }));
    let sent = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        let url = openedUpload;
        openedUpload = undefined; // a failed attempt starts a new upload
        if (!url) {
          const started = await session.expect(
            { method: 'POST', path: `v2/${repo}/blobs/uploads/`, action: `${what}: start upload`, ...signal },
            [202, 201],
          );
          started.discard();
          url = uploadLocation(started, what);
        }
        url.searchParams.set('digest', blob.digest);
        let counted = 0;
        const done = await session.expect(
          {
            method: 'PUT',
            url,
            headers: { 'content-type': 'application/octet-stream' },
            body: async () => {
              counted = 0;
              // counted as the request takes it (a 'data' listener on the file would start it
              // flowing before the request is there to take it)
              const counter = new Transform({
                transform(chunk: Buffer, _encoding, done) {
                  counted += chunk.length;
                  progress(counted);
                  done(null, chunk);
                },
              });
              const file = await content.read(blob.digest);
              file.on('error', (err) => counter.destroy(err));
              return { length: blob.size, stream: file.pipe(counter) };
            },
            action: `${what}: upload`,
            ...signal,
          },
          [201, 204],
        );
        done.discard();
        sent += counted;
        const claimed = done.headers['docker-content-digest'];
        if (typeof claimed === 'string' && claimed.startsWith('sha256:') && claimed !== blob.digest) {
          throw new InvalidArgumentError(`${what}: the registry stored it as ${claimed}`);
        }
        emit({ ...base, state: 'done', bytes: blob.size });
        return { existed: false, bytesSent: sent };
      } catch (err) {
        if (!isTransient(err) || attempt >= options.attempts || options.signal?.aborted) throw err;
        emit({ ...base, state: 'retrying', bytes: 0, attempt: attempt + 1, error: errorMessage(err) });
        await sleep(options.retryDelayMs * 2 ** (attempt - 1), undefined, signal);
      }
    }
  } catch (err) {
    emit({ ...base, state: 'failed', bytes: 0, error: errorMessage(err) });
    throw err;
  }
}

/** Where the registry says to send an upload's bytes (its Location, relative to the request). */
function uploadLocation(res: Pick<TransportResponse, 'headers' | 'url'>, what: string): URL {
  const location = res.headers.location;
  if (typeof location !== 'string' || location === '')
    throw new InvalidArgumentError(`${what}: the registry opened an upload without a Location`);
  return new URL(location, res.url);
}

/**
 * Asks the registry to mount the blob from the newest other repository of its own the blob is
 * known in (blob-sources.ts). Mounted: nothing to send. A 202 is the spec's "upload instead", at
 * the Location it gives. Anything else (the registry refuses mounts, the token does not reach
 * the other repository) is not an error of the push: the blob is uploaded as usual.
 */
async function tryMount(
  session: RegistrySession,
  content: ContentReader,
  blob: PlannedBlob,
  what: string,
  signal: AbortSignal | undefined,
): Promise<{ mountedFrom?: string; upload?: URL }> {
  const { host, repository } = session.location;
  const labels = (await content.info(blob.digest).catch(() => undefined))?.labels ?? {};
  const from = blobSources(labels, host)
    .filter((r) => r !== repository)
    .at(-1);
  if (from === undefined) return {};
  let res;
  try {
    res = await session.send({
      method: 'POST',
      path: `v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`,
      action: `${what}: mount from ${from}`,
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    return {};
  }
  res.discard();
  if (res.status === 201) {
    const claimed = res.headers['docker-content-digest'];
    if (typeof claimed === 'string' && claimed.startsWith('sha256:') && claimed !== blob.digest) {
      throw new InvalidArgumentError(`${what}: the registry mounted it as ${claimed}`);
    }
    return { mountedFrom: from };
  }
  if (res.status === 202 && typeof res.headers.location === 'string')
    return { upload: uploadLocation(res, what) };
  return {};
}
