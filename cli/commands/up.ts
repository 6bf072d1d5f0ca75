/**
 * `skiff up [--state DIR] [--agents N] [--detach]` and `skiff down [--state DIR]`: a whole local
 * cluster in one command (cli/up/cluster.ts does the work).
 *
 * `up` on a state dir whose cluster is already running fails (exit 1) and says so: silently
 * reusing it would hide that its ports, token or version may differ from what was asked for. When
 * only some of it runs (etcd died), `up` keeps what runs and starts the rest on the same ports.
 * In the foreground (no --detach), the first `up` of a state dir also applies the demo manifest
 * (cli/up/demo.yaml) unless --no-demo; Ctrl-C stops everything and keeps the data.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { connectApi, type ConnectOptions } from '../../proto/client.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import { packageRoot, skiffEntryArgv } from '../../proto/package-info.js';
import { defaultConfigPath, writeClusterContext } from '../config.js';
import {
  clusterCaFile,
  clusterFile,
  defaultStateDir,
  readAdminToken,
  startCluster,
  stopCluster,
} from '../up/cluster.js';
import { applyAll, loadManifests, orderForApply } from './apply.js';
import { out, parseNonNegativeInt } from './context.js';

const MAX_LOCAL_AGENTS = 16;

interface UpFlags {
  state?: string;
  agents: number;
  detach?: boolean;
  demo: boolean;
}

function progress(line: string): void {
  process.stderr.write(`skiff up: ${line}\n`);
}

/** The demo application `skiff up` applies: cli/up/demo.yaml of this package. */
function demoManifestPath(): string | undefined {
  const path = join(packageRoot(), 'cli/up/demo.yaml');
  return existsSync(path) ? path : undefined;
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start a local cluster: etcd, nats-server and the control plane, data under --state')
    .option('--state <dir>', 'state directory (default: /var/lib/skiff as root, else ~/.local/share/skiff)')
    .option(
      '--agents <n>',
      'node agents to start on this machine, each a node of its own (default 1)',
      parseNonNegativeInt('--agents'),
      1,
    )
    .option('--detach', 'return once the cluster is ready and leave it running')
    .option('--no-demo', 'do not apply the demo manifest on the first foreground start')
    .action(async (flags: UpFlags) => {
      if (flags.agents > 1 && flags.agents > MAX_LOCAL_AGENTS) {
        throw new InvalidArgumentError(
          `up --agents ${flags.agents}: at most ${MAX_LOCAL_AGENTS} agents run on one machine (each is a whole node)`,
          'agents',
        );
      }
      if (flags.agents > 0 && process.getuid?.() !== 0) {
        throw new InvalidArgumentError(
          'up: node agents run containers and need root; run as root, or give --agents 0 for the API alone',
          'agents',
        );
      }
      const stateDir = resolve(flags.state ?? defaultStateDir());
      const firstStart = !existsSync(resolve(stateDir, 'etcd'));
      const cluster = await startCluster({
        stateDir,
        detached: !!flags.detach,
        agents: flags.agents,
        onProgress: progress,
      });
      const { record } = cluster;
      try {
        const token = readAdminToken(stateDir);
        const configPath = defaultConfigPath();
        const { api, apiSocket, http } = record.controlplane;
        // the CLI on this machine calls the socket (no TLS to load or shake hands); the TLS address
        // stays beside it for what needs the network (a node joining, other machines)
        progress(
          await writeClusterContext(configPath, stateDir, {
            server: apiSocket ?? api,
            ...(apiSocket !== undefined ? { tlsServer: api } : {}),
            token,
            http,
            ca: clusterCaFile(stateDir),
          }),
        );
        if (!flags.detach && flags.demo && firstStart) {
          await applyDemo(
            stateDir,
            apiSocket !== undefined
              ? { server: apiSocket, token }
              : { server: api, token, tls: { ca: readFileSync(clusterCaFile(stateDir), 'utf8') } },
            (record.agents ?? []).length > 0,
          );
        }
      } catch (err) {
        await cluster.stop();
        throw err;
      }
      const { api, apiSocket, http } = record.controlplane;
      out(
        `cluster ready: API ${apiSocket !== undefined ? `${apiSocket} (this machine), ${api} (TLS)` : api}, health and metrics ${http}`,
      );
      out(`state and logs in ${stateDir} (pids in ${clusterFile(stateDir)})`);
      if (flags.detach) {
        out(`stop it with: skiff down --state ${stateDir}`);
        return;
      }
      out(
        'try:\n  skiff get nodes -o wide\n  skiff get pods -n demo -o wide\n  skiff describe pod hello -n demo\n  skiff get events -n demo\n  skiff get deploy,cm -n demo',
      );
      out('press Ctrl-C to stop the cluster (the data stays for the next `skiff up`)');
      await runUntilStopped(cluster);
    });
}

/**
 * The demo: its image built by skiff's own builder (cli/up/demo/, with this machine's static
 * busybox) and pushed to the cluster registry, then the manifest applied; the scheduler places its
 * pod. Without a node the image is skipped and the pod stays Pending.
 */
async function applyDemo(stateDir: string, connect: ConnectOptions, withNodes: boolean): Promise<void> {
  const path = demoManifestPath();
  if (!path) {
    progress('demo manifest cli/up/demo.yaml not found: skipping the demo');
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'skiff-demo-'));
  try {
    if (withNodes) await buildDemoImage(stateDir, work);
    await applyManifest(path, connect);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `skiff image build` and `push` of cli/up/demo as demo/web:1, on a runtime root of the state dir. */
async function buildDemoImage(stateDir: string, work: string): Promise<void> {
  const context = join(work, 'context');
  cpSync(join(packageRoot(), 'cli/up/demo'), context, { recursive: true });
  if (!existsSync(BUSYBOX))
    throw new FailedPreconditionError(
      `demo: ${BUSYBOX} is missing: install busybox-static (apt-get install busybox-static), or run skiff up --no-demo`,
    );
  copyFileSync(BUSYBOX, join(context, 'busybox'));
  const root = join(stateDir, 'demo-images');
  for (const args of [
    ['image', '--root', root, 'build', '--network', 'none', '-t', 'demo/web:1', context],
    ['image', '--root', root, 'push', 'demo/web:1'],
  ]) {
    progress(`demo: skiff ${args.join(' ')}`);
    const result = spawnSync(process.execPath, [...skiffEntryArgv(), ...args], { encoding: 'utf8' });
    if (result.status !== 0)
      throw new FailedPreconditionError(
        `demo: skiff ${args.join(' ')} failed (exit ${result.status}):\n${result.stderr}${result.stdout}`,
      );
  }
}

const BUSYBOX = '/bin/busybox';

async function applyManifest(path: string, connect: ConnectOptions): Promise<void> {
  const prepared = await loadManifests([path], undefined);
  const api = connectApi(connect);
  try {
    await applyAll(api, orderForApply(prepared), (line) => progress(`demo: ${line}`));
  } finally {
    api.close();
  }
}

/** Waits for Ctrl-C / SIGTERM (or a component dying), then stops everything in order. */
async function runUntilStopped(cluster: Awaited<ReturnType<typeof startCluster>>): Promise<void> {
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const signalled = new Promise<NodeJS.Signals>((resolveSignal) => {
    onSignal = resolveSignal;
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const reason = await Promise.race([
      signalled.then((s) => ({ signal: s })),
      cluster.firstExit.then((e) => ({ exit: e })),
    ]);
    if ('exit' in reason) {
      progress(
        `${reason.exit.component} exited (${reason.exit.signal ?? `code ${reason.exit.code}`}): stopping the cluster`,
      );
      process.exitCode = 1;
    } else {
      progress(`${reason.signal}: stopping the cluster`);
    }
    await cluster.stop();
    progress('stopped; the data is kept');
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerDown(program: Command): void {
  program
    .command('down')
    .description('stop the cluster `skiff up` started in --state; the data is kept')
    .option('--state <dir>', 'state directory (default: /var/lib/skiff as root, else ~/.local/share/skiff)')
    .action(async (flags: { state?: string }) => {
      const stateDir = resolve(flags.state ?? defaultStateDir());
      const result = await stopCluster(stateDir);
      if (result === undefined) {
        out(`no cluster recorded in ${stateDir}: nothing to stop`);
        return;
      }
      if (result.stopped.length === 0 && result.failed.length === 0)
        out(`cluster in ${stateDir} was not running; record removed`);
      else if (result.stopped.length > 0)
        out(`stopped ${result.stopped.join(', ')}; data kept in ${stateDir}`);
      if (result.failed.length > 0) {
        throw new FailedPreconditionError(
          `down: could not stop ${result.failed.join('; ')}; stop it by hand (the record in ${clusterFile(stateDir)} is kept)`,
        );
      }
    });
}
