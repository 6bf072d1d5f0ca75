/**
 * The image registry the control plane serves under /v2/ on its HTTP port: storage on disk
 * (storage.ts, uploads.ts), the HTTP handler (http-handler.ts), the sweeper that removes
 * abandoned uploads, and garbage collection (gc.ts) for an admin operation to call.
 *
 *   const registry = await openRegistry({ dir, authenticator, log });
 *   http.route('/v2/', registry.handler);
 *   …
 *   await registry.close();
 */
import { Counter, type Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../../proto/support/logger.js';
import { errorMessage } from '../../proto/errors.js';
import type { RouteHandler } from '../http/server.js';
import type { RegistryAuthenticator } from './auth.js';
import { collectGarbage, type GarbageCollectionOptions, type GarbageCollectionResult } from './gc.js';
import { createRegistryHandler, type RegistryMetrics } from './http-handler.js';
import { RegistryStorage, type RegistryStorageOptions } from './storage.js';
import { UploadSessions } from './uploads.js';

export interface RegistryOptions extends RegistryStorageOptions {
  /** The registry directory; several control planes may share one. */
  dir: string;
  authenticator: RegistryAuthenticator;
  log: Logger;
  /** Uploads untouched this long are removed; default one hour. */
  uploadExpiryMs?: number;
  /** A request holding an upload that wrote nothing this long is taken for dead; default 10 minutes. */
  uploadClaimStaleMs?: number;
  /** How often abandoned uploads are looked for; default 5 minutes (0: never, for tests). */
  sweepIntervalMs?: number;
  /** Where the registry's request metrics are registered, if anywhere. */
  metrics?: MetricsRegistry;
  /** Longest page of tags or repositories (http-handler.ts MAX_PAGE). */
  maxPage?: number;
}

export interface ImageRegistry {
  storage: RegistryStorage;
  uploads: UploadSessions;
  /** Serves /v2/ (mount it for both `/v2` and `/v2/`). */
  handler: RouteHandler;
  /** Deletes blobs no manifest references (see gc.ts). */
  collectGarbage(options?: Omit<GarbageCollectionOptions, 'log'>): Promise<GarbageCollectionResult>;
  /** Stops the sweeper. */
  close(): Promise<void>;
}

function registryMetrics(registry: MetricsRegistry): RegistryMetrics {
  return {
    requests: new Counter({
      name: 'skiff_registry_requests_total',
      help: 'Registry requests by method, endpoint and status code',
      labelNames: ['method', 'route', 'code'] as const,
      registers: [registry],
    }),
    blobBytesServed: new Counter({
      name: 'skiff_registry_blob_bytes_served_total',
      help: 'Blob bytes the registry has sent',
      registers: [registry],
    }),
  };
}

export async function openRegistry(options: RegistryOptions): Promise<ImageRegistry> {
  const storage = await RegistryStorage.open(options.dir, options);
  const uploads = new UploadSessions({
    dir: storage.uploadsDir,
    content: storage.content,
    maxBlobBytes: storage.maxBlobBytes,
    ...(options.uploadExpiryMs !== undefined ? { expireMs: options.uploadExpiryMs } : {}),
    ...(options.uploadClaimStaleMs !== undefined ? { staleClaimMs: options.uploadClaimStaleMs } : {}),
  });
  const handler = createRegistryHandler({
    storage,
    uploads,
    authenticator: options.authenticator,
    log: options.log,
    ...(options.metrics ? { metrics: registryMetrics(options.metrics) } : {}),
    ...(options.maxPage !== undefined ? { maxPage: options.maxPage } : {}),
  });
  const sweep = async (): Promise<void> => {
    try {
      const removed = await uploads.sweep();
      if (removed > 0) options.log.info({ removed }, 'abandoned registry uploads removed');
    } catch (err) {
      options.log.warn({ err: errorMessage(err) }, 'sweep registry uploads failed');
    }
  };
  const interval = options.sweepIntervalMs ?? 5 * 60 * 1000;
  let timer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;
  const sweepOnce = (): void => {
    sweeping ??= sweep().finally(() => (sweeping = undefined));
  };
  if (interval > 0) {
    sweepOnce();
    timer = setInterval(sweepOnce, interval);
    timer.unref();
  }
  options.log.info({ dir: options.dir }, 'registry ready');
  return {
    storage,
    uploads,
    handler,
    collectGarbage: (gc = {}) => collectGarbage(storage, { ...gc, log: options.log }),
    async close() {
      clearInterval(timer);
      await sweeping;
    },
  };
}
