/**
 * Pod streams (logs, exec, attach, port-forward) on the wire: PodStreamFrame, the one message of
 * every leg (CLI ↔ control plane ↔ agent; skiff.v1.Api Logs/Exec/Attach/PortForward and
 * skiff.v1.Nodes SessionStream), and the rules all three sides keep:
 *
 * - data frames carry at most DATA_CHUNK_BYTES; a frame is at most MAX_FRAME_BYTES (the control
 *   plane refuses larger ones, so what it holds per session stays bounded);
 * - the last frame from the agent is `end`, alone in its frame, so the control plane recognises
 *   it by its first byte (isEndFrame) and passes every other frame on without decoding it;
 * - an error travels in `end` as skiff's error code and message (endOfError / errorOfEnd), and
 *   the control plane ends the client's call with it as any other error.
 */
import { SkiffError, type ErrorCode } from './errors.js';
import { messages } from './gen/messages.js';
import { INTERNAL_MESSAGE, isErrorCode, skiffErrorOf } from './grpc-status.js';

export interface TerminalSize {
  rows: number;
  cols: number;
}

/** What an Exec, Attach or PortForward is about (the client's first frame). */
export interface PodStreamOpen {
  namespace: string;
  name: string;
  container?: string;
  command?: string[];
  stdin?: boolean;
  tty?: boolean;
  terminalSize?: TerminalSize;
  port?: number;
}

/** kubectl logs' options (PodLogsRequest). */
export interface PodLogsOptions {
  namespace: string;
  name: string;
  container?: string;
  follow?: boolean;
  previous?: boolean;
  tailLines?: number;
  sinceSeconds?: number;
  sinceTime?: string;
  timestamps?: boolean;
  limitBytes?: number;
}

export interface PodStreamEnd {
  exitCode?: number;
  errorCode?: string;
  message?: string;
  detail?: string;
}

export interface PodStreamFrame {
  open?: PodStreamOpen;
  stdin?: Buffer;
  stdinClose?: boolean;
  resize?: TerminalSize;
  stdout?: Buffer;
  stderr?: Buffer;
  end?: PodStreamEnd;
}

/** skiff.v1.Api's methods whose frames cross as wire bytes (grpc-service.ts ServiceDefinitionOptions). */
export const POD_STREAM_RAW = {
  rawRequests: ['Exec', 'Attach', 'PortForward'],
  rawResponses: ['Logs', 'Exec', 'Attach', 'PortForward'],
  maxRawRequestBytes: 128 * 1024,
} as const;

/** The metadata that names a session on an agent's SessionStream. */
export const SESSION_ID_KEY = 'skiff-session-id';
export const SESSION_SECRET_KEY = 'skiff-session-secret';

/** Bytes of output or input in one frame, at most. */
export const DATA_CHUNK_BYTES = 64 * 1024;
/** A frame's size, at most (a command line of ~100 KiB fits the first). */
export const MAX_FRAME_BYTES = POD_STREAM_RAW.maxRawRequestBytes;
/** The first byte of a frame whose only field is `end` (field 15, length-delimited). */
const END_TAG = (15 << 3) | 2;

/** The field numbers of the data fields (api.proto PodStreamFrame). */
const DATA_FIELDS = { stdin: 2, stdout: 5, stderr: 6 } as const;
export type DataField = keyof typeof DATA_FIELDS;

/**
 * A frame of one data field as its parts: a small head (the field's tag and length) and `data`
 * itself, so a payload goes out without a copy (WireDuplex.sendParts). The same bytes as
 * encodeFrame({ [field]: data }).
 */
export function dataFrameParts(field: DataField, data: Buffer): [Buffer, Buffer] {
  const head = Buffer.allocUnsafe(6);
  head[0] = (DATA_FIELDS[field] << 3) | 2;
  let at = 1;
  let length = data.length;
  while (length > 0x7f) {
    head[at++] = (length & 0x7f) | 0x80;
    length >>>= 7;
  }
  head[at++] = length;
  return [head.subarray(0, at), data];
}

/** A frame that holds one data field and nothing else: that field and its bytes (a view). */
function dataFrameOf(bytes: Uint8Array): PodStreamFrame | undefined {
  const tag = bytes[0];
  const field =
    tag === ((2 << 3) | 2)
      ? 'stdin'
      : tag === ((5 << 3) | 2)
        ? 'stdout'
        : tag === ((6 << 3) | 2)
          ? 'stderr'
          : undefined;
  if (field === undefined) return undefined;
  let length = 0;
  let shift = 0;
  let at = 1;
  for (; at < bytes.length && at <= 5; at++) {
    const byte = bytes[at]!;
    length += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) break;
  }
  at++;
  if (at + length !== bytes.length) return undefined;
  const buffer = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { [field]: buffer.subarray(at) };
}

export function encodeFrame(frame: PodStreamFrame): Buffer {
  return messages.PodStreamFrame.encode(frame as unknown as Record<string, unknown>);
}

/** A frame's fields (absent ones undefined), bytes as Buffers (views into `bytes` for data frames). */
export function decodeFrame(bytes: Uint8Array): PodStreamFrame {
  const data = dataFrameOf(bytes);
  if (data !== undefined) return data;
  const message = messages.PodStreamFrame.decode(bytes);
  // the codecs read bytes as base64 text: a frame's data is a Buffer
  for (const field of Object.keys(DATA_FIELDS)) {
    const text = message[field];
    if (typeof text === 'string') message[field] = Buffer.from(text, 'base64');
  }
  return message as PodStreamFrame;
}

export function encodeLogsRequest(request: PodLogsOptions): Buffer {
  return messages.PodLogsRequest.encode(request as unknown as Record<string, unknown>);
}

/** A PodLogsRequest as decoded by a server (proto/wire/message-type.ts: int64 as numbers, unset fields absent). */
export function logsOptionsOf(message: Record<string, unknown>): PodLogsOptions {
  const int = (value: unknown): number | undefined =>
    value === undefined || value === null || value === '' ? undefined : Number(value);
  const str = (value: unknown): string => (typeof value === 'string' ? value : '');
  const options: PodLogsOptions = { namespace: str(message.namespace), name: str(message.name) };
  if (str(message.container)) options.container = str(message.container);
  if (message.follow === true) options.follow = true;
  if (message.previous === true) options.previous = true;
  const tail = int(message.tailLines);
  if (tail !== undefined) options.tailLines = tail;
  const since = int(message.sinceSeconds);
  if (since) options.sinceSeconds = since;
  if (str(message.sinceTime)) options.sinceTime = str(message.sinceTime);
  if (message.timestamps === true) options.timestamps = true;
  const limit = int(message.limitBytes);
  if (limit) options.limitBytes = limit;
  return options;
}

/** Whether wire bytes are an end frame (see the rules above). */
export function isEndFrame(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes[0] === END_TAG;
}

/**
 * The end frame of a stream that failed with `err`. Only skiff's own errors say what happened;
 * anything else goes as Internal with a generic message (the caller logs it).
 */
export function endOfError(err: unknown): PodStreamEnd {
  if (!(err instanceof SkiffError)) return { errorCode: 'Internal', message: INTERNAL_MESSAGE };
  const end: PodStreamEnd = { errorCode: err.code, message: err.message };
  const detail =
    (err as { field?: unknown; endpoint?: unknown }).field ?? (err as { endpoint?: unknown }).endpoint;
  if (typeof detail === 'string') end.detail = detail;
  return end;
}

/** The error an end frame carries, or undefined for a stream that ended well. */
export function errorOfEnd(end: PodStreamEnd): SkiffError | undefined {
  if (!end.errorCode) return undefined;
  const code: ErrorCode = isErrorCode(end.errorCode) ? end.errorCode : 'Internal';
  return skiffErrorOf(code, end.message || INTERNAL_MESSAGE, end.detail || undefined);
}

/** `data` cut into DATA_CHUNK_BYTES pieces (views, not copies). */
export function* chunks(data: Buffer): Generator<Buffer> {
  for (let at = 0; at < data.length; at += DATA_CHUNK_BYTES) yield data.subarray(at, at + DATA_CHUNK_BYTES);
}
