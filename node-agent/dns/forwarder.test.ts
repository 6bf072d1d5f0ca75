/**
 * The forwarder against cache poisoning, on loopback only: a silent "upstream" socket sees the
 * query, and a second socket (a pod on the node, which can reach the node's sockets directly)
 * answers it with the right id and question from another port.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import dnsPacket, { type Answer } from 'dns-packet';
import { pino } from 'pino';
import { Forwarder } from './forwarder.js';

function bound(): Promise<Socket> {
  const socket = createSocket('udp4');
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve(socket)));
}

/** The forged reply to `query`: its id and question, an A record of the attacker's choosing. */
function forged(query: Buffer): Buffer {
  const asked = dnsPacket.decode(query);
  return dnsPacket.encode({
    type: 'response',
    id: asked.id,
    flags: dnsPacket.RECURSION_AVAILABLE,
    questions: asked.questions,
    answers: [{ type: 'A', name: asked.questions![0]!.name, ttl: 3600, data: '203.0.113.66' } as Answer],
  });
}

function forwarderTo(upstream: Socket, timeoutMs: number): Forwarder {
  return new Forwarder({
    upstreams: [{ address: '127.0.0.1', port: upstream.address().port }],
    timeoutMs,
    log: pino({ level: 'silent' }),
  });
}

describe('forwarder against forged replies', () => {
  let upstream: Socket;
  let attacker: Socket;
  const seen: RemoteInfo[] = [];

  before(async () => {
    upstream = await bound();
    attacker = await bound();
  });
  after(() => {
    upstream.close();
    attacker.close();
  });

  test('a reply with the right id and question from another port is not taken (nor cached)', async () => {
    upstream.removeAllListeners('message');
    upstream.on('message', (query, from) => {
      seen.push(from);
      attacker.send(forged(query), from.port, from.address);
    });
    const forwarder = forwarderTo(upstream, 300);
    try {
      const reply = await forwarder.resolve({ type: 'A', name: 'bank.example.test' });
      assert.equal(reply.rcode, 'SERVFAIL', JSON.stringify(reply.answers));
      assert.equal(forwarder.size, 0);
    } finally {
      forwarder.close();
    }
  });

  test('the upstream’s own reply is taken; each query leaves from a port of its own', async () => {
    upstream.removeAllListeners('message');
    seen.length = 0;
    upstream.on('message', (query, from) => {
      seen.push(from);
      upstream.send(forged(query), from.port, from.address);
    });
    const forwarder = forwarderTo(upstream, 1000);
    try {
      for (const name of ['a.example.test', 'b.example.test', 'c.example.test']) {
        const reply = await forwarder.resolve({ type: 'A', name });
        assert.equal(reply.answers.length, 1);
      }
      assert.equal(
        new Set(seen.map((s) => s.port)).size,
        3,
        `source ports ${seen.map((s) => s.port).join(', ')}`,
      );
    } finally {
      forwarder.close();
    }
  });
});
