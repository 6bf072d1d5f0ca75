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

export function serializerFor(type: Type): (value: WireMessage) => Buffer {
  return (value) => Buffer.from(type.encode(type.fromObject(value)).finish());
}

export function deserializerFor(type: Type): (bytes: Buffer) => WireMessage {
  return (bytes) => type.toObject(type.decode(bytes), DECODE_OPTIONS);
}

/** The grpc-js definition of `service`, with method paths `/<package>.<Service>/<Method>`. */
export function grpcServiceDefinition(service: Service): ServiceDefinition {
  const serviceName = service.fullName.replace(/^\./, '');
  const definition: Record<string, MethodDefinition<WireMessage, WireMessage>> = {};
  for (const method of service.methodsArray) {
    const requestType = resolvedType(method, 'request');
    const responseType = resolvedType(method, 'response');
    definition[method.name] = {
      path: `/${serviceName}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializerFor(requestType),
      requestDeserialize: deserializerFor(requestType),
      responseSerialize: serializerFor(responseType),
      responseDeserialize: deserializerFor(responseType),
      originalName: method.name,
    };
  }
  return definition;
}
