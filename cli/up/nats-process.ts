/**
 * Launches nats-server (the Debian `nats-server` package, in /usr/sbin) with JetStream on
 * loopback, for `skiff up` and for the test harness: the one way skiff starts NATS.
 * `-a` is always given: without it nats-server binds 0.0.0.0.
 */
import { httpProbe, spawnManagedServer, type OutputTarget } from './process-support.js';

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
  /** A configuration file (`-c`): TLS and users (nats-authorization.ts); the flags here override it. */
  configFile?: string;
  /**
   * Run in this network namespace (a path, /run/netns/NAME; process-support.ts ManagedServerSpec):
   * the ports must then be given exactly, and `host` be an address this process reaches.
   */
  netns?: string;
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

export async function startNats(options: NatsOptions): Promise<NatsProcess> {
  const host = options.host ?? '127.0.0.1';
  const monitorUrl = (ports: Record<NatsPort, number>) => `http://${host}:${ports['nats monitor port']}`;
  const clientUrl = (ports: Record<NatsPort, number>) => `nats://${host}:${ports['nats client port']}`;
  const server = await spawnManagedServer<NatsPort>({
    command: 'nats-server',
    aptPackage: 'nats-server',
    host,
    ports: {
      'nats client port': { exact: options.port, preferred: options.preferredPort },
      'nats monitor port': { exact: options.monitorPort, preferred: options.preferredMonitorPort },
    },
    dataDir: options.storeDir,
    args: (ports) => [
      ...(options.configFile !== undefined ? ['-c', options.configFile] : []),
      '-a', host,
      '-p', String(ports['nats client port']),
      '-m', String(ports['nats monitor port']),
      '-js',
      '-sd', options.storeDir,
    ], // prettier-ignore
    describe: (ports) => `nats-server ${clientUrl(ports)} (store ${options.storeDir})`,
    ready: (ports) => httpProbe(`${monitorUrl(ports)}/healthz`, (body) => body.includes('"ok"')),
    readyTimeoutMs: options.readyTimeoutMs ?? 10_000,
    output: options.output ?? {},
    detached: options.detached ?? false,
    ...(options.stopGraceMs !== undefined ? { stopGraceMs: options.stopGraceMs } : {}),
    ...(options.netns !== undefined ? { netns: options.netns } : {}),
  });
  return {
    pid: server.pid,
    endpoint: clientUrl(server.ports),
    clientUrl: clientUrl(server.ports),
    monitorUrl: monitorUrl(server.ports),
    port: server.ports['nats client port'],
    monitorPort: server.ports['nats monitor port'],
    storeDir: options.storeDir,
    exited: server.exited,
    stop: server.stop,
  };
}

/** The ports nats-server listens on: clients and the HTTP monitor. */
type NatsPort = 'nats client port' | 'nats monitor port';
