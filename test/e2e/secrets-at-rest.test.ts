/**
 * Secrets at rest, through the built binary and a real cluster: etcd holds only ciphertext under
 * the key named in the encryption config; reads through the API are plain; `skiff secrets
 * rotate-key` makes a new key encrypt and rewrites every Secret, which all stay readable.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { startTestCluster, type RunResult, type TestCluster } from './cli-harness.js';

let cluster: TestCluster;

before(async () => {
  cluster = await startTestCluster('secrets');
});

after(async () => {
  await cluster?.dispose();
});

function ok(result: RunResult, what: string): RunResult {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** The raw bytes etcd holds for a key, read with the control plane's client certificate. */
function etcdValue(key: string): Promise<Buffer> {
  const record = JSON.parse(readFileSync(join(cluster.stateDir, 'cluster.json'), 'utf8')) as {
    etcd: { endpoint: string };
  };
  const pki = join(cluster.stateDir, 'pki');
  return new Promise((resolve, reject) =>
    execFile(
      'etcdctl',
      [
        '--endpoints', record.etcd.endpoint,
        '--cacert', join(pki, 'etcd', 'ca.crt'),
        '--cert', join(pki, 'etcd', 'controlplane-client.crt'),
        '--key', join(pki, 'etcd', 'controlplane-client.key'),
        'get', key, '--print-value-only',
      ], // prettier-ignore
      { encoding: 'buffer', env: { ...process.env, ETCDCTL_API: '3' } },
      (err, stdout, stderr) => (err ? reject(new Error(`etcdctl get ${key}: ${stderr}`)) : resolve(stdout)),
    ),
  );
}

const keyNames = (): string[] => {
  const file = join(cluster.stateDir, 'controlplane', 'encryption-config.yaml');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const config = parseYaml(readFileSync(file, 'utf8')) as {
    resources: { providers: { aesgcm?: { keys: { name: string }[] } }[] }[];
  };
  return config.resources[0]!.providers[0]!.aesgcm!.keys.map((key) => key.name);
};

test('Secrets are ciphertext in etcd, plain through the API, and stay readable across a key rotation', async () => {
  const manifest = [0, 1, 2]
    .map(
      (i) =>
        `apiVersion: v1\nkind: Secret\nmetadata: {name: db-${i}}\nstringData: {password: "hunter2-secret-${i}"}\n`,
    )
    .join('---\n');
  ok(await cluster.skiff(['apply', '-f', '-'], { input: manifest }), 'apply');
  const [firstKey] = keyNames();
  const raw = await etcdValue('/skiff/secrets/default/db-1');
  assert.ok(
    raw.toString('latin1').startsWith(`k8s:enc:aesgcm:v1:${firstKey}:`),
    raw.toString('latin1', 0, 60),
  );
  assert.ok(!raw.includes('hunter2-secret-1'), 'no plaintext in etcd');
  assert.ok(!raw.includes(Buffer.from('hunter2-secret-1').toString('base64')), 'no base64 plaintext in etcd');

  const read = async (name: string): Promise<string> => {
    const out = ok(await cluster.skiff(['get', 'secret', name, '-o', 'json']), 'get secret').stdout;
    return Buffer.from(
      (JSON.parse(out) as { data: { password: string } }).data.password,
      'base64',
    ).toString();
  };
  assert.equal(await read('db-1'), 'hunter2-secret-1');

  const rotated = ok(await cluster.skiff(['secrets', 'rotate-key']), 'rotate-key').stdout;
  const [newKey, oldKey] = keyNames();
  assert.equal(oldKey, firstKey, 'the old key is kept');
  assert.notEqual(newKey, firstKey);
  assert.match(rotated, new RegExp(`^encryption key ${newKey} now encrypts secrets; 3 rewritten under it`));
  for (const i of [0, 1, 2]) {
    const value = await etcdValue(`/skiff/secrets/default/db-${i}`);
    assert.ok(
      value.toString('latin1').startsWith(`k8s:enc:aesgcm:v1:${newKey}:`),
      `db-${i} under the new key`,
    );
    assert.equal(await read(`db-${i}`), `hunter2-secret-${i}`);
  }
});
