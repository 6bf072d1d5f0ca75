import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { FailedPreconditionError, InvalidArgumentError } from '../proto/errors.js';
import {
  defaultConfigPath,
  parseConfig,
  parsePlainConfig,
  redactConfig,
  readConfigFile,
  resolveClientConfig,
  writeConfigFile,
} from './config.js';

describe('client config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('SKIFF_CONFIG wins over the home default', () => {
    assert.equal(defaultConfigPath({ SKIFF_CONFIG: '/x/c' }), '/x/c');
    assert.match(defaultConfigPath({}), /\.skiff\/config$/);
  });

  test('YAML and JSON parse; unknown fields and bad servers are refused', () => {
    assert.deepEqual(parseConfig('server: 127.0.0.1:7440\ntoken: t\n', 'c'), {
      server: '127.0.0.1:7440',
      token: 't',
    });
    assert.deepEqual(parseConfig('{"server":"h:1","token":"t"}', 'c'), { server: 'h:1', token: 't' });
    assert.throws(
      () => parseConfig('sever: x\n', 'c'),
      (e: unknown) => e instanceof InvalidArgumentError && /unknown field "sever"/.test(e.message),
    );
    assert.throws(() => parseConfig('server: http://h:1\n', 'c'), /not host:port/);
    assert.throws(() => parseConfig('- a\n', 'c'), /expected a mapping/);
  });

  test('the plain-line reader agrees with the YAML parser wherever it answers', () => {
    // Values YAML reads as something other than that string, and shapes only YAML understands.
    const tricky = [
      '1',
      '-1',
      '+2',
      '0x1F',
      '0o17',
      '1e5',
      '1.5',
      '.5',
      '5.',
      '.inf',
      '-.Inf',
      '.NaN',
      '~',
      'null',
      'NULL',
      'true',
      'False',
      'yes',
      'off',
      '1_000',
      '12:30',
      '127.0.0.1:7440',
      'http://h:1/x',
      'a#b',
      'a=b',
      '_x',
      '/p',
    ];
    const alphabet = 'abcXYZ0189_./:@+=~-eE';
    let seed = 7;
    const random = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const generated = Array.from({ length: 3000 }, () =>
      Array.from({ length: 1 + random(6) }, () => alphabet[random(alphabet.length)]).join(''),
    );
    let answered = 0;
    for (const value of [...tricky, ...generated]) {
      for (const text of [
        `token: ${value}\n`,
        `server: h:1\ntoken: ${value}`,
        `token: ${value}\ntoken: x\n`,
      ]) {
        const plain = parsePlainConfig(text);
        if (plain === undefined) continue;
        answered++;
        assert.deepEqual(plain, parseYaml(text), `plain reader and YAML differ on ${JSON.stringify(text)}`);
      }
    }
    assert.ok(answered > 1000, `the plain reader answered only ${answered} times`);
    for (const text of [
      'token: "q"\n',
      'token: t # c\n',
      'token: t\r\n',
      '{"token":"t"}',
      'token: 1\n',
      'a:\n  b: c\n',
    ])
      assert.equal(parsePlainConfig(text), undefined, `plain reader answered ${JSON.stringify(text)}`);
  });

  test('written with mode 0600, read back, flags override', async () => {
    const path = join(dir, 'sub', 'config');
    await writeConfigFile(path, { server: '127.0.0.1:7440', token: 'secret', http: 'http://127.0.0.1:7441' });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(readConfigFile(path)?.token, 'secret');
    // what `skiff up` writes is read without the YAML parser
    assert.deepEqual(parsePlainConfig(readFileSync(path, 'utf8')), {
      server: '127.0.0.1:7440',
      token: 'secret',
      http: 'http://127.0.0.1:7441',
    });
    assert.deepEqual(resolveClientConfig({ token: 'other' }, path), {
      server: '127.0.0.1:7440',
      token: 'other',
      http: 'http://127.0.0.1:7441',
    });
  });

  test('missing config says to run skiff up', () => {
    assert.throws(
      () => resolveClientConfig({}, join(dir, 'absent')),
      (e: unknown) =>
        e instanceof FailedPreconditionError && /run `skiff up` or pass --server\/--token/.test(e.message),
    );
    assert.deepEqual(resolveClientConfig({ server: 'h:1', token: 't' }, join(dir, 'absent')), {
      server: 'h:1',
      token: 't',
    });
    writeFileSync(join(dir, 'broken'), 'server: [\n');
    assert.throws(() => resolveClientConfig({}, join(dir, 'broken')), /not valid YAML or JSON/);
  });

  test('redaction hides the token', () => {
    assert.equal(redactConfig({ server: 'h:1', token: 'secret' }).token, 'REDACTED');
  });
});
