/**
 * Push: an image of a content store to a registry, its manifest last.
 *
 *   manifest from the store (≤ 4 MiB, parsed: config and layers)
 *   config and layers, `concurrency` at a time, each:
 *       HEAD /v2/<name>/blobs/<digest> ─ 200: the registry has it, skip
 *       POST /v2/<name>/blobs/uploads/ ─ 202 Location
 *       PUT <Location>&digest=<digest>  with the blob (one request; the spec's monolithic upload)
 *       ─ 201, its Docker-Content-Digest checked; a failed attempt starts a new upload
 *   PUT /v2/<name>/manifests/<tag|digest> with the manifest's exact bytes and its media type
 *       ─ 201, Docker-Content-Digest must be the manifest's digest
 *
 * The exact bytes stored locally are what is sent, so the registry's manifest digest is the
 * local one (`skopeo inspect` shows the same).
 */
import { Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
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
      results.set(blob.digest, { digest: blob.digest, size: blob.size, existed: sent.existed });
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
): Promise<{ existed: boolean; bytesSent: number }> {
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
    emit({ ...base, state: 'started', bytes: 0 });
    const progress = throttledProgress(blob.size, (bytes) => emit({ ...base, state: 'progress', bytes }));
    let sent = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const started = await session.expect(
          { method: 'POST', path: `v2/${repo}/blobs/uploads/`, action: `${what}: start upload`, ...signal },
          [202, 201],
        );
        started.discard();
        const location = started.headers.location;
        if (!location)
          throw new InvalidArgumentError(`${what}: the registry opened an upload without a Location`);
        const url = new URL(location, started.url);
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
