import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../proto/errors.js';
import {
  defaultConfigPath,
  parseConfig,
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

  test('written with mode 0600, read back, flags override', async () => {
    const path = join(dir, 'sub', 'config');
    await writeConfigFile(path, { server: '127.0.0.1:7440', token: 'secret', http: 'http://127.0.0.1:7441' });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(readConfigFile(path)?.token, 'secret');
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
