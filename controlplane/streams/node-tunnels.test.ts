import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundError, PermissionDeniedError, UnavailableError } from '../../proto/errors.js';
import { NodeTunnels, type SessionRequest, type Tunnel } from './node-tunnels.js';

const admin = { name: 'admin', role: 'admin' as const };

function tunnel(node: string, sent: SessionRequest[], closed: Error[] = []): Tunnel {
  return {
    node,
    principal: admin,
    send: (request) => (sent.push(request), true),
    cancel: () => undefined,
    close: (reason) => void closed.push(reason),
  };
}

const request = { kind: 'exec' as const, namespace: 'default', pod: 'web', podUid: 'u1', container: 'main' };

test('a session goes down its node’s tunnel only, and is handed to the one caller with its secret', async () => {
  const tunnels = new NodeTunnels<string>();
  const n1: SessionRequest[] = [];
  const n2: SessionRequest[] = [];
  tunnels.register(tunnel('n1', n1));
  tunnels.register(tunnel('n2', n2));
  const opened = tunnels.open('n1', request, 'exec pod default/web');
  assert.equal(n2.length, 0);
  const asked = n1[0]!;
  assert.match(asked.id, /^[0-9a-f]{32}$/);
  assert.ok(asked.secret.length >= 43, 'a 256-bit secret');
  assert.throws(() => tunnels.claim(asked.id, 'wrong', admin, 'x'), PermissionDeniedError);
  // another node's identity may not answer it, even with the secret
  assert.throws(
    () => tunnels.claim(asked.id, asked.secret, { name: 'system:node:n2', role: 'node', node: 'n2' }, 'x'),
    /the caller is node n2/,
  );
  tunnels.claim(
    asked.id,
    asked.secret,
    { name: 'system:node:n1', role: 'node', node: 'n1' },
    'the agent’s call',
  );
  assert.deepEqual(await opened, { call: 'the agent’s call', id: asked.id });
  // once: the same id again is unknown
  assert.throws(() => tunnels.claim(asked.id, asked.secret, admin, 'x'), NotFoundError);
  assert.equal(tunnels.waiting, 0);
});

test('no tunnel: UNAVAILABLE naming the node; no answer in time: UNAVAILABLE; a newer tunnel replaces the older', async () => {
  const tunnels = new NodeTunnels<string>({ openTimeoutMs: 50 });
  await assert.rejects(
    tunnels.open('ghost', request, 'logs pod default/web'),
    (err: unknown) =>
      err instanceof UnavailableError &&
      err.endpoint === 'ghost' &&
      /node ghost has no agent connected/.test(err.message),
  );
  const closed: Error[] = [];
  const unregisterOld = tunnels.register(tunnel('n1', [], closed));
  const sent: SessionRequest[] = [];
  tunnels.register(tunnel('n1', sent));
  assert.equal(closed.length, 1, 'the older tunnel is closed');
  unregisterOld(); // leaves the newer one
  assert.deepEqual(tunnels.nodes(), ['n1']);
  await assert.rejects(tunnels.open('n1', request, 'exec'), /did not open the session within 0.05 s/);
  assert.equal(sent.length, 1);
  assert.equal(tunnels.waiting, 0, 'a session given up is forgotten');
});

test('a caller that goes away withdraws its session', async () => {
  const tunnels = new NodeTunnels<string>();
  const sent: SessionRequest[] = [];
  tunnels.register(tunnel('n1', sent));
  const abort = new AbortController();
  const opened = tunnels.open('n1', request, 'exec', abort.signal);
  abort.abort(new Error('the client went away'));
  await assert.rejects(opened, /the client went away/);
  assert.throws(() => tunnels.claim(sent[0]!.id, sent[0]!.secret, admin, 'x'), NotFoundError);
});
