/**
 * Two `skiff controlplane` processes on one etcd and NATS, for suites that kill the leader: each a
 * real process (the CLI binary) with its own state dir, one leading (its controllers and scheduler
 * run), the other standing by; the second opens the cluster's bootstrap data with the first's
 * server token. `roles()` waits for one to log that it leads. Nodes stay Ready for 10 minutes without
 * a heartbeat (`--node-monitor-grace-period 10m`): suites register them without agents, or run
 * agents that talk to one of the two.
 *
 *   const pair = await startControlPlanePair(etcd, nats, { leaseSeconds: 2 });
 *   const { leader, standby, api } = await pair.roles();  // api: admin on the standby, TLS
 *   leader.child.kill('SIGKILL');
 *   await until('the standby leads', () => standby.ledAt(), 20_000);
 *   …
 *   await pair.dispose();                          // SIGTERM to what still runs, state dirs removed
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import type { TestEtcd, TestNats } from './servers.js';
import { until } from './until.js';

export interface ControlPlaneProcess {
  name: string;
  child: ChildProcess;
  /** host:port of its gRPC API. */
  api: string;
  stateDir: string;
  exited: Promise<void>;
  /** When the process logged that it leads (ms since the epoch), if it did. */
  ledAt(): number | undefined;
}

export interface ControlPlanePair {
  processes: [ControlPlaneProcess, ControlPlaneProcess];
  /** The admin token and the CA's PEM file (the first's state dir: the cluster's). */
  adminToken: string;
  caFile: string;
  /** The one that leads first (waits up to 15 s for it), the other, and an admin client of the other's API. */
  roles(): Promise<{ leader: ControlPlaneProcess; standby: ControlPlaneProcess; api: ApiClient }>;
  dispose(): Promise<void>;
}

/** Starts `skiff controlplane` and resolves once it logs that it is ready. */
export async function startControlPlaneProcess(
  name: string,
  stateDir: string,
  args: string[],
): Promise<ControlPlaneProcess> {
  const child = spawn(
    process.execPath,
    [...skiffEntryArgv(), 'controlplane', '--state-dir', stateDir, ...args],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, SKIFF_LOG_LEVEL: 'info' },
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let led: number | undefined;
  let log = '';
  const api = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not ready after 30 s:\n${log}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${log}`)));
    let pending = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const entry = JSON.parse(line) as { msg?: string; api?: string; time?: number };
        if (entry.msg === 'leading') led = entry.time ?? Date.now();
        if (entry.msg?.startsWith('control plane ready') && entry.api) {
          clearTimeout(timer);
          resolve(entry.api);
        }
      }
    });
  });
  return { name, child, api, stateDir, exited, ledAt: () => led };
}

export async function startControlPlanePair(
  etcd: TestEtcd,
  nats: TestNats,
  options: { leaseSeconds: number; args?: string[] },
): Promise<ControlPlanePair> {
  const dirs = [
    await mkdtemp(join(tmpdir(), 'skiff-pair-a-')),
    await mkdtemp(join(tmpdir(), 'skiff-pair-b-')),
  ] as const;
  const started: ControlPlaneProcess[] = [];
  const clients: ApiClient[] = [];
  const dispose = async (): Promise<void> => {
    for (const client of clients) client.close();
    for (const each of started) {
      if (each.child.exitCode === null && each.child.signalCode === null) each.child.kill('SIGTERM');
      await each.exited;
    }
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  };
  try {
    const common = [
      '--etcd', etcd.endpoint,
      '--nats', nats.endpoint,
      '--api-addr', '127.0.0.1:0',
      '--http-addr', '127.0.0.1:0',
      '--leader-elect-lease-duration', `${options.leaseSeconds}s`,
      '--node-monitor-grace-period', '10m',
      ...(options.args ?? []),
    ]; // prettier-ignore
    started.push(await startControlPlaneProcess('a', dirs[0], common));
    started.push(
      await startControlPlaneProcess('b', dirs[1], [
        ...common,
        // the cluster's bootstrap data (CA, encryption keys) is sealed with a's server token
        '--server-token-file', join(dirs[0], 'server-token'),
      ]), // prettier-ignore
    );
  } catch (err) {
    await dispose();
    throw err;
  }
  const processes = started as [ControlPlaneProcess, ControlPlaneProcess];
  const caFile = join(dirs[0], 'pki', 'ca.crt');
  const adminToken = (await readFile(join(dirs[0], 'admin-token'), 'utf8')).trim();
  return {
    processes,
    adminToken,
    caFile,
    async roles() {
      const leader = await until(
        'a leader',
        () => processes.find((each) => each.ledAt() !== undefined),
        15_000,
      );
      const standby = processes.find((each) => each !== leader)!;
      const api = connectApi({
        server: standby.api,
        token: adminToken,
        tls: { ca: await readFile(caFile, 'utf8') },
      });
      clients.push(api);
      return { leader, standby, api };
    },
    dispose,
  };
}
