/**
 * Launches nats-server (the Debian `nats-server` package, in /usr/sbin) with JetStream on
 * loopback, for `skiff up` and for the test harness: the one way skiff starts NATS.
 * `-a` is always given: without it nats-server binds 0.0.0.0.
 */
import { mkdirSync } from 'node:fs';
import {
  choosePorts,
  findBinary,
  httpProbe,
  retryLostPortRace,
  spawnServer,
  stopProcess,
  waitUntilReady,
  type OutputTarget,
} from './process-support.js';

export interface NatsOptions {
  /** JetStream's store directory. */
  storeDir: string;
  host?: string;
  /** Exactly this client port; FailedPreconditionError when it is taken. */
  port?: number;
  /** Try this client port first and fall back to a free one (`skiff up`'s defaults). */
  preferredPort?: number;
  monitorPort?: number;
  preferredMonitorPort?: number;
  output?: OutputTarget;
  /** Survive this process (`skiff up --detach`); needs `output.logFile`. */
  detached?: boolean;
  /** Bound on the wait for /healthz; default 10 s. */
  readyTimeoutMs?: number;
  stopGraceMs?: number;
}

export interface NatsProcess {
  pid: number;
  /** The client URL, e.g. `nats://127.0.0.1:4222`: what the nats client takes. */
  endpoint: string;
  clientUrl: string;
  /** The HTTP monitor, e.g. `http://127.0.0.1:8222` (/healthz, /varz). */
  monitorUrl: string;
  port: number;
  monitorPort: number;
  storeDir: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, SIGKILL after the grace period, and resolves once nats-server has exited. */
  stop(): Promise<void>;
}

export function startNats(options: NatsOptions): Promise<NatsProcess> {
  return retryLostPortRace(() => startNatsOnce(options));
}

async function startNatsOnce(options: NatsOptions): Promise<NatsProcess> {
  const binary = findBinary('nats-server', 'nats-server');
  const host = options.host ?? '127.0.0.1';
  const ports = await choosePorts(host, {
    'nats client port': { exact: options.port, preferred: options.preferredPort },
    'nats monitor port': { exact: options.monitorPort, preferred: options.preferredMonitorPort },
  });
  const port = ports['nats client port']!;
  const monitorPort = ports['nats monitor port']!;
  mkdirSync(options.storeDir, { recursive: true, mode: 0o700 });
  const args = [
    '-a', host,
    '-p', String(port),
    '-m', String(monitorPort),
    '-js',
    '-sd', options.storeDir,
  ]; // prettier-ignore
  const server = spawnServer(binary, args, options.output ?? {}, options.detached ?? false);
  const pid = server.child.pid;
  const clientUrl = `nats://${host}:${port}`;
  const monitorUrl = `http://${host}:${monitorPort}`;
  const stop = (): Promise<void> =>
    pid === undefined
      ? Promise.resolve()
      : stopProcess(pid, { graceMs: options.stopGraceMs, exited: server.exited });
  try {
    await waitUntilReady(
      `nats-server ${clientUrl} (store ${options.storeDir})`,
      server,
      () => httpProbe(`${monitorUrl}/healthz`, (body) => body.includes('"ok"')),
      options.readyTimeoutMs ?? 10_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    pid: pid!,
    endpoint: clientUrl,
    clientUrl,
    monitorUrl,
    port,
    monitorPort,
    storeDir: options.storeDir,
    exited: server.exited,
    stop,
  };
}
