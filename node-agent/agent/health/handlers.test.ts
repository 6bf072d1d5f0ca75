import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NetnsDialer, directDialer, type Dialer } from '../../runtime/runtime.js';
import {
  HandlerError,
  parseHttpHead,
  resolvePort,
  runHook,
  runProbe,
  type HandlerContext,
  type HandlerTarget,
} from './handlers.js';

let server: Server;
let port: number;
const requests: { url: string; headers: IncomingHttpHeaders }[] = [];

before(async () => {
  server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    const path = req.url ?? '/';
    if (path === '/healthz') return res.end('ok');
    if (path === '/sick') return res.writeHead(503).end('no');
    if (path === '/moved') return res.writeHead(302, { location: '/healthz' }).end();
    if (path === '/away') return res.writeHead(301, { location: 'http://192.0.2.1/x' }).end();
    if (path === '/loop') return res.writeHead(302, { location: '/loop' }).end();
    if (path === '/slow') return; // never answers
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

/** net.connect, and the runtime's helper in this namespace (which makes TCP and HTTP exchanges itself). */
const helper = new NetnsDialer();
const DIALERS: [string, Dialer][] = [
  ['net.connect', directDialer],
  ['the helper dialer', helper],
];

after(() => {
  helper.close();
  server.closeAllConnections();
  server.close();
});

function target(extra: Partial<HandlerTarget['container']> = {}): HandlerTarget {
  return {
    containerId: 'c1',
    podIP: '127.0.0.1',
    container: { name: 'web', ports: [{ name: 'http', containerPort: port }], ...extra },
  };
}

test('the head of an HTTP answer: its status and Location; nothing at all is EOF', () => {
  assert.deepEqual(parseHttpHead(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n')), {
    status: 200,
  });
  assert.deepEqual(parseHttpHead(Buffer.from('HTTP/1.0 302 Found\r\nLocation:  /next \r\n\r\n')), {
    status: 302,
    location: '/next',
  });
  assert.deepEqual(parseHttpHead(Buffer.from('HTTP/1.1 204\r\n\r\n')), { status: 204 });
  assert.throws(() => parseHttpHead(Buffer.alloc(0)), /^Error: EOF$/);
  assert.throws(() => parseHttpHead(Buffer.from('SSH-2.0-OpenSSH\r\n')), /malformed HTTP response/);
});

for (const [name, dialer] of DIALERS)
  describe(`handlers through ${name}`, () => {
    const ctx: HandlerContext = {
      execCapture: () => Promise.reject(new Error('no exec in this test')),
      dialer,
      userAgent: 'kube-probe/0.1',
    };

    test('ports: a number, a name of the container, a number as text; a missing name is an error', () => {
      const c = { name: 'web', ports: [{ name: 'http', containerPort: 8080 }] };
      assert.equal(resolvePort(80, c), 80);
      assert.equal(resolvePort('http', c), 8080);
      assert.equal(resolvePort('9090', c), 9090);
      assert.throws(
        () => resolvePort('grpc', c),
        (e: unknown) => e instanceof HandlerError && /couldn't find port "grpc"/.test(e.message),
      );
      assert.throws(() => resolvePort(70000, c), /invalid port number/);
    });

    test('httpGet: 2xx succeeds with the kubelet headers; the pod IP and a named port by default', async () => {
      const before = requests.length;
      const r = await runProbe(
        ctx,
        { httpGet: { path: '/healthz', port: 'http', httpHeaders: [{ name: 'X-Probe', value: 'yes' }] } },
        target(),
        2000,
      );
      assert.deepEqual(r, { result: 'success', message: '' });
      const seen = requests[before]!;
      assert.equal(seen.url, '/healthz');
      assert.equal(seen.headers['user-agent'], 'kube-probe/0.1');
      assert.equal(seen.headers['x-probe'], 'yes');
      assert.equal(seen.headers['host'], `127.0.0.1:${port}`);
      assert.equal(seen.headers['connection'], 'close');
    });

    test('httpGet: a Host header replaces the host', async () => {
      const before = requests.length;
      await runProbe(
        ctx,
        { httpGet: { path: '/healthz', port, httpHeaders: [{ name: 'host', value: 'web.local' }] } },
        target(),
        2000,
      );
      assert.equal(requests[before]!.headers['host'], 'web.local');
    });

    test('httpGet: a status of 400 and above fails with the statuscode', async () => {
      assert.deepEqual(await runProbe(ctx, { httpGet: { path: '/sick', port } }, target(), 2000), {
        result: 'failure',
        message: 'HTTP probe failed with statuscode: 503',
      });
    });

    test('httpGet: redirects on the same host are followed, one elsewhere is success without following, a loop fails', async () => {
      assert.equal(
        (await runProbe(ctx, { httpGet: { path: '/moved', port } }, target(), 2000)).result,
        'success',
      );
      assert.equal(requests.at(-1)!.url, '/healthz');
      const away = await runProbe(ctx, { httpGet: { path: '/away', port } }, target(), 2000);
      assert.equal(away.result, 'success');
      assert.match(away.message, /Probe terminated redirects/);
      const loop = await runProbe(ctx, { httpGet: { path: '/loop', port } }, target(), 2000);
      assert.equal(loop.result, 'failure');
      assert.match(loop.message, /stopped after 10 redirects/);
    });

    test("httpGet: refused and timed out, in the kubelet's words", async () => {
      const free = await freePort();
      const refused = await runProbe(ctx, { httpGet: { path: '/', port: free } }, target(), 2000);
      assert.deepEqual(refused, {
        result: 'failure',
        message: `Get "http://127.0.0.1:${free}/": dial tcp 127.0.0.1:${free}: connect: connection refused`,
      });
      const slow = await runProbe(ctx, { httpGet: { path: '/slow', port } }, target(), 300);
      assert.equal(slow.result, 'failure');
      assert.match(slow.message, /^Get "http:\/\/127\.0\.0\.1:\d+\/slow": context deadline exceeded/);
    });

    test('tcpSocket: a connection is success; refused is failure', async () => {
      assert.equal((await runProbe(ctx, { tcpSocket: { port: 'http' } }, target(), 1000)).result, 'success');
      const free = await freePort();
      assert.deepEqual(await runProbe(ctx, { tcpSocket: { port: free } }, target(), 1000), {
        result: 'failure',
        message: `dial tcp 127.0.0.1:${free}: connect: connection refused`,
      });
    });

    test('what cannot be run is an error, not a failure: a port name the container lacks, no pod IP', async () => {
      assert.equal((await runProbe(ctx, { tcpSocket: { port: 'nope' } }, target(), 1000)).result, 'error');
      assert.equal(
        (await runProbe(ctx, { httpGet: { port: 80 } }, { ...target(), podIP: '' }, 1000)).result,
        'error',
      );
    });

    test('hooks: httpGet succeeds on any answer, fails when none comes; sleep sleeps (until aborted); tcpSocket fails', async () => {
      await runHook(ctx, { httpGet: { path: '/sick', port } }, target(), 'p_ns(u)');
      const free = await freePort();
      await assert.rejects(
        runHook(ctx, { httpGet: { path: '/x', port: free } }, target(), 'p_ns(u)'),
        /HTTP lifecycle hook \(\/x\) for Container "web" in Pod "p_ns\(u\)" failed - error: Get "http:\/\/127\.0\.0\.1:\d+\/x": dial tcp/,
      );
      const started = Date.now();
      await runHook(ctx, { sleep: { seconds: 1 } }, target(), 'p');
      assert.ok(Date.now() - started >= 950);
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 50);
      const cut = Date.now();
      await runHook(ctx, { sleep: { seconds: 30 } }, target(), 'p', abort.signal);
      assert.ok(Date.now() - cut < 5000);
      await assert.rejects(
        runHook(ctx, { tcpSocket: { port: 80 } }, target(), 'p'),
        /tcpSocket is not supported/,
      );
    });

    test('httpGet: header values with line breaks are refused, never sent', async () => {
      const r = await runProbe(
        ctx,
        { httpGet: { path: '/healthz', port, httpHeaders: [{ name: 'X-A', value: 'a\r\nX-B: b' }] } },
        target(),
        2000,
      );
      assert.notEqual(r.result, 'success');
      assert.ok(!requests.some((q) => q.headers['x-b'] !== undefined));
    });
  });

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}
