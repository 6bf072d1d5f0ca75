import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingNodeFlags } from './node-flags.js';

const WANTED = ['--max-semi-space-size=1', '--no-opt'];

test('the flags a process lacks are added; an option given either way is left as given', () => {
  assert.deepEqual(missingNodeFlags([], WANTED), WANTED);
  assert.deepEqual(missingNodeFlags(['--max-semi-space-size=4'], WANTED), ['--no-opt']);
  assert.deepEqual(missingNodeFlags(['--opt', '--max_semi_space_size=1'], WANTED), []);
  assert.deepEqual(missingNodeFlags(['--import', 'tsx'], WANTED), WANTED);
});

test('relaunching replaces the process (same pid) with one that runs with the flags, arguments kept', () => {
  const script = [
    `const { relaunchWithNodeFlags } = await import(${JSON.stringify(new URL('./node-flags.js', import.meta.url).href)});`,
    `relaunchWithNodeFlags(['--max-semi-space-size=1', '--no-opt']);`,
    `console.log(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, args: process.argv.slice(2) }));`,
  ].join('\n');
  const dir = mkdtempSync(join(tmpdir(), 'skiff-node-flags-'));
  const file = join(dir, 'relaunch.mjs');
  writeFileSync(file, script);
  const run = (env: NodeJS.ProcessEnv) => {
    const child = spawnSync(process.execPath, ['--no-warnings', file, 'a', 'b c'], { encoding: 'utf8', env });
    assert.equal(child.status, 0, child.stderr);
    const lines = child.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'one process printed, the relaunched one');
    const seen = JSON.parse(lines[0]!) as { pid: number; execArgv: string[]; args: string[] };
    assert.equal(seen.pid, child.pid);
    assert.deepEqual(seen.args, ['a', 'b c']);
    return seen.execArgv;
  };
  try {
    assert.deepEqual(run({ ...process.env, NODE_OPTIONS: '' }), [
      '--no-warnings',
      '--max-semi-space-size=1',
      '--no-opt',
    ]);
    // an option NODE_OPTIONS sets is its
    assert.deepEqual(run({ ...process.env, NODE_OPTIONS: '--max-semi-space-size=2' }), [
      '--no-warnings',
      '--no-opt',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
