/**
 * Pull: a reference's image from a registry into a content store, named last.
 *
 *   manifest by tag or digest (registry-manifest.ts: hostile-input checks)
 *     └─ an index? the linux/amd64 entry's manifest, checked against its descriptor
 *   config (≤ 8 MiB) into memory, its digest checked, parsed: its diff_ids must match the
 *   layers and its platform the wanted one, before any layer is fetched
 *   layers, `concurrency` at a time (the config is written meanwhile), each: hold → present?
 *       skip : fetch = GET /v2/<name>/blobs/<digest> into the store's ingest, which hashes every
 *       byte and commits only a blob whose size and digest check out. A connection that fails
 *       (or ends early) is retried with `Range: bytes=<have>-`, so only the rest is fetched;
 *       with a resumable store (content-store.ts ResumableIngester) what a failed pull fetched
 *       is kept, and the next pull asks only for the rest as well. With a store that takes files
 *       written elsewhere (ResumableFileIngester), a layer is fetched by a lane of
 *       blob-fetch-workers.ts (a worker thread, or this thread as one more lane) with
 *       blob-download.ts, its commit here; a registry's challenge there (401, 403) is answered
 *       here and the rest fetched through the session.
 *   manifest into the store, where the blobs came from (blob-sources.ts, for a later push to
 *   mount them), then the name (tag): the image exists only once all of it does.
 *
 * Every blob's digest is held (PullSink.hold) before it is looked for or written, so a garbage
 * collection meanwhile keeps what this pull relies on.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { recordBlobSources } from './blob-sources.js';
import type { ContentIngester, ContentReader } from './content-store.js';
import { isResumableFileIngester, isResumableIngester, type ResumableFileIngester } from './content-store.js';
import {
  FetchStatusError,
  fetchedBy,
  type BlobFetcher,
  type BlobFetchWorkers,
} from './blob-fetch-workers.js';
import { sha256Digest, type Digest } from './digest.js';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  errorMessage,
} from '../errors.js';
import {
  MAX_CONFIG_BYTES,
  MAX_LAYERS,
  checkLayersMatchConfig,
  parseConfig,
  type Descriptor,
  type ImageConfig,
  type Platform,
} from './manifests.js';
import { isTransient, registryError } from './registry-errors.js';
import {
  throttledProgress,
  type BlobRole,
  type PlannedBlob,
  type TransferListener,
} from './registry-events.js';
import { describeLocation } from './registry-hosts.js';
import { descriptorOf, fetchManifest, platformText, selectPlatform } from './registry-manifest.js';
import type { RegistrySession } from './registry-session.js';
import { networkError } from './registry-transport.js';

/** Where a pull puts what it fetched (node-agent/runtime/pod-runtime.ts PullTarget has this shape). */
export interface PullSink {
  content: ContentIngester & ContentReader;
  hold(digest: Digest): Promise<void>;
  tag(name: string, manifest: Descriptor): Promise<void>;
}

export interface PullOptions {
  platform: Platform;
  /** Blobs fetched at once. */
  concurrency: number;
  /** Attempts per blob (the network failing); each continues where the last stopped. */
  attempts: number;
  /** Pause before the second attempt, doubled for each further one. */
  retryDelayMs: number;
  onEvent?: TransferListener;
  signal?: AbortSignal;
  /**
   * Worker threads for layers (blob-fetch-workers.ts), when the store takes files written there;
   * retired once the pull has handed out its last layer.
   */
  workers?: BlobFetchWorkers;
  /** The lane of this thread for layers (blob-fetch-workers.ts ThisThreadFetcher), the same way. */
  here?: BlobFetcher;
  /** The workers start only when the layers to fetch add up to this many bytes. */
  workersFromBytes: number;
  /** This thread fetches layers too, as one lane more than the workers (false: workers only). */
  mainThreadFetches: boolean;
}

export interface PulledBlob {
  digest: Digest;
  size: number;
  role: BlobRole;
  /** Already in the store: nothing fetched. */
  present: boolean;
  /** Bytes fetched from the registry for it by this pull. */
  bytesFetched: number;
  /** Bytes an earlier, interrupted pull had fetched and this one kept. */
  resumedFrom: number;
}

export interface PullResult {
  /** The name recorded (the reference as given). */
  name: string;
  manifest: Descriptor;
  /** The index the manifest was picked from, if the reference named one. */
  index?: Descriptor;
  blobs: PulledBlob[];
  /** Bytes fetched from the registry: blobs, manifests and config. */
  bytesFetched: number;
}

export async function pullImage(
  session: RegistrySession,
  into: PullSink,
  options: PullOptions,
): Promise<PullResult> {
  const location = session.location;
  const name = location.localName;
  const action = `pull ${describeLocation(location)}`;
  const signal = options.signal;
  const emit = options.onEvent ?? (() => undefined);
  const reference = location.digest ?? location.tag ?? 'latest';

  let top = await fetchManifest(session, reference, action, signal ? { signal } : {});
  let bytesFetched = top.bytes.length;
  let index: Descriptor | undefined;
  if (top.index) {
    index = descriptorOf(top);
    const entry = selectPlatform(top.index, options.platform, action);
    top = await fetchManifest(session, entry.digest, action, {
      expected: entry,
      ...(signal ? { signal } : {}),
    });
    bytesFetched += top.bytes.length;
    if (!top.manifest) {
      throw new InvalidArgumentError(
        `${action}: the index entry ${entry.digest} is not an image manifest`,
        'mediaType',
      );
    }
  }
  const manifest = top.manifest!;
  const manifestDescriptor = descriptorOf(top);
  if (manifest.layers.length > MAX_LAYERS) {
    throw new InvalidArgumentError(
      `${action}: the manifest has ${manifest.layers.length} layers, more than the ${MAX_LAYERS} overlayfs can stack`,
      'layers',
    );
  }
  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new InvalidArgumentError(
      `${action}: the config ${manifest.config.digest} is ${manifest.config.size} bytes, over the limit of ${MAX_CONFIG_BYTES}`,
      'config.size',
    );
  }
  const plan: PlannedBlob[] = [
    { ...pick(manifest.config), role: 'config' },
    ...manifest.layers.map((l): PlannedBlob => ({ ...pick(l), role: 'layer' })),
  ];
  emit({
    type: 'resolved',
    direction: 'pull',
    ref: name,
    manifest: top.digest,
    ...(index ? { index: index.digest } : {}),
    blobs: plan,
  });

  // hold every digest before looking for it: a prune meanwhile keeps what is there (asked for
  // at once, so that a sink that can records them in one write)
  const unique = [...new Map(plan.map((b) => [b.digest, b])).values()];
  await Promise.all([...unique.map((b) => into.hold(b.digest)), into.hold(top.digest)]);
  const present = new Set<Digest>();
  await Promise.all(
    unique.map(async (blob) => {
      if (await into.content.has(blob.digest)) present.add(blob.digest);
    }),
  );
  const missing = unique.filter((b) => !present.has(b.digest));
  const missingBytes = missing.reduce((sum, b) => sum + b.size, 0);
  // worker threads pay for themselves on big layers only; they start while the config comes, as
  // many as will get a layer (with this thread as a lane, one layer fewer than are missing)
  const pool = options.workers;
  const workers = missingBytes >= options.workersFromBytes ? pool : undefined;
  const missingLayers = missing.filter((b) => b.role === 'layer').length;
  workers?.start(options.mainThreadFetches ? missingLayers - 1 : missingLayers);
  if (workers !== options.workers) options = { ...options, workers: undefined };
  await into.content.checkSpace(missingBytes, `${action}: ${missing.length} blobs`);

  const results = new Map<Digest, PulledBlob>();
  // this thread is a lane beside the workers: a layer goes to a worker only while the workers
  // have fewer layers each than this thread, so the first layer starts at once (a worker takes
  // ~50 ms of a core to boot) and the work is shared with a thread that would otherwise wait.
  // Counted here when assigned: a worker learns of its job only after some awaits.
  let layersHere = 0;
  let layersOnWorkers = 0;
  const fetchHere = (blob: PlannedBlob): boolean =>
    options.workers === undefined ||
    !isResumableFileIngester(into.content) ||
    (blob.role === 'layer' &&
      options.mainThreadFetches &&
      layerStaysOnThisThread(layersOnWorkers, options.workers.size, layersHere));
  const fetchOne = async (blob: PlannedBlob, poolSignal?: AbortSignal): Promise<void> => {
    if (present.has(blob.digest)) {
      results.set(blob.digest, { ...pickResult(blob), present: true, bytesFetched: 0, resumedFrom: 0 });
      return;
    }
    const here = fetchHere(blob);
    if (here) layersHere++;
    else if (blob.role === 'layer') layersOnWorkers++;
    try {
      const fetched = await fetchBlob(session, into, blob, action, {
        ...options,
        ...(here ? { workers: undefined } : {}),
        ...(poolSignal ? { signal: poolSignal } : {}),
      });
      results.set(blob.digest, { ...pickResult(blob), present: false, ...fetched });
    } finally {
      if (here) layersHere--;
      else if (blob.role === 'layer') layersOnWorkers--;
    }
  };
  for (const blob of unique) {
    const there = present.has(blob.digest);
    emit({
      type: 'blob',
      direction: 'pull',
      digest: blob.digest,
      size: blob.size,
      role: blob.role,
      state: there ? 'exists' : 'waiting',
      bytes: there ? blob.size : 0,
    });
  }

  // the config first: small, fetched into memory and checked before any layer is fetched; it is
  // written to the store alongside the layers
  const configBlob = unique.find((b) => b.role === 'config' && b.digest === manifest.config.digest)!;
  let configBytes: Buffer;
  const jobs: { blob: PlannedBlob; run: (signal: AbortSignal) => Promise<void> }[] = [];
  if (present.has(configBlob.digest)) {
    configBytes = await into.content.readAll(configBlob.digest, MAX_CONFIG_BYTES);
    results.set(configBlob.digest, {
      ...pickResult(configBlob),
      present: true,
      bytesFetched: 0,
      resumedFrom: 0,
    });
  } else {
    const event = {
      type: 'blob' as const,
      direction: 'pull' as const,
      digest: configBlob.digest,
      size: configBlob.size,
      role: configBlob.role,
    };
    emit({ ...event, state: 'started', bytes: 0 });
    configBytes = await fetchSmallBlob(session, configBlob, action, signal);
    const bytes = configBytes;
    jobs.push({
      blob: configBlob,
      run: async () => {
        await into.content.ingest([bytes], { digest: configBlob.digest, size: configBlob.size });
        emit({ ...event, state: 'done', bytes: configBlob.size });
        results.set(configBlob.digest, {
          ...pickResult(configBlob),
          present: false,
          bytesFetched: bytes.length,
          resumedFrom: 0,
        });
      },
    });
  }
  const config = checkConfig(configBytes, manifest.config.digest, options.platform, action);
  checkLayersMatchConfig(manifest, config, `${action}: config ${manifest.config.digest}`);
  for (const blob of unique)
    if (blob !== configBlob) jobs.push({ blob, run: (poolSignal) => fetchOne(blob, poolSignal) });

  try {
    await inPool(jobs, options.concurrency + 1, (job, poolSignal) => job.run(poolSignal), signal);
  } finally {
    // no layer is left to hand out: the workers (used or not) end as soon as they are idle,
    // while the rest of the pull is done (a later pull starts them anew)
    pool?.retire();
  }

  await into.content.ingest([top.bytes], { digest: top.digest, size: top.bytes.length });
  // for a push of these blobs to another repository of this registry: it mounts them from here
  await recordBlobSources(
    into.content,
    unique.map((b) => b.digest),
    location.host,
    location.repository,
  );
  await into.tag(name, manifestDescriptor);
  emit({ type: 'manifest', direction: 'pull', digest: top.digest, size: top.bytes.length, tagged: name });

  const blobs = plan.map((b) => results.get(b.digest)!);
  for (const b of results.values()) bytesFetched += b.bytesFetched;
  const result: PullResult = { name, manifest: manifestDescriptor, blobs, bytesFetched };
  if (index) result.index = index;
  return result;
}

/**
 * Whether the next layer is fetched on this thread rather than a worker, given the layers in
 * flight on each: only while the `workers` (each taking the least busy one's turn) have no fewer
 * layers each than this thread. So this thread takes the first, and then every `workers + 1`th
 * one. Pure.
 */
export function layerStaysOnThisThread(
  layersOnWorkers: number,
  workers: number,
  layersOnThisThread: number,
): boolean {
  return Math.floor(layersOnWorkers / workers) >= layersOnThisThread;
}

function pick(d: Descriptor): Omit<PlannedBlob, 'role'> {
  return { digest: d.digest, size: d.size, mediaType: d.mediaType };
}

function pickResult(b: PlannedBlob): Pick<PulledBlob, 'digest' | 'size' | 'role'> {
  return { digest: b.digest, size: b.size, role: b.role };
}

function checkConfig(bytes: Buffer, digest: Digest, platform: Platform, action: string): ImageConfig {
  const config = parseConfig(bytes, `config ${digest}`);
  if (config.os !== platform.os || config.architecture !== platform.architecture) {
    throw new FailedPreconditionError(
      `${action}: the image is for ${platformText({ os: config.os, architecture: config.architecture })}, this machine runs ${platformText(platform)}`,
    );
  }
  return config;
}

/**
 * Runs `work` on every item, at most `limit` at once. The first failure stops new work, cancels
 * the rest (what they fetched stays for a resume) and is thrown once everything started is over.
 */
export async function inPool<T>(
  items: readonly T[],
  limit: number,
  work: (item: T, signal: AbortSignal) => Promise<void>,
  outer?: AbortSignal,
): Promise<void> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item, controller.signal);
      } catch (err) {
        if (!failure) {
          failure = { err };
          controller.abort(err);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  } finally {
    outer?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.err;
}

/** Fetches one blob into the store; how many bytes came over the wire, and how many were kept. */
async function fetchBlob(
  session: RegistrySession,
  into: PullSink,
  blob: PlannedBlob,
  action: string,
  options: PullOptions,
): Promise<{ bytesFetched: number; resumedFrom: number }> {
  const emit = options.onEvent ?? (() => undefined);
  const base = {
    type: 'blob' as const,
    direction: 'pull' as const,
    digest: blob.digest,
    size: blob.size,
    role: blob.role,
  };
  const progress = throttledProgress(blob.size, (bytes) => emit({ ...base, state: 'progress', bytes }));
  let fetched = 0;
  let started = false;
  const start = (offset: number) => {
    if (started) return;
    started = true;
    emit({ ...base, state: 'started', bytes: offset, ...(offset > 0 ? { resumedFrom: offset } : {}) });
  };
  const source = async (offset: number): Promise<AsyncIterable<Buffer>> => {
    start(offset);
    return blobBytes(session, blob, offset, action, options, (n) => (fetched += n));
  };
  try {
    const content = into.content;
    let resumedFrom: number | undefined;
    const lane = options.workers ?? options.here;
    if (lane && blob.role === 'layer' && isResumableFileIngester(content)) {
      resumedFrom = await fetchByLane(session, content, lane, blob, action, options, {
        start,
        progress,
        retrying: (p) => emit({ ...base, state: 'retrying', ...p }),
        fetched: (n) => (fetched += n),
      });
    }
    if (resumedFrom === undefined) {
      if (isResumableIngester(content)) {
        const result = await content.ingestResumable(source, {
          digest: blob.digest,
          size: blob.size,
          onProgress: progress,
        });
        resumedFrom = result.resumedFrom;
      } else {
        await content.ingest(await source(0), { digest: blob.digest, size: blob.size, onProgress: progress });
        resumedFrom = 0;
      }
    }
    emit({ ...base, state: 'done', bytes: blob.size });
    return { bytesFetched: fetched, resumedFrom };
  } catch (err) {
    emit({ ...base, state: 'failed', bytes: 0, error: errorMessage(err) });
    throw err;
  }
}

/**
 * A layer fetched by a lane (a worker thread or this thread's) straight into the store's ingest
 * file; the bytes it kept from an interrupted pull, or undefined when the registry wants a
 * challenge answered (an expired token, a token per blob): the caller then fetches the rest
 * through the session, which answers it, resuming from what the lane wrote.
 */
async function fetchByLane(
  session: RegistrySession,
  content: ResumableFileIngester,
  lane: BlobFetcher,
  blob: PlannedBlob,
  action: string,
  options: PullOptions,
  report: {
    start: (offset: number) => void;
    progress: (bytes: number) => void;
    retrying: (p: { bytes: number; attempt?: number; error?: string }) => void;
    fetched: (bytes: number) => void;
  },
): Promise<number | undefined> {
  const what = `${action}: blob ${blob.digest}`;
  const request = await session.prepare(
    `v2/${session.location.repository}/blobs/${blob.digest}`,
    options.signal,
  );
  const write = async ({ path, kept }: { path: string; kept: number }): Promise<Digest> => {
    report.start(kept);
    try {
      const r = await lane.fetch(
        {
          url: request.url.href,
          headers: request.headers,
          insecureTls: session.location.insecureTls,
          allowHttp: session.location.endpoints.some((e) => e.protocol === 'http:'),
          path,
          kept,
          size: blob.size,
          attempts: options.attempts,
          retryDelayMs: options.retryDelayMs,
          idleTimeoutMs: 60_000,
        },
        (p) => {
          if (p.type === 'progress') report.progress(p.bytes);
          else
            report.retrying({
              bytes: p.bytes,
              ...(p.attempt !== undefined ? { attempt: p.attempt } : {}),
              ...(p.error !== undefined ? { error: p.error } : {}),
            });
        },
        options.signal,
      );
      report.fetched(r.fetched);
      return r.digest;
    } catch (err) {
      report.fetched(fetchedBy(err));
      if (err instanceof FetchStatusError) {
        throw registryError(what, session.location.displayName, err.status, err.headers, err.body);
      }
      throw err;
    }
  };
  try {
    return (await content.ingestResumableFile(write, { digest: blob.digest, size: blob.size })).resumedFrom;
  } catch (err) {
    if (err instanceof UnauthenticatedError || err instanceof PermissionDeniedError) return undefined;
    throw err;
  }
}

/**
 * The bytes of `blob` from `start` on, reconnecting with a Range request when the connection
 * fails or ends early (up to `attempts` times in a row without progress). A registry that
 * ignores Range answers 200 with the whole blob: what is already there is skipped.
 */
async function* blobBytes(
  session: RegistrySession,
  blob: PlannedBlob,
  start: number,
  action: string,
  options: PullOptions,
  counted: (bytes: number) => void,
): AsyncGenerator<Buffer> {
  const emit = options.onEvent ?? (() => undefined);
  const what = `${action}: blob ${blob.digest}`;
  let offset = start;
  let failures = 0;
  while (offset < blob.size) {
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    let res;
    const before = offset;
    try {
      res = await session.send({
        method: 'GET',
        path: `v2/${session.location.repository}/blobs/${blob.digest}`,
        headers,
        action: what,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      let skip = 0;
      if (res.status === 206 && offset > 0) {
        const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
        if (!range || Number(range[1]) !== offset) {
          throw new InvalidArgumentError(
            `${what}: asked for bytes from ${offset}, got Content-Range ${JSON.stringify(res.headers['content-range'] ?? '')}`,
            'range',
          );
        }
      } else if (res.status === 200) {
        skip = offset;
        const length = Number(res.headers['content-length']);
        if (Number.isFinite(length) && res.headers['content-length'] !== undefined && length !== blob.size) {
          throw new InvalidArgumentError(
            `${what}: the registry announces ${length} bytes, the manifest says ${blob.size}`,
            'size',
          );
        }
      } else {
        throw await session.errorOf(what, res);
      }
      try {
        for await (const raw of res.body) {
          let chunk = raw as Buffer;
          counted(chunk.length);
          if (skip > 0) {
            if (chunk.length <= skip) {
              skip -= chunk.length;
              continue;
            }
            chunk = chunk.subarray(skip);
            skip = 0;
          }
          offset += chunk.length;
          yield chunk;
        }
      } catch (err) {
        throw networkError(`GET ${blob.digest}`, res.url, err);
      }
      if (offset < blob.size) {
        throw new UnavailableError(
          `${what}: the registry ended the blob after ${offset} of ${blob.size} bytes`,
        );
      }
    } catch (err) {
      res?.discard();
      if (offset > before) failures = 0;
      failures++;
      if (!isTransient(err) || failures >= options.attempts || options.signal?.aborted) throw err;
      emit({
        type: 'blob',
        direction: 'pull',
        digest: blob.digest,
        size: blob.size,
        role: blob.role,
        state: 'retrying',
        bytes: offset,
        attempt: failures + 1,
        error: errorMessage(err),
      });
      await sleep(
        options.retryDelayMs * 2 ** (failures - 1),
        undefined,
        options.signal ? { signal: options.signal } : {},
      );
    }
  }
}

/** A small blob (the config) read whole into memory; its size and digest checked here. */
async function fetchSmallBlob(
  session: RegistrySession,
  blob: PlannedBlob,
  action: string,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const what = `${action}: blob ${blob.digest}`;
  const res = await session.expect(
    {
      method: 'GET',
      path: `v2/${session.location.repository}/blobs/${blob.digest}`,
      action: what,
      ...(signal ? { signal } : {}),
    },
    [200],
  );
  const bytes = await res.read(Math.min(blob.size, MAX_CONFIG_BYTES), what);
  if (bytes.length !== blob.size) {
    throw new InvalidArgumentError(
      `${what}: got ${bytes.length} bytes, the manifest says ${blob.size}`,
      'size',
    );
  }
  const actual = sha256Digest(bytes);
  if (actual !== blob.digest) {
    throw new InvalidArgumentError(
      `${what}: content does not match its digest (expected ${blob.digest}, actual ${actual})`,
      'digest',
    );
  }
  return bytes;
}
