/**
 * The one place where skiff's error vocabulary (proto/errors.ts) meets gRPC status codes, in both
 * directions:
 *
 * - server side, `toGrpcStatus(err)` turns a thrown value into a status (code, details, trailers;
 *   controlplane/api/grpc-errors.ts hands it to grpc-js). Structured fields that a code alone cannot carry (the field path of
 *   an InvalidArgumentError, the endpoint of an UnavailableError, the exact error class) travel in
 *   trailing metadata under `skiff-*` keys. Anything that is not a SkiffError is an internal fault:
 *   the caller logs it, the wire only ever sees a generic INTERNAL message.
 * - client side, `fromGrpcError(err, server)` turns a failed call (grpc-wire-client.ts) back into the matching
 *   SkiffError with the message and fields preserved. Errors produced by the transport itself
 *   (server unreachable, deadline) map by code, naming the server as the endpoint.
 * - a status carried inside an answer (one write's in a DryRunWrites answer: api.proto `Status`,
 *   the trailers in its `details`) is the same status: `toGrpcStatus` makes it, `fromGrpcStatus`
 *   reads it back.
 */
import {
  AlreadyExistsError,
  ConflictError,
  DeadlineExceededError,
  FailedPreconditionError,
  GoneError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  SkiffError,
  UnauthenticatedError,
  UnavailableError,
  type ErrorCode,
} from './errors.js';

/** Trailing-metadata keys that carry what a status code alone cannot. */
export const ERROR_CODE_KEY = 'skiff-error-code';
export const ERROR_FIELD_KEY = 'skiff-error-field';
export const ERROR_ENDPOINT_KEY = 'skiff-error-endpoint';

/** The message sent for faults that are not part of the vocabulary; the details stay in the server log. */
export const INTERNAL_MESSAGE =
  'internal error: the server logged the details; retry, and report it if it persists';

/** gRPC's status codes (the spec's numbers; grpc-js's `status` enum holds the same). */
export const GRPC_CODE = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const grpcCodeOf: Record<ErrorCode, number> = {
  NotFound: GRPC_CODE.NOT_FOUND,
  AlreadyExists: GRPC_CODE.ALREADY_EXISTS,
  Conflict: GRPC_CODE.ABORTED,
  InvalidArgument: GRPC_CODE.INVALID_ARGUMENT,
  FailedPrecondition: GRPC_CODE.FAILED_PRECONDITION,
  Unavailable: GRPC_CODE.UNAVAILABLE,
  Unauthenticated: GRPC_CODE.UNAUTHENTICATED,
  PermissionDenied: GRPC_CODE.PERMISSION_DENIED,
  DeadlineExceeded: GRPC_CODE.DEADLINE_EXCEEDED,
  ResourceExhausted: GRPC_CODE.RESOURCE_EXHAUSTED,
  Gone: GRPC_CODE.OUT_OF_RANGE,
  Internal: GRPC_CODE.INTERNAL,
};

const errorCodeOfGrpc = new Map<number, ErrorCode>(
  Object.entries(grpcCodeOf).map(([code, grpcCode]) => [grpcCode, code as ErrorCode]),
);

/** The status a server sends for a thrown value: code, message, and trailers for what a code alone cannot carry. */
export interface GrpcStatus {
  code: number;
  details: string;
  trailers: Record<string, string>;
  /** True when `err` was not a SkiffError: the caller must log it, since the wire carries no detail. */
  internal: boolean;
}

/** The gRPC status for a thrown value. Never copies the message of a non-SkiffError onto the wire. */
export function toGrpcStatus(err: unknown): GrpcStatus {
  if (!(err instanceof SkiffError)) {
    return {
      code: GRPC_CODE.INTERNAL,
      details: INTERNAL_MESSAGE,
      trailers: { [ERROR_CODE_KEY]: 'Internal' },
      internal: true,
    };
  }
  const trailers: Record<string, string> = { [ERROR_CODE_KEY]: err.code };
  if (err instanceof InvalidArgumentError && err.field !== undefined) trailers[ERROR_FIELD_KEY] = err.field;
  if (err instanceof UnavailableError && err.endpoint !== undefined)
    trailers[ERROR_ENDPOINT_KEY] = err.endpoint;
  return { code: grpcCodeOf[err.code], details: err.message, trailers, internal: false };
}

/** A failed call as a client sees it (grpc-js's ServiceError and grpc-wire-client's GrpcCallError both are). */
export interface CallError extends Error {
  code: number;
  details: string;
  metadata?: { get(key: string): Array<string | Buffer> };
  /** The server refused the request's headers for their size. */
  requestHeadersTooLarge?: boolean;
}

function isCallError(err: unknown): err is CallError {
  return err instanceof Error && typeof (err as Partial<CallError>).code === 'number';
}

function metadataString(md: CallError['metadata'], key: string): string | undefined {
  const value = md?.get(key)[0];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.toString('utf8');
}

/** What the client knew of a call, so transport failures can be told in its terms. */
export interface CallContext {
  /** The call's deadline, in milliseconds from its start. */
  timeoutMs?: number;
  /** Length of the bearer token sent, in bytes. */
  tokenBytes?: number;
}

/** `5 s`, `500 ms`, `1.5 s`, `2 min`. */
export function formatTimeout(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000 || ms % 60_000 !== 0) return `${Number((ms / 1000).toFixed(3))} s`;
  return `${ms / 60_000} min`;
}

/**
 * Why the transport could not reach `server`, in a person's words (grpc-js's messages also carry
 * resolver and load-balancer internals: `No connection established. Last error: …. Resolution note: `).
 */
function unreachableReason(message: string): string {
  // the wire client's own words about TLS, and its hint after a plaintext connection was ended
  if (message.startsWith('TLS: ')) return message;
  const hinted = / before answering: if it serves TLS.*$/s.exec(message);
  if (hinted !== null) return `${unreachableReason(message.slice(0, hinted.index))}${hinted[0]}`;
  const errno =
    /\b(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ECONNRESET|ENOTFOUND|EAI_AGAIN|EADDRNOTAVAIL|EACCES|EPERM)\b/.exec(
      message,
    )?.[1];
  switch (errno) {
    case 'ECONNREFUSED':
      return 'connection refused (is the control plane running, and is the address right?)';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'ETIMEDOUT':
      return 'connection timed out';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'EADDRNOTAVAIL':
      return 'address not available';
    case 'EACCES':
    case 'EPERM':
      return 'connection not permitted';
  }
  if (/Name resolution failed|DNS resolution failed/i.test(message)) return 'the host name does not resolve';
  if (/Connection dropped/i.test(message)) return 'the connection dropped';
  const cleaned = message
    .replace(/^No connection established\. Last error: (?:Error: )?/, '')
    .replace(/\.? ?Resolution note:.*$/s, '')
    .trim();
  return cleaned || 'no connection';
}

/**
 * The SkiffError for a failed client call. `server` (host:port) names the
 * endpoint when the transport could not reach it; `call` lets a deadline or an oversized header
 * be said in the caller's terms rather than grpc-js's.
 */
export function fromGrpcError(err: unknown, server: string, call: CallContext = {}): SkiffError {
  if (err instanceof SkiffError) return err;
  if (!isCallError(err)) return new InternalError(`call ${server}: ${String(err)}`, { cause: err });
  const sent = metadataString(err.metadata, ERROR_CODE_KEY) as ErrorCode | undefined;
  const code = sent !== undefined && sent in grpcCodeOf ? sent : errorCodeOfGrpc.get(err.code);
  const message = err.details || err.message;
  const options = { cause: err };
  // Raised by the transport, not sent by a skiff server: said without the transport's internals.
  if (sent === undefined) {
    if (code === 'DeadlineExceeded') {
      const within = call.timeoutMs !== undefined ? ` within ${formatTimeout(call.timeoutMs)}` : '';
      return new DeadlineExceededError(`no answer from the control plane at ${server}${within}`, options);
    }
    if (code === 'Unavailable') {
      return new UnavailableError(
        `cannot reach the control plane at ${server}: ${unreachableReason(message)}`,
        server,
        options,
      );
    }
    if (err.requestHeadersTooLarge === true) {
      const token =
        call.tokenBytes !== undefined && call.tokenBytes > 4096
          ? `: the bearer token is ${call.tokenBytes} bytes; check the token in your client config`
          : '';
      return new InvalidArgumentError(
        `the control plane at ${server} refused the request: its headers are larger than it accepts${token}`,
        call.tokenBytes !== undefined && call.tokenBytes > 4096 ? 'token' : undefined,
        options,
      );
    }
  }
  return errorOf(code, message, (key) => metadataString(err.metadata, key), server, options);
}

/**
 * The SkiffError of a status a skiff server sent inside an answer rather than as the call's own
 * (one write's result in a DryRunWrites answer): `details` holds what a failed call's trailers would.
 */
export function fromGrpcStatus(
  status: { code: number; message: string; details: Readonly<Record<string, string>> },
  server: string,
): SkiffError {
  const sent = status.details[ERROR_CODE_KEY] as ErrorCode | undefined;
  const code = sent !== undefined && sent in grpcCodeOf ? sent : errorCodeOfGrpc.get(status.code);
  return errorOf(code, status.message, (key) => status.details[key], server, {});
}

/** The SkiffError of a code sent by a skiff server; `detail` reads the trailers that came with it. */
function errorOf(
  code: ErrorCode | undefined,
  message: string,
  detail: (key: string) => string | undefined,
  server: string,
  options: { cause?: unknown },
): SkiffError {
  switch (code) {
    case 'NotFound':
      return new NotFoundError(message, options);
    case 'AlreadyExists':
      return new AlreadyExistsError(message, options);
    case 'Conflict':
      return new ConflictError(message, options);
    case 'InvalidArgument':
      return new InvalidArgumentError(message, detail(ERROR_FIELD_KEY), options);
    case 'FailedPrecondition':
      return new FailedPreconditionError(message, options);
    case 'Unavailable': {
      const endpoint = detail(ERROR_ENDPOINT_KEY);
      // Without an endpoint from the server, the transport itself failed to reach the server.
      if (endpoint === undefined && server !== '') {
        return new UnavailableError(`call control plane ${server}: ${message}`, server, options);
      }
      return new UnavailableError(message, endpoint, options);
    }
    case 'Unauthenticated':
      return new UnauthenticatedError(message, options);
    case 'PermissionDenied':
      return new PermissionDeniedError(message, options);
    case 'DeadlineExceeded':
      return new DeadlineExceededError(
        server === '' ? message : `call control plane ${server}: ${message}`,
        options,
      );
    case 'ResourceExhausted':
      return new ResourceExhaustedError(message, options);
    case 'Gone':
      return new GoneError(message, options);
    default:
      return new InternalError(server === '' ? message : `call control plane ${server}: ${message}`, options);
  }
}

/**
 * The SkiffError of a code as skiff names it (`NotFound`…), with its message and, for
 * InvalidArgument its field, for Unavailable its endpoint: how an error that crossed a wire as
 * values (a pod stream's end frame) becomes one again.
 */
export function skiffErrorOf(
  code: ErrorCode,
  message: string,
  detail?: string,
  options: ErrorOptions = {},
): SkiffError {
  return errorOf(
    code,
    message,
    (key) => (key === ERROR_FIELD_KEY || key === ERROR_ENDPOINT_KEY ? detail : undefined),
    '',
    options,
  );
}

/** Whether `code` is one of skiff's error codes (as a wire value names it). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(grpcCodeOf, code);
}
