/**
 * The grpc-js definition of a generated service (proto/gen/messages.ts `services`), which both
 * `Server.addService` and `makeGenericClientConstructor` accept. Messages cross it in the codecs'
 * shape (proto/wire/message-type.ts: camelCase fields, int64 as numbers, oneof members as plain
 * fields); converting them to and from domain objects is the caller's job. A message given as a
 * Uint8Array is taken as its wire bytes, already encoded (an object sent as it is stored, see
 * objects.ts envelopeBytesWithResourceVersion), and sent as it is.
 *
 * Used by the control plane's services (skiff.v1.Api, skiff.v1.Admin) and by every later one (the
 * agent's), so it knows nothing about either. The CLI's client (client.ts) calls the generated
 * codecs itself and never loads grpc-js.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import type { MessageType, ServiceType, WireMessage } from './wire/message-type.js';

/** The bytes as a Buffer without copying them (Buffer.from(buffer) would copy). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodes a message, or sends a Uint8Array as the message's wire bytes. */
function serializerFor(type: MessageType): (value: WireMessage | Uint8Array) => Buffer {
  return (value) => (value instanceof Uint8Array ? asBuffer(value) : type.encode(value));
}

function deserializerFor(type: MessageType): (bytes: Buffer) => WireMessage {
  return (bytes) => type.decode(bytes);
}

export interface ServiceDefinitionOptions {
  /**
   * Methods whose requests, or responses, cross as wire bytes (Buffers) both ways: the caller
   * encodes and decodes them itself, or passes them on without (pod stream frames).
   * `maxRawRequestBytes` bounds raw requests: a larger one fails the call before it is queued.
   */
  rawRequests?: readonly string[];
  rawResponses?: readonly string[];
  maxRawRequestBytes?: number;
}

/** The grpc-js definition of `service`, with method paths `/<package>.<Service>/<Method>`. */
export function grpcServiceDefinition(
  service: ServiceType,
  options: ServiceDefinitionOptions = {},
): ServiceDefinition {
  const rawRequests = new Set(options.rawRequests ?? []);
  const rawResponses = new Set(options.rawResponses ?? []);
  const maxRaw = options.maxRawRequestBytes ?? Infinity;
  const rawRequest = (bytes: Buffer): WireMessage => {
    if (bytes.length > maxRaw)
      throw new RangeError(`a message of ${bytes.length} bytes, above the ${maxRaw} this call takes`);
    return bytes as unknown as WireMessage;
  };
  const rawResponse = (bytes: Buffer): WireMessage => bytes as unknown as WireMessage;
  const definition: Record<string, MethodDefinition<WireMessage, WireMessage | Uint8Array>> = {};
  for (const method of Object.values(service.methods)) {
    // a raw method's messages are Buffers, which serializerFor sends as they are
    definition[method.name] = {
      path: method.path,
      requestStream: method.requestStream,
      responseStream: method.responseStream,
      requestSerialize: serializerFor(method.request),
      requestDeserialize: rawRequests.has(method.name) ? rawRequest : deserializerFor(method.request),
      responseSerialize: serializerFor(method.response),
      responseDeserialize: rawResponses.has(method.name) ? rawResponse : deserializerFor(method.response),
      originalName: method.name,
    };
  }
  return definition as ServiceDefinition;
}
