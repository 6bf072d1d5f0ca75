/**
 * Issue 11's trust, end to end against a real control plane with a cluster CA (etcd, NATS): join
 * tokens that pin the CA, node certificates bought with them (node-agent/agent/node-credentials.ts)
 * and renewed over mutual TLS, and the node authorizer deciding a node's calls. Refusals are
 * checked on both sides: the client's error, and the control plane's log line.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  obtainNodeCredentials,
  renewNodeCredentials,
  type NodeCredentials,
} from '../../node-agent/agent/node-credentials.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { PermissionDeniedError, UnauthenticatedError } from '../../proto/errors.js';
import type { Node, Pod } from '../../proto/gen/types.js';
import { formatJoinToken, parseJoinToken } from '../../proto/join-token.js';
import { CertificateAuthority, privateKeyToPem } from '../../proto/support/pki.js';
import { trustBundleHash } from '../../proto/support/trust-bundle.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';

describe('node trust: join tokens, node certificates, the node authorizer', () => {
  let cluster: TestControlPlane;
  let admin: ApiClient;
  let work: string;
  const logLines: string[] = [];
  const quiet = pino({ level: 'silent' });
  const logged = (message: string, field: RegExp): boolean =>
    logLines.some((line) => line.includes(`"msg":"${message}"`) && field.test(line));

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'skiff-node-trust-'));
    cluster = await launchTestControlPlane('node-trust', {
      tls: true,
      log: pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }),
    });
    admin = connectApi({
      server: cluster.controlPlane.apiAddress,
      token: cluster.adminToken,
      tls: { ca: cluster.ca! },
    });
  });
  after(async () => {
    admin?.close();
    await cluster?.dispose();
    await rm(work, { recursive: true, force: true });
  });

  const joinToken = async (ttlSeconds = 0): Promise<{ token: string; name: string }> => {
    const created = await admin.createToken({ role: 'join', ttlSeconds });
    return { token: created.token, name: created.info.name };
  };
  const joinAs = (nodeName: string, joinToken: string | undefined, dir = join(work, nodeName)) =>
    obtainNodeCredentials({
      server: cluster.controlPlane.apiAddress,
      nodeName,
      dir,
      log: quiet,
      ...(joinToken !== undefined ? { joinToken } : {}),
    });
  const asNode = (credentials: NodeCredentials): ApiClient =>
    connectApi({ server: cluster.controlPlane.apiAddress, tls: credentials });
  const node = (name: string): Node => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec: {},
  });

  let n1: NodeCredentials;

  test('a join token carries the hash of the cluster CA', async () => {
    const { token } = await joinToken();
    assert.match(token, /^K10[0-9a-f]{64}::[A-Za-z0-9_-]{43}$/);
    assert.equal(parseJoinToken(token).caHash, trustBundleHash(cluster.ca!));
    assert.equal(parseJoinToken(token).caHash, cluster.controlPlane.trust!.bundleHash);
  });

  test('an agent joins with the token: a certificate for its node, kept private, reused without the token', async () => {
    const { token } = await joinToken();
    n1 = await joinAs('n1', token);
    const certificate = new X509Certificate(n1.cert);
    assert.equal(certificate.subject, 'O=system:nodes\nCN=system:node:n1');
    const days = (certificate.validToDate.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `valid for ${days} days`);
    assert.equal((await stat(join(work, 'n1'))).mode & 0o777, 0o700);
    for (const file of await readdir(join(work, 'n1')))
      assert.equal((await stat(join(work, 'n1', file))).mode & 0o777, 0o600, file);
    const again = await joinAs('n1', undefined);
    assert.equal(again.cert, n1.cert, 'the certificate in the directory is reused');
    assert.ok(logged('node certificate issued', /"node":"n1"/));
  });

  test("a token whose CA hash is not the server's is refused by the agent, which writes nothing", async () => {
    const { token } = await joinToken();
    const forged = formatJoinToken({ caHash: 'ab'.repeat(32), secret: parseJoinToken(token).secret });
    await assert.rejects(
      joinAs('n9', forged),
      (err) =>
        err instanceof PermissionDeniedError &&
        /the server's CA \(sha256 [0-9a-f]{64}\) is not the one the join token names \(sha256 (ab)+\); refusing to trust it/.test(
          err.message,
        ),
    );
    await assert.rejects(readdir(join(work, 'n9')), /ENOENT/);
  });

  test('a revoked or expired join token is refused, on both sides', async () => {
    const revoked = await joinToken();
    await admin.revokeToken(revoked.name);
    await assert.rejects(
      joinAs('n8', revoked.token),
      (err) => err instanceof UnauthenticatedError && /the bearer token is not valid/.test(err.message),
    );
    const expiring = await joinToken(1);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await assert.rejects(
      joinAs('n8', expiring.token),
      (err) => err instanceof UnauthenticatedError && /expired at/.test(err.message),
    );
    assert.ok(logged('node certificate refused', /"node":"n8".*expired at/));
  });

  test('tokens of other roles buy no certificate; a node renews only its own', async () => {
    await assert.rejects(
      admin.issueNodeCertificate({
        nodeName: 'n7',
        publicKey: new X509Certificate(n1.cert).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      }),
      (err) =>
        err instanceof PermissionDeniedError &&
        /has role admin; a certificate takes a join token/.test(err.message),
    );
    const renewed = await renewNodeCredentials({
      server: cluster.controlPlane.apiAddress,
      nodeName: 'n1',
      dir: join(work, 'n1'),
      credentials: n1,
    });
    assert.notEqual(renewed.cert, n1.cert);
    assert.equal(new X509Certificate(renewed.cert).subject, 'O=system:nodes\nCN=system:node:n1');
    n1 = renewed;
    await assert.rejects(
      renewNodeCredentials({
        server: cluster.controlPlane.apiAddress,
        nodeName: 'n2',
        dir: join(work, 'n1-as-n2'),
        credentials: n1,
      }),
      (err) =>
        err instanceof PermissionDeniedError &&
        /node "n1" may renew only its own certificate/.test(err.message),
    );
  });

  test('a node may write its own Node only, and read only the Secrets its pods reference', async () => {
    const api = asNode(n1);
    try {
      await api.create(node('n1'));
      await assert.rejects(
        api.create(node('n2')),
        (err) =>
          err instanceof PermissionDeniedError &&
          /create Node n2: refused for node "n1": a node may create only its own Node/.test(err.message),
      );
      for (const name of ['mounted', 'unrelated'])
        await admin.create({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name, namespace: 'default' },
          stringData: { key: name },
        });
      const pod: Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'default' },
        spec: {
          nodeName: 'n1',
          containers: [{ name: 'c', image: 'busybox' }],
          volumes: [{ name: 's', secret: { secretName: 'mounted' } }],
        },
      };
      await admin.create(pod);
      // the watch cache sees the pod a moment after etcd does
      for (let i = 0; ; i++) {
        try {
          await api.get('Secret', 'default', 'mounted');
          break;
        } catch (err) {
          if (!(err instanceof PermissionDeniedError) || i > 50) throw err;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      await assert.rejects(
        api.get('Secret', 'default', 'unrelated'),
        (err) =>
          err instanceof PermissionDeniedError &&
          /get Secret default\/unrelated: refused for node "n1": no pod bound to it references Secret default\/unrelated/.test(
            err.message,
          ),
      );
      assert.ok(logged('api request refused', /"principal":"system:node:n1".*"name":"unrelated"/));
      const mine = await api.list('Pod', { fieldSelector: 'spec.nodeName=n1' });
      assert.deepEqual(
        mine.items.map((each) => each.metadata.name),
        ['web'],
      );
      await assert.rejects(api.list('Pod'), /select them with the field selector spec.nodeName=n1/);
      await assert.rejects(api.list('Secret'), PermissionDeniedError);
    } finally {
      api.close();
    }
  });

  test('a certificate for another node is refused what its pods reference', async () => {
    const n2 = await joinAs('n2', (await joinToken()).token);
    const api = asNode(n2);
    try {
      await assert.rejects(
        api.get('Secret', 'default', 'mounted'),
        (err) => err instanceof PermissionDeniedError && /refused for node "n2"/.test(err.message),
      );
      await assert.rejects(
        api.updateStatus({ ...(await admin.get('Pod', 'default', 'web')) }),
        (err) => err instanceof PermissionDeniedError && /the pod is bound to another node/.test(err.message),
      );
    } finally {
      api.close();
    }
  });

  test('no certificate and no token, or a certificate of another CA, is unauthenticated', async () => {
    const anonymous = connectApi({ server: cluster.controlPlane.apiAddress, tls: { ca: cluster.ca! } });
    await assert.rejects(
      anonymous.get('Node', '', 'n1'),
      (err) => err instanceof UnauthenticatedError && /no bearer token/.test(err.message),
    );
    anonymous.close();
    const otherCa = CertificateAuthority.create({ commonName: 'impostor' });
    const forged = otherCa.issueKeyPair({
      commonName: 'system:node:n1',
      organizations: ['system:nodes'],
      usages: ['client auth'],
    });
    const impostor = connectApi({
      server: cluster.controlPlane.apiAddress,
      tls: { ca: cluster.ca!, cert: forged.certificate.toString(), key: privateKeyToPem(forged.privateKey) },
    });
    await assert.rejects(impostor.get('Secret', 'default', 'mounted'), UnauthenticatedError);
    impostor.close();
    assert.ok(logged('api request refused', /"principal":"unauthenticated"/));
  });
});
