/**
 * API tokens through `skiff token` against a real control plane (etcd, NATS, the gRPC API): what
 * each role may do, expiry, revocation taking effect at once, and what is refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectApi } from '../../proto/client.js';
import { PermissionDeniedError, UnauthenticatedError } from '../../proto/errors.js';
import { runSkiff, type RunResult } from '../e2e/cli-harness.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';

describe('skiff token', { timeout: 120_000 }, () => {
  let cluster: TestControlPlane;
  let work: string;
  before(async () => {
    cluster = await launchTestControlPlane('tokens');
    work = mkdtempSync(join(tmpdir(), 'skiff-tokens-'));
  });
  after(async () => {
    await cluster?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  const skiff = (token: string, ...args: string[]): Promise<RunResult> =>
    runSkiff(['--server', cluster.controlPlane.apiAddress, '--token', token, ...args], {
      env: { ...process.env, SKIFF_CONFIG: join(work, 'no-config'), SKIFF_LOG_LEVEL: 'warn' },
    });
  const ok = (result: RunResult, what: string): RunResult => {
    assert.equal(result.code, 0, `${what} failed (exit ${result.code}): ${result.stderr}`);
    return result;
  };
  const api = (token: string) => connectApi({ server: cluster.controlPlane.apiAddress, token });

  test('an admin makes view and edit tokens: view reads, edit writes, neither makes tokens', async () => {
    const viewer = ok(
      await skiff(cluster.adminToken, 'token', 'create', '--role', 'view', '--name', 'reader'),
      'create view',
    );
    const viewToken = viewer.stdout.trim();
    assert.match(viewToken, /^[A-Za-z0-9_-]{43}$/, 'the token alone on stdout');
    assert.match(viewer.stderr, /token "reader" \(view\) created; it expires <never>; it is not shown again/);
    const editor = JSON.parse(
      ok(await skiff(cluster.adminToken, 'token', 'create', '--role', 'edit', '-o', 'json'), 'create edit')
        .stdout,
    ) as { name: string; role: string; token: string; expiresAt: string };
    assert.match(editor.name, /^edit-[0-9a-f]{8}$/);
    assert.equal(editor.expiresAt, '');

    ok(await skiff(viewToken, 'get', 'ns'), 'view lists');
    const refused = await skiff(viewToken, 'create', 'namespace', 'by-viewer');
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /token "reader" has role view, which may only get, list, watch and read logs/,
    );
    ok(await skiff(editor.token, 'create', 'namespace', 'by-editor'), 'edit creates');
    const noTokens = await skiff(editor.token, 'token', 'list');
    assert.equal(noTokens.code, 1);
    assert.match(
      noTokens.stderr,
      /list tokens: token "edit-[0-9a-f]{8}" has role edit; only admin tokens may/,
    );

    const listed = ok(await skiff(cluster.adminToken, 'token', 'list'), 'list').stdout;
    assert.match(listed, /^NAME\s+ROLE\s+AGE\s+EXPIRES$/m);
    assert.match(listed, /^reader\s+view\s+\S+\s+<never>$/m);
    assert.match(listed, /^admin\s+admin\s+/m);
    assert.doesNotMatch(listed, new RegExp(viewToken), 'never the token itself');
  });

  test('revoking a token ends it at once; the token of the call cannot revoke itself', async () => {
    const token = ok(
      await skiff(cluster.adminToken, 'token', 'create', '--role', 'edit', '--name', 'short-lived'),
      'create',
    ).stdout.trim();
    const client = api(token);
    try {
      await client.list('Namespace');
      assert.equal(
        ok(await skiff(cluster.adminToken, 'token', 'revoke', 'short-lived'), 'revoke').stdout,
        'token "short-lived" (edit) revoked\n',
      );
      await assert.rejects(client.list('Namespace'), UnauthenticatedError, 'refused on its next call');
    } finally {
      client.close();
    }
    const again = await skiff(cluster.adminToken, 'token', 'revoke', 'short-lived');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /revoke token "short-lived": no such token/);
    const self = await skiff(cluster.adminToken, 'token', 'revoke', 'admin');
    assert.equal(self.code, 1);
    assert.match(self.stderr, /it is the token of this call; revoke it with another admin token/);
    ok(await skiff(cluster.adminToken, 'get', 'ns'), 'the admin token still works');
  });

  test('a token made with --ttl stops working when it expires, and says so', async () => {
    const made = JSON.parse(
      ok(
        await skiff(
          cluster.adminToken,
          'token',
          'create',
          '--role',
          'view',
          '--ttl',
          '2s',
          '--name',
          'brief',
          '-o',
          'json',
        ),
        'create --ttl',
      ).stdout,
    ) as { token: string; expiresAt: string };
    assert.ok(Date.parse(made.expiresAt) > Date.now(), made.expiresAt);
    const client = api(made.token);
    try {
      await client.list('Namespace');
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, Date.parse(made.expiresAt) - Date.now()) + 200),
      );
      await assert.rejects(client.list('Namespace'), (err: unknown) => {
        assert.ok(err instanceof UnauthenticatedError, String(err));
        assert.match(err.message, /the bearer token "brief" expired at .*skiff token create/);
        return true;
      });
    } finally {
      client.close();
    }
    assert.match(
      ok(await skiff(cluster.adminToken, 'token', 'list'), 'list').stdout,
      /^brief\s+view\s+\S+\s+expired$/m,
    );
  });

  test('bad requests name what is wrong and make nothing', async () => {
    const before = ok(await skiff(cluster.adminToken, 'token', 'list', '-o', 'json'), 'list').stdout;
    const cases: Array<[string[], RegExp]> = [
      [['--role', 'root'], /role "root" is not one of admin, edit, view/],
      [['--role', 'view', '--name', 'Not_A_Label'], /name "Not_A_Label": must be a DNS-1123 label/],
      [['--role', 'view', '--ttl', 'soon'], /--ttl must be a duration/],
      [['--role', 'view', '--ttl', '1500ms'], /--ttl must be whole seconds/],
      [['--role', 'view', '--name', 'reader'], /a token named "reader" exists/],
      [['--role', 'view', '-o', 'yaml'], /output format "yaml" is not supported/],
    ];
    for (const [args, message] of cases) {
      const result = await skiff(cluster.adminToken, 'token', 'create', ...args);
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stdout}`);
      assert.match(result.stderr, message, args.join(' '));
    }
    assert.equal(ok(await skiff(cluster.adminToken, 'token', 'list', '-o', 'json'), 'list').stdout, before);
    const viewer = api(
      ok(await skiff(cluster.adminToken, 'token', 'create', '--role', 'view'), 'create').stdout.trim(),
    );
    try {
      await assert.rejects(
        viewer.createToken({ role: 'admin' }),
        PermissionDeniedError,
        'a view token makes no tokens',
      );
    } finally {
      viewer.close();
    }
  });
});
