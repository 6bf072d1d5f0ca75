/**
 * A registry's error answers in skiff's error vocabulary: the HTTP status and the distribution
 * spec's error body (`{"errors":[{"code","message","detail"}]}`, RUNTIME-NOTES §2) become one
 * SkiffError whose message reads "action object: reason" and names the registry's code.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  type SkiffError,
} from '../errors.js';

/** The most of an error body that is read. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface RegistryErrorDetail {
  code: string;
  message: string;
}

/** The spec's error entries in `body`, or none when it is not that shape. */
export function parseErrorBody(body: Buffer): RegistryErrorDetail[] {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(doc.errors)) return [];
    return doc.errors.flatMap((e: unknown) => {
      if (typeof e !== 'object' || e === null) return [];
      const { code, message } = e as { code?: unknown; message?: unknown };
      return typeof code === 'string' ? [{ code, message: typeof message === 'string' ? message : '' }] : [];
    });
  } catch {
    return [];
  }
}

/**
 * The error for an answer `status` with `body` to `action` (e.g. `pull 127.0.0.1:5000/app:1`).
 * `endpoint` names the registry.
 */
export function registryError(
  action: string,
  endpoint: string,
  status: number,
  headers: IncomingHttpHeaders,
  body: Buffer,
): SkiffError {
  const details = parseErrorBody(body);
  const codes = new Set(details.map((d) => d.code));
  const said = details.length
    ? details.map((d) => `${d.code}${d.message ? ` (${d.message})` : ''}`).join(', ')
    : body.length > 0 && /^[\x20-\x7e\s]*$/.test(body.subarray(0, 200).toString('latin1'))
      ? JSON.stringify(body.subarray(0, 200).toString('latin1').trim())
      : 'no error body';
  const why = `${endpoint} answered ${status}: ${said}`;
  if (status === 401) return new UnauthenticatedError(`${action}: ${why}`);
  if (status === 403) return new PermissionDeniedError(`${action}: ${why}`);
  if (
    status === 404 ||
    codes.has('MANIFEST_UNKNOWN') ||
    codes.has('BLOB_UNKNOWN') ||
    codes.has('NAME_UNKNOWN')
  )
    return new NotFoundError(`${action}: ${why}`);
  if (status === 429 || codes.has('TOOMANYREQUESTS')) {
    const after = headers['retry-after'];
    return new ResourceExhaustedError(`${action}: ${why}${after ? `; retry after ${after}` : ''}`);
  }
  if (status === 413) return new ResourceExhaustedError(`${action}: ${why}`);
  if (status >= 500) return new UnavailableError(`${action}: ${why}`, endpoint);
  if (codes.has('UNSUPPORTED') || status === 405) return new FailedPreconditionError(`${action}: ${why}`);
  return new InvalidArgumentError(`${action}: ${why}`);
}

/** Whether a failed attempt may be tried again (the network, or the registry for a moment). */
export function isTransient(err: unknown): boolean {
  return err instanceof UnavailableError;
}
