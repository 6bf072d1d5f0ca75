/**
 * The API over TLS with the cluster CA (controlplane/api/cluster-trust.ts): made on the first
 * start and kept, the API's certificate from it, clients that trust it served, others told why.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { startControlPlane } from '../../controlplane/main.js';
import { connectApi } from '../../proto/client.js';
import { CertificateAuthority } from '../../proto/support/pki.js';
import { trustBundleHash } from '../../proto/support/trust-bundle.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';

describe('the API over TLS', () => {
  let cluster: TestControlPlane;
  before(async () => {
    cluster = await launchTestControlPlane('api-tls', { tls: true });
  });
  after(() => cluster?.dispose());

  test('the cluster CA is made on the first start, private, and is what the API shows', async () => {
    const pki = join(cluster.stateDir, 'pki');
    assert.equal(statSync(pki).mode & 0o777, 0o700);
    assert.equal(statSync(join(pki, 'ca.key')).mode & 0o777, 0o600);
    assert.ok(cluster.ca?.includes('BEGIN CERTIFICATE'));
    assert.equal(cluster.controlPlane.trust?.bundleHash, trustBundleHash(cluster.ca!));
    const api = connectApi({
      server: cluster.controlPlane.apiAddress,
      token: cluster.adminToken,
      tls: { ca: cluster.ca! },
    });
    try {
      assert.ok((await api.version()).version);
    } finally {
      api.close();
    }
  });

  test('a client that does not trust the cluster CA, or speaks plaintext, is refused saying why', async () => {
    const other = CertificateAuthority.create({ commonName: 'other' });
    const wrongCa = connectApi({
      server: cluster.controlPlane.apiAddress,
      token: cluster.adminToken,
      tls: { ca: other.certificatePem },
    });
    await assert.rejects(wrongCa.version(), /not signed by the CA this client trusts/);
    wrongCa.close();
    const plain = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
    await assert.rejects(plain.version(), /if it serves TLS, give this client the cluster CA/);
    plain.close();
  });

  test('a restart keeps the CA: what clients and join tokens pinned still holds', async () => {
    const before = cluster.controlPlane.trust!.bundleHash;
    const second = await startControlPlane({
      etcdEndpoints: [cluster.etcd.endpoint],
      apiAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      stateDir: join(cluster.stateDir, 'second'),
      clusterCaDir: join(cluster.stateDir, 'pki'),
    });
    try {
      assert.equal(second.trust?.bundleHash, before);
      const api = connectApi({
        server: second.apiAddress,
        token: cluster.adminToken,
        tls: { ca: cluster.ca! },
      });
      assert.ok((await api.version()).version);
      api.close();
    } finally {
      await second.stop();
    }
  });
});
