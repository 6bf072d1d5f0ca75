/**
 * The registry's error vocabulary: the distribution spec's error codes (plus TAG_INVALID, which
 * Docker's registry sends and clients know), each with its HTTP status, and the one conversion
 * from any thrown value to the spec's JSON body:
 *
 *   {"errors":[{"code":"DIGEST_INVALID","message":"…","detail":{…}}]}
 *
 * Storage and upload code throw RegistryError where the code matters to a client; anything else
 * that reaches the HTTP layer is UNKNOWN (500) with a generic message: internals are logged,
 * never sent.
 */
import { isSkiffError } from '../../proto/errors.js';

export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'TAG_INVALID'
  | 'UNKNOWN';

/** The status each code is sent with unless the thrower says otherwise (416, 413, 405, 507). */
const STATUS: Record<RegistryErrorCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 400,
  TOOMANYREQUESTS: 429,
  TAG_INVALID: 400,
  UNKNOWN: 500,
};

export interface RegistryErrorOptions {
  status?: number;
  detail?: unknown;
  /** Headers the response carries (Range on a 416, Allow on a 405). */
  headers?: Record<string, string>;
  cause?: unknown;
}

export class RegistryError extends Error {
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    options: RegistryErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status ?? STATUS[code];
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  override get name(): string {
    return 'RegistryError';
  }
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: { errors: Array<{ code: RegistryErrorCode; message: string; detail?: unknown }> };
  /** false for a failure of the server itself (logged with its cause, sent without it). */
  expected: boolean;
}

/**
 * The response for any thrown value. Skiff errors from shared code that escape without a code of
 * their own (a ResourceExhaustedError of the content store's disk check) map by their kind.
 */
export function errorResponse(err: unknown): ErrorResponse {
  const one = (code: RegistryErrorCode, message: string, detail?: unknown) => ({
    errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }],
  });
  if (err instanceof RegistryError) {
    return {
      status: err.status,
      headers: err.headers,
      body: one(err.code, err.message, err.detail),
      expected: err.status < 500,
    };
  }
  if (isSkiffError(err)) {
    switch (err.code) {
      case 'ResourceExhausted':
        return { status: 507, headers: {}, body: one('SIZE_INVALID', err.message), expected: true };
      case 'Unauthenticated':
        return { status: 401, headers: {}, body: one('UNAUTHORIZED', err.message), expected: true };
      case 'PermissionDenied':
        return { status: 403, headers: {}, body: one('DENIED', err.message), expected: true };
      default:
        break;
    }
  }
  return {
    status: 500,
    headers: {},
    body: one('UNKNOWN', 'internal error; see the control plane log'),
    expected: false,
  };
}
