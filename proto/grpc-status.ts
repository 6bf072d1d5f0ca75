/**
 * The one place where skiff's error vocabulary (proto/errors.ts) meets gRPC status codes, in both
 * directions:
 *
 * - server side, `toGrpcStatus(err)` turns a thrown value into a status object that grpc-js sends
 *   (code, details, metadata). Structured fields that a code alone cannot carry (the field path of
 *   an InvalidArgumentError, the endpoint of an UnavailableError, the exact error class) travel in
 *   trailing metadata under `skiff-*` keys. Anything that is not a SkiffError is an internal fault:
 *   the caller logs it, the wire only ever sees a generic INTERNAL message.
 * - client side, `fromGrpcError(err, server)` turns a grpc-js ServiceError back into the matching
 *   SkiffError with the message and fields preserved. Errors produced by the transport itself
 *   (server unreachable, deadline) map by code, naming the server as the endpoint.
 */
import { Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
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

const grpcCodeOf: Record<ErrorCode, status> = {
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  Conflict: status.ABORTED,
  InvalidArgument: status.INVALID_ARGUMENT,
  FailedPrecondition: status.FAILED_PRECONDITION,
  Unavailable: status.UNAVAILABLE,
  Unauthenticated: status.UNAUTHENTICATED,
  PermissionDenied: status.PERMISSION_DENIED,
  DeadlineExceeded: status.DEADLINE_EXCEEDED,
  ResourceExhausted: status.RESOURCE_EXHAUSTED,
  Gone: status.OUT_OF_RANGE,
  Internal: status.INTERNAL,
};

const errorCodeOfGrpc = new Map<status, ErrorCode>(
  Object.entries(grpcCodeOf).map(([code, grpcCode]) => [grpcCode, code as ErrorCode]),
);

export interface GrpcStatus extends StatusObject {
  /** True when `err` was not a SkiffError: the caller must log it, since the wire carries no detail. */
  internal: boolean;
}

/** The gRPC status for a thrown value. Never copies the message of a non-SkiffError onto the wire. */
export function toGrpcStatus(err: unknown): GrpcStatus {
  const metadata = new Metadata();
  if (!(err instanceof SkiffError)) {
    metadata.set(ERROR_CODE_KEY, 'Internal');
    return { code: status.INTERNAL, details: INTERNAL_MESSAGE, metadata, internal: true };
  }
  metadata.set(ERROR_CODE_KEY, err.code);
  if (err instanceof InvalidArgumentError && err.field !== undefined)
    metadata.set(ERROR_FIELD_KEY, err.field);
  if (err instanceof UnavailableError && err.endpoint !== undefined)
    metadata.set(ERROR_ENDPOINT_KEY, err.endpoint);
  return { code: grpcCodeOf[err.code], details: err.message, metadata, internal: false };
}

/** The grpc-js error object for a thrown value, as handed to a unary callback or `call.destroy()`. */
export function toServiceError(err: unknown): Partial<ServiceError> & { internal: boolean } {
  const st = toGrpcStatus(err);
  return Object.assign(new Error(st.details), {
    code: st.code,
    details: st.details,
    metadata: st.metadata,
    internal: st.internal,
  });
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

function metadataString(md: Metadata | undefined, key: string): string | undefined {
  const value = md?.get(key)[0];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.toString('utf8');
}

/**
 * The SkiffError for an error raised by a grpc-js client call. `server` (host:port) names the
 * endpoint when the transport could not reach it.
 */
export function fromGrpcError(err: unknown, server: string): SkiffError {
  if (err instanceof SkiffError) return err;
  if (!isServiceError(err)) return new InternalError(`call ${server}: ${String(err)}`, { cause: err });
  const sent = metadataString(err.metadata, ERROR_CODE_KEY) as ErrorCode | undefined;
  const code = sent !== undefined && sent in grpcCodeOf ? sent : errorCodeOfGrpc.get(err.code);
  const message = err.details || err.message;
  const options = { cause: err };
  switch (code) {
    case 'NotFound':
      return new NotFoundError(message, options);
    case 'AlreadyExists':
      return new AlreadyExistsError(message, options);
    case 'Conflict':
      return new ConflictError(message, options);
    case 'InvalidArgument':
      return new InvalidArgumentError(message, metadataString(err.metadata, ERROR_FIELD_KEY), options);
    case 'FailedPrecondition':
      return new FailedPreconditionError(message, options);
    case 'Unavailable': {
      const endpoint = metadataString(err.metadata, ERROR_ENDPOINT_KEY);
      // Without an endpoint from the server, the transport itself failed to reach the server.
      if (endpoint === undefined) {
        return new UnavailableError(`call control plane ${server}: ${message}`, server, options);
      }
      return new UnavailableError(message, endpoint, options);
    }
    case 'Unauthenticated':
      return new UnauthenticatedError(message, options);
    case 'PermissionDenied':
      return new PermissionDeniedError(message, options);
    case 'DeadlineExceeded':
      return new DeadlineExceededError(`call control plane ${server}: ${message}`, options);
    case 'ResourceExhausted':
      return new ResourceExhaustedError(message, options);
    case 'Gone':
      return new GoneError(message, options);
    default:
      return new InternalError(`call control plane ${server}: ${message}`, options);
  }
}
