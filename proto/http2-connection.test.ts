/**
 * The HTTP/2 client connection against a scripted peer (a node:net server in the test that sends
 * exactly the frames a case needs, malformed ones included) and against Node's own HTTP/2 server.
 * Every hostile case must end in a clean error on the stream or the connection: no hang, no throw.
 * (grpc-wire-client.test.ts runs it against grpc-js's server.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeHeaderBlock, encodeInteger, type HeaderField } from './hpack.js';
import {
  H2_ERROR,
  Http2Error,
  connectHttp2,
  type Http2ClientConnection,
  type Http2ClientStream,
  type Http2ConnectionOptions,
} from './http2-connection.js';

const FRAME = {
  DATA: 0,
  HEADERS: 1,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
};
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function rawFrame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

const u32 = (...values: number[]): Buffer => {
  const out = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => out.writeUInt32BE(v, 4 * i));
  return out;
};
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const ok200: HeaderField[] = [
  [':status', '200'],
  ['content-type', 'application/grpc'],
];

/** The server side of one connection, scripted by the test. */
class ScriptedPeer {
  private buffered = Buffer.alloc(0);
  private prefaceSeen = false;
  private readonly frames: Frame[] = [];
  private wake: (() => void) | undefined;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      if (!this.prefaceSeen) {
        if (this.buffered.length < 24) return;
        assert.equal(this.buffered.subarray(0, 24).toString('latin1'), 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        this.buffered = this.buffered.subarray(24);
        this.prefaceSeen = true;
      }
      while (this.buffered.length >= 9) {
        const length = this.buffered.readUIntBE(0, 3);
        if (this.buffered.length < 9 + length) break;
        this.frames.push({
          type: this.buffered[3]!,
          flags: this.buffered[4]!,
          streamId: this.buffered.readUInt32BE(5) & 0x7fffffff,
          payload: Buffer.from(this.buffered.subarray(9, 9 + length)),
        });
        this.buffered = this.buffered.subarray(9 + length);
      }
      this.wake?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** SETTINGS (with `settings` as id/value pairs) and the ACK of the client's. */
  handshake(settings: Array<[number, number]> = []): void {
    const payload = Buffer.alloc(6 * settings.length);
    settings.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, 6 * i);
      payload.writeUInt32BE(value, 6 * i + 2);
    });
    this.send(rawFrame(FRAME.SETTINGS, 0, 0, payload), rawFrame(FRAME.SETTINGS, 1, 0));
  }

  /** The next frame the client sent that `matches`, skipping others. */
  async next(matches: (frame: Frame) => boolean, what: string): Promise<Frame> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const at = this.frames.findIndex(matches);
      if (at >= 0) return this.frames.splice(at, 1)[0]!;
      if (this.closed || Date.now() > deadline) assert.fail(`the client sent no ${what}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  /** The client's next request: its stream id and header block (it sends the block in one piece). */
  async request(): Promise<number> {
    return (await this.next((f) => f.type === FRAME.HEADERS, 'HEADERS')).streamId;
  }

  async goaway(): Promise<{ lastStreamId: number; code: number; debug: string }> {
    const frame = await this.next((f) => f.type === FRAME.GOAWAY, 'GOAWAY');
    return {
      lastStreamId: frame.payload.readUInt32BE(0),
      code: frame.payload.readUInt32BE(4),
      debug: frame.payload.subarray(8).toString(),
    };
  }

  async reset(streamId: number): Promise<number> {
    const frame = await this.next(
      (f) => f.type === FRAME.RST_STREAM && f.streamId === streamId,
      'RST_STREAM',
    );
    return frame.payload.readUInt32BE(0);
  }
}

/** What a stream reported, in order, and a promise of its last event. */
interface Recorded {
  events: string[];
  headers: HeaderField[][];
  data: Buffer[];
  error?: Http2Error;
  resetCode?: number;
  done: Promise<void>;
  stream: Http2ClientStream;
}

function record(
  connection: Http2ClientConnection,
  fields: HeaderField[] = [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', '/x'],
    [':authority', 'peer'],
  ],
  body?: Buffer,
): Recorded {
  let finish: () => void = () => undefined;
  const recorded = {
    events: [],
    headers: [],
    data: [],
    done: new Promise<void>((resolve) => (finish = resolve)),
  } as unknown as Recorded;
  recorded.stream = connection.request(fields, {
    onResponseHeaders: (headers) => {
      recorded.events.push('headers');
      recorded.headers.push(headers);
    },
    onData: (chunk) => {
      recorded.events.push('data');
      recorded.data.push(Buffer.from(chunk));
    },
    onTrailers: (trailers) => {
      recorded.events.push('trailers');
      recorded.headers.push(trailers);
    },
    onEnd: () => {
      recorded.events.push('end');
      finish();
    },
    onReset: (code) => {
      recorded.events.push('reset');
      recorded.resetCode = code;
      finish();
    },
    onError: (error) => {
      recorded.events.push('error');
      recorded.error = error;
      finish();
    },
  });
  recorded.stream.write(body ?? Buffer.from('request'), true);
  return recorded;
}

describe('HTTP/2 client against a scripted peer', () => {
  let server: Server;
  let address = '';
  let accepted: ((peer: ScriptedPeer) => void) | undefined;
  const connections: Http2ClientConnection[] = [];
  before(async () => {
    server = createServer((socket) => accepted?.(new ScriptedPeer(socket)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    for (const connection of connections) connection.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  /** A connection to a new scripted peer, once the peer has the client's SETTINGS. */
  async function connected(
    options: Partial<Http2ConnectionOptions> = {},
  ): Promise<{ connection: Http2ClientConnection; peer: ScriptedPeer }> {
    const peerAccepted = new Promise<ScriptedPeer>((resolve) => (accepted = resolve));
    const connection = connectHttp2(address, {
      streamWindowBytes: 1 << 20,
      connectionWindowBytes: 1 << 22,
      ...options,
    });
    connections.push(connection);
    const peer = await peerAccepted;
    return { connection, peer };
  }

  test('the preface, our SETTINGS and window, the ACK of theirs; a call with padded, prioritised, continued headers, padded data and trailers', async () => {
    const { connection, peer } = await connected({ maxHeaderListBytes: 32768, headerTableBytes: 4096 });
    const settings = await peer.next((f) => f.type === FRAME.SETTINGS && f.flags === 0, 'SETTINGS');
    const values = new Map<number, number>();
    for (let at = 0; at < settings.payload.length; at += 6)
      values.set(settings.payload.readUInt16BE(at), settings.payload.readUInt32BE(at + 2));
    assert.deepEqual(Object.fromEntries(values), { 1: 4096, 2: 0, 4: 1 << 20, 6: 32768 });
    const windowUpdate = await peer.next(
      (f) => f.type === FRAME.WINDOW_UPDATE && f.streamId === 0,
      'connection WINDOW_UPDATE',
    );
    assert.equal(windowUpdate.payload.readUInt32BE(0), (1 << 22) - 65535);
    peer.handshake();
    await peer.next((f) => f.type === FRAME.SETTINGS && f.flags === 1, 'SETTINGS ACK');

    const call = record(connection);
    const id = await peer.request();
    const body = await peer.next((f) => f.type === FRAME.DATA && f.streamId === id, 'DATA');
    assert.equal(body.payload.toString(), 'request');
    assert.equal(body.flags & END_STREAM, END_STREAM);
    const block = encodeHeaderBlock([...ok200, ['x-long', 'v'.repeat(100)]]);
    // HEADERS padded (3 bytes) with priority (5 bytes), then the block's rest in CONTINUATION
    const first = Buffer.concat([
      Buffer.of(3),
      u32(0),
      Buffer.of(15),
      block.subarray(0, 10),
      Buffer.alloc(3),
    ]);
    peer.send(
      rawFrame(FRAME.HEADERS, PADDED | PRIORITY, id, first),
      rawFrame(FRAME.CONTINUATION, 0, id, block.subarray(10, 50)),
      rawFrame(FRAME.CONTINUATION, END_HEADERS, id, block.subarray(50)),
      rawFrame(0xfa, 0, 0, Buffer.from('an unknown frame type is ignored')),
      rawFrame(FRAME.DATA, PADDED, id, Buffer.concat([Buffer.of(4), Buffer.from('hello'), Buffer.alloc(4)])),
      rawFrame(FRAME.HEADERS, END_HEADERS | END_STREAM, id, encodeHeaderBlock([['grpc-status', '0']])),
    );
    await call.done;
    assert.deepEqual(call.events, ['headers', 'data', 'trailers', 'end']);
    assert.deepEqual(call.headers, [[...ok200, ['x-long', 'v'.repeat(100)]], [['grpc-status', '0']]]);
    assert.equal(Buffer.concat(call.data).toString(), 'hello');
  });

  test("a PING from the server is answered with its payload; ours are answered by the server's ACK", async () => {
    const { connection, peer } = await connected();
    peer.handshake();
    peer.send(rawFrame(FRAME.PING, 0, 0, Buffer.from('12345678')));
    const ack = await peer.next((f) => f.type === FRAME.PING && f.flags === 1, 'PING ACK');
    assert.equal(ack.payload.toString(), '12345678');
    const answered = new Promise<Error | undefined>((resolve) => connection.ping(resolve));
    const ping = await peer.next((f) => f.type === FRAME.PING && f.flags === 0, 'PING');
    peer.send(rawFrame(FRAME.PING, 1, 0, ping.payload));
    assert.equal(await answered, undefined);
  });

  test('cancel sends RST_STREAM CANCEL; DATA still in flight on the closed stream is dropped, and the connection goes on', async () => {
    const { connection, peer } = await connected();
    peer.handshake();
    const call = record(connection);
    const id = await peer.request();
    call.stream.close();
    assert.equal(await peer.reset(id), H2_ERROR.CANCEL);
    peer.send(
      rawFrame(FRAME.HEADERS, END_HEADERS, id, encodeHeaderBlock(ok200)),
      rawFrame(FRAME.DATA, 0, id, Buffer.from('late')),
    );
    const next = record(connection);
    const nextId = await peer.request();
    peer.send(rawFrame(FRAME.HEADERS, END_HEADERS | END_STREAM, nextId, encodeHeaderBlock(ok200)));
    await next.done;
    assert.deepEqual(next.events, ['headers', 'end']);
    assert.deepEqual(call.events, []);
  });

  test('RST_STREAM from the server reaches the stream with its code', async () => {
    const { connection, peer } = await connected();
    peer.handshake();
    const call = record(connection);
    const id = await peer.request();
    peer.send(rawFrame(FRAME.RST_STREAM, 0, id, u32(H2_ERROR.REFUSED_STREAM)));
    await call.done;
    assert.deepEqual(call.events, ['reset']);
    assert.equal(call.resetCode, H2_ERROR.REFUSED_STREAM);
  });

  test('GOAWAY: streams up to last-stream-id go on, later ones fail to be retried, no new stream opens', async () => {
    const { connection, peer } = await connected();
    peer.handshake();
    const first = record(connection);
    const second = record(connection);
    const firstId = await peer.request();
    await peer.request();
    peer.send(
      rawFrame(
        FRAME.GOAWAY,
        0,
        0,
        Buffer.concat([u32(firstId, H2_ERROR.NO_ERROR), Buffer.from('restarting')]),
      ),
    );
    await second.done;
    assert.equal(second.error?.scope, 'goaway');
    assert.match(second.error!.message, /restarting/);
    assert.equal(connection.acceptsStreams, false);
    assert.throws(
      () => record(connection),
      (err: unknown) => err instanceof Http2Error && err.scope === 'goaway',
    );
    peer.send(rawFrame(FRAME.HEADERS, END_HEADERS | END_STREAM, firstId, encodeHeaderBlock(ok200)));
    await first.done;
    assert.deepEqual(first.events, ['headers', 'end']);
  });

  test('the server closing the socket mid-stream fails the stream with the socket scope', async () => {
    const { connection, peer } = await connected();
    peer.handshake();
    const call = record(connection);
    const id = await peer.request();
    peer.send(
      rawFrame(FRAME.HEADERS, END_HEADERS, id, encodeHeaderBlock(ok200)),
      rawFrame(FRAME.DATA, 0, id, Buffer.from('part')),
    );
    setTimeout(() => peer.socket.destroy(), 20);
    await call.done;
    assert.deepEqual(call.events, ['headers', 'data', 'error']);
    assert.equal(call.error?.scope, 'socket');
  });

  test('a pause stops replenishing the stream window; resume delivers what was held and replenishes', async () => {
    const { connection, peer } = await connected({ streamWindowBytes: 32768 });
    peer.handshake();
    const call = record(connection);
    const id = await peer.request();
    call.stream.pause();
    peer.send(rawFrame(FRAME.HEADERS, END_HEADERS, id, encodeHeaderBlock(ok200)));
    for (let i = 0; i < 2; i++) peer.send(rawFrame(FRAME.DATA, 0, id, Buffer.alloc(16384, i)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(call.events, ['headers']);
    assert.equal(
      peer['frames'].some((f: Frame) => f.type === FRAME.WINDOW_UPDATE && f.streamId === id),
      false,
      'no WINDOW_UPDATE while paused',
    );
    call.stream.resume();
    const update = await peer.next(
      (f) => f.type === FRAME.WINDOW_UPDATE && f.streamId === id,
      'stream WINDOW_UPDATE',
    );
    // replenished in halves of the window
    assert.equal(update.payload.readUInt32BE(0), 16384);
    assert.equal(Buffer.concat(call.data).length, 32768);
  });

  test('a request body goes out within the server’s windows and MAX_FRAME_SIZE, and waits for WINDOW_UPDATE', async () => {
    const { connection, peer } = await connected();
    peer.handshake([
      [4, 1000], // INITIAL_WINDOW_SIZE
      [5, 20000], // MAX_FRAME_SIZE
    ]);
    await peer.next((f) => f.type === FRAME.SETTINGS && f.flags === 1, 'SETTINGS ACK');
    const body = Buffer.alloc(100_000, 7);
    record(connection, undefined, body);
    const id = await peer.request();
    let received = 0;
    const first = await peer.next((f) => f.type === FRAME.DATA, 'DATA');
    assert.equal(first.payload.length, 1000);
    received += 1000;
    // the connection window is 65,535 and the stream's now 1000 + 70,000
    peer.send(
      rawFrame(FRAME.WINDOW_UPDATE, 0, id, u32(70_000)),
      rawFrame(FRAME.WINDOW_UPDATE, 0, 0, u32(100_000)),
    );
    while (received < body.length) {
      const frame = await peer.next((f) => f.type === FRAME.DATA, 'DATA');
      assert.ok(frame.payload.length <= 20000, `a DATA frame of ${frame.payload.length}`);
      received += frame.payload.length;
      if (received === 71_000) peer.send(rawFrame(FRAME.WINDOW_UPDATE, 0, id, u32(100_000)));
      if (frame.flags & END_STREAM) break;
    }
    assert.equal(received, body.length);
  });

  test('MAX_CONCURRENT_STREAMS: streams past it wait until one closes', async () => {
    const { connection, peer } = await connected();
    peer.handshake([[3, 1]]);
    await peer.next((f) => f.type === FRAME.SETTINGS && f.flags === 1, 'SETTINGS ACK');
    const first = record(connection);
    const second = record(connection);
    const firstId = await peer.request();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(second.stream.id, 0, 'the second waits');
    peer.send(rawFrame(FRAME.HEADERS, END_HEADERS | END_STREAM, firstId, encodeHeaderBlock(ok200)));
    await first.done;
    const secondId = await peer.request();
    assert.equal(secondId, firstId + 2);
  });

  /** A hostile case: `send` misbehaves on the call's stream; the call must fail as `expect` says. */
  async function hostile(
    send: (peer: ScriptedPeer, id: number) => void,
    expect: { scope: Http2Error['scope']; code: number; message?: RegExp },
    options: Partial<Http2ConnectionOptions> = {},
  ): Promise<ScriptedPeer> {
    const { connection, peer } = await connected(options);
    peer.handshake();
    const call = record(connection);
    const id = await peer.request();
    send(peer, id);
    await call.done;
    assert.equal(call.events.at(-1), 'error', `events: ${call.events.join(', ')}`);
    assert.equal(call.error?.scope, expect.scope, call.error?.message);
    assert.equal(call.error?.errorCode, expect.code, call.error?.message);
    if (expect.message) assert.match(call.error!.message, expect.message);
    if (expect.scope === 'connection') {
      const goaway = await peer.goaway();
      assert.equal(goaway.code, expect.code);
      assert.equal(connection.acceptsStreams, false);
    } else {
      assert.equal(await peer.reset(id), expect.code);
      assert.equal(connection.acceptsStreams, true, 'a stream error leaves the connection');
    }
    return peer;
  }

  test('hostile: PINGs and SETTINGS from a server that does not read their ACKs end the connection, not fill our memory', async () => {
    const { connection, peer } = await connected();
    peer.handshake();
    const call = record(connection);
    await peer.request();
    peer.socket.pause(); // the ACKs pile up in the kernel's buffers, then in ours
    const batch = Buffer.concat([
      ...Array.from({ length: 5000 }, () => rawFrame(FRAME.PING, 0, 0, Buffer.alloc(8))),
      ...Array.from({ length: 5000 }, () => rawFrame(FRAME.SETTINGS, 0, 0)),
    ]);
    // ~30 MB of ACKs unread, more than loopback buffers take
    for (let sent = 0; sent < 2_000_000 && call.error === undefined; sent += 10_000)
      await new Promise((resolve) => peer.socket.write(batch, resolve));
    await call.done;
    assert.equal(call.error?.scope, 'connection', call.error?.message);
    assert.equal(call.error?.errorCode, H2_ERROR.ENHANCE_YOUR_CALM, call.error?.message);
    assert.match(call.error!.message, /ACKs/);
    peer.socket.destroy();
  });

  // a timeout of its own: without the copy, a million held 1-byte views slow the connection to a crawl
  test(
    'hostile: 1-byte DATA frames to a paused stream are held in their own bytes, not in the socket reads they came in',
    { timeout: 30_000 },
    async () => {
      const window = 1 << 20;
      const { connection, peer } = await connected({
        streamWindowBytes: window,
        connectionWindowBytes: 1 << 24,
      });
      peer.handshake();
      const call = record(connection);
      const id = await peer.request();
      call.stream.pause();
      const one = rawFrame(FRAME.DATA, 0, id, Buffer.from('x'));
      peer.send(
        rawFrame(FRAME.HEADERS, END_HEADERS, id, encodeHeaderBlock(ok200)),
        Buffer.concat(Array.from({ length: window }, () => one)), // the whole window, 10 wire bytes a byte
      );
      // what the paused stream holds, counted directly (the process's memory is the other tests' too)
      const heldBuffers = (): Buffer[] =>
        (call.stream as unknown as { held: Array<Buffer | 'end'> }).held.filter(
          (entry): entry is Buffer => entry !== 'end',
        );
      const heldBytes = (): number => heldBuffers().reduce((sum, buffer) => sum + buffer.length, 0);
      for (let i = 0; i < 200 && heldBytes() < window; i++)
        await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(heldBytes(), window, 'the whole window is held');
      const pinned = new Set(heldBuffers().map((buffer) => buffer.buffer));
      const pinnedBytes = [...pinned].reduce((sum, buffer) => sum + buffer.byteLength, 0);
      const entries = heldBuffers().length;
      peer.send(
        rawFrame(FRAME.HEADERS, END_HEADERS | END_STREAM, id, encodeHeaderBlock([['grpc-status', '0']])),
      );
      call.stream.resume();
      await call.done;
      assert.equal(Buffer.concat(call.data).length, window);
      // before: a million 1-byte views, pinning ~10 MB of socket reads
      assert.ok(entries < 1000, `${entries} buffers held for ${window} bytes`);
      assert.ok(pinnedBytes < 3 * window, `${pinnedBytes} bytes of buffers pinned for ${window} bytes`);
    },
  );

  test('hostile: a frame longer than our MAX_FRAME_SIZE ends the connection (FRAME_SIZE_ERROR)', async () => {
    await hostile((peer, id) => peer.send(rawFrame(FRAME.DATA, 0, id, Buffer.alloc(16385))), {
      scope: 'connection',
      code: H2_ERROR.FRAME_SIZE_ERROR,
    });
  });

  test('hostile: a header list over our MAX_HEADER_LIST_SIZE fails the stream only', async () => {
    await hostile(
      (peer, id) => {
        const block = encodeHeaderBlock([...ok200, ['x-big', 'v'.repeat(5000)]]);
        peer.send(
          rawFrame(FRAME.HEADERS, 0, id, block.subarray(0, 3000)),
          rawFrame(FRAME.CONTINUATION, END_HEADERS, id, block.subarray(3000)),
        );
      },
      { scope: 'stream', code: H2_ERROR.ENHANCE_YOUR_CALM, message: /header list of \d+ bytes/ },
      { maxHeaderListBytes: 4096 },
    );
  });

  test('hostile: a flood of CONTINUATION frames ends the connection', async () => {
    await hostile(
      (peer, id) => {
        const frames = [rawFrame(FRAME.HEADERS, 0, id, encodeHeaderBlock(ok200))];
        for (let i = 0; i < 1000; i++) frames.push(rawFrame(FRAME.CONTINUATION, 0, id));
        peer.send(...frames);
      },
      { scope: 'connection', code: H2_ERROR.ENHANCE_YOUR_CALM, message: /CONTINUATION/ },
    );
    await hostile(
      (peer, id) => {
        const frames = [rawFrame(FRAME.HEADERS, 0, id)];
        for (let i = 0; i < 20; i++) frames.push(rawFrame(FRAME.CONTINUATION, 0, id, Buffer.alloc(16384)));
        peer.send(...frames);
      },
      { scope: 'connection', code: H2_ERROR.ENHANCE_YOUR_CALM, message: /header block of more than/ },
      { maxHeaderListBytes: 8192 },
    );
  });

  test('hostile: HPACK errors (table size update past our setting, Huffman EOS and padding, integer overflow) end the connection (COMPRESSION_ERROR)', async () => {
    const blocks = [
      encodeInteger(4097, 5, 0x20), // size update above our 4096
      hex('0084 ffff ffff 00'), // a Huffman name holding EOS
      hex('0082 ffff 00'), // Huffman padding of 16 bits
      hex('0081 00 00'), // Huffman padding of zeros
      hex('ff ff ff ff ff 0f'), // an index past 2^31
    ];
    for (const block of blocks)
      await hostile((peer, id) => peer.send(rawFrame(FRAME.HEADERS, END_HEADERS, id, block)), {
        scope: 'connection',
        code: H2_ERROR.COMPRESSION_ERROR,
        message: /HPACK/,
      });
  });

  test('hostile: DATA beyond the stream window granted fails the stream (FLOW_CONTROL_ERROR)', async () => {
    await hostile(
      (peer, id) =>
        peer.send(
          rawFrame(FRAME.HEADERS, END_HEADERS, id, encodeHeaderBlock(ok200)),
          rawFrame(FRAME.DATA, 0, id, Buffer.alloc(1600)),
        ),
      { scope: 'stream', code: H2_ERROR.FLOW_CONTROL_ERROR },
      { streamWindowBytes: 1500 },
    );
  });

  test('hostile: frames on idle or server-initiated streams, PUSH_PROMISE, padding past the frame, a first frame not SETTINGS, HTTP/1', async () => {
    await hostile((peer) => peer.send(rawFrame(FRAME.DATA, 0, 99, Buffer.from('x'))), {
      scope: 'connection',
      code: H2_ERROR.PROTOCOL_ERROR,
      message: /never opened/,
    });
    await hostile((peer) => peer.send(rawFrame(FRAME.HEADERS, END_HEADERS, 2, encodeHeaderBlock(ok200))), {
      scope: 'connection',
      code: H2_ERROR.PROTOCOL_ERROR,
    });
    await hostile((peer, id) => peer.send(rawFrame(FRAME.PUSH_PROMISE, END_HEADERS, id, u32(2))), {
      scope: 'connection',
      code: H2_ERROR.PROTOCOL_ERROR,
      message: /PUSH_PROMISE/,
    });
    await hostile(
      (peer, id) =>
        peer.send(
          rawFrame(FRAME.HEADERS, END_HEADERS, id, encodeHeaderBlock(ok200)),
          rawFrame(FRAME.DATA, PADDED, id, Buffer.of(9, 1, 2)),
        ),
      {
        scope: 'connection',
        code: H2_ERROR.PROTOCOL_ERROR,
        message: /padding/,
      },
    );
    await hostile((peer, id) => peer.send(rawFrame(FRAME.WINDOW_UPDATE, 0, 0, u32(0x7fffffff))), {
      scope: 'connection',
      code: H2_ERROR.FLOW_CONTROL_ERROR,
    });
    const malformed: Array<[HeaderField, RegExp]> = [
      [['x-split', 'a\r\nset-cookie: b'], /CR or LF/],
      [['Upper', 'x'], /uppercase/],
    ];
    for (const [field, message] of malformed)
      await hostile(
        (peer, id) =>
          peer.send(rawFrame(FRAME.HEADERS, END_HEADERS, id, encodeHeaderBlock([[':status', '200'], field]))),
        { scope: 'stream', code: H2_ERROR.PROTOCOL_ERROR, message },
      );
    for (const opening of [
      rawFrame(FRAME.PING, 0, 0, Buffer.alloc(8)),
      Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'),
    ]) {
      const { connection, peer } = await connected();
      const call = record(connection);
      peer.send(opening);
      await call.done;
      assert.equal(call.error?.scope, 'connection');
      assert.match(call.error!.message, /SETTINGS|HTTP\/1/);
    }
  });

  test('a refused connection fails its streams with the errno text; an idle connection keeps no process alive', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const connection = connectHttp2(`127.0.0.1:${port}`, {
      streamWindowBytes: 65535,
      connectionWindowBytes: 65535,
    });
    const call = record(connection);
    await call.done;
    assert.equal(call.error?.scope, 'socket');
    assert.match(call.error!.message, /ECONNREFUSED/);
  });
});

describe("HTTP/2 client against Node's HTTP/2 server", () => {
  let server: http2.Http2Server;
  let address = '';
  const sessions: http2.ServerHttp2Session[] = [];
  let slowStreamBlocked: (() => void) | undefined;
  before(async () => {
    server = http2.createServer({ settings: { maxConcurrentStreams: 50 } });
    server.on('session', (session) => sessions.push(session));
    server.on('stream', (stream, headers) => {
      const path = String(headers[':path']);
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', () => undefined);
      stream.on('end', () => {
        const body = Buffer.concat(chunks);
        if (path === '/echo') {
          stream.respond({ ':status': 200 }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'x-bytes': String(body.length) }));
          stream.end(body);
        } else if (path === '/large') {
          stream.respond({ ':status': 200 });
          const piece = Buffer.alloc(1 << 20, 'l');
          let sent = 0;
          const more = (): void => {
            while (sent < 15) {
              sent++;
              if (!stream.write(piece)) return void stream.once('drain', more);
            }
            stream.end();
          };
          more();
        } else if (path === '/slow') {
          stream.respond({ ':status': 200 });
          const piece = Buffer.alloc(64 * 1024, 's');
          const more = (): void => {
            while (!stream.destroyed) {
              if (!stream.write(piece)) {
                slowStreamBlocked?.();
                return void stream.once('drain', more);
              }
            }
          };
          more();
        } else if (path === '/trailers-only') {
          stream.respond(
            { ':status': 200, 'grpc-status': '5', 'grpc-message': 'not%20here' },
            { endStream: true },
          );
        } else if (path === '/huffman') {
          // nghttp2 Huffman-codes values when that is shorter: each octet behind a run of 'a'
          const fields: http2.OutgoingHttpHeaders = { ':status': 200 };
          for (let octet = 0x20; octet <= 0xff; octet++) {
            if (octet === 0x7f) continue;
            fields[`x-${octet}`] = 'a'.repeat(12) + String.fromCharCode(octet);
          }
          stream.respond(fields, { endStream: true });
        } else if (path === '/hang') {
          stream.respond({ ':status': 200 });
          stream.write('started');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  const request = (path: string): HeaderField[] => [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', address],
  ];
  const connect = (): Http2ClientConnection =>
    connectHttp2(address, { streamWindowBytes: 4 << 20, connectionWindowBytes: 16 << 20 });

  test('200 concurrent streams (the server takes 50 at a time) and a 64 MiB request body at its 64 KiB windows', async () => {
    const connection = connect();
    try {
      const calls = Array.from({ length: 200 }, (_, i) =>
        record(connection, request('/echo'), Buffer.from(`call ${i}`)),
      );
      await Promise.all(calls.map((call) => call.done));
      calls.forEach((call, i) => {
        assert.deepEqual(
          call.events.filter((e) => e !== 'data'),
          ['headers', 'trailers', 'end'],
        );
        assert.equal(Buffer.concat(call.data).toString(), `call ${i}`);
      });
      const body = Buffer.alloc(64 << 20, 'b');
      const big = record(connection, request('/echo'), body);
      await big.done;
      assert.equal(Buffer.concat(big.data).length, body.length);
      assert.deepEqual(big.headers[1], [['x-bytes', String(body.length)]]);
    } finally {
      connection.destroy();
    }
  });

  test('a 15 MB response whole; a trailers-only answer; Huffman-coded values of every printable octet', async () => {
    const connection = connect();
    try {
      const large = record(connection, request('/large'));
      await large.done;
      assert.equal(Buffer.concat(large.data).length, 15 << 20);
      const trailersOnly = record(connection, request('/trailers-only'));
      await trailersOnly.done;
      assert.deepEqual(trailersOnly.events, ['headers', 'end']);
      assert.deepEqual(trailersOnly.headers[0]!.slice(1, 3), [
        ['grpc-status', '5'],
        ['grpc-message', 'not%20here'],
      ]);
      const huffman = record(connection, request('/huffman'));
      await huffman.done;
      const values = new Map(huffman.headers[0]);
      for (let octet = 0x20; octet <= 0xff; octet++)
        if (octet !== 0x7f)
          assert.equal(
            values.get(`x-${octet}`),
            'a'.repeat(12) + String.fromCharCode(octet),
            `octet ${octet}`,
          );
    } finally {
      connection.destroy();
    }
  });

  test('a paused reader stops the server after one stream window; cancel ends it at the server', async () => {
    const connection = connect();
    try {
      const blocked = new Promise<void>((resolve) => (slowStreamBlocked = resolve));
      const slow = record(connection, request('/slow'));
      slow.stream.pause();
      await blocked;
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(slow.data.length, 0);
      slow.stream.resume();
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(Buffer.concat(slow.data).length >= 4 << 20, 'resumed: at least the window held');
      slow.stream.close();
    } finally {
      connection.destroy();
    }
  });

  test("the server's PING is answered; its GOAWAY mid-calls refuses later streams, and the socket closing fails what remains", async () => {
    const connection = connect();
    const before = sessions.length;
    const hanging = record(connection, request('/hang'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const session = sessions[before]!;
    const pinged = await new Promise<boolean>((resolve) => session.ping((err) => resolve(err === null)));
    assert.ok(pinged, 'the client answered the server’s PING');
    const later = record(connection, request('/hang'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    await later.done;
    assert.equal(later.error?.scope, 'goaway');
    assert.equal(connection.acceptsStreams, false);
    session.destroy();
    await hanging.done;
    assert.equal(hanging.error?.scope, 'socket');
  });
});
