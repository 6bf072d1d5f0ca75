import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { services } from '../../proto/gen/messages.js';
import { grpcServiceDefinition } from '../../proto/grpc-service.js';
import { MAX_FRAME_BYTES } from '../../proto/pod-streams.js';
import { CertificateAuthority, privateKeyToPem } from '../../proto/support/pki.js';
import { CONTROL_PLANE_USER_PREFIX, CONTROL_PLANES_GROUP } from '../api/auth.js';
import { apiServerCredentials } from '../api/tls-credentials.js';
import { PeerRelay } from './peer-relay.js';
import type { FrameCall } from './splice.js';

const log = pino({ level: 'silent' });
const ca = CertificateAuthority.create({ commonName: 'skiff-cluster-ca' });
const session = { kind: 'logs' as const, namespace: 'default', pod: 'p', podUid: 'u', container: 'c' };

/** Each relay call the holder took, with the serial of the certificate its caller presented. */
const calls: Array<{ serial: string | undefined }> = [];
let server: grpc.Server;
let address: string;

before(async () => {
  // a holder's RelaySession: says the agent took the session, then echoes every frame
  server = new grpc.Server();
  server.addService(
    grpcServiceDefinition(services.ControlPlanes, {
      rawRequests: ['RelaySession'],
      rawResponses: ['RelaySession'],
      maxRawRequestBytes: MAX_FRAME_BYTES,
    }),
    {
      RelaySession: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        calls.push({ serial: call.getAuthContext().sslPeerCertificate?.serialNumber });
        let first = true;
        call.on('data', (frame: Buffer) => {
          if (first) call.write(Buffer.alloc(0));
          else call.write(frame);
          first = false;
        });
        call.on('end', () => call.end());
      },
    },
  );
  const serving = ca.issueKeyPair({
    commonName: 'holder',
    usages: ['server auth'],
    ipAddresses: ['127.0.0.1'],
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      apiServerCredentials({
        clientCa: ca.certificatePem,
        cert: serving.certificate.toString(),
        key: privateKeyToPem(serving.privateKey),
      }).credentials,
      (err, bound) => (err ? reject(err) : resolve(bound)),
    ),
  );
  address = `127.0.0.1:${port}`;
});
after(() => server.forceShutdown());

function relay(options: { certificateTtlMs?: number; idleMs?: number }): {
  relay: PeerRelay;
  issued: string[];
} {
  const issued: string[] = [];
  return {
    issued,
    relay: new PeerRelay({
      ca: ca.certificatePem,
      issue: (notAfter) => {
        const pair = ca.issueKeyPair({
          commonName: `${CONTROL_PLANE_USER_PREFIX}cp-test`,
          organizations: [CONTROL_PLANES_GROUP],
          usages: ['client auth'],
          notAfter,
        });
        issued.push(pair.certificate.serialNumber);
        return { cert: pair.certificate.toString(), key: privateKeyToPem(pair.privateKey) };
      },
      log,
      ...options,
    }),
  };
}

/** One frame through `call`, and the one that comes back. */
async function echo(call: FrameCall, text: string): Promise<string> {
  const back = new Promise<Buffer>((resolve) => call.once('data', resolve));
  call.write(Buffer.from(text));
  return (await back).toString();
}

/** Ends `call` from this side and waits for the holder's end. */
async function finish(call: FrameCall): Promise<void> {
  const ended = new Promise<void>((resolve, reject) => {
    call.once('end', resolve);
    call.once('error', reject);
  });
  call.end();
  await ended;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('the relay certificate is issued again while running: new connections present the new one, a call under way goes on', async () => {
  calls.length = 0;
  // issued again every second
  const { relay: peers, issued } = relay({ certificateTtlMs: 2000 });
  try {
    const holder = { controlPlane: 'holder', address };
    const first = await peers.open(holder, 'n1', session, 'alice', new AbortController().signal);
    assert.equal(calls[0]!.serial, issued[0]);
    await sleep(1500);
    assert.ok(issued.length >= 2, 'a new certificate was issued');
    assert.equal(await echo(first.call, 'still there'), 'still there', 'the call under way goes on');
    const second = await peers.open(holder, 'n1', session, 'alice', new AbortController().signal);
    assert.equal(calls[1]!.serial, issued.at(-1), 'a new connection presents the new certificate');
    assert.equal(peers.openConnections, 2, 'the old connection stays while its call does');
    await finish(first.call);
    assert.equal(peers.openConnections, 1, 'and goes with it');
    await finish(second.call);
  } finally {
    peers.close();
  }
});

test('a connection to a peer without calls is closed after idleMs; one with a call is kept', async () => {
  const { relay: peers } = relay({ idleMs: 100 });
  try {
    const holder = { controlPlane: 'holder', address };
    const { call } = await peers.open(holder, 'n1', session, 'alice', new AbortController().signal);
    await sleep(300);
    assert.equal(peers.openConnections, 1);
    assert.equal(await echo(call, 'busy'), 'busy');
    await finish(call);
    await sleep(300);
    assert.equal(peers.openConnections, 0, 'the idle connection was closed');
    // the next session connects again
    const again = await peers.open(holder, 'n1', session, 'alice', new AbortController().signal);
    assert.equal(await echo(again.call, 'again'), 'again');
    await finish(again.call);
  } finally {
    peers.close();
  }
});
