/**
 * Start-up time of the `skiff` CLI as a user runs it (the installed launcher, dist/bin/skiff.cjs,
 * on the Node.js it was built with), beside `kubectl version --client` in the same run, rounds
 * interleaved and the order rotated every round so drift hits all alike:
 *
 *   skiff version --client   no server contact: the floor of every verb
 *   skiff get ns             against a local cluster this benchmark starts (`skiff up --detach`
 *                            in a scratch state dir, taken down at the end), as its client config
 *                            says: over the control plane's Unix socket
 *   skiff get ns (TLS)       the same over the API's TLS address (`--server`, the cluster CA):
 *                            what the socket saves
 *   kubectl version --client the reference
 *
 * Each figure is the wall time of the whole process, spawn to exit, median over the rounds, and
 * its ratio to kubectl's median. Goals (issue 7): version --client ≤ 1.2×, get ns ≤ 1.5×.
 *
 * Usage (root): node dist/test/bench/cli-startup.js [ROUNDS]   (default 30, plus 3 warm-up)
 * Needs kubectl: this machine image has it at /usr/bin/kubectl; elsewhere apt-get install kubernetes-client
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfigFile } from '../../cli/config.js';
import { packageRoot } from '../../proto/package-info.js';

const ROUNDS = Number(process.argv[2] ?? 30);
const WARM_UP = 3;

const skiff = join(packageRoot(), 'dist/bin/skiff.cjs');
const kubectl = ['/usr/bin/kubectl', 'kubectl'].find(
  (candidate) => spawnSync(candidate, ['version', '--client'], { stdio: 'ignore' }).status === 0,
);
if (kubectl === undefined) {
  process.stderr.write('cli-startup: kubectl not found: apt-get install -y kubernetes-client\n');
  process.exit(1);
}

const scratch = mkdtempSync(join(tmpdir(), 'skiff-bench-cli-'));
const env = { ...process.env, SKIFF_CONFIG: join(scratch, 'config') };

/** Runs a command to its end and returns its wall time in milliseconds; throws when it fails. */
function timed(argv: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${argv.join(' ')} failed (${result.status}): ${result.stderr}`);
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

try {
  timed([skiff, 'up', '--detach', '--no-demo', '--agents', '0', '--state', join(scratch, 'state')]);
  const tlsServer = readConfigFile(env.SKIFF_CONFIG)?.tlsServer;
  if (tlsServer === undefined) throw new Error('cli-startup: the client config names no tls-server');
  const commands: Record<string, string[]> = {
    'skiff version --client': [skiff, 'version', '--client'],
    'skiff get ns': [skiff, 'get', 'ns'],
    'skiff get ns (TLS)': [skiff, 'get', 'ns', '--server', tlsServer],
    'kubectl version --client': [kubectl, 'version', '--client'],
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((name) => [name, []]));
  const names = Object.keys(commands);
  for (let round = 0; round < WARM_UP + ROUNDS; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length]!;
      const ms = timed(commands[name]!);
      if (round >= WARM_UP) times[name]!.push(ms);
    }
  }
  const reference = median(times['kubectl version --client']!);
  process.stdout.write(`cli-startup: ${ROUNDS} rounds (+${WARM_UP} warm-up), Node.js ${process.version}\n`);
  for (const name of names) {
    const values = times[name]!;
    const ratio = median(values) / reference;
    process.stdout.write(
      `${name.padEnd(26)} median ${median(values).toFixed(1).padStart(6)} ms  ` +
        `min ${Math.min(...values)
          .toFixed(1)
          .padStart(6)}  max ${Math.max(...values)
          .toFixed(1)
          .padStart(6)}  ` +
        `${ratio.toFixed(2)}× kubectl\n`,
    );
  }
} finally {
  spawnSync(skiff, ['down', '--state', join(scratch, 'state')], { env, stdio: 'inherit' });
  rmSync(scratch, { recursive: true, force: true });
}
