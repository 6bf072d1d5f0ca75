import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { FailedPreconditionError, InvalidArgumentError } from '../proto/errors.js';
import {
  contextNameForStateDir,
  deleteContext,
  formatConfigDocument,
  parseConfigDocument,
  parsePlainBlocks,
  readConfigDocument,
  readConfigFile,
  resolveClientConfig,
  upsertContext,
  useContext,
  writeConfigFile,
} from './config.js';

describe('client config contexts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-contexts-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const path = (): string => join(dir, `config-${++n}`);

  test('a flat (pre-context) file reads as one context named default', () => {
    const doc = parseConfigDocument('server: 127.0.0.1:7440\ntoken: t\nhttp: http://127.0.0.1:7441\n', 'c');
    assert.equal(doc.legacy, true);
    assert.equal(doc.currentContext, 'default');
    assert.deepEqual(doc.contexts, [{ name: 'default', context: { cluster: 'default', user: 'default' } }]);
    assert.deepEqual(resolveClientConfig({}, writeTo('server: 127.0.0.1:7440\ntoken: t\n')), {
      server: '127.0.0.1:7440',
      token: 't',
    });
  });

  function writeTo(text: string): string {
    const p = path();
    writeFileSync(p, text);
    return p;
  }

  test('skiff up in a second state dir adds its context, switches, and says so; the first stays', async () => {
    const p = path();
    await writeConfigFile(p, { server: '127.0.0.1:7440', token: 'one', http: 'http://127.0.0.1:7441' });
    // the first up after the upgrade, same cluster: the flat file becomes its named context (no switch)
    const first = await upsertContext(
      '/var/lib/skiff',
      { server: '127.0.0.1:7440', token: 'one' },
      { makeCurrent: true, path: p },
    );
    assert.deepEqual(first, { switched: false, previous: 'default', created: true });
    assert.deepEqual(
      readConfigDocument(p)!.contexts.map((c) => c.name),
      ['/var/lib/skiff'],
    );
    const second = await upsertContext(
      '/tmp/b/state',
      { server: '127.0.0.1:9440', token: 'two', http: 'http://127.0.0.1:9441' },
      { makeCurrent: true, path: p },
    );
    assert.deepEqual(second, { switched: true, previous: '/var/lib/skiff', created: true });
    assert.deepEqual(resolveClientConfig({}, p), {
      server: '127.0.0.1:9440',
      token: 'two',
      http: 'http://127.0.0.1:9441',
    });
    assert.deepEqual(resolveClientConfig({ context: '/var/lib/skiff' }, p), {
      server: '127.0.0.1:7440',
      token: 'one',
    });
    // the same up again: updated in place, no switch
    const again = await upsertContext(
      '/tmp/b/state',
      { server: '127.0.0.1:9442', token: 'three' },
      { makeCurrent: true, path: p },
    );
    assert.deepEqual(again, { switched: false, previous: '/tmp/b/state', created: false });
    assert.equal(readConfigFile(p)!.server, '127.0.0.1:9442');
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.equal(contextNameForStateDir('/var/lib/skiff'), '/var/lib/skiff');
  });

  test('a flat file for another server is kept as the context "default"', async () => {
    const p = path();
    await writeConfigFile(p, { server: '127.0.0.1:7440', token: 'one' });
    await upsertContext('/other', { server: '127.0.0.1:1234', token: 'x' }, { makeCurrent: false, path: p });
    const doc = readConfigDocument(p)!;
    assert.deepEqual(
      doc.contexts.map((c) => c.name),
      ['default', '/other'],
    );
    assert.equal(doc.currentContext, 'default');
    assert.deepEqual(resolveClientConfig({}, p), { server: '127.0.0.1:7440', token: 'one' });
  });

  test('use-context, delete-context and --context errors', async () => {
    const p = path();
    await upsertContext('a', { server: 'h:1', token: 'ta' }, { makeCurrent: true, path: p });
    await upsertContext('b', { server: 'h:2', token: 'tb' }, { makeCurrent: false, path: p });
    await useContext('b', p);
    assert.equal(resolveClientConfig({}, p).server, 'h:2');
    await assert.rejects(
      useContext('c', p),
      (e: unknown) =>
        e instanceof InvalidArgumentError && /no context "c" in .* \(contexts: a, b\)/.test(e.message),
    );
    assert.throws(
      () => resolveClientConfig({ context: 'zz' }, p),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        e.field === 'context' &&
        /--context zz: no context "zz"/.test(e.message),
    );
    assert.equal(await deleteContext('b', p), true);
    assert.deepEqual(
      readConfigDocument(p)!.clusters.map((c) => c.name),
      ['a'],
    );
    assert.throws(
      () => resolveClientConfig({}, p),
      (e: unknown) =>
        e instanceof FailedPreconditionError &&
        /no current context in .* \(contexts: a\): run `skiff config use-context NAME`/.test(e.message),
    );
    // flags still work without a current context, and with --context pick that one
    assert.deepEqual(resolveClientConfig({ server: 'x:1', token: 't' }, p), { server: 'x:1', token: 't' });
    assert.deepEqual(resolveClientConfig({ context: 'a', token: 'other' }, p), {
      server: 'h:1',
      token: 'other',
    });
  });

  test('the file is refused naming the field at fault', () => {
    const bad: [string, RegExp][] = [
      [
        'clusters: [{name: a, cluster: {server: "http://x"}}]',
        /clusters\[0\]\.cluster\.server: server "http:\/\/x" is not host:port/,
      ],
      ['clusters: [{name: a, cluster: {sever: "h:1"}}]', /clusters\[0\]\.cluster\.sever: unknown field/],
      ['users: [{name: a, user: {}}]', /users\[0\]\.user\.token: is required/],
      [
        'contexts: [{name: a, context: {cluster: c, user: u}}, {name: a, context: {cluster: c, user: u}}]',
        /contexts\[1\]\.name: "a" is listed twice/,
      ],
      [
        'server: h:1\ncontexts: []',
        /server: the flat fields server, token, http and ca cannot be mixed with contexts/,
      ],
      ['kind: Pod', /kind: must be "Config"/],
    ];
    for (const [text, reason] of bad)
      assert.throws(
        () => parseConfigDocument(text, 'c'),
        (e: unknown) => e instanceof InvalidArgumentError && reason.test(e.message),
        text,
      );
    const dangling = writeTo(
      'contexts: [{name: a, context: {cluster: gone, user: u}}]\nusers: [{name: u, user: {token: t}}]\ncurrent-context: a\n',
    );
    assert.throws(
      () => resolveClientConfig({}, dangling),
      /context "a" in .* names cluster "gone", which is not in the file/,
    );
  });

  test('the plain reader reads what upsertContext writes, and agrees with YAML wherever it answers', () => {
    const doc = parseConfigDocument(
      'clusters: [{name: /var/lib/skiff, cluster: {server: "127.0.0.1:7440", http: "http://127.0.0.1:7441"}}]\nusers: [{name: /var/lib/skiff, user: {token: abc_DEF-123}}]\ncontexts: [{name: /var/lib/skiff, context: {cluster: /var/lib/skiff, user: /var/lib/skiff}}]\ncurrent-context: /var/lib/skiff\n',
      'c',
    );
    const written = formatConfigDocument(doc);
    const plain = parsePlainBlocks(written);
    assert.ok(plain, `the plain reader must answer for:\n${written}`);
    assert.deepEqual(plain, parseYaml(written));
    // both list indentations, nesting, empty lists and mappings
    const shapes = [
      'a:\n- b: c\n  d:\n    e: f\n- b: g\nh: []\ni: {}\n',
      'a:\n  - b: c\n    d:\n      - e: f\n  - b: g\n',
      'k: v\n',
    ];
    for (const text of shapes) assert.deepEqual(parsePlainBlocks(text), parseYaml(text), text);
    // random values: where it answers, it agrees
    const alphabet = 'abcXYZ0189_./:@+=~-eE';
    let seed = 3;
    const random = (m: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % m;
    let answered = 0;
    for (let i = 0; i < 2000; i++) {
      const value = Array.from({ length: 1 + random(6) }, () => alphabet[random(alphabet.length)]).join('');
      const text = `users:\n- name: ${value}\n  user:\n    token: ${value}\ncurrent-context: ${value}\n`;
      const parsed = parsePlainBlocks(text);
      if (parsed === undefined) continue;
      answered++;
      assert.deepEqual(parsed, parseYaml(text), text);
    }
    assert.ok(answered > 500, `answered only ${answered}`);
    // registries as a user writes them: host[:port] keys, bare or quoted, read as YAML reads them
    const registries =
      'registries:\n  "127.0.0.1:43937":\n    token: qpxiQ-_reYQgAxAwbl0RdlLIyBYev3OtrMvw56JxiZs\n  localhost:5000:\n    username: u\n    password: p\n  \'reg.example\':\n    token: t\n';
    assert.ok(parsePlainBlocks(registries), registries);
    assert.deepEqual(parsePlainBlocks(registries), parseYaml(registries));
    const hostAlphabet = '0129aeEfxXo.:-';
    let hosts = 0;
    for (let i = 0; i < 3000; i++) {
      const host = Array.from(
        { length: 1 + random(7) },
        () => hostAlphabet[random(hostAlphabet.length)],
      ).join('');
      for (const key of [host, `"${host}"`, `'${host}'`]) {
        const text = `registries:\n  ${key}:\n    token: t\n`;
        const parsed = parsePlainBlocks(text);
        if (parsed === undefined) continue;
        hosts++;
        assert.deepEqual(parsed, parseYaml(text), text);
      }
    }
    assert.ok(hosts > 1000, `answered only ${hosts}`);
    for (const text of [
      'a:\n  b: "q"\n',
      'a: b # c\n',
      '- a: b\n',
      'a:\n b:\n  - c\n',
      'a:\n',
      'a: 1\n',
      'a: b\na: c\n',
      'registries:\n  "a\\tb":\n    token: t\n',
      'registries:\n  1e5:\n    token: t\n',
      'registries:\n  true:\n    token: t\n',
    ])
      assert.equal(parsePlainBlocks(text), undefined, text);
  });

  test('a socket server: what skiff up writes, read back, and flags over it', async () => {
    const p = path();
    await upsertContext(
      '/var/lib/skiff',
      {
        server: 'unix:///var/lib/skiff/api.sock',
        tlsServer: '127.0.0.1:7440',
        token: 't',
        http: 'http://127.0.0.1:7441',
        ca: '/var/lib/skiff/pki/ca.crt',
      },
      { makeCurrent: true, path: p },
    );
    const written = readFileSync(p, 'utf8');
    assert.equal(
      written,
      'apiVersion: v1\nkind: Config\nclusters:\n- name: /var/lib/skiff\n  cluster:\n    server: unix:///var/lib/skiff/api.sock\n    tls-server: 127.0.0.1:7440\n    http: http://127.0.0.1:7441\n    certificate-authority: /var/lib/skiff/pki/ca.crt\nusers:\n- name: /var/lib/skiff\n  user:\n    token: t\ncontexts:\n- name: /var/lib/skiff\n  context:\n    cluster: /var/lib/skiff\n    user: /var/lib/skiff\ncurrent-context: /var/lib/skiff\n',
    );
    // read without the YAML parser, as YAML reads it
    assert.deepEqual(parsePlainBlocks(written), parseYaml(written));
    const local = {
      server: 'unix:///var/lib/skiff/api.sock',
      tlsServer: '127.0.0.1:7440',
      token: 't',
      http: 'http://127.0.0.1:7441',
      ca: '/var/lib/skiff/pki/ca.crt',
    };
    assert.deepEqual(resolveClientConfig({}, p), local);
    // --server host:port: over TLS with the context's CA; --server unix:///…: that socket
    assert.deepEqual(resolveClientConfig({ server: '127.0.0.1:7440' }, p), {
      ...local,
      server: '127.0.0.1:7440',
    });
    assert.equal(resolveClientConfig({ server: 'unix:/run/other.sock' }, p).server, 'unix:/run/other.sock');
    assert.deepEqual(resolveClientConfig({ server: 'unix:///run/x.sock', token: 'u' }, join(dir, 'none')), {
      server: 'unix:///run/x.sock',
      token: 'u',
    });
    assert.throws(
      () => resolveClientConfig({ server: 'unix://run/x.sock', token: 'u' }, join(dir, 'none')),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        e.field === 'server' &&
        /--server: server "unix:\/\/run\/x\.sock" is not a Unix socket address: want unix:\/\/\/absolute\/path/.test(
          e.message,
        ),
    );
  });

  test('the first up with a socket replaces the flat file of its TLS address', async () => {
    const p = path();
    await writeConfigFile(p, { server: '127.0.0.1:7440', token: 'one' });
    const first = await upsertContext(
      '/var/lib/skiff',
      { server: 'unix:///var/lib/skiff/api.sock', tlsServer: '127.0.0.1:7440', token: 'one' },
      { makeCurrent: true, path: p },
    );
    assert.deepEqual(first, { switched: false, previous: 'default', created: true });
    assert.deepEqual(
      readConfigDocument(p)!.contexts.map((c) => c.name),
      ['/var/lib/skiff'],
    );
  });

  test('bad socket servers and TLS addresses are refused naming the field', () => {
    const bad: [string, RegExp][] = [
      [
        'clusters: [{name: a, cluster: {server: "unix://api.sock"}}]',
        /clusters\[0\]\.cluster\.server: server "unix:\/\/api\.sock" is not a Unix socket address/,
      ],
      [
        `clusters: [{name: a, cluster: {server: "unix:///${'x'.repeat(120)}"}}]`,
        /clusters\[0\]\.cluster\.server: the socket path \/x+ is 121 bytes, longer than a Unix socket's 107/,
      ],
      [
        'clusters: [{name: a, cluster: {server: "unix:///s", tls-server: "unix:///t"}}]',
        /clusters\[0\]\.cluster\.tls-server: tls-server "unix:\/\/\/t" is a Unix socket: it is the API's TLS address, host:port/,
      ],
      [
        'clusters: [{name: a, cluster: {server: "unix:///s", tls-server: "https://h:1"}}]',
        /clusters\[0\]\.cluster\.tls-server: server "https:\/\/h:1" is not host:port/,
      ],
    ];
    for (const [text, reason] of bad)
      assert.throws(
        () => parseConfigDocument(text, 'c'),
        (e: unknown) => e instanceof InvalidArgumentError && reason.test(e.message),
        text,
      );
  });

  test('what upsertContext writes is kubeconfig-shaped', async () => {
    const p = path();
    await upsertContext(
      '/s',
      { server: 'h:1', token: 't', http: 'http://h:2' },
      { makeCurrent: true, path: p },
    );
    assert.equal(
      readFileSync(p, 'utf8'),
      'apiVersion: v1\nkind: Config\nclusters:\n- name: /s\n  cluster:\n    server: h:1\n    http: http://h:2\nusers:\n- name: /s\n  user:\n    token: t\ncontexts:\n- name: /s\n  context:\n    cluster: /s\n    user: /s\ncurrent-context: /s\n',
    );
  });
});
