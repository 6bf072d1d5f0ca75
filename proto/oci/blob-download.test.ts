/**
 * The layer download's HTTP/1.1 against a scripted peer (a node:net server in the test that
 * answers each request with exactly the bytes a case needs, malformed ones included, and may split
 * them anywhere), and its jobs into a file: every hostile answer ends in a clean error, never a
 * hang or a throw, and what a job writes is exactly what it hashed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertificateAuthority } from '../support/pki.js';
import {
  blobDownloader,
  type BlobDownloader,
  type BodySink,
  type FetchJob,
  type HttpResponse,
} from './blob-download.js';

/** What the peer does with one request (its head as text): write bytes, pause, end, nothing. */
type Script = (request: string, socket: Socket) => Promise<void> | void;

/** A server answering the n-th request of all connections with scripts[n] (the last one repeats). */
class ScriptedPeer {
  readonly server: Server;
  connections = 0;
  readonly requests: string[] = [];
  scripts: Script[] = [];

  constructor(tls?: { key: string; cert: string }) {
    const onSocket = (socket: Socket) => {
      this.connections++;
      let buffered = '';
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
          const request = buffered.slice(0, end + 4);
          buffered = buffered.slice(end + 4);
          this.requests.push(request);
          const script = this.scripts[Math.min(this.requests.length - 1, this.scripts.length - 1)]!;
          void Promise.resolve(script(request, socket)).catch(() => socket.destroy());
        }
      });
    };
    this.server = tls ? createTlsServer(tls, onSocket) : createServer(onSocket);
  }

  async start(): Promise<URL> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as { port: number };
    return new URL(`http://127.0.0.1:${port}/v2/app/blobs/sha256:x`);
  }

  reset(...scripts: Script[]): void {
    this.scripts = scripts;
    this.requests.length = 0;
    this.connections = 0;
  }
}

/** Writes `bytes` in pieces of `size` (the last shorter), each its own TCP write. */
async function dribble(socket: Socket, bytes: Buffer, size: number): Promise<void> {
  for (let at = 0; at < bytes.length; at += size) {
    await new Promise<void>((resolve) => socket.write(bytes.subarray(at, at + size), () => resolve()));
    await new Promise((r) => setImmediate(r));
  }
}

const answer = (head: string, body: Buffer | string = '') =>
  Buffer.concat([Buffer.from(head.replace(/\n/g, '\r\n') + '\r\n', 'latin1'), Buffer.from(body)]);

/** Reads the whole body, as a job would (every piece copied, since it is valid only during the call). */
async function body(res: HttpResponse, pauseEvery = 0): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let n = 0;
  const sink: BodySink = {
    data: (bytes) => {
      pieces.push(Buffer.from(bytes));
      return pauseEvery === 0 || ++n % pauseEvery !== 0;
    },
    drain: (resume) => setTimeout(resume, 1),
  };
  await res.read(sink);
  return Buffer.concat(pieces);
}

describe('blob download: HTTP/1.1 against a scripted peer', () => {
  const peer = new ScriptedPeer();
  let url: URL;
  let downloader: BlobDownloader;
  const options = () => ({ insecureTls: false, idleTimeoutMs: 5000, signal: new AbortController().signal });
  const get = (headers: Record<string, string> = {}) => downloader.get(url, headers, options());

  before(async () => {
    url = await peer.start();
    downloader = blobDownloader();
  });
  after(() => {
    downloader.close();
    peer.server.close();
  });

  test('a Content-Length body in pieces of any size, the head split anywhere; the connection is kept for the next request', async () => {
    const payload = randomBytes(3000);
    const bytes = answer('HTTP/1.1 200 OK\nContent-Length: 3000\nDocker-Content-Digest: x\n', payload);
    for (const size of [1, 7, 64, 5000]) {
      peer.reset((_, socket) => dribble(socket, bytes, size));
      const res = await get();
      assert.equal(res.status, 200);
      assert.equal(res.headers['docker-content-digest'], 'x');
      assert.deepEqual(await body(res), payload);
      const again = await get();
      assert.deepEqual(await body(again), payload);
      assert.equal(
        peer.connections,
        size === 1 ? 1 : 0,
        'one connection for both (kept from the last case after the first)',
      );
    }
    assert.match(
      peer.requests[0]!,
      /^GET \/v2\/app\/blobs\/sha256:x HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\n/,
    );
  });

  test('a chunked body with extensions and a trailer, in 1-byte pieces; a sink that pauses after every piece', async () => {
    const bytes = answer(
      'HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n',
      '5;name=value\r\nhello\r\nA\r\n, chunked \r\n1\r\n!\r\n0\r\nX-Trailer: yes\r\n\r\n',
    );
    peer.reset((_, socket) => dribble(socket, bytes, 1));
    assert.equal((await body(await get(), 1)).toString(), 'hello, chunked !');
    peer.reset((_, socket) => void socket.write(bytes));
    assert.equal((await body(await get())).toString(), 'hello, chunked !');
  });

  test('a body until the connection ends (HTTP/1.0, or no length): read whole, the connection not kept', async () => {
    peer.reset((_, socket) => void socket.end(answer('HTTP/1.0 200 OK\n', 'all of it')));
    assert.equal((await body(await get())).toString(), 'all of it');
    peer.reset((_, socket) => void socket.end(answer('HTTP/1.1 200 OK\n', 'and this')));
    assert.equal((await body(await get())).toString(), 'and this');
    assert.equal(peer.connections, 1);
  });

  test('interim answers (100, 103) are passed over; 101 and a flood of them are refused', async () => {
    peer.reset(
      (_, socket) =>
        void socket.write(
          answer('HTTP/1.1 100 Continue\n') +
            answer('HTTP/1.1 103 Early Hints\nLink: </x>\n').toString() +
            answer('HTTP/1.1 200 OK\nContent-Length: 2\n', 'ok').toString(),
        ),
    );
    assert.equal((await body(await get())).toString(), 'ok');
    peer.reset((_, socket) => void socket.write(answer('HTTP/1.1 101 Switching Protocols\nUpgrade: x\n')));
    await assert.rejects(get(), /broke HTTP\/1\.1: status 101/);
    peer.reset((_, socket) => void socket.write(answer('HTTP/1.1 100 Continue\n').toString().repeat(20)));
    await assert.rejects(get(), /broke HTTP\/1\.1: status 100/);
  });

  test('malformed heads are refused, each naming what is wrong', async () => {
    const cases: [string, RegExp][] = [
      ['HTTP/2 200 OK\nContent-Length: 0\n', /malformed status line/],
      ['HTTP/1.1 20 OK\nContent-Length: 0\n', /malformed status line/],
      ['HTTP/1.1 200 O\x01K\nContent-Length: 0\n', /malformed status line/],
      ['HTTP/1.1 200 OK\nContent-Length : 0\n', /malformed header field/],
      ['HTTP/1.1 200 OK\n: empty\nContent-Length: 0\n', /malformed header field/],
      ['HTTP/1.1 200 OK\nX-A: 1\n folded\nContent-Length: 0\n', /malformed header field/],
      ['HTTP/1.1 200 OK\nX-A: a\x00b\nContent-Length: 0\n', /control character in header x-a/],
      [
        'HTTP/1.1 200 OK\nContent-Length: 2\nTransfer-Encoding: chunked\n',
        /both Transfer-Encoding and Content-Length/,
      ],
      ['HTTP/1.1 200 OK\nContent-Length: 2\nContent-Length: 3\n', /Content-Length/],
      ['HTTP/1.1 200 OK\nContent-Length: 2, 3\n', /Content-Length/],
      ['HTTP/1.1 200 OK\nContent-Length: -1\n', /Content-Length/],
      ['HTTP/1.1 200 OK\nContent-Length: 99999999999999999\n', /Content-Length/],
      ['HTTP/1.1 200 OK\nTransfer-Encoding: gzip, chunked\n', /only chunked is read/],
      ['HTTP/1.0 200 OK\nTransfer-Encoding: chunked\n', /only chunked is read/],
    ];
    for (const [head, error] of cases) {
      peer.reset((_, socket) => void socket.write(answer(head)));
      await assert.rejects(get(), error, JSON.stringify(head));
    }
    // the same value twice is one length
    peer.reset(
      (_, socket) =>
        void socket.write(answer('HTTP/1.1 200 OK\nContent-Length: 2\nContent-Length: 2\n', 'ok')),
    );
    assert.equal((await body(await get())).toString(), 'ok');
  });

  test('a head that never ends is cut at 64 KiB, even sent a byte at a time', async () => {
    const endless = Buffer.from(`HTTP/1.1 200 OK\n${'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n'.repeat(3000)}`);
    peer.reset((_, socket) => void socket.write(endless));
    await assert.rejects(get(), /a head over 65536 bytes/);
    peer.reset((_, socket) => dribble(socket, Buffer.from(`HTTP/1.1 200 OK\nX: ${'a'.repeat(70000)}`), 997));
    await assert.rejects(get(), /a head over 65536 bytes/);
  });

  test('malformed chunked framing is refused', async () => {
    const cases: [string, RegExp][] = [
      ['zz\r\nhello\r\n0\r\n\r\n', /malformed chunk size/],
      ['fffffffffffffff\r\n', /malformed chunk size/],
      ['5\r\nhello!\r\n0\r\n\r\n', /chunk data longer than its size/],
      ['5\nhello\r\n0\r\n\r\n', /not ended by CRLF/],
      ['5;a=\x01\r\nhello\r\n0\r\n\r\n', /malformed chunk size/],
      [`${'0'.repeat(9000)}`, /chunk line too long/],
      ['0\r\nbad trailer\r\n\r\n', /malformed trailer/],
    ];
    for (const [chunks, error] of cases) {
      peer.reset(
        (_, socket) => void socket.write(answer('HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n', chunks)),
      );
      await assert.rejects(get().then(body), error, JSON.stringify(chunks.slice(0, 40)));
    }
  });

  test('a connection that ends early fails the answer; extra bytes after a body drop the connection', async () => {
    peer.reset((_, socket) => void socket.end(answer('HTTP/1.1 200 OK\nContent-Length: 10\n', 'short')));
    await assert.rejects(get().then(body), /ended mid-body/);
    peer.reset((_, socket) => void socket.end('HTTP/1.1 200 OK\r\nContent-'));
    await assert.rejects(get(), /ended before an answer/);
    peer.reset(
      (_, socket) =>
        void socket.write(answer('HTTP/1.1 200 OK\nContent-Length: 2\n', 'okHTTP/1.1 200 OK\r\n\r\n')),
    );
    assert.equal((await body(await get())).toString(), 'ok');
    peer.reset((_, socket) => void socket.write(answer('HTTP/1.1 200 OK\nContent-Length: 2\n', 'ok')));
    assert.equal((await body(await get())).toString(), 'ok');
    assert.equal(peer.connections, 1, 'a new connection after the one with extra bytes');
  });

  test('a kept connection the server closed meanwhile: the request goes out again on a new one', async () => {
    peer.reset((_, socket) => void socket.write(answer('HTTP/1.1 200 OK\nContent-Length: 2\n', 'ok')));
    assert.equal((await body(await get())).toString(), 'ok');
    peer.reset(
      (_, socket) => void socket.destroy(),
      (_, socket) => void socket.write(answer('HTTP/1.1 200 OK\nContent-Length: 3\n', 'new')),
    );
    assert.equal((await body(await get())).toString(), 'new');
    assert.equal(peer.requests.length, 2, 'the request went out twice');
    assert.equal(peer.connections, 1, 'the second time on a new connection');
  });

  test('cancelled by its signal, or by silence: no hang', async () => {
    peer.reset(() => undefined);
    const controller = new AbortController();
    const pending = downloader.get(url, {}, { ...options(), signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(pending, /cancelled/);
    await assert.rejects(downloader.get(url, {}, { ...options(), idleTimeoutMs: 50 }), /no data for 0\.05 s/);
    peer.reset((_, socket) => void socket.write(answer('HTTP/1.1 200 OK\nContent-Length: 10\n', 'part')));
    const res = await downloader.get(url, {}, { ...options(), idleTimeoutMs: 50 });
    await assert.rejects(body(res), /no data for 0\.05 s/);
  });

  test('request fields that would split the request are refused before anything is sent', async () => {
    peer.reset(() => undefined);
    await assert.rejects(
      get({ authorization: 'Bearer x\r\nX-Evil: 1' }),
      /a request header that cannot be sent: authorization/,
    );
    await assert.rejects(get({ 'bad name': 'x' }), /a request header that cannot be sent/);
    assert.equal(peer.requests.length, 0);
  });

  test('readSmall keeps what fits and drops the connection when there is more', async () => {
    peer.reset(
      (_, socket) =>
        void socket.write(answer('HTTP/1.1 404 Not Found\nContent-Length: 100000\n', 'x'.repeat(100000))),
    );
    const res = await get();
    assert.equal(res.status, 404);
    const small = await res.readSmall(1000);
    assert.ok(small.length <= 1000);
  });
});

describe('blob download: jobs into a file', () => {
  const peer = new ScriptedPeer();
  let url: URL;
  let dir: string;
  let downloader: BlobDownloader;
  const blob = randomBytes(5 << 20);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const job = (over: Partial<FetchJob> = {}): FetchJob => ({
    url: url.href,
    headers: { authorization: 'Bearer t' },
    insecureTls: false,
    allowHttp: false,
    path: join(dir, 'ingest'),
    kept: 0,
    size: blob.length,
    attempts: 3,
    retryDelayMs: 1,
    idleTimeoutMs: 5000,
    ...over,
  });
  const run = (j: FetchJob) => downloader.run(j, new AbortController().signal, () => undefined);
  const serve = (from: number, status = 206) =>
    answer(
      `HTTP/1.1 ${status} X\nContent-Length: ${blob.length - from}\n${status === 206 ? `Content-Range: bytes ${from}-${blob.length - 1}/${blob.length}\n` : ''}`,
      blob.subarray(from),
    );

  before(async () => {
    url = await peer.start();
    dir = await mkdtemp(join(tmpdir(), 'skiff-blob-download-'));
    downloader = blobDownloader();
  });
  after(async () => {
    downloader.close();
    peer.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the whole blob: written as it came, its digest that of the file', async () => {
    await rm(join(dir, 'ingest'), { force: true });
    peer.reset((_, socket) => dribble(socket, serve(0, 200), 100_000));
    const r = await run(job());
    assert.equal(r.digest, digest);
    assert.equal(r.fetched, blob.length);
    assert.deepEqual(await readFile(join(dir, 'ingest')), blob);
  });

  test('kept bytes are hashed and only the rest asked for; a registry ignoring Range has what is there skipped', async () => {
    for (const status of [206, 200]) {
      await writeFile(join(dir, 'ingest'), blob.subarray(0, 1234567));
      peer.reset((request, socket) => {
        assert.match(request, /\r\nrange: bytes=1234567-\r\n/);
        void socket.write(serve(status === 206 ? 1234567 : 0, status));
      });
      const r = await run(job({ kept: 1234567 }));
      assert.equal(r.digest, digest);
      assert.deepEqual(await readFile(join(dir, 'ingest')), blob);
    }
  });

  test('cut connections are resumed with Range; what was hashed is in the file at every failure', async () => {
    await rm(join(dir, 'ingest'), { force: true });
    let served = 0;
    peer.reset((request, socket) => {
      const from = Number(/range: bytes=(\d+)-/.exec(request)?.[1] ?? 0);
      const bytes = serve(from, from > 0 ? 206 : 200);
      served++;
      // a third of the rest, then the connection is cut
      void socket.write(
        bytes.subarray(0, Math.min(bytes.length, 200 + Math.floor((blob.length - from) / 3))),
        () => socket.destroy(),
      );
    });
    const r = await run(job({ attempts: 5 }));
    assert.equal(r.digest, digest);
    assert.ok(served >= 3);
    assert.deepEqual(await readFile(join(dir, 'ingest')), blob);
  });

  test('more bytes than the declared size are refused; a redirect does not carry Authorization elsewhere', async () => {
    await rm(join(dir, 'ingest'), { force: true });
    peer.reset((_, socket) => void socket.write(answer(`HTTP/1.1 200 OK\n`, Buffer.concat([blob, blob]))));
    await assert.rejects(
      run(job()),
      (err: unknown) =>
        downloader.failureOf(err).kind === 'invalid' && /more bytes than the declared size/.test(String(err)),
    );
    await rm(join(dir, 'ingest'), { force: true });
    const other = new ScriptedPeer();
    const elsewhere = await other.start();
    other.reset((_, socket) => void socket.write(serve(0, 200)));
    peer.reset(
      (_, socket) =>
        void socket.write(
          answer(`HTTP/1.1 307 Temporary Redirect\nLocation: ${elsewhere.href}\nContent-Length: 0\n`),
        ),
    );
    try {
      assert.equal((await run(job())).digest, digest);
      assert.match(peer.requests[0]!, /\r\nauthorization: Bearer t\r\n/);
      assert.doesNotMatch(other.requests[0]!, /authorization/i);
    } finally {
      other.server.close();
    }
  });

  test('an error status is handed back with its head and body; a file that cannot be written fails with its code', async () => {
    peer.reset(
      (_, socket) =>
        void socket.write(
          answer(
            'HTTP/1.1 401 Unauthorized\nWWW-Authenticate: Bearer realm="x"\nContent-Length: 6\n',
            'denied',
          ),
        ),
    );
    const failure = await run(job()).then(
      () => assert.fail('no error'),
      (err: unknown) => downloader.failureOf(err),
    );
    assert.equal(failure.kind, 'status');
    assert.equal(failure.status, 401);
    assert.equal(failure.headers?.['www-authenticate'], 'Bearer realm="x"');
    assert.equal(Buffer.from(failure.body!).toString(), 'denied');
    const unwritable = await run(job({ path: join(dir, 'no', 'such', 'dir') })).then(
      () => assert.fail('no error'),
      (err: unknown) => downloader.failureOf(err),
    );
    assert.equal(unwritable.code, 'ENOENT');
  });
});

test('blob download over TLS: the certificate is checked unless the registry is insecure', async () => {
  const ca = CertificateAuthority.create({ commonName: 'skiff-test-blob-download-ca' });
  const leaf = ca.issueKeyPair({
    commonName: '127.0.0.1',
    usages: ['server auth'],
    ipAddresses: ['127.0.0.1'],
  });
  const peer = new ScriptedPeer({
    key: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: leaf.certificate.toString(),
  });
  const url = new URL((await peer.start()).href.replace('http:', 'https:'));
  const payload = randomBytes(1 << 20);
  peer.reset(
    (_, socket) => void socket.write(answer(`HTTP/1.1 200 OK\nContent-Length: ${payload.length}\n`, payload)),
  );
  const downloader = blobDownloader();
  try {
    const options = { idleTimeoutMs: 5000, signal: new AbortController().signal };
    await assert.rejects(downloader.get(url, {}, { ...options, insecureTls: false }), /certificate/);
    assert.deepEqual(await body(await downloader.get(url, {}, { ...options, insecureTls: true })), payload);
    // the kept connection again, the reader pausing every third piece
    assert.deepEqual(
      await body(await downloader.get(url, {}, { ...options, insecureTls: true }), 3),
      payload,
    );
    // (the refused handshake never reached the server's secure side)
    assert.equal(peer.connections, 1, 'one connection for both reads');
  } finally {
    downloader.close();
    peer.server.close();
  }
});
