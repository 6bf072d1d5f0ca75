import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../proto/package-info.js';
import {
  SUPPORTED_NODE,
  buildCacheDir,
  compileCacheDir,
  isSupportedNode,
  pruneBuildCaches,
} from './launcher.cjs';

const execFileAsync = promisify(execFile);

test('the launcher supports what package.json engines says', () => {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
    engines: { node: string };
  };
  assert.equal(SUPPORTED_NODE, pkg.engines.node);
  for (const version of ['v22.19.0', '22.20.1', 'v24.0.0', 'v24.22.3', 'v26.1.0'])
    assert.ok(isSupportedNode(version), version);
  for (const version of ['v18.20.0', 'v20.20.2', 'v22.18.9', 'v23.11.0', 'garbage'])
    assert.ok(!isSupportedNode(version), version);
});

test('compiled code is cached in the user’s own cache directory, never a shared one', () => {
  assert.equal(compileCacheDir({ XDG_CACHE_HOME: '/c', HOME: '/h' }), '/c/skiff/node-compile-cache');
  assert.equal(compileCacheDir({ HOME: '/h' }), '/h/.cache/skiff/node-compile-cache');
  assert.equal(compileCacheDir({}), undefined);
});

test('each build caches in its own directory, and the first run of a build keeps only the newest few', () => {
  const base = mkdtempSync(join(tmpdir(), 'skiff-cache-'));
  try {
    for (let i = 0; i < 6; i++) {
      mkdirSync(join(base, `old-${i}`));
      utimesSync(join(base, `old-${i}`), 1000 + i, 1000 + i); // old-5 the newest
    }
    mkdirSync(join(base, 'v24.22.3-x64-964aae3f-0')); // the single cache of before
    const bundle = join(base, '..', `${base.split('/').pop()}-bundle.mjs`);
    writeFileSync(bundle, 'export {};\n');
    try {
      const dir = buildCacheDir(base, bundle);
      assert.equal(existsSync(dir), false, 'made by Node when it writes the cache');
      assert.deepEqual(
        readdirSync(base).sort(),
        ['old-3', 'old-4', 'old-5'],
        'room for this build: 4 in all',
      );
      mkdirSync(dir);
      assert.equal(buildCacheDir(base, bundle), dir, 'the same build, the same directory');
      assert.equal(readdirSync(base).length, 4, 'a build seen before prunes nothing');
      pruneBuildCaches(join(base, 'absent'), 1); // no cache yet: nothing to do, no error
    } finally {
      rmSync(bundle, { force: true });
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('an unsupported node running the built skiff says which version it needs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-old-node-'));
  try {
    // Node 20 as far as the launcher can tell: what an old `node dist/bin/skiff.cjs` sees
    const pretend = join(dir, 'pretend-node-20.cjs');
    writeFileSync(
      pretend,
      "Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '20.20.2' } });\n" +
        "Object.defineProperty(process, 'version', { value: 'v20.20.2' });\n",
    );
    const launcher = join(packageRoot(), 'dist/bin/skiff.cjs');
    const failed = await execFileAsync(process.execPath, [
      '--require',
      pretend,
      launcher,
      'version',
      '--client',
    ]).then(
      () => assert.fail('skiff ran on Node 20'),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    assert.equal(failed.code, 1);
    assert.equal(failed.stdout, '');
    assert.match(
      failed.stderr,
      /^skiff needs Node\.js \^22\.19\.0 \|\| >=24\.0\.0 \(24 LTS recommended\); .* is v20\.20\.2\./,
    );
    assert.match(failed.stderr, /npm start/);
    // run as a program (its first line), as `skiff` on the PATH is: on the Node.js it was built with
    const ran = await execFileAsync(launcher, ['version', '--client'], {
      env: { ...process.env, PATH: '/usr/bin:/bin' },
    });
    assert.match(ran.stdout, new RegExp(`Node\\.js Version: ${process.version.replace(/\./g, '\\.')}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
