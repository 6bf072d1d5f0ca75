/**
 * cli/node-runtime.sh, the set-up's choice of Node.js, on a machine whose `node` is 20: it installs
 * the pinned Node.js 24 from the npm registry, or, when the registry cannot be reached, fails with
 * one message saying what to install by hand and leaves nothing half-installed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../proto/package-info.js';

const script = join(packageRoot(), 'cli/node-runtime.sh');
const PINNED = /^SKIFF_NODE_VERSION=(\S+)$/m;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** A directory whose `node` says it is v20 and otherwise runs the real node (npm runs on it). */
function oldNodeOnPath(dir: string): string {
  const bin = join(dir, 'old-node-bin');
  mkdirSync(bin, { recursive: true });
  const node = join(bin, 'node');
  writeFileSync(
    node,
    `#!/bin/sh\nif [ "$1" = --version ]; then echo v20.20.2; exit 0; fi\nexec ${process.execPath} "$@"\n`,
  );
  chmodSync(node, 0o755);
  return bin;
}

/** Sources node-runtime.sh, calls skiff_use_node, and prints the `node --version` then on the PATH. */
function useNode(env: NodeJS.ProcessEnv): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-c', `set -euo pipefail; source '${script}'; skiff_use_node; node --version`],
      { env, timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A loopback port that refuses connections: an npm registry that cannot be reached. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('the set-up installs Node.js 24 when node is older', { timeout: 240_000 }, () => {
  test('with no registry: one message saying what to install, nothing half-installed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-node-runtime-'));
    try {
      const nodeDir = join(dir, 'pinned');
      const outcome = await useNode({
        ...process.env,
        PATH: `${oldNodeOnPath(dir)}:${process.env['PATH']}`,
        SKIFF_NODE_DIR: nodeDir,
        npm_config_registry: `http://127.0.0.1:${await closedPort()}/`,
        npm_config_cache: join(dir, 'empty-npm-cache'),
        npm_config_fetch_retries: '0',
        npm_config_offline: 'false',
      });
      assert.equal(outcome.code, 1, outcome.stderr);
      assert.match(outcome.stderr, /could not install Node\.js 24\.\d+\.\d+ from the npm registry/);
      assert.match(outcome.stderr, /install Node\.js 24 by hand .* then run this again/);
      assert.deepEqual(existsSync(nodeDir) ? readdirSync(nodeDir) : [], [], 'left behind in the install dir');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('from the npm registry, into its own directory, and used from then on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-node-runtime-'));
    try {
      const version = PINNED.exec(readFileSync(script, 'utf8'))![1]!;
      const nodeDir = join(dir, 'pinned');
      const env = {
        ...process.env,
        PATH: `${oldNodeOnPath(dir)}:${process.env['PATH']}`,
        SKIFF_NODE_DIR: nodeDir,
      };
      const first = await useNode(env);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout.trim(), `v${version}`);
      assert.match(first.stderr, new RegExp(`installing Node\\.js ${version.replace(/\./g, '\\.')}`));
      assert.deepEqual(readdirSync(nodeDir), [version]);
      const again = await useNode(env);
      assert.equal(again.stdout.trim(), `v${version}`);
      assert.doesNotMatch(again.stderr, /installing/, 'installed a second time');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
