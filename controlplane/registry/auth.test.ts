import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegistryError } from './errors.js';
import { actionOf, authorizeRegistry, bearerHeaderOf } from './auth.js';

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

test('Bearer tokens and Basic credentials (any user, the token as password) become one bearer header', () => {
  assert.equal(bearerHeaderOf('Bearer abc_DEF-123'), 'Bearer abc_DEF-123');
  assert.equal(bearerHeaderOf('bearer   abc '), 'Bearer abc');
  assert.equal(bearerHeaderOf(basic('any:tok-en_1')), 'Bearer tok-en_1');
  assert.equal(bearerHeaderOf(basic('user:with:colons')), 'Bearer with:colons');
  for (const bad of [
    undefined,
    '',
    'Bearer',
    'Bearer a b',
    'Token abc',
    basic('nopassword'),
    basic('user:'),
    basic('user:two words'),
    'Basic !!!notbase64',
    `Bearer ${'a'.repeat(5000)}`,
  ]) {
    assert.equal(bearerHeaderOf(bad), undefined, String(bad).slice(0, 40));
  }
});

test('pull for every role but join; push and delete for edit and admin', () => {
  assert.equal(actionOf('GET'), 'pull');
  assert.equal(actionOf('HEAD'), 'pull');
  assert.equal(actionOf('DELETE'), 'delete');
  for (const method of ['POST', 'PUT', 'PATCH']) assert.equal(actionOf(method), 'push');
  for (const role of ['admin', 'edit', 'view'] as const) {
    authorizeRegistry({ name: role, role }, 'pull', 'x');
  }
  for (const role of ['admin', 'edit'] as const) {
    authorizeRegistry({ name: role, role }, 'push', 'x');
    authorizeRegistry({ name: role, role }, 'delete', 'x');
  }
  for (const action of ['pull', 'push', 'delete'] as const) {
    assert.throws(
      () => authorizeRegistry({ name: 'joiner', role: 'join' }, action, 'manifest a:1'),
      (err: unknown) =>
        err instanceof RegistryError && err.code === 'DENIED' && /role join/.test(err.message),
    );
  }
  for (const action of ['push', 'delete'] as const) {
    assert.throws(
      () => authorizeRegistry({ name: 'viewer', role: 'view' }, action, 'manifest a:1'),
      (err: unknown) => err instanceof RegistryError && err.code === 'DENIED' && err.status === 403,
    );
  }
});
