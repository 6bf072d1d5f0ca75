/**
 * The registry's HTTP face: one RouteHandler for everything under /v2/ on the control plane's
 * HTTP port (controlplane/http/server.ts). Per request, in this order:
 *
 *   credentials   Bearer <token> or Basic <any>:<token> → the API's Authenticator → 401 otherwise
 *   target        routes.ts: endpoint and names from the raw path (dot segments refused)
 *   authorize     pull for every principal, push and delete for edit and admin → 403 otherwise
 *   endpoint      below; storage.ts and uploads.ts do the work
 *   errors        errors.ts: the spec's JSON body; internals logged, never sent
 *
 * Bodies are streams: blobs and chunks go to disk as they arrive (never buffered whole), only
 * manifests are read into memory, and those are bounded (4 MiB, 413 beyond). A refusal sent
 * before a request's body was read closes the connection instead of reading the rest.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Counter } from 'prom-client';
import { InvalidArgumentError, isSkiffError } from '../../proto/errors.js';
import { sha256Digest, type Digest } from '../../proto/oci/digest.js';
import { MAX_MANIFEST_BYTES, parsePushedManifest, type PushedManifest } from '../../proto/oci/manifests.js';
import { INDEX_TYPES, MediaType } from '../../proto/oci/media-types.js';
import type { Logger } from '../../proto/support/logger.js';
import type { RouteHandler } from '../http/server.js';
import { acceptedTypes, isAccepted, pickFromIndex, wantsManifestOnly } from './accept.js';
import {
  actionOf,
  authorizeRegistry,
  bearerHeaderOf,
  unauthorized,
  type RegistryAuthenticator,
} from './auth.js';
import { RegistryError, errorResponse } from './errors.js';
import { parseContentLength, parseContentRange, parseRangeHeader, type ByteRange } from './http-range.js';
import { checkDigest, checkTag, isName, isUploadId, parseManifestReference } from './names.js';
import { parseTarget, type Route, type Target } from './routes.js';
import { ClientGoneError, sendFileRange } from './send-file.js';
import type { ManifestRecord, RegistryStorage } from './storage.js';
import { rangeHeader, type Chunk, type UploadSessions } from './uploads.js';

export interface RegistryMetrics {
  /** Requests by method, endpoint and status code. */
  requests: Counter<'method' | 'route' | 'code'>;
  /** Blob bytes sent (as the responses declared them). */
  blobBytesServed: Counter;
}

export interface RegistryHandlerOptions {
  storage: RegistryStorage;
  uploads: UploadSessions;
  authenticator: RegistryAuthenticator;
  log: Logger;
  /** Manifests larger than this are refused (413); default 4 MiB. */
  maxManifestBytes?: number;
  /** Longest page of tags or repositories; a larger `n`, or none, gets this many and a Link. Default 10,000. */
  maxPage?: number;
  metrics?: RegistryMetrics;
}

/** A page of a list is at most this long by default (`n` larger is cut to it, with a Link to the rest). */
export const MAX_PAGE = 10_000;
/** `?tag=` values one manifest PUT may carry. */
const MAX_TAGS_PER_PUT = 64;

type Headers = Record<string, string | number | string[]>;

/**
 * The request body as chunks. Leaving the loop early (a refusal half-way) must not destroy the
 * request, which would reset the connection before the refusal is sent.
 */
function bodyOf(req: IncomingMessage): AsyncIterable<Buffer> {
  return req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
}

/** Unread request bytes read and dropped before a refusal, at most; beyond, the connection closes. */
const DRAIN_BYTES = 16 << 20;
const UNAUTHENTICATED_DRAIN_BYTES = 64 << 10;
const DRAIN_MS = 5000;

/**
 * Reads and drops what is left of a refused request's body, so the refusal can be read by the
 * client (closing a socket with unread bytes resets it, and the response can be lost with it).
 * Resolves false when the rest is over `limit` or slower than DRAIN_MS: then the connection
 * is closed after the response instead.
 */
function drain(req: IncomingMessage, limit: number): Promise<boolean> {
  if (req.readableEnded) return Promise.resolve(true);
  if (req.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    let seen = 0;
    const finish = (drained: boolean): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (!drained) req.pause();
      resolve(drained);
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > limit) finish(false);
    };
    const onEnd = (): void => finish(true);
    const onError = (): void => finish(false);
    const onClose = (): void => finish(req.readableEnded);
    const timer = setTimeout(() => finish(false), DRAIN_MS);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
    req.resume();
  });
}

async function readBounded(req: IncomingMessage, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of bodyOf(req)) {
    total += chunk.length;
    if (total > max) {
      throw new RegistryError('SIZE_INVALID', `${what}: more than the limit of ${max} bytes`, {
        status: 413,
        detail: { limit: max },
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

function contentLength(req: IncomingMessage): number | undefined {
  const length = parseContentLength(req.headers['content-length']);
  if (length === 'invalid') throw new RegistryError('SIZE_INVALID', 'Content-Length is not a byte count');
  return length;
}

function chunkOf(req: IncomingMessage): Chunk {
  const range = parseContentRange(req.headers['content-range']);
  if (range === 'invalid') {
    throw new RegistryError(
      'BLOB_UPLOAD_INVALID',
      `Content-Range ${JSON.stringify(String(req.headers['content-range']).slice(0, 80))} is not <first>-<last>`,
      { status: 416 },
    );
  }
  const length = contentLength(req);
  return { ...(range ? { range } : {}), ...(length !== undefined ? { length } : {}) };
}

/** A page of a sorted list: `n` items after `last`, and the last item when more follow. */
function page(
  all: string[],
  query: URLSearchParams,
  checkLast: (v: string) => void,
  maxPage: number,
): { items: string[]; n: number; next?: string } {
  const rawN = query.get('n');
  let n = maxPage;
  if (rawN !== null) {
    if (!/^\d{1,9}$/.test(rawN)) {
      throw new RegistryError('UNSUPPORTED', `n=${JSON.stringify(rawN.slice(0, 20))} is not a count`);
    }
    n = Math.min(Number(rawN), maxPage);
  }
  const last = query.get('last');
  if (last !== null) checkLast(last);
  const after = last === null ? all : all.filter((item) => item > last);
  const items = after.slice(0, n);
  return { items, n, ...(n > 0 && after.length > n ? { next: items[n - 1]! } : {}) };
}

function isForeign(descriptor: { mediaType: string; urls?: string[] }): boolean {
  return (
    (descriptor.urls?.length ?? 0) > 0 &&
    (descriptor.mediaType.includes('nondistributable') || descriptor.mediaType.includes('foreign'))
  );
}

function describe(route: Route): string {
  switch (route.kind) {
    case 'base':
      return 'registry';
    case 'catalog':
      return 'the catalog';
    case 'tags':
      return `tags of ${route.name}`;
    case 'manifest':
      return `manifest ${route.name}:${route.reference.slice(0, 80)}`;
    case 'blob':
      return `blob ${route.digest.slice(0, 80)} of ${route.name}`;
    case 'uploads':
    case 'upload':
      return `blob upload to ${route.name}`;
    case 'referrers':
      return `referrers of ${route.digest.slice(0, 80)} in ${route.name}`;
  }
}

function methodNotAllowed(method: string | undefined, allowed: string[]): RegistryError {
  return new RegistryError('UNSUPPORTED', `method ${String(method).slice(0, 20)} is not allowed here`, {
    status: 405,
    headers: { Allow: allowed.join(', ') },
  });
}

export function createRegistryHandler(options: RegistryHandlerOptions): RouteHandler {
  const { storage, uploads, authenticator, log, metrics } = options;
  const maxManifestBytes = options.maxManifestBytes ?? MAX_MANIFEST_BYTES;
  const maxPage = options.maxPage ?? MAX_PAGE;

  async function authenticate(req: IncomingMessage) {
    const header = req.headers.authorization;
    const bearer = bearerHeaderOf(header);
    if (bearer === undefined) {
      throw unauthorized(
        header === undefined
          ? 'authentication required: send "Authorization: Bearer <token>", or Basic credentials with the token as the password'
          : 'the Authorization header is neither "Bearer <token>" nor Basic credentials',
      );
    }
    try {
      return await authenticator.authenticate(bearer);
    } catch (err) {
      if (isSkiffError(err) && err.code === 'Unauthenticated') {
        throw unauthorized(
          'the token is not valid; use a token of this cluster (the admin token is in <state-dir>/admin-token)',
        );
      }
      throw err;
    }
  }

  function sendJson(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    value: unknown,
    headers: Headers = {},
  ) {
    const body = JSON.stringify(value);
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      ...headers,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function sendEmpty(res: ServerResponse, status: number, headers: Headers): void {
    res.writeHead(status, { 'Content-Length': 0, ...headers });
    res.end();
  }

  // ── blobs ───────────────────────────────────────────────────────────────────────────────────

  async function getBlob(req: IncomingMessage, res: ServerResponse, name: string, digest: Digest) {
    const { handle, size } = await storage.openBlob(name, digest);
    try {
      const range = parseRangeHeader(req.headers.range, size);
      if (range.kind === 'unsatisfiable') {
        throw new RegistryError(
          'SIZE_INVALID',
          `range ${String(req.headers.range).slice(0, 80)} is not satisfiable: blob ${digest} has ${size} bytes`,
          { status: 416, headers: { 'Content-Range': `bytes */${size}` } },
        );
      }
      const part: ByteRange | undefined = range.kind === 'partial' ? range.range : undefined;
      const length = part ? part.end - part.start + 1 : size;
      res.writeHead(part ? 206 : 200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': length,
        'Docker-Content-Digest': digest,
        ETag: `"${digest}"`,
        'Accept-Ranges': 'bytes',
        'Cache-Control': 'max-age=31536000',
        ...(part ? { 'Content-Range': `bytes ${part.start}-${part.end}/${size}` } : {}),
      });
      if (req.method === 'HEAD' || length === 0) {
        // a pusher that finds the blob here will not upload it: its GC grace starts over (gc.ts)
        if (req.method === 'HEAD') await storage.content.touch(digest);
        res.end();
        return;
      }
      metrics?.blobBytesServed.inc(length);
      try {
        await sendFileRange(handle, part?.start ?? 0, length, res);
      } catch (err) {
        // the client went away mid-blob: nothing to answer
        if (err instanceof ClientGoneError) return;
        throw err;
      }
    } finally {
      await handle.close();
    }
  }

  async function deleteBlob(res: ServerResponse, name: string, digest: Digest) {
    if (!(await storage.unlinkBlob(name, digest))) {
      throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${name}`, {
        detail: { digest },
      });
    }
    sendEmpty(res, 202, { 'Docker-Content-Digest': digest });
  }

  function blobCreated(res: ServerResponse, name: string, digest: Digest) {
    sendEmpty(res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
  }

  // ── uploads ─────────────────────────────────────────────────────────────────────────────────

  async function startUpload(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    query: URLSearchParams,
  ) {
    const mount = query.get('mount');
    const from = query.get('from');
    const digestParam = query.get('digest');
    if (mount !== null) {
      const digest = checkDigest(mount);
      if (from !== null && isName(from) && (await storage.mountBlob(name, from, digest))) {
        blobCreated(res, name, digest);
        return;
      }
      // not mountable: an upload session instead (the spec's 202), below
    } else if (digestParam !== null) {
      const digest = checkDigest(digestParam);
      const size = contentLength(req);
      await storage.ingestBlob(name, bodyOf(req), {
        digest,
        ...(size !== undefined ? { size } : {}),
      });
      blobCreated(res, name, digest);
      return;
    }
    if ((contentLength(req) ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined) {
      throw new RegistryError(
        'BLOB_UPLOAD_INVALID',
        'a POST that starts an upload takes no body; send the blob with ?digest=, or PATCH it to the upload',
      );
    }
    const id = await uploads.start(name);
    sendEmpty(res, 202, {
      Location: `/v2/${name}/blobs/uploads/${id}`,
      Range: '0-0',
      'Docker-Upload-UUID': id,
    });
  }

  async function upload(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    id: string,
    query: URLSearchParams,
  ) {
    if (!isUploadId(id)) {
      throw new RegistryError(
        'BLOB_UPLOAD_UNKNOWN',
        `upload ${JSON.stringify(id.slice(0, 80))} is not in progress`,
      );
    }
    const location = `/v2/${name}/blobs/uploads/${id}`;
    const progress = (size: number): Headers => ({
      Location: location,
      Range: rangeHeader(size),
      'Docker-Upload-UUID': id,
    });
    try {
      switch (req.method) {
        case 'GET':
        case 'HEAD':
          sendEmpty(res, 204, progress(await uploads.status(name, id)));
          return;
        case 'PATCH': {
          const size = await uploads.append(name, id, bodyOf(req), chunkOf(req));
          sendEmpty(res, 202, progress(size));
          return;
        }
        case 'PUT': {
          const digestParam = query.get('digest');
          if (digestParam === null) {
            throw new RegistryError(
              'DIGEST_INVALID',
              'closing an upload needs ?digest=<digest of the whole blob>',
            );
          }
          const digest = checkDigest(digestParam);
          await uploads.finish(name, id, digest, bodyOf(req), chunkOf(req));
          await storage.linkBlob(name, digest);
          blobCreated(res, name, digest);
          return;
        }
        case 'DELETE':
          await uploads.cancel(name, id);
          sendEmpty(res, 204, {});
          return;
        default:
          throw methodNotAllowed(req.method, ['GET', 'HEAD', 'PATCH', 'PUT', 'DELETE']);
      }
    } catch (err) {
      if (err instanceof RegistryError && err.status === 416) {
        Object.assign(err.headers, { Location: location, 'Docker-Upload-UUID': id });
      }
      throw err;
    }
  }

  // ── manifests ───────────────────────────────────────────────────────────────────────────────

  async function getManifest(req: IncomingMessage, res: ServerResponse, name: string, reference: string) {
    const ref = parseManifestReference(reference);
    let record: ManifestRecord | undefined = await storage.resolveManifest(name, ref);
    let body: Buffer | undefined;
    const accepted = acceptedTypes(req.headers.accept);
    if (!isAccepted(accepted, record.mediaType)) {
      const stored = record;
      record = undefined;
      // an index fetched by tag by a client that takes no index: its linux/amd64 manifest
      if (INDEX_TYPES.has(stored.mediaType) && ref.tag !== undefined && wantsManifestOnly(accepted)) {
        const index = parsePushedManifest(
          await storage.readManifest(stored),
          stored.mediaType,
          `manifest ${stored.digest}`,
        );
        const pick = pickFromIndex(index.manifests, accepted);
        const child = pick ? await storage.manifest(name, pick.digest) : undefined;
        if (child && isAccepted(accepted, child.mediaType)) record = child;
      }
      if (!record) {
        throw new RegistryError(
          'MANIFEST_UNKNOWN',
          `manifest ${reference} of ${name} is ${stored.mediaType}, which the Accept header does not allow`,
          { detail: { mediaType: stored.mediaType, accept: [...(accepted ?? [])].slice(0, 16) } },
        );
      }
    }
    if (req.method !== 'HEAD') body = await storage.readManifest(record);
    res.writeHead(200, {
      'Content-Type': record.mediaType,
      'Content-Length': body?.length ?? record.size,
      'Docker-Content-Digest': record.digest,
      ETag: `"${record.digest}"`,
    });
    res.end(body);
  }

  async function checkReferences(name: string, manifest: PushedManifest, digest: Digest): Promise<void> {
    const missing: Digest[] = [];
    for (const [i, d] of manifest.blobs.entries()) {
      if (isForeign(d)) continue;
      const size = await storage.blobSize(name, d.digest);
      if (size === undefined) missing.push(d.digest);
      else if (size === d.size) {
        // referenced from now on; until the revision is written, the grace period keeps it (gc.ts)
        await storage.content.touch(d.digest);
      } else {
        const field = i === 0 ? 'config' : `layers[${i - 1}]`;
        throw new RegistryError(
          'MANIFEST_INVALID',
          `manifest ${digest}: ${field} says ${d.size} bytes, but blob ${d.digest} has ${size}`,
          { detail: { field, digest: d.digest } },
        );
      }
    }
    for (const [i, d] of manifest.manifests.entries()) {
      const record = await storage.manifest(name, d.digest);
      if (!record) missing.push(d.digest);
      else if (record.size !== d.size) {
        throw new RegistryError(
          'MANIFEST_INVALID',
          `manifest ${digest}: manifests[${i}] says ${d.size} bytes, but manifest ${d.digest} has ${record.size}`,
          { detail: { field: `manifests[${i}]`, digest: d.digest } },
        );
      }
    }
    if (missing.length > 0) {
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        `manifest ${digest} names ${missing.length} blob(s) or manifest(s) repository ${name} does not hold, first ${missing[0]!}; push them first`,
        { detail: { missing: missing.slice(0, 32) } },
      );
    }
  }

  async function putManifest(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    reference: string,
    query: URLSearchParams,
  ) {
    const ref = parseManifestReference(reference);
    const extra = query.getAll('tag');
    if (extra.length > MAX_TAGS_PER_PUT) {
      throw new RegistryError('TAG_INVALID', `more than ${MAX_TAGS_PER_PUT} tags in one manifest push`, {
        status: 414,
      });
    }
    const tags = [...new Set([...(ref.tag !== undefined ? [ref.tag] : []), ...extra.map(checkTag)])];
    const declared = contentLength(req);
    if (declared !== undefined && declared > maxManifestBytes) {
      throw new RegistryError(
        'SIZE_INVALID',
        `manifest of ${declared} bytes is over the limit of ${maxManifestBytes}`,
        {
          status: 413,
          detail: { limit: maxManifestBytes },
        },
      );
    }
    const body = await readBounded(req, maxManifestBytes, `manifest ${name}:${reference}`);
    const digest = sha256Digest(body);
    if (ref.digest !== undefined && ref.digest !== digest) {
      throw new RegistryError('DIGEST_INVALID', `manifest pushed as ${ref.digest} hashes to ${digest}`, {
        detail: { expected: ref.digest, actual: digest },
      });
    }
    let manifest: PushedManifest;
    try {
      manifest = parsePushedManifest(body, req.headers['content-type'], `manifest ${digest}`);
    } catch (err) {
      if (err instanceof InvalidArgumentError) {
        throw new RegistryError('MANIFEST_INVALID', err.message, {
          detail: { field: err.field },
          cause: err,
        });
      }
      throw err;
    }
    await checkReferences(name, manifest, digest);
    await storage.putManifest(name, body, manifest, tags);
    sendEmpty(res, 201, {
      Location: `/v2/${name}/manifests/${digest}`,
      'Docker-Content-Digest': digest,
      ...(manifest.subject ? { 'OCI-Subject': manifest.subject.digest } : {}),
      ...(extra.length > 0 ? { 'OCI-Tag': tags.join(', ') } : {}),
    });
  }

  async function deleteManifest(res: ServerResponse, name: string, reference: string) {
    const ref = parseManifestReference(reference);
    if (ref.digest !== undefined) {
      await storage.deleteManifest(name, ref.digest);
      sendEmpty(res, 202, { 'Docker-Content-Digest': ref.digest });
    } else {
      await storage.deleteTag(name, ref.tag);
      sendEmpty(res, 202, {});
    }
  }

  // ── lists ───────────────────────────────────────────────────────────────────────────────────

  async function tagsList(req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams) {
    const { items, n, next } = page(await storage.listTags(name), query, checkTag, maxPage);
    sendJson(
      req,
      res,
      200,
      { name, tags: items },
      next === undefined
        ? {}
        : {
            Link: `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`,
          },
    );
  }

  async function catalog(req: IncomingMessage, res: ServerResponse, query: URLSearchParams) {
    const { items, n, next } = page(
      await storage.listRepositories(),
      query,
      (last) => {
        if (!isName(last))
          throw new RegistryError(
            'NAME_INVALID',
            `last=${JSON.stringify(last.slice(0, 80))} is not a repository name`,
          );
      },
      maxPage,
    );
    sendJson(
      req,
      res,
      200,
      { repositories: items },
      next === undefined
        ? {}
        : {
            Link: `</v2/_catalog?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`,
          },
    );
  }

  async function referrers(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    rawDigest: string,
    query: URLSearchParams,
  ) {
    const digest = checkDigest(rawDigest);
    let manifests = await storage.referrers(name, digest);
    const artifactType = query.get('artifactType');
    if (artifactType !== null) manifests = manifests.filter((m) => m.artifactType === artifactType);
    sendJson(
      req,
      res,
      200,
      { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests },
      {
        'Content-Type': MediaType.ociIndex,
        ...(artifactType !== null ? { 'OCI-Filters-Applied': 'artifactType' } : {}),
      },
    );
  }

  // ── dispatch ────────────────────────────────────────────────────────────────────────────────

  async function dispatch(req: IncomingMessage, res: ServerResponse, target: Target): Promise<void> {
    const { route, query } = target;
    const method = req.method;
    const reading = method === 'GET' || method === 'HEAD';
    switch (route.kind) {
      case 'base':
        if (!reading) throw methodNotAllowed(method, ['GET', 'HEAD']);
        return sendJson(req, res, 200, {});
      case 'catalog':
        if (!reading) throw methodNotAllowed(method, ['GET', 'HEAD']);
        return catalog(req, res, query);
      case 'tags':
        if (!reading) throw methodNotAllowed(method, ['GET', 'HEAD']);
        return tagsList(req, res, route.name, query);
      case 'referrers':
        if (!reading) throw methodNotAllowed(method, ['GET', 'HEAD']);
        return referrers(req, res, route.name, route.digest, query);
      case 'blob': {
        const digest = checkDigest(route.digest);
        if (reading) return getBlob(req, res, route.name, digest);
        if (method === 'DELETE') return deleteBlob(res, route.name, digest);
        throw methodNotAllowed(method, ['GET', 'HEAD', 'DELETE']);
      }
      case 'manifest':
        if (reading) return getManifest(req, res, route.name, route.reference);
        if (method === 'PUT') return putManifest(req, res, route.name, route.reference, query);
        if (method === 'DELETE') return deleteManifest(res, route.name, route.reference);
        throw methodNotAllowed(method, ['GET', 'HEAD', 'PUT', 'DELETE']);
      case 'uploads':
        if (method !== 'POST') throw methodNotAllowed(method, ['POST']);
        return startUpload(req, res, route.name, query);
      case 'upload':
        return upload(req, res, route.name, route.id, query);
    }
  }

  async function sendError(req: IncomingMessage, res: ServerResponse, err: unknown): Promise<number> {
    const response = errorResponse(err);
    if (response.expected)
      log.debug(
        { url: req.url?.slice(0, 300), code: response.body.errors[0]?.code, status: response.status },
        'registry request refused',
      );
    else log.error({ err, method: req.method, url: req.url?.slice(0, 300) }, 'registry request failed');
    if (res.headersSent) {
      res.destroy();
      return response.status;
    }
    const headers: Headers = { ...response.headers };
    // a client without credentials gets little of our reading
    const limit = response.status === 401 ? UNAUTHENTICATED_DRAIN_BYTES : DRAIN_BYTES;
    if (!(await drain(req, limit))) headers.Connection = 'close';
    sendJson(req, res, response.status, response.body, headers);
    return response.status;
  }

  return async (req, res) => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    let routeKind = 'none';
    try {
      const principal = await authenticate(req);
      const target = parseTarget(req.url ?? '/');
      routeKind = target.route.kind;
      authorizeRegistry(principal, actionOf(req.method), describe(target.route));
      await dispatch(req, res, target);
    } catch (err) {
      await sendError(req, res, err);
    } finally {
      metrics?.requests.inc({
        method: String(req.method).slice(0, 10),
        route: routeKind,
        code: String(res.statusCode),
      });
    }
  };
}
