/**
 * A generic bridge from a protobufjs reflected `Service` (loaded from the .proto files at run
 * time) to a grpc-js `ServiceDefinition`, which both `Server.addService` and
 * `makeGenericClientConstructor` accept. Messages cross the bridge as plain objects in
 * protobufjs' JSON-ish shape (camelCase fields, int64 as decimal strings, enums as names, oneofs
 * with their virtual case field); converting them to and from domain objects is the caller's job.
 *
 * Used by the API service (skiff.v1.Api) and by every later service (the agent's), so it knows
 * nothing about either.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import type { IConversionOptions, Method, Service, Type } from 'protobufjs';

/** A decoded message: what handlers receive and return. */
export type WireMessage = Record<string, unknown>;

export const DECODE_OPTIONS: IConversionOptions = {
  longs: String,
  enums: String,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: true,
};

function resolvedType(method: Method, which: 'request' | 'response'): Type {
  method.resolve();
  const type = which === 'request' ? method.resolvedRequestType : method.resolvedResponseType;
  if (type === null) {
    throw new TypeError(`build gRPC service: ${which} type of ${method.fullName} did not resolve`);
  }
  return type;
}

/** The writer's bytes as a Buffer without copying them (Buffer.from(buffer) would copy). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Encodes a message given as a plain object. A Uint8Array is taken as the message's wire bytes,
 * already encoded (e.g. an object sent as it is stored, see objects.ts
 * envelopeBytesWithResourceVersion), and sent as they are.
 */
export function serializerFor(type: Type): (value: WireMessage | Uint8Array) => Buffer {
  return (value) =>
    value instanceof Uint8Array ? asBuffer(value) : asBuffer(type.encode(type.fromObject(value)).finish());
}

/**
 * Encodes a value that already has the generated encoder's types throughout (numbers for int64,
 * base64 text for bytes, oneof members as plain fields: what objects.ts `toEnvelope` builds), so the
 * fromObject copy serializerFor makes first would only be thrown away.
 */
export function encoderReadySerializerFor(type: Type): (value: WireMessage) => Buffer {
  return (value) => asBuffer(type.encode(value).finish());
}

export function deserializerFor(type: Type): (bytes: Buffer) => WireMessage {
  return (bytes) => type.toObject(type.decode(bytes), DECODE_OPTIONS);
}

/**
 * Hands over the decoded protobufjs message itself: fields under their protobufjs names, set ones
 * as own properties (defaults on the prototype), nested messages as messages, int64 as Long,
 * bytes as Buffer. For receivers that convert the message anyway (objects.ts `fromEnvelope`
 * takes one as is), so the plain-object copy that toObject makes would be thrown away.
 */
export function messageDeserializerFor(type: Type): (bytes: Buffer) => WireMessage {
  return (bytes) => type.decode(bytes) as unknown as WireMessage;
}

export interface ServiceDefinitionOptions {
  /** Methods whose requests are decoded with messageDeserializerFor instead of to plain objects. */
  messageRequests?: readonly string[];
  /** Methods whose requests the caller builds in the encoder's types (see encoderReadySerializerFor). */
  encoderReadyRequests?: readonly string[];
  /** Decode every response with messageDeserializerFor. */
  messageResponses?: boolean;
  /**
   * Methods whose requests, or responses, cross as wire bytes (Buffers) both ways: the caller
   * encodes and decodes them itself, or passes them on without (pod stream frames).
   * `maxRawRequestBytes` bounds raw requests: a larger one fails the call before it is queued.
   */
  rawRequests?: readonly string[];
  rawResponses?: readonly string[];
  maxRawRequestBytes?: number;
}

const asIs = (value: WireMessage | Uint8Array): Buffer =>
  Buffer.isBuffer(value) ? value : asBuffer(value as Uint8Array);

/** The grpc-js definition of `service`, with method paths `/<package>.<Service>/<Method>`. */
export function grpcServiceDefinition(
  service: Service,
  options: ServiceDefinitionOptions = {},
): ServiceDefinition {
  const serviceName = service.fullName.replace(/^\./, '');
  const messageRequests = new Set(options.messageRequests ?? []);
  const encoderReadyRequests = new Set(options.encoderReadyRequests ?? []);
  const rawRequests = new Set(options.rawRequests ?? []);
  const rawResponses = new Set(options.rawResponses ?? []);
  const maxRaw = options.maxRawRequestBytes ?? Infinity;
  const rawRequest = (bytes: Buffer): WireMessage => {
    if (bytes.length > maxRaw)
      throw new RangeError(`a message of ${bytes.length} bytes, above the ${maxRaw} this call takes`);
    return bytes as unknown as WireMessage;
  };
  const definition: Record<string, MethodDefinition<WireMessage, WireMessage>> = {};
  for (const method of service.methodsArray) {
    const requestType = resolvedType(method, 'request');
    const responseType = resolvedType(method, 'response');
    definition[method.name] = {
      path: `/${serviceName}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: rawRequests.has(method.name)
        ? asIs
        : encoderReadyRequests.has(method.name)
          ? encoderReadySerializerFor(requestType)
          : serializerFor(requestType),
      requestDeserialize: rawRequests.has(method.name)
        ? rawRequest
        : messageRequests.has(method.name)
          ? messageDeserializerFor(requestType)
          : deserializerFor(requestType),
      responseSerialize: rawResponses.has(method.name) ? asIs : serializerFor(responseType),
      responseDeserialize: rawResponses.has(method.name)
        ? (bytes: Buffer) => bytes as unknown as WireMessage
        : options.messageResponses
          ? messageDeserializerFor(responseType)
          : deserializerFor(responseType),
      originalName: method.name,
    };
  }
  return definition;
}
