/**
 * A whole control plane for integration suites: real etcd and NATS (servers.ts), `startControlPlane`
 * in this process on free loopback ports, a temp state dir, and its admin token.
 *
 *   const cluster = await launchTestControlPlane('my-suite', { bookmarkIntervalMs: 200 });
 *   const api = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
 *   …
 *   await cluster.dispose();
 *
 * By default the API is plaintext h2c with bearer tokens (the control plane's mode without a
 * cluster CA, for tests of the API alone). `{ tls: true }` gives it a cluster CA under the state
 * dir, as `skiff controlplane` has: TLS, client certificates, join tokens; `ca` is then the PEM
 * bundle to verify it with (connectApi's `tls: { ca }`). `{ socket: true }` also serves the API on
 * `<state dir>/api.sock` (`controlPlane.apiSocketAddress`), as `skiff up` has it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../controlplane/main.js';
import { launchTestEtcd, launchTestNats, type TestEtcd, type TestNats } from './servers.js';

export interface TestControlPlane {
  controlPlane: ControlPlane;
  etcd: TestEtcd;
  nats: TestNats;
  stateDir: string;
  adminToken: string;
  /** With `tls: true`: the PEM bundle clients verify the API with. */
  ca: string | undefined;
  /** Stops the control plane, NATS and etcd, and removes the state dir. */
  dispose(): Promise<void>;
}

export async function launchTestControlPlane(
  prefix: string,
  options: Partial<ControlPlaneOptions> & { tls?: boolean; socket?: boolean } = {},
): Promise<TestControlPlane> {
  const { tls, socket, ...controlPlaneOptions } = options;
  const stateDir = await mkdtemp(join(tmpdir(), `skiff-${prefix}-`));
  let etcd: TestEtcd | undefined;
  let nats: TestNats | undefined;
  let controlPlane: ControlPlane | undefined;
  const dispose = async () => {
    await controlPlane?.stop();
    await nats?.dispose();
    await etcd?.dispose();
    await rm(stateDir, { recursive: true, force: true });
  };
  try {
    etcd = await launchTestEtcd();
    nats = await launchTestNats();
    controlPlane = await startControlPlane({
      etcdEndpoints: [etcd.endpoint],
      natsUrl: nats.endpoint,
      apiAddr: '127.0.0.1:0',
      httpAddr: '127.0.0.1:0',
      stateDir,
      ...(tls === true ? { clusterCaDir: join(stateDir, 'pki') } : {}),
      ...(socket === true ? { apiSocket: join(stateDir, 'api.sock') } : {}),
      ...controlPlaneOptions,
    });
    const adminToken = (await readFile(controlPlane.adminTokenFile, 'utf8')).trim();
    const ca = controlPlane.trust?.bundle;
    return { controlPlane, etcd, nats, stateDir, adminToken, ca, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}
