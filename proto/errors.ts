/**
 * The one error vocabulary of skiff. Every component throws these (never strings), with the ids
 * of what failed as fields and the underlying error as `cause`. They are converted to gRPC status
 * codes in exactly one place on each side of the wire (proto/grpc-status.ts).
 *
 * Messages read "action object: reason", e.g.
 *   `unpack layer sha256:ab12…: entry "../etc/passwd" escapes the layer root`.
 */

export type ErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'InvalidArgument'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'Unauthenticated'
  | 'PermissionDenied'
  | 'DeadlineExceeded'
  | 'ResourceExhausted'
  | 'Gone'
  | 'Internal';

export abstract class SkiffError extends Error {
  abstract readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
  override get name(): string {
    return this.constructor.name;
  }
}

export class NotFoundError extends SkiffError {
  readonly code = 'NotFound' as const;
}
export class AlreadyExistsError extends SkiffError {
  readonly code = 'AlreadyExists' as const;
}
/** A write based on a stale resourceVersion (or a failed precondition on one). Retry on a fresh read. */
export class ConflictError extends SkiffError {
  readonly code = 'Conflict' as const;
}
/** Bad input. `field` is the path of the offending field, e.g. `spec.containers[0].image`. */
export class InvalidArgumentError extends SkiffError {
  readonly code = 'InvalidArgument' as const;
  constructor(
    message: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
export class FailedPreconditionError extends SkiffError {
  readonly code = 'FailedPrecondition' as const;
}
/** A dependency (etcd, NATS, an agent) cannot be reached. `endpoint` names it. */
export class UnavailableError extends SkiffError {
  readonly code = 'Unavailable' as const;
  constructor(
    message: string,
    readonly endpoint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
export class UnauthenticatedError extends SkiffError {
  readonly code = 'Unauthenticated' as const;
}
export class PermissionDeniedError extends SkiffError {
  readonly code = 'PermissionDenied' as const;
}
export class DeadlineExceededError extends SkiffError {
  readonly code = 'DeadlineExceeded' as const;
}
/** A limit was hit (size, count, disk budget). */
export class ResourceExhaustedError extends SkiffError {
  readonly code = 'ResourceExhausted' as const;
}
/** A watch asked for a revision etcd has compacted away: re-list, then watch from the new revision. */
export class GoneError extends SkiffError {
  readonly code = 'Gone' as const;
}
export class InternalError extends SkiffError {
  readonly code = 'Internal' as const;
}

export function isSkiffError(err: unknown): err is SkiffError {
  return err instanceof SkiffError;
}

/** The message of any caught value, for wrapping: `cannot read ${path}: ${errorMessage(err)}`. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
