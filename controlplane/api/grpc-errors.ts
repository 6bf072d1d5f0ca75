/**
 * A thrown value as grpc-js sends it: proto/grpc-status.ts says which status and trailers, this
 * puts them in grpc-js's shape (its Metadata), so that only the server loads grpc-js.
 */
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { toGrpcStatus } from '../../proto/grpc-status.js';

/** The grpc-js error object for a thrown value, as handed to a unary callback or `call.destroy()`. */
export function toServiceError(err: unknown): Partial<ServiceError> & { internal: boolean } {
  const status = toGrpcStatus(err);
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(status.trailers)) metadata.set(key, value);
  return Object.assign(new Error(status.details), {
    code: status.code,
    details: status.details,
    metadata,
    internal: status.internal,
  });
}
