import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { messages } from './gen/messages.js';
import { grpcServiceDefinition } from './grpc-service.js';
import { RESPONSE_STREAM, service, type WireMessage } from './wire/message-type.js';

// A service of its own over skiff.v1's messages: the bridge knows no particular service.
const demo = service('demo.v1.Demo', [
  ['Echo', messages.RegistryBlob, messages.RegistryBlob],
  ['Pick', messages.IntOrString, messages.IntOrString],
  ['Repeat', messages.RegistryBlob, messages.RegistryBlob, RESPONSE_STREAM],
]);

describe('grpcServiceDefinition', () => {
  const definition = grpcServiceDefinition(demo);
  const server = new grpc.Server();
  let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  before(async () => {
    server.addService(definition, {
      Echo: (call: grpc.ServerUnaryCall<WireMessage, WireMessage>, done: grpc.sendUnaryData<WireMessage>) =>
        done(null, call.request),
      Pick: (call: grpc.ServerUnaryCall<WireMessage, WireMessage>, done: grpc.sendUnaryData<Uint8Array>) =>
        // an answer given as its wire bytes goes out as it is
        done(null, messages.IntOrString.encode({ strVal: `${String(call.request.intVal)}%` })),
      Repeat: (call: grpc.ServerWritableStream<WireMessage, WireMessage>) => {
        for (let i = 0; i < 3; i++) call.write({ ...call.request, size: i });
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

  const unary = (method: string, request: WireMessage): Promise<WireMessage> =>
    new Promise((resolve, reject) =>
      client[method]!(request, (err: Error | null, value: WireMessage) =>
        err ? reject(err) : resolve(value),
      ),
    );

  test('uses the fully qualified method path', () => {
    assert.equal(definition.Echo!.path, '/demo.v1.Demo/Echo');
    assert.equal(definition.Repeat!.responseStream, true);
    assert.equal(definition.Echo!.responseStream, false);
  });

  test("a unary call carries messages in the codecs' shape, int64 as a number", async () => {
    assert.deepStrictEqual(await unary('Echo', { digest: 'sha256:ab', size: 2 ** 40 }), {
      digest: 'sha256:ab',
      size: 2 ** 40,
    });
    assert.deepStrictEqual(await unary('Pick', { intVal: 25 }), { strVal: '25%' });
  });

  test('wire bytes are sent as they are', () => {
    const bytes = messages.RegistryBlob.encode({ digest: 'd', size: 7 });
    assert.equal(definition.Echo!.responseSerialize(Uint8Array.from(bytes)).equals(bytes), true);
    assert.deepStrictEqual(definition.Echo!.requestDeserialize(bytes), { digest: 'd', size: 7 });
  });

  test('a server stream delivers every message', async () => {
    const stream = client.Repeat({ digest: 'b' }) as grpc.ClientReadableStream<WireMessage>;
    const got: unknown[] = [];
    for await (const item of stream) got.push((item as WireMessage).size ?? 0);
    assert.deepEqual(got, [0, 1, 2]);
  });
});
