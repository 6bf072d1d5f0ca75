/**
 * The cluster DNS server on loopback, with real sockets: asked by a client of dns-packet and by
 * `dig` (bind9-dnsutils), forwarding to an upstream this test runs on loopback (nothing ever goes
 * to a real resolver), and fed thousands of malformed messages.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import dnsPacket, { type Answer, type DecodedPacket } from 'dns-packet';
import { pino } from 'pino';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { ClusterRecords, serviceRecords } from './cluster-records.js';
import { DnsServer } from './dns-server.js';
import { Forwarder } from './forwarder.js';
import { QueryHandler } from './query-handler.js';
import { framed, readTcpMessages } from './tcp-framing.js';
import { LoopbackUpstream, askUdp, askTcp, dig as digAt } from './loopback-peers.js';

const zone = { domain: 'cluster.local', dnsAddress: '10.96.0.10' };

function service(name: string, spec: Service['spec']): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec } as Service;
}

const manyEndpoints: EndpointSlice = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'many-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'many' } },
  addressType: 'IPv4',
  endpoints: Array.from({ length: 200 }, (_, i) => ({
    addresses: [`10.244.${Math.floor(i / 250)}.${(i % 250) + 1}`],
    conditions: { ready: true },
  })),
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
};

const dbSlice: EndpointSlice = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'db-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'db' } },
  addressType: 'IPv4',
  endpoints: [
    { addresses: ['10.244.1.5'], hostname: 'db-0', conditions: { ready: true } },
    { addresses: ['10.244.2.6'], hostname: 'db-1', conditions: { ready: true } },
  ],
  ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }],
};

describe('cluster DNS server on loopback', () => {
  let upstream: LoopbackUpstream;
  let forwarder: Forwarder;
  let records: ClusterRecords;
  let server: DnsServer;
  let port: number;

  before(async () => {
    upstream = await LoopbackUpstream.start({
      'example.test': { A: [{ data: '192.0.2.10', ttl: 60 }] },
      'big.example.test': {
        TXT: Array.from({ length: 60 }, (_, i) => ({ data: `record ${i} ${'x'.repeat(40)}`, ttl: 60 })),
      },
    });
    forwarder = new Forwarder({ upstreams: [upstream.address], log: pino({ level: 'silent' }) });
    records = new ClusterRecords(zone);
    const put = (svc: Service, slices: EndpointSlice[] = []) =>
      records.setService(`shop/${svc.metadata.name}`, serviceRecords(svc, slices, zone.domain));
    put(service('web', { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }));
    put(service('db', { clusterIP: 'None' }), [dbSlice]);
    put(service('many', { clusterIP: 'None' }), [manyEndpoints]);
    put(service('search', { type: 'ExternalName', externalName: 'example.test' }));
    const handler = new QueryHandler({ records, forward: (q) => forwarder.resolve(q) });
    server = await DnsServer.listen({
      address: '127.0.0.1',
      port: 0,
      handler,
      log: pino({ level: 'silent' }),
    });
    port = server.port;
  });

  after(async () => {
    await server?.close();
    forwarder?.close();
    await upstream?.close();
  });

  const ask = (name: string, type: string, options: { tcp?: boolean; edns?: number } = {}) =>
    (options.tcp ? askTcp : askUdp)(port, name, type, options.edns);
  const datas = (p: DecodedPacket, section: 'answers' | 'additionals' = 'answers') =>
    (p[section] ?? []).filter((a) => a.type !== 'OPT').map((a: Answer) => ('data' in a ? a.data : undefined));

  test('A of a ClusterIP service, authoritative, TTL 5', async () => {
    const reply = await ask('web.shop.svc.cluster.local', 'A');
    assert.equal(reply.rcode, 'NOERROR');
    assert.equal(reply.flag_aa, true);
    assert.deepEqual(datas(reply), ['10.96.0.20']);
    assert.equal((reply.answers![0] as { ttl: number }).ttl, 5);
  });

  test('SRV with the target in the additional section; PTR of the ClusterIP', async () => {
    const srv = await ask('_http._tcp.web.shop.svc.cluster.local', 'SRV');
    assert.deepEqual(datas(srv), [
      { priority: 0, weight: 100, port: 80, target: 'web.shop.svc.cluster.local' },
    ]);
    assert.deepEqual(datas(srv, 'additionals'), ['10.96.0.20']);
    const ptr = await ask('20.0.96.10.in-addr.arpa', 'PTR');
    assert.deepEqual(datas(ptr), ['web.shop.svc.cluster.local']);
  });

  test('headless: the endpoints and their hostnames', async () => {
    assert.deepEqual(datas(await ask('db.shop.svc.cluster.local', 'A')).sort(), ['10.244.1.5', '10.244.2.6']);
    assert.deepEqual(datas(await ask('db-1.db.shop.svc.cluster.local', 'A')), ['10.244.2.6']);
  });

  test('NXDOMAIN and NODATA, both with the SOA in authority', async () => {
    const nx = await ask('nothing.shop.svc.cluster.local', 'A');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.authorities![0]!.type, 'SOA');
    const nodata = await ask('web.shop.svc.cluster.local', 'AAAA');
    assert.equal(nodata.rcode, 'NOERROR');
    assert.equal(nodata.answers!.length, 0);
    assert.equal(nodata.authorities![0]!.type, 'SOA');
  });

  test("ExternalName: the CNAME, then the target's address from the upstream", async () => {
    const reply = await ask('search.shop.svc.cluster.local', 'A');
    assert.equal(reply.rcode, 'NOERROR');
    assert.deepEqual(
      reply.answers!.map((a) => [a.type, 'data' in a ? a.data : undefined]),
      [
        ['CNAME', 'example.test'],
        ['A', '192.0.2.10'],
      ],
    );
  });

  test('other names go upstream once, then come from the cache with their TTL counting down', async () => {
    const before = upstream.queries;
    const first = await ask('Example.Test', 'A');
    assert.deepEqual(datas(first), ['192.0.2.10']);
    assert.equal(first.flag_aa, false);
    const second = await ask('example.test', 'A');
    assert.deepEqual(datas(second), ['192.0.2.10']);
    assert.ok((second.answers![0] as { ttl: number }).ttl <= 60);
    assert.equal(upstream.queries - before <= 1, true, 'the second answer came from the cache');
    // negative answers are cached for the SOA's minimum
    const nx1 = await ask('missing.example.test', 'A');
    const nx2 = await ask('missing.example.test', 'A');
    assert.equal(nx1.rcode, 'NXDOMAIN');
    assert.equal(nx2.rcode, 'NXDOMAIN');
    assert.equal(upstream.countFor('missing.example.test'), 1);
  });

  test('a long upstream answer: truncated to the client over UDP, whole over TCP', async () => {
    const udp = await ask('big.example.test', 'TXT');
    assert.equal(udp.flag_tc, true);
    const tcp = await ask('big.example.test', 'TXT', { tcp: true });
    assert.equal(tcp.flag_tc, false);
    assert.equal(tcp.answers!.length, 60);
  });

  test('a headless service of 200 endpoints: TC over UDP (with EDNS0 too, capped at 4096 bytes), all 200 over TCP', async () => {
    const udp = await ask('many.shop.svc.cluster.local', 'A');
    assert.equal(udp.flag_tc, true);
    assert.equal(udp.answers!.length, 0);
    const edns = await ask('many.shop.svc.cluster.local', 'A', { edns: 1232 });
    assert.equal(edns.flag_tc, true);
    // dns-packet writes every name whole (no compression): 200 records pass even 4096 bytes
    const roomy = await ask('many.shop.svc.cluster.local', 'A', { edns: 65000 });
    assert.equal(roomy.flag_tc, true);
    const small = await ask('db.shop.svc.cluster.local', 'A', { edns: 4096 });
    assert.equal(small.flag_tc, false);
    assert.equal(small.answers!.length, 2);
    const tcp = await ask('many.shop.svc.cluster.local', 'A', { tcp: true });
    assert.equal(tcp.answers!.length, 200);
  });

  test('several queries on one TCP connection', async () => {
    const replies = await new Promise<DecodedPacket[]>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      const got: DecodedPacket[] = [];
      socket.on('error', reject);
      readTcpMessages(socket, (message) => {
        got.push(dnsPacket.decode(message));
        if (got.length === 3) {
          socket.destroy();
          resolve(got);
        }
      });
      const names = [
        'web.shop.svc.cluster.local',
        'db.shop.svc.cluster.local',
        'nothing.shop.svc.cluster.local',
      ];
      // all three in one write: the framing must cut them apart
      socket.write(
        Buffer.concat(
          names.map((name, id) =>
            framed(dnsPacket.encode({ type: 'query', id, flags: 0x100, questions: [{ type: 'A', name }] })),
          ),
        ),
      );
    });
    assert.deepEqual(replies.map((r) => r.id).sort(), [0, 1, 2]);
  });

  test('malformed messages: FORMERR where there is a header, else dropped; the server keeps serving', async () => {
    // two questions
    const two = dnsPacket.encode({
      type: 'query',
      id: 7,
      questions: [
        { type: 'A', name: 'a.test' },
        { type: 'A', name: 'b.test' },
      ],
    });
    assert.equal((await rawUdp(port, two))?.rcode, 'FORMERR');
    // a header that promises a question and ends
    const cut = dnsPacket
      .encode({ type: 'query', id: 8, questions: [{ type: 'A', name: 'web.shop.svc.cluster.local' }] })
      .subarray(0, 20);
    const formerr = await rawUdp(port, cut);
    assert.equal(formerr?.rcode, 'FORMERR');
    assert.equal(formerr?.id, 8);
    // shorter than a header: no reply
    assert.equal(await rawUdp(port, Buffer.from([1, 2, 3]), 300), undefined);
    // a response sent to the server: no reply
    assert.equal(
      await rawUdp(port, dnsPacket.encode({ type: 'response', id: 9, questions: [] }), 300),
      undefined,
    );
    assert.deepEqual(datas(await ask('web.shop.svc.cluster.local', 'A')), ['10.96.0.20']);
  });

  test('10,000 questions, each a pointer to the one before: FORMERR at once, not a held event loop', async () => {
    const questions = 10_000;
    const query = Buffer.alloc(12 + 5 + (questions - 1) * 6);
    query.writeUInt16BE(77, 0);
    query.writeUInt16BE(questions, 4);
    let at = 12;
    query.writeUInt8(0, at); // the root name
    query.writeUInt32BE(0x00010001, at + 1); // A, IN
    let previous = at;
    at += 5;
    for (let i = 1; i < questions; i++) {
      query.writeUInt16BE(0xc000 | previous, at); // a name that is the previous question's name
      query.writeUInt32BE(0x00010001, at + 2);
      previous = at;
      at += 6;
    }
    // decoded, each cost ~35 ms of the agent's event loop: ten, a third of a second
    const started = performance.now();
    for (let i = 0; i < 10; i++) assert.equal((await rawUdp(port, query))?.rcode, 'FORMERR');
    const ms = performance.now() - started;
    assert.ok(ms < 150, `ten answered in ${ms.toFixed(0)} ms`);
  });

  test('fuzz: thousands of random and mutated messages over UDP and TCP, then still answering', async () => {
    const valid = dnsPacket.encode({
      type: 'query',
      id: 1,
      flags: 0x100,
      questions: [{ type: 'SRV', name: '_http._tcp.web.shop.svc.cluster.local' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as Answer],
    });
    const messages: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      if (i % 3 === 0) messages.push(randomBytes(Math.floor(Math.random() * 600)));
      else {
        const mutated = Buffer.from(valid);
        for (let flips = 1 + Math.floor(Math.random() * 6); flips > 0; flips--)
          mutated[Math.floor(Math.random() * mutated.length)] = Math.floor(Math.random() * 256);
        messages.push(
          i % 3 === 1 ? mutated : mutated.subarray(0, Math.floor(Math.random() * mutated.length)),
        );
      }
    }
    messages.push(Buffer.alloc(9000, 0xff)); // oversized for any DNS over UDP reply
    const sender = createSocket('udp4');
    for (const [i, message] of messages.entries()) {
      await new Promise<void>((resolve) => sender.send(message, port, '127.0.0.1', () => resolve()));
      if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    sender.close();
    // TCP: frames of garbage, a frame longer than what follows, a zero length
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }, () => {
          const chunk = Buffer.concat(messages.slice(i * 20, i * 20 + 20).map((m) => framed(m)));
          socket.write(i % 5 === 0 ? Buffer.concat([chunk, Buffer.from([0xff, 0xff, 1, 2])]) : chunk);
          if (i % 7 === 0) socket.write(Buffer.from([0, 0]));
          setTimeout(() => socket.destroy(), 20);
        });
        socket.on('error', () => {});
        socket.on('close', () => resolve());
      });
    }
    const reply = await ask('_http._tcp.web.shop.svc.cluster.local', 'SRV');
    assert.equal(reply.rcode, 'NOERROR');
    assert.equal(reply.answers!.length, 1);
    assert.deepEqual(datas(await ask('web.shop.svc.cluster.local', 'A', { tcp: true })), ['10.96.0.20']);
  });

  describe('asked with dig', () => {
    const dig = (...args: string[]) => digAt(port, '+time=2', ...args);

    test('A, SRV, PTR and NXDOMAIN as dig shows them', async () => {
      assert.equal((await dig('+short', 'web.shop.svc.cluster.local', 'A')).trim(), '10.96.0.20');
      assert.equal(
        (await dig('+short', '_http._tcp.web.shop.svc.cluster.local', 'SRV')).trim(),
        '0 100 80 web.shop.svc.cluster.local.',
      );
      assert.equal((await dig('+short', '-x', '10.96.0.20')).trim(), 'web.shop.svc.cluster.local.');
      const nx = await dig('nothing.shop.svc.cluster.local', 'A');
      assert.match(nx, /status: NXDOMAIN/);
      assert.match(nx, /flags: qr aa rd ra;/);
      assert.match(nx, /AUTHORITY: 1/);
    });

    test('dig falls back to TCP on a truncated answer and gets all 200 endpoints', async () => {
      const out = await dig('+noedns', 'many.shop.svc.cluster.local', 'A');
      assert.match(out, /Truncated, retrying in TCP mode/);
      assert.match(out, /ANSWER: 200/);
      const tcp = await dig('+tcp', '+short', 'db.shop.svc.cluster.local', 'A');
      assert.deepEqual(tcp.trim().split('\n').sort(), ['10.244.1.5', '10.244.2.6']);
    });

    test('a forwarded name and an ExternalName through dig', async () => {
      assert.equal((await dig('+short', 'example.test', 'A')).trim(), '192.0.2.10');
      assert.equal(
        (await dig('+short', 'search.shop.svc.cluster.local', 'A')).trim(),
        'example.test.\n192.0.2.10',
      );
    });
  });
});

describe('cluster DNS server against a TCP client that never reads', () => {
  test('it is answered only as far as its replies are taken: the agent’s memory stays bounded', async () => {
    let answered = 0;
    const huge = Buffer.alloc(60_000);
    // every query answered at once with 60 KB: 2,000 unread would be 120 MB held by the agent
    const handler = {
      answer: (query: Buffer) => {
        answered++;
        huge.writeUInt16BE(query.readUInt16BE(0), 0);
        return huge;
      },
    } as unknown as QueryHandler;
    const server = await DnsServer.listen({
      address: '127.0.0.1',
      port: 0,
      handler,
      log: pino({ level: 'silent' }),
    });
    const socket = connect({ host: '127.0.0.1', port: server.port });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.once('connect', resolve);
      });
      socket.pause(); // the client reads nothing
      const query = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'x.test' }] });
      socket.write(Buffer.concat(Array.from({ length: 2000 }, () => framed(query))));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.ok(answered < 500, `${answered} of 2,000 queries answered to a client that read none`);
      assert.ok(answered >= 1);
    } finally {
      socket.destroy();
      await server.close();
    }
  });
});

/** One raw datagram to the server; its decoded reply, or undefined after `waitMs`. */
function rawUdp(
  port: number,
  message: Buffer,
  waitMs = 2000,
): Promise<(DecodedPacket & { rcode?: string }) | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, waitMs);
    socket.on('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(dnsPacket.decode(reply) as DecodedPacket & { rcode?: string });
    });
    socket.send(message, port, '127.0.0.1');
  });
}
