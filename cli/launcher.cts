/**
 * The installed `skiff`: checks the Node.js version, turns on the compile cache, then loads the
 * bundled CLI (dist/bin/skiff.mjs). The build writes it to dist/bin/skiff.cjs with a first line
 * naming the Node.js that `npm start`/`npm test` set up, so `skiff` on the PATH runs on that Node
 * whatever the system's `node` is. CommonJS and plain syntax on purpose: an old `node` running it
 * must get to the version check and say what it needs, not fail to parse the bundle.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** package.json `engines` says the same; launcher.test.ts holds the two together. */
export const SUPPORTED_NODE = '^22.19.0 || >=24.0.0';

export function isSupportedNode(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major >= 24 || (major === 22 && minor >= 19);
}

/**
 * Where compiled code is cached between runs: the user's own cache directory, never a shared
 * /tmp where another local user could plant entries for root's skiff to load.
 */
export function compileCacheDir(env: NodeJS.ProcessEnv): string | undefined {
  const base = env['XDG_CACHE_HOME'] || (env['HOME'] ? join(env['HOME'], '.cache') : undefined);
  return base === undefined ? undefined : join(base, 'skiff', 'node-compile-cache');
}

/** Caches of this many builds are kept (several checkouts may run side by side); older ones go. */
export const KEPT_BUILD_CACHES = 4;

/**
 * The compile cache of this build: a directory per build (the bundle's size and time), since every
 * build names its chunks anew and Node never removes entries. The first run of a build removes
 * the caches of all but the newest KEPT_BUILD_CACHES builds, so the cache stops growing.
 */
export function buildCacheDir(base: string, bundle: string): string {
  const stat = statSync(bundle);
  const dir = join(base, `${stat.size.toString(36)}-${Math.trunc(stat.mtimeMs).toString(36)}`);
  if (!existsSync(dir)) pruneBuildCaches(base, KEPT_BUILD_CACHES - 1);
  return dir;
}

/** Removes all but the `keep` most recently changed directories under `base` (and stray files). */
export function pruneBuildCaches(base: string, keep: number): void {
  let entries: { path: string; mtimeMs: number }[];
  try {
    entries = readdirSync(base).map((name) => {
      const path = join(base, name);
      return { path, mtimeMs: statSync(path).mtimeMs };
    });
  } catch {
    return; // no cache yet
  }
  // what is not a build's directory (the one cache of skiff before builds had their own) goes too
  const builds = entries.filter(({ path }) => /^[0-9a-z]+-[0-9a-z]+$/.test(basename(path)));
  builds.sort((a, b) => b.mtimeMs - a.mtimeMs);
  const kept = new Set(builds.slice(0, keep).map(({ path }) => path));
  for (const { path } of entries) if (!kept.has(path)) rmSync(path, { recursive: true, force: true });
}

if (require.main === module) {
  if (!isSupportedNode(process.versions.node)) {
    process.stderr.write(
      `skiff needs Node.js ${SUPPORTED_NODE} (24 LTS recommended); ${process.execPath} is ${process.version}.\n` +
        'Run skiff as installed (`npm start` or `npm test` sets up Node.js 24 and puts `skiff` on the PATH),\n' +
        'or run this file with a newer node.\n',
    );
    process.exit(1);
  }
  // NODE_COMPILE_CACHE, when set, has already turned the cache on (and NODE_DISABLE_COMPILE_CACHE off)
  const cacheDir = compileCacheDir(process.env);
  const bundle = join(__dirname, 'skiff.mjs');
  if (cacheDir !== undefined && process.env['NODE_COMPILE_CACHE'] === undefined) {
    try {
      enableCompileCache(buildCacheDir(cacheDir, bundle));
    } catch {
      // no cache (the bundle unreadable: the import below says so)
    }
  }
  import(pathToFileURL(bundle).href).catch((err: unknown) => {
    process.stderr.write(`skiff: cannot load ${join(__dirname, 'skiff.mjs')}: ${String(err)}\n`);
    process.exit(1);
  });
}
