/**
 * A client of the gRPC health checking protocol (grpc.health.v1.Health/Check, the one Kubernetes'
 * grpc probes call) over node:http2, on a socket the caller connected. One unary call, written by
 * hand: the request is one optional string field, the response one enum field, so no protobuf
 * library and no gRPC channel are needed.
 *
 *   POST /grpc.health.v1.Health/Check   content-type: application/grpc, te: trailers, grpc-timeout
 *   body    0x00 | uint32 length (big-endian) | HealthCheckRequest { 1: string service }
 *   answer  :status 200, one message HealthCheckResponse { 1: enum status }, trailers grpc-status
 *           (a trailers-only answer puts grpc-status in the headers)
 */
import { connect as http2Connect, constants as h2 } from 'node:http2';
import type { Socket } from 'node:net';

/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
export const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

/** gRPC status codes by number, as Go's codes.Code names them. */
const CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];

export const GRPC_DEADLINE_EXCEEDED = 4;
export const GRPC_UNIMPLEMENTED = 12;

/** A call that ended with a gRPC status other than OK (or never got one: Unavailable, Internal). */
export class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`rpc error: code = ${CODE_NAMES[code] ?? `Code(${code})`} desc = ${details}`);
    this.name = 'GrpcCallError';
  }
}

/** HealthCheckRequest { service } in protobuf's wire format (empty for ""). */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === '') return Buffer.alloc(0);
  const text = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([0x0a]), varint(text.length), text]);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

function readVarint(buf: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return [value, i + 1];
  }
  throw new GrpcCallError(13, 'malformed HealthCheckResponse: truncated varint');
}

/** HealthCheckResponse's status (0 when absent, as proto3 defaults it); other fields skipped. */
export function decodeHealthCheckResponse(buf: Buffer): number {
  let status = 0;
  let at = 0;
  while (at < buf.length) {
    const [tag, next] = readVarint(buf, at);
    at = next;
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      const [value, after] = readVarint(buf, at);
      at = after;
      if (field === 1) status = value;
    } else if (wire === 2) {
      const [length, after] = readVarint(buf, at);
      at = after + length;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else throw new GrpcCallError(13, `malformed HealthCheckResponse: wire type ${wire}`);
  }
  if (at > buf.length) throw new GrpcCallError(13, 'malformed HealthCheckResponse: truncated field');
  return status;
}

/** One gRPC message frame: uncompressed, length-prefixed. */
function frame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export interface HealthCheckOptions {
  /** The :authority (`ip:port`). */
  authority: string;
  /** The service asked about; "" for the server as a whole. */
  service: string;
  /** The whole call's deadline (sent as grpc-timeout too). */
  timeoutMs: number;
  userAgent?: string;
}

/**
 * Calls Check on the connected `socket` (which it owns and closes) and returns the serving status
 * (SERVING_STATUS index). Rejects with GrpcCallError: the server's status when not OK,
 * DeadlineExceeded when the deadline passed, Unavailable when the connection failed.
 */
export function grpcHealthCheck(socket: Socket, options: HealthCheckOptions): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const session = http2Connect(`http://${options.authority}`, {
      createConnection: () => socket,
      settings: { enablePush: false },
    });
    const finish = (err: Error | undefined, status?: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      socket.destroy();
      if (err) reject(err);
      else resolve(status!);
    };
    const timer = setTimeout(
      () => finish(new GrpcCallError(GRPC_DEADLINE_EXCEEDED, 'context deadline exceeded')),
      options.timeoutMs,
    );
    session.on('error', (err) => finish(new GrpcCallError(14, `connection error: ${err.message}`)));
    const req = session.request({
      [h2.HTTP2_HEADER_METHOD]: 'POST',
      [h2.HTTP2_HEADER_PATH]: '/grpc.health.v1.Health/Check',
      [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [h2.HTTP2_HEADER_TE]: 'trailers',
      'grpc-timeout': `${Math.max(1, Math.round(options.timeoutMs))}m`,
      ...(options.userAgent ? { [h2.HTTP2_HEADER_USER_AGENT]: options.userAgent } : {}),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let headerStatus: string | undefined;
    let headerMessage: string | undefined;
    let httpStatus = 0;
    req.on('response', (headers) => {
      httpStatus = Number(headers[h2.HTTP2_HEADER_STATUS] ?? 0);
      const s = headers['grpc-status'];
      if (s !== undefined) headerStatus = String(s);
      if (headers['grpc-message'] !== undefined) headerMessage = String(headers['grpc-message']);
      if (httpStatus !== 200)
        finish(
          new GrpcCallError(
            httpStatus === 404 ? GRPC_UNIMPLEMENTED : 14,
            `unexpected HTTP status code ${httpStatus}`,
          ),
        );
    });
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > 64 * 1024) finish(new GrpcCallError(8, 'HealthCheckResponse larger than 64 KiB'));
      else chunks.push(chunk);
    });
    let trailers: Record<string, unknown> | undefined;
    req.on('trailers', (t) => (trailers = t));
    req.on('error', (err) => finish(new GrpcCallError(14, `stream error: ${err.message}`)));
    req.on('end', () => {
      const code = Number(trailers?.['grpc-status'] ?? headerStatus ?? NaN);
      const message = decodeURIComponentSafe(String(trailers?.['grpc-message'] ?? headerMessage ?? ''));
      if (!Number.isInteger(code))
        return finish(new GrpcCallError(13, 'server closed the stream without sending trailers'));
      if (code !== 0) return finish(new GrpcCallError(code, message));
      const body = Buffer.concat(chunks);
      if (body.length < 5) return finish(new GrpcCallError(13, 'no HealthCheckResponse in the answer'));
      if (body[0] !== 0)
        return finish(new GrpcCallError(13, 'compressed HealthCheckResponse, which was not asked for'));
      const length = body.readUInt32BE(1);
      if (body.length < 5 + length) return finish(new GrpcCallError(13, 'truncated HealthCheckResponse'));
      try {
        finish(undefined, decodeHealthCheckResponse(body.subarray(5, 5 + length)));
      } catch (err) {
        finish(err as Error);
      }
    });
    req.end(frame(encodeHealthCheckRequest(options.service)));
  });
}

/** grpc-message is percent-encoded. */
function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
