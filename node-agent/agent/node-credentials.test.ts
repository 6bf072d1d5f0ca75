import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority, privateKeyToPem, writePrivateFiles } from '../../proto/support/pki.js';
import { CA_FILE, CERT_FILE, KEY_FILE, readNodeCredentials, renewalDelayMs } from './node-credentials.js';

test('renewal comes at 70-90 % of the time left', () => {
  const now = new Date('2030-01-01T00:00:00Z');
  const notAfter = new Date(now.getTime() + 1000_000);
  assert.equal(
    renewalDelayMs(notAfter, now, () => 0),
    700_000,
  );
  assert.equal(
    renewalDelayMs(notAfter, now, () => 1),
    900_000,
  );
  assert.equal(renewalDelayMs(new Date(now.getTime() - 1), now), 0);
});

test('only a still-valid certificate of this node from the CA in the directory is reused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-node-credentials-'));
  try {
    const ca = CertificateAuthority.create({ commonName: 'ca' });
    const now = new Date();
    const write = async (commonName: string, notAfter: Date, issuer = ca) => {
      const pair = issuer.issueKeyPair({
        commonName,
        organizations: ['system:nodes'],
        usages: ['client auth'],
        now: new Date(notAfter.getTime() - 3600_000),
        notAfter,
      });
      await writePrivateFiles(
        join(dir, 'n'),
        {
          [CA_FILE]: ca.certificatePem,
          [KEY_FILE]: privateKeyToPem(pair.privateKey),
          [CERT_FILE]: pair.certificate.toString(),
        },
        { replace: true },
      );
    };
    const later = new Date(now.getTime() + 3600_000);
    await write('system:node:n1', later);
    assert.ok(await readNodeCredentials(join(dir, 'n'), 'n1', now));
    assert.equal(await readNodeCredentials(join(dir, 'n'), 'n2', now), undefined, 'another node');
    assert.equal(
      await readNodeCredentials(join(dir, 'n'), 'n1', new Date(later.getTime() + 1000)),
      undefined,
      'expired',
    );
    await write('system:node:n1', later, CertificateAuthority.create({ commonName: 'other' }));
    assert.equal(await readNodeCredentials(join(dir, 'n'), 'n1', now), undefined, 'another CA');
    assert.equal(await readNodeCredentials(join(dir, 'missing'), 'n1', now), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
