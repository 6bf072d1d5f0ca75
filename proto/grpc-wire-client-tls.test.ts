/**
 * WireChannel over TLS against a grpc-js server with the API's credentials
 * (controlplane/api/tls-credentials.ts): the server verified against a CA, ALPN h2, client
 * certificates seen by the server only when they chain to its CA, and a plaintext client or
 * server told apart from a broken one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { apiServerCredentials } from '../controlplane/api/tls-credentials.js';
import { GRPC_CODE } from './grpc-status.js';
import { GrpcCallError, WireChannel } from './grpc-wire-client.js';
import { CertificateAuthority, privateKeyToPem } from './support/pki.js';

const bytes = (value: Buffer): Buffer => value;
const service: grpc.ServiceDefinition = {
  Who: {
    path: '/test.Raw/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  },
};

/** Answers the subject of the verified client certificate, or "anonymous". */
function who(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
  const peer = call.getAuthContext().sslPeerCertificate;
  callback(null, Buffer.from(peer ? `CN=${String(peer.subject.CN)}` : 'anonymous'));
}

async function serve(credentials: grpc.ServerCredentials): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server();
  server.addService(service, { Who: who });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return { server, address: `127.0.0.1:${port}` };
}

const ca = CertificateAuthority.create({ commonName: 'test-ca' });
const otherCa = CertificateAuthority.create({ commonName: 'other-ca' });
const serving = ca.issueKeyPair({ commonName: 'api', usages: ['server auth'], ipAddresses: ['127.0.0.1'] });
const pem = (pair: ReturnType<CertificateAuthority['issueKeyPair']>) => ({
  cert: pair.certificate.toString(),
  key: privateKeyToPem(pair.privateKey),
});
const node = pem(ca.issueKeyPair({ commonName: 'system:node:n1', usages: ['client auth'] }));
const stranger = pem(otherCa.issueKeyPair({ commonName: 'system:node:n1', usages: ['client auth'] }));

const channel = (address: string, tls?: ConstructorParameters<typeof WireChannel>[1]['tls']) =>
  new WireChannel(address, {
    maxReceiveBytes: 1024 * 1024,
    keepaliveMs: 30_000,
    keepaliveTimeoutMs: 10_000,
    ...(tls ? { tls } : {}),
  });

async function callWho(ch: WireChannel): Promise<string> {
  try {
    return (await ch.unary('/test.Raw/Who', Buffer.alloc(0), { metadata: {}, timeoutMs: 5000 })).toString();
  } finally {
    ch.close();
  }
}

describe('WireChannel over TLS', () => {
  let tlsServer: { server: grpc.Server; address: string };
  let plainServer: { server: grpc.Server; address: string };
  before(async () => {
    tlsServer = await serve(
      apiServerCredentials({ clientCa: ca.certificatePem, ...pem(serving) }).credentials,
    );
    plainServer = await serve(grpc.ServerCredentials.createInsecure());
  });
  after(() => {
    tlsServer.server.forceShutdown();
    plainServer.server.forceShutdown();
  });

  test('a client that trusts the CA calls without a certificate; the server sees none', async () => {
    assert.equal(await callWho(channel(tlsServer.address, { ca: ca.certificatePem })), 'anonymous');
  });

  test("a client certificate of the server's CA reaches the call; one of another CA does not", async () => {
    assert.equal(
      await callWho(channel(tlsServer.address, { ca: ca.certificatePem, ...node })),
      'CN=system:node:n1',
    );
    assert.equal(
      await callWho(channel(tlsServer.address, { ca: ca.certificatePem, ...stranger })),
      'anonymous',
    );
  });

  test('a server whose certificate is not of the trusted CA is refused, saying so', async () => {
    await assert.rejects(callWho(channel(tlsServer.address, { ca: otherCa.certificatePem })), (err) => {
      assert.ok(err instanceof GrpcCallError);
      assert.equal(err.code, GRPC_CODE.UNAVAILABLE);
      assert.match(err.details, /TLS: the server's certificate is not signed by the CA this client trusts/);
      return true;
    });
  });

  test('unverified TLS reaches any server (for fetching what a pin then checks)', async () => {
    assert.equal(await callWho(channel(tlsServer.address, { unverified: true })), 'anonymous');
  });

  test('a plaintext client of a TLS server is told the server may serve TLS', async () => {
    await assert.rejects(callWho(channel(tlsServer.address)), (err) => {
      assert.ok(err instanceof GrpcCallError);
      assert.equal(err.code, GRPC_CODE.UNAVAILABLE);
      assert.match(err.details, /before answering: if it serves TLS, give this client the cluster CA/);
      return true;
    });
  });

  test('a TLS client of a plaintext server is told the server does not speak TLS', async () => {
    await assert.rejects(callWho(channel(plainServer.address, { ca: ca.certificatePem })), (err) => {
      assert.ok(err instanceof GrpcCallError);
      assert.equal(err.code, GRPC_CODE.UNAVAILABLE);
      assert.match(err.details, /TLS: the server does not speak TLS/);
      return true;
    });
  });
});
