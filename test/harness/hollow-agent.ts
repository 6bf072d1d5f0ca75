/**
 * `skiff agent --hollow` as a process (the CLI binary) against a control plane, with the admin
 * token and the cluster CA: nodes that register, heartbeat and run pods in name only (Running and
 * Ready at once), for suites and benchmarks at scale. The caller stops it (SIGTERM).
 *
 *   const agents = spawnHollowAgent({ server, token, caFile, root }, ['--count', '5']);
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { skiffEntryArgv } from '../../proto/package-info.js';

export interface HollowAgentTarget {
  /** host:port of the control plane's API. */
  server: string;
  token: string;
  caFile: string;
  /** The agent's state dir. */
  root: string;
}

export function spawnHollowAgent(target: HollowAgentTarget, args: string[]): ChildProcess {
  return spawn(
    process.execPath,
    [
      ...skiffEntryArgv(), 'agent', '--hollow', '--server', target.server, '--token', target.token,
      '--certificate-authority', target.caFile, '--root', target.root, '--node-ip', '127.0.0.1', ...args,
    ], // prettier-ignore
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, SKIFF_LOG_LEVEL: 'warn' } },
  );
}
