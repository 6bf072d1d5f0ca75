/**
 * RegistryClient — pulls images from and pushes them to OCI / Docker registries (the
 * distribution spec, RUNTIME-NOTES §2). One module for the CLI, the runtime (it is an
 * ImagePuller: `pull(ref, into)`) and the node agent.
 *
 *   RegistryClient (this file: options, one transport, one authenticator, endpoint choices)
 *     ├─ registry-hosts.ts      reference → registry, repository, endpoints, credentials
 *     ├─ registry-session.ts    per repository and rights: endpoint, auth, redirects, errors
 *     │    ├─ registry-auth.ts      WWW-Authenticate, the token flow, basic auth
 *     │    └─ registry-transport.ts HTTP(S), keep-alive, idle timeouts (the only socket code)
 *     ├─ registry-pull.ts       manifest (registry-manifest.ts) → config → layers → name
 *     └─ registry-push.ts       blobs (HEAD, POST, PUT) → manifest
 *   registry-events.ts: what both report as they go (progress bars).
 *
 * Pulled blobs go through the content store's ingest, which verifies size and digest before
 * anything is committed; a resumable store (ResumableIngester) keeps an interrupted blob's bytes
 * for the next pull, which fetches only the rest (HTTP Range).
 */
import { availableParallelism } from 'node:os';
import { BlobFetchWorkers, ThisThreadFetcher } from './blob-fetch-workers.js';
import { hostPlatform, type Descriptor, type Platform } from './manifests.js';
import type { ContentReader } from './content-store.js';
import { RegistryAuthenticator } from './registry-auth.js';
import type { TransferListener } from './registry-events.js';
import {
  locateReference,
  describeLocation,
  type RegistryConfig,
  type RegistryLocation,
} from './registry-hosts.js';
import { fetchManifest, type FetchedManifest } from './registry-manifest.js';
import { pullImage, type PullResult, type PullSink } from './registry-pull.js';
import { pushImage, type PushResult } from './registry-push.js';
import { RegistrySession, type EndpointChoices } from './registry-session.js';
import { HttpTransport } from './registry-transport.js';

export type { PullResult, PullSink, PulledBlob } from './registry-pull.js';
export type { PushResult, PushedBlob, PushSource } from './registry-push.js';
export type { TransferEvent, TransferListener, PlannedBlob, BlobState } from './registry-events.js';
export type {
  RegistryConfig,
  RegistryHostSettings,
  ClusterRegistry,
  RegistryLocation,
} from './registry-hosts.js';
export { locateReference, namesRegistry, isLoopbackHost } from './registry-hosts.js';

export interface RegistryClientOptions {
  /** Credentials per registry, insecure registries, the cluster registry (client config). */
  config?: RegistryConfig;
  /** The platform picked from an index (default: this machine's, linux/amd64 here). */
  platform?: Platform;
  /** Layers moved at once (default 6, as skopeo). */
  concurrency?: number;
  /** Attempts per blob when the network fails (default 5); each continues where the last stopped. */
  attempts?: number;
  /** Pause before the second attempt, doubled for each further one (default 200 ms). */
  retryDelayMs?: number;
  /** Progress of every pull and push. */
  onEvent?: TransferListener;
  /**
   * Worker threads that fetch layers (hashing and writing them) when the target store takes
   * files written there (LocalContentStore does); default: the CPUs less one (the main thread
   * fetches layers too), at most 3; 0: all on the main thread.
   */
  workers?: number;
  /**
   * The main thread fetches layers beside the workers, as one more lane (default true); false
   * sends every layer to a worker.
   */
  mainThreadFetches?: boolean;
  /**
   * Below this many bytes of layers to fetch no worker is started (their start costs more than
   * they save); default 16 MiB.
   */
  workersFromBytes?: number;
}

export interface TransferCallOptions {
  onEvent?: TransferListener;
  signal?: AbortSignal;
}

export class RegistryClient {
  private readonly transport: HttpTransport;
  private readonly auth: RegistryAuthenticator;
  private readonly endpoints: EndpointChoices = new Map();
  private readonly workers: BlobFetchWorkers | undefined;
  private readonly here = new ThisThreadFetcher();
  private readonly options: Required<Omit<RegistryClientOptions, 'onEvent' | 'config'>> &
    Pick<RegistryClientOptions, 'onEvent' | 'config'>;

  constructor(options: RegistryClientOptions = {}) {
    this.options = {
      platform: options.platform ?? hostPlatform(),
      concurrency: Math.max(1, options.concurrency ?? 6),
      attempts: Math.max(1, options.attempts ?? 5),
      retryDelayMs: options.retryDelayMs ?? 200,
      workers: Math.max(0, options.workers ?? Math.min(4, availableParallelism()) - 1),
      mainThreadFetches: options.mainThreadFetches ?? true,
      workersFromBytes: options.workersFromBytes ?? 16 << 20,
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.config ? { config: options.config } : {}),
    };
    this.transport = new HttpTransport({ maxSockets: this.options.concurrency + 4 });
    this.auth = new RegistryAuthenticator(this.transport);
    this.workers = this.options.workers > 0 ? new BlobFetchWorkers(this.options.workers) : undefined;
  }

  /** Where `ref` lives (no I/O): registry, repository, endpoints. */
  locate(ref: string): RegistryLocation {
    return locateReference(ref, this.options.config);
  }

  /**
   * Pulls `ref` into `into` and names it `ref` there (the runtime's ImagePuller). Resolves once
   * the image is complete in the store.
   */
  pull(ref: string, into: PullSink, call: TransferCallOptions = {}): Promise<PullResult> {
    const location = this.locate(ref);
    const onEvent = call.onEvent ?? this.options.onEvent;
    return pullImage(this.session(location, 'pull'), into, {
      platform: this.options.platform,
      concurrency: this.options.concurrency,
      attempts: this.options.attempts,
      retryDelayMs: this.options.retryDelayMs,
      workersFromBytes: this.options.workersFromBytes,
      mainThreadFetches: this.options.mainThreadFetches,
      ...(onEvent ? { onEvent } : {}),
      ...(call.signal ? { signal: call.signal } : {}),
      ...(this.workers ? { workers: this.workers } : {}),
      here: this.here,
    });
  }

  /**
   * Gets ready to pull `ref` while the caller does something else (opens its store): probes the
   * registry, gets a token. Never fails: the pull reports what is wrong. With `startWorker`, one
   * fetch worker boots meanwhile too (~160 million instructions, 50 ms or more of a core), so it
   * is ready when the layers start; for a caller that expects layers to fetch (a pull it was
   * asked for), as an image already present or a small one leaves the worker unused.
   */
  async warm(ref: string, options: { signal?: AbortSignal; startWorker?: boolean } = {}): Promise<void> {
    const { signal } = options;
    if (options.startWorker && this.options.workers > 0) this.workers?.start(1);
    try {
      const location = this.locate(ref);
      await this.session(location, 'pull').warm(signal);
    } catch {
      // the pull meets the same problem and says so
    }
  }

  /** Pushes the image whose manifest is `manifest` (in `content`) as `ref`. */
  push(
    ref: string,
    from: { content: ContentReader; manifest: Descriptor },
    call: TransferCallOptions = {},
  ): Promise<PushResult> {
    const location = this.locate(ref);
    const onEvent = call.onEvent ?? this.options.onEvent;
    return pushImage(this.session(location, 'pull,push'), from, {
      concurrency: this.options.concurrency,
      attempts: this.options.attempts,
      retryDelayMs: this.options.retryDelayMs,
      ...(onEvent ? { onEvent } : {}),
      ...(call.signal ? { signal: call.signal } : {}),
    });
  }

  /** The manifest or index `ref` names on its registry, checked as a pull checks it. */
  fetchManifest(ref: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const location = this.locate(ref);
    return fetchManifest(
      this.session(location, 'pull'),
      location.digest ?? location.tag ?? 'latest',
      `inspect ${describeLocation(location)}`,
      signal ? { signal } : {},
    );
  }

  /** Closes idle connections and the fetch workers. */
  close(): void {
    this.transport.close();
    this.here.close();
    this.workers?.close();
  }

  private session(location: RegistryLocation, actions: 'pull' | 'pull,push'): RegistrySession {
    return new RegistrySession(
      location,
      `repository:${location.repository}:${actions}`,
      this.transport,
      this.auth,
      this.endpoints,
    );
  }
}
