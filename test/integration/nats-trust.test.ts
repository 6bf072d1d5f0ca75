/**
 * NATS as `skiff up` runs it (cli/up/cluster.ts writeNatsConfig): TLS with client certificates of
 * the cluster CA mapped to users (verify_and_map), a node added by the control plane when its
 * certificate is issued (controlplane/nats-node-users.ts), and each node publishing only on its own
 * subjects. Real nats-server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { ensureClusterPki, type ClusterPki } from '../../cli/up/cluster-pki.js';
import { writeNatsConfig, type NatsConfigFiles } from '../../cli/up/cluster.js';
import { startNats, type NatsProcess } from '../../cli/up/nats-process.js';
import { NatsNodeUsers } from '../../controlplane/nats-node-users.js';
import { CertificateAuthority, privateKeyToPem, readCertificateAuthority } from '../../proto/support/pki.js';

describe('NATS with client certificates', () => {
  let dir: string;
  let pki: ClusterPki;
  let config: NatsConfigFiles;
  let nats: NatsProcess;
  let controlplane: NatsConnection;
  let ca: CertificateAuthority;
  const open: NatsConnection[] = [];

  const nodeTls = (node: string, issuer: CertificateAuthority = ca) => {
    const pair = issuer.issueKeyPair({
      commonName: `system:node:${node}`,
      organizations: ['system:nodes'],
      usages: ['client auth'],
    });
    return {
      ca: ca.certificatePem,
      cert: pair.certificate.toString(),
      key: privateKeyToPem(pair.privateKey),
    };
  };
  const connectAs = async (tls: { ca: string; cert?: string; key?: string }): Promise<NatsConnection> => {
    const nc = await connect({ servers: nats.endpoint, tls, reconnect: false, timeout: 3000 });
    open.push(nc);
    return nc;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-nats-trust-'));
    pki = await ensureClusterPki(dir, ['127.0.0.1']);
    ca = await readCertificateAuthority(pki.dir);
    config = await writeNatsConfig(dir, pki);
    nats = await startNats({ storeDir: join(dir, 'nats'), configFile: config.configFile, output: {} });
    controlplane = await connect({
      servers: nats.endpoint,
      tls: { ...pki.controlplaneNatsClient },
      reconnect: false,
    });
  });
  after(async () => {
    for (const nc of open) await nc.close().catch(() => undefined);
    await controlplane?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('a node certificate connects once the control plane has added the node', async () => {
    const n1 = nodeTls('n1');
    await assert.rejects(connectAs(n1), /Authorization Violation/i);
    await new NatsNodeUsers(config.authorizationFile, config.pidFile, pino({ level: 'silent' })).ensure({
      node: 'n1',
    });
    for (let i = 0; ; i++) {
      try {
        await connectAs(n1);
        break;
      } catch (err) {
        if (i > 50) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });

  test('a node publishes on its own subjects only', async () => {
    const n1 = await connectAs(nodeTls('n1'));
    const received: string[] = [];
    const sub = controlplane.subscribe('skiff.node.>', {
      callback: (_err, msg) => received.push(msg.subject),
    });
    await controlplane.flush();
    const errors: string[] = [];
    void (async () => {
      for await (const status of n1.status()) if (status.type === 'error') errors.push(String(status.data));
    })();
    n1.publish('skiff.node.n1.pods', new Uint8Array([1]));
    n1.publish('skiff.node.n2.pods', new Uint8Array([2]));
    await n1.flush();
    await new Promise((resolve) => setTimeout(resolve, 300));
    sub.unsubscribe();
    assert.deepEqual(received, ['skiff.node.n1.pods']);
    assert.match(errors.join('\n'), /PERMISSIONS_VIOLATION/);
  });

  test('no certificate, or one of another CA, is refused', async () => {
    await assert.rejects(connectAs({ ca: ca.certificatePem }));
    const other = CertificateAuthority.create({ commonName: 'impostor' });
    await assert.rejects(connectAs(nodeTls('n1', other)));
  });
});
