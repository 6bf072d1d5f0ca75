import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { grpcServiceDefinition, type WireMessage } from './grpc-service.js';

const root = protobuf.parse(`
  syntax = "proto3";
  package demo.v1;
  message Item { string name = 1; int64 size = 2; oneof value { string text = 3; int32 number = 4; } }
  service Demo {
    rpc Echo(Item) returns (Item);
    rpc Repeat(Item) returns (stream Item);
  }
`).root;

describe('grpcServiceDefinition', () => {
  const definition = grpcServiceDefinition(root.lookupService('demo.v1.Demo'));
  const server = new grpc.Server();
  let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  before(async () => {
    server.addService(definition, {
      Echo: (call: grpc.ServerUnaryCall<WireMessage, WireMessage>, done: grpc.sendUnaryData<WireMessage>) =>
        done(null, call.request),
      Repeat: (call: grpc.ServerWritableStream<WireMessage, WireMessage>) => {
        for (let i = 0; i < 3; i++) call.write({ ...call.request, number: i });
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const Client = grpc.makeGenericClientConstructor(definition, 'Demo');
    client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof client;
  });

  after(() => {
    client.close();
    server.forceShutdown();
  });

  test('uses the fully qualified method path', () => {
    assert.equal(definition.Echo!.path, '/demo.v1.Demo/Echo');
    assert.equal(definition.Repeat!.responseStream, true);
  });

  test('a unary call round-trips int64 as a string and names the oneof case', async () => {
    const reply = await new Promise<WireMessage>((resolve, reject) =>
      client.Echo(
        { name: 'a', size: '9007199254740993', text: 'hi' },
        (err: Error | null, value: WireMessage) => (err ? reject(err) : resolve(value)),
      ),
    );
    assert.deepEqual(reply, { name: 'a', size: '9007199254740993', text: 'hi', value: 'text' });
  });

  test('messageRequests and messageResponses hand over decoded messages', () => {
    const type = root.lookupType('demo.v1.Item');
    const bytes = Buffer.from(type.encode(type.fromObject({ name: 'a', size: '9007199254740993' })).finish());
    const messages = grpcServiceDefinition(root.lookupService('demo.v1.Demo'), {
      messageRequests: ['Echo'],
      messageResponses: true,
    });
    const request = messages.Echo!.requestDeserialize(bytes) as WireMessage;
    assert.ok(request instanceof type.ctor);
    assert.equal(String(request.size), '9007199254740993');
    assert.ok(messages.Repeat!.responseDeserialize(bytes) instanceof type.ctor);
    assert.equal(Object.getPrototypeOf(messages.Repeat!.requestDeserialize(bytes)), Object.prototype);
  });

  test('encoderReadyRequests encode without a fromObject copy; wire bytes are sent as they are', () => {
    const type = root.lookupType('demo.v1.Item');
    const ready = grpcServiceDefinition(root.lookupService('demo.v1.Demo'), {
      encoderReadyRequests: ['Echo'],
    });
    const value = { name: 'a', size: 7, text: 'hi' };
    const expected = Buffer.from(type.encode(type.fromObject(value)).finish());
    assert.deepEqual(ready.Echo!.requestSerialize(value), expected);
    assert.deepEqual(
      type.toObject(type.decode(ready.Echo!.requestSerialize(value))),
      type.toObject(type.decode(expected)),
    );
    // Methods not listed still convert first (here an int64 given as a decimal string).
    assert.deepEqual(
      ready.Repeat!.requestSerialize({ name: 'a', size: '9007199254740993' }),
      Buffer.from(type.encode(type.fromObject({ name: 'a', size: '9007199254740993' })).finish()),
    );
    const wire = Uint8Array.from(expected);
    assert.deepEqual(ready.Echo!.responseSerialize(wire), expected);
  });

  test('a server stream delivers every message', async () => {
    const stream = client.Repeat({ name: 'b' }) as grpc.ClientReadableStream<WireMessage>;
    const got: unknown[] = [];
    for await (const item of stream) got.push((item as WireMessage).number ?? 0);
    assert.deepEqual(got, [0, 1, 2]);
  });
});
