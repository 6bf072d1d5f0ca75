import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PermissionDeniedError, UnauthenticatedError } from '../../proto/errors.js';
import { componentLogger } from '../../proto/support/logger.js';
import { ensureAdminToken } from './admin-token.js';
import {
  Authenticator,
  authorize,
  authorizeNode,
  bearerToken,
  hashToken,
  type TokenRecord,
  type TokenStore,
} from './auth.js';
import { MemoryTokenStore } from './token-store.js';

const log = componentLogger('auth-test');

describe('auth', () => {
  test('bearerToken parses only "Bearer <token>"', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer abc'), 'abc');
    assert.equal(bearerToken('Basic abc'), undefined);
    assert.equal(bearerToken('Bearer '), undefined);
    assert.equal(bearerToken(undefined), undefined);
  });

  test('ensureAdminToken writes a 0600 file once and stores only the hash', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-auth-'));
    try {
      const tokens = new MemoryTokenStore();
      const file = join(dir, 'state', 'admin-token');
      assert.equal(await ensureAdminToken(tokens, file, log), true);
      const token = (await readFile(file, 'utf8')).trim();
      assert.match(token, /^[A-Za-z0-9_-]{43}$/);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal(tokens.records.length, 1);
      assert.equal(tokens.records[0]!.sha256, hashToken(token));
      assert.ok(!JSON.stringify(tokens.records).includes(token));
      assert.equal(await ensureAdminToken(tokens, file, log), false);
      assert.equal((await readFile(file, 'utf8')).trim(), token);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('Authenticator accepts known tokens and refuses missing or wrong ones', async () => {
    const tokens = new MemoryTokenStore();
    tokens.records.push({ name: 'admin', role: 'admin', sha256: hashToken('good'), createdAt: '' });
    let clock = 0;
    const auth = new Authenticator({ store: tokens, log, now: () => clock });
    await auth.load();
    assert.deepEqual(await auth.authenticate('Bearer good'), { name: 'admin', role: 'admin' });
    await assert.rejects(auth.authenticate(undefined), UnauthenticatedError);
    await assert.rejects(auth.authenticate('Bearer bad'), UnauthenticatedError);
    // A token added elsewhere is picked up on a miss once the cache is a second old.
    tokens.records.push({ name: 'viewer', role: 'view', sha256: hashToken('v'), createdAt: '' });
    clock += 1500;
    assert.deepEqual(await auth.authenticate('Bearer v'), { name: 'viewer', role: 'view' });
  });

  test('Authenticator refuses a revoked token from the refresh that no longer lists it', async () => {
    const tokens = new MemoryTokenStore();
    tokens.records.push({ name: 'admin', role: 'admin', sha256: hashToken('good'), createdAt: '' });
    tokens.records.push({ name: 'ci', role: 'edit', sha256: hashToken('ci'), createdAt: '' });
    let clock = 0;
    const auth = new Authenticator({ store: tokens, log, now: () => clock, refreshMs: 30_000 });
    await auth.load();
    // Verified once, then served from what the authenticator remembers.
    assert.equal((await auth.authenticate('Bearer ci')).role, 'edit');
    assert.equal((await auth.authenticate('Bearer ci')).role, 'edit');
    await tokens.delete('ci');
    clock += 30_001;
    // The call that notices the records are stale starts the refresh; the remembered header is
    // forgotten as soon as that refresh lands, not after a further period.
    await auth.authenticate('Bearer good');
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(auth.authenticate('Bearer ci'), UnauthenticatedError);
    assert.equal((await auth.authenticate('Bearer good')).name, 'admin');
  });

  test('Authenticator remembers only verified headers, and a bounded number of them', async () => {
    const tokens = new MemoryTokenStore();
    for (let i = 0; i < 1100; i++) {
      tokens.records.push({ name: `t${i}`, role: 'view', sha256: hashToken(`token-${i}`), createdAt: '' });
    }
    const auth = new Authenticator({ store: tokens, log, now: () => 0 });
    await auth.load();
    for (let i = 0; i < 1100; i++) assert.equal((await auth.authenticate(`Bearer token-${i}`)).name, `t${i}`);
    const verified = (auth as unknown as { verified: Map<string, unknown> }).verified;
    assert.ok(verified.size <= 1024, `remembers ${verified.size} headers`);
    await assert.rejects(auth.authenticate('Bearer nope'), UnauthenticatedError);
    assert.ok(!verified.has('Bearer nope'));
  });

  test('Authenticator keeps serving from its cache when the store fails', async () => {
    const tokens = new MemoryTokenStore();
    tokens.records.push({ name: 'admin', role: 'admin', sha256: hashToken('good'), createdAt: '' });
    let clock = 0;
    const auth = new Authenticator({ store: tokens, log, now: () => clock, refreshMs: 10 });
    await auth.load();
    tokens.list = async () => {
      throw new Error('etcd down');
    };
    clock += 100;
    assert.equal((await auth.authenticate('Bearer good')).name, 'admin');
    // Wrong tokens during the outage do not turn into one store call each.
    let calls = 0;
    tokens.list = async () => {
      calls++;
      throw new Error('etcd down');
    };
    clock += 2000;
    for (let i = 0; i < 5; i++)
      await assert.rejects(auth.authenticate(`Bearer wrong-${i}`), UnauthenticatedError);
    assert.equal(calls, 1);
  });

  test('the view role may only read, pods’ logs included; exec, attach and port-forward need edit or admin', () => {
    const viewer = { name: 'v', role: 'view' as const };
    authorize(viewer, 'list', 'pods');
    authorize(viewer, 'logs', 'pods/log');
    assert.throws(() => authorize(viewer, 'create', 'pod default/x'), PermissionDeniedError);
    for (const verb of ['exec', 'attach', 'portForward'] as const) {
      assert.throws(() => authorize(viewer, verb, 'pods/exec'), PermissionDeniedError);
      authorize({ name: 'e', role: 'edit' }, verb, 'pods/exec');
    }
    authorize({ name: 'e', role: 'edit' }, 'delete', 'pod default/x');
  });

  test('the join role may call no object verb, not even version', () => {
    for (const verb of ['get', 'list', 'watch', 'version', 'create'] as const) {
      assert.throws(
        () => authorize({ name: 'j', role: 'join' }, verb, 'pods'),
        (err: unknown) => err instanceof PermissionDeniedError && /role join/.test(err.message),
      );
    }
  });

  test('a node is served by its own identity or an admin token: never by another node, an edit or a view token', () => {
    authorizeNode({ name: 'system:node:n1', role: 'node', node: 'n1' }, 'n1');
    authorizeNode({ name: 'admin', role: 'admin' }, 'n1');
    assert.throws(
      () => authorizeNode({ name: 'system:node:n2', role: 'node', node: 'n2' }, 'n1'),
      (err: unknown) =>
        err instanceof PermissionDeniedError &&
        err.message === 'serve node n1: the caller is node n2, which may serve only its own pods',
    );
    for (const role of ['edit', 'view'] as const)
      assert.throws(
        () => authorizeNode({ name: 'someone', role }, 'n1'),
        /token "someone" has role .*; an agent needs its node's identity or an admin token/,
      );
  });
});
