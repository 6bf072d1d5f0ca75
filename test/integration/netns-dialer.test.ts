/**
 * NetnsDialer against real network namespaces: connections are made in the namespace it was given
 * (a server on 127.0.0.1 there answers; the same port on this process's loopback is not what it
 * reaches), refused and timed-out connects fail with their code, many dials at once each get their
 * own socket, checks (connect and close) and HTTP exchanges made whole by the helper, a namespace
 * that does not exist fails the dial with the reason, and close() ends the helper (a later dial
 * starts another).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { DialError, ExchangeError, NetnsDialer } from '../../node-agent/runtime/sys/dialer.js';
import { UnavailableError } from '../../proto/errors.js';
import { requireRootAndBusybox } from './runtime-containers-fixture.js';

const execFileAsync = promisify(execFile);
const NS = `skiff-dial-${process.pid}`;
const inNs = (...args: string[]) => execFileAsync('ip', ['netns', 'exec', NS, ...args]);
const PORT = 18080;

let server: ChildProcess | undefined;
let local: Server | undefined;
let dialer: NetnsDialer;

/** The reply to one line sent on a socket, until the peer closes. */
async function exchange(socket: Socket, line: string): Promise<string> {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  socket.end(line);
  await new Promise((r) => socket.once('close', r));
  return text;
}

before(async () => {
  requireRootAndBusybox();
  await execFileAsync('ip', ['netns', 'add', NS]);
  await inNs('ip', 'link', 'set', 'lo', 'up');
  // a veth whose peer is down: what is routed there vanishes, so a connect times out
  await inNs('ip', 'link', 'add', 'sk-a', 'type', 'veth', 'peer', 'name', 'sk-b');
  await inNs('ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'sk-a');
  await inNs('ip', 'link', 'set', 'sk-a', 'up');
  await inNs(
    'ip',
    'neigh',
    'add',
    '10.99.0.2',
    'lladdr',
    '02:00:00:00:00:02',
    'dev',
    'sk-a',
    'nud',
    'permanent',
  );
  // an echo server in the namespace, and one on this process's loopback at the same port that says otherwise
  const echo = `require('node:net').createServer((s) => { s.setEncoding('utf8'); let t = ''; s.on('data', (d) => (t += d)); s.on('end', () => s.end(t.replace(/^/gm, 'in-ns: ').replace(/in-ns: $/, ''))); }).listen(${PORT}, '127.0.0.1');
  require('node:http').createServer((q, r) => {
    if (q.url === '/big') return r.end('x'.repeat(1 << 20));
    if (q.url === '/silent') return;
    r.writeHead(418, { 'x-seen': q.headers['x-probe'] ?? '' }).end('short');
  }).listen(${PORT + 2}, '127.0.0.1');`;
  server = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', echo], { stdio: 'ignore' });
  local = createServer((s) => s.end('on the host\n'));
  await new Promise<void>((r) => local!.listen(PORT, '127.0.0.1', r)).catch(() => {});
  dialer = new NetnsDialer(`/run/netns/${NS}`);
  // the server is up once a connection succeeds
  for (let i = 0; i < 200; i++) {
    const up = await dialer.dial('127.0.0.1', PORT, 1000).then(
      (s) => (s.destroy(), true),
      () => false,
    );
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  dialer?.close();
  server?.kill('SIGKILL');
  local?.close();
  await execFileAsync('ip', ['netns', 'del', NS]).catch(() => {});
});

describe('NetnsDialer', () => {
  test('connects inside the namespace: its 127.0.0.1 is the namespace loopback', async () => {
    const socket = await dialer.dial('127.0.0.1', PORT, 2000);
    assert.equal(await exchange(socket, 'hello\n'), 'in-ns: hello\n');
  });

  test('many dials at once each get their own connection', async () => {
    const replies = await Promise.all(
      Array.from({ length: 40 }, async (_, i) =>
        exchange(await dialer.dial('127.0.0.1', PORT, 5000), `n${i}\n`),
      ),
    );
    assert.deepEqual(
      replies,
      Array.from({ length: 40 }, (_, i) => `in-ns: n${i}\n`),
    );
  });

  test('a refused connect and one that times out fail with their code', async () => {
    await assert.rejects(
      dialer.dial('127.0.0.1', PORT + 1, 2000),
      (e: unknown) =>
        e instanceof DialError &&
        e.code === 'ECONNREFUSED' &&
        /dial tcp 127\.0\.0\.1:18081: connect: connection refused/.test(e.message),
    );
    const started = Date.now();
    await assert.rejects(
      dialer.dial('10.99.0.2', 80, 300),
      (e: unknown) => e instanceof DialError && e.code === 'ETIMEDOUT' && /i\/o timeout/.test(e.message),
    );
    assert.ok(Date.now() - started < 2000, `timed out after ${Date.now() - started} ms`);
  });

  test('check: a connection made and closed, or the reason there was none', async () => {
    await dialer.check('127.0.0.1', PORT, 2000);
    await assert.rejects(
      dialer.check('127.0.0.1', PORT + 1, 2000),
      (e: unknown) => e instanceof DialError && e.code === 'ECONNREFUSED',
    );
    await assert.rejects(
      dialer.check('10.99.0.2', 80, 300),
      (e: unknown) => e instanceof DialError && e.code === 'ETIMEDOUT',
    );
  });

  test('exchange: the request sent, the head of the answer back; a long body is not waited for, a silent server times out in the read', async () => {
    const request = (path: string) =>
      Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-Probe: yes\r\nConnection: close\r\n\r\n`);
    const head = (await dialer.exchange('127.0.0.1', PORT + 2, request('/'), 2000)).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 418 I'm a Teapot\r\n/);
    assert.match(head, /\r\nx-seen: yes\r\n/);
    assert.ok(head.endsWith('\r\n\r\n'), 'the head ends at its blank line; the body is not in it');
    const big = (await dialer.exchange('127.0.0.1', PORT + 2, request('/big'), 5000)).toString('latin1');
    assert.match(big, /^HTTP\/1\.1 200 OK\r\n/);
    const started = Date.now();
    await assert.rejects(
      dialer.exchange('127.0.0.1', PORT + 2, request('/silent'), 300),
      (e: unknown) => e instanceof ExchangeError && e.code === 'ETIMEDOUT' && e.phase === 'read',
    );
    assert.ok(Date.now() - started < 2000);
    await assert.rejects(
      dialer.exchange('127.0.0.1', PORT + 1, request('/'), 1000),
      (e: unknown) => e instanceof DialError && e.code === 'ECONNREFUSED',
    );
  });

  test('a namespace that does not exist fails the dial with why; close() ends the helper and a dial after it starts another', async () => {
    const missing = new NetnsDialer('/run/netns/skiff-no-such-namespace');
    await assert.rejects(
      missing.dial('127.0.0.1', PORT, 1000),
      (e: unknown) => e instanceof UnavailableError && /No such file or directory/.test(e.message),
    );
    missing.close();
    dialer.close();
    const socket = await dialer.dial('127.0.0.1', PORT, 2000);
    assert.equal(await exchange(socket, 'again\n'), 'in-ns: again\n');
  });
});
