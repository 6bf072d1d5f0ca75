/**
 * Drives the BUILT `skiff` binary for the end-to-end suites: runs verbs as child processes with an
 * isolated $SKIFF_CONFIG, and starts a whole cluster with `skiff up --detach` in a temp state dir
 * that `dispose()` always takes down again (by `skiff down`, then by the recorded pids if that
 * fails) and removes.
 *
 * The binary is the built launcher, dist/bin/skiff.cjs (skiffEntryArgv); in a tree never built it is
 * cli/main.ts through tsx, so the suites also run during development without a build.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfigFile } from '../../cli/config.js';
import { isUnixAddress } from '../../proto/api-address.js';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { skiffEntryArgv } from '../../proto/package-info.js';

/** The node arguments that run skiff. */
export const skiffArgv: string[] = skiffEntryArgv();

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** Run as this user and group (root only). */
  uid?: number;
  gid?: number;
}

/** Runs `skiff ARGS…` to completion (killed after timeoutMs, default 60 s). */
export function runSkiff(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...skiffArgv, ...args], {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`skiff ${args.join(' ')}: no exit after ${options.timeoutMs ?? 60_000} ms\n${stderr}`),
      );
    }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

export interface TestCluster {
  stateDir: string;
  configPath: string;
  /** process.env with SKIFF_CONFIG pointing at this cluster's config. */
  env: NodeJS.ProcessEnv;
  /** Runs skiff against this cluster; fails the test with the output unless the exit code is `expect`. */
  skiff(args: string[], options?: RunOptions): Promise<RunResult>;
  /** `skiff up --detach` on the same state dir (no node agents unless asked). */
  up(agents?: number): Promise<RunResult>;
  down(): Promise<RunResult>;
  /** Down (by pid if `skiff down` fails), then remove the temp dirs. */
  dispose(): Promise<void>;
}

/** Creates the temp dirs; call `up()` to start the cluster. */
export function prepareTestCluster(prefix: string): TestCluster {
  const root = mkdtempSync(join(tmpdir(), `skiff-e2e-${prefix}-`));
  const stateDir = join(root, 'state');
  const configPath = join(root, 'config');
  const env = {
    ...process.env,
    SKIFF_CONFIG: configPath,
    SKIFF_LOG_LEVEL: process.env.SKIFF_LOG_LEVEL ?? 'warn',
  };
  const cluster: TestCluster = {
    stateDir,
    configPath,
    env,
    skiff: (args, options = {}) => runSkiff(args, { env, ...options }),
    up: (agents = 0) => {
      // listed before it starts, so run-suite.sh takes it down should this process die first
      const list = process.env['SKIFF_TEST_CLUSTER_LIST'];
      if (list) appendFileSync(list, `${stateDir}\n`);
      return runSkiff(['up', '--detach', '--agents', String(agents), '--state', stateDir], {
        env,
        timeoutMs: 90_000,
      });
    },
    down: () => runSkiff(['down', '--state', stateDir], { env, timeoutMs: 60_000 }),
    async dispose() {
      const result = await cluster
        .down()
        .catch((err: unknown) => ({ code: -1, stdout: '', stderr: String(err) }));
      if (result.code !== 0) killRecordedPids(stateDir);
      rmSync(root, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** Last resort when `skiff down` failed: SIGKILL what cluster.json records. */
function killRecordedPids(stateDir: string): void {
  let record: Record<string, { pid?: number }>;
  try {
    record = JSON.parse(readFileSync(join(stateDir, 'cluster.json'), 'utf8')) as Record<
      string,
      { pid?: number }
    >;
  } catch {
    return;
  }
  const agents = (record as unknown as { agents?: { pid?: number }[] }).agents ?? [];
  for (const part of [...agents.map((_, i) => `agent${i}`), 'controlplane', 'nats', 'etcd']) {
    const pid = part.startsWith('agent') ? agents[Number(part.slice(5))]?.pid : record[part]?.pid;
    if (typeof pid !== 'number') continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Starts the cluster; throws with skiff's output when `up` fails. */
export async function startTestCluster(prefix: string): Promise<TestCluster> {
  const cluster = prepareTestCluster(prefix);
  const result = await cluster.up();
  if (result.code !== 0) {
    await cluster.dispose();
    throw new Error(`skiff up --detach failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
  }
  return cluster;
}

/** Whether a pid runs (and is not a zombie). */
export function pidRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/**
 * A client of the cluster as its config describes it: its server (the control plane's socket, as
 * `skiff up` writes it; a host:port is called over TLS with the cluster CA) and the admin token.
 */
export function connectCluster(cluster: TestCluster): ApiClient {
  const config = readConfigFile(cluster.configPath)!;
  return connectApi({
    server: config.server!,
    token: config.token!,
    ...(config.ca && !isUnixAddress(config.server!) ? { tls: { ca: readFileSync(config.ca, 'utf8') } } : {}),
  });
}

/**
 * Runs `step` every `intervalMs` (after the previous run ended) until stopped: a stand-in for the
 * agents that writes pods' status through the API in clusters without agents.
 */
export function standIn(step: () => Promise<void>, intervalMs = 100): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const loop = () => {
    timer = setTimeout(() => {
      // a step that fails (the cluster going away at the end) is tried again, or not after stop
      running = step()
        .catch(() => undefined)
        .finally(() => {
          if (!stopped) loop();
        });
    }, intervalMs);
  };
  loop();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
